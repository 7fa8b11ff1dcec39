//! Prices the serving run's collectives as affine functions of their payload.
//!
//! A serving run does hundreds of collectives per iteration and ~10^5 iterations per
//! replica, so each is priced in O(1). A group's collective on links that carry nothing
//! else takes its closed-form time, which the flow-level network reproduces exactly on
//! idle links (see tests/network.rs). [`closed_form_affine`] splits it into latency and
//! per-byte parts once per group, and again when a what-if changes a link; each
//! collective is then a multiply-add.
//! On top come the software stack's costs: its launch overhead per collective, its
//! extra latency per step, and its share of the link bandwidth.

use super::stage::StageComm;
use crate::error::Result;
use crate::hardware::topology::Topology;
use crate::model::framework::FrameworkProfile;
use crate::parallel::collective::AllReduceAlgorithm;
use crate::parallel::collective::{closed_form_affine, expand, resolve_all_reduce, CollectiveOp};
use crate::parallel::plan::Plan;
use crate::parallel::price::{Affine, Price};
use crate::scenario::Setup;

/// Prices collectives over groups of GPUs.
#[derive(Clone, Debug)]
pub struct Pricer {
    topo: Topology,
    nominal: Topology,
    all_reduce: AllReduceAlgorithm,
    framework: FrameworkProfile,
    collective_overhead_ns: f64,
}

impl Pricer {
    /// A pricer for the scenario's cluster and software stack.
    pub fn new(setup: &Setup) -> Result<Self> {
        let topo = Topology::new(setup.nodes, setup.gpus_per_node, &setup.nvlink, &setup.network)?;
        let overhead_us = setup.parallel.collective_overhead_us;
        Ok(Pricer::on(topo, setup.parallel.all_reduce, setup.framework.clone(), overhead_us))
    }

    /// A pricer over `topo` with the all-reduce choice `all_reduce`, the software stack
    /// `framework` and a fixed extra cost per collective of `collective_overhead_us`.
    pub fn on(
        topo: Topology,
        all_reduce: AllReduceAlgorithm,
        framework: FrameworkProfile,
        collective_overhead_us: f64,
    ) -> Self {
        Pricer {
            nominal: topo.clone(),
            topo,
            all_reduce,
            framework,
            collective_overhead_ns: collective_overhead_us * 1e3,
        }
    }

    /// What-if: one link class (NVLink, or the NICs), on one node or all, at
    /// `fraction` of its nominal bandwidth.
    pub fn set_link_fraction(&mut self, nvlink: bool, node: Option<u32>, fraction: f64) {
        let per_node = self.topo.gpus_per_node();
        let nodes = match node {
            Some(n) => n..n + 1,
            None => 0..self.topo.nodes(),
        };
        for n in nodes {
            for g in n * per_node..(n + 1) * per_node {
                let links = if nvlink {
                    [self.topo.nvlink_up(g), self.topo.nvlink_down(g)]
                } else {
                    let nic = self.topo.nic_of(g);
                    [self.topo.nic_up(nic), self.topo.nic_down(nic)]
                };
                for l in links {
                    let nominal = self.nominal.link(l).bytes_per_s;
                    self.topo.set_link_capacity(l, nominal * fraction);
                }
            }
        }
    }

    /// Nodes of the cluster.
    pub fn nodes(&self) -> u32 {
        self.topo.nodes()
    }

    /// The affine price of `op` with algorithm `alg` over `gpus`, stack costs included;
    /// `bytes` is the collective's payload as nccl-tests counts it.
    fn fit(&self, op: CollectiveOp, alg: AllReduceAlgorithm, gpus: &[u32]) -> Affine {
        let ab = closed_form_affine(&self.topo, op, alg, gpus);
        let steps = expand(&self.topo, op, alg, gpus, 1.0).map_or(0, |s| s.steps());
        Affine {
            // The scenario's fixed cost per collective, and the stack's launch, per-step
            // latency and share of the link bandwidth.
            fixed_ns: ab.fixed_ns + self.framework.collective_extra_ns(steps as f64) + self.collective_overhead_ns,
            per_byte_ns: ab.per_byte_ns / self.framework.collective_efficiency,
        }
    }

    /// The price of a TP all-reduce over `gpus` with the scenario's algorithm (`auto`:
    /// ring inside a node, hierarchical across nodes; the stack profiles are
    /// calibrated against the ring).
    pub fn all_reduce(&self, gpus: &[u32]) -> Price {
        if gpus.len() < 2 {
            return Price::default();
        }
        let alg = resolve_all_reduce(&self.topo, self.all_reduce, gpus);
        self.fit(CollectiveOp::AllReduce, alg, gpus).into()
    }

    /// The price of an EP all-to-all over `gpus`, per byte of the largest volume one
    /// rank sends or receives. Pairwise exchange of S bytes per rank moves (n-1)/n x S
    /// off each rank, so the per-byte rate is scaled by n/(n-1).
    pub fn all_to_all(&self, gpus: &[u32]) -> Affine {
        if gpus.len() < 2 {
            return Affine::default();
        }
        let n = gpus.len() as f64;
        let a = self.fit(CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, gpus);
        Affine { per_byte_ns: a.per_byte_ns * n / (n - 1.0), ..a }
    }

    /// The price of a PP send from `src` to `dst`.
    pub fn send(&self, src: u32, dst: u32) -> Affine {
        self.fit(CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[src, dst])
    }

    /// Every collective of stage `s` of replica `r` of `plan`, priced.
    pub fn stage_comm(&self, plan: &Plan, r: u32, s: u32) -> StageComm {
        StageComm {
            tp_allreduce: (0..plan.ep).map(|e| self.all_reduce(&plan.tp_group(r, s, e))).collect(),
            ep_alltoall: (0..plan.tp).map(|t| self.all_to_all(&plan.ep_group(r, s, t))).collect(),
            pp_send: if s + 1 < plan.pp {
                plan.stage_gpus(r, s).iter().map(|g| self.send(*g, g + plan.stage_size())).collect()
            } else {
                Vec::new()
            },
        }
    }
}
