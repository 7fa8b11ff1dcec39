//! One pipeline stage running one batch: per-GPU compute, communication and waits.
//!
//! A stage has `ep` groups of `tp` GPUs. Layer by layer, each GPU computes its share
//! (slowed by its speed factor), then meets its partners in a collective: the
//! collective starts when the last partner arrives, the others wait, and all leave
//! together after the transfer. That is where synchronization wait comes from: a
//! straggler, or an EP group holding the hot experts, makes its partners wait.
//!
//! When nothing differs between GPUs (one EP group, equal speeds, a dense model)
//! every layer is identical and waits are zero, so one layer is priced and multiplied
//! by the layer count: the same result as the loop, in O(1).

use super::experts::ExpertSampler;
use crate::metrics::recorder::Activity;
use crate::model::cost::BatchShape;
use crate::parallel::ledger::{CommKind, GpuState, GpuTotals};
use crate::parallel::price::{Affine, Price};

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
    /// LM head for `seqs` sequences producing a token.
    fn lm_head(&self, seqs: u32) -> Work;
    /// Embedding lookup for `tokens` tokens (first stage).
    fn embedding(&self, tokens: u32) -> Work;
    /// TP all-reduce payload for `tokens` tokens, bytes.
    fn tp_bytes(&self, tokens: u32) -> f64;
    /// Activation bytes per token crossing a stage boundary (whole, before TP split).
    fn pp_bytes(&self, tokens: u32) -> f64;
    /// Bytes per token per expert choice in an all-to-all.
    fn ep_bytes_per_choice(&self) -> f64;
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
    /// Sequences producing a token, per EP group.
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

fn kind_index(k: CommKind) -> usize {
    match k {
        CommKind::Tp => 0,
        CommKind::Pp => 1,
        CommKind::Ep => 2,
        CommKind::Dp => 3,
    }
}

/// Per-GPU clocks while a stage run is worked out.
struct Clocks<'s> {
    t: Vec<u64>,
    work: Vec<GpuTotals>,
    last_compute: Vec<u64>,
    overlap: bool,
    spans: Option<&'s mut Vec<LocalSpan>>,
}

/// Exposed part of a collective of `comm` ns after `compute` ns of work, when both are
/// split into two chunks so chunk 1's transfer runs under chunk 2's computation:
/// compute c/2, then max(c/2, m/2), then m/2 - so m/2 + max(0, (m - c)/2) stays exposed.
pub fn exposed_with_overlap(comm: u64, compute: u64) -> u64 {
    comm / 2 + comm.saturating_sub(compute) / 2
}

impl Clocks<'_> {
    fn compute(&mut self, g: usize, w: Work, speed: f64, what: Activity) {
        let ns = (w.ns / speed).round() as u64;
        if let Some(s) = self.spans.as_deref_mut() {
            if ns > 0 {
                s.push(LocalSpan {
                    local_gpu: g as u32,
                    start_ns: self.t[g],
                    end_ns: self.t[g] + ns,
                    state: GpuState::Compute,
                    what,
                    flops: w.flops,
                    bytes: 0.0,
                });
            }
        }
        self.t[g] += ns;
        self.work[g].compute_ns += ns;
        self.work[g].flops += w.flops;
        self.last_compute[g] = ns;
    }

    /// A collective among `members`: starts at the latest arrival, takes `ns`.
    fn collective(&mut self, members: &[usize], ns: u64, bytes: f64, what: Activity) {
        let kind = what.comm_kind().unwrap_or(CommKind::Tp);
        let k = kind_index(kind);
        let start = members.iter().map(|&g| self.t[g]).max().unwrap_or(0);
        let ns = if self.overlap {
            let before = members.iter().map(|&g| self.last_compute[g]).min().unwrap_or(0);
            exposed_with_overlap(ns, before)
        } else {
            ns
        };
        for &g in members {
            let wait = start - self.t[g];
            if let Some(s) = self.spans.as_deref_mut() {
                if wait > 0 {
                    s.push(LocalSpan {
                        local_gpu: g as u32,
                        start_ns: self.t[g],
                        end_ns: start,
                        state: GpuState::Wait,
                        what,
                        flops: 0.0,
                        bytes: 0.0,
                    });
                }
                if ns > 0 {
                    s.push(LocalSpan {
                        local_gpu: g as u32,
                        start_ns: start,
                        end_ns: start + ns,
                        state: GpuState::Communicate,
                        what,
                        flops: 0.0,
                        bytes,
                    });
                }
            }
            self.work[g].wait_ns[k] += wait;
            self.work[g].comm_ns[k] += ns;
            self.t[g] = start + ns;
        }
    }
}

