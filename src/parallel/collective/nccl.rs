//! All-reduce as NCCL runs it on big nodes: pipelined hierarchical across nodes, a
//! double binary tree, NVLink SHARP inside a node, and an `auto` choice among them.
//!
//! Each is a schedule of steps like every other algorithm here, so its closed form is
//! the sum of its steps on idle links ([`super::schedule_time`]) and the flow model
//! runs the same steps. Chunking follows NCCL: the buffer is cut into C chunks that
//! flow through the phases as a pipeline, C chosen to balance per-step latency
//! against pipeline fill, `C = sqrt(fill_steps x X / α)` where X is the bandwidth time
//! of the slowest phase on the whole buffer (clamped to 1..=64).

use super::{closed_form_time, node_groups, push, AllReduceAlgorithm, CollectiveOp, Phase, Transfer};
use crate::hardware::topology::Topology;

/// Chunks for a pipeline of `fill` extra steps whose slowest phase moves the buffer
/// in `x_s` seconds, with per-step latency `alpha_s`.
fn chunks(fill: usize, x_s: f64, alpha_s: f64) -> usize {
    let ideal = if alpha_s > 0.0 { (fill as f64 * x_s / alpha_s).sqrt() } else { 64.0 };
    (ideal.round() as usize).clamp(1, 64)
}

/// Every rank of `group` sends `bytes` to every other one (through the NVSwitch, or
/// across nodes on the rank's own rail): a direct exchange, one step.
fn exchange(group: &[u32], bytes: f64, out: &mut Vec<Transfer>) {
    for &a in group {
        out.extend(group.iter().filter(|&&b| b != a).map(|&b| Transfer { src: a, dst: b, bytes }));
    }
}

/// Steps of a `stages`-stage pipeline over `c` chunks, compressed: step k runs stage
/// j of chunk k - j for every j with 0 <= k - j < c. `stage(mask)` gives the transfers
/// of the stages in `mask` (bit j: stage j).
fn pipeline(c: usize, stages: usize, phases: &mut Vec<Phase>, stage: impl Fn(u32) -> Vec<Transfer>) {
    let mut last: Option<(u32, u32)> = None;
    for k in 0..c + stages - 1 {
        let mask = (0..stages).filter(|&j| k >= j && k - j < c).fold(0u32, |m, j| m | 1 << j);
        match &mut last {
            Some((m, n)) if *m == mask => *n += 1,
            _ => {
                if let Some((m, n)) = last {
                    push(phases, stage(m), n);
                }
                last = Some((mask, 1));
            }
        }
    }
    if let Some((m, n)) = last {
        push(phases, stage(m), n);
    }
}

/// Pipelined hierarchical all-reduce on m nodes of g ranks: per chunk, a reduce-scatter
/// in the node (direct exchange of 1/g), a reduce-scatter and an all-gather across
/// nodes among same-rail ranks (1/(g m) each), an all-gather in the node. Four
/// stages in a pipeline, so NVLink and the NICs work at once: on idle links the time
/// tends to the busier of 2(g-1)/g S/B_nvlink and 2(m-1)/m S/(g B_nic) as C grows.
pub(super) fn pipelined(topo: &Topology, ranks: &[u32], bytes: f64, phases: &mut Vec<Phase>) {
    let Some(groups) = node_groups(topo, ranks) else { return };
    let (g, m) = (groups[0].len(), groups.len());
    let columns: Vec<Vec<u32>> = (0..g).map(|j| groups.iter().map(|grp| grp[j]).collect()).collect();
    let nv = topo.link(topo.nvlink_up(ranks[0])).bytes_per_s;
    let nic = topo.link(topo.nic_up(topo.nic_of(ranks[0]))).bytes_per_s;
    let (gf, mf) = (g as f64, m as f64);
    let x = (2.0 * (gf - 1.0) / gf * bytes / nv).max(2.0 * (mf - 1.0) / mf * bytes / (gf * nic));
    let alpha = topo.route(columns[0][0], columns[0][1]).latency.as_secs_f64();
    let c = chunks(3, x, alpha);
    let chunk = bytes / c as f64;
    pipeline(c, 4, phases, |mask| {
        let mut t = Vec::new();
        for j in [0u32, 3] {
            if mask & (1 << j) != 0 {
                groups.iter().for_each(|grp| exchange(grp, chunk / gf, &mut t));
            }
        }
        for j in [1u32, 2] {
            if mask & (1 << j) != 0 {
                columns.iter().for_each(|col| exchange(col, chunk / (gf * mf), &mut t));
            }
        }
        t
    });
}

