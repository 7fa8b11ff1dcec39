//! Collectives that always run at the same instant, priced together on the fabric.
//!
//! In a serving iteration several groups start a collective at once: the EP
//! all-to-alls of every TP rank of a stage, the TP all-reduces of every EP group, the
//! pipeline sends of every GPU of a stage. Where their routes share a link (NICs shared
//! by several GPUs, an oversubscribed spine) they slow each other down; where they do
//! not, each takes its closed form on idle links. [`concurrent_prices`] decides which
//! from the link sets and, for a set that shares, runs the members together through
//! the flow-level network (max-min sharing) at two payloads that bracket a serving
//! iteration's (1 MiB and 64 MiB) and fits each member's affine price through both:
//! multi-step algorithms whose steps wait on each other are not exactly affine under
//! sharing, so the fit is made where serving traffic lives. Sets with no shared link
//! keep the closed form exactly.

use super::collective::{
    affine_fit, expand_all_to_all, expand_chunked, schedule_links, schedule_time, AllReduceAlgorithm,
    AllToAllAlgorithm, CollectiveOp, Schedule,
};
use super::price::Affine;
use super::runner::{CollectiveRequest, CollectiveRunner};
use crate::engine::SimTime;
use crate::error::Result;
use crate::hardware::topology::{LinkId, Topology};
use std::collections::BTreeMap;

/// One collective of a set that starts together.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The operation.
    pub op: CollectiveOp,
    /// The algorithm (all-reduce only).
    pub alg: AllReduceAlgorithm,
    /// How an all-to-all is posted (all-to-all only).
    pub a2a: AllToAllAlgorithm,
    /// Chunks of a pipelined all-reduce (None: the best for each size, which is not
    /// affine in the size; serving members fix it).
    pub chunks: Option<usize>,
    /// Its GPUs.
    pub ranks: Vec<u32>,
}

impl Member {
    /// A member running `op` with all-reduce algorithm `alg` (pairwise if an all-to-all).
    pub fn new(op: CollectiveOp, alg: AllReduceAlgorithm, ranks: Vec<u32>) -> Self {
        Member { op, alg, a2a: AllToAllAlgorithm::Pairwise, chunks: None, ranks }
    }

    /// Its steps for a payload of `bytes` (nccl-tests size; all-to-all: S/n to each rank).
    pub fn schedule(&self, topo: &Topology, bytes: f64) -> Result<Schedule> {
        if self.op == CollectiveOp::AllToAll {
            let n = self.ranks.len();
            expand_all_to_all(topo, self.a2a, &self.ranks, &vec![bytes / n.max(1) as f64; n * n])
        } else {
            expand_chunked(topo, self.op, self.alg, &self.ranks, bytes, self.chunks)
        }
    }

    /// Its closed form on idle links, as an affine function of the payload: the steps'
    /// latencies at zero bytes, and the per-byte rate from a large payload.
    pub fn closed_form(&self, topo: &Topology) -> Affine {
        affine_fit(|bytes| self.schedule(topo, bytes).map_or(0.0, |s| schedule_time(topo, &s).as_ns() as f64))
    }

    /// Every link its routes cross (sorted, no repeats).
    pub fn links(&self, topo: &Topology) -> Vec<LinkId> {
        self.schedule(topo, 1.0).map_or(Vec::new(), |s| schedule_links(topo, &s))
    }
}

/// How serving posts an all-to-all among `ranks`: DeepEP's rail-aggregated RDMA when
/// they span nodes evenly (as DeepEP's normal kernels do), otherwise every send at once
/// (NCCL grouped send/recv, DeepEP's NVLink path): the per-peer latency is paid once.
pub fn serving_all_to_all(topo: &Topology, ranks: &[u32]) -> AllToAllAlgorithm {
    let nodes: std::collections::BTreeSet<u32> = ranks.iter().map(|&r| topo.node_of(r)).collect();
    if nodes.len() > 1 {
        AllToAllAlgorithm::DeepEp
    } else {
        AllToAllAlgorithm::Direct
    }
}

/// A member's price and whether it shares a link with another member.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SetPrice {
    /// Affine in the payload (nccl-tests bytes).
    pub affine: Affine,
    /// Its routes share at least one link with another member's.
    pub contended: bool,
}

/// Payloads at which a contended set is run to fit its affine price: the range of a
/// serving iteration's collectives (a decode step's few KiB to a long prefill's tens of MiB).
const FIT_SMALL: f64 = 1_048_576.0;
const FIT_LARGE: f64 = 67_108_864.0;

