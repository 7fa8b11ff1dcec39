//! The dataflow run of a schedule's steps, instant by instant, as the flow runner and
//! the flow model run it: a rank arriving at a step starts each of its transfers whose
//! other rank is there too and moves on once they all ended; the bytes in flight share
//! links by max-min ([`super::maxmin`]), re-shared once per instant; a transfer ends
//! its route's latency after its last byte left. Generic over the path cost (a time,
//! or a line in the payload at a probe size), so both closed forms take one walk.

use super::dataflow::{PathCost, Step};
use super::maxmin::MaxMin;
use crate::hardware::topology::Route;

/// Relative difference under which a new rate counts as the old one (as the flow model).
const SAME: f64 = 1e-12;

/// A transfer whose bytes are leaving: its step, index, rate (negative until rated),
/// bytes left as of `updated`, and when its last byte leaves at that rate.
struct Live<C: PathCost> {
    step: u64,
    t: u32,
    rate: f64,
    left: C::Bytes,
    updated: C,
    drain: C,
}

/// What is in flight: transfers draining (with their routes, for the filling), and
/// transfers whose bytes are out, ending their route's latency later; and the step
/// each rank last joined (its transfers there started with whoever had joined).
struct Flight<C: PathCost> {
    live: Vec<Live<C>>,
    routes: Vec<Route>,
    tails: Vec<(u64, u32, C)>,
    joined: Vec<u64>,
    changed: bool,
}

/// A schedule's steps ready to run (see the module doc).
pub(super) struct Sim<'a, C: PathCost, M: Fn(C, C) -> C> {
    steps: &'a [Step],
    /// The first step of each phase, and the step count at the end.
    first: Vec<u64>,
    caps: &'a [f64],
    n: usize,
    scale: f64,
    max: &'a M,
    maxmin: MaxMin,
    rates: Vec<f64>,
    cost: std::marker::PhantomData<C>,
}

impl<'a, C: PathCost, M: Fn(C, C) -> C> Sim<'a, C, M> {
    /// `steps` over `n` ranks on links of capacity `caps[link]`; `max` picks the later
    /// of two costs; `scale` as in the dataflow.
    pub(super) fn new(steps: &'a [Step], caps: &'a [f64], n: usize, scale: f64, max: &'a M) -> Self {
        let mut first = vec![0u64];
        for s in steps {
            first.push(first[first.len() - 1] + u64::from(s.repeat));
        }
        let (maxmin, rates) = (MaxMin::new(caps.len()), Vec::new());
        Sim { steps, first, caps, n, scale, max, maxmin, rates, cost: std::marker::PhantomData }
    }

    /// Steps in all.
    pub(super) fn total_steps(&self) -> u64 {
        self.first[self.first.len() - 1]
    }

