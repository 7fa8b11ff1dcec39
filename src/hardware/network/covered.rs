//! Links that can never be full, left out of the sharing.
//!
//! Every route through a leaf's spine link also crosses one NIC link under that leaf, so
//! the leaf link carries at most those NIC links' capacities summed. When its own
//! capacity is at least that sum (a non-blocking leaf: `oversubscription <= 1`), it never
//! fills before the NIC links feeding it and bounds no flow's rate: max-min fairness
//! gives the same rates with or without it. The re-sharing then neither looks at its
//! flows nor grows a component through it (in an all-pairs exchange on 16 nodes the two
//! spine links of each rail carry 1,792 flows each, more than half of the work).
//!
//! The sums are compared with 1e-12 relative room, because the leaf's capacity
//! (`NICs x NIC bandwidth`) and the sum of its NICs' capacities may round differently;
//! a covered link may then carry up to that much over its capacity, a thousand times
//! under the "link is full" tolerance of the sharing. A capacity change re-checks
//! every leaf; the next re-sharing starts from a link that stops being covered, and from
//! the other links of the flows on one that becomes covered.

use crate::hardware::topology::{LinkId, Topology};

/// Relative room in the capacity comparison (see the module docs).
const ROOM: f64 = 1e-12;

/// Which links are covered, and what covers them.
#[derive(Clone, Debug)]
pub(super) struct Covered {
    /// Per link, the leaf link above it (a NIC link's leaf), or `None`.
    above: Vec<Option<LinkId>>,
    /// Per link: true while it can never be full.
    covered: Vec<bool>,
    /// Scratch: per link, the capacities summed of the links it is above.
    sum: Vec<f64>,
}

impl Covered {
    /// The links of `topology`, with their coverage at the nominal capacities.
    pub(super) fn new(topology: &Topology, caps: &[f64]) -> Self {
        let n = caps.len() as u32;
        let above = (0..n).map(|l| topology.leaf_link_above(l)).collect();
        let mut c = Covered { above, covered: vec![false; caps.len()], sum: vec![0.0; caps.len()] };
        c.refresh(caps, |_| {});
        c
    }

    /// True while `link` can never be full.
    #[inline]
    pub(super) fn is_covered(&self, link: LinkId) -> bool {
        self.covered[link as usize]
    }

    /// Re-checks every link against the capacities `caps`; calls `flipped(link)` for
    /// each link that became covered or stopped being covered.
    pub(super) fn refresh(&mut self, caps: &[f64], mut flipped: impl FnMut(LinkId)) {
        self.sum.fill(0.0);
        let mut has_below = vec![false; caps.len()];
        for (l, above) in self.above.iter().enumerate() {
            if let Some(a) = *above {
                self.sum[a as usize] += caps[l];
                has_below[a as usize] = true;
            }
        }
        for l in 0..caps.len() {
            let now = has_below[l] && self.sum[l] <= caps[l] * (1.0 + ROOM);
            if self.covered[l] != now {
                flipped(l as LinkId);
            }
            self.covered[l] = now;
        }
    }
}
