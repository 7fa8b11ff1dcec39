//! The flow-level network: transfers as flows over links, sharing each link by
//! max-min fairness (progressive filling).
//!
//! A flow is started on a [`Route`] with a byte count. While it drains, it holds a
//! share of every link on its route. Shares are re-computed when flows start or
//! drain or a link's capacity changes, incrementally (see [`sharing`]): only the flows
//! whose rate may move are looked at, and every change at one instant is one
//! re-sharing. Finishes are events in the engine's [`EventQueue`]; a flow whose rate
//! changes has its finish moved, a flow whose rate does not is never touched.
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

mod sharing;

use super::topology::{LinkId, Route, Topology};
use crate::engine::{EventId, EventQueue, SimTime};
use sharing::{LinkRates, Sharing};

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

/// What the network's queue holds: a closed set of per-flow events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NetEvent {
    /// The flow's last byte left its source.
    Drained(u32),
    /// The flow's last byte arrived (drained plus route latency).
    Done(u32),
}

#[derive(Clone, Debug)]
struct Flow {
    gen: u32,
    live: bool,
    draining: bool,
    route: Route,
    /// Position of this flow in `links[route.links()[k]].flows`.
    pos: [u32; 4],
    bytes: f64,
    remaining: f64,
    /// Current rate, bytes/s; also recorded in each of its links' [`LinkRates`].
    rate: f64,
    /// Whether `rate` is recorded in the links' rate sets.
    recorded: bool,
    /// When `remaining` was last brought up to date.
    updated: SimTime,
    start: SimTime,
    tag: u64,
    /// Its pending drain or done event.
    event: Option<EventId>,
}

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
    /// Draining flows on each link.
    link_flows: Vec<Vec<u32>>,
    /// The rates of the draining flows on each link.
    link_rates: Vec<LinkRates>,
    flows: Vec<Flow>,
    free: Vec<u32>,
    queue: EventQueue<NetEvent>,
    now: SimTime,
    /// Flows to (re)share at the next settle: new flows.
    seed_flows: Vec<u32>,
    /// Links whose every flow must be reshared: saturated links a flow left, links
    /// whose capacity changed.
    seed_links: Vec<LinkId>,
    sharing: Sharing,
    draining: usize,
    stats: NetworkStats,
}

