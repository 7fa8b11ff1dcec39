//! Max-min fair sharing among the transfers of one step, given when each starts: when
//! each one's last byte leaves. The flow model's rules on a small scale: bytes leave at
//! the rates progressive filling gives the transfers in flight (a route's rate cap
//! filled like a link of its own), re-shared whenever one starts or drains; a transfer
//! whose new rate equals its old one to 1e-12 keeps its finish. Generic over the
//! dataflow's path costs, so the same walk gives a time or a line in the payload.

use super::dataflow::PathCost;
use super::Transfer;
use crate::hardware::topology::{LinkId, Topology};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Relative difference under which a new rate counts as the old one (as the flow model).
const SAME: f64 = 1e-12;
/// Marks a heap entry that is a flow's rate cap rather than a link.
const FLOW_ENTRY: u32 = 1 << 31;

/// The transfers of a step that send bytes over links, and the links they cross
/// (numbered for the step alone).
pub(super) struct StepFlows {
    /// Each flow's transfer (index into the step's transfers).
    transfer: Vec<u32>,
    bytes: Vec<f64>,
    rate_cap: Vec<f64>,
    /// The links of flow f are `links[off[f]..off[f + 1]]`.
    off: Vec<u32>,
    links: Vec<u32>,
    /// Capacity of each link, bytes/s, and its flows (`on[on_off[l]..on_off[l + 1]]`).
    caps: Vec<f64>,
    on_off: Vec<u32>,
    on: Vec<u32>,
}

impl StepFlows {
    /// The flows of a step's `transfers` (those with bytes on a route with links).
    pub(super) fn new(topo: &Topology, transfers: &[Transfer]) -> Self {
        let mut s = StepFlows {
            transfer: Vec::new(),
            bytes: Vec::new(),
            rate_cap: Vec::new(),
            off: vec![0],
            links: Vec::new(),
            caps: Vec::new(),
            on_off: Vec::new(),
            on: Vec::new(),
        };
        let mut global: Vec<LinkId> = Vec::new();
        for (i, t) in transfers.iter().enumerate() {
            let r = topo.route(t.src, t.dst);
            if t.bytes > 0.0 && !r.links().is_empty() {
                s.transfer.push(i as u32);
                s.bytes.push(t.bytes);
                s.rate_cap.push(r.rate_cap);
                global.extend_from_slice(r.links());
                s.off.push(global.len() as u32);
            }
        }
        let mut ids = global.clone();
        ids.sort_unstable();
        ids.dedup();
        s.caps = ids.iter().map(|&l| topo.link(l).bytes_per_s).collect();
        s.links = global.iter().map(|l| ids.binary_search(l).unwrap_or(0) as u32).collect();
        // Flows on each link, counting sort.
        let mut count = vec![0u32; ids.len() + 1];
        s.links.iter().for_each(|&l| count[l as usize + 1] += 1);
        for l in 0..ids.len() {
            count[l + 1] += count[l];
        }
        s.on_off = count.clone();
        s.on = vec![0; s.links.len()];
        for f in 0..s.transfer.len() {
            for k in s.off[f]..s.off[f + 1] {
                let l = s.links[k as usize] as usize;
                s.on[count[l] as usize] = f as u32;
                count[l] += 1;
            }
        }
        s
    }

    fn links_of(&self, f: usize) -> &[u32] {
        &self.links[self.off[f] as usize..self.off[f + 1] as usize]
    }

