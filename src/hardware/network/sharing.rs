//! Incremental max-min re-sharing: only the flows whose rate can move are looked at.
//!
//! # What is computed
//! The max-min fair rates of the draining flows, which progressive filling gives:
//! raise every unfixed flow's rate together, and when a link fills, fix its flows.
//! An allocation is max-min fair exactly when every flow has a *bottleneck*: a full
//! link on its route on which no flow has a higher rate.
//!
//! # How, incrementally
//! After a change (flows start, flows drain, a capacity moves), a set S of flows is
//! re-solved by progressive filling while every other flow keeps its rate: each link
//! offers S what the outside flows leave of its capacity. S starts with the new flows,
//! every flow on a full link that lost a flow, and every flow on a link whose capacity
//! changed. The result is checked against the bottleneck condition where it could fail,
//! and S grows by the outside flows where it does, until nothing fails:
//!
//! - a link fixes S's flows at a share below the rate of an outside flow on it (that
//!   flow would have more than its bottleneck allows): those outside flows join S;
//! - a link that was full carries less than before (an outside flow bottlenecked there
//!   could now rise), or is full and gives an S flow more than every outside flow (an
//!   outside flow bottlenecked there no longer has the highest rate): its outside
//!   flows join S.
//!
//! When no check fails, every flow has a bottleneck: S's flows one from the filling
//! (full, since S used what the outside left; highest, by the first check), and every
//! outside flow its old one (on which neither the load nor the highest rate moved, by
//! the second). So the rates are the max-min fair ones, as a full recomputation would
//! give. The work is proportional to S's flows and the links they cross, not to the
//! flows on those links: each link keeps its flows' rates in a small ordered multiset
//! (flows that share a bottleneck share one exact rate, so it holds few distinct
//! values) from which the outside load and the highest outside rate are read.
//!
//! A flow on a capped route (NVLS through the switch) never exceeds its cap: the cap
//! is filled like a link of its own, and a flow held at its cap has its bottleneck.
//!
//! A flow whose new rate equals its old one to 1e-12 keeps the old value, so its
//! finish is not moved; the checks use a relative tolerance of 1e-9 for the same reason.

use super::Network;
use crate::hardware::topology::LinkId;
use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BinaryHeap};

/// Relative tolerance of the saturation and highest-rate checks.
const TOL: f64 = 1e-9;
/// Relative difference under which a new rate counts as the old one.
const SAME: f64 = 1e-12;

/// True when a link carrying `load` bytes/s is full, to the checks' tolerance.
pub(super) fn is_full(load: f64, cap: f64) -> bool {
    load >= cap * (1.0 - TOL)
}

/// Marks a heap entry that is a flow's rate cap rather than a link.
const FLOW_ENTRY: u32 = 1 << 31;

/// Non-negative finite f64s order like their bit patterns.
fn key(rate: f64) -> u64 {
    rate.max(0.0).to_bits()
}

/// The rates of the flows on one link, as a multiset.
#[derive(Clone, Debug, Default)]
pub(super) struct LinkRates {
    counts: BTreeMap<u64, u32>,
}

