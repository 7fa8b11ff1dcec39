//! The fast stage path is an optimisation, not a second model: for any dense batch
//! shape (speculating decodes and sliding-window layers included), TP degree, layer split, dtype, GPU preset and software-stack profile it
//! gives exactly what the operator-by-operator path gives (times to the ns, FLOPs to
//! rounding of their summation order).

use clustersim::hardware::spec::{gpu_preset, GPU_PRESETS};
use clustersim::hardware::topology::Topology;
use clustersim::model::cost::{BatchShape, CostModel, PrefillChunk};
use clustersim::model::framework::framework_profile;
use clustersim::model::spec::{model_preset, Dtype};
use clustersim::parallel::collective::AllReduceAlgorithm;
use clustersim::parallel::plan::Plan;
use clustersim::serving::assemble::ModelCosts;
use clustersim::serving::pricing::Pricer;
use clustersim::serving::stage::{fast, general, StageInput};
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = BatchShape> {
    let chunk = (1u32..4096, 0u32..8192, any::<bool>()).prop_map(|(tokens, context, completes_prompt)| PrefillChunk {
        tokens,
        context,
        completes_prompt,
    });
    (0u32..256, 1u64..4096, prop::collection::vec(chunk, 0..4)).prop_map(|(decode_seqs, ctx, prefill)| BatchShape {
        decode_seqs,
        decode_context_sum: decode_seqs as u64 * ctx,
        prefill,
        ..Default::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_general_path(
        shape in shape(),
        tp_log in 0u32..4,
        pp in 1u32..4,
        stage_pick in 0u32..4,
        preset in 0..GPU_PRESETS.len(),
        model_name in prop_oneof![Just("llama-3-8b"), Just("llama-2-70b")],
        fp8 in any::<bool>(),
        profile in prop_oneof![Just("optimized"), Just("vllm-2023")],
        drafts in 0u32..3,
        window in prop_oneof![Just(0u32), 1u32..4096],
        window_pick in 0u32..64,
    ) {
        // Speculating decodes (1 + drafts query tokens, the draft on the last stage) and
        // sliding-window layers (a capped shape for some of the stage's layers).
        let shape = BatchShape { draft_tokens: drafts, ..shape };
        prop_assume!(shape.tokens() > 0);
        let tp = 1u32 << tp_log;
        let mut model = (model_preset(model_name).expect("preset").spec)();
        model.dtype = if fp8 { Dtype::Fp8 } else { Dtype::Bf16 };
        let gpu = &GPU_PRESETS[preset];
        let fw = framework_profile(profile).expect("profile");
        let topo = Topology::new(1, 8, &(gpu.nvlink)(), &(gpu.network)()).expect("node");
        let pricer = Pricer::on(topo, AllReduceAlgorithm::Auto, fw.clone(), 0.0);
        let plan = Plan { dp: 1, pp, ep: 1, tp, gpus_per_node: 8, layers: model.layers };
        prop_assume!(plan.gpus() <= 8);
        let stage = stage_pick % pp;
        let comm = pricer.stage_comm(&plan, 0, stage);
        let costs = ModelCosts::new(CostModel::new(&model, &(gpu.spec)(), &fw, tp));
        let speeds = vec![1.0; tp as usize];
        let layers = plan.stage_layers(stage).len() as u32;
        let capped = BatchShape {
            decode_context_sum: shape.decode_context_sum.min(shape.decode_seqs as u64 * window as u64),
            window_tokens: window,
            ..shape.clone()
        };
        let input = StageInput {
            shapes: std::slice::from_ref(&shape),
            window_shapes: std::slice::from_ref(&capped),
            window_layers: if window > 0 { window_pick % (layers + 1) } else { 0 },
            emitting: &[shape.emitting_seqs()],
            dense_layers: layers,
            moe_layers: 0,
            tp,
            experts_per_group: 0,
            top_k: model.top_k,
            first: stage == 0,
            last: stage + 1 == pp,
            speeds: &speeds,
            comm: &comm,
            overlap: false,
        };
        prop_assert!(fast::applies(&input));
        let quick = fast::run_stage_fast(&costs, &input);
        let full = general::run_stage_general(&costs, &input, None, &mut clustersim::metrics::experts::ExpertLoad::default(), None);
        prop_assert_eq!(quick.duration_ns, full.duration_ns);
        for (q, f) in quick.gpus.iter().zip(&full.gpus) {
            prop_assert_eq!((q.compute_ns, q.comm_ns, q.wait_ns), (f.compute_ns, f.comm_ns, f.wait_ns));
            prop_assert!((q.flops - f.flops).abs() <= 1e-9 * f.flops.max(1.0));
            for k in 0..4 {
                prop_assert!((q.comm_bytes[k] - f.comm_bytes[k]).abs() <= 1e-9 * f.comm_bytes[k].max(1.0));
            }
        }
    }
}

#[test]
fn a_straggler_or_several_groups_take_the_general_path() {
    // The fast path is only for identical GPUs in one group: a slow GPU must not take it.
    let gpu = gpu_preset("h100-sxm").expect("preset");
    let fw = framework_profile("optimized").expect("profile");
    let topo = Topology::new(1, 8, &(gpu.nvlink)(), &(gpu.network)()).expect("node");
    let pricer = Pricer::on(topo, AllReduceAlgorithm::Auto, fw, 0.0);
    let plan = Plan { dp: 1, pp: 1, ep: 1, tp: 2, gpus_per_node: 8, layers: 32 };
    let comm = pricer.stage_comm(&plan, 0, 0);
    let shape = BatchShape { decode_seqs: 4, decode_context_sum: 400, ..Default::default() };
    let input = StageInput {
        shapes: std::slice::from_ref(&shape),
        window_shapes: &[],
        window_layers: 0,
        emitting: &[4],
        dense_layers: 32,
        moe_layers: 0,
        tp: 2,
        experts_per_group: 0,
        top_k: 1,
        first: true,
        last: true,
        speeds: &[1.0, 0.5],
        comm: &comm,
        overlap: false,
    };
    assert!(!fast::applies(&input));
}