/// Works out one stage run. `expert_counts` receives per-expert tokens (summed over
/// layers) when the model is MoE; `spans`, when given, receives the timeline.
pub fn run_stage(
    costs: &dyn StageCosts,
    input: &StageInput,
    sampler: Option<&mut ExpertSampler>,
    expert_counts: &mut [u64],
    spans: Option<&mut Vec<LocalSpan>>,
) -> StageRun {
    let groups = input.shapes.len();
    let tp = input.tp as usize;
    let n = groups * tp;
    let uniform = input.speeds.iter().all(|s| *s == input.speeds[0]);
    if input.moe_layers == 0 && groups == 1 && uniform && spans.is_none() && !input.overlap {
        return dense_fast_path(costs, input);
    }
    let tokens: Vec<u32> = input.shapes.iter().map(shape_tokens).collect();
    let total_tokens: u32 = tokens.iter().sum();
    let attn: Vec<Work> = input.shapes.iter().map(|s| costs.attention(s)).collect();
    let mlp: Vec<Work> = tokens.iter().map(|t| costs.mlp(*t)).collect();
    let mut c = Clocks {
        t: vec![0; n],
        work: vec![GpuTotals::default(); n],
        last_compute: vec![0; n],
        overlap: input.overlap,
        spans,
    };
    let tp_groups: Vec<Vec<usize>> = (0..groups).map(|e| (e * tp..(e + 1) * tp).collect()).collect();
    let ep_groups: Vec<Vec<usize>> = (0..tp).map(|r| (0..groups).map(|e| e * tp + r).collect()).collect();
    let tp_ns = |e: usize, bytes: f64| if tp > 1 { input.comm.tp_allreduce[e].ns(bytes) } else { 0 };

    if input.first {
        for e in 0..groups {
            let w = costs.embedding(tokens[e]);
            for &g in &tp_groups[e] {
                c.compute(g, w, input.speeds[g], Activity::Attention);
            }
        }
    }

    let attention_and_sync = |c: &mut Clocks| {
        for e in 0..groups {
            for &g in &tp_groups[e] {
                c.compute(g, attn[e], input.speeds[g], Activity::Attention);
            }
            if tp > 1 {
                let bytes = costs.tp_bytes(tokens[e]);
                c.collective(&tp_groups[e], tp_ns(e, bytes), bytes, Activity::TpAllReduce);
            }
        }
    };

    for _ in 0..input.dense_layers {
        attention_and_sync(&mut c);
        for e in 0..groups {
            for &g in &tp_groups[e] {
                c.compute(g, mlp[e], input.speeds[g], Activity::Mlp);
            }
            if tp > 1 {
                let bytes = costs.tp_bytes(tokens[e]);
                c.collective(&tp_groups[e], tp_ns(e, bytes), bytes, Activity::TpAllReduce);
            }
        }
    }

    if input.moe_layers > 0 {
        let experts = input.experts_per_group as usize * groups;
        let mut counts = vec![0u32; experts];
        let mut sampler = sampler;
        let per_choice = costs.ep_bytes_per_choice();
        for _ in 0..input.moe_layers {
            attention_and_sync(&mut c);
            let choices = total_tokens as u64 * input.top_k as u64;
            match sampler.as_deref_mut() {
                Some(s) => s.draw(choices, &mut counts),
                None => spread_evenly(choices, &mut counts),
            }
            for (x, k) in counts.iter().enumerate() {
                expert_counts[x] += *k as u64;
            }
            // Choices landing on each group; sent from group i in proportion to its tokens.
            let per_group: Vec<u64> = (0..groups)
                .map(|e| {
                    let lo = e * input.experts_per_group as usize;
                    counts[lo..lo + input.experts_per_group as usize].iter().map(|k| *k as u64).sum()
                })
                .collect();
            let a2a_bytes = if groups > 1 {
                max_offdiagonal_volume(&tokens, &per_group, total_tokens) * per_choice / tp as f64
            } else {
                0.0
            };
            if groups > 1 {
                for (r, members) in ep_groups.iter().enumerate() {
                    c.collective(members, input.comm.ep_alltoall[r].ns(a2a_bytes), a2a_bytes, Activity::EpAllToAll);
                }
            }
            for e in 0..groups {
                let lo = e * input.experts_per_group as usize;
                let local = &counts[lo..lo + input.experts_per_group as usize];
                let w = costs.moe(tokens[e], local);
                for &g in &tp_groups[e] {
                    c.compute(g, w, input.speeds[g], Activity::Experts);
                }
                if tp > 1 {
                    let received = per_group[e].min(u32::MAX as u64) as u32;
                    let bytes = costs.tp_bytes(received);
                    c.collective(&tp_groups[e], tp_ns(e, bytes), bytes, Activity::TpAllReduce);
                }
            }
            if groups > 1 {
                for (r, members) in ep_groups.iter().enumerate() {
                    c.collective(members, input.comm.ep_alltoall[r].ns(a2a_bytes), a2a_bytes, Activity::EpAllToAll);
                }
            }
        }
    }

    if input.last {
        for (e, members) in tp_groups.iter().enumerate() {
            let w = costs.lm_head(input.emitting[e]);
            for &g in members {
                c.compute(g, w, input.speeds[g], Activity::LmHead);
            }
        }
    } else {
        for e in 0..groups {
            // Each TP rank sends its 1/tp slice of the group's activations to its peer.
            let bytes = costs.pp_bytes(tokens[e]) / tp as f64;
            for &g in &tp_groups[e] {
                let ns = input.comm.pp_send[g].ns(bytes);
                c.collective(&[g], ns, bytes, Activity::PpSendRecv);
            }
        }
    }

    // GPUs done early wait for the slowest before the stage's next run.
    let end = c.t.iter().copied().max().unwrap_or(0);
    let all: Vec<usize> = (0..n).collect();
    let tail_kind = if groups > 1 { Activity::EpAllToAll } else { Activity::TpAllReduce };
    c.collective(&all, 0, 0.0, tail_kind);
    StageRun { duration_ns: end, gpus: c.work }
}