    fn phase(&self, g: u64) -> &'a Step {
        &self.steps[self.first.partition_point(|&f| f <= g) - 1]
    }

    /// Steps of `g`'s phase from `g` on.
    pub(super) fn left_in_phase(&self, g: u64) -> u32 {
        let p = self.first.partition_point(|&f| f <= g) - 1;
        (self.first[p + 1] - g) as u32
    }

    fn earlier(&self, a: C, b: C) -> bool {
        a != b && (self.max)(a, b) == b
    }

    /// Runs every rank from step `g0`, where each arrived at `ready[r]` (all the same),
    /// to step `stop` (None: until they are level again, or the end), updating `ready`
    /// to each rank's arrival at the step it stopped at; returns that step.
    pub(super) fn run(&mut self, g0: u64, ready: &mut [C], stop: Option<u64>) -> u64 {
        let n = self.n;
        let end = stop.unwrap_or(self.total_steps());
        let (mut at, mut pending) = (vec![g0; n], vec![0u32; n]);
        let mut fl = Flight {
            live: Vec::new(),
            routes: Vec::new(),
            tails: Vec::new(),
            joined: vec![u64::MAX; n],
            changed: false,
        };
        let mut arrived: Vec<usize> = (0..n).collect();
        let Some(mut now) = ready.iter().copied().reduce(self.max) else { return g0 };
        let mut first = true;
        loop {
            for &r in &arrived {
                while at[r] < end && self.part(at[r], r).is_empty() {
                    at[r] += 1;
                }
            }
            let idle = fl.live.is_empty() && fl.tails.is_empty();
            if stop.is_none()
                && !first
                && idle
                && at.iter().all(|&g| g == at[0])
                && ready.iter().all(|x| *x == ready[0])
            {
                return at[0];
            }
            first = false;
            for &r in &arrived {
                self.start(r, &at, &mut pending, now, &mut fl, end);
            }
            arrived.clear();
            if fl.changed {
                self.reshare(&mut fl, now);
            }
            let Some(t) = self.next_instant(&fl) else { break };
            now = t;
            self.finish_at(now, &mut fl, &mut at, &mut pending, ready, &mut arrived);
        }
        end
    }

    /// Rank r's transfers in step g.
    fn part(&self, g: u64, r: usize) -> &'a [u32] {
        let s = self.phase(g);
        &s.inv[s.inv_off[r] as usize..s.inv_off[r + 1] as usize]
    }

    /// Rank r has arrived at its step: starts its transfers whose other rank is there.
    fn start(&mut self, r: usize, at: &[u64], pending: &mut [u32], now: C, fl: &mut Flight<C>, end: u64) {
        let g = at[r];
        if g >= end {
            return;
        }
        let s = self.phase(g);
        let part = self.part(g, r);
        pending[r] = part.len() as u32;
        fl.joined[r] = g;
        // A transfer starts when the second of its ranks joins the step (a transfer
        // with both ends on r is listed twice: once).
        for (k, &i) in part.iter().enumerate() {
            let (a, b) = s.ends[i as usize];
            let other = if a as usize == r { b } else { a } as usize;
            if fl.joined[other] != g || (a == b && k > 0 && part[k - 1] == i) {
                continue;
            }
            let (route, bytes) = (s.routes[i as usize], s.bytes[i as usize]);
            if bytes > 0.0 && !route.links().is_empty() {
                let left = C::bytes(bytes);
                fl.live.push(Live { step: g, t: i, rate: -1.0, left, updated: now, drain: now });
                fl.routes.push(route);
                fl.changed = true;
            } else {
                fl.tails.push((g, i, now.plus(C::latency(route.latency))));
            }
        }
    }

    /// New max-min rates; a transfer whose rate moved gets a new drain instant.
    fn reshare(&mut self, fl: &mut Flight<C>, now: C) {
        fl.changed = false;
        self.maxmin.rates(self.caps, &fl.routes, &mut self.rates);
        for (x, &new) in fl.live.iter_mut().zip(&self.rates) {
            let old = x.rate;
            if old < 0.0 || (new - old).abs() > SAME * old.max(new) {
                if old > 0.0 {
                    x.left = C::sent(x.left, old, x.updated, now, self.scale);
                }
                (x.updated, x.rate) = (now, new);
                x.drain = now.plus(C::send_time(x.left, new, self.scale));
            }
        }
    }

    fn next_instant(&self, fl: &Flight<C>) -> Option<C> {
        let drains = fl.live.iter().map(|x| x.drain);
        drains.chain(fl.tails.iter().map(|t| t.2)).reduce(|a, b| if self.earlier(b, a) { b } else { a })
    }

    /// What happens at `now`: drained transfers wait out their latency; ended ones
    /// release their ranks, which arrive at their next step.
    fn finish_at(
        &mut self,
        now: C,
        fl: &mut Flight<C>,
        at: &mut [u64],
        pending: &mut [u32],
        ready: &mut [C],
        arrived: &mut Vec<usize>,
    ) {
        let mut i = 0;
        while i < fl.live.len() {
            if fl.live[i].drain == now {
                let x = fl.live.swap_remove(i);
                let route = fl.routes.swap_remove(i);
                fl.tails.push((x.step, x.t, now.plus(C::latency(route.latency))));
                fl.changed = true;
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < fl.tails.len() {
            if fl.tails[i].2 != now {
                i += 1;
                continue;
            }
            let (g, t, _) = fl.tails.swap_remove(i);
            let (a, b) = self.phase(g).ends[t as usize];
            for x in [a as usize, b as usize] {
                pending[x] -= 1;
                if pending[x] == 0 && at[x] == g {
                    at[x] += 1;
                    ready[x] = now;
                    arrived.push(x);
                }
            }
        }
    }
}
