//! Reference steps for calibration: one TP group in one node, priced with the ring
//! all-reduce closed form over the preset's NVLink. Used by the calibration tests and
//! `examples/calibration.rs` to hold the cost model against measured step times.

use crate::hardware::spec::GpuPreset;
use crate::model::cost::{BatchShape, CostModel, PrefillChunk};
use crate::model::framework::FrameworkProfile;
use crate::model::iteration::{dense_stage_iteration, ring_closed_form, IterationCost, StagePosition};
use crate::model::spec::ModelSpec;

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
    let link = (gpu.nvlink)();
    let cost = CostModel::new(model, &spec, framework, tp);
    let ring = ring_closed_form(link.latency_us, link.bandwidth_gb_s * 1e9 * link.efficiency);
    let stage = StagePosition { layers: model.layers, first: true, last: true };
    dense_stage_iteration(&cost, framework, &step.shape(), stage, &ring)
}
