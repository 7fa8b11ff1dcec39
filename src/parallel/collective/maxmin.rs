//! Max-min fair rates of a set of flows over links, for the closed forms: the flow
//! model's own progressive filling ([`crate::hardware::network::fill`]), run over the
//! links these flows cross, numbered locally so the tables are as small as the flows.

use crate::hardware::network::fill::{Filling, FlowSet, LinkTables};
use crate::hardware::topology::{LinkId, Route};

/// No local index yet.
const NONE: u32 = u32::MAX;

/// The flows of one filling, their links by local index.
#[derive(Debug, Default)]
struct Local {
    links: Vec<[u32; 4]>,
    len: Vec<u8>,
    caps: Vec<f64>,
    capped: bool,
    /// Local links: a capped flow f is fixed in group `slots + f`.
    slots: u32,
}

impl FlowSet for Local {
    fn links(&self, f: u32) -> &[u32] {
        &self.links[f as usize][..self.len[f as usize] as usize]
    }
    fn cap(&self, f: u32) -> f64 {
        self.caps[f as usize]
    }
    fn cap_group(&self, f: u32) -> u32 {
        self.slots + f
    }
    fn any_capped(&self) -> bool {
        self.capped
    }
}

/// Scratch space of the filling, kept between calls.
pub(super) struct MaxMin {
    /// Local index of each topology link in this filling (`NONE` when unused).
    slot: Vec<u32>,
    ids: Vec<LinkId>,
    order: Vec<u32>,
    local: Local,
    t: LinkTables,
    filling: Filling,
    level: Vec<f64>,
}

impl MaxMin {
    /// Scratch for a topology of `links` links.
    pub(super) fn new(links: usize) -> Self {
        MaxMin {
            slot: vec![NONE; links],
            ids: Vec::new(),
            order: Vec::new(),
            local: Local::default(),
            t: LinkTables::default(),
            filling: Filling::default(),
            level: Vec::new(),
        }
    }

    /// The max-min rates (bytes/s) of flows on `routes` into `rate`, each link of
    /// capacity `caps[link]`.
    pub(super) fn rates(&mut self, caps: &[f64], routes: &[Route], rate: &mut Vec<f64>) {
        self.index(caps, routes);
        self.filling.run(&self.local, routes.len(), &self.order, &mut self.t);
        self.level.clear();
        self.level.resize(self.ids.len() + routes.len(), 0.0);
        for &(g, l) in &self.filling.levels {
            self.level[g as usize] = l;
        }
        rate.clear();
        // A flow crossing no link is held by its cap alone.
        rate.extend(
            routes.iter().map(|r| if r.links().is_empty() && r.rate_cap.is_finite() { r.rate_cap } else { 0.0 }),
        );
        for &(f, g) in &self.filling.fixed {
            rate[f as usize] = self.level[g as usize];
        }
        for &l in &self.ids {
            self.slot[l as usize] = NONE;
        }
    }

    /// Numbers the links of `routes`, with each one's capacity, flow count and flows,
    /// and each flow's links by their numbers.
    fn index(&mut self, caps: &[f64], routes: &[Route]) {
        self.ids.clear();
        let (local, t) = (&mut self.local, &mut self.t);
        local.links.clear();
        local.len.clear();
        local.caps.clear();
        t.cnt.clear();
        for r in routes {
            let mut mine = [0u32; 4];
            for (k, &l) in r.links().iter().enumerate() {
                if self.slot[l as usize] == NONE {
                    self.slot[l as usize] = self.ids.len() as u32;
                    self.ids.push(l);
                    t.cnt.push(0);
                }
                let s = self.slot[l as usize];
                t.cnt[s as usize] += 1;
                mine[k] = s;
            }
            local.links.push(mine);
            local.len.push(r.links().len() as u8);
            local.caps.push(r.rate_cap);
        }
        local.capped = routes.iter().any(|r| r.rate_cap.is_finite());
        local.slots = self.ids.len() as u32;
        let n = self.ids.len();
        self.order.clear();
        self.order.extend(0..n as u32);
        t.rem.clear();
        t.rem.extend(self.ids.iter().map(|&l| caps[l as usize]));
        t.span.clear();
        let mut at = 0u32;
        for l in 0..n {
            t.span.push((at, at));
            at += t.cnt[l];
        }
        t.moving.clear();
        t.moving.resize(at as usize, 0);
        for (f, mine) in local.links.iter().enumerate() {
            for &s in &mine[..local.len[f] as usize] {
                let end = &mut t.span[s as usize].1;
                t.moving[*end as usize] = f as u32;
                *end += 1;
            }
        }
    }
}