fn dense_fast_path(costs: &dyn StageCosts, input: &StageInput) -> StageRun {
    let shape = &input.shapes[0];
    let tokens = shape_tokens(shape);
    let speed = input.speeds[0];
    let scale = |w: Work| ((w.ns / speed).round() as u64, w.flops);
    let (attn_ns, attn_flops) = scale(costs.attention(shape));
    let (mlp_ns, mlp_flops) = scale(costs.mlp(tokens));
    let tp = input.tp as usize;
    let ar_ns = if tp > 1 { input.comm.tp_allreduce[0].ns(costs.tp_bytes(tokens)) } else { 0 };
    let layers = input.dense_layers as u64;
    let mut compute_ns = layers * (attn_ns + mlp_ns);
    let mut flops = layers as f64 * (attn_flops + mlp_flops);
    if input.first {
        let (ns, f) = scale(costs.embedding(tokens));
        compute_ns += ns;
        flops += f;
    }
    let tp_comm = layers * 2 * ar_ns;
    let mut gpus = vec![GpuTotals::default(); tp];
    let mut pp_ns = vec![0u64; tp];
    if input.last {
        let (ns, f) = scale(costs.lm_head(input.emitting[0]));
        compute_ns += ns;
        flops += f;
    } else {
        let bytes = costs.pp_bytes(tokens) / tp as f64;
        for (g, p) in pp_ns.iter_mut().enumerate() {
            *p = input.comm.pp_send[g].ns(bytes);
        }
    }
    let longest_pp = pp_ns.iter().copied().max().unwrap_or(0);
    for (g, w) in gpus.iter_mut().enumerate() {
        w.compute_ns = compute_ns;
        w.flops = flops;
        w.comm_ns[0] = tp_comm;
        w.comm_ns[1] = pp_ns[g];
        w.wait_ns[0] = longest_pp - pp_ns[g];
    }
    StageRun { duration_ns: compute_ns + tp_comm + longest_pp, gpus }
}

