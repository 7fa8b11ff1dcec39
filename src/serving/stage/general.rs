//! The general stage path: every GPU's clock advanced operator by operator and
//! collective by collective, so stragglers, skewed expert loads and uneven EP groups
//! show up as synchronization wait exactly where they happen.

use super::clocks::Clocks;
use super::{layer_attention, shape_tokens, LocalSpan, StageCosts, StageInput, StageRun, Work};
use crate::metrics::experts::ExpertLoad;
use crate::metrics::recorder::Activity;
use crate::serving::experts::ExpertSampler;

/// The stage's GPUs as `ep` groups of `tp` (local indices `e * tp + t`), with the
/// per-group work that is the same in every layer.
struct Layout {
    tp: usize,
    tp_groups: Vec<Vec<usize>>,
    ep_groups: Vec<Vec<usize>>,
    tokens: Vec<u32>,
    attn: Vec<Work>,
    mlp: Vec<Work>,
}

impl Layout {
    fn new(costs: &dyn StageCosts, input: &StageInput) -> Self {
        let groups = input.shapes.len();
        let tp = input.tp as usize;
        let tokens: Vec<u32> = input.shapes.iter().map(shape_tokens).collect();
        Layout {
            tp,
            tp_groups: (0..groups).map(|e| (e * tp..(e + 1) * tp).collect()).collect(),
            ep_groups: (0..tp).map(|r| (0..groups).map(|e| e * tp + r).collect()).collect(),
            attn: (0..groups).map(|e| layer_attention(costs, input, e)).collect(),
            mlp: tokens.iter().map(|t| costs.mlp(*t)).collect(),
            tokens,
        }
    }
    fn groups(&self) -> usize {
        self.tp_groups.len()
    }
}

/// Works out one stage run operator by operator (see [`super::run_stage`]).
pub fn run_stage_general(
    costs: &dyn StageCosts,
    input: &StageInput,
    sampler: Option<&mut ExpertSampler>,
    expert_load: &mut ExpertLoad,
    spans: Option<&mut Vec<LocalSpan>>,
) -> StageRun {
    let l = Layout::new(costs, input);
    let n = l.groups() * l.tp;
    let mut c = Clocks::new(n, input.overlap, spans);
    if input.first {
        for e in 0..l.groups() {
            group_compute(&mut c, &l, input, e, costs.embedding(l.tokens[e]), Activity::Attention);
        }
    }
    for _ in 0..input.dense_layers {
        attention_and_sync(&mut c, &l, costs, input);
        for e in 0..l.groups() {
            group_compute(&mut c, &l, input, e, l.mlp[e], Activity::Mlp);
            tp_all_reduce(&mut c, &l, costs, input, e, l.tokens[e]);
        }
    }
    if input.moe_layers > 0 {
        moe_layers(&mut c, &l, costs, input, sampler, expert_load);
    }
    finish(&mut c, &l, costs, input);
    // GPUs done early wait for the slowest before the stage's next run.
    let end = c.t.iter().copied().max().unwrap_or(0);
    let all: Vec<usize> = (0..n).collect();
    let tail_kind = if l.groups() > 1 { Activity::EpAllToAll } else { Activity::TpAllReduce };
    c.collective(&all, 0, 0.0, tail_kind);
    StageRun { duration_ns: end, gpus: c.work }
}

fn group_compute(c: &mut Clocks, l: &Layout, input: &StageInput, e: usize, w: Work, what: Activity) {
    for &g in &l.tp_groups[e] {
        c.compute(g, w, input.speeds[g], what);
    }
}

fn tp_all_reduce(c: &mut Clocks, l: &Layout, costs: &dyn StageCosts, input: &StageInput, e: usize, tokens: u32) {
    if l.tp > 1 {
        let bytes = costs.tp_bytes(tokens);
        c.collective(&l.tp_groups[e], input.comm.tp_allreduce[e].ns(bytes), bytes, Activity::TpAllReduce);
    }
}

