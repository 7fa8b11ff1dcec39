//! The flow-level network: transfers as flows over links, sharing each link by
//! max-min fairness (progressive filling).
//!
//! A flow is started on a [`Route`] with a byte count. While it drains, it holds a
//! share of every link on its route; shares are recomputed whenever a flow starts or
//! drains or a link's capacity changes, and only for the flows that change can reach:
//! the connected component (flows linked through shared links) of the changed links.
//! Flows that share nothing are never looked at together, so independent traffic costs
//! linear, not quadratic, time. All changes at one instant are batched into a single
//! recomputation.
//!
//! Latency: a flow's bytes leave at its max-min rate from the moment it starts; the
//! flow completes the route's latency after its last byte left (the latency is added
//! once per flow, at the tail). On an idle link a flow of S bytes thus takes exactly
//! `α + S/B`, the α-β step of the closed forms; [`transfer_time`] is the shared rounding.
//!
//! Driving it: the owner asks [`Network::next_event_time`], schedules a wake-up in its
//! own [`crate::engine::EventQueue`] (re-asking after every change, since finishes
//! move), and at that instant calls [`Network::step`], which returns the flows completed
//! then. New flows are started at the network's current instant with
//! [`Network::start_flow`] after [`Network::advance_clock`].

use super::topology::{LinkId, Route, Topology};
use crate::engine::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

#[derive(Clone, Debug)]
struct Flow {
    gen: u32,
    live: bool,
    draining: bool,
    route: Route,
    /// Position of this flow in `link_flows[route.links()[k]]`.
    pos: [u32; 4],
    bytes: f64,
    remaining: f64,
    rate: f64,
    new_rate: f64,
    fixed: bool,
    updated: SimTime,
    start: SimTime,
    tag: u64,
    ver: u32,
    mark: u32,
}

const DRAINED: u8 = 0;
const DONE: u8 = 1;

/// (time ns, sequence, slot, version, kind); the sequence keeps same-instant order stable.
type Ev = Reverse<(u64, u64, u32, u32, u8)>;

/// Counters for benchmarks and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Flows ever started.
    pub flows_started: u64,
    /// Sharing recomputations run (at most one per instant with changes).
    pub recomputations: u64,
    /// Sum over recomputations of the flows re-rated (the work done).
    pub flows_rerated: u64,
}

/// The flow-level network over a topology's links.
#[derive(Clone, Debug)]
pub struct Network {
    caps: Vec<f64>,
    link_flows: Vec<Vec<u32>>,
    link_dirty: Vec<bool>,
    dirty: Vec<LinkId>,
    link_mark: Vec<u32>,
    flows: Vec<Flow>,
    free: Vec<u32>,
    heap: BinaryHeap<Ev>,
    seq: u64,
    now: SimTime,
    epoch: u32,
    rem: Vec<f64>,
    cnt: Vec<u32>,
    lver: Vec<u32>,
    comp_flows: Vec<u32>,
    comp_links: Vec<LinkId>,
    stack: Vec<LinkId>,
    draining: usize,
    stats: NetworkStats,
}

fn share_key(share: f64) -> u64 {
    // Non-negative finite f64s order like their bit patterns.
    share.max(0.0).to_bits()
}

