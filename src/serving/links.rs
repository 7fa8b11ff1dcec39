//! Transfers on links that several replicas or pipeline stages cross, shared by
//! processor sharing while they overlap in time.
//!
//! Most of a serving run's traffic is priced in O(1) when its batch forms (see
//! [`super::pricing`]). A link crossed by more than one (replica, stage) is different:
//! what crosses it depends on when the other users' batches happen to run. Each use of
//! such a link is booked here as a [`Transfer`]: it starts at a known instant, needs
//! `work_ns` of its uncontended time, and while it runs it would put `bytes_per_ns` on
//! each of its links. Transfers that overlap on a link share it by max-min fairness
//! of their progress rates (progressive filling: every unfrozen transfer speeds up
//! together until a link is full or it runs at its uncontended speed), so two equal
//! transfers that each want the whole link get half of it each for the overlap and
//! all of it otherwise. A transfer alone on its links always runs at its uncontended
//! speed and ends exactly when its closed form says.
//!
//! Finish times are projections: a transfer booked later, or a link whose capacity
//! changes mid-run (a `link_slowdown` what-if), moves the finish of every transfer it
//! overlaps, and [`LinkLedger::project`] reports each move so the caller can move the
//! events that wait on them. Time is integer ns outside, `f64` ns inside the fluid
//! model; a transfer that was never slowed keeps its exact integer end.

use crate::engine::SimTime;
use crate::hardware::topology::LinkId;
use std::collections::BTreeMap;

/// Who is waiting for a transfer: the batch, its replica and the stage it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Batch sequence number (as the pipeline numbers batches).
    pub batch: u64,
    /// DP replica.
    pub replica: u32,
    /// Pipeline stage ([`Owner::NO_STAGE`] for a transfer no stage waits for).
    pub stage: u32,
}

impl Owner {
    /// The stage of a transfer no stage run waits for (a KV handoff between pools).
    pub const NO_STAGE: u32 = u32::MAX;

    /// The KV handoff of the request in `slot` to decode instance `decode`.
    pub fn handoff(slot: u32, decode: u32) -> Owner {
        Owner { batch: slot as u64, replica: decode, stage: Self::NO_STAGE }
    }

    /// True for the tail of a stage run (false for a handoff).
    pub fn is_stage(&self) -> bool {
        self.stage != Self::NO_STAGE
    }
}

/// One transfer on shared links.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// Who waits for it.
    pub owner: Owner,
    /// When it starts, ns.
    pub start_ns: u64,
    /// Its uncontended duration, ns.
    pub work_ns: u64,
    /// What it would put on each link per ns at its uncontended speed, bytes / ns.
    pub demand: Vec<(LinkId, f64)>,
    /// Uncontended time still to do at the ledger's clock, ns.
    left_ns: f64,
    /// Projected finish, ns.
    finish_ns: u64,
    /// Ran slower than uncontended at some point.
    slowed: bool,
    /// A slowed end is rounded up to the whole ns (the last byte's ns, as a transfer's
    /// closed form counts it) rather than to the nearest.
    round_up: bool,
}

impl Transfer {
    /// Its end if nothing else had been on its links.
    pub fn alone_end(&self) -> SimTime {
        SimTime(self.start_ns + self.work_ns)
    }
    /// Its projected (or, once done, actual) end.
    pub fn finish(&self) -> SimTime {
        SimTime(self.finish_ns)
    }
}

/// A transfer whose projected end moved, by how much (ns, later if positive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Move {
    /// Who waits for it.
    pub owner: Owner,
    /// New end minus old end, ns (later if positive).
    pub delta_ns: i64,
    /// The old end, ns.
    pub from_ns: u64,
}

/// Transfers on shared links and the fluid model that shares them.
#[derive(Clone, Debug, Default)]
pub struct LinkLedger {
    /// Capacity of each link, bytes / ns (indexed by link id).
    capacity: Vec<f64>,
    /// Booked transfers not yet finished, by id.
    live: BTreeMap<u64, Transfer>,
    next_id: u64,
    /// The clock up to which `left_ns` is committed, ns.
    clock: f64,
}

