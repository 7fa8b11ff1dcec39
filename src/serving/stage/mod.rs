//! One pipeline stage running one batch: per-GPU compute, communication and waits.
//!
//! A stage has `ep` groups of `tp` GPUs. Layer by layer, each GPU computes its share
//! (slowed by its speed factor), then meets its partners in a collective: the
//! collective starts when the last partner arrives, the others wait, and all leave
//! together after the transfer. That is where synchronization wait comes from: a
//! straggler, or an EP group holding the hot experts, makes its partners wait.
//!
//! This is the one stage pricer: serving runs, the calibration reference steps and
//! the tests all price a stage iteration through [`run_stage`]. When nothing differs
//! between GPUs (one EP group, equal speeds, a dense model) every layer is identical
//! and waits are zero, so [`fast`] prices one layer and multiplies by the layer count;
//! a property test (tests/stage_props.rs) holds it equal to [`general`] to the ns.

mod clocks;
pub mod fast;
pub mod general;

use super::experts::ExpertSampler;
use crate::metrics::experts::ExpertLoad;
use crate::metrics::recorder::Activity;
use crate::model::cost::BatchShape;
use crate::parallel::ledger::{GpuState, GpuTotals};
use crate::parallel::price::{Affine, Price};
pub use clocks::exposed_with_overlap;

/// Work of one operator group on one GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Time, ns.
    pub ns: f64,
    /// Model FLOPs.
    pub flops: f64,
}

/// What the executor needs from the cost model (per GPU, after TP sharding).
pub trait StageCosts {
    /// QKV, attention and output projection of one layer for `shape`.
    fn attention(&self, shape: &BatchShape) -> Work;
    /// Dense MLP of one layer for `tokens` tokens.
    fn mlp(&self, tokens: u32) -> Work;
    /// Router over `tokens` tokens plus the local experts, given tokens per local expert.
    fn moe(&self, tokens: u32, tokens_per_local_expert: &[u32]) -> Work;
    /// LM head for `seqs` rows of logits (sequences producing a token, plus the draft
    /// positions verified when speculating).
    fn lm_head(&self, seqs: u32) -> Work;
    /// The speculative draft on the last stage for `shape` (zero when it drafts
    /// nothing), its MoE layer's tokens spread evenly over `local_experts` experts.
    fn draft(&self, shape: &BatchShape, local_experts: u32) -> Work;
    /// Embedding lookup for `tokens` tokens (first stage).
    fn embedding(&self, tokens: u32) -> Work;
    /// TP all-reduce payload for `tokens` tokens, bytes.
    fn tp_bytes(&self, tokens: u32) -> f64;
    /// Activation bytes per token crossing a stage boundary (whole, before TP split).
    fn pp_bytes(&self, tokens: u32) -> f64;
    /// Bytes per token per expert choice in the dispatch all-to-all.
    fn ep_bytes_per_choice(&self) -> f64;
    /// Bytes per token per expert choice in the combine all-to-all (the dispatch's by
    /// default; BF16 rows for low-precision models).
    fn ep_combine_bytes_per_choice(&self) -> f64 {
        self.ep_bytes_per_choice()
    }
    /// Kernels one layer launches for `shape` (attention block and MLP), for the host's
    /// launch cost of an iteration run without a CUDA graph (0: not counted).
    fn kernels_per_layer(&self, _shape: &BatchShape) -> u32 {
        0
    }
}

/// The collectives of one stage.
#[derive(Clone, Debug, Default)]
pub struct StageComm {
    /// TP all-reduce of each EP group's TP group (empty or unused when tp = 1).
    pub tp_allreduce: Vec<Price>,
    /// EP all-to-all among equal TP ranks, per TP rank; bytes = the largest volume
    /// one rank sends or receives.
    pub ep_alltoall: Vec<Affine>,
    /// Send to the next stage, per GPU of this stage (empty on the last stage).
    pub pp_send: Vec<Affine>,
}

