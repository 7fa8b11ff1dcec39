//! All-reduce as NCCL runs it on big nodes: pipelined hierarchical across nodes, a
//! double binary tree, NVLink SHARP inside a node, and an `auto` choice among them.
//!
//! Each is a schedule of steps like every other algorithm here, so its closed form is
//! its critical path run as dataflow on idle links ([`super::schedule_time`]; for the
//! symmetric ones the sum of their steps) and the flow model runs the same steps.
//! Chunking follows NCCL: the buffer is cut into C chunks that flow through the phases
//! as a pipeline. C is one of [`CHUNK_OPTIONS`], the one whose closed form is fastest
//! for the size (ties to the fewest chunks): more chunks overlap the phases better but
//! pay more per-step latencies. For a fixed C the time is piecewise affine in the size,
//! so a size-independent price is the lower envelope of seven such forms (what the
//! serving pricer keeps).
//!
//! The `auto` rule ([`choose_all_reduce_nccl`]) is NCCL's tuner in spirit: of the
//! algorithms the layout allows, the one with the least predicted time at this size
//! (NVIDIA/nccl src/graph/tuning.cc, `ncclTopoTuneModel`: a latency + size/bandwidth
//! model per algorithm, the minimum taken per call). Protocols are not modelled: each
//! step pays the link's α (2 µs NVLink, 5 µs NIC in the presets), between NCCL's
//! LL (0.6 µs per NVLink hop) and Simple (3.4 µs) figures. NVLS pays its set-up once
//! ([`NVLS_STARTUP`], tuning.cc's NVLS latency on NVLink), so in one node the ring wins
//! at small sizes and NVLS at large ones, as NCCL's tuner has it. Serving engines run
//! small in-node TP all-reduces with their own kernels instead ([`super::custom`]).

use super::{node_groups, push, schedule_time, AllReduceAlgorithm, Phase, Schedule, Transfer};
use crate::engine::SimTime;
use crate::hardware::topology::Topology;

/// NVLS's set-up, paid once before its first step: NCCL's tuner charges NVLS 25 µs of
/// latency on NVLink (NVIDIA/nccl src/graph/tuning.cc at commit 5067397c,
/// `hwLatencies[NCCL_HW_NVLINK][NCCL_ALGO_NVLS][NCCL_PROTO_SIMPLE] = 25`, used as the
/// whole latency of an NVLS all-reduce in one node); the steps' own α come on top.
pub const NVLS_STARTUP: SimTime = SimTime(25_000);

/// Chunk counts a pipelined algorithm (pipelined hierarchical, tree, NVLS) may cut its
/// buffer into: powers of two, as NCCL's buffer slices are.
pub const CHUNK_OPTIONS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// True for the algorithms that pipeline their buffer in chunks.
pub fn is_chunked(alg: AllReduceAlgorithm) -> bool {
    matches!(alg, AllReduceAlgorithm::Pipelined | AllReduceAlgorithm::Tree | AllReduceAlgorithm::Nvls)
}

/// Steps of the chunked algorithm `alg` (already resolved for `ranks`) with `c` chunks.
pub(super) fn chunked(
    topo: &Topology,
    alg: AllReduceAlgorithm,
    ranks: &[u32],
    bytes: f64,
    c: usize,
    phases: &mut Vec<Phase>,
) {
    let c = c.clamp(1, CHUNK_OPTIONS[CHUNK_OPTIONS.len() - 1]);
    match alg {
        AllReduceAlgorithm::Pipelined => pipelined(topo, ranks, bytes, c, phases),
        AllReduceAlgorithm::Tree => tree(ranks, bytes, c, phases),
        _ => nvls(topo, ranks, bytes, c, phases),
    }
}