/// Slack for float comparisons of times and loads, ns or fraction.
const EPS: f64 = 1e-9;

impl LinkLedger {
    /// A ledger over links of these capacities (bytes per second, by link id).
    pub fn new(bytes_per_s: &[f64]) -> Self {
        LinkLedger { capacity: bytes_per_s.iter().map(|b| b / 1e9).collect(), ..Default::default() }
    }

    /// Sets a link's capacity from the ledger's clock on (call [`Self::advance`] to the
    /// instant first, then [`Self::project`]).
    pub fn set_capacity(&mut self, link: LinkId, bytes_per_s: f64) {
        if let Some(c) = self.capacity.get_mut(link as usize) {
            *c = bytes_per_s / 1e9;
        }
    }

    /// Books a transfer of `bytes` on each listed link, starting at `start` and taking
    /// `work_ns` alone (`start` not before the ledger's clock). Returns its id; call
    /// [`Self::project`] for its finish and the moves of the others.
    pub fn book(&mut self, owner: Owner, start: SimTime, work_ns: u64, bytes: &[(LinkId, f64)]) -> u64 {
        self.book_rounded(owner, start, work_ns, bytes, false)
    }

    /// [`Self::book`] for bytes whose end, when slowed, is the ns the last one lands in
    /// (rounded up): a KV handoff, whose closed form `ceil(bytes / bandwidth)` is too.
    pub fn book_bytes(&mut self, owner: Owner, start: SimTime, work_ns: u64, bytes: &[(LinkId, f64)]) -> u64 {
        self.book_rounded(owner, start, work_ns, bytes, true)
    }

    fn book_rounded(
        &mut self,
        owner: Owner,
        start: SimTime,
        work_ns: u64,
        bytes: &[(LinkId, f64)],
        round_up: bool,
    ) -> u64 {
        let w = work_ns.max(1) as f64;
        // What it asks of a link never exceeds the link: alone, it runs at its own speed.
        let demand = bytes
            .iter()
            .filter(|(_, b)| *b > 0.0)
            .map(|&(l, b)| (l, (b / w).min(self.capacity.get(l as usize).copied().unwrap_or(f64::INFINITY))))
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        let start_ns = start.as_ns().max(self.clock.ceil() as u64);
        let t = Transfer {
            owner,
            start_ns,
            work_ns,
            demand,
            left_ns: work_ns as f64,
            finish_ns: start_ns + work_ns,
            slowed: false,
            round_up,
        };
        self.live.insert(id, t);
        id
    }

    /// The transfer `id` if it is still booked.
    pub fn get(&self, id: u64) -> Option<&Transfer> {
        self.live.get(&id)
    }

    /// Transfers still booked.
    pub fn live(&self) -> impl Iterator<Item = &Transfer> {
        self.live.values()
    }

    /// Drops every stage transfer of `batch` (its replica failed).
    pub fn cancel_batch(&mut self, batch: u64) {
        self.live.retain(|_, t| !t.owner.is_stage() || t.owner.batch != batch);
    }

    /// Runs the fluid model from the clock to `to`, committing progress; returns the
    /// transfers that finished by then, in finishing order.
    pub fn advance(&mut self, to: SimTime) -> Vec<Transfer> {
        let to = to.as_ns() as f64;
        if self.live.is_empty() {
            // Nothing to run (most calls between transfers): no step to take.
            self.clock = self.clock.max(to);
            return Vec::new();
        }
        let mut done = Vec::new();
        while self.clock < to {
            let Some(end) = step(&self.capacity, &mut self.live, self.clock, to) else {
                self.clock = to;
                break;
            };
            self.clock = end;
            let finished: Vec<u64> = self.live.iter().filter(|(_, t)| t.left_ns <= EPS).map(|(id, _)| *id).collect();
            for id in finished {
                if let Some(mut t) = self.live.remove(&id) {
                    t.finish_ns = finish_of(&t, end);
                    done.push(t);
                }
            }
        }
        done
    }

