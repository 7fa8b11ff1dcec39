//! A schedule run as dataflow on idle links, as the flow runner runs it: one ready time
//! per rank; a transfer of step k starts once both its ranks finished every transfer
//! they take part in before step k (a rank with no part in a step moves past it at
//! once) and ends its route's latency after its last byte left.
//!
//! Bytes leave at max-min fair rates among the step's transfers in flight (the
//! `maxmin` module): transfers that start together on a link share it, one that starts
//! after the link drained has it to itself, one held back elsewhere leaves the rest to
//! the others, as in the flow model. Only transfers of one step are weighed together:
//! where ranks' own links carry the traffic (NVLink ports, one NIC per GPU, a
//! non-blocking spine) no two steps' transfers meet on a link, since a rank starts a
//! step only after its transfers of the step before. Where a link serves several ranks
//! (NICs shared by GPUs, an oversubscribed spine) ranks that drift apart (the tree's)
//! put transfers of different steps on it at once, and this errs low (README, Known
//! limitations); lock-step algorithms stay exact there.
//!
//! The evaluation is generic over what a path costs: whole ns (the time at one size,
//! rounded as the flow model rounds) or a line in the payload (the critical path's line
//! at one size, for the convex form).

use super::maxmin::{self, StepFlows};
use super::{Schedule, Transfer};
use crate::engine::SimTime;
use crate::hardware::topology::Topology;
use crate::parallel::price::Affine;
use std::cmp::Ordering;

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
    ends: Vec<(u32, u32)>,
    latency: Vec<SimTime>,
    flows: StepFlows,
    repeat: u32,
}

/// The schedule's phases, prepared (routes looked up once).
pub(super) fn prepare(topo: &Topology, schedule: &Schedule) -> Vec<Step> {
    let step = |transfers: &[Transfer], repeat: u32| Step {
        ends: rank_ends(&schedule.ranks, transfers),
        latency: transfers.iter().map(|t| topo.route(t.src, t.dst).latency).collect(),
        flows: StepFlows::new(topo, transfers),
        repeat,
    };
    schedule.phases.iter().map(|p| step(&p.transfers, p.repeat)).collect()
}

/// The critical path through `steps` over `n` ranks that all start at zero: `max`
/// picks the later of two path costs, `scale` turns the expansion's payload into one
/// byte (lines; ignored by times).
pub(super) fn critical_path<C: PathCost>(n: usize, steps: &[Step], scale: f64, max: impl Fn(C, C) -> C) -> C {
    let order = |a: C, b: C| {
        if a == b {
            Ordering::Equal
        } else if max(a, b) == b {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    };
    let mut ready = vec![C::ZERO; n];
    let mut next = ready.clone();
    let (mut starts, mut drains) = (Vec::new(), Vec::new());
    let mut run = |s: &Step, ready: &[C], next: &mut [C]| {
        starts.clear();
        starts.extend(s.ends.iter().map(|&(a, b)| max(ready[a as usize], ready[b as usize])));
        maxmin::drains(&s.flows, &starts, scale, &order, &mut drains);
        for (k, &(a, b)) in s.ends.iter().enumerate() {
            let end = drains[k].plus(C::latency(s.latency[k]));
            next[a as usize] = max(next[a as usize], end);
            next[b as usize] = max(next[b as usize], end);
        }
    };
    for s in steps {
        let mut left = s.repeat;
        while left > 0 {
            // Ranks level with each other stay level through steps that end level: the
            // rest of the phase at once (the symmetric algorithms' sum of steps).
            if ready.iter().all(|r| *r == ready[0]) {
                let zero = vec![C::ZERO; n];
                next.copy_from_slice(&zero);
                run(s, &zero, &mut next);
                if next.iter().all(|r| *r == next[0]) {
                    let end = ready[0].plus(next[0].times(left));
                    ready.iter_mut().for_each(|r| *r = end);
                    break;
                }
            }
            next.copy_from_slice(&ready);
            run(s, &ready, &mut next);
            std::mem::swap(&mut ready, &mut next);
            left -= 1;
        }
    }
    ready.into_iter().reduce(&max).unwrap_or(C::ZERO)
}