/// One stage run's input.
pub struct StageInput<'a> {
    /// Each EP group's share of the batch.
    pub shapes: &'a [BatchShape],
    /// The same shares as a sliding-window layer sees them (contexts capped at the
    /// window); unused when `window_layers` is 0.
    pub window_shapes: &'a [BatchShape],
    /// Layers of this stage that attend through a sliding window.
    pub window_layers: u32,
    /// Rows of logits the LM head computes, per EP group (sequences producing a token,
    /// plus draft positions verified).
    pub emitting: &'a [u32],
    /// Dense layers in this stage.
    pub dense_layers: u32,
    /// MoE layers in this stage.
    pub moe_layers: u32,
    /// TP degree.
    pub tp: u32,
    /// Experts per EP group (0 for dense models).
    pub experts_per_group: u32,
    /// Top-k.
    pub top_k: u32,
    /// This is the first stage (runs the embedding).
    pub first: bool,
    /// This is the last stage (runs the LM head, sends nothing).
    pub last: bool,
    /// Speed factor of each GPU of the stage (1 = full speed), in (ep, tp) order.
    pub speeds: &'a [f64],
    /// The stage's collectives.
    pub comm: &'a StageComm,
    /// Overlap each collective with the computation before it (two-chunk pipelining).
    pub overlap: bool,
}

/// A span relative to the stage run's start, for the timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalSpan {
    /// GPU index within the stage.
    pub local_gpu: u32,
    /// Offset of the start, ns.
    pub start_ns: u64,
    /// Offset of the end, ns.
    pub end_ns: u64,
    /// State.
    pub state: GpuState,
    /// What.
    pub what: Activity,
    /// FLOPs (compute spans).
    pub flops: f64,
    /// Bytes each GPU moves (communication spans).
    pub bytes: f64,
}

/// The result of a stage run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageRun {
    /// From the first GPU starting to the last finishing, ns.
    pub duration_ns: u64,
    /// Per GPU, in (ep, tp) order; each GPU's compute + comm + wait = duration_ns.
    pub gpus: Vec<GpuTotals>,
}

/// Works out one stage run. `expert_load` receives each MoE layer's tokens per expert
/// (`metrics::experts`); `spans`, when given, receives the timeline.
pub fn run_stage(
    costs: &dyn StageCosts,
    input: &StageInput,
    sampler: Option<&mut ExpertSampler>,
    expert_load: &mut ExpertLoad,
    spans: Option<&mut Vec<LocalSpan>>,
) -> StageRun {
    if spans.is_none() && fast::applies(input) {
        return fast::run_stage_fast(costs, input);
    }
    general::run_stage_general(costs, input, sampler, expert_load, spans)
}

/// Tokens of a shape: decode query tokens plus prompt-chunk tokens.
pub fn shape_tokens(s: &BatchShape) -> u32 {
    s.tokens()
}

