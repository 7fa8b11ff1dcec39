//! One pipeline stage's iteration of a dense model, composed from the operator costs.
//!
//! Every layer of a dense model costs the same, so one layer is priced and multiplied
//! by the stage's layer count: O(number of prefill chunks) per iteration. Per layer:
//! the attention block, the MLP and two TP all-reduces (Megatron style), the latter
//! priced by a caller-supplied closure so the network's closed forms (or anything
//! else) can be plugged in. The first stage adds the embedding, the last the LM head.
//! The framework's host-side overheads are reported apart from GPU work: scheduling
//! and prefill preparation on the first stage, per-sequence output work on the last.

use crate::engine::SimTime;
use crate::model::cost::{BatchShape, CostModel, OpKind};
use crate::model::framework::FrameworkProfile;

/// Communication families, for per-kind accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommKind {
    /// Tensor-parallel all-reduce of activations.
    TpAllReduce,
    /// Pipeline send/receive between consecutive stages.
    PpSendRecv,
    /// Expert-parallel all-to-all (dispatch or combine).
    EpAllToAll,
}

impl CommKind {
    /// Number of kinds, for arrays indexed by `index()`.
    pub const COUNT: usize = 3;
    /// Position in arrays of `COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A collective or transfer the composer needs priced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CommNeed {
    /// Which kind.
    pub kind: CommKind,
    /// Ranks taking part.
    pub ranks: u32,
    /// Message size S in bytes (the all-reduce buffer, or the bytes sent).
    pub bytes: f64,
    /// Fraction of the link's sustained bandwidth the software stack reaches
    /// (`FrameworkProfile::collective_efficiency`): a pricing closure divides the
    /// bandwidth term by it; 1 leaves the hardware's figure.
    pub efficiency: f64,
}

/// Which slice of the pipeline a stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagePosition {
    /// Layers this stage runs.
    pub layers: u32,
    /// First stage: runs the embedding and the host-side scheduling.
    pub first: bool,
    /// Last stage: runs the LM head and the per-sequence output work.
    pub last: bool,
}

/// Time and work of one stage's iteration, by kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IterationCost {
    /// Wall time: compute + exposed communication + host overhead.
    pub time: SimTime,
    /// GPU compute time per `OpKind::index()`.
    pub compute: [SimTime; OpKind::COUNT],
    /// Exposed communication time per `CommKind::index()`.
    pub comm: [SimTime; CommKind::COUNT],
    /// Host-side framework time (the GPU is idle meanwhile).
    pub host_overhead: SimTime,
    /// FLOPs done on one GPU of the stage.
    pub flops: f64,
    /// HBM bytes moved on one GPU of the stage.
    pub hbm_bytes: f64,
    /// The activations this stage sends on, if it is not the last (for the caller to schedule).
    pub pp_send: Option<CommNeed>,
}

impl IterationCost {
    /// Total GPU compute time.
    pub fn compute_total(&self) -> SimTime {
        self.compute.iter().fold(SimTime::ZERO, |a, &b| a + b)
    }
    /// Total exposed communication time.
    pub fn comm_total(&self) -> SimTime {
        self.comm.iter().fold(SimTime::ZERO, |a, &b| a + b)
    }
}

fn times(t: SimTime, n: u32) -> SimTime {
    SimTime::from_ns(t.as_ns().saturating_mul(n as u64))
}

fn us(x: f64) -> SimTime {
    SimTime::from_ns_f64(x * 1e3)
}