impl Network {
    /// An idle network over `topology`'s links at time zero.
    pub fn new(topology: &Topology) -> Self {
        let n = topology.links().len();
        Network {
            caps: topology.links().iter().map(|l| l.bytes_per_s).collect(),
            link_flows: vec![Vec::new(); n],
            link_dirty: vec![false; n],
            dirty: Vec::new(),
            link_mark: vec![0; n],
            flows: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            now: SimTime::ZERO,
            epoch: 0,
            rem: vec![0.0; n],
            cnt: vec![0; n],
            lver: vec![0; n],
            comp_flows: Vec::new(),
            comp_links: Vec::new(),
            stack: Vec::new(),
            draining: 0,
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

    /// Sum of the rates of the flows on `link`, bytes/s, as of the last recomputation.
    pub fn link_load(&self, link: LinkId) -> f64 {
        self.link_flows[link as usize].iter().map(|&f| self.flows[f as usize].rate).sum()
    }

    /// Flows on `link` now.
    pub fn link_flow_count(&self, link: LinkId) -> usize {
        self.link_flows[link as usize].len()
    }

    /// The current rate of a flow, bytes/s (0 once drained or unknown).
    pub fn flow_rate(&self, id: FlowId) -> f64 {
        match self.flows.get(id.idx as usize) {
            Some(f) if f.live && f.gen == id.gen && f.draining => f.rate,
            _ => 0.0,
        }
    }

    /// Moves the clock forward to `now` without an event (to start flows then).
    /// `now` must not pass [`Network::next_event_time`]: events are never skipped.
    pub fn advance_clock(&mut self, now: SimTime) {
        debug_assert!(self.next_event_time().is_none_or(|t| now <= t), "advance_clock past a pending event");
        self.now = self.now.max(now);
    }

    /// Sets `link`'s capacity to `bytes_per_s` from now on (a what-if slowdown sets a
    /// fraction of the original). Flows on it are re-shared at once; 0 stalls them.
    pub fn set_link_capacity(&mut self, link: LinkId, bytes_per_s: f64) {
        self.caps[link as usize] = bytes_per_s.max(0.0);
        self.mark_dirty(link);
    }

    /// Starts a flow of `bytes` along `route` now; `tag` comes back in its [`FlowDone`].
    pub fn start_flow(&mut self, route: Route, bytes: f64, tag: u64) -> FlowId {
        self.stats.flows_started += 1;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.flows.push(Flow {
                    gen: 0,
                    live: false,
                    draining: false,
                    route: Route::LOCAL,
                    pos: [0; 4],
                    bytes: 0.0,
                    remaining: 0.0,
                    rate: 0.0,
                    new_rate: 0.0,
                    fixed: false,
                    updated: SimTime::ZERO,
                    start: SimTime::ZERO,
                    tag: 0,
                    ver: 0,
                    mark: 0,
                });
                (self.flows.len() - 1) as u32
            }
        };
        let now = self.now;
        let drains = bytes > 0.0 && !route.links().is_empty();
        {
            let f = &mut self.flows[idx as usize];
            f.gen = f.gen.wrapping_add(1);
            f.live = true;
            f.draining = drains;
            f.route = route;
            f.bytes = bytes.max(0.0);
            f.remaining = f.bytes;
            f.rate = 0.0;
            f.updated = now;
            f.start = now;
            f.tag = tag;
            f.ver = f.ver.wrapping_add(1);
        }
        let id = FlowId { idx, gen: self.flows[idx as usize].gen };
        if drains {
            self.draining += 1;
            for (k, &l) in route.links().iter().enumerate() {
                let list = &mut self.link_flows[l as usize];
                self.flows[idx as usize].pos[k] = list.len() as u32;
                list.push(idx);
                self.mark_dirty(l);
            }
        } else {
            let ver = self.flows[idx as usize].ver;
            self.push_event(now + route.latency, idx, ver, DONE);
        }
        id
    }

    /// The earliest pending completion or drain, after bringing shares up to date.
    pub fn next_event_time(&mut self) -> Option<SimTime> {
        self.settle();
        while let Some(&Reverse((t, _, idx, ver, kind))) = self.heap.peek() {
            if self.valid(idx, ver, kind) {
                return Some(SimTime(t));
            }
            self.heap.pop();
        }
        None
    }

