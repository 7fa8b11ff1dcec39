//! The flow-level network: transfers as flows over links, sharing each link by
//! max-min fairness (progressive filling).
//!
//! A flow is started on a [`Route`] with a byte count. While it drains, it holds a
//! share of every link on its route. Shares are re-computed when flows start or
//! drain or a link's capacity changes, over the links and flows the change can reach
//! (see the `sharing` module), and every change at one instant is one re-sharing. The
//! flows fixed at one link's fair share drain together against that link's virtual
//! clock (see the `groups` module), so a re-sharing that moves a link's share moves all
//! their drain instants at once; completions (the latency tail after the last byte) are
//! events in the engine's [`EventQueue`].
//!
//! Latency: a flow's bytes leave at its max-min rate from the moment it starts; the
//! flow completes the route's latency after its last byte left (the latency is added
//! once per flow, at the tail). On an idle link a flow of S bytes thus takes exactly
//! `α + S/B`, the α-β step of the closed forms; [`transfer_time`] is the shared rounding.
//!
//! Driving it: the owner asks [`Network::next_event_time`], wakes up then and calls
//! [`Network::step`], which returns the flows completed at that instant. New flows are
//! started at the network's current instant with [`Network::start_flow`] after
//! [`Network::advance_clock`].
//!
//! Links that slow down or fail while flows run: at the instant, after
//! [`Network::advance_clock`], [`Network::set_link_capacity`] (a fraction of the nominal
//! capacity, 0 for a failure, the nominal value to restore) re-shares the flows in flight
//! from then on; a flow on a failed link stalls with its bytes left. The topology routes
//! every pair one way, so the network never re-routes by itself: an owner that has
//! another path for a flow ([`Network::flows_on_link`] lists them) moves it with
//! [`Network::reroute_flow`].

mod covered;
pub(crate) mod fill;
mod groups;
mod records;
mod sharing;

use super::topology::{LinkId, Route, Topology};
use crate::engine::{EventQueue, SimTime};
use covered::Covered;
use groups::Groups;
use records::{Binding, Flow, Hot, OnLink};
use sharing::Sharing;

/// Handle to a flow (slot index plus generation, so stale handles never alias).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId {
    idx: u32,
    gen: u32,
}

/// A completed flow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowDone {
    /// The flow.
    pub id: FlowId,
    /// The caller's tag given at start.
    pub tag: u64,
    /// When it started.
    pub start: SimTime,
    /// When it completed (last byte out plus route latency).
    pub finish: SimTime,
    /// Bytes carried.
    pub bytes: f64,
}

/// Time to push `bytes` at `bytes_per_s`, rounded to the nanosecond; the one rounding
/// rule shared by the flow model and the closed forms, so both agree exactly.
pub fn transfer_time(bytes: f64, bytes_per_s: f64) -> SimTime {
    if bytes <= 0.0 {
        SimTime::ZERO
    } else {
        SimTime::from_ns_f64(bytes / bytes_per_s * 1e9)
    }
}

/// The cap group of a flow on an uncapped route.
const NO_CAP_GROUP: u32 = u32::MAX;

/// Counters for benchmarks and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Flows ever started.
    pub flows_started: u64,
    /// Sharing recomputations run (at most one per instant with changes).
    pub recomputations: u64,
    /// Sum over recomputations of the flows looked at (the work done).
    pub flows_rerated: u64,
    /// Flows whose rate actually changed (and whose finish was moved).
    pub rates_changed: u64,
}

/// The flow-level network over a topology's links.
#[derive(Clone, Debug)]
pub struct Network {
    caps: Vec<f64>,
    /// Links that can never be full, left out of the sharing (see the `covered` module).
    covered: Covered,
    /// Draining flows on each link, each beside its group (the stand-in while unrated):
    /// a copy laid out so the re-sharing reads a link's rates in one sweep, written when
    /// a flow joins a group.
    link_flows: Vec<Vec<OnLink>>,
    /// Sum of the rates of the draining flows on each link (not kept for covered links).
    load: Vec<f64>,
    flows: Vec<Flow>,
    hot: Vec<Hot>,
    /// Per flow slot, kept apart from [`Flow`] because the re-sharing reads little else:
    /// its route, and the group of its rate cap ([`NO_CAP_GROUP`] on an uncapped route).
    routes: Vec<Route>,
    binding: Vec<Binding>,
    cap_group: Vec<u32>,
    /// Each draining flow's rate and bytes left, as members of bottleneck groups.
    groups: Groups,
    free: Vec<u32>,
    /// Draining flows on routes with a finite rate cap (the re-sharing skips looking
    /// for caps while there are none).
    capped: u32,
    /// Flows holding bandwidth now.
    draining: usize,
    /// Completions (drained flows waiting out their route latency).
    queue: EventQueue<u32>,
    now: SimTime,
    /// Links whose component must be re-shared at the next settle: links of new flows,
    /// full links a flow left, links whose capacity changed.
    seed_links: Vec<LinkId>,
    /// When every change since the last re-sharing is a drain: the lowest rate a
    /// drained flow had (0 after a start, a capacity change or a re-route). Flows
    /// below it keep their rates (see [`sharing`]).
    floor: f64,
    sharing: Sharing,
    stats: NetworkStats,
}

