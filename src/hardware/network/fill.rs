//! Progressive filling, the one routine that computes max-min fair rates: for the flow
//! model's re-sharing (over the component a change reaches) and for the collectives'
//! closed forms (over the transfers in flight on idle links).
//!
//! Raise every unfixed flow's rate together; when a link fills, fix its flows at its
//! fair share; a flow with a rate cap (NVLS through the switch) is fixed at its cap
//! when the filling reaches it, like a link of its own. The result is a *level* per
//! filled link (and per capped flow, its cap) and, per flow, the group it was fixed in
//! (the link's index, or its cap's group): its rate is that group's level.
//!
//! The filling keeps one heap entry per link, keyed by its fair share when pushed.
//! Fixing flows at the smallest share never lowers another link's share:
//! (rem - s)/(cnt - 1) is at least rem/cnt when s <= rem/cnt. So a popped key is a lower
//! bound: an entry whose link's share has grown since is pushed again at the new share,
//! unless no other key is below that share (it is still the least).
//!
//! Every flow sits in the lists of all its links, so a filled link meets, as a coin
//! flip, flows another link fixed first; those are set aside branch-free before the
//! others are fixed (a branch there is mispredicted half the time, and this loop is the
//! flow model's hot spot).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Marks a heap entry that is a flow's rate cap rather than a link.
const FLOW_ENTRY: u32 = 1 << 31;

/// Non-negative finite f64s order like their bit patterns.
fn key(rate: f64) -> u64 {
    rate.max(0.0).to_bits()
}

/// What the filling reads of the flows it fills (flows are numbered below
/// [`FLOW_ENTRY`], links by their index in [`LinkTables`]).
pub(crate) trait FlowSet {
    /// The links that can bound flow `f`'s rate.
    fn links(&self, f: u32) -> &[u32];
    /// Flow `f`'s rate cap, bytes/s (infinite without one).
    fn cap(&self, f: u32) -> f64;
    /// The group a capped flow `f` is fixed in when its cap binds.
    fn cap_group(&self, f: u32) -> u32;
    /// False when no flow has a finite cap (the filling then reads no cap).
    fn any_capped(&self) -> bool;
}

/// The link side of a filling, by link index: the capacity left to the flows being
/// filled (`rem`), how many of them cross it (`cnt`), and which (`span[l]` indexes
/// `moving`). The filling consumes `rem` and `cnt`: afterwards `cap - rem` is each
/// link's load.
#[derive(Clone, Debug, Default)]
pub(crate) struct LinkTables {
    pub(crate) rem: Vec<f64>,
    pub(crate) cnt: Vec<u32>,
    pub(crate) span: Vec<(u32, u32)>,
    pub(crate) moving: Vec<u32>,
}

impl LinkTables {
    /// Tables for `links` links, all empty.
    pub(crate) fn new(links: usize) -> Self {
        LinkTables { rem: vec![0.0; links], cnt: vec![0; links], span: vec![(0, 0); links], moving: Vec::new() }
    }
}

/// The filling's scratch and its result, kept between calls so nothing is reallocated.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filling {
    /// Bumped per filling; a flow stamped with it is fixed.
    epoch: u32,
    flow_fixed: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Scratch: the flows of the link being filled that are not fixed yet.
    fresh: Vec<u32>,
    /// Result: each flow filled with the group it was fixed in, in fixing order.
    pub(crate) fixed: Vec<(u32, u32)>,
    /// Result: each group given a level, with it.
    pub(crate) levels: Vec<(u32, f64)>,
}

impl Filling {
    /// Fills the flows listed on `links` (flows numbered below `flows_len`), each link's
    /// entries in `t`, and leaves the result in [`Filling::fixed`] and
    /// [`Filling::levels`].
    pub(crate) fn run(&mut self, flows: &impl FlowSet, flows_len: usize, links: &[u32], t: &mut LinkTables) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old stamps could alias the new epoch.
            self.flow_fixed.fill(0);
            self.epoch = 1;
        }
        if self.flow_fixed.len() < flows_len {
            self.flow_fixed.resize(flows_len, 0);
        }
        self.heap.clear();
        self.levels.clear();
        self.fixed.clear();
        for &l in links {
            let li = l as usize;
            if t.cnt[li] > 0 {
                self.heap.push(Reverse((key(t.rem[li] / f64::from(t.cnt[li])), l)));
            }
        }
        // Most fillings have no capped flow: skip reading every flow's cap then.
        if flows.any_capped() {
            for &l in links {
                let (lo, hi) = t.span[l as usize];
                for &f in &t.moving[lo as usize..hi as usize] {
                    let cap = flows.cap(f);
                    if cap.is_finite() {
                        self.heap.push(Reverse((key(cap), FLOW_ENTRY | f)));
                    }
                }
            }
        }
        while let Some(Reverse((k, e))) = self.heap.pop() {
            if e & FLOW_ENTRY != 0 {
                let f = e & !FLOW_ENTRY;
                if self.flow_fixed[f as usize] != self.epoch {
                    let (cap, group) = (flows.cap(f), flows.cap_group(f));
                    self.fix(flows, t, f, cap, group, u32::MAX);
                    self.levels.push((group, cap));
                }
                continue;
            }
            self.pop_link(flows, t, k, e);
        }
    }

    /// Handles link `l` popped at key `k`: fills it if its share is still the least,
    /// else pushes it again at its share.
    fn pop_link(&mut self, flows: &impl FlowSet, t: &mut LinkTables, k: u64, l: u32) {
        let li = l as usize;
        if t.cnt[li] == 0 {
            return;
        }
        let share = t.rem[li].max(0.0) / f64::from(t.cnt[li]);
        if key(share) > k && self.heap.peek().is_some_and(|&Reverse((next, _))| next < key(share)) {
            self.heap.push(Reverse((key(share), l)));
            return;
        }
        self.levels.push((l, share));
        // Every flow of the link left is fixed now: its own remainder is taken once.
        t.rem[li] -= share * f64::from(t.cnt[li]);
        t.cnt[li] = 0;
        let (lo, hi) = (t.span[li].0 as usize, t.span[li].1 as usize);
        self.fresh.resize(hi - lo, 0);
        let mut n = 0;
        for &f in &t.moving[lo..hi] {
            self.fresh[n] = f;
            n += usize::from(self.flow_fixed[f as usize] != self.epoch);
        }
        for j in 0..n {
            self.fix(flows, t, self.fresh[j], share, l, l);
        }
    }

    /// Fixes flow `f` at `rate` in `group` and takes it off its links other than `done`
    /// (whose remainder the caller takes for all its flows at once).
    fn fix(&mut self, flows: &impl FlowSet, t: &mut LinkTables, f: u32, rate: f64, group: u32, done: u32) {
        self.flow_fixed[f as usize] = self.epoch;
        self.fixed.push((f, group));
        for &l in flows.links(f).iter().filter(|&&l| l != done) {
            t.rem[l as usize] -= rate;
            t.cnt[l as usize] -= 1;
        }
    }
}
