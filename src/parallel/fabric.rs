//! Collectives that always run at the same instant, priced together on the fabric.
//!
//! In a serving iteration several groups start a collective at once: the EP
//! all-to-alls of every TP rank of a stage, the TP all-reduces of every EP group, the
//! pipeline sends of every GPU of a stage. Where their routes share a link (NICs shared
//! by several GPUs, an oversubscribed spine) they slow each other down; where they do
//! not, each takes its closed form on idle links. [`concurrent_prices`] decides which
//! from the link sets and, for a set that shares, runs the members together through
//! the flow-level network (max-min sharing) and fits each member's affine price:
//! its closed-form latency (sharing does not change the steps' α) plus the per-byte
//! time the flows actually got. Sets with no shared link keep the closed form exactly.

use super::collective::{closed_form_affine, links_used, AllReduceAlgorithm, CollectiveOp};
use super::price::Affine;
use super::runner::{CollectiveRequest, CollectiveRunner};
use crate::engine::SimTime;
use crate::hardware::topology::{LinkId, Topology};
use std::collections::BTreeMap;

/// One collective of a set that starts together.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The operation.
    pub op: CollectiveOp,
    /// The algorithm (all-reduce only).
    pub alg: AllReduceAlgorithm,
    /// Its GPUs.
    pub ranks: Vec<u32>,
}

/// A member's price and whether it shares a link with another member.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SetPrice {
    /// Affine in the payload (nccl-tests bytes).
    pub affine: Affine,
    /// Its routes share at least one link with another member's.
    pub contended: bool,
}

/// Payload at which a contended set is run to fit the per-byte part: large enough
/// that α is a small share and ns rounding negligible (1 GiB).
const FIT_BYTES: f64 = 1_073_741_824.0;

/// Links used by more than one member, with the members using each.
pub fn shared_links(topo: &Topology, members: &[Member]) -> BTreeMap<LinkId, Vec<usize>> {
    let mut users: BTreeMap<LinkId, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        if m.ranks.len() < 2 {
            continue;
        }
        for l in links_used(topo, m.op, m.alg, &m.ranks) {
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
    let alone: Vec<Affine> = members
        .iter()
        .map(|m| if m.ranks.len() < 2 { Affine::default() } else { closed_form_affine(topo, m.op, m.alg, &m.ranks) })
        .collect();
    if !contended.iter().any(|c| *c) {
        return alone.into_iter().map(|affine| SetPrice { affine, contended: false }).collect();
    }
    let together = run_together(topo, members, &contended);
    alone
        .iter()
        .zip(&contended)
        .zip(together)
        .map(|((a, &c), d)| match (c, d) {
            (true, Some(ns)) => SetPrice {
                affine: Affine {
                    fixed_ns: a.fixed_ns,
                    per_byte_ns: ((ns - a.fixed_ns) / FIT_BYTES).max(a.per_byte_ns),
                },
                contended: true,
            },
            _ => SetPrice { affine: *a, contended: c },
        })
        .collect()
}

/// Runs the contended members together at [`FIT_BYTES`] through the flow model; the
/// duration of each, ns (None for members not run).
fn run_together(topo: &Topology, members: &[Member], contended: &[bool]) -> Vec<Option<f64>> {
    let mut runner = CollectiveRunner::new(topo);
    let mut ids = vec![None; members.len()];
    for (i, m) in members.iter().enumerate() {
        if !contended[i] {
            continue;
        }
        let Ok(req) = CollectiveRequest::new(topo, m.op, m.alg, &m.ranks, FIT_BYTES) else { continue };
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
        Member { op: CollectiveOp::AllReduce, alg: AllReduceAlgorithm::Ring, ranks: ranks.to_vec() }
    }

    #[test]
    fn groups_on_private_links_keep_the_closed_form() {
        // One NIC per GPU: two cross-node rings on different GPUs share nothing.
        let topo = nodes_with_nics(2, 8);
        let set = [ring(&[0, 8]), ring(&[1, 9])];
        let prices = concurrent_prices(&topo, &set);
        for (p, m) in prices.iter().zip(&set) {
            assert!(!p.contended);
            assert_eq!(p.affine, closed_form_affine(&topo, m.op, m.alg, &m.ranks));
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
        let alone = closed_form_affine(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &[0, 8]);
        for p in &prices {
            assert!(p.contended);
            assert_eq!(p.affine.fixed_ns, alone.fixed_ns);
            let ratio = p.affine.per_byte_ns / alone.per_byte_ns;
            assert!((ratio - 2.0).abs() < 0.01, "per-byte ratio {ratio}");
        }
        assert!(!shared_links(&topo, &set).is_empty());
    }
}