    /// Projects every booked transfer's finish from the clock (nothing committed), and
    /// returns the moves of those whose projected end changed, in booking order.
    pub fn project(&mut self) -> Vec<Move> {
        // Nothing slowed so far and everything booked fits on every link at once: all
        // run at their uncontended speed and end at their closed forms (no fluid to run).
        let unmoved = self.live.values().all(|t| !t.slowed && t.finish_ns == t.start_ns + t.work_ns);
        if unmoved && fits(&self.capacity, self.live.values()) {
            return Vec::new();
        }
        let (mut live, mut clock) = (self.live.clone(), self.clock);
        let mut finish: BTreeMap<u64, u64> = BTreeMap::new();
        while !live.is_empty() {
            let Some(end) = step(&self.capacity, &mut live, clock, f64::INFINITY) else { break };
            clock = end;
            let finished: Vec<u64> = live.iter().filter(|(_, t)| t.left_ns <= EPS).map(|(id, _)| *id).collect();
            for id in finished {
                if let Some(t) = live.remove(&id) {
                    finish.insert(id, finish_of(&t, end));
                }
            }
        }
        let mut moves = Vec::new();
        for (id, t) in self.live.iter_mut() {
            let f = finish.get(id).copied().unwrap_or(t.finish_ns);
            if f != t.finish_ns {
                moves.push(Move { owner: t.owner, delta_ns: f as i64 - t.finish_ns as i64, from_ns: t.finish_ns });
                t.finish_ns = f;
            }
        }
        moves
    }
}

/// One step of the fluid model over `live` from `now`, at most to `limit`: the rates of
/// the running transfers hold until the next start or finish. Returns the step's end
/// (None when nothing runs or starts before `limit`).
fn step(capacity: &[f64], live: &mut BTreeMap<u64, Transfer>, now: f64, limit: f64) -> Option<f64> {
    let running: Vec<u64> =
        live.iter().filter(|(_, t)| t.start_ns as f64 <= now + EPS && t.left_ns > EPS).map(|(id, _)| *id).collect();
    let next_start = live.values().map(|t| t.start_ns as f64).filter(|s| *s > now + EPS).fold(f64::INFINITY, f64::min);
    if running.is_empty() && next_start > limit {
        return None;
    }
    let rates = rates(capacity, live, &running);
    let next_finish =
        running.iter().zip(&rates).map(|(id, r)| now + live[id].left_ns / r).fold(f64::INFINITY, f64::min);
    let end = next_start.min(next_finish).min(limit);
    for (id, r) in running.iter().zip(&rates) {
        let Some(t) = live.get_mut(id) else { continue };
        if *r < 1.0 - EPS {
            t.slowed = true;
        }
        // The transfer(s) that set the step's end finish exactly at it.
        t.left_ns = if now + t.left_ns / r <= end + EPS { 0.0 } else { t.left_ns - r * (end - now) };
    }
    Some(end)
}

/// A transfer's end at fluid time `at`: exact when it was never slowed.
fn finish_of(t: &Transfer, at: f64) -> u64 {
    if t.slowed {
        // Up, less a µns of float noise, so an exact whole ns is not pushed to the next.
        let at = if t.round_up { (at - 1e-6).ceil() } else { at.round() };
        (at as u64).max(t.start_ns + t.work_ns)
    } else {
        t.start_ns + t.work_ns
    }
}