impl Network {
    /// An idle network over `topology`'s links at time zero.
    pub fn new(topology: &Topology) -> Self {
        let n = topology.links().len();
        Network {
            caps: topology.links().iter().map(|l| l.bytes_per_s).collect(),
            link_flows: vec![Vec::new(); n],
            link_rates: vec![LinkRates::default(); n],
            flows: Vec::new(),
            free: Vec::new(),
            queue: EventQueue::new(),
            now: SimTime::ZERO,
            seed_flows: Vec::new(),
            seed_links: Vec::new(),
            sharing: Sharing::new(n),
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

    /// Sum of the rates of the flows on `link`, bytes/s, as of the last re-sharing.
    pub fn link_load(&self, link: LinkId) -> f64 {
        self.link_rates[link as usize].load()
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

    /// True while the flow still has bytes to send (it holds a share of its links).
    pub fn is_draining(&self, id: FlowId) -> bool {
        matches!(self.flows.get(id.idx as usize), Some(f) if f.live && f.gen == id.gen && f.draining)
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
        self.seed_links.push(link);
    }

    /// Starts a flow of `bytes` along `route` now; `tag` comes back in its [`FlowDone`].
    pub fn start_flow(&mut self, route: Route, bytes: f64, tag: u64) -> FlowId {
        self.stats.flows_started += 1;
        let now = self.now;
        let drains = bytes > 0.0 && !route.links().is_empty();
        let flow = Flow {
            gen: 0,
            live: true,
            draining: drains,
            route,
            pos: [0; 4],
            bytes: bytes.max(0.0),
            remaining: bytes.max(0.0),
            rate: 0.0,
            recorded: false,
            updated: now,
            start: now,
            tag,
            event: None,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                let gen = self.flows[i as usize].gen.wrapping_add(1);
                self.flows[i as usize] = Flow { gen, ..flow };
                i
            }
            None => {
                self.flows.push(flow);
                (self.flows.len() - 1) as u32
            }
        };
        if drains {
            self.draining += 1;
            for (k, &l) in route.links().iter().enumerate() {
                let list = &mut self.link_flows[l as usize];
                self.flows[idx as usize].pos[k] = list.len() as u32;
                list.push(idx);
            }
            self.seed_flows.push(idx);
        } else {
            let ev = self.queue.schedule(now + route.latency, NetEvent::Done(idx));
            self.flows[idx as usize].event = Some(ev);
        }
        FlowId { idx, gen: self.flows[idx as usize].gen }
    }

    /// The earliest pending completion or drain, after bringing shares up to date.
    pub fn next_event_time(&mut self) -> Option<SimTime> {
        self.settle();
        self.queue.peek_time()
    }

    /// Runs the earliest instant with events: drains flows, re-shares once, and returns
    /// that instant with the flows completed at it (possibly none: a drain whose
    /// latency tail ends later). `None` when nothing is pending.
    pub fn step(&mut self) -> Option<(SimTime, Vec<FlowDone>)> {
        let t = self.next_event_time()?;
        self.now = t;
        let mut done = Vec::new();
        loop {
            while self.queue.peek_time() == Some(t) {
                let Some((_, ev)) = self.queue.pop() else { break };
                match ev {
                    NetEvent::Drained(idx) => self.drain(idx),
                    NetEvent::Done(idx) => {
                        let f = &mut self.flows[idx as usize];
                        f.live = false;
                        f.event = None;
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
            }
            // One re-sharing for everything that happened at `t`; it may schedule more
            // at `t` (a zero-latency tail, a flow with nothing left).
            self.settle();
            if self.queue.peek_time() != Some(t) {
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

    /// The flow's last byte left: it frees its links and completes after the latency.
    fn drain(&mut self, idx: u32) {
        let route = self.flows[idx as usize].route;
        let (rate, recorded) = (self.flows[idx as usize].rate, self.flows[idx as usize].recorded);
        for (k, &l) in route.links().iter().enumerate() {
            let li = l as usize;
            // A link that was full may now give its other flows more; one that had
            // room was nobody's bottleneck, and losing a flow changes nothing there.
            if sharing::is_full(self.link_rates[li].load(), self.caps[li]) {
                self.seed_links.push(l);
            }
            if recorded {
                self.link_rates[li].remove(rate);
            }
            let p = self.flows[idx as usize].pos[k] as usize;
            let list = &mut self.link_flows[li];
            list.swap_remove(p);
            if let Some(&moved) = list.get(p) {
                let m = &mut self.flows[moved as usize];
                if let Some(j) = m.route.links().iter().position(|&x| x == l) {
                    m.pos[j] = p as u32;
                }
            }
        }
        self.draining -= 1;
        let now = self.now;
        let f = &mut self.flows[idx as usize];
        f.draining = false;
        f.recorded = false;
        f.remaining = 0.0;
        f.rate = 0.0;
        let at = now + f.route.latency;
        f.event = Some(self.queue.schedule(at, NetEvent::Done(idx)));
    }

    /// Re-shares what the changes since the last call can reach (see [`sharing`]) and
    /// moves the finishes of the flows whose rate changed.
    fn settle(&mut self) {
        if self.seed_flows.is_empty() && self.seed_links.is_empty() {
            return;
        }
        let mut seeds = std::mem::take(&mut self.seed_flows);
        seeds.retain(|&f| self.flows[f as usize].draining);
        let seed_links = std::mem::take(&mut self.seed_links);
        let mut sharing = std::mem::replace(&mut self.sharing, Sharing::new(0));
        let changed = sharing.reshare(self, &seeds, &seed_links);
        self.stats.recomputations += 1;
        self.stats.flows_rerated += sharing.last_size() as u64;
        self.stats.rates_changed += changed.len() as u64;
        let now = self.now;
        for &(idx, new_rate) in &changed {
            let f = &mut self.flows[idx as usize];
            let elapsed = (now - f.updated).as_secs_f64();
            f.remaining = (f.remaining - f.rate * elapsed).max(0.0);
            f.updated = now;
            f.rate = new_rate;
            let event = f.event.take();
            let at = (new_rate > 0.0).then(|| now + transfer_time(f.remaining, new_rate));
            let ev = match (event, at) {
                (Some(id), Some(at)) => self.queue.reschedule(id, at),
                (None, Some(at)) => Some(self.queue.schedule(at, NetEvent::Drained(idx))),
                (Some(id), None) => {
                    self.queue.cancel(id);
                    None
                }
                (None, None) => None,
            };
            self.flows[idx as usize].event = ev;
        }
        sharing.recycle(changed);
        self.sharing = sharing;
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
