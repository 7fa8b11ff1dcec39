//! Max-min fair rates of a set of flows over links: progressive filling, as the flow
//! model's fill (raise every unfixed flow's rate together; when a link fills, fix its
//! flows; a route's rate cap is filled like a link of its own).

use crate::hardware::topology::{LinkId, Route};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Marks a heap entry that is a flow's rate cap rather than a link.
const FLOW_ENTRY: u32 = 1 << 31;
/// No local index yet.
const NONE: u32 = u32::MAX;

/// Non-negative finite f64s order like their bit patterns.
fn key(rate: f64) -> u64 {
    rate.max(0.0).to_bits()
}

/// Scratch space of the filling, kept between calls.
pub(super) struct MaxMin {
    /// Local index of each topology link in this filling (`NONE` when unused).
    slot: Vec<u32>,
    ids: Vec<LinkId>,
    rem: Vec<f64>,
    cnt: Vec<u32>,
    /// Flows on local link l: `on[on_off[l]..on_off[l + 1]]`.
    on_off: Vec<u32>,
    on: Vec<u32>,
    fixed: Vec<bool>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

impl MaxMin {
    /// Scratch for a topology of `links` links.
    pub(super) fn new(links: usize) -> Self {
        MaxMin {
            slot: vec![NONE; links],
            ids: Vec::new(),
            rem: Vec::new(),
            cnt: Vec::new(),
            on_off: Vec::new(),
            on: Vec::new(),
            fixed: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// The max-min rates (bytes/s) of flows on `routes` into `rate`, each link of
    /// capacity `caps[link]`.
    pub(super) fn rates(&mut self, caps: &[f64], routes: &[Route], rate: &mut Vec<f64>) {
        self.index(caps, routes);
        rate.clear();
        rate.resize(routes.len(), 0.0);
        self.fixed.clear();
        self.fixed.resize(routes.len(), false);
        self.heap.clear();
        for (f, r) in routes.iter().enumerate() {
            if r.rate_cap.is_finite() {
                self.heap.push(Reverse((key(r.rate_cap), FLOW_ENTRY | f as u32)));
            }
        }
        for l in 0..self.ids.len() {
            self.heap.push(Reverse((key(self.rem[l] / f64::from(self.cnt[l])), l as u32)));
        }
        // A popped key is a lower bound of the link's share: a link whose share grew
        // since is pushed again.
        while let Some(Reverse((k, e))) = self.heap.pop() {
            if e & FLOW_ENTRY != 0 {
                let f = (e & !FLOW_ENTRY) as usize;
                if !self.fixed[f] {
                    self.fix(routes, f, routes[f].rate_cap, rate);
                }
                continue;
            }
            let l = e as usize;
            if self.cnt[l] == 0 {
                continue;
            }
            let share = self.rem[l].max(0.0) / f64::from(self.cnt[l]);
            if key(share) > k {
                self.heap.push(Reverse((key(share), e)));
                continue;
            }
            for i in self.on_off[l]..self.on_off[l + 1] {
                let f = self.on[i as usize] as usize;
                if !self.fixed[f] {
                    self.fix(routes, f, share, rate);
                }
            }
        }
        for &l in &self.ids {
            self.slot[l as usize] = NONE;
        }
    }

    /// Numbers the links of `routes`, with each one's capacity, flow count and flows.
    fn index(&mut self, caps: &[f64], routes: &[Route]) {
        self.ids.clear();
        self.cnt.clear();
        for r in routes {
            for &l in r.links() {
                if self.slot[l as usize] == NONE {
                    self.slot[l as usize] = self.ids.len() as u32;
                    self.ids.push(l);
                    self.cnt.push(0);
                }
                self.cnt[self.slot[l as usize] as usize] += 1;
            }
        }
        self.rem.clear();
        self.rem.extend(self.ids.iter().map(|&l| caps[l as usize]));
        self.on_off.clear();
        self.on_off.push(0);
        for l in 0..self.ids.len() {
            self.on_off.push(self.on_off[l] + self.cnt[l]);
        }
        let mut fill: Vec<u32> = self.on_off[..self.ids.len()].to_vec();
        self.on.clear();
        self.on.resize(self.on_off[self.ids.len()] as usize, 0);
        for (f, r) in routes.iter().enumerate() {
            for &l in r.links() {
                let s = self.slot[l as usize] as usize;
                self.on[fill[s] as usize] = f as u32;
                fill[s] += 1;
            }
        }
    }

    fn fix(&mut self, routes: &[Route], f: usize, r: f64, rate: &mut [f64]) {
        self.fixed[f] = true;
        rate[f] = r;
        for &l in routes[f].links() {
            let s = self.slot[l as usize] as usize;
            self.rem[s] -= r;
            self.cnt[s] -= 1;
        }
    }
}
