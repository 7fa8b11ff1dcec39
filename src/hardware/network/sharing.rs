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
//! The component is filled by the one progressive filling (the `fill` module). Every
//! flow fixed when a link fills drains at that link's share, so the result is a level
//! per filled link (and per capped flow, its cap) and a group per flow: the `groups`
//! module keeps the rest. Only flows whose group changes are moved one by one;
//! a group whose new level equals its old one to 1e-12 relative keeps the old value, so
//! its members' finishes are not moved by rounding noise.

use super::fill::{Filling, FlowSet, LinkTables};
use super::records::OnLink;
use super::Network;
use crate::hardware::topology::LinkId;

/// Relative tolerance of the "link is full" check.
const TOL: f64 = 1e-9;
/// Relative difference under which a new rate counts as the old one.
const SAME: f64 = 1e-12;

/// True when a link carrying `load` bytes/s is full, to the checks' tolerance.
pub(super) fn is_full(load: f64, cap: f64) -> bool {
    load >= cap * (1.0 - TOL)
}

/// Scratch space of the re-sharing, kept between calls so nothing is reallocated.
#[derive(Clone, Debug, Default)]
pub(super) struct Sharing {
    /// Bumped per re-sharing; a link stamped with it was reached this time.
    epoch: u32,
    /// The component's flows whose group changes, with it.
    moves: Vec<(u32, u32)>,
    link_seen: Vec<u32>,
    /// The component's links, and on each the capacity the constants leave and the
    /// flows that are not constants.
    links: Vec<LinkId>,
    t: LinkTables,
    /// The filling and its result: the component's flows with their groups, the levels.
    filling: Filling,
}

impl FlowSet for Network {
    fn links(&self, f: u32) -> &[u32] {
        self.binding[f as usize].links()
    }
    fn cap(&self, f: u32) -> f64 {
        self.routes[f as usize].rate_cap
    }
    fn cap_group(&self, f: u32) -> u32 {
        self.cap_group[f as usize]
    }
    fn any_capped(&self) -> bool {
        self.capped > 0
    }
}

impl Sharing {
    /// Scratch for a network of `links` links.
    pub(super) fn new(links: usize) -> Self {
        Sharing { link_seen: vec![0; links], t: LinkTables::new(links), ..Sharing::default() }
    }

    /// Flows in the last re-sharing's component.
    pub(super) fn last_size(&self) -> usize {
        self.filling.fixed.len()
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
            self.link_seen.fill(0);
            self.epoch = 1;
        }
        // Below the floor by more than rounding noise: certainly below it exactly.
        self.component(net, seed_links, floor * (1.0 - TOL));
        self.filling.run(&*net, net.flows.len(), &self.links, &mut self.t);
        self.apply(net)
    }

    /// Moves the flows whose group changed, sets the new levels and the links' loads.
    fn apply(&mut self, net: &mut Network) -> u64 {
        let now = net.now;
        self.moves.clear();
        self.moves.extend(self.filling.fixed.iter().filter(|&&(f, g)| g != net.groups.group_of(f)));
        for &(f, _) in &self.moves {
            net.groups.leave(f, now);
        }
        let mut changed = self.moves.len() as u64;
        for &(g, level) in &self.filling.levels {
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
            net.load[l as usize] = net.caps[l as usize] - self.t.rem[l as usize];
        }
        changed
    }

    /// Collects the links reachable from `seeds` through flows rated at or above
    /// `below`, and on each link those flows; the flows under it are constants that take
    /// their rate off each link's capacity (and make up its load so far).
    fn component(&mut self, net: &mut Network, seeds: &[LinkId], below: f64) {
        self.links.clear();
        self.t.moving.clear();
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
            self.t.rem[li] = net.caps[li] - kept;
            net.load[li] = kept;
            // A flow is met once from each of its links: its links are queued each
            // time, which is cheaper than asking first whether it was met.
            for k in self.t.span[li].0..self.t.span[li].1 {
                let f = self.t.moving[k as usize];
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
        let base = self.t.moving.len();
        self.t.moving.resize(base + flows.len(), 0);
        let out = &mut self.t.moving[base..];
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
        self.t.moving.truncate(base + n);
        self.t.span[li] = (base as u32, (base + n) as u32);
        self.t.cnt[li] = n as u32;
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }
}
