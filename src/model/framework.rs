//! Software-stack profiles: the overheads a serving framework adds on top of the GPU.
//!
//! Measured operator profiles (Vidur) show large GEMMs near 75 % of H100 peak, while
//! end-to-end measurements of a 2023 vLLM stack (Splitwise) run far below that: the
//! gap is the software stack (Python scheduling, unfused kernels, no CUDA graphs),
//! not the GPU. Hardware presets stay true to the operator profiles; a profile
//! models the stack.

use serde::{Deserialize, Serialize};

/// The overheads of one serving stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkProfile {
    /// Name used in scenarios (`serving.framework`).
    pub name: String,
    /// CPU-side scheduling and bookkeeping per iteration, µs.
    pub iteration_overhead_us: f64,
    /// Launch overhead per operator (kernel) on the GPU, µs.
    pub op_overhead_us: f64,
    /// Multiplier on achieved GEMM efficiency (1 = the hardware preset's).
    pub gemm_efficiency: f64,
    /// Multiplier on achieved attention-kernel efficiency.
    pub attention_efficiency: f64,
    /// Multiplier on achieved HBM bandwidth for memory-bound kernels.
    pub memory_efficiency: f64,
    /// Multiplier on achieved collective bandwidth.
    pub collective_efficiency: f64,
}

/// Every known profile name.
pub const FRAMEWORK_NAMES: &[&str] = &["optimized", "vllm-2023"];

/// The profile called `name`, if known.
pub fn framework_profile(name: &str) -> Option<FrameworkProfile> {
    match name {
        "optimized" => Some(FrameworkProfile {
            name: name.into(),
            iteration_overhead_us: 50.0,
            op_overhead_us: 2.0,
            gemm_efficiency: 1.0,
            attention_efficiency: 1.0,
            memory_efficiency: 1.0,
            collective_efficiency: 1.0,
        }),
        "vllm-2023" => Some(FrameworkProfile {
            name: name.into(),
            iteration_overhead_us: 1500.0,
            op_overhead_us: 10.0,
            gemm_efficiency: 0.4,
            attention_efficiency: 0.5,
            memory_efficiency: 0.5,
            collective_efficiency: 0.7,
        }),
        _ => None,
    }
}
