//! Max-min re-sharing of the part of the network a change reaches.
//!
//! # What is computed
//! The max-min fair rates of the draining flows, which progressive filling gives:
//! raise every unfixed flow's rate together, and when a link fills, fix its flows. A
//! flow on a capped route (NVLS through the switch) never exceeds its cap: the cap is
//! filled like a link of its own.
//!
//! # What is looked at
//! Max-min rates couple flows only through shared links, so after a change (flows
//! start, flows drain, a capacity moves) only the *connected component* of the changed
//! links can move: the links reachable from them by alternating "a flow on this link"
//! and "a link on that flow's route". That component is re-filled from scratch, which is
//! exact by construction (it is the reference algorithm, restricted to flows whose
//! constraints are all inside it); flows outside it keep their rates and finishes. The
//! work is linear in the component's flows times their route length, plus a heap over
//! its links. A drain that leaves only links with room (no flow's bottleneck) reaches
//! nothing and costs nothing; the caller seeds only links that were full. Links that can
//! never be full (non-blocking spine links, see the `covered` module) bound no rate and
//! join no component.
//!
//! When every change at an instant is a drain, less moves: progressive filling below
//! the lowest rate r a drained flow had is the same with or without it (below r the
//! drained flow was unfixed and its links were not full, and taking its load off only
//! fills them later), so every flow rated under r keeps its rate exactly. Such flows are
//! constants: they take their rate off their links' capacities, and the component is
//! only grown through flows rated r or more. (The comparison leaves 1e-9 relative room,
//! so a flow at r up to rounding is re-filled, never frozen.)
//!
//! The fill keeps one heap entry per link, keyed by its fair share when pushed. Fixing
//! flows at the smallest share never lowers another link's share: (rem - s)/(cnt - 1)
//! is at least rem/cnt when s <= rem/cnt. So a popped key is a lower bound: an entry whose
//! link's share has grown since is pushed again at the new share, not processed.
//!
//! Every flow fixed when a link fills drains at that link's share, so the result is a
//! level per filled link (and per capped flow, its cap) and a group per flow: the
//! `groups` module keeps the rest. Only flows whose group changes are moved one by one;
//! a group whose new level equals its old one to 1e-12 relative keeps the old value, so
//! its members' finishes are not moved by rounding noise.

use super::records::OnLink;
use super::Network;
use crate::hardware::topology::LinkId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Relative tolerance of the "link is full" check.
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

/// Scratch space of the re-sharing, kept between calls so nothing is reallocated.
#[derive(Clone, Debug, Default)]
pub(super) struct Sharing {
    /// Bumped per re-sharing; a link or flow stamped with it was reached (a flow: fixed)
    /// this time.
    epoch: u32,
    flow_fixed: Vec<u32>,
    /// The component's flows, each with the group it was fixed in, in fixing order.
    fixed: Vec<(u32, u32)>,
    /// The groups given a level by this re-sharing, with it.
    levels: Vec<(u32, f64)>,
    /// The component's flows whose group changes, with it.
    moves: Vec<(u32, u32)>,
    link_seen: Vec<u32>,
    rem: Vec<f64>,
    cnt: Vec<u32>,
    /// The component's links.
    links: Vec<LinkId>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// The component's flows on each of its links (`span[link]` indexes `moving`):
    /// the flows that are not constants.
    moving: Vec<u32>,
    span: Vec<(u32, u32)>,
    /// Scratch: the flows of the link being filled that are not fixed yet.
    fresh: Vec<u32>,
}

impl Sharing {
    /// Scratch for a network of `links` links.
    pub(super) fn new(links: usize) -> Self {
        Sharing {
            link_seen: vec![0; links],
            rem: vec![0.0; links],
            cnt: vec![0; links],
            span: vec![(0, 0); links],
            ..Sharing::default()
        }
    }

    /// Flows in the last re-sharing's component.
    pub(super) fn last_size(&self) -> usize {
        self.fixed.len()
    }

