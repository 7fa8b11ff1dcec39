//! Software-stack profiles: the overheads a serving framework adds on top of the GPU.
//!
//! Measured operator profiles (Vidur) show large GEMMs near 75 % of H100 peak, while
//! end-to-end measurements of a 2023 vLLM stack (Splitwise) run far below that: the
//! gap is the software stack (Python scheduling, unfused kernels, no CUDA graphs),
//! not the GPU. Hardware presets stay true to the operator profiles; a profile
//! models the stack. Every factor here multiplies the hardware preset's sustained
//! rate, so 1.0 means "as fast as the operator profiles".
//!
//! A profile is a TOML file: the shipped ones live in `profiles/` and are compiled in;
//! `serving.framework = "path.toml"` loads a user's own (`file`).

mod file;

pub use file::{load as load_profile, parse as parse_profile, Parameter, PARAMETERS};

use crate::engine::SimTime;
use crate::error::InputError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a replica admits requests into its KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Admit while blocks for the prompt last; when a sequence needs a block and none is
    /// free, preempt the newest request and recompute it later (vLLM).
    #[default]
    Preempt,
    /// Admit a request only if blocks for its prompt plus all its output tokens can be
    /// reserved at once, so no request is ever preempted (TensorRT-LLM's
    /// GUARANTEED_NO_EVICT).
    NoEvict,
}

/// The overheads of one serving stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameworkProfile {
    /// Name used in scenarios (`serving.framework`).
    pub name: String,
    /// Host-side scheduling and bookkeeping per iteration, µs (charged on the first stage).
    pub iteration_overhead_us: f64,
    /// Host-side cost per sequence in the batch per iteration (sampling, output
    /// processing, block tables), µs (charged on the last stage).
    pub per_seq_overhead_us: f64,
    /// Host-side cost per prefill chunk in the batch (input preparation, KV block
    /// allocation), µs (charged on the first stage).
    pub prefill_overhead_us: f64,
    /// Extra launch cost per kernel and per collective on top of the GPU's own
    /// `launch_overhead_us` (Python dispatch without CUDA graphs), µs.
    pub kernel_overhead_us: f64,
    /// Multiplier on the hardware's sustained GEMM rate (1 = the operator profiles).
    pub gemm_efficiency: f64,
    /// Multiplier on the hardware's sustained rate for attention-kernel FLOPs.
    pub attention_efficiency: f64,
    /// Multiplier on the hardware's sustained HBM bandwidth for every kernel.
    pub memory_efficiency: f64,
    /// Fraction of the link's sustained bandwidth the stack's collectives reach (1 = the
    /// hardware preset's, as nccl-tests measure it).
    pub collective_efficiency: f64,
    /// Extra latency per ring step of a collective on top of the link's α (eager
    /// launches and synchronization of each step), µs; a ring all-reduce has 2(n-1) steps.
    pub collective_step_overhead_us: f64,
    /// The stack runs in-node TP all-reduces below this many bytes with its own one-shot /
    /// two-shot kernels (`parallel::collective::choose_all_reduce`), NCCL the rest; 0:
    /// the stack has no such kernels. Only with `parallel.all_reduce = "auto"`.
    pub custom_all_reduce_max_bytes: u64,
    /// HBM bytes moved per attention score (one query head x one query token x one
    /// key) in prefill attention: 0 for fused (flash) attention, which keeps scores
    /// on chip; > 0 for attention that materializes scores and softmax in HBM.
    pub attention_score_bytes: f64,
    /// Decode-only iterations of 1 to this many sequences replay a captured CUDA graph
    /// and launch no kernel one by one (0: the stack captures no graph).
    pub cuda_graph_max_batch: u32,
    /// Host time to launch one kernel of an iteration that does not replay a CUDA graph
    /// (any prefill chunk in the batch, or more decodes than `cuda_graph_max_batch`),
    /// µs per kernel, charged for every kernel of the first stage's layers before its
    /// GPUs start (they are idle meanwhile).
    pub eager_launch_us: f64,
    /// Admission policy (a scenario's `serving.admission` overrides it).
    pub admission: Admission,
    /// Chunked prefill when the scenario's `serving.chunked_prefill` is not set.
    pub chunked_prefill: bool,
    /// The shipped validation rows (their configurations) `clustersim calibrate` fitted
    /// this profile to; `clustersim validation` reports its error on the others apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fitted_rows: Vec<String>,
    /// The parameters (keys of [`PARAMETERS`]) `clustersim calibrate` fitted; what
    /// `clustersim validation` refits when it leaves a source out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fitted_parameters: Vec<String>,
}

impl FrameworkProfile {
    /// What the stack adds to one collective of `steps` steps, ns: its launch cost plus
    /// its extra latency on every step (the chosen algorithm's real step count).
    pub fn collective_extra_ns(&self, steps: f64) -> f64 {
        (self.kernel_overhead_us + steps * self.collective_step_overhead_us) * 1e3
    }

