//! Collective algorithms expanded into steps of point-to-point transfers, and their
//! closed-form (α-β) prices.
//!
//! The algorithm is kept apart from the topology (as in ASTRA-sim): an algorithm only
//! says which rank sends how many bytes to which rank in each step; the topology gives
//! each transfer its route, and the flow model (or the closed form) prices it.
//!
//! Sizes follow nccl-tests: `bytes` is the buffer size S (for reduce-scatter and
//! all-gather the full gathered buffer, for all-to-all the bytes each rank sends in
//! total, S/n to every rank including itself).
//!
//! Closed form (the `time` module): each transfer starts once both its ranks finished
//! their earlier steps, its bytes share links by max-min with the others in flight,
//! and it ends its route's latency after its last byte, as the flow runner runs it; a
//! collective takes its critical path. For the symmetric algorithms (rings,
//! halving-doubling, hierarchical, pairwise all-to-all, send/recv) that is the sum of
//! the steps' slowest transfers, the α-β formulas below; tests show the flow model
//! gives it on idle links.

mod alltoall;
mod custom;
mod dataflow;
mod maxmin;
mod nccl;
mod sim;
mod time;

pub use alltoall::{expand_all_to_all, AllToAllAlgorithm};
pub use custom::{choose_all_reduce, custom_window, engine_kernel, kernel_step_latency};
pub use dataflow::rank_ends;
pub use nccl::{auto_candidates, choose_all_reduce_nccl, is_chunked, CHUNK_OPTIONS, NVLS_STARTUP};
pub use time::{convex_closed_form, schedule_time};

use super::ledger::CommKind;
use super::price::Affine;
use crate::engine::SimTime;
use crate::error::{Error, Result};
use crate::hardware::topology::{LinkId, Route, Topology};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A collective operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CollectiveOp {
    /// Every rank ends with the sum of all buffers.
    AllReduce,
    /// Every rank ends with 1/n of the sum.
    ReduceScatter,
    /// Every rank ends with every rank's 1/n.
    AllGather,
    /// Every rank sends S/n to every rank (pairwise exchange).
    AllToAll,
    /// `ranks[0]` sends S to every other rank (pipelined chain).
    Broadcast,
    /// `ranks[0]` sends S to `ranks[1]`.
    SendRecv,
}

impl CollectiveOp {
    /// Every op, in a fixed order.
    pub const ALL: [CollectiveOp; 6] = [
        CollectiveOp::AllReduce,
        CollectiveOp::ReduceScatter,
        CollectiveOp::AllGather,
        CollectiveOp::AllToAll,
        CollectiveOp::Broadcast,
        CollectiveOp::SendRecv,
    ];

    /// The snake_case name (`all_reduce`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CollectiveOp::AllReduce => "all_reduce",
            CollectiveOp::ReduceScatter => "reduce_scatter",
            CollectiveOp::AllGather => "all_gather",
            CollectiveOp::AllToAll => "all_to_all",
            CollectiveOp::Broadcast => "broadcast",
            CollectiveOp::SendRecv => "send_recv",
        }
    }

    /// Parses a name (`all_reduce` or `all-reduce`, ...), with the allowed names in the error.
    pub fn parse(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        CollectiveOp::ALL.into_iter().find(|op| op.name() == norm).ok_or_else(|| {
            let names: Vec<_> = CollectiveOp::ALL.iter().map(|o| o.name()).collect();
            Error::Usage(format!("unknown collective `{s}`; expected one of {}", names.join(", ")))
        })
    }

    /// The parallelism a collective of this kind serves by default, for the ledger:
    /// all-to-all is expert parallelism, send/recv the pipeline, the rest tensor parallelism.
    pub fn comm_kind(self) -> CommKind {
        match self {
            CollectiveOp::AllToAll => CommKind::Ep,
            CollectiveOp::SendRecv => CommKind::Pp,
            _ => CommKind::Tp,
        }
    }

    /// nccl-tests bus-bandwidth factor for `n` ranks: busbw = algbw x factor.
    pub fn bus_factor(self, n: usize) -> f64 {
        let n = n.max(1) as f64;
        match self {
            CollectiveOp::AllReduce => 2.0 * (n - 1.0) / n,
            CollectiveOp::ReduceScatter | CollectiveOp::AllGather | CollectiveOp::AllToAll => (n - 1.0) / n,
            CollectiveOp::Broadcast | CollectiveOp::SendRecv => 1.0,
        }
    }
}