impl LinkRates {
    pub(super) fn insert(&mut self, rate: f64) {
        *self.counts.entry(key(rate)).or_insert(0) += 1;
    }
    pub(super) fn remove(&mut self, rate: f64) {
        if let Entry::Occupied(mut e) = self.counts.entry(key(rate)) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
    /// Sum of the rates, bytes/s.
    pub(super) fn load(&self) -> f64 {
        self.counts.iter().map(|(&k, &c)| f64::from_bits(k) * f64::from(c)).sum()
    }
    /// The highest rate (0 with no flows).
    fn max(&self) -> f64 {
        self.counts.keys().next_back().map_or(0.0, |&k| f64::from_bits(k))
    }
}

/// Scratch space of the re-sharing, kept between calls so nothing is reallocated.
#[derive(Clone, Debug)]
pub(super) struct Sharing {
    /// Flow index -> epoch in which it joined S (S membership test).
    member: Vec<u32>,
    epoch: u32,
    /// S, as flow indices, with per-member old-rate validity, new rate and fixed flag.
    set: Vec<u32>,
    had_rate: Vec<bool>,
    new_rate: Vec<f64>,
    fixed: Vec<bool>,
    /// Per link: the round it was set up in, and that round's figures.
    link_round: Vec<u32>,
    round: u32,
    on_link: Vec<Vec<u32>>,
    rem: Vec<f64>,
    cnt: Vec<u32>,
    out_load: Vec<f64>,
    out_max: Vec<f64>,
    old_in: Vec<f64>,
    new_in: Vec<f64>,
    new_max: Vec<f64>,
    links: Vec<LinkId>,
    heap: BinaryHeap<Reverse<(u64, LinkId)>>,
    grow: Vec<u32>,
    spare: Vec<(u32, f64)>,
}

impl Sharing {
    pub(super) fn new(links: usize) -> Self {
        Sharing {
            member: Vec::new(),
            epoch: 0,
            set: Vec::new(),
            had_rate: Vec::new(),
            new_rate: Vec::new(),
            fixed: Vec::new(),
            link_round: vec![0; links],
            round: 0,
            on_link: vec![Vec::new(); links],
            rem: vec![0.0; links],
            cnt: vec![0; links],
            out_load: vec![0.0; links],
            out_max: vec![0.0; links],
            old_in: vec![0.0; links],
            new_in: vec![0.0; links],
            new_max: vec![0.0; links],
            links: Vec::new(),
            heap: BinaryHeap::new(),
            grow: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Flows in the last re-sharing's S.
    pub(super) fn last_size(&self) -> usize {
        self.set.len()
    }

    /// Hands back the buffer [`Sharing::reshare`] returned, for reuse.
    pub(super) fn recycle(&mut self, mut buf: Vec<(u32, f64)>) {
        buf.clear();
        self.spare = buf;
    }

    /// Re-shares after a change; returns the flows whose rate changed, with their new
    /// rate (the caller moves their finishes and sets `rate`). The links' rate sets
    /// hold the new rates on return.
    pub(super) fn reshare(&mut self, net: &mut Network, seeds: &[u32], seed_links: &[LinkId]) -> Vec<(u32, f64)> {
        self.epoch = self.epoch.wrapping_add(1);
        self.member.resize(net.flows.len(), 0);
        self.set.clear();
        self.had_rate.clear();
        for &l in seed_links {
            for i in 0..net.link_flows[l as usize].len() {
                self.join(net, net.link_flows[l as usize][i]);
            }
        }
        for &f in seeds {
            self.join(net, f);
        }
        loop {
            self.solve(net);
            if self.grow.is_empty() {
                break;
            }
            let grow = std::mem::take(&mut self.grow);
            for &f in &grow {
                self.join(net, f);
            }
            self.grow = grow;
            self.grow.clear();
        }
        let mut changed = std::mem::take(&mut self.spare);
        for (i, &f) in self.set.iter().enumerate() {
            let flow = &mut net.flows[f as usize];
            let (old, new) = (flow.rate, self.new_rate[i]);
            let keep = self.had_rate[i] && (new - old).abs() <= SAME * old.max(new);
            let rate = if keep { old } else { new };
            if !keep {
                changed.push((f, new));
            }
            flow.recorded = true;
            for &l in flow.route.links() {
                net.link_rates[l as usize].insert(rate);
            }
        }
        changed
    }

    /// Adds a draining flow to S, taking its rate out of its links' rate sets.
    fn join(&mut self, net: &mut Network, f: u32) {
        let fi = f as usize;
        if self.member[fi] == self.epoch {
            return;
        }
        self.member[fi] = self.epoch;
        let flow = &mut net.flows[fi];
        self.set.push(f);
        self.had_rate.push(flow.recorded);
        if flow.recorded {
            for &l in flow.route.links() {
                net.link_rates[l as usize].remove(flow.rate);
            }
            flow.recorded = false;
        }
    }

    fn outside(&self, f: u32) -> bool {
        self.member[f as usize] != self.epoch
    }

    /// One progressive filling of S against what the outside flows leave; outside
    /// flows that fail a check go to `grow`.
    fn solve(&mut self, net: &Network) {
        self.round = self.round.wrapping_add(1);
        self.links.clear();
        self.heap.clear();
        self.new_rate.clear();
        self.new_rate.resize(self.set.len(), 0.0);
        self.fixed.clear();
        self.fixed.resize(self.set.len(), false);
        for (i, &f) in self.set.iter().enumerate() {
            let flow = &net.flows[f as usize];
            for &l in flow.route.links() {
                let li = l as usize;
                if self.link_round[li] != self.round {
                    self.link_round[li] = self.round;
                    self.on_link[li].clear();
                    let rates = &net.link_rates[li];
                    self.out_load[li] = rates.load();
                    self.out_max[li] = rates.max();
                    self.old_in[li] = 0.0;
                    self.new_in[li] = 0.0;
                    self.new_max[li] = 0.0;
                    self.links.push(l);
                }
                self.on_link[li].push(i as u32);
                if self.had_rate[i] {
                    self.old_in[li] += flow.rate;
                }
            }
        }
        // One heap entry per link, keyed by its fair share when pushed. Fixing flows at
        // the smallest share never lowers another link's share ((rem - s)/(cnt - 1) >=
        // rem/cnt when s <= rem/cnt), so a popped key is a lower bound: an entry whose
        // link's share has grown since is pushed again at the new share, not processed.
        for &l in &self.links {
            let li = l as usize;
            self.rem[li] = (net.caps[li] - self.out_load[li]).max(0.0);
            self.cnt[li] = self.on_link[li].len() as u32;
            self.heap.push(Reverse((key(self.rem[li] / f64::from(self.cnt[li])), l)));
        }
        for (i, &f) in self.set.iter().enumerate() {
            let cap = net.flows[f as usize].route.rate_cap;
            if cap.is_finite() {
                // A capped route (NVLS) is a constraint of its own, filled like a link.
                self.heap.push(Reverse((key(cap), FLOW_ENTRY | i as u32)));
            }
        }
        while let Some(Reverse((k, l))) = self.heap.pop() {
            if l & FLOW_ENTRY != 0 {
                let i = (l & !FLOW_ENTRY) as usize;
                if !self.fixed[i] {
                    self.fix_flow(net, i, net.flows[self.set[i] as usize].route.rate_cap);
                }
                continue;
            }
            let li = l as usize;
            if self.cnt[li] == 0 {
                continue;
            }
            let share = self.rem[li].max(0.0) / f64::from(self.cnt[li]);
            if key(share) > k {
                self.heap.push(Reverse((key(share), l)));
                continue;
            }
            if self.out_max[li] > share * (1.0 + TOL) {
                // An outside flow has more than this link lets S have: it must be re-shared too.
                let above = share * (1.0 + TOL);
                for &g in &net.link_flows[li] {
                    if self.outside(g) && net.flows[g as usize].rate > above {
                        self.grow.push(g);
                    }
                }
            }
            self.fix_link(net, l, share);
        }
        self.check_outside(net);
    }

    /// Fixes the unfixed S flows on `l` at `share` and takes it off their other links.
    fn fix_link(&mut self, net: &Network, l: LinkId, share: f64) {
        let li = l as usize;
        for j in 0..self.on_link[li].len() {
            let i = self.on_link[li][j] as usize;
            if !self.fixed[i] {
                self.fix_flow(net, i, share);
            }
        }
    }

    /// Fixes S member `i` at `rate` and takes it off its links.
    fn fix_flow(&mut self, net: &Network, i: usize, rate: f64) {
        self.fixed[i] = true;
        self.new_rate[i] = rate;
        for &l2 in net.flows[self.set[i] as usize].route.links() {
            let l2i = l2 as usize;
            self.rem[l2i] -= rate;
            self.cnt[l2i] -= 1;
            self.new_in[l2i] += rate;
            self.new_max[l2i] = self.new_max[l2i].max(rate);
        }
    }

    /// The second check of the module docs, on every link S crosses.
    fn check_outside(&mut self, net: &Network) {
        for &l in &self.links {
            let li = l as usize;
            if net.link_flows[li].len() == self.on_link[li].len() {
                continue;
            }
            let cap = net.caps[li];
            let old_total = self.out_load[li] + self.old_in[li];
            let new_total = self.out_load[li] + self.new_in[li];
            let freed = is_full(old_total, cap) && new_total < old_total - TOL * cap;
            let overtaken = is_full(new_total, cap) && self.new_max[li] > self.out_max[li] * (1.0 + TOL);
            if freed || overtaken {
                for &g in &net.link_flows[li] {
                    if self.outside(g) {
                        self.grow.push(g);
                    }
                }
            }
        }
    }
}
