//! All-to-all as the libraries post it.
//!
//! - Pairwise (today's serving price): n-1 steps, rank i sends to rank i+k in step k,
//!   paying the per-step latency n-1 times.
//! - Direct: every send posted at once, as NCCL's grouped send/recv and DeepEP's
//!   low-latency kernels do: one step, the per-peer latency paid once, the links shared
//!   by max-min. On idle links: α + the busiest link's bytes / its capacity.
//! - DeepEP (normal kernels): what a rank sends to another node goes, aggregated, over
//!   RDMA to the rank of the same rail (local index) there, while its own node's share
//!   goes over NVLink; the relay then forwards over NVLink. Two steps:
//!   `max(α_nic + (m-1)·g·S/n / B_nic, α_nv + (g-1)·S/n / B_nv) + α_nv + (g-1)(m-1)·S/n / B_nv`
//!   for a uniform S per rank on m nodes of g ranks; cross-node traffic never leaves
//!   its rail (no spine), and each NIC carries one flow per node instead of g.

use super::{check_ranks, push, CollectiveOp, Phase, Schedule, Transfer};
use crate::error::{Error, Result};
use crate::hardware::topology::Topology;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an all-to-all is posted (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AllToAllAlgorithm {
    /// n-1 pairwise steps.
    #[default]
    Pairwise,
    /// Every send at once, one step.
    Direct,
    /// Same-rail RDMA to each node, aggregated, then NVLink forwarding (DeepEP normal mode).
    DeepEp,
}

/// Expands an all-to-all where `matrix[i * n + j]` bytes go from `ranks[i]` to
/// `ranks[j]`, posted as `alg` says. DeepEP needs at least two nodes holding the same
/// number of ranks; other layouts post directly.
pub fn expand_all_to_all(topo: &Topology, alg: AllToAllAlgorithm, ranks: &[u32], matrix: &[f64]) -> Result<Schedule> {
    check_ranks(topo, CollectiveOp::AllToAll, ranks)?;
    let n = ranks.len();
    if matrix.len() != n * n {
        return Err(Error::Usage(format!("all-to-all matrix has {} entries, expected {n} x {n}", matrix.len())));
    }
    if let Some(bad) = matrix.iter().find(|b| !(b.is_finite() && **b >= 0.0)) {
        return Err(Error::Usage(format!("all-to-all matrix entries must be non-negative byte counts, got {bad}")));
    }
    let mut phases = Vec::new();
    match alg {
        AllToAllAlgorithm::Pairwise => pairwise(ranks, matrix, &mut phases),
        AllToAllAlgorithm::DeepEp if super::node_groups(topo, ranks).is_some() => {
            deep_ep(topo, ranks, matrix, &mut phases)
        }
        _ => push(&mut phases, direct(ranks, matrix), 1),
    }
    Ok(Schedule::new(ranks.to_vec(), phases))
}

fn pairwise(ranks: &[u32], m: &[f64], phases: &mut Vec<Phase>) {
    let n = ranks.len();
    for k in 1..n {
        let t = (0..n).map(|i| Transfer { src: ranks[i], dst: ranks[(i + k) % n], bytes: m[i * n + (i + k) % n] });
        push(phases, t.collect(), 1);
    }
}

fn direct(ranks: &[u32], m: &[f64]) -> Vec<Transfer> {
    let n = ranks.len();
    (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| Transfer { src: ranks[i], dst: ranks[j], bytes: m[i * n + j] })
        .collect()
}

/// Rail-aggregated dispatch then NVLink forwarding (module docs).
fn deep_ep(topo: &Topology, ranks: &[u32], m: &[f64], phases: &mut Vec<Phase>) {
    let n = ranks.len();
    let Some(groups) = super::node_groups(topo, ranks) else { return };
    let pos: BTreeMap<u32, usize> = ranks.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    // Node index and column (local position) of each rank index.
    let mut place = vec![(0usize, 0usize); n];
    for (a, grp) in groups.iter().enumerate() {
        for (j, r) in grp.iter().enumerate() {
            place[pos[r]] = (a, j);
        }
    }
    let at = |a: usize, j: usize| pos[&groups[a][j]];
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (a, j) = place[i];
        for (b, grp) in groups.iter().enumerate() {
            if b == a {
                // Own node: straight over NVLink.
                for (k, &r) in grp.iter().enumerate().filter(|&(k, _)| k != j) {
                    first.push(Transfer { src: ranks[i], dst: r, bytes: m[i * n + at(b, k)] });
                }
            } else {
                // Another node: all of it to the relay on the same rail.
                let bytes: f64 = (0..grp.len()).map(|k| m[i * n + at(b, k)]).sum();
                first.push(Transfer { src: ranks[i], dst: grp[j], bytes });
            }
        }
    }
    // Each relay (node b, column j) forwards what other nodes sent it for its node-mates.
    for (b, grp) in groups.iter().enumerate() {
        for (j, &relay) in grp.iter().enumerate() {
            for (k, &dst) in grp.iter().enumerate().filter(|&(k, _)| k != j) {
                let bytes: f64 = (0..groups.len()).filter(|&a| a != b).map(|a| m[at(a, j) * n + at(b, k)]).sum();
                second.push(Transfer { src: relay, dst, bytes });
            }
        }
    }
    push(phases, first, 1);
    push(phases, second, 1);
}