/// One point-to-point transfer between GPUs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transfer {
    /// Sending GPU.
    pub src: u32,
    /// Receiving GPU.
    pub dst: u32,
    /// Bytes.
    pub bytes: f64,
}

/// A step shape repeated `repeat` times in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// The transfers of one step.
    pub transfers: Vec<Transfer>,
    /// How many consecutive steps have this shape.
    pub repeat: u32,
}

/// A collective expanded: its GPUs and its steps, in order. A transfer of step k
/// starts once both its GPUs have finished all their transfers of steps before k.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Participating GPUs.
    pub ranks: Vec<u32>,
    /// The steps' shapes (compressed: consecutive equal steps are one phase).
    pub phases: Vec<Phase>,
    /// The latency every transfer pays in place of its route's (a serving engine's own
    /// kernel, whose launch and flag synchronization is not NCCL's per-hop α); None:
    /// each route's own.
    pub step_latency: Option<SimTime>,
    /// Paid once, from the last rank's arrival to the first step (NVLS's set-up).
    pub startup: SimTime,
}

impl Schedule {
    /// Steps over `ranks` that pay their routes' latencies and no start-up.
    pub fn new(ranks: Vec<u32>, phases: Vec<Phase>) -> Self {
        Schedule { ranks, phases, step_latency: None, startup: SimTime::ZERO }
    }

    /// The route transfer `t` takes, with the latency it pays: the schedule's step
    /// latency where it sets one, else the route's own (one rule for the flow runner and
    /// the closed form).
    pub fn route(topo: &Topology, step_latency: Option<SimTime>, t: &Transfer) -> Route {
        let mut r = topo.route(t.src, t.dst);
        r.latency = step_latency.unwrap_or(r.latency);
        r
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.phases.iter().map(|p| p.repeat as usize).sum()
    }
}

/// All-reduce algorithm choice (scenario `parallel.all_reduce`, `collective --algorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AllReduceAlgorithm {
    /// As NCCL's tuner picks: the fastest on idle links at each size among the
    /// algorithms the layout allows (see `choose_all_reduce_nccl`).
    #[default]
    Auto,
    /// Flat ring.
    Ring,
    /// Recursive halving-doubling.
    HalvingDoubling,
    /// Reduce-scatter in node, all-reduce across nodes, all-gather in node.
    Hierarchical,
    /// Hierarchical with its phases pipelined over chunks (NCCL across nodes).
    Pipelined,
    /// Double binary tree, pipelined over chunks.
    Tree,
    /// NVLink SHARP: the NVSwitch reduces and multicasts (one node with SHARP).
    Nvls,
    /// A serving engine's one-shot kernel (one node): every rank reads every peer's
    /// whole buffer over NVLink and reduces locally, one step.
    OneShot,
    /// A serving engine's two-shot kernel (one node): a reduce-scatter and an
    /// all-gather, each a direct exchange of 1/n of the buffer.
    TwoShot,
}

/// The concrete all-reduce algorithm `alg` stands for on `ranks` (never `Auto`).
/// Auto depends on the size ([`choose_all_reduce_nccl`]); without one it stands here
/// for its choice at 1 GiB. Halving-doubling needs a power-of-two count and falls back
/// to ring; hierarchical and pipelined need at least two nodes holding the same
/// number (>= 2) of the ranks; tree needs two ranks; NVLS needs every rank in one node
/// whose switch has SHARP; one-shot and two-shot need every rank in one node and a
/// group size the engines' kernels support ([`custom::supports`]).
pub fn resolve_all_reduce(topo: &Topology, alg: AllReduceAlgorithm, ranks: &[u32]) -> AllReduceAlgorithm {
    let hier_ok = node_groups(topo, ranks).is_some();
    let one_node = ranks.iter().all(|&r| topo.node_of(r) == topo.node_of(ranks[0]));
    match alg {
        AllReduceAlgorithm::OneShot | AllReduceAlgorithm::TwoShot if custom::supports(topo, ranks) => alg,
        AllReduceAlgorithm::Auto => choose_all_reduce_nccl(topo, ranks, GIB),
        AllReduceAlgorithm::Hierarchical if hier_ok => AllReduceAlgorithm::Hierarchical,
        AllReduceAlgorithm::Pipelined if hier_ok => AllReduceAlgorithm::Pipelined,
        AllReduceAlgorithm::Tree if ranks.len() > 1 => AllReduceAlgorithm::Tree,
        AllReduceAlgorithm::Nvls if topo.has_nvls() && one_node && ranks.len() > 1 => AllReduceAlgorithm::Nvls,
        AllReduceAlgorithm::HalvingDoubling if ranks.len().is_power_of_two() && ranks.len() > 1 => {
            AllReduceAlgorithm::HalvingDoubling
        }
        _ => AllReduceAlgorithm::Ring,
    }
}