impl Network {
    /// An idle network over `topology`'s links at time zero.
    pub fn new(topology: &Topology) -> Self {
        let n = topology.links().len();
        let caps: Vec<f64> = topology.links().iter().map(|l| l.bytes_per_s).collect();
        Network {
            covered: Covered::new(topology, &caps),
            caps,
            link_flows: vec![Vec::new(); n],
            load: vec![0.0; n],
            flows: Vec::new(),
            hot: Vec::new(),
            routes: Vec::new(),
            binding: Vec::new(),
            cap_group: Vec::new(),
            groups: Groups::new(n),
            free: Vec::new(),
            capped: 0,
            draining: 0,
            queue: EventQueue::new(),
            now: SimTime::ZERO,
            seed_links: Vec::new(),
            floor: f64::INFINITY,
            sharing: Sharing::new(n),
            stats: NetworkStats::default(),
        }
    }

    /// The network's clock: the last instant stepped to or advanced to.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Counters.
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }

    /// Flows holding bandwidth now.
    pub fn draining_flows(&self) -> usize {
        self.draining
    }

    /// Current capacity of a link, bytes/s.
    pub fn link_capacity(&self, link: LinkId) -> f64 {
        self.caps[link as usize]
    }

    /// Sum of the rates of the flows on `link`, bytes/s, as of the last re-sharing.
    pub fn link_load(&self, link: LinkId) -> f64 {
        if self.covered.is_covered(link) {
            return self.link_flows[link as usize].iter().map(|e| self.groups.level(e.group).max(0.0)).sum();
        }
        self.load[link as usize]
    }

    /// Flows on `link` now.
    pub fn link_flow_count(&self, link: LinkId) -> usize {
        self.link_flows[link as usize].len()
    }

    /// The draining flows on `link` now (to re-route them off a failed link).
    pub fn flows_on_link(&self, link: LinkId) -> Vec<FlowId> {
        self.link_flows[link as usize]
            .iter()
            .map(|e| FlowId { idx: e.flow, gen: self.flows[e.flow as usize].gen })
            .collect()
    }

    fn draining_flow(&self, id: FlowId) -> Option<&Flow> {
        self.flows.get(id.idx as usize).filter(|f| f.live && f.gen == id.gen && f.draining)
    }

    /// The current rate of a flow, bytes/s (0 once drained, stalled or unknown).
    pub fn flow_rate(&self, id: FlowId) -> f64 {
        self.draining_flow(id).map_or(0.0, |_| self.groups.rate(id.idx).max(0.0))
    }

    /// The route a draining flow takes now (`None` once drained or unknown).
    pub fn flow_route(&self, id: FlowId) -> Option<Route> {
        self.draining_flow(id).map(|_| self.routes[id.idx as usize])
    }

    /// True while the flow still has bytes to send (it holds a share of its links).
    pub fn is_draining(&self, id: FlowId) -> bool {
        self.draining_flow(id).is_some()
    }

    /// Moves the clock forward to `now` without an event (to start flows then).
    /// `now` must not pass [`Network::next_event_time`]: events are never skipped.
    pub fn advance_clock(&mut self, now: SimTime) {
        debug_assert!(self.next_event_time().is_none_or(|t| now <= t), "advance_clock past a pending event");
        self.now = self.now.max(now);
    }

    /// Sets `link`'s capacity to `bytes_per_s` from now on, for the flows in flight too:
    /// a slowdown sets a fraction of the nominal capacity, a failure sets 0 (its flows
    /// stall, keeping the bytes they have left, until the capacity comes back or they
    /// are moved with [`Network::reroute_flow`]); restoring sets the nominal value.
    /// Negative or NaN capacities count as 0. Flows are re-shared at this instant.
    pub fn set_link_capacity(&mut self, link: LinkId, bytes_per_s: f64) {
        self.caps[link as usize] = if bytes_per_s > 0.0 { bytes_per_s } else { 0.0 };
        let mut flipped = vec![link];
        self.covered.refresh(&self.caps, |l| flipped.push(l));
        for l in flipped {
            for e in self.link_flows[l as usize].clone() {
                self.bind(e.flow);
            }
            self.seed(l);
        }
        self.floor = 0.0;
    }

    /// Moves a draining flow onto `route` from now (say, off a failed link): the bytes it
    /// has left continue there, re-shared at this instant, and it completes with the new
    /// route's latency. Returns false (and does nothing) when the flow is not draining.
    pub fn reroute_flow(&mut self, id: FlowId, route: Route) -> bool {
        if !self.is_draining(id) || route.links().is_empty() {
            return false;
        }
        let rate = self.groups.rate(id.idx);
        self.groups.leave(id.idx, self.now);
        self.unlink(id.idx, rate);
        self.routes[id.idx as usize] = route;
        self.set_cap_group(id.idx);
        self.link(id.idx);
        true
    }

    /// Starts a flow of `bytes` along `route` now; `tag` comes back in its [`FlowDone`].
    pub fn start_flow(&mut self, route: Route, bytes: f64, tag: u64) -> FlowId {
        self.stats.flows_started += 1;
        let now = self.now;
        let drains = bytes > 0.0 && !route.links().is_empty();
        let flow =
            Flow { gen: 0, live: true, draining: drains, bytes: bytes.max(0.0), start: now, tag, done_event: None };
        let hot = Hot { pos: [0; 4] };
        let idx = match self.free.pop() {
            Some(i) => {
                let gen = self.flows[i as usize].gen.wrapping_add(1);
                self.flows[i as usize] = Flow { gen, ..flow };
                self.hot[i as usize] = hot;
                self.routes[i as usize] = route;
                i
            }
            None => {
                self.flows.push(flow);
                self.hot.push(hot);
                self.routes.push(route);
                self.binding.push(Binding::default());
                self.cap_group.push(NO_CAP_GROUP);
                (self.flows.len() - 1) as u32
            }
        };
        self.groups.start(idx, bytes.max(0.0));
        if drains {
            self.draining += 1;
            self.set_cap_group(idx);
            self.link(idx);
        } else {
            let ev = self.queue.schedule(now + route.latency, idx);
            self.flows[idx as usize].done_event = Some(ev);
        }
        FlowId { idx, gen: self.flows[idx as usize].gen }
    }

    /// The earliest pending completion or drain, after bringing shares up to date.
    pub fn next_event_time(&mut self) -> Option<SimTime> {
        self.settle();
        self.groups.refresh();
        let drain = self.groups.next_drain().map(SimTime::from_ns);
        match (drain, self.queue.peek_time()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the earliest instant with events: drains flows, re-shares once, and returns
    /// that instant with the flows completed at it (possibly none: a drain whose
    /// latency tail ends later). `None` when nothing is pending.
    pub fn step(&mut self) -> Option<(SimTime, Vec<FlowDone>)> {
        let t = self.next_event_time()?;
        self.now = t;
        let mut done = Vec::new();
        let mut drained = Vec::new();
        loop {
            drained.clear();
            // The groups are fresh: `next_event_time` just ran.
            self.groups.pop_drained(t.as_ns(), &mut drained);
            for &(idx, rate) in &drained {
                self.drain(idx, rate);
            }
            while self.queue.peek_time() == Some(t) {
                let Some((_, idx)) = self.queue.pop() else { break };
                let f = &mut self.flows[idx as usize];
                f.live = false;
                f.done_event = None;
                done.push(FlowDone {
                    id: FlowId { idx, gen: f.gen },
                    tag: f.tag,
                    start: f.start,
                    finish: t,
                    bytes: f.bytes,
                });
                self.free.push(idx);
            }
            // One re-sharing for everything that happened at `t`; it may put more at `t`
            // (a zero-latency tail, a flow with nothing left).
            if self.next_event_time() != Some(t) {
                break;
            }
        }
        Some((t, done))
    }

    /// Steps through every instant up to and including `until`; completions in order.
    pub fn advance_until(&mut self, until: SimTime) -> Vec<FlowDone> {
        let mut out = Vec::new();
        while self.next_event_time().is_some_and(|t| t <= until) {
            if let Some((_, mut d)) = self.step() {
                out.append(&mut d);
            }
        }
        self.now = self.now.max(until);
        out
    }

    /// Puts a draining flow on its route's links and asks for a re-sharing there.
    fn link(&mut self, idx: u32) {
        self.floor = 0.0;
        let route = self.routes[idx as usize];
        self.bind(idx);
        self.capped += u32::from(route.rate_cap.is_finite());
        for (k, &l) in route.links().iter().enumerate() {
            let list = &mut self.link_flows[l as usize];
            self.hot[idx as usize].pos[k] = list.len() as u32;
            list.push(OnLink { flow: idx, group: self.groups.unrated() });
        }
        self.seed_links.extend_from_slice(self.binding[idx as usize].links());
    }

    /// Asks for a re-sharing at `link`, or, for a covered link (which the re-sharing
    /// does not look at), at the other links of its flows.
    fn seed(&mut self, link: LinkId) {
        if !self.covered.is_covered(link) {
            self.seed_links.push(link);
            return;
        }
        for e in &self.link_flows[link as usize] {
            self.seed_links.extend_from_slice(self.binding[e.flow as usize].links());
        }
    }

    /// Takes a draining flow off its links. A link that was full may now give its other
    /// flows more and is re-shared; one that had room was nobody's bottleneck, and
    /// losing a flow changes nothing there.
    fn unlink(&mut self, idx: u32, rate: f64) {
        let (route, rate) = (self.routes[idx as usize], rate.max(0.0));
        self.capped -= u32::from(route.rate_cap.is_finite());
        for (k, &l) in route.links().iter().enumerate() {
            let li = l as usize;
            if !self.covered.is_covered(l) {
                if sharing::is_full(self.load[li], self.caps[li]) {
                    self.seed_links.push(l);
                }
                self.load[li] -= rate;
            }
            let p = self.hot[idx as usize].pos[k] as usize;
            let list = &mut self.link_flows[li];
            list.swap_remove(p);
            if let Some(&OnLink { flow: moved, .. }) = list.get(p) {
                if let Some(j) = self.routes[moved as usize].links().iter().position(|&x| x == l) {
                    self.hot[moved as usize].pos[j] = p as u32;
                }
            }
        }
    }

    /// Notes which links of flow `idx`'s route can bound its rate.
    fn bind(&mut self, idx: u32) {
        let covered = &self.covered;
        self.binding[idx as usize] = Binding::new(self.routes[idx as usize].links(), |l| covered.is_covered(l));
    }

    /// Notes flow `idx`'s group `g` in its links' copies.
    fn note_group(&mut self, idx: u32, g: u32) {
        let pos = self.hot[idx as usize].pos;
        for (k, &l) in self.routes[idx as usize].links().iter().enumerate() {
            self.link_flows[l as usize][pos[k] as usize].group = g;
        }
    }

    /// Gives a flow on a capped route a group of its own for the cap (and gives back
    /// the one it had).
    fn set_cap_group(&mut self, idx: u32) {
        self.release_cap_group(idx);
        if self.routes[idx as usize].rate_cap.is_finite() {
            self.cap_group[idx as usize] = self.groups.alloc();
        }
    }

    /// Gives back flow `idx`'s cap group, if it has one.
    fn release_cap_group(&mut self, idx: u32) {
        let g = std::mem::replace(&mut self.cap_group[idx as usize], NO_CAP_GROUP);
        if g != NO_CAP_GROUP {
            self.groups.release(g);
        }
    }

    /// The flow's last byte left at `rate`: it frees its links and completes after the
    /// latency.
    fn drain(&mut self, idx: u32, rate: f64) {
        self.floor = self.floor.min(rate.max(0.0));
        self.unlink(idx, rate);
        self.draining -= 1;
        self.release_cap_group(idx);
        let i = idx as usize;
        let at = self.now + self.routes[i].latency;
        let ev = self.queue.schedule(at, idx);
        let f = &mut self.flows[i];
        f.draining = false;
        f.done_event = Some(ev);
    }

    /// Re-shares what the changes since the last call can reach (see [`sharing`]) and
    /// moves the finishes of the flows whose rate changed.
    fn settle(&mut self) {
        if self.seed_links.is_empty() {
            return;
        }
        let seeds = std::mem::take(&mut self.seed_links);
        let mut sharing = std::mem::take(&mut self.sharing);
        let floor = std::mem::replace(&mut self.floor, f64::INFINITY);
        let changed = sharing.reshare(self, &seeds, floor);
        self.stats.recomputations += 1;
        self.stats.flows_rerated += sharing.last_size() as u64;
        self.stats.rates_changed += changed;
        self.seed_links = seeds;
        self.seed_links.clear();
        self.sharing = sharing;
    }
}

#[cfg(test)]
mod tests;