    /// Host work before an iteration's GPUs start: scheduling, plus input preparation
    /// per prompt chunk in the batch (the GPUs are idle meanwhile).
    pub fn host_before(&self, prefill_chunks: usize) -> SimTime {
        SimTime::from_ns_f64(self.iteration_overhead_us * 1e3)
            + SimTime::from_ns_f64(self.prefill_overhead_us * 1e3 * prefill_chunks as f64)
    }

    /// Whether an iteration of `prefill_chunks` prompt chunks and `decode_seqs` decodes
    /// replays a captured CUDA graph: decode only, and no more decodes than were captured.
    pub fn replays_graph(&self, prefill_chunks: usize, decode_seqs: usize) -> bool {
        prefill_chunks == 0 && decode_seqs > 0 && decode_seqs <= self.cuda_graph_max_batch as usize
    }

    /// Host time to launch an iteration's kernels one by one: `eager_launch_us` per kernel
    /// of the `kernels` the first stage runs, or nothing when the iteration replays a
    /// graph (one graph launch, inside `iteration_overhead_us`). `kernels` is only asked
    /// for when it is needed (counting them prices a layer).
    pub fn launch_host(&self, prefill_chunks: usize, decode_seqs: usize, kernels: impl FnOnce() -> u64) -> SimTime {
        if self.eager_launch_us == 0.0 || self.replays_graph(prefill_chunks, decode_seqs) {
            return SimTime::ZERO;
        }
        SimTime::from_ns_f64(self.eager_launch_us * 1e3 * kernels() as f64)
    }

    /// Host work after an iteration's last stage: sampling and output per sequence.
    pub fn host_after(&self, seqs: usize) -> SimTime {
        SimTime::from_ns_f64(self.per_seq_overhead_us * 1e3 * seqs as f64)
    }
}

/// Every shipped profile: (name, TOML text), compiled into the binary so it runs anywhere.
pub const SHIPPED: &[(&str, &str)] = &[
    ("optimized", include_str!("../../../profiles/optimized.toml")),
    ("trtllm", include_str!("../../../profiles/trtllm.toml")),
    ("vllm", include_str!("../../../profiles/vllm.toml")),
    ("sglang", include_str!("../../../profiles/sglang.toml")),
    ("vllm-2023", include_str!("../../../profiles/vllm-2023.toml")),
];

/// Every known profile name.
pub const FRAMEWORK_NAMES: &[&str] = &["optimized", "trtllm", "vllm", "sglang", "vllm-2023"];

/// The shipped profile called `name`, if known. The shipped files are checked by this
/// module's tests, so a known name always parses.
pub fn framework_profile(name: &str) -> Option<FrameworkProfile> {
    let (_, text) = SHIPPED.iter().find(|(n, _)| *n == name)?;
    file::parse(text, Path::new(&format!("profiles/{name}.toml"))).ok()
}

/// The profile `serving.framework` names: a shipped name, or a path to a profile TOML
/// file (ends in `.toml`), relative to the scenario file's folder.
pub fn resolve(spec: &str, scenario_file: &Path) -> Result<FrameworkProfile, InputError> {
    if let Some(p) = framework_profile(spec) {
        return Ok(p);
    }
    if !spec.ends_with(".toml") {
        return Err(InputError::key(
            scenario_file,
            "serving.framework",
            format!(
                "unknown framework {spec:?}; known: {}, or a path to a profile file ending in .toml",
                FRAMEWORK_NAMES.join(", ")
            ),
        ));
    }
    let base = scenario_file.parent().unwrap_or(Path::new("."));
    file::load(&base.join(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_resolves_and_unknown_does_not() {
        for n in FRAMEWORK_NAMES {
            assert_eq!(framework_profile(n).map(|p| p.name), Some(n.to_string()));
        }
        assert!(framework_profile("tgi").is_none());
    }

    #[test]
    fn optimized_is_never_slower_than_vllm_2023() {
        let (o, v) = (framework_profile("optimized").unwrap(), framework_profile("vllm-2023").unwrap());
        assert!(o.iteration_overhead_us < v.iteration_overhead_us);
        assert!(o.per_seq_overhead_us < v.per_seq_overhead_us);
        assert!(o.kernel_overhead_us <= v.kernel_overhead_us);
        assert!(o.collective_efficiency >= v.collective_efficiency);
        assert!(o.collective_step_overhead_us <= v.collective_step_overhead_us);
        assert!(o.gemm_efficiency >= v.gemm_efficiency && o.memory_efficiency >= v.memory_efficiency);
        assert!(o.attention_score_bytes <= v.attention_score_bytes);
    }
}