/// Ranks grouped by node (in order of first appearance kept per node), when there are
/// at least two nodes holding the same number (>= 2) of ranks each.
fn node_groups(topo: &Topology, ranks: &[u32]) -> Option<Vec<Vec<u32>>> {
    let mut by_node: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &r in ranks {
        by_node.entry(topo.node_of(r)).or_default().push(r);
    }
    let g = by_node.values().next()?.len();
    if by_node.len() < 2 || g < 2 || by_node.values().any(|v| v.len() != g) {
        return None;
    }
    Some(by_node.into_values().collect())
}

fn ring_step(ranks: &[u32], chunk: f64) -> Vec<Transfer> {
    let n = ranks.len();
    (0..n).map(|i| Transfer { src: ranks[i], dst: ranks[(i + 1) % n], bytes: chunk }).collect()
}

fn push(phases: &mut Vec<Phase>, transfers: Vec<Transfer>, repeat: u32) {
    if repeat > 0 && !transfers.is_empty() {
        phases.push(Phase { transfers, repeat });
    }
}

fn check_ranks(topo: &Topology, op: CollectiveOp, ranks: &[u32]) -> Result<()> {
    if let Some(&bad) = ranks.iter().find(|&&r| r >= topo.gpus()) {
        return Err(Error::Usage(format!("rank GPU {bad} is outside the cluster of {} GPUs", topo.gpus())));
    }
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != ranks.len() {
        return Err(Error::Usage(format!("{}: a GPU appears twice among the ranks", op.name())));
    }
    let min = if op == CollectiveOp::SendRecv { 2 } else { 1 };
    if ranks.len() < min || (op == CollectiveOp::SendRecv && ranks.len() != 2) {
        return Err(Error::Usage(format!("{} needs {} ranks, got {}", op.name(), min, ranks.len())));
    }
    Ok(())
}

/// A GiB, the size at which a size-less `auto` is resolved.
const GIB: f64 = 1_073_741_824.0;

/// Expands a collective of `bytes` over `ranks` (GPU ids) into steps (a chunked
/// all-reduce at its best chunk count for the size).
pub fn expand(
    topo: &Topology,
    op: CollectiveOp,
    alg: AllReduceAlgorithm,
    ranks: &[u32],
    bytes: f64,
) -> Result<Schedule> {
    expand_chunked(topo, op, alg, ranks, bytes, None)
}

/// [`expand`] with the chunk count of a chunked all-reduce ([`is_chunked`]) fixed to
/// `chunks` (None: the best for the size). For a fixed count the closed form is affine
/// in the size.
pub fn expand_chunked(
    topo: &Topology,
    op: CollectiveOp,
    alg: AllReduceAlgorithm,
    ranks: &[u32],
    bytes: f64,
    chunks: Option<usize>,
) -> Result<Schedule> {
    check_ranks(topo, op, ranks)?;
    if !(bytes.is_finite() && bytes >= 0.0) {
        return Err(Error::Usage(format!("collective size must be a non-negative byte count, got {bytes}")));
    }
    let n = ranks.len();
    let nf = n as f64;
    let mut schedule = Schedule::new(ranks.to_vec(), Vec::new());
    let phases = &mut schedule.phases;
    if n > 1 {
        match op {
            CollectiveOp::AllReduce => all_reduce(topo, alg, bytes, chunks, &mut schedule),
            CollectiveOp::ReduceScatter | CollectiveOp::AllGather => {
                push(phases, ring_step(ranks, bytes / nf), (n - 1) as u32)
            }
            CollectiveOp::AllToAll => {
                let m = vec![bytes / nf; n * n];
                return expand_all_to_all(topo, AllToAllAlgorithm::Pairwise, ranks, &m);
            }
            CollectiveOp::Broadcast => broadcast(topo, ranks, bytes, phases),
            CollectiveOp::SendRecv => push(phases, vec![Transfer { src: ranks[0], dst: ranks[1], bytes }], 1),
        }
    }
    Ok(schedule)
}

