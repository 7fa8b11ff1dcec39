//! The fast stage path: a dense stage (one EP group, equal speeds, no overlap) whose
//! layers are all the same, priced as one layer times the layer count in O(1). It is
//! an optimisation of [`super::general`], not a second model: tests/stage_props.rs
//! holds the two equal to the ns over random shapes, plans, dtypes and profiles.

use super::{layer_attention, shape_tokens, StageCosts, StageInput, StageRun, Work};
use crate::engine::time::SimTime;
use crate::parallel::ledger::GpuTotals;

/// True when the stage run can take the fast path.
pub fn applies(input: &StageInput) -> bool {
    let uniform = input.speeds.iter().all(|s| *s == input.speeds[0]);
    input.moe_layers == 0 && input.shapes.len() == 1 && uniform && !input.overlap
}

/// Prices a dense stage run on identical GPUs: one layer times the layer count.
pub fn run_stage_fast(costs: &dyn StageCosts, input: &StageInput) -> StageRun {
    let shape = &input.shapes[0];
    let tokens = shape_tokens(shape);
    let speed = input.speeds[0];
    let scale = |w: Work| (SimTime::from_ns_f64(w.ns / speed).as_ns(), w.flops);
    let (attn_ns, attn_flops) = scale(layer_attention(costs, input, 0));
    let (mlp_ns, mlp_flops) = scale(costs.mlp(tokens));
    let tp = input.tp as usize;
    let ar_bytes = if tp > 1 { costs.tp_bytes(tokens) } else { 0.0 };
    let ar_ns = if tp > 1 { input.comm.tp_allreduce[0].ns(ar_bytes) } else { 0 };
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
    let mut pp_bytes = 0.0;
    if input.last {
        let (ns, f) = scale(costs.lm_head(input.emitting[0]));
        compute_ns += ns;
        flops += f;
        let draft = costs.draft(shape, input.experts_per_group);
        if draft.ns > 0.0 {
            let (ns, f) = scale(draft);
            compute_ns += ns;
            flops += f;
        }
    } else {
        pp_bytes = costs.pp_bytes(tokens) / tp as f64;
    }
    // Each GPU's pipeline send (none from the last stage); priced twice rather than kept
    // in a Vec: a replay runs this millions of times.
    let pp_ns = |g: usize| if input.last { 0 } else { input.comm.pp_send[g].ns(pp_bytes) };
    let longest_pp = (0..tp).map(pp_ns).max().unwrap_or(0);
    for (g, w) in gpus.iter_mut().enumerate() {
        let pp = pp_ns(g);
        w.compute_ns = compute_ns;
        w.flops = flops;
        w.comm_ns[0] = tp_comm;
        w.comm_ns[1] = pp;
        w.wait_ns[0] = longest_pp - pp;
        w.comm_bytes[0] = (2 * layers) as f64 * ar_bytes;
        w.comm_bytes[1] = pp_bytes;
    }
    StageRun { duration_ns: compute_ns + tp_comm + longest_pp, gpus }
}
