//! Bottleneck groups: the flows that drain at one rate, against one virtual clock.
//!
//! Max-min fairness gives every draining flow the fair share of one link of its route,
//! its bottleneck (or its route's own rate cap): every flow fixed at a link's share drains
//! at that link's *level*. A re-sharing that moves a link's level thus moves the rates of
//! all its flows at once, and here that costs O(1), not a visit to each flow: a group
//! keeps a virtual clock, the bytes one member has sent since the clock's origin
//! (`served`, as of the instant `at`), and each member the clock reading at which its last
//! byte leaves (its *mark*). A member's bytes left are its mark minus the clock; its drain
//! instant is `at + (mark - served) / level`, rounded by [`transfer_time`] as everywhere,
//! and the group's next drain is its least mark (a heap per group). The clock is moved to
//! the present only when the level changes, so a drain instant is computed from the last
//! rate change, as a per-flow record would be. Only a flow that changes group pays: it
//! leaves with its bytes left and joins with a new mark.
//!
//! Groups `0..links` are the links, group `links` is a stand-in whose level is always
//! [`UNRATED`] (for tables that give every flow a group), and a flow on a capped route
//! (NVLS) gets a group of its own for its cap, allocated when it starts. The next drain of every group sits in one
//! heap keyed by instant; an entry is stale once its group's stamp moved on.

use super::transfer_time;
use crate::engine::SimTime;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// The level of the stand-in group, where flows not rated yet sit (new, re-routed or
/// drained): their rate is not known.
pub(super) const UNRATED: f64 = -1.0;

/// Orders members by mark, ties by flow index (deterministic).
fn before(a: (f64, u32), b: (f64, u32)) -> bool {
    match a.0.total_cmp(&b.0) {
        Ordering::Less => true,
        Ordering::Equal => a.1 < b.1,
        Ordering::Greater => false,
    }
}

/// Every group's clock and members, and each flow's group and mark.
#[derive(Clone, Debug, Default)]
pub(super) struct Groups {
    /// Per group: bytes/s per member ([`UNRATED`] before a re-sharing set it).
    level: Vec<f64>,
    /// Per group: bytes one member has sent since the clock's origin, as of `at`.
    served: Vec<f64>,
    at: Vec<SimTime>,
    /// Per group: its members as a binary min-heap of (mark, flow).
    members: Vec<Vec<(f64, u32)>>,
    /// Per group: bumped whenever its next drain is recomputed.
    stamp: Vec<u32>,
    dirty: Vec<bool>,
    dirty_list: Vec<u32>,
    /// Next drain instant (ns) of each group with members, stale entries included.
    next: BinaryHeap<Reverse<(u64, u32, u32)>>,
    /// Cap groups free for reuse.
    free: Vec<u32>,
    /// The stand-in group.
    unrated: u32,
    /// Per flow: its group, its mark (bytes left while in no group), its heap position.
    of: Vec<u32>,
    mark: Vec<f64>,
    pos: Vec<u32>,
}

impl Groups {
    /// One group per link and the stand-in, no flows.
    pub(super) fn new(links: usize) -> Self {
        let mut g = Groups::default();
        for _ in 0..=links {
            g.push_group();
        }
        g.unrated = links as u32;
        g
    }

    /// The stand-in group of unrated flows (never has members; its level is [`UNRATED`]).
    pub(super) fn unrated(&self) -> u32 {
        self.unrated
    }

    /// Every group's level, by group.
    #[inline]
    pub(super) fn levels(&self) -> &[f64] {
        &self.level
    }

    fn push_group(&mut self) -> u32 {
        self.level.push(UNRATED);
        self.served.push(0.0);
        self.at.push(SimTime::ZERO);
        self.members.push(Vec::new());
        self.stamp.push(0);
        self.dirty.push(false);
        (self.level.len() - 1) as u32
    }