/// Links used by more than one member, with the members using each.
pub fn shared_links(topo: &Topology, members: &[Member]) -> BTreeMap<LinkId, Vec<usize>> {
    let mut users: BTreeMap<LinkId, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        if m.ranks.len() < 2 {
            continue;
        }
        for l in m.links(topo) {
            users.entry(l).or_default().push(i);
        }
    }
    users.retain(|_, v| v.len() > 1);
    users
}

/// Prices every member of a set of collectives that start together (see the module doc).
pub fn concurrent_prices(topo: &Topology, members: &[Member]) -> Vec<SetPrice> {
    let shared = shared_links(topo, members);
    let mut contended = vec![false; members.len()];
    for users in shared.values() {
        for &i in users {
            contended[i] = true;
        }
    }
    let alone: Vec<Affine> =
        members.iter().map(|m| if m.ranks.len() < 2 { Affine::default() } else { m.closed_form(topo) }).collect();
    if !contended.iter().any(|c| *c) {
        return alone.into_iter().map(|affine| SetPrice { affine, contended: false }).collect();
    }
    let small = run_together(topo, members, &contended, FIT_SMALL);
    let large = run_together(topo, members, &contended, FIT_LARGE);
    (0..members.len())
        .map(|i| match (contended[i], small[i], large[i]) {
            (true, Some(t1), Some(t2)) => {
                // Sharing never makes a collective cheaper than it is alone.
                let per_byte_ns = ((t2 - t1) / (FIT_LARGE - FIT_SMALL)).max(alone[i].per_byte_ns);
                let fixed_ns = (t1 - per_byte_ns * FIT_SMALL).max(alone[i].fixed_ns);
                SetPrice { affine: Affine { fixed_ns, per_byte_ns }, contended: true }
            }
            _ => SetPrice { affine: alone[i], contended: contended[i] },
        })
        .collect()
}

/// Runs the contended members together at `bytes` each through the flow model; the
/// duration of each, ns (None for members not run).
fn run_together(topo: &Topology, members: &[Member], contended: &[bool], bytes: f64) -> Vec<Option<f64>> {
    let mut runner = CollectiveRunner::new(topo);
    let mut ids = vec![None; members.len()];
    for (i, m) in members.iter().enumerate() {
        if !contended[i] {
            continue;
        }
        let Ok(schedule) = m.schedule(topo, bytes) else { continue };
        let req = CollectiveRequest { op: m.op, bytes, schedule };
        let arrivals = vec![SimTime::ZERO; m.ranks.len()];
        ids[i] = runner.admit(req, &arrivals).ok();
    }
    let done = runner.run_to_end();
    ids.iter()
        .map(|id| id.and_then(|id| done.iter().find(|d| d.id == id)).map(|d| d.duration().as_ns() as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::{gpu_preset, NetworkSpec};

    fn nodes_with_nics(nodes: u32, nics: u32) -> Topology {
        let p = gpu_preset("h100-sxm").expect("preset");
        let network = NetworkSpec { nics_per_node: nics, ..(p.network)() };
        Topology::new(nodes, 8, &(p.nvlink)(), &network).expect("topology")
    }

    fn ring(ranks: &[u32]) -> Member {
        Member::new(CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, ranks.to_vec())
    }

    #[test]
    fn groups_on_private_links_keep_the_closed_form() {
        // One NIC per GPU: two cross-node rings on different GPUs share nothing.
        let topo = nodes_with_nics(2, 8);
        let set = [ring(&[0, 8]), ring(&[1, 9])];
        let prices = concurrent_prices(&topo, &set);
        for (p, m) in prices.iter().zip(&set) {
            assert!(!p.contended);
            assert_eq!(p.affine, super::super::collective::closed_form_affine(&topo, m.op, m.alg, &m.ranks));
        }
    }

    #[test]
    fn two_groups_through_one_nic_each_get_half_its_bandwidth() {
        // One NIC per node (400 Gb/s = 50 GB/s x 0.92 efficiency per direction in the
        // preset): rings {0, 8} and {1, 9} both cross it. A 2-rank ring all-reduce moves
        // S/2 each way per step, 2 steps: alone 2 x (α + S/2 / B) = α' + S/B. Together
        // each gets B/2: the per-byte part doubles, the latency stays.
        let topo = nodes_with_nics(2, 1);
        let set = [ring(&[0, 8]), ring(&[1, 9])];
        let prices = concurrent_prices(&topo, &set);
        let alone = ring(&[0, 8]).closed_form(&topo);
        for p in &prices {
            assert!(p.contended);
            assert_eq!(p.affine.fixed_ns, alone.fixed_ns);
            let ratio = p.affine.per_byte_ns / alone.per_byte_ns;
            assert!((ratio - 2.0).abs() < 0.01, "per-byte ratio {ratio}");
        }
        assert!(!shared_links(&topo, &set).is_empty());
    }
}
