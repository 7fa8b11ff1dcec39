//! A schedule run as dataflow on idle links, as the flow runner runs it: a transfer of
//! step k starts once both its ranks finished every transfer they take part in before
//! step k (a rank with no part in a step moves past it at once) and ends its route's
//! latency after its last byte left; the bytes in flight, of whatever steps, share
//! links by max-min fairness (the `sim` and `maxmin` modules). The collective ends when
//! its last rank does: its critical path.
//!
//! Where the ranks are level (all at one step since one instant, nothing in flight) and
//! one step alone ends them level again, every repeat of that step shape does the same:
//! the rest of the phase is added at once. That is the symmetric algorithms' sum of
//! steps (rings, halving-doubling, hierarchical, NVLS, pipelined hierarchical, even
//! all-to-all), to the bit, and keeps them cheap; ranks that drift apart (the tree's,
//! a ring across nodes) are run instant by instant until they are level again.
//!
//! The evaluation is generic over what a path costs: whole ns (the time at one size,
//! rounded as the flow model rounds) or a line in the payload (the critical path's line
//! at one size, for the convex form).

use super::sim::Sim;
use super::{Schedule, Transfer};
use crate::engine::SimTime;
use crate::hardware::topology::{Route, Topology};
use crate::parallel::price::Affine;

/// What a path through a schedule costs: a time, or a line in the payload. `Bytes` is
/// a byte count in the same terms (a number, or a line).
pub(super) trait PathCost: Copy + PartialEq {
    /// A byte count.
    type Bytes: Copy;
    /// No cost.
    const ZERO: Self;
    /// The sum of two costs.
    fn plus(self, other: Self) -> Self;
    /// `n` times a cost.
    fn times(self, n: u32) -> Self;
    /// A latency, as a cost.
    fn latency(latency: SimTime) -> Self;
    /// `bytes` of the expansion's payload.
    fn bytes(bytes: f64) -> Self::Bytes;
    /// Time to send `left` at `bytes_per_s`; `scale` turns the expansion's payload
    /// into one byte (lines; times ignore it).
    fn send_time(left: Self::Bytes, bytes_per_s: f64, scale: f64) -> Self;
    /// What is left of `left` after sending at `bytes_per_s` from `from` to `to`.
    fn sent(left: Self::Bytes, bytes_per_s: f64, from: Self, to: Self, scale: f64) -> Self::Bytes;
}

impl PathCost for SimTime {
    type Bytes = f64;
    const ZERO: Self = SimTime::ZERO;
    fn plus(self, other: Self) -> Self {
        self + other
    }
    fn times(self, n: u32) -> Self {
        SimTime(self.as_ns() * u64::from(n))
    }
    fn latency(latency: SimTime) -> Self {
        latency
    }
    fn bytes(bytes: f64) -> f64 {
        bytes
    }
    // As the flow model: `transfer_time`, and bytes caught up at the rate held.
    fn send_time(left: f64, bytes_per_s: f64, _: f64) -> Self {
        crate::hardware::network::transfer_time(left, bytes_per_s)
    }
    fn sent(left: f64, bytes_per_s: f64, from: Self, to: Self, _: f64) -> f64 {
        (left - bytes_per_s * (to - from).as_secs_f64()).max(0.0)
    }
}

impl PathCost for Affine {
    /// (bytes, bytes per byte of the expansion's payload times `1 / scale`).
    type Bytes = (f64, f64);
    const ZERO: Self = Affine { fixed_ns: 0.0, per_byte_ns: 0.0 };
    fn plus(self, o: Self) -> Self {
        Affine { fixed_ns: self.fixed_ns + o.fixed_ns, per_byte_ns: self.per_byte_ns + o.per_byte_ns }
    }
    fn times(self, n: u32) -> Self {
        Affine { fixed_ns: f64::from(n) * self.fixed_ns, per_byte_ns: f64::from(n) * self.per_byte_ns }
    }
    fn latency(latency: SimTime) -> Self {
        Affine { fixed_ns: latency.as_ns() as f64, per_byte_ns: 0.0 }
    }
    fn bytes(bytes: f64) -> (f64, f64) {
        (0.0, bytes)
    }
    fn send_time(left: (f64, f64), bytes_per_s: f64, scale: f64) -> Self {
        Affine { fixed_ns: left.0 / bytes_per_s * 1e9, per_byte_ns: left.1 / bytes_per_s * 1e9 * scale }
    }
    fn sent(left: (f64, f64), bytes_per_s: f64, from: Self, to: Self, scale: f64) -> (f64, f64) {
        let per_ns = bytes_per_s * 1e-9;
        let slope = if scale > 0.0 { (to.per_byte_ns - from.per_byte_ns) * per_ns / scale } else { 0.0 };
        (left.0 - (to.fixed_ns - from.fixed_ns) * per_ns, left.1 - slope)
    }
}

