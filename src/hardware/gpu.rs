//! The roofline: how long one operator takes on one GPU.
//!
//! An operator with `flops` floating-point operations that moves `bytes` of HBM takes
//! `max(flops / sustained FLOP/s, bytes / sustained HBM bytes/s) + launch overhead`.
//! Memory accounting per GPU lives elsewhere; this is a pure function of the spec.

use super::spec::GpuSpec;
use crate::engine::SimTime;

/// The two sides of the roofline for one operator, for breakdowns and checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roofline {
    /// Time the arithmetic alone would take at the sustained rate, seconds.
    pub compute_s: f64,
    /// Time the HBM traffic alone would take at the sustained bandwidth, seconds.
    pub memory_s: f64,
    /// Fixed kernel launch overhead, seconds.
    pub launch_s: f64,
}

impl Roofline {
    /// True when the HBM side dominates (decode-like operators).
    pub fn memory_bound(&self) -> bool {
        self.memory_s >= self.compute_s
    }
    /// The operator's duration in seconds: the larger side plus the launch overhead.
    pub fn total_s(&self) -> f64 {
        self.compute_s.max(self.memory_s) + self.launch_s
    }
}

/// Both sides of the roofline of an operator of `flops` FLOPs moving `bytes` bytes of
/// HBM, computing in a datatype of `dtype_bytes` bytes (1 selects the FP8 peak).
pub fn roofline(gpu: &GpuSpec, flops: f64, bytes: f64, dtype_bytes: f64) -> Roofline {
    let rate = gpu.sustained_flops(dtype_bytes);
    let bw = gpu.sustained_bytes_per_s();
    Roofline {
        compute_s: if flops > 0.0 { flops / rate } else { 0.0 },
        memory_s: if bytes > 0.0 { bytes / bw } else { 0.0 },
        launch_s: gpu.launch_overhead_us * 1e-6,
    }
}

/// Duration of one operator on `gpu`, rounded to the nanosecond.
///
/// `max(flops / (peak x compute_efficiency), bytes / (HBM bandwidth x memory_efficiency)) + launch overhead`.
pub fn op_time(gpu: &GpuSpec, flops: f64, bytes: f64, dtype_bytes: f64) -> SimTime {
    SimTime::from_secs_f64(roofline(gpu, flops, bytes, dtype_bytes).total_s())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;

    #[test]
    fn gemm_is_compute_bound_and_streaming_memory_bound() {
        // An H100-like card with round numbers, so the arithmetic is checkable by hand.
        let gpu = GpuSpec {
            peak_tflops: 989.0,
            compute_efficiency: 0.80,
            memory_bandwidth_tb_s: 3.35,
            memory_efficiency: 0.85,
            launch_overhead_us: 4.0,
            ..(gpu_preset("h100-sxm").expect("preset").spec)()
        };
        // 1e12 FLOPs at 989e12 x 0.80 = 791.2e12 FLOP/s: 1.26390 ms; + 4 µs launch = 1.267903 ms.
        let t = op_time(&gpu, 1e12, 1e6, 2.0);
        assert_eq!(t.as_ns(), 1_267_903);
        // 1 GB at 3.35e12 x 0.85 = 2.8475e12 B/s: 351.185 µs; + 4 µs = 355.185 µs.
        let r = roofline(&gpu, 1e9, 1e9, 2.0);
        assert!(r.memory_bound());
        assert_eq!(op_time(&gpu, 1e9, 1e9, 2.0).as_ns(), 355_185);
    }
}
