//! Reference steps for calibration: one TP group in one node, its collectives priced by
//! the topology's closed forms over the preset's NVLink (the same ones serving runs
//! use). Used by the calibration tests and `examples/calibration.rs` to hold the cost
//! model against measured step times.

use crate::engine::SimTime;
use crate::hardware::spec::GpuPreset;
use crate::hardware::topology::Topology;
use crate::model::cost::{BatchShape, CostModel, PrefillChunk};
use crate::model::framework::FrameworkProfile;
use crate::model::iteration::{dense_stage_iteration, CommKind, CommNeed, IterationCost, StagePosition};
use crate::model::spec::ModelSpec;
use crate::parallel::collective::{closed_form_affine, CollectiveOp};
use crate::scenario::types::AllReduceAlgorithm;

/// A measured step: a whole prompt, or one decode step of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Prefill of one prompt of `tokens` tokens from an empty cache.
    Prefill {
        /// Prompt tokens.
        tokens: u32,
    },
    /// One decode step of `batch` sequences, each with `context` tokens cached.
    Decode {
        /// Sequences.
        batch: u32,
        /// Context per sequence.
        context: u32,
    },
}

impl Step {
    /// The batch this step runs.
    pub fn shape(self) -> BatchShape {
        match self {
            Step::Prefill { tokens } => BatchShape {
                decode_seqs: 0,
                decode_context_sum: 0,
                prefill: vec![PrefillChunk { tokens, context: 0, completes_prompt: true }],
            },
            Step::Decode { batch, context } => {
                BatchShape { decode_seqs: batch, decode_context_sum: batch as u64 * context as u64, prefill: vec![] }
            }
        }
    }
}

/// The cost of `step` for a dense `model` on one node of `gpu` GPUs with TP `tp`
/// and no pipeline (one stage holds every layer).
pub fn single_node_step(
    model: &ModelSpec,
    gpu: &GpuPreset,
    framework: &FrameworkProfile,
    tp: u32,
    step: Step,
) -> IterationCost {
    let spec = (gpu.spec)();
    let cost = CostModel::new(model, &spec, framework, tp);
    let stage = StagePosition { layers: model.layers, first: true, last: true };
    let topo = one_node(gpu);
    dense_stage_iteration(&cost, framework, &step.shape(), stage, &|need| idle_time(&topo, need))
}

/// One node of the preset: 8 GPUs with its NVLink and NICs.
fn one_node(gpu: &GpuPreset) -> Topology {
    // Presets are constants in the source, checked by this module's tests.
    Topology::new(1, 8, &(gpu.nvlink)(), &(gpu.network)()).expect("preset node layouts are valid")
}

/// A collective on idle links over the first `need.ranks` GPUs of `topo`: the closed
/// form's latency plus its bandwidth part slowed by the stack's `need.efficiency`.
pub fn idle_time(topo: &Topology, need: CommNeed) -> SimTime {
    let op = match need.kind {
        CommKind::TpAllReduce => CollectiveOp::AllReduce,
        CommKind::EpAllToAll => CollectiveOp::AllToAll,
        CommKind::PpSendRecv => CollectiveOp::SendRecv,
    };
    let ranks: Vec<u32> = (0..need.ranks.max(2)).collect();
    let ab = closed_form_affine(topo, op, AllReduceAlgorithm::Auto, &ranks);
    SimTime::from_ns_f64(ab.latency_ns + ab.ns_per_byte * need.bytes / need.efficiency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;

    #[test]
    fn idle_collectives_by_hand() {
        // One H100 node: α 2 µs, 450 GB/s x 0.82 = 369 GB/s. 8 ranks, 16,384 B:
        // ring all-reduce 14 * 2 µs + 1.75 * 16,384 / 369e9 s = 28 µs + 77.70 ns = 28,078 ns.
        let topo = one_node(gpu_preset("h100-sxm").unwrap());
        let need = |kind, efficiency| CommNeed { kind, ranks: 8, bytes: 16_384.0, efficiency };
        assert_eq!(idle_time(&topo, need(CommKind::TpAllReduce, 1.0)).as_ns(), 28_078);
        // At efficiency 0.5 the bandwidth term doubles: 28 µs + 155.40 ns = 28,155 ns.
        assert_eq!(idle_time(&topo, need(CommKind::TpAllReduce, 0.5)).as_ns(), 28_155);
        // All-to-all: 7 * 2 µs + 0.875 * 16,384 / 369e9 = 14,038.85 ns.
        let a2a = idle_time(&topo, need(CommKind::EpAllToAll, 1.0)).as_ns();
        assert!((14_038..=14_039).contains(&a2a), "{a2a}");
    }
}