    /// A group of its own for a flow on a capped route.
    pub(super) fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(g) => {
                self.level[g as usize] = UNRATED;
                g
            }
            None => self.push_group(),
        }
    }

    /// Gives back a capped flow's group (it has no members left).
    pub(super) fn release(&mut self, g: u32) {
        debug_assert!(self.members[g as usize].is_empty());
        self.stamp[g as usize] = self.stamp[g as usize].wrapping_add(1);
        self.free.push(g);
    }

    /// Registers flow `f`, unrated (in the stand-in group), with `bytes` to send.
    pub(super) fn start(&mut self, f: u32, bytes: f64) {
        let i = f as usize;
        if self.of.len() <= i {
            self.of.resize(i + 1, self.unrated);
            self.mark.resize(i + 1, 0.0);
            self.pos.resize(i + 1, 0);
        }
        self.of[i] = self.unrated;
        self.mark[i] = bytes;
    }

    /// The group of flow `f` (the stand-in while unrated).
    #[inline]
    pub(super) fn group_of(&self, f: u32) -> u32 {
        self.of[f as usize]
    }

    /// The rate of flow `f`, bytes/s ([`UNRATED`] while unrated).
    #[inline]
    pub(super) fn rate(&self, f: u32) -> f64 {
        self.level[self.of[f as usize] as usize]
    }

    /// The level of group `g`.
    #[inline]
    pub(super) fn level(&self, g: u32) -> f64 {
        self.level[g as usize]
    }

    /// Members of group `g`.
    pub(super) fn len(&self, g: u32) -> usize {
        self.members[g as usize].len()
    }

    /// Group `g`'s clock at `now`.
    fn served_at(&self, g: usize, now: SimTime) -> f64 {
        let level = self.level[g].max(0.0);
        self.served[g] + level * (now - self.at[g]).as_secs_f64()
    }

    /// Takes flow `f` out of its group at `now`; returns its bytes left.
    pub(super) fn leave(&mut self, f: u32, now: SimTime) -> f64 {
        let g = self.of[f as usize];
        if g == self.unrated {
            return self.mark[f as usize];
        }
        let left = (self.mark[f as usize] - self.served_at(g as usize, now)).max(0.0);
        self.remove(g, self.pos[f as usize] as usize);
        self.of[f as usize] = self.unrated;
        self.mark[f as usize] = left;
        self.touch(g);
        left
    }

    /// Puts flow `f` (unrated) into group `g` at `now`, with the bytes it has left.
    pub(super) fn join(&mut self, f: u32, g: u32, now: SimTime) {
        debug_assert_eq!(self.of[f as usize], self.unrated);
        let gi = g as usize;
        if self.members[gi].is_empty() {
            // Restart an empty group's clock, so marks stay small on long runs.
            self.served[gi] = 0.0;
            self.at[gi] = now;
        }
        let mark = self.served_at(gi, now) + self.mark[f as usize];
        self.of[f as usize] = g;
        self.mark[f as usize] = mark;
        let k = self.members[gi].len();
        self.members[gi].push((mark, f));
        self.pos[f as usize] = k as u32;
        self.sift_up(gi, k);
        self.touch(g);
    }

    /// Sets group `g`'s level from `now` on (its clock brought to `now` at the old one).
    pub(super) fn set_level(&mut self, g: u32, level: f64, now: SimTime) {
        let gi = g as usize;
        self.served[gi] = self.served_at(gi, now);
        self.at[gi] = now;
        self.level[gi] = level;
        self.touch(g);
    }

    fn touch(&mut self, g: u32) {
        if !self.dirty[g as usize] {
            self.dirty[g as usize] = true;
            self.dirty_list.push(g);
        }
    }

    /// The drain instant (ns) of group `g`'s first member; `u64::MAX` when none or stalled.
    fn first_drain(&self, g: usize) -> u64 {
        match self.members[g].first() {
            Some(&(mark, _)) if self.level[g] > 0.0 => {
                (self.at[g] + transfer_time(mark - self.served[g], self.level[g])).as_ns()
            }
            _ => u64::MAX,
        }
    }

    /// Files the next drain of every group changed since the last call.
    pub(super) fn refresh(&mut self) {
        for g in std::mem::take(&mut self.dirty_list) {
            let gi = g as usize;
            self.dirty[gi] = false;
            self.stamp[gi] = self.stamp[gi].wrapping_add(1);
            let t = self.first_drain(gi);
            if t != u64::MAX {
                self.next.push(Reverse((t, g, self.stamp[gi])));
            }
        }
        // Stale entries pile up while instants move; rebuild before they dominate.
        if self.next.len() > 64 + 4 * self.level.len() {
            let stamp = &self.stamp;
            let live: Vec<_> = self.next.drain().filter(|Reverse((_, g, s))| stamp[*g as usize] == *s).collect();
            self.next = live.into();
        }
    }

    /// The earliest drain instant (ns) of any group, after [`Groups::refresh`].
    pub(super) fn next_drain(&mut self) -> Option<u64> {
        while let Some(&Reverse((t, g, s))) = self.next.peek() {
            if self.stamp[g as usize] == s {
                return Some(t);
            }
            self.next.pop();
        }
        None
    }

    /// Takes every member whose last byte leaves at `t` (the earliest drain) out of its
    /// group and appends it to `out` with the rate it drained at.
    pub(super) fn pop_drained(&mut self, t: u64, out: &mut Vec<(u32, f64)>) {
        while self.next_drain() == Some(t) {
            let Some(Reverse((_, g, _))) = self.next.pop() else { break };
            let gi = g as usize;
            while self.first_drain(gi) <= t {
                let (_, f) = self.members[gi][0];
                self.remove(g, 0);
                self.of[f as usize] = self.unrated;
                self.mark[f as usize] = 0.0;
                out.push((f, self.level[gi]));
            }
            self.touch(g);
            self.refresh();
        }
    }

    /// Removes the member at heap position `k` of group `g`.
    fn remove(&mut self, g: u32, k: usize) {
        let gi = g as usize;
        let last = self.members[gi].len() - 1;
        self.members[gi].swap(k, last);
        self.members[gi].pop();
        if k < last {
            let f = self.members[gi][k].1;
            self.pos[f as usize] = k as u32;
            let k = self.sift_up(gi, k);
            self.sift_down(gi, k);
        }
    }

    fn sift_up(&mut self, g: usize, mut k: usize) -> usize {
        let h = &mut self.members[g];
        while k > 0 {
            let p = (k - 1) / 2;
            if !before(h[k], h[p]) {
                break;
            }
            h.swap(k, p);
            self.pos[h[k].1 as usize] = k as u32;
            self.pos[h[p].1 as usize] = p as u32;
            k = p;
        }
        k
    }

    fn sift_down(&mut self, g: usize, mut k: usize) {
        let h = &mut self.members[g];
        loop {
            let (l, r) = (2 * k + 1, 2 * k + 2);
            let mut m = k;
            if l < h.len() && before(h[l], h[m]) {
                m = l;
            }
            if r < h.len() && before(h[r], h[m]) {
                m = r;
            }
            if m == k {
                return;
            }
            h.swap(k, m);
            self.pos[h[k].1 as usize] = k as u32;
            self.pos[h[m].1 as usize] = m as u32;
            k = m;
        }
    }
}
