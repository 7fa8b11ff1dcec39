//! Closed-form times of expanded schedules on idle links: per step, each transfer takes
//! its route's latency plus the time its most loaded link needs for all the step's
//! bytes on it (or its route's rate cap, for NVLS); the step takes its slowest
//! transfer; a schedule is the sum of its steps.
//!
//! [`step_time`] rounds each transfer's time to whole ns, as the flow model does, so
//! the two agree to the ns. [`convex_closed_form`] gives the same time as a function of
//! the payload: a step's transfers scale with it, so each is a line (latency, ns per
//! byte); a step is the largest of its lines, a schedule the sum of its steps: convex
//! and piecewise affine, bending where a step's slowest transfer changes (a step that
//! crosses NVLink and NICs is gated by the NICs' larger latency at small sizes and by
//! NVLink's bytes at large ones).

use super::{Schedule, Transfer};
use crate::engine::SimTime;
use crate::hardware::topology::{LinkId, Topology};
use crate::parallel::price::Affine;

/// Each transfer's latency (its route's, or `latency` when the schedule sets one) and
/// its time for its bytes, ns unrounded: the most loaded link of its route with all the
/// step's bytes on it, or its route's rate cap.
fn transfer_costs(topo: &Topology, transfers: &[Transfer], latency: Option<SimTime>) -> Vec<(SimTime, f64)> {
    let routes: Vec<_> = transfers.iter().map(|t| topo.route(t.src, t.dst)).collect();
    let mut loads: Vec<(LinkId, f64)> = Vec::with_capacity(transfers.len() * 2);
    for (t, r) in transfers.iter().zip(&routes) {
        if t.bytes > 0.0 {
            loads.extend(r.links().iter().map(|&l| (l, t.bytes)));
        }
    }
    loads.sort_unstable_by_key(|&(l, _)| l);
    // Sum per link, in place: one entry per link, in link order.
    let mut sums: Vec<(LinkId, f64)> = Vec::with_capacity(loads.len());
    for (l, b) in loads {
        match sums.last_mut() {
            Some((last, sum)) if *last == l => *sum += b,
            _ => sums.push((l, b)),
        }
    }
    let link_ns = |l: LinkId| {
        let i = sums.partition_point(|&(x, _)| x < l);
        sums.get(i).filter(|e| e.0 == l).map_or(0.0, |e| e.1 / topo.link(l).bytes_per_s * 1e9)
    };
    transfers
        .iter()
        .zip(&routes)
        .map(|(t, r)| {
            let own = if t.bytes > 0.0 {
                r.links().iter().map(|&l| link_ns(l)).fold(t.bytes / r.rate_cap * 1e9, f64::max)
            } else {
                0.0
            };
            (latency.unwrap_or(r.latency), own)
        })
        .collect()
}

/// Closed-form time of one step on an idle network: the latest transfer, each taking
/// its route's latency plus the time its most loaded link needs for all the step's
/// bytes on it (or its route's rate cap, for NVLS). With one latency for the whole
/// step this is the largest latency plus the busiest link's time; where NVLink and NIC
/// transfers share a step, each pays its own tier's latency, as in the flow model.
pub fn step_time(topo: &Topology, transfers: &[Transfer]) -> SimTime {
    latest(topo, transfers, None)
}

/// [`step_time`] with every transfer paying `latency` when it is set.
fn latest(topo: &Topology, transfers: &[Transfer], latency: Option<SimTime>) -> SimTime {
    transfer_costs(topo, transfers, latency)
        .into_iter()
        .fold(SimTime::ZERO, |worst, (latency, own)| worst.max(latency + SimTime::from_ns_f64(own)))
}

/// Closed-form time of an expanded schedule on an idle network (its start-up plus the
/// sum of its steps).
pub fn schedule_time(topo: &Topology, schedule: &Schedule) -> SimTime {
    schedule.phases.iter().fold(schedule.startup, |acc, p| {
        let t = latest(topo, &p.transfers, schedule.step_latency);
        acc + SimTime(t.as_ns() * p.repeat as u64)
    })
}

/// The closed form of `schedule`, expanded for a payload of `bytes`, as a function of
/// the payload: the affine pieces whose largest is its time at every size (see the
/// module doc), each piece's latency in ns and rate in ns per payload byte. Equal to
/// [`schedule_time`] of the schedule expanded at any size, up to its per-step rounding.
pub fn convex_closed_form(topo: &Topology, schedule: &Schedule, bytes: f64) -> Vec<Affine> {
    let scale = if bytes > 0.0 { 1.0 / bytes } else { 0.0 };
    // Per step: its lines, one per distinct latency (the steepest of that latency).
    let steps: Vec<(f64, Vec<(f64, f64)>)> = schedule
        .phases
        .iter()
        .map(|p| {
            let mut lines: Vec<(f64, f64)> = Vec::new();
            for (latency, own) in transfer_costs(topo, &p.transfers, schedule.step_latency) {
                let (lat, rate) = (latency.as_ns() as f64, own * scale);
                match lines.iter_mut().find(|l| l.0 == lat) {
                    Some(l) => l.1 = l.1.max(rate),
                    None => lines.push((lat, rate)),
                }
            }
            (p.repeat as f64, lines)
        })
        .collect();
    // The slowest line of a step changes only where two of its lines cross.
    let mut cuts: Vec<f64> = vec![0.0];
    for (_, lines) in &steps {
        for (i, a) in lines.iter().enumerate() {
            for b in &lines[i + 1..] {
                let s = (b.0 - a.0) / (a.1 - b.1);
                if s.is_finite() && s > 0.0 {
                    cuts.push(s);
                }
            }
        }
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let last = cuts[cuts.len() - 1];
    let probes = cuts.windows(2).map(|w| 0.5 * (w[0] + w[1])).chain([2.0 * last + 1.0]);
    let mut pieces: Vec<Affine> = probes
        .map(|s| {
            let startup = Affine { fixed_ns: schedule.startup.as_ns() as f64, per_byte_ns: 0.0 };
            steps.iter().fold(startup, |acc, (repeat, lines)| {
                let at = |l: &(f64, f64)| l.0 + l.1 * s;
                let top = lines.iter().copied().max_by(|a, b| at(a).total_cmp(&at(b))).unwrap_or((0.0, 0.0));
                Affine { fixed_ns: acc.fixed_ns + repeat * top.0, per_byte_ns: acc.per_byte_ns + repeat * top.1 }
            })
        })
        .collect();
    pieces.dedup();
    pieces
}