    /// Runs the earliest instant with events: drains flows, re-shares, and returns that
    /// instant with the flows completed at it (possibly none: a drain whose latency
    /// tail ends later). `None` when nothing is pending.
    pub fn step(&mut self) -> Option<(SimTime, Vec<FlowDone>)> {
        let t = self.next_event_time()?;
        self.now = t;
        let mut done = Vec::new();
        loop {
            while let Some(&Reverse((et, _, idx, ver, kind))) = self.heap.peek() {
                if et != t.0 {
                    break;
                }
                self.heap.pop();
                if !self.valid(idx, ver, kind) {
                    continue;
                }
                if kind == DRAINED {
                    self.drain(idx);
                } else {
                    let f = &mut self.flows[idx as usize];
                    f.live = false;
                    done.push(FlowDone {
                        id: FlowId { idx, gen: f.gen },
                        tag: f.tag,
                        start: f.start,
                        finish: t,
                        bytes: f.bytes,
                    });
                    self.free.push(idx);
                }
            }
            self.settle();
            match self.heap.peek() {
                Some(&Reverse((et, ..))) if et == t.0 => continue,
                _ => break,
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

    fn valid(&self, idx: u32, ver: u32, kind: u8) -> bool {
        let f = &self.flows[idx as usize];
        f.live && f.ver == ver && (kind == DONE || f.draining)
    }

    fn push_event(&mut self, at: SimTime, idx: u32, ver: u32, kind: u8) {
        self.seq += 1;
        self.heap.push(Reverse((at.0, self.seq, idx, ver, kind)));
    }

    fn mark_dirty(&mut self, link: LinkId) {
        if !self.link_dirty[link as usize] {
            self.link_dirty[link as usize] = true;
            self.dirty.push(link);
        }
    }

    fn drain(&mut self, idx: u32) {
        let route = self.flows[idx as usize].route;
        for (k, &l) in route.links().iter().enumerate() {
            let p = self.flows[idx as usize].pos[k] as usize;
            let list = &mut self.link_flows[l as usize];
            list.swap_remove(p);
            if let Some(&moved) = list.get(p) {
                let m = &mut self.flows[moved as usize];
                if let Some(j) = m.route.links().iter().position(|&x| x == l) {
                    m.pos[j] = p as u32;
                }
            }
            self.mark_dirty(l);
        }
        self.draining -= 1;
        let now = self.now;
        let f = &mut self.flows[idx as usize];
        f.draining = false;
        f.remaining = 0.0;
        f.rate = 0.0;
        f.ver = f.ver.wrapping_add(1);
        let (ver, lat) = (f.ver, f.route.latency);
        self.push_event(now + lat, idx, ver, DONE);
    }

    /// Re-shares the component(s) reachable from the dirty links.
    fn settle(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        self.epoch = self.epoch.wrapping_add(1);
        let epoch = self.epoch;
        self.comp_flows.clear();
        self.comp_links.clear();
        self.stack.clear();
        for &l in &self.dirty {
            self.link_dirty[l as usize] = false;
            if self.link_mark[l as usize] != epoch {
                self.link_mark[l as usize] = epoch;
                self.comp_links.push(l);
                self.stack.push(l);
            }
        }
        self.dirty.clear();
        while let Some(l) = self.stack.pop() {
            for &f in &self.link_flows[l as usize] {
                let flow = &mut self.flows[f as usize];
                if flow.mark == epoch {
                    continue;
                }
                flow.mark = epoch;
                flow.fixed = false;
                self.comp_flows.push(f);
                for &l2 in flow.route.links() {
                    if self.link_mark[l2 as usize] != epoch {
                        self.link_mark[l2 as usize] = epoch;
                        self.comp_links.push(l2);
                        self.stack.push(l2);
                    }
                }
            }
        }
        self.stats.recomputations += 1;
        self.stats.flows_rerated += self.comp_flows.len() as u64;
        self.progressive_filling();
        let now = self.now;
        for i in 0..self.comp_flows.len() {
            let idx = self.comp_flows[i];
            let f = &mut self.flows[idx as usize];
            if f.new_rate == f.rate {
                continue;
            }
            let elapsed = (now - f.updated).as_secs_f64();
            f.remaining = (f.remaining - f.rate * elapsed).max(0.0);
            f.updated = now;
            f.rate = f.new_rate;
            f.ver = f.ver.wrapping_add(1);
            if f.rate > 0.0 {
                let at = now + transfer_time(f.remaining, f.rate);
                let ver = f.ver;
                self.push_event(at, idx, ver, DRAINED);
            }
        }
    }

    /// Max-min fair rates for `comp_flows` over `comp_links`: repeatedly take the link
    /// with the smallest fair share (remaining capacity / unfixed flows), fix its flows
    /// at that share, and take it off the other links they cross.
    fn progressive_filling(&mut self) {
        let mut heap: BinaryHeap<Reverse<(u64, u32, LinkId)>> = BinaryHeap::with_capacity(self.comp_links.len());
        for &l in &self.comp_links {
            let li = l as usize;
            self.rem[li] = self.caps[li];
            self.cnt[li] = self.link_flows[li].len() as u32;
            self.lver[li] = self.lver[li].wrapping_add(1);
            if self.cnt[li] > 0 {
                heap.push(Reverse((share_key(self.rem[li] / self.cnt[li] as f64), self.lver[li], l)));
            }
        }
        while let Some(Reverse((_, v, l))) = heap.pop() {
            let li = l as usize;
            if v != self.lver[li] || self.cnt[li] == 0 {
                continue;
            }
            let share = self.rem[li].max(0.0) / self.cnt[li] as f64;
            for i in 0..self.link_flows[li].len() {
                let f = self.link_flows[li][i] as usize;
                if self.flows[f].fixed {
                    continue;
                }
                self.flows[f].fixed = true;
                self.flows[f].new_rate = share;
                let route = self.flows[f].route;
                for &l2 in route.links() {
                    let l2i = l2 as usize;
                    self.rem[l2i] -= share;
                    self.cnt[l2i] -= 1;
                    self.lver[l2i] = self.lver[l2i].wrapping_add(1);
                    if self.cnt[l2i] > 0 && l2 != l {
                        heap.push(Reverse((share_key(self.rem[l2i] / self.cnt[l2i] as f64), self.lver[l2i], l2)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;

    #[test]
    fn a_lone_flow_takes_alpha_plus_s_over_b() {
        let p = gpu_preset("h100-sxm").expect("preset");
        let topo = Topology::new(1, 8, &(p.nvlink)(), &(p.network)()).expect("valid");
        let mut net = Network::new(&topo);
        net.start_flow(topo.route(0, 1), 369e6, 7);
        // 369 MB at 450 GB/s x 0.82 = 369 GB/s: 1 ms, + α 2 µs.
        let (t, done) = net.step().expect("drain");
        assert_eq!(t, SimTime::from_ms(1));
        assert!(done.is_empty());
        let (t, done) = net.step().expect("done");
        assert_eq!(t, SimTime::from_us(1002));
        assert_eq!(done[0].tag, 7);
        assert!(net.step().is_none());
    }
}