fn attention_and_sync(c: &mut Clocks, l: &Layout, costs: &dyn StageCosts, input: &StageInput) {
    for e in 0..l.groups() {
        group_compute(c, l, input, e, l.attn[e], Activity::Attention);
        tp_all_reduce(c, l, costs, input, e, l.tokens[e]);
    }
}

fn moe_layers(
    c: &mut Clocks,
    l: &Layout,
    costs: &dyn StageCosts,
    input: &StageInput,
    mut sampler: Option<&mut ExpertSampler>,
    expert_load: &mut ExpertLoad,
) {
    let groups = l.groups();
    let per_group_experts = input.experts_per_group as usize;
    let total_tokens: u32 = l.tokens.iter().sum();
    let mut counts = vec![0u32; per_group_experts * groups];
    for _ in 0..input.moe_layers {
        attention_and_sync(c, l, costs, input);
        let choices = total_tokens as u64 * input.top_k as u64;
        match sampler.as_deref_mut() {
            Some(s) => s.draw(total_tokens as u64, input.top_k, &mut counts),
            None => spread_evenly(choices, &mut counts),
        }
        expert_load.record(&counts);
        // Choices landing on each group; sent from group i in proportion to its tokens.
        let per_group: Vec<u64> =
            counts.chunks(per_group_experts.max(1)).map(|g| g.iter().map(|k| *k as u64).sum()).collect();
        // Each TP rank moves its 1/tp slice of every row it sends.
        let volume = if groups > 1 { max_offdiagonal_volume(&l.tokens, &per_group, total_tokens) } else { 0.0 };
        let tp = l.tp as f64;
        all_to_all(c, l, input, volume * costs.ep_bytes_per_choice() / tp);
        for e in 0..groups {
            let local = &counts[e * per_group_experts..(e + 1) * per_group_experts];
            group_compute(c, l, input, e, costs.moe(l.tokens[e], local), Activity::Experts);
            let rows = reduced_rows(per_group[e], total_tokens);
            tp_all_reduce(c, l, costs, input, e, rows);
        }
        all_to_all(c, l, input, volume * costs.ep_combine_bytes_per_choice() / tp);
    }
}

fn all_to_all(c: &mut Clocks, l: &Layout, input: &StageInput, bytes: f64) {
    if l.groups() > 1 {
        for (r, members) in l.ep_groups.iter().enumerate() {
            c.collective(members, input.comm.ep_alltoall[r].ns(bytes), bytes, Activity::EpAllToAll);
        }
    }
}

/// The last stage runs the LM head (and the speculative draft, booked with it); the
/// others send their activations on, each TP rank its 1/tp slice to its peer in the
/// next stage.
fn finish(c: &mut Clocks, l: &Layout, costs: &dyn StageCosts, input: &StageInput) {
    for e in 0..l.groups() {
        if input.last {
            group_compute(c, l, input, e, costs.lm_head(input.emitting[e]), Activity::LmHead);
            let draft = costs.draft(&input.shapes[e], input.experts_per_group);
            if draft.ns > 0.0 {
                group_compute(c, l, input, e, draft, Activity::LmHead);
            }
        } else {
            let bytes = costs.pp_bytes(l.tokens[e]) / l.tp as f64;
            for &g in &l.tp_groups[e] {
                c.collective(&[g], input.comm.pp_send[g].ns(bytes), bytes, Activity::PpSendRecv);
            }
        }
    }
}

/// Rows the TP all-reduce after a group's experts carries: the unpermute (`model::moe`)
/// sums each token's top-k weighted expert rows on the GPU before the reduction, so a
/// group that received `choices` (token, expert) rows reduces at most one row per
/// distinct token, and never more than the batch's `total_tokens` (with one EP group,
/// exactly the batch's tokens, not tokens x top_k).
pub(super) fn reduced_rows(choices: u64, total_tokens: u32) -> u32 {
    choices.min(total_tokens as u64) as u32
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
pub(super) fn max_offdiagonal_volume(tokens: &[u32], per_group: &[u64], total_tokens: u32) -> f64 {
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