/// True when `transfers`' uncontended demands, summed per link, fit every link.
fn fits<'a>(capacity: &[f64], transfers: impl Iterator<Item = &'a Transfer>) -> bool {
    let mut transfers = transfers.peekable();
    let Some(first) = transfers.next() else { return true };
    if transfers.peek().is_none() {
        // Alone, a transfer needs no sum per link.
        return first.demand.iter().all(|(l, d)| *d <= capacity[*l as usize] * (1.0 + EPS));
    }
    // Sums by link, each link's terms added in booking order (the sums a map would make;
    // a handful of transfers cross a few dozen links, so a list is searched).
    let mut load: Vec<(LinkId, f64)> = Vec::new();
    for &(l, d) in std::iter::once(first).chain(transfers).flat_map(|t| t.demand.iter()) {
        match load.iter_mut().find(|(x, _)| *x == l) {
            Some(e) => e.1 += d,
            None => load.push((l, d)),
        }
    }
    load.iter().all(|(l, sum)| *sum <= capacity[*l as usize] * (1.0 + EPS))
}

/// Progress rates (1 = uncontended) of the running transfers: max-min fair byte rates
/// by progressive filling. A transfer's rate is what it puts on its busiest link
/// (`peak`); every unfrozen transfer's rate rises together until a link is full (its
/// transfers freeze) or it reaches its uncontended peak (it freezes at speed 1).
fn rates(capacity: &[f64], live: &BTreeMap<u64, Transfer>, running: &[u64]) -> Vec<f64> {
    // Most of the time the links hold everyone's uncontended demand: all at speed 1.
    if fits(capacity, running.iter().map(|id| &live[id])) {
        return vec![1.0; running.len()];
    }
    let peak: Vec<f64> = running.iter().map(|id| live[id].demand.iter().map(|(_, d)| *d).fold(0.0, f64::max)).collect();
    let mut speed: Vec<Option<f64>> = peak.iter().map(|p| (*p <= 0.0).then_some(1.0)).collect();
    while speed.iter().any(|s| s.is_none()) {
        // Per link: load of frozen transfers, and load per unit of the common level.
        let mut links: BTreeMap<LinkId, (f64, f64)> = BTreeMap::new();
        for (i, id) in running.iter().enumerate() {
            for &(l, d) in &live[id].demand {
                let e = links.entry(l).or_default();
                match speed[i] {
                    Some(s) => e.0 += s * d,
                    None => e.1 += d / peak[i],
                }
            }
        }
        let cap = |l: LinkId, used: f64, per_level: f64| (capacity[l as usize] - used).max(0.0) / per_level;
        let by_link = links.iter().filter(|(_, (_, k))| *k > 0.0).map(|(l, (u, k))| cap(*l, *u, *k));
        let by_peak = (0..running.len()).filter(|i| speed[*i].is_none()).map(|i| peak[i]);
        let level = by_link.chain(by_peak).fold(f64::INFINITY, f64::min);
        let full: Vec<LinkId> = links
            .iter()
            .filter(|(l, (u, k))| *k > 0.0 && cap(**l, *u, *k) <= level * (1.0 + EPS))
            .map(|(l, _)| *l)
            .collect();
        for (i, id) in running.iter().enumerate() {
            let capped = level >= peak[i] * (1.0 - EPS);
            if speed[i].is_none() && (capped || live[id].demand.iter().any(|(l, _)| full.contains(l))) {
                speed[i] = Some((level / peak[i]).min(1.0));
            }
        }
    }
    speed.into_iter().map(|s| s.unwrap_or(1.0).max(EPS)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(batch: u64) -> Owner {
        Owner { batch, replica: batch as u32, stage: 0 }
    }

    #[test]
    fn a_transfer_alone_ends_at_its_closed_form() {
        // 1 GB/s link = 1 byte/ns; 500 bytes over 1000 ns wants half of it: never slowed.
        let mut l = LinkLedger::new(&[1e9]);
        l.book(owner(0), SimTime(7), 1000, &[(0, 500.0)]);
        assert!(l.project().is_empty());
        let done = l.advance(SimTime(10_000));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].finish(), SimTime(1007));
    }

    #[test]
    fn two_transfers_share_one_link_for_their_overlap() {
        // Link of 1 byte/ns. A: 1000 bytes from t=0, alone 1000 ns (wants the whole link).
        // B: the same from t=500. Alone until 500, A has 500 ns of work left; from 500
        // both run at half speed: A's 500 ns take 1000 ns (ends 1500); B has done 500 of
        // its 1000 by then and runs alone for the remaining 500: ends 2000.
        let mut l = LinkLedger::new(&[1e9]);
        let a = l.book(owner(0), SimTime(0), 1000, &[(0, 1000.0)]);
        assert!(l.project().is_empty());
        let b = l.book(owner(1), SimTime(500), 1000, &[(0, 1000.0)]);
        let moves = l.project();
        // Booking B moved A by 500 ns; B's own projection moved from 1500 to 2000.
        let mv = |b, from_ns| Move { owner: owner(b), delta_ns: 500, from_ns };
        assert_eq!(moves, vec![mv(0, 1000), mv(1, 1500)]);
        assert_eq!(l.get(a).map(|t| t.finish()), Some(SimTime(1500)));
        assert_eq!(l.get(b).map(|t| t.finish()), Some(SimTime(2000)));
        let done = l.advance(SimTime(5000));
        let ends: Vec<u64> = done.iter().map(|t| t.finish().as_ns()).collect();
        assert_eq!(ends, vec![1500, 2000]);
    }

    #[test]
    fn transfers_that_fit_together_are_not_slowed() {
        // Two transfers of 0.4 byte/ns on a 1 byte/ns link: 0.8 in all, no one slows.
        let mut l = LinkLedger::new(&[1e9]);
        l.book(owner(0), SimTime(0), 1000, &[(0, 400.0)]);
        l.book(owner(1), SimTime(0), 1000, &[(0, 400.0)]);
        assert!(l.project().is_empty());
    }

    #[test]
    fn a_light_transfer_keeps_its_speed_and_the_heavy_one_takes_the_rest() {
        // Link 1 byte/ns; A wants 0.2 byte/ns, B 1 byte/ns, both from 0, 1000 ns alone.
        // Max-min: the fair share 0.5 is more than A wants, so A runs at 0.2 (speed 1,
        // ends 1000) and B gets the other 0.8: 800 of its 1000 bytes by 1000, then the
        // whole link for the last 200: ends 1200.
        let mut l = LinkLedger::new(&[1e9]);
        l.book(owner(0), SimTime(0), 1000, &[(0, 200.0)]);
        l.book(owner(1), SimTime(0), 1000, &[(0, 1000.0)]);
        l.project();
        let ends: Vec<u64> = l.advance(SimTime(5000)).iter().map(|t| t.finish().as_ns()).collect();
        assert_eq!(ends, vec![1000, 1200]);
    }

    #[test]
    fn dropping_the_transfer_that_slowed_another_moves_it_back() {
        // A: 1000 bytes from 0 on a 1 byte/ns link; B the same from 500: A's end moves
        // to 1500 (see above). B's batch is lost: A runs alone again and ends at 1000,
        // 500 earlier (all that is left fits, but A's projected end is not its own).
        let mut l = LinkLedger::new(&[1e9]);
        l.book(owner(0), SimTime(0), 1000, &[(0, 1000.0)]);
        l.book(owner(1), SimTime(500), 1000, &[(0, 1000.0)]);
        l.project();
        l.cancel_batch(1);
        assert_eq!(l.project(), vec![Move { owner: owner(0), delta_ns: -500, from_ns: 1500 }]);
    }

    #[test]
    fn a_capacity_change_moves_a_transfer_in_flight() {
        // 1000 bytes at 1 byte/ns from 0. At 400 the link drops to half: 600 ns of work
        // left at half speed take 1200 ns: ends at 1600, not 1000.
        let mut l = LinkLedger::new(&[1e9]);
        l.book(owner(0), SimTime(0), 1000, &[(0, 1000.0)]);
        l.project();
        assert!(l.advance(SimTime(400)).is_empty());
        l.set_capacity(0, 0.5e9);
        assert_eq!(l.project(), vec![Move { owner: owner(0), delta_ns: 600, from_ns: 1000 }]);
        let done = l.advance(SimTime(10_000));
        assert_eq!(done[0].finish(), SimTime(1600));
    }
}