/// The two ranks (indices into `ranks`) each transfer waits on and holds up, as the
/// flow runner counts them: a transfer to or from a switch (NVLS) involves only its
/// GPU end. A GPU outside `ranks` (which expansion never produces) maps to rank 0.
pub fn rank_ends(ranks: &[u32], transfers: &[Transfer]) -> Vec<(u32, u32)> {
    let mut index: Vec<(u32, u32)> = ranks.iter().enumerate().map(|(i, &g)| (g, i as u32)).collect();
    index.sort_unstable();
    let find = |g: u32| index.binary_search_by_key(&g, |&(gg, _)| gg).ok().map(|p| index[p].1);
    transfers
        .iter()
        .map(|t| {
            let (s, d) = (find(t.src), find(t.dst));
            let gpu_end = s.or(d).unwrap_or(0);
            (s.unwrap_or(gpu_end), d.unwrap_or(gpu_end))
        })
        .collect()
}

/// One step shape of a schedule, prepared for evaluation.
pub(super) struct Step {
    /// Each transfer's ranks, route and bytes.
    pub ends: Vec<(u32, u32)>,
    pub routes: Vec<Route>,
    pub bytes: Vec<f64>,
    /// Rank r's transfers: `inv[inv_off[r]..inv_off[r + 1]]` (a transfer twice where
    /// both its ends are r, as for NVLS).
    pub inv_off: Vec<u32>,
    pub inv: Vec<u32>,
    pub repeat: u32,
}

/// The schedule's phases, prepared (routes looked up once).
pub(super) fn prepare(topo: &Topology, schedule: &Schedule) -> Vec<Step> {
    let n = schedule.ranks.len();
    let step = |transfers: &[Transfer], repeat: u32| {
        let ends = rank_ends(&schedule.ranks, transfers);
        let mut inv_off = vec![0u32; n + 1];
        for &(a, b) in &ends {
            inv_off[a as usize + 1] += 1;
            inv_off[b as usize + 1] += 1;
        }
        for r in 0..n {
            inv_off[r + 1] += inv_off[r];
        }
        let mut fill = inv_off.clone();
        let mut inv = vec![0u32; 2 * ends.len()];
        for (i, &(a, b)) in ends.iter().enumerate() {
            for x in [a as usize, b as usize] {
                inv[fill[x] as usize] = i as u32;
                fill[x] += 1;
            }
        }
        Step {
            routes: transfers.iter().map(|t| Schedule::route(topo, schedule.step_latency, t)).collect(),
            bytes: transfers.iter().map(|t| t.bytes.max(0.0)).collect(),
            ends,
            inv_off,
            inv,
            repeat,
        }
    };
    schedule.phases.iter().map(|p| step(&p.transfers, p.repeat)).collect()
}

/// The critical path through `steps` over `n` ranks that all start at `startup` (the
/// schedule's set-up): `max` picks the later of two path costs, `scale` turns the
/// expansion's payload into one byte (lines; ignored by times).
pub(super) fn critical_path<C: PathCost>(
    topo: &Topology,
    (n, startup): (usize, SimTime),
    steps: &[Step],
    scale: f64,
    max: impl Fn(C, C) -> C,
) -> C {
    let caps: Vec<f64> = topo.links().iter().map(|l| l.bytes_per_s).collect();
    let mut sim = Sim::new(steps, &caps, n, scale, &max);
    let total = sim.total_steps();
    let mut ready = vec![C::latency(startup); n];
    let mut g = 0u64;
    while g < total {
        // Ranks level with each other stay level through steps that end level: the rest
        // of the phase at once (the symmetric algorithms' sum of steps).
        let left = sim.left_in_phase(g);
        let mut one = vec![C::ZERO; n];
        sim.run(g, &mut one, Some(g + 1));
        if one.iter().all(|r| *r == one[0]) {
            let end = ready[0].plus(one[0].times(left));
            ready.iter_mut().for_each(|r| *r = end);
            g += u64::from(left);
            continue;
        }
        // Otherwise as dataflow until the ranks are level again (or the end).
        g = sim.run(g, &mut ready, None);
    }
    ready.into_iter().reduce(&max).unwrap_or(C::ZERO)
}