/// The chunk count of [`CHUNK_OPTIONS`] with the least closed-form time for `bytes`
/// (ties to the fewest chunks).
pub(super) fn best_chunks(topo: &Topology, alg: AllReduceAlgorithm, ranks: &[u32], bytes: f64) -> usize {
    let time = |c: usize| -> SimTime {
        let mut phases = Vec::new();
        chunked(topo, alg, ranks, bytes, c, &mut phases);
        schedule_time(topo, &Schedule::new(ranks.to_vec(), phases))
    };
    CHUNK_OPTIONS.into_iter().min_by_key(|&c| time(c)).unwrap_or(1)
}

/// Every rank of `group` sends `bytes` to every other one (through the NVSwitch, or
/// across nodes on the rank's own rail): a direct exchange, one step.
pub(super) fn exchange(group: &[u32], bytes: f64, out: &mut Vec<Transfer>) {
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
fn pipelined(topo: &Topology, ranks: &[u32], bytes: f64, c: usize, phases: &mut Vec<Phase>) {
    let Some(groups) = node_groups(topo, ranks) else { return };
    let (g, m) = (groups[0].len(), groups.len());
    let columns: Vec<Vec<u32>> = (0..g).map(|j| groups.iter().map(|grp| grp[j]).collect()).collect();
    let (gf, mf) = (g as f64, m as f64);
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
/// per GPU and direction per step. On idle links, with the set-up:
/// [`NVLS_STARTUP`] + (C+1)·α + (2 + (1+1/g)(C-1))·S/C/B_nvls.
fn nvls(topo: &Topology, ranks: &[u32], bytes: f64, c: usize, phases: &mut Vec<Phase>) {
    let g = ranks.len() as f64;
    let switch = topo.switch_of(topo.node_of(ranks[0]));
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
fn tree(ranks: &[u32], bytes: f64, c: usize, phases: &mut Vec<Phase>) {
    let n = ranks.len();
    let depth = |p: usize| (usize::BITS - 1 - (p + 1).leading_zeros()) as usize;
    let d = depth(n - 1);
    let rank_a = |p: usize| ranks[p];
    let rank_b = |p: usize| ranks[n - 1 - p];
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

/// The algorithms `auto` chooses among on `ranks`, in tie-breaking order: ring always;
/// tree across nodes only (NCCL's tree is a chain inside a node: tuning.cc prices it
/// `2((ppn-1)·intraLat + log2(nNodes)·interLat)`, no fewer in-node hops than the
/// ring, so the ring, 0.2 µs cheaper to start, wins in one node); NVLS inside one node
/// whose switch has SHARP; pipelined hierarchical across nodes holding the same number
/// of the ranks each.
pub fn auto_candidates(topo: &Topology, ranks: &[u32]) -> Vec<AllReduceAlgorithm> {
    let nodes = ranks.iter().map(|&r| topo.node_of(r)).collect::<std::collections::BTreeSet<_>>().len();
    [AllReduceAlgorithm::Ring, AllReduceAlgorithm::Tree, AllReduceAlgorithm::Nvls, AllReduceAlgorithm::Pipelined]
        .into_iter()
        .filter(|&alg| alg != AllReduceAlgorithm::Tree || nodes > 1)
        .filter(|&alg| super::resolve_all_reduce(topo, alg, ranks) == alg)
        .collect()
}

/// The all-reduce algorithm `auto` runs for `bytes` over `ranks`, as NCCL's tuner
/// picks: the fastest on idle links of [`auto_candidates`] (each at its best chunk
/// count), ties to the first. One rule for `clustersim collective` and serving runs
/// (the serving pricer keeps every candidate's price and takes the cheapest per call,
/// which is this choice with the stack's per-step costs added).
pub fn choose_all_reduce_nccl(topo: &Topology, ranks: &[u32], bytes: f64) -> AllReduceAlgorithm {
    let time = |alg| super::closed_form_time(topo, super::CollectiveOp::AllReduce, alg, ranks, bytes);
    auto_candidates(topo, ranks).into_iter().min_by_key(|&alg| time(alg)).unwrap_or(AllReduceAlgorithm::Ring)
}
