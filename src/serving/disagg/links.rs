//! KV handoffs as flows over the links they cross, shared by max-min fairness from
//! the instant they overlap (two handoffs on one NIC each get half of it).
//!
//! This is the disaggregated run's own small transfer booking: a handoff is split
//! into flows (one per source GPU shard), each flow crosses the sending GPU's NIC and
//! the receiving GPU's NIC (or both GPUs' NVLink inside a node), and every start or
//! finish re-shares the rates by progressive filling. It knows only the links KV
//! handoffs use; the collectives of the instances themselves are priced by the
//! pipeline and do not slow a handoff here (the spine is taken as non-blocking).

use crate::engine::SimTime;
use std::collections::BTreeMap;

/// One flow of a transfer.
#[derive(Clone, Debug)]
struct Flow {
    transfer: u64,
    links: Vec<u32>,
    remaining_bytes: f64,
    rate_bytes_per_ns: f64,
}

/// Transfers in progress over a set of links.
#[derive(Clone, Debug)]
pub struct KvLinks {
    capacity_bytes_per_ns: Vec<f64>,
    flows: BTreeMap<u64, Flow>,
    flows_left: BTreeMap<u64, u32>,
    next_flow: u64,
    last: SimTime,
}

impl KvLinks {
    /// Links of the given capacities, GB/s (1 GB/s = 1 byte per ns).
    pub fn new(capacity_gb_s: Vec<f64>) -> Self {
        KvLinks {
            capacity_bytes_per_ns: capacity_gb_s,
            flows: BTreeMap::new(),
            flows_left: BTreeMap::new(),
            next_flow: 0,
            last: SimTime::ZERO,
        }
    }

    /// Starts transfer `id` at `now` as flows of `(links, bytes)`; false when it has
    /// no bytes to move (it is done at once).
    pub fn start(&mut self, now: SimTime, id: u64, parts: &[(Vec<u32>, f64)]) -> bool {
        self.advance(now);
        let mut n = 0;
        for (links, bytes) in parts.iter().filter(|(_, b)| *b > 0.0) {
            let flow = Flow { transfer: id, links: links.clone(), remaining_bytes: *bytes, rate_bytes_per_ns: 0.0 };
            self.flows.insert(self.next_flow, flow);
            self.next_flow += 1;
            n += 1;
        }
        if n == 0 {
            return false;
        }
        self.flows_left.insert(id, n);
        self.reshare();
        true
    }

    /// When the next flow finishes at the current rates, if any is running.
    pub fn next_finish(&self) -> Option<SimTime> {
        self.flows.values().map(|f| self.last + finish_in(f)).min()
    }

    /// Moves the clock to `now` and returns the transfers whose last flow finished by
    /// then, in id order.
    pub fn finish_due(&mut self, now: SimTime) -> Vec<u64> {
        self.advance(now);
        // A flow with under a nanosecond of sending left is done: its finish time was
        // rounded up to this instant.
        let done: Vec<u64> =
            self.flows.iter().filter(|(_, f)| f.remaining_bytes <= f.rate_bytes_per_ns).map(|(k, _)| *k).collect();
        let mut finished = Vec::new();
        let changed = !done.is_empty();
        for k in done {
            let Some(f) = self.flows.remove(&k) else { continue };
            let left = self.flows_left.entry(f.transfer).or_insert(1);
            *left -= 1;
            if *left == 0 {
                self.flows_left.remove(&f.transfer);
                finished.push(f.transfer);
            }
        }
        if changed {
            self.reshare();
        }
        finished.sort_unstable();
        finished
    }

    /// Transfers in progress.
    pub fn active(&self) -> usize {
        self.flows_left.len()
    }

    fn advance(&mut self, now: SimTime) {
        let dt = now.saturating_sub(self.last).as_ns() as f64;
        if dt > 0.0 {
            for f in self.flows.values_mut() {
                f.remaining_bytes = (f.remaining_bytes - f.rate_bytes_per_ns * dt).max(0.0);
            }
        }
        self.last = self.last.max(now);
    }