    /// Re-shares the component of `seed_links` at the network's instant: sets the new
    /// levels, moves the flows whose group changed and sets the links' loads. When every
    /// change was a drain, `floor` is the lowest rate a drained flow had, and flows rated
    /// below it keep their rates (see the module docs); otherwise it is 0. Returns how
    /// many flows' rates changed.
    pub(super) fn reshare(&mut self, net: &mut Network, seed_links: &[LinkId], floor: f64) -> u64 {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old stamps could alias the new epoch.
            self.flow_fixed.fill(0);
            self.link_seen.fill(0);
            self.epoch = 1;
        }
        if self.flow_fixed.len() < net.flows.len() {
            self.flow_fixed.resize(net.flows.len(), 0);
        }
        // Below the floor by more than rounding noise: certainly below it exactly.
        self.component(net, seed_links, floor * (1.0 - TOL));
        self.fill(net);
        self.apply(net)
    }

    /// Moves the flows whose group changed, sets the new levels and the links' loads.
    fn apply(&mut self, net: &mut Network) -> u64 {
        let now = net.now;
        self.moves.clear();
        self.moves.extend(self.fixed.iter().filter(|&&(f, g)| g != net.groups.group_of(f)));
        for &(f, _) in &self.moves {
            net.groups.leave(f, now);
        }
        let mut changed = self.moves.len() as u64;
        for &(g, level) in &self.levels {
            let old = net.groups.level(g);
            if old < 0.0 || (level - old).abs() > SAME * old.max(level) {
                changed += net.groups.len(g) as u64;
                net.groups.set_level(g, level, now);
            }
        }
        for &(f, g) in &self.moves {
            net.groups.join(f, g, now);
            net.note_group(f, g);
        }
        for &l in &self.links {
            net.load[l as usize] = net.caps[l as usize] - self.rem[l as usize];
        }
        changed
    }

    /// Collects the links reachable from `seeds` through flows rated at or above
    /// `below`, and on each link those flows; the flows under it are constants that take
    /// their rate off each link's capacity (and make up its load so far).
    fn component(&mut self, net: &mut Network, seeds: &[LinkId], below: f64) {
        self.links.clear();
        self.moving.clear();
        let epoch = self.epoch;
        for &l in seeds {
            if self.link_seen[l as usize] != epoch && !net.covered.is_covered(l) {
                self.link_seen[l as usize] = epoch;
                self.links.push(l);
            }
        }
        let mut next = 0;
        while next < self.links.len() {
            let li = self.links[next] as usize;
            next += 1;
            let kept = self.split(net, li, below);
            self.rem[li] = net.caps[li] - kept;
            net.load[li] = kept;
            // A flow is met once from each of its links: its links are queued each
            // time, which is cheaper than asking first whether it was met.
            for k in self.span[li].0..self.span[li].1 {
                let f = self.moving[k as usize];
                for &m in net.binding[f as usize].links() {
                    if self.link_seen[m as usize] != epoch {
                        self.link_seen[m as usize] = epoch;
                        self.links.push(m);
                    }
                }
            }
        }
    }

    /// Appends link `li`'s flows rated `below` or more (or not rated) to `moving`, notes
    /// their span and count, and returns the sum of the other flows' rates. Branch-free
    /// with four partial sums: most of a busy link's flows are constants, and this
    /// sweep is the hot loop of a re-sharing.
    fn split(&mut self, net: &Network, li: usize, below: f64) -> f64 {
        let flows = &net.link_flows[li];
        let levels = net.groups.levels();
        let base = self.moving.len();
        self.moving.resize(base + flows.len(), 0);
        let out = &mut self.moving[base..];
        // Rates are non-negative or UNRATED (sign bit set), so as bits a constant is one
        // below `below`'s bits, and an unrated flow never is.
        let below = below.to_bits();
        let (mut n, mut acc) = (0usize, [0.0f64; 4]);
        let mut take = |e: &OnLink, acc: &mut f64| {
            let r = levels[e.group as usize];
            let constant = r.to_bits() < below;
            // r or +0.0 by masking its bits: a branch here would be mispredicted often.
            *acc += f64::from_bits(r.to_bits() & u64::from(constant).wrapping_neg());
            out[n] = e.flow;
            n += usize::from(!constant);
        };
        // Flow j adds to partial sum j % 4, in fours so the sums stay in registers.
        let mut fours = flows.chunks_exact(4);
        for e4 in &mut fours {
            for i in 0..4 {
                take(&e4[i], &mut acc[i]);
            }
        }
        for (i, e) in fours.remainder().iter().enumerate() {
            take(e, &mut acc[i]);
        }
        self.moving.truncate(base + n);
        self.span[li] = (base as u32, (base + n) as u32);
        self.cnt[li] = n as u32;
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }

    /// Progressive filling of the component's flows against what the rest leaves.
    fn fill(&mut self, net: &Network) {
        self.heap.clear();
        self.levels.clear();
        self.fixed.clear();
        for &l in &self.links {
            let li = l as usize;
            if self.cnt[li] > 0 {
                self.heap.push(Reverse((key(self.rem[li] / f64::from(self.cnt[li])), l)));
            }
        }
        // Most re-sharings have no capped flow: skip reading every flow's route for one.
        if net.capped > 0 {
            for &l in &self.links {
                let (lo, hi) = self.span[l as usize];
                for &f in &self.moving[lo as usize..hi as usize] {
                    let cap = net.routes[f as usize].rate_cap;
                    if cap.is_finite() {
                        self.heap.push(Reverse((key(cap), FLOW_ENTRY | f)));
                    }
                }
            }
        }
        let epoch = self.epoch;
        while let Some(Reverse((k, e))) = self.heap.pop() {
            if e & FLOW_ENTRY != 0 {
                let f = e & !FLOW_ENTRY;
                if self.flow_fixed[f as usize] != epoch {
                    let (cap, group) = (net.routes[f as usize].rate_cap, net.cap_group[f as usize]);
                    self.fix(net, f, cap, group, u32::MAX);
                    self.levels.push((group, cap));
                }
                continue;
            }
            let li = e as usize;
            if self.cnt[li] == 0 {
                continue;
            }
            let share = self.rem[li].max(0.0) / f64::from(self.cnt[li]);
            // Grown since pushed: still the least if no other key (a lower bound of its
            // link's share) is below it.
            if key(share) > k && self.heap.peek().is_some_and(|&Reverse((next, _))| next < key(share)) {
                self.heap.push(Reverse((key(share), e)));
                continue;
            }
            self.levels.push((e, share));
            // Every flow of the link left is fixed now: its own remainder is taken once.
            self.rem[li] -= share * f64::from(self.cnt[li]);
            self.cnt[li] = 0;
            // The link's flows not fixed yet, gathered branch-free first (whether a flow
            // was fixed from its other link is a coin flip, costly as a branch).
            let (lo, hi) = (self.span[li].0 as usize, self.span[li].1 as usize);
            self.fresh.resize(hi - lo, 0);
            let mut n = 0;
            for &f in &self.moving[lo..hi] {
                self.fresh[n] = f;
                n += usize::from(self.flow_fixed[f as usize] != epoch);
            }
            for j in 0..n {
                self.fix(net, self.fresh[j], share, e, e);
            }
        }
    }

    /// Fixes flow `f` at `rate` in `group` and takes it off its links other than `done`
    /// (whose remainder the caller takes for all its flows at once).
    fn fix(&mut self, net: &Network, f: u32, rate: f64, group: u32, done: u32) {
        self.flow_fixed[f as usize] = self.epoch;
        self.fixed.push((f, group));
        for &l in net.binding[f as usize].links().iter().filter(|&&l| l != done) {
            self.rem[l as usize] -= rate;
            self.cnt[l as usize] -= 1;
        }
    }
}