/// Tokens of a shape: decodes plus prompt-chunk tokens.
pub fn shape_tokens(s: &BatchShape) -> u32 {
    s.decode_seqs + s.prefill.iter().map(|c| c.tokens).sum::<u32>()
}

fn spread_evenly(choices: u64, counts: &mut [u32]) {
    let n = counts.len() as u64;
    for (x, c) in counts.iter_mut().enumerate() {
        *c = (choices / n + u64::from((x as u64) < choices % n)) as u32;
    }
}

/// The largest number of choices one group sends to or receives from other groups,
/// when group i holds tokens[i] of the batch's tokens and group j's experts receive
/// per_group[j] choices, each group's choices spread in proportion to its tokens.
fn max_offdiagonal_volume(tokens: &[u32], per_group: &[u64], total_tokens: u32) -> f64 {
    if total_tokens == 0 {
        return 0.0;
    }
    let total_choices: f64 = per_group.iter().map(|c| *c as f64).sum();
    let mut worst: f64 = 0.0;
    for (i, t) in tokens.iter().enumerate() {
        let share = *t as f64 / total_tokens as f64;
        // Sent: my choices landing elsewhere; received: others' choices landing on me.
        let sent = share * (total_choices - per_group[i] as f64);
        let received = (1.0 - share) * per_group[i] as f64;
        worst = worst.max(sent).max(received);
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::PrefillChunk;

    /// Hand-set costs: attention 100 ns, MLP 200 ns, experts 10 ns per token routed,
    /// LM head 50 ns; 1 byte per token everywhere.
    struct Fixed;
    impl StageCosts for Fixed {
        fn attention(&self, _: &BatchShape) -> Work {
            Work { ns: 100.0, flops: 1.0 }
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
        BatchShape {
            decode_seqs: 0,
            decode_context_sum: 0,
            prefill: vec![PrefillChunk { tokens, context: 0, completes_prompt: true }],
        }
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
        let fast = run_stage(&Fixed, &input, None, &mut [], None);
        assert_eq!(fast.duration_ns, 1149);
        let mut spans = Vec::new();
        let slow = run_stage(&Fixed, &input, None, &mut [], Some(&mut spans));
        assert_eq!(fast, slow);
        // Per GPU: 3 x 300 compute, 3 x 80 TP, 9 PP.
        assert_eq!(fast.gpus[1].compute_ns, 900);
        assert_eq!(fast.gpus[1].comm_ns, [240, 9, 0, 0]);
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
        let run = run_stage(&Fixed, &input, None, &mut [], None);
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
        let mut counts = vec![0u64; 4];
        let run = run_stage(&Fixed, &input, None, &mut counts, None);
        assert_eq!(counts, vec![5, 5, 5, 5]);
        assert_eq!(run.duration_ns, 100 + 30 + 100 + 30 + 50);
        assert_eq!(run.gpus[0].wait_ns, [0, 0, 0, 0]);
        assert_eq!(run.gpus[0].comm_ns[2], 60);
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
        let run = run_stage(&Fixed, &input, None, &mut [], None);
        assert_eq!(run.duration_ns, 390);
        assert_eq!(run.gpus[0].comm_ns[0], 40);
    }

    #[test]
    fn offdiagonal_volume_by_hand() {
        // Two groups with 10 tokens each; group 0's experts get 15 choices, group 1's 5.
        // Group 0 sends half of group 1's 5 = 2.5 and receives half of its own 15 = 7.5.
        let v = max_offdiagonal_volume(&[10, 10], &[15, 5], 20);
        assert_eq!(v, 7.5);
    }
}