    /// Max-min fair rates by progressive filling: the most constrained link fixes the
    /// rate of every flow still unfixed on it; repeat until every flow has a rate.
    fn reshare(&mut self) {
        let mut residual = self.capacity_bytes_per_ns.clone();
        let mut count = vec![0u32; residual.len()];
        for f in self.flows.values() {
            for &l in &f.links {
                count[l as usize] += 1;
            }
        }
        let mut unfixed: Vec<u64> = self.flows.keys().copied().collect();
        while !unfixed.is_empty() {
            let tightest = (0..residual.len())
                .filter(|&l| count[l] > 0)
                .min_by(|&a, &b| (residual[a] / count[a] as f64).total_cmp(&(residual[b] / count[b] as f64)));
            let Some(l) = tightest else { break };
            let share = (residual[l] / count[l] as f64).max(0.0);
            unfixed.retain(|k| {
                let f = self.flows.get_mut(k).expect("unfixed flows exist");
                if !f.links.contains(&(l as u32)) {
                    return true;
                }
                f.rate_bytes_per_ns = share;
                for &m in &f.links {
                    residual[m as usize] -= share;
                    count[m as usize] -= 1;
                }
                false
            });
        }
    }
}

/// Time left for a flow at its rate, rounded up to whole nanoseconds.
fn finish_in(f: &Flow) -> SimTime {
    if f.rate_bytes_per_ns <= 0.0 {
        return SimTime::MAX;
    }
    SimTime((f.remaining_bytes / f.rate_bytes_per_ns).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the links until every transfer finishes; returns each one's finish time.
    fn run(links: &mut KvLinks) -> BTreeMap<u64, SimTime> {
        let mut out = BTreeMap::new();
        while let Some(t) = links.next_finish() {
            for id in links.finish_due(t) {
                out.insert(id, t);
            }
        }
        out
    }

    #[test]
    fn one_flow_takes_bytes_over_bandwidth_and_two_on_one_link_take_twice_as_long() {
        // 1 GB over a 50 GB/s link: 20 ms. Two at once: 25 GB/s each, 40 ms each.
        let mut l = KvLinks::new(vec![50.0, 50.0]);
        assert!(l.start(SimTime::ZERO, 7, &[(vec![0, 1], 1e9)]));
        assert_eq!(run(&mut l)[&7], SimTime::from_ms(20));
        let mut l = KvLinks::new(vec![50.0, 50.0]);
        l.start(SimTime::ZERO, 1, &[(vec![0], 1e9)]);
        l.start(SimTime::ZERO, 2, &[(vec![0, 1], 1e9)]);
        let done = run(&mut l);
        assert_eq!((done[&1], done[&2]), (SimTime::from_ms(40), SimTime::from_ms(40)));
    }

    #[test]
    fn a_late_flow_slows_the_first_only_while_they_overlap() {
        // Link of 10 GB/s. A: 100 MB from 0; B: 50 MB from 5 ms. A alone to 5 ms sends
        // 50 MB; then both at 5 GB/s: B's 50 MB take 10 ms (to 15 ms), A sends 50 MB
        // more in that time and is done at 15 ms too.
        let mut l = KvLinks::new(vec![10.0]);
        l.start(SimTime::ZERO, 1, &[(vec![0], 100e6)]);
        assert_eq!(l.next_finish(), Some(SimTime::from_ms(10)));
        l.start(SimTime::from_ms(5), 2, &[(vec![0], 50e6)]);
        let done = run(&mut l);
        assert_eq!((done[&1], done[&2]), (SimTime::from_ms(15), SimTime::from_ms(15)));
    }

    #[test]
    fn max_min_gives_the_unconstrained_flow_what_the_bottleneck_leaves() {
        // Links 0 (10 GB/s) and 1 (30 GB/s). Flows A on {0,1}, B on {1}. Link 0 fixes A
        // at 10; B gets 30 - 10 = 20 GB/s. 200 MB each: A 20 ms, B 10 ms; after B, A
        // stays at 10 (link 0 is its bottleneck).
        let mut l = KvLinks::new(vec![10.0, 30.0]);
        l.start(SimTime::ZERO, 1, &[(vec![0, 1], 200e6)]);
        l.start(SimTime::ZERO, 2, &[(vec![1], 200e6)]);
        let done = run(&mut l);
        assert_eq!((done[&1], done[&2]), (SimTime::from_ms(20), SimTime::from_ms(10)));
        assert_eq!(l.active(), 0);
    }
}
