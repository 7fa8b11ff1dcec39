//! Closed-form times of expanded schedules on idle links, as the flow runner executes
//! them: as dataflow, not in lock-step (see the `dataflow` module for the rules). The
//! collective ends when its last rank does: the longest (critical) path through its
//! transfers, with one ready time per rank.
//!
//! Where every rank takes part in every step with the same slowest transfer (rings,
//! halving-doubling, pipelined hierarchical, NVLS, pairwise all-to-all of even sizes)
//! this is the sum over steps of each step's slowest transfer, the barrier-synchronous
//! α-β form. Where ranks differ (the double binary tree: ranks whose transfers in a
//! step are all NVLink run ahead of those waiting on a NIC, and a parent's two children
//! may send at different times) ranks drift apart and the critical path is shorter
//! than that sum, as in the flow model.
//!
//! [`schedule_time`] rounds each transfer's time to whole ns, as the flow model does.
//! [`convex_closed_form`] gives the same critical path as a function of the payload:
//! every transfer scales with it, so while the order of events holds the time is a line
//! (latency, ns per byte), and piecewise affine over all sizes. Its pieces are found by
//! probing: the critical path's line at a size touches the function there; between two
//! such lines, probe where they cross: if the function is no higher there they are
//! neighbours, otherwise the new line lies between them. That is exact where the
//! function is convex, as it is for every lock-step algorithm. Max-min sharing can bend
//! it the other way (a transfer that starts later takes a smaller share): the tree on
//! 4 x 8 H100 in 8 chunks, from 3.8 to 5 MB, where the lines then err high by up to
//! 1.6 % (tests/collective_dataflow.rs).

use super::dataflow::{critical_path, prepare};
use super::Schedule;
use crate::engine::SimTime;
use crate::hardware::topology::Topology;
use crate::parallel::price::Affine;

/// Closed-form time of an expanded schedule on an idle network, run as dataflow (see
/// the module doc), each transfer rounded to whole ns as the flow model does.
pub fn schedule_time(topo: &Topology, schedule: &Schedule) -> SimTime {
    critical_path(topo, (schedule.ranks.len(), schedule.startup), &prepare(topo, schedule), 1.0, SimTime::max)
}

/// The later of two lines at payload `s` (the steeper on a tie, so the critical path's
/// line is the one that holds just above `s`); `s` infinite: the steeper.
fn later_at(a: Affine, b: Affine, s: f64) -> Affine {
    let key = |l: Affine| {
        if s.is_finite() {
            (l.fixed_ns + l.per_byte_ns * s, l.per_byte_ns)
        } else {
            (l.per_byte_ns, l.fixed_ns)
        }
    };
    let (ka, kb) = (key(a), key(b));
    if kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).is_gt() {
        b
    } else {
        a
    }
}

/// Most probes [`convex_closed_form`] makes: each finds a new piece or proves two
/// found ones neighbours, so this bounds the pieces.
const MAX_PROBES: usize = 256;

/// The closed form of `schedule`, expanded for a payload of `bytes`, as a function of
/// the payload: the affine pieces, by increasing slope, whose largest is its time at
/// every size (see the module doc), each piece's latency in ns and rate in ns per
/// payload byte. Equal to [`schedule_time`] of the schedule expanded at any size, up
/// to its per-transfer rounding.
pub fn convex_closed_form(topo: &Topology, schedule: &Schedule, bytes: f64) -> Vec<Affine> {
    let scale = if bytes > 0.0 { 1.0 / bytes } else { 0.0 };
    let steps = prepare(topo, schedule);
    let ranks = (schedule.ranks.len(), schedule.startup);
    let line_at = |s: f64| critical_path(topo, ranks, &steps, scale, |a, b| later_at(a, b, s));
    let (first, last) = (line_at(0.0), line_at(f64::INFINITY));
    let mut pieces = vec![first];
    // Pairs of found lines still to check, the leftmost on top.
    let mut todo = vec![(first, last)];
    let mut probes = 0;
    while let Some((a, b)) = todo.pop() {
        if a == b {
            continue;
        }
        let x = (b.fixed_ns - a.fixed_ns) / (a.per_byte_ns - b.per_byte_ns);
        let at = |l: Affine| l.fixed_ns + l.per_byte_ns * x;
        probes += 1;
        let c = if x.is_finite() && x > 0.0 && probes <= MAX_PROBES { line_at(x) } else { b };
        // No higher where the two cross (up to the sums' rounding): neighbours.
        if c == a || c == b || at(c) <= at(a).max(at(b)) + 1e-12 * at(a).abs() {
            pieces.push(b);
        } else {
            todo.push((c, b));
            todo.push((a, c));
        }
    }
    pieces.dedup();
    pieces
}