/// One stage's iteration of a dense model over `shape`, on the TP group `cost` was built for.
/// `comm` prices each collective (called once per distinct need, not per layer);
/// each TP all-reduce also pays the framework's per-kernel launch cost and its extra
/// latency per ring step; PP sends are returned in `pp_send` for the caller to schedule.
pub fn dense_stage_iteration(
    cost: &CostModel,
    framework: &FrameworkProfile,
    shape: &BatchShape,
    stage: StagePosition,
    comm: &dyn Fn(CommNeed) -> SimTime,
) -> IterationCost {
    let mut it = IterationCost::default();
    let tp = cost.tp();
    let tokens = shape.tokens();
    let mut layer_ops = cost.attention_block(shape);
    layer_ops.push(cost.dense_mlp(tokens));
    for op in &layer_ops {
        it.compute[op.kind.index()] += times(op.time, stage.layers);
        it.flops += op.flops * stage.layers as f64;
        it.hbm_bytes += op.bytes * stage.layers as f64;
    }
    if tp > 1 && tokens > 0 {
        let need = CommNeed {
            kind: CommKind::TpAllReduce,
            ranks: tp,
            bytes: cost.tp_allreduce_bytes(tokens),
            efficiency: framework.collective_efficiency,
        };
        // The stack's own cost: one launch, plus its extra latency on each of the
        // 2(n-1) steps of a ring all-reduce.
        let steps = 2.0 * (tp - 1) as f64;
        let one = comm(need) + SimTime::from_ns_f64(framework.collective_extra_ns(steps));
        it.comm[CommKind::TpAllReduce.index()] = times(one, 2 * stage.layers);
    }
    let mut edge_ops = Vec::with_capacity(2);
    if stage.first {
        edge_ops.push(cost.embedding(tokens));
        it.host_overhead +=
            us(framework.iteration_overhead_us) + us(framework.prefill_overhead_us * shape.prefill.len() as f64);
    }
    if stage.last {
        let emitting = shape.emitting_seqs();
        if emitting > 0 {
            edge_ops.push(cost.lm_head(emitting));
        }
        it.host_overhead += us(framework.per_seq_overhead_us * shape.seqs() as f64);
    } else {
        it.pp_send = Some(CommNeed {
            kind: CommKind::PpSendRecv,
            ranks: 2,
            bytes: cost.pp_transfer_bytes(tokens),
            efficiency: framework.collective_efficiency,
        });
    }
    for op in &edge_ops {
        it.compute[op.kind.index()] += op.time;
        it.flops += op.flops;
        it.hbm_bytes += op.bytes;
    }
    it.time = it.compute_total() + it.comm_total() + it.host_overhead;
    it
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;
    use crate::model::cost::PrefillChunk;
    use crate::model::framework::framework_profile;
    use crate::model::spec::model_preset;

    fn setup(fw: &str, tp: u32) -> (CostModel, FrameworkProfile) {
        let m = (model_preset("llama-2-70b").unwrap().spec)();
        let g = (gpu_preset("h100-sxm").unwrap().spec)();
        let f = framework_profile(fw).unwrap();
        (CostModel::new(&m, &g, &f, tp), f)
    }
    fn decode(seqs: u32) -> BatchShape {
        BatchShape { decode_seqs: seqs, decode_context_sum: seqs as u64 * 1000, prefill: vec![] }
    }
    const WHOLE: StagePosition = StagePosition { layers: 80, first: true, last: true };

    #[test]
    fn two_allreduces_per_layer_priced_by_the_closure() {
        // Closure says 10 µs; optimized adds no per-collective cost: 2 * 80 * 10 µs = 1.6 ms.
        let (c, f) = setup("optimized", 8);
        let it = dense_stage_iteration(&c, &f, &decode(4), WHOLE, &|n: CommNeed| {
            assert_eq!((n.kind, n.ranks, n.bytes, n.efficiency), (CommKind::TpAllReduce, 8, 4.0 * 8192.0 * 2.0, 1.0));
            SimTime::from_us(10)
        });
        assert_eq!(it.comm[CommKind::TpAllReduce.index()], SimTime::from_us(1600));
        // vllm-2023 adds 5 µs to each of the 14 ring steps: 2 * 80 * (10 + 70) µs = 12.8 ms,
        // and asks for its 0.33 bandwidth efficiency.
        let (c, f) = setup("vllm-2023", 8);
        let it = dense_stage_iteration(&c, &f, &decode(4), WHOLE, &|n: CommNeed| {
            assert_eq!(n.efficiency, 0.33);
            SimTime::from_us(10)
        });
        assert_eq!(it.comm_total(), SimTime::from_us(12_800));
    }

    #[test]
    fn no_tp_no_collectives_and_parts_add_up() {
        let (c, f) = setup("optimized", 1);
        let it = dense_stage_iteration(&c, &f, &decode(4), WHOLE, &|_| panic!("no collective at tp 1"));
        assert_eq!(it.comm_total(), SimTime::ZERO);
        assert_eq!(it.time, it.compute_total() + it.host_overhead);
        // Host: 100 µs per iteration + 5 µs x 4 sequences.
        assert_eq!(it.host_overhead, SimTime::from_us(120));
        assert!(it.compute[OpKind::LmHead.index()] > SimTime::ZERO);
        assert!(it.pp_send.is_none());
    }

    #[test]
    fn middle_stage_has_no_head_no_embedding_and_sends_on() {
        let (c, f) = setup("optimized", 8);
        let mid = StagePosition { layers: 20, first: false, last: false };
        let it = dense_stage_iteration(&c, &f, &decode(4), mid, &|_| SimTime::ZERO);
        assert_eq!(it.compute[OpKind::LmHead.index()], SimTime::ZERO);
        assert_eq!(it.host_overhead, SimTime::ZERO);
        let send = it.pp_send.unwrap();
        assert_eq!((send.kind, send.bytes), (CommKind::PpSendRecv, 4.0 * 8192.0 * 2.0));
        // A quarter of the layers: a quarter of a whole-model stage's layer compute.
        let all = dense_stage_iteration(&c, &f, &decode(4), WHOLE, &|_| SimTime::ZERO);
        assert_eq!(it.compute[OpKind::Mlp.index()].as_ns() * 4, all.compute[OpKind::Mlp.index()].as_ns());
    }

    #[test]
    fn lm_head_runs_only_for_emitting_sequences() {
        // A prefill chunk that does not finish its prompt emits nothing: no LM head.
        let (c, f) = setup("optimized", 8);
        let s = BatchShape {
            prefill: vec![PrefillChunk { tokens: 512, context: 0, completes_prompt: false }],
            ..Default::default()
        };
        let it = dense_stage_iteration(&c, &f, &s, WHOLE, &|_| SimTime::ZERO);
        assert_eq!(it.compute[OpKind::LmHead.index()], SimTime::ZERO);
    }

    #[test]
    fn hbm_time_never_beats_the_bandwidth() {
        // Physical limit: one GPU's iteration cannot move its bytes faster than 3.35 TB/s
        // or do its FLOPs faster than 989 TFLOP/s.
        for fw in ["optimized", "vllm-2023"] {
            let (c, f) = setup(fw, 8);
            for seqs in [1, 32, 256] {
                let it = dense_stage_iteration(&c, &f, &decode(seqs), WHOLE, &|_| SimTime::ZERO);
                let secs = it.compute_total().as_secs_f64();
                assert!(it.hbm_bytes / secs <= 3.35e12 && it.flops / secs <= 989e12, "{fw} {seqs}");
            }
        }
    }
}