/// Expands an all-to-all with uneven sizes: `matrix[i * n + j]` bytes go from
/// `ranks[i]` to `ranks[j]` (MoE dispatch/combine). Pairwise exchange: in step k rank i
/// sends to rank i+k.
pub fn expand_all_to_all_v(topo: &Topology, ranks: &[u32], matrix: &[f64]) -> Result<Schedule> {
    expand_all_to_all(topo, AllToAllAlgorithm::Pairwise, ranks, matrix)
}

fn all_reduce(topo: &Topology, alg: AllReduceAlgorithm, bytes: f64, chunks: Option<usize>, schedule: &mut Schedule) {
    let ranks = &schedule.ranks[..];
    let phases = &mut schedule.phases;
    let n = ranks.len();
    let nf = n as f64;
    let alg = match alg {
        AllReduceAlgorithm::Auto => choose_all_reduce_nccl(topo, ranks, bytes),
        a => resolve_all_reduce(topo, a, ranks),
    };
    match alg {
        AllReduceAlgorithm::HalvingDoubling => {
            let exchange = |d: usize, b: f64| -> Vec<Transfer> {
                (0..n).map(|i| Transfer { src: ranks[i], dst: ranks[i ^ d], bytes: b }).collect()
            };
            let levels = n.trailing_zeros();
            // Reduce-scatter by recursive halving: distance n/2, n/4, ..., 1; S/2, S/4, ..., S/n.
            for i in 0..levels {
                push(phases, exchange(n >> (i + 1), bytes / (1u64 << (i + 1)) as f64), 1);
            }
            // All-gather by recursive doubling: distance 1, 2, ..., n/2; S/n, 2S/n, ..., S/2.
            for i in 0..levels {
                push(phases, exchange(1 << i, bytes / nf * (1u64 << i) as f64), 1);
            }
        }
        AllReduceAlgorithm::Hierarchical => {
            let groups = node_groups(topo, ranks).unwrap_or_default();
            let g = groups.first().map_or(1, Vec::len);
            let m = groups.len();
            let intra: Vec<Transfer> = groups.iter().flat_map(|grp| ring_step(grp, bytes / g as f64)).collect();
            let inter: Vec<Transfer> = (0..g)
                .flat_map(|j| {
                    let column: Vec<u32> = groups.iter().map(|grp| grp[j]).collect();
                    ring_step(&column, bytes / (g * m) as f64)
                })
                .collect();
            push(phases, intra.clone(), (g - 1) as u32);
            push(phases, inter, 2 * (m as u32 - 1));
            push(phases, intra, (g - 1) as u32);
        }
        AllReduceAlgorithm::OneShot | AllReduceAlgorithm::TwoShot => {
            let (phases, latency) = custom::steps(alg, ranks, bytes);
            (schedule.phases, schedule.step_latency) = (phases, Some(latency));
        }
        a if is_chunked(a) => {
            let c = chunks.unwrap_or_else(|| nccl::best_chunks(topo, a, ranks, bytes));
            nccl::chunked(topo, a, ranks, bytes, c, phases);
            if a == AllReduceAlgorithm::Nvls {
                schedule.startup = NVLS_STARTUP;
            }
        }
        _ => push(phases, ring_step(ranks, bytes / nf), 2 * (n as u32 - 1)),
    }
}

