//! Physical limits of the cost model as properties: no operator a run prices does its
//! FLOPs faster than the GPU's datasheet peak, or moves its HBM bytes faster than the
//! datasheet bandwidth, for any preset, GEMM shape and dtype.

use clustersim::hardware::spec::GPU_PRESETS;
use clustersim::model::cost::{CostModel, OpKind};
use clustersim::model::framework::framework_profile;
use clustersim::model::spec::{model_preset, Dtype};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn gemms_respect_the_roofline(
        preset in 0..GPU_PRESETS.len(),
        m in 1u32..40_000,
        k in 1u32..30_000,
        n in 1u32..30_000,
        fp8 in any::<bool>(),
        profile in prop_oneof![Just("optimized"), Just("vllm-2023")],
    ) {
        let gpu = (GPU_PRESETS[preset].spec)();
        let mut model = (model_preset("llama-2-70b").expect("preset").spec)();
        model.dtype = if fp8 { Dtype::Fp8 } else { Dtype::Bf16 };
        let cost = CostModel::new(&model, &gpu, &framework_profile(profile).expect("profile"), 1);
        let op = cost.gemm(OpKind::Mlp, m, k, n);
        let t = op.time.as_secs_f64();
        let peak = if fp8 { gpu.peak_fp8_tflops } else { gpu.peak_tflops } * 1e12;
        prop_assert!(t > 0.0);
        // Rounding to the nanosecond may shave at most 0.5 ns off.
        prop_assert!(op.flops / (t + 0.5e-9) <= peak, "{} FLOP in {t} s beats {peak}", op.flops);
        prop_assert!(op.bytes / (t + 0.5e-9) <= gpu.memory_bandwidth_tb_s * 1e12);
        prop_assert!(t >= gpu.launch_overhead_us * 1e-6 - 0.5e-9);
    }
}