/// One layer's attention work for EP group `e`: the mean over the stage's layers of
/// full and sliding-window attention, so that the stage's layers together cost what
/// each kind costs times its count (each layer is booked at the mean: the timeline
/// does not tell window layers from full ones).
pub fn layer_attention(costs: &dyn StageCosts, input: &StageInput, e: usize) -> Work {
    let full = costs.attention(&input.shapes[e]);
    let layers = input.dense_layers + input.moe_layers;
    if input.window_layers == 0 || layers == 0 {
        return full;
    }
    let window = costs.attention(&input.window_shapes[e]);
    let (n, w) = (layers as f64, input.window_layers.min(layers) as f64);
    Work { ns: (full.ns * (n - w) + window.ns * w) / n, flops: (full.flops * (n - w) + window.flops * w) / n }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::PrefillChunk;

    /// Hand-set costs: attention 100 ns (40 ns in a sliding-window layer), MLP 200 ns,
    /// experts 10 ns per token routed, LM head 50 ns, draft 1,000 ns per draft token;
    /// 1 byte per token everywhere.
    struct Fixed;
    impl StageCosts for Fixed {
        fn attention(&self, s: &BatchShape) -> Work {
            if s.window_tokens > 0 {
                Work { ns: 40.0, flops: 0.4 }
            } else {
                Work { ns: 100.0, flops: 1.0 }
            }
        }
        fn mlp(&self, _: u32) -> Work {
            Work { ns: 200.0, flops: 2.0 }
        }
        fn moe(&self, _: u32, local: &[u32]) -> Work {
            Work { ns: 10.0 * local.iter().sum::<u32>() as f64, flops: 0.0 }
        }
        fn lm_head(&self, _: u32) -> Work {
            Work { ns: 50.0, flops: 0.5 }
        }
        fn embedding(&self, _: u32) -> Work {
            Work::default()
        }
        fn draft(&self, shape: &BatchShape, _: u32) -> Work {
            Work { ns: 1000.0 * shape.draft_tokens as f64, flops: 0.0 }
        }
        fn tp_bytes(&self, t: u32) -> f64 {
            t as f64
        }
        fn pp_bytes(&self, t: u32) -> f64 {
            t as f64
        }
        fn ep_bytes_per_choice(&self) -> f64 {
            1.0
        }
    }

    fn shape(tokens: u32) -> BatchShape {
        BatchShape { prefill: vec![PrefillChunk { tokens, context: 0, completes_prompt: true }], ..Default::default() }
    }

    fn comm(tp_groups: usize, tp: usize, ar_ns: f64) -> StageComm {
        StageComm {
            tp_allreduce: vec![Affine { fixed_ns: ar_ns, per_byte_ns: 0.0 }.into(); tp_groups],
            ep_alltoall: vec![Affine { fixed_ns: 30.0, per_byte_ns: 0.0 }; tp],
            pp_send: vec![Affine { fixed_ns: 5.0, per_byte_ns: 1.0 }; tp_groups * tp],
        }
    }

    /// A last-and-first stage of no layers at tp 1; tests override what they need.
    fn base<'a>(shapes: &'a [BatchShape], cm: &'a StageComm, speeds: &'a [f64]) -> StageInput<'a> {
        StageInput {
            shapes,
            window_shapes: &[],
            window_layers: 0,
            emitting: &[1, 1],
            dense_layers: 0,
            moe_layers: 0,
            tp: 1,
            experts_per_group: 0,
            top_k: 0,
            first: true,
            last: true,
            speeds,
            comm: cm,
            overlap: false,
        }
    }

    #[test]
    fn fast_path_equals_loop_for_dense() {
        // 3 layers of (100 + 40 + 200 + 40) = 1140 ns, + PP send 5 + 8/2 = 9 ns.
        let shapes = [shape(8)];
        let cm = comm(1, 2, 40.0);
        let speeds = [1.0, 1.0];
        let input = StageInput { emitting: &[1], dense_layers: 3, tp: 2, last: false, ..base(&shapes, &cm, &speeds) };
        let fast = run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), None);
        assert_eq!(fast.duration_ns, 1149);
        let mut spans = Vec::new();
        let slow = run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), Some(&mut spans));
        assert_eq!(fast, slow);
        // Per GPU: 3 x 300 compute, 3 x 80 TP, 9 PP.
        assert_eq!(fast.gpus[1].compute_ns, 900);
        assert_eq!(fast.gpus[1].comm_ns, [240, 9, 0, 0]);
    }

    #[test]
    fn window_layers_and_the_draft_add_what_each_costs() {
        // 3 layers, one of them windowed: attention 100 + 100 + 40 = 240 ns, booked as
        // 80 per layer; MLP 3 x 200; LM head 50: 890 ns on both paths.
        let shapes = [shape(8)];
        let windowed = [BatchShape { window_tokens: 64, ..shape(8) }];
        let cm = comm(1, 1, 0.0);
        let speeds = [1.0];
        let input = StageInput {
            emitting: &[1],
            dense_layers: 3,
            window_shapes: &windowed,
            window_layers: 1,
            ..base(&shapes, &cm, &speeds)
        };
        let fast = run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), None);
        let mut spans = Vec::new();
        let slow = run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), Some(&mut spans));
        assert_eq!((fast.duration_ns, slow.duration_ns), (890, 890));
        // Two draft tokens: the last stage also runs the 2 x 1,000 ns draft: 2,950 ns
        // without windows (3 x 300 + 50 + 2,000).
        let drafting = [BatchShape { draft_tokens: 2, ..shape(8) }];
        let input = StageInput { emitting: &[1], dense_layers: 3, ..base(&drafting, &cm, &speeds) };
        assert_eq!(run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), None).duration_ns, 2950);
        let mut spans = Vec::new();
        assert_eq!(run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), Some(&mut spans)).duration_ns, 2950);
    }

    #[test]
    fn straggler_makes_partner_wait() {
        // GPU 1 at 80 % speed: attention 125 ns, MLP 250 ns. Per layer GPU 0 waits
        // 25 + 50 = 75 ns before the two all-reduces; 2 layers -> 150 ns of TP wait.
        // Last stage: LM head 50 vs 62.5 -> 63 ns; GPU 0 waits 13 ns more at the end.
        let shapes = [shape(4)];
        let cm = comm(1, 2, 40.0);
        let speeds = [1.0, 0.8];
        let input = StageInput { emitting: &[1], dense_layers: 2, tp: 2, ..base(&shapes, &cm, &speeds) };
        let run = run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), None);
        assert_eq!(run.gpus[0].wait_ns[0], 150 + 13);
        assert_eq!(run.gpus[1].wait_ns[0], 0);
        // Duration: 2 x (125 + 40 + 250 + 40) + 63 = 973 ns; every GPU sums to it.
        assert_eq!(run.duration_ns, 973);
        for g in &run.gpus {
            assert_eq!(g.compute_ns + g.comm_ns.iter().sum::<u64>() + g.wait_ns.iter().sum::<u64>(), 973);
        }
    }

    #[test]
    fn moe_hot_group_makes_other_group_wait() {
        // 2 EP groups of 1 GPU, 2 experts each, top-1, 10 tokens per group, no sampler:
        // 20 choices spread evenly, 5 per expert, so 10 per group: 100 ns of experts
        // each; no waiting. One MoE layer: 100 attn + 30 a2a + 100 experts + 30 a2a.
        let shapes = [shape(10), shape(10)];
        let cm = comm(2, 1, 0.0);
        let speeds = [1.0, 1.0];
        let input = StageInput { moe_layers: 1, experts_per_group: 2, top_k: 1, ..base(&shapes, &cm, &speeds) };
        let mut counts = ExpertLoad::new(4);
        let run = run_stage(&Fixed, &input, None, &mut counts, None);
        assert_eq!(counts.tokens, vec![5, 5, 5, 5]);
        assert_eq!(run.duration_ns, 100 + 30 + 100 + 30 + 50);
        assert_eq!(run.gpus[0].wait_ns, [0, 0, 0, 0]);
        assert_eq!(run.gpus[0].comm_ns[2], 60);
    }

    #[test]
    fn tp_all_reduce_after_experts_carries_tokens_not_choices() {
        // One EP group of 2 GPUs (pure TP), 4 experts, top-2, 10 tokens: 20 choices, 5 per
        // expert, 200 ns of experts. Each token's two expert rows are summed on the GPU
        // before the reduction, so the all-reduce after the experts carries 10 rows
        // (10 bytes at 1 ns per byte = 10 ns), like the one after attention, not 20.
        // One MoE layer: 100 attn + 10 AR + 200 experts + 10 AR, then LM head 50 = 370.
        let shapes = [shape(10)];
        let cm = StageComm {
            tp_allreduce: vec![Affine { fixed_ns: 0.0, per_byte_ns: 1.0 }.into()],
            ep_alltoall: vec![Affine { fixed_ns: 0.0, per_byte_ns: 0.0 }; 2],
            pp_send: Vec::new(),
        };
        let speeds = [1.0, 1.0];
        let input = StageInput {
            emitting: &[1],
            moe_layers: 1,
            tp: 2,
            experts_per_group: 4,
            top_k: 2,
            ..base(&shapes, &cm, &speeds)
        };
        let mut counts = ExpertLoad::new(4);
        let run = run_stage(&Fixed, &input, None, &mut counts, None);
        assert_eq!(counts.tokens, vec![5, 5, 5, 5]);
        assert_eq!(run.duration_ns, 370);
        assert_eq!(run.gpus[0].comm_ns[0], 20);
        assert_eq!(run.gpus[0].comm_bytes[0], 20.0);
        // With EP, a group reduces the rows it received when they are fewer than the
        // batch's tokens (2 of 8 experts each, top-2: about T/2 rows), else the tokens.
        assert_eq!(general::reduced_rows(5, 10), 5);
        assert_eq!(general::reduced_rows(20, 10), 10);
    }

    #[test]
    fn overlap_hides_half_or_more_of_each_collective() {
        // 40 ns all-reduce after 100 ns attention: 20 + max(0, -60)/2 = 20 ns exposed;
        // after 200 ns MLP also 20 ns. A 300 ns collective after 100 ns: 150 + 100 = 250.
        assert_eq!(exposed_with_overlap(40, 100), 20);
        assert_eq!(exposed_with_overlap(300, 100), 250);
        // One dense layer, tp 2: 100 + 20 + 200 + 20 = 340 ns, last stage LM head 50.
        let shapes = [shape(8)];
        let cm = comm(1, 2, 40.0);
        let speeds = [1.0, 1.0];
        let input = StageInput { emitting: &[1], dense_layers: 1, tp: 2, overlap: true, ..base(&shapes, &cm, &speeds) };
        let run = run_stage(&Fixed, &input, None, &mut ExpertLoad::default(), None);
        assert_eq!(run.duration_ns, 390);
        assert_eq!(run.gpus[0].comm_ns[0], 40);
    }

    #[test]
    fn offdiagonal_volume_by_hand() {
        // Two groups with 10 tokens each; group 0's experts get 15 choices, group 1's 5.
        // Group 0 sends half of group 1's 5 = 2.5 and receives half of its own 15 = 7.5.
        let v = general::max_offdiagonal_volume(&[10, 10], &[15, 5], 20);
        assert_eq!(v, 7.5);
    }
}
