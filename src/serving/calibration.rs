//! Reference steps for calibration: one prefill or one decode step of a dense model on
//! one TP group in one node, priced through the same stage pricer ([`run_stage`]),
//! collective prices ([`Pricer`]) and host costs a serving run uses. The calibration
//! tests and `examples/calibration.rs` hold these against measured step times.

use super::assemble::ModelCosts;
use super::pricing::Pricer;
use super::stage::{run_stage, StageInput};
use crate::engine::SimTime;
use crate::error::Result;
use crate::hardware::spec::GpuPreset;
use crate::hardware::topology::Topology;
use crate::model::cost::{BatchShape, CostModel, PrefillChunk};
use crate::model::framework::FrameworkProfile;
use crate::model::spec::ModelSpec;
use crate::parallel::collective::AllReduceAlgorithm;
use crate::parallel::ledger::CommKind;
use crate::parallel::plan::Plan;

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
                prefill: vec![PrefillChunk { tokens, context: 0, completes_prompt: true }],
                ..Default::default()
            },
            Step::Decode { batch, context } => BatchShape {
                decode_seqs: batch,
                decode_context_sum: batch as u64 * context as u64,
                ..Default::default()
            },
        }
    }
}

/// What one step costs, as a serving run would book it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepCost {
    /// Wall time: host before + the stage run + host after.
    pub time: SimTime,
    /// GPU compute time of one GPU of the group.
    pub compute: SimTime,
    /// Exposed TP communication of one GPU of the group.
    pub comm: SimTime,
    /// Host-side framework time (the GPUs are idle meanwhile).
    pub host: SimTime,
}

/// The cost of `step` for a dense `model` on one node of the `gpu` preset with TP `tp`
/// and no pipeline (one stage holds every layer).
pub fn single_node_step(
    model: &ModelSpec,
    gpu: &GpuPreset,
    framework: &FrameworkProfile,
    tp: u32,
    step: Step,
) -> Result<StepCost> {
    let node = Topology::new(1, 8, &(gpu.nvlink)(), &(gpu.network)())?;
    // The stack profiles were fitted with ring all-reduces (Splitwise's 2023 vLLM).
    let pricer = Pricer::on(node, AllReduceAlgorithm::Ring, framework.clone(), 0.0);
    let plan = Plan { dp: 1, pp: 1, ep: 1, tp, gpus_per_node: 8, layers: model.layers };
    let comm = pricer.stage_comm(&plan, 0, 0);
    let costs = ModelCosts::new(CostModel::new(model, &(gpu.spec)(), framework, tp));
    let shape = step.shape();
    let speeds = vec![1.0; tp as usize];
    let input = StageInput {
        shapes: std::slice::from_ref(&shape),
        window_shapes: &[],
        window_layers: 0,
        emitting: &[shape.emitting_seqs()],
        dense_layers: model.layers,
        moe_layers: 0,
        tp,
        experts_per_group: 0,
        top_k: model.top_k,
        first: true,
        last: true,
        speeds: &speeds,
        comm: &comm,
        overlap: false,
    };
    let run = run_stage(&costs, &input, None, &mut crate::metrics::experts::ExpertLoad::default(), None);
    let host = framework.host_before(shape.prefill.len()) + framework.host_after(shape.seqs() as usize);
    let gpu0 = &run.gpus[0];
    Ok(StepCost {
        time: host + SimTime(run.duration_ns),
        compute: SimTime(gpu0.compute_ns),
        comm: SimTime(gpu0.comm(CommKind::Tp)),
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;
    use crate::model::framework::framework_profile;
    use crate::model::spec::model_preset;

    fn llama70() -> ModelSpec {
        (model_preset("llama-2-70b").expect("preset").spec)()
    }

    #[test]
    fn decode_step_parts_by_hand() {
        // Llama-2-70B TP8 on H100, decode of 4 sequences, optimized stack:
        // 160 all-reduces of 4 x 8192 x 2 B = 65,536 B each; ring on one node:
        // 14 x 2 µs + 1.75 x 65,536 / 369e9 s = 28,000 + 310.81 -> 28,311 ns.
        // Host: 100 µs + 5 µs x 4 = 120 µs; the parts add up to the time.
        let h100 = gpu_preset("h100-sxm").expect("preset");
        let fw = framework_profile("optimized").expect("profile");
        let step = Step::Decode { batch: 4, context: 1000 };
        let c = single_node_step(&llama70(), h100, &fw, 8, step).expect("prices");
        assert_eq!(c.comm.as_ns(), 160 * 28_311);
        assert_eq!(c.host, SimTime::from_us(120));
        assert_eq!(c.time, c.compute + c.comm + c.host);
    }

    #[test]
    fn vllm_2023_pays_per_ring_step_and_bandwidth_share() {
        // vllm-2023: 7.188 µs extra on each of the 14 ring steps (100.632 µs) and 0.33 of
        // the bandwidth: 28,000 + 100,632 + 310.81 / 0.33 = 129,573.8 -> 129,574 ns per
        // all-reduce.
        let h100 = gpu_preset("h100-sxm").expect("preset");
        let fw = framework_profile("vllm-2023").expect("profile");
        let step = Step::Decode { batch: 4, context: 1000 };
        let c = single_node_step(&llama70(), h100, &fw, 8, step).expect("prices");
        assert_eq!(c.comm.as_ns(), 160 * 129_574);
        // Host: 531.3 µs + 200 µs x 4 = 1,331.3 µs.
        assert_eq!(c.host.as_ns(), 1_331_300);
    }

    #[test]
    fn no_collectives_at_tp1() {
        let h100 = gpu_preset("h100-sxm").expect("preset");
        let fw = framework_profile("optimized").expect("profile");
        let m = (model_preset("llama-3-8b").expect("preset").spec)();
        let c = single_node_step(&m, h100, &fw, 1, Step::Prefill { tokens: 512 }).expect("prices");
        assert_eq!(c.comm, SimTime::ZERO);
        // Host: 100 µs + 20 µs for the one prompt chunk + 5 µs for its sequence.
        assert_eq!(c.host, SimTime::from_us(125));
    }
}