/// Pipelined chain from `ranks[0]`: the buffer in c chunks, hop i forwards chunk j in
/// step i + j. c minimises the α-β time `(c + n - 2)(α + S/(cB))`:
/// c = sqrt((n - 2) S / (α B)), clamped to 1..=64.
fn broadcast(topo: &Topology, ranks: &[u32], bytes: f64, phases: &mut Vec<Phase>) {
    let n = ranks.len();
    let hops: Vec<Transfer> = (0..n - 1).map(|i| Transfer { src: ranks[i], dst: ranks[i + 1], bytes: 0.0 }).collect();
    let (mut alpha_s, mut bw) = (0.0f64, f64::INFINITY);
    for h in &hops {
        let r = topo.route(h.src, h.dst);
        alpha_s = alpha_s.max(r.latency.as_secs_f64());
        for &l in r.links() {
            bw = bw.min(topo.link(l).bytes_per_s);
        }
    }
    let ideal = if alpha_s > 0.0 { ((n as f64 - 2.0) * bytes / (alpha_s * bw)).sqrt() } else { 64.0 };
    let c = (ideal.round() as usize).clamp(1, 64);
    let chunk = bytes / c as f64;
    for step in 0..(c + n - 2) {
        let lo = step.saturating_sub(c - 1);
        let hi = step.min(n - 2);
        let t: Vec<Transfer> = (lo..=hi).map(|i| Transfer { bytes: chunk, ..hops[i] }).collect();
        push(phases, t, 1);
    }
}

/// Closed-form (α-β, bottleneck-link) time of a collective of `bytes` over `ranks` on an
/// idle network, equal to the flow model's (tests show it), e.g. ring all-reduce
/// `2(n-1)·α + 2(n-1)/n·S/B`. O(n) for rings, hierarchical and send/recv, O(n log n) for
/// halving-doubling, O(n²) for all-to-all. Uses the topology's nominal capacities.
/// Invalid ranks (outside the cluster, repeated) price as zero: the plan validates them.
pub fn closed_form_time(
    topo: &Topology,
    op: CollectiveOp,
    alg: AllReduceAlgorithm,
    ranks: &[u32],
    bytes: f64,
) -> SimTime {
    match expand(topo, op, alg, ranks, bytes) {
        Ok(s) => schedule_time(topo, &s),
        Err(_) => SimTime::ZERO,
    }
}

/// Payload of the second fit point: large, so each step's rounding to whole
/// nanoseconds moves the per-byte rate by less than 1e-13 ns per byte.
const FIT_BYTES: f64 = 1e15;

/// [`closed_form_time`] as an affine function of the payload. The closed form of a
/// fixed schedule shape whose critical path keeps one shape (rings, halving-doubling,
/// hierarchical, all-to-all, send/recv) is affine in the bytes, so two evaluations fix
/// it exactly: zero bytes leaves only the steps' latencies, and 1 PB gives the per-byte
/// rate. (A chunked all-reduce or `auto` changes shape with the size, and a critical
/// path may bend (a step across tiers, the tree): then this is the latency at zero and
/// the rate at large sizes, a lower bound; [`convex_closed_form`] of a schedule with
/// fixed chunks ([`expand_chunked`]) gives every piece.) Callers then price any size
/// with one multiply-add, without the per-step rounding of a single evaluation.
pub fn closed_form_affine(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32]) -> Affine {
    affine_fit(|bytes| closed_form_time(topo, op, alg, ranks, bytes).as_ns() as f64)
}

/// The affine form of a closed-form time `ns_at(bytes)`: its value at zero bytes and
/// its slope up to [`FIT_BYTES`] (see [`closed_form_affine`]).
pub fn affine_fit(ns_at: impl Fn(f64) -> f64) -> Affine {
    let latency = ns_at(0.0);
    Affine { fixed_ns: latency, per_byte_ns: (ns_at(FIT_BYTES) - latency) / FIT_BYTES }
}

/// Every link a collective over `ranks` crosses (sorted, no repeats): two collectives
/// contend only if their link sets intersect.
pub fn links_used(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32]) -> Vec<LinkId> {
    let Ok(s) = expand(topo, op, alg, ranks, 1.0) else { return Vec::new() };
    schedule_links(topo, &s)
}

/// Every link an expanded schedule crosses (sorted, no repeats).
pub fn schedule_links(topo: &Topology, schedule: &Schedule) -> Vec<LinkId> {
    let mut out: Vec<LinkId> = schedule
        .phases
        .iter()
        .flat_map(|p| p.transfers.iter())
        .flat_map(|t| topo.route(t.src, t.dst).links().to_vec())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// True when two sorted link sets share a link.
pub fn links_intersect(a: &[LinkId], b: &[LinkId]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}