    /// Max-min rates of the flows marked in `live` (others get nothing).
    fn fill(&self, live: &[bool], rate: &mut [f64]) {
        let mut st = Fill { rem: self.caps.clone(), cnt: vec![0; self.caps.len()], fixed: vec![true; live.len()] };
        let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
        for f in (0..live.len()).filter(|&f| live[f]) {
            st.fixed[f] = false;
            self.links_of(f).iter().for_each(|&l| st.cnt[l as usize] += 1);
            if self.rate_cap[f].is_finite() {
                heap.push(Reverse((key(self.rate_cap[f]), FLOW_ENTRY | f as u32)));
            }
        }
        for l in (0..st.cnt.len()).filter(|&l| st.cnt[l] > 0) {
            heap.push(Reverse((key(st.rem[l] / f64::from(st.cnt[l])), l as u32)));
        }
        // As the flow model's fill: a popped key is a lower bound of the link's share;
        // a link whose share grew since is pushed again.
        while let Some(Reverse((k, e))) = heap.pop() {
            if e & FLOW_ENTRY != 0 {
                let f = (e & !FLOW_ENTRY) as usize;
                if !st.fixed[f] {
                    st.fix(self.links_of(f), f, self.rate_cap[f], rate);
                }
                continue;
            }
            let l = e as usize;
            if st.cnt[l] == 0 {
                continue;
            }
            let share = st.rem[l].max(0.0) / f64::from(st.cnt[l]);
            if key(share) > k {
                heap.push(Reverse((key(share), e)));
                continue;
            }
            for &f in &self.on[self.on_off[l] as usize..self.on_off[l + 1] as usize] {
                if !st.fixed[f as usize] {
                    st.fix(self.links_of(f as usize), f as usize, share, rate);
                }
            }
        }
    }
}

/// Progressive filling's state: capacity left and unfixed flows on each link.
struct Fill {
    rem: Vec<f64>,
    cnt: Vec<u32>,
    fixed: Vec<bool>,
}

impl Fill {
    fn fix(&mut self, links: &[u32], f: usize, r: f64, rate: &mut [f64]) {
        self.fixed[f] = true;
        rate[f] = r;
        for &l in links {
            self.rem[l as usize] -= r;
            self.cnt[l as usize] -= 1;
        }
    }
}

/// Non-negative finite f64s order like their bit patterns.
fn key(rate: f64) -> u64 {
    rate.max(0.0).to_bits()
}

/// One flow in flight: rate (negative until rated), bytes left as of `updated`, and
/// the instant its last byte leaves at that rate.
struct InFlight<C: PathCost> {
    rate: f64,
    left: C::Bytes,
    updated: C,
    drain: C,
}

/// When each of the step's transfers has its last byte out, into `out` (by transfer),
/// given each one's start; `order` orders path costs, `scale` as in the dataflow.
pub(super) fn drains<C: PathCost>(
    s: &StepFlows,
    starts: &[C],
    scale: f64,
    order: &impl Fn(C, C) -> Ordering,
    out: &mut Vec<C>,
) {
    out.clear();
    out.extend_from_slice(starts);
    let n = s.transfer.len();
    let start = |f: usize| starts[s.transfer[f] as usize];
    let mut pending: Vec<usize> = (0..n).collect();
    pending.sort_by(|&a, &b| order(start(a), start(b)));
    let mut flight: Vec<InFlight<C>> = (0..n)
        .map(|f| InFlight { rate: -1.0, left: C::bytes(s.bytes[f]), updated: start(f), drain: start(f) })
        .collect();
    let (mut live, mut rate) = (vec![false; n], vec![0.0; n]);
    let mut next = 0;
    let Some(&first) = pending.first() else { return };
    let mut now = start(first);
    loop {
        while next < n && order(start(pending[next]), now) != Ordering::Greater {
            live[pending[next]] = true;
            next += 1;
        }
        s.fill(&live, &mut rate);
        let mut soonest: Option<C> = pending.get(next).map(|&f| start(f));
        for f in (0..n).filter(|&f| live[f]) {
            let x = &mut flight[f];
            let (old, new) = (x.rate, rate[f]);
            if old < 0.0 || (new - old).abs() > SAME * old.max(new) {
                if old > 0.0 {
                    x.left = C::sent(x.left, old, x.updated, now, scale);
                }
                (x.updated, x.rate) = (now, new);
                x.drain = now.plus(C::send_time(x.left, new, scale));
            }
            if soonest.is_none_or(|t| order(x.drain, t) == Ordering::Less) {
                soonest = Some(x.drain);
            }
        }
        let Some(t) = soonest else { break };
        now = t;
        for f in 0..n {
            if live[f] && order(flight[f].drain, now) == Ordering::Equal {
                live[f] = false;
                out[s.transfer[f] as usize] = now;
            }
        }
    }
}