/// NVLS all-reduce in one node: per chunk, every GPU pulls its 1/g reduced by the
/// switch (S up through its port, S/g back), then pushes it for the switch to
/// multicast (S/g up, S back); the two stages pipelined over C chunks, one transfer
/// per GPU and direction per step. On idle links: (C+1)·α + (2 + (1+1/g)(C-1))·S/C/B_nvls.
pub(super) fn nvls(topo: &Topology, ranks: &[u32], bytes: f64, phases: &mut Vec<Phase>) {
    let g = ranks.len() as f64;
    let switch = topo.switch_of(topo.node_of(ranks[0]));
    let route = topo.route(ranks[0], switch);
    let x = (1.0 + 1.0 / g) * bytes / route.rate_cap;
    let c = chunks(1, x, route.latency.as_secs_f64());
    let chunk = bytes / c as f64;
    pipeline(c, 2, phases, |mask| {
        let (rs, ag) = (mask & 1 != 0, mask & 2 != 0);
        let up = if rs { chunk } else { 0.0 } + if ag { chunk / g } else { 0.0 };
        let down = if rs { chunk / g } else { 0.0 } + if ag { chunk } else { 0.0 };
        let mut t: Vec<Transfer> = ranks.iter().map(|&r| Transfer { src: r, dst: switch, bytes: up }).collect();
        t.extend(ranks.iter().map(|&r| Transfer { src: switch, dst: r, bytes: down }));
        t
    });
}

/// Double binary tree (as NCCL's trees): tree A is the heap-ordered binary tree over
/// the ranks' positions, tree B the same over the positions mirrored, so a rank
/// inner in one is a leaf in the other. Each tree reduces half the buffer to its root
/// and broadcasts it back, in C chunks: a rank at depth l sends chunk j up at step
/// j + D - l and down at step R + j + l (D the depth, R = C + D - 1): 2R steps.
pub(super) fn tree(topo: &Topology, ranks: &[u32], bytes: f64, phases: &mut Vec<Phase>) {
    let n = ranks.len();
    let depth = |p: usize| (usize::BITS - 1 - (p + 1).leading_zeros()) as usize;
    let d = depth(n - 1);
    let rank_a = |p: usize| ranks[p];
    let rank_b = |p: usize| ranks[n - 1 - p];
    let nv = topo.link(topo.nvlink_up(ranks[0])).bytes_per_s;
    let alpha = topo.route(ranks[0], ranks[1]).latency.as_secs_f64();
    let c = chunks(2 * d.max(1), bytes / nv, alpha);
    let chunk = bytes / 2.0 / c as f64;
    let r = c + d - 1;
    let step = |k: usize| -> Vec<Transfer> {
        let mut t = Vec::new();
        for p in 1..n {
            let (l, parent) = (depth(p), (p - 1) / 2);
            // Up: chunk j = k - (D - l) from p to its parent; down: chunk k - R - (l - 1)
            // from the parent (depth l - 1) to p.
            let up = k + l >= d && k + l - d < c;
            let down = k >= r + l - 1 && k - (r + l - 1) < c;
            for rank in [&rank_a as &dyn Fn(usize) -> u32, &rank_b] {
                if up {
                    t.push(Transfer { src: rank(p), dst: rank(parent), bytes: chunk });
                }
                if down {
                    t.push(Transfer { src: rank(parent), dst: rank(p), bytes: chunk });
                }
            }
        }
        t
    };
    let mut k = 0;
    while k < 2 * r {
        let first = step(k);
        let mut repeat = 1;
        while k + repeat < 2 * r && step(k + repeat) == first {
            repeat += 1;
        }
        push(phases, first, repeat as u32);
        k += repeat;
    }
}

/// The all-reduce algorithm NCCL's tuner would pick for `bytes` over `ranks`: the
/// fastest on idle links of those the layout allows (ring and tree always; NVLS
/// inside one node whose switch has SHARP; pipelined hierarchical across nodes with
/// the same number of ranks each), ties to the first in that order. Used by the
/// `collective` command; serving runs keep [`super::resolve_all_reduce`] for now.
pub fn choose_all_reduce_nccl(topo: &Topology, ranks: &[u32], bytes: f64) -> AllReduceAlgorithm {
    let mut best = (AllReduceAlgorithm::Ring, u64::MAX);
    for alg in
        [AllReduceAlgorithm::Ring, AllReduceAlgorithm::Tree, AllReduceAlgorithm::Nvls, AllReduceAlgorithm::Pipelined]
    {
        if super::resolve_all_reduce(topo, alg, ranks) != alg {
            continue;
        }
        let t = closed_form_time(topo, CollectiveOp::AllReduce, alg, ranks, bytes).as_ns();
        if t < best.1 {
            best = (alg, t);
        }
    }
    best.0
}
