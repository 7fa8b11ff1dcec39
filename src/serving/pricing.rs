//! Prices the serving run's collectives as affine functions of their payload.
//!
//! A serving run does hundreds of collectives per iteration and ~10^5 iterations per
//! replica, so each is priced in O(1): a group's collective on links that carry
//! nothing else takes its closed-form α-β time. Every such closed form is affine in
//! the bytes, so a group's price is fixed once (and again when a what-if changes a
//! link) and each collective is then one multiply-add.

use super::stage::{Affine, Price};
use crate::hardware::spec::{NetworkSpec, NvlinkSpec};
use crate::scenario::Setup;

/// Collectives the serving loop issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectiveOp {
    /// TP all-reduce.
    AllReduce,
    /// EP all-to-all (priced per byte of the largest per-rank volume).
    AllToAll,
    /// PP point-to-point send.
    SendRecv,
}

/// Prices collectives over groups of GPUs.
#[derive(Clone, Debug)]
pub struct Pricer {
    gpus_per_node: u32,
    nvlink: NvlinkSpec,
    network: NetworkSpec,
    nvlink_fraction: Vec<f64>,
    nic_fraction: Vec<f64>,
    overhead_ns: f64,
    step_overhead_ns: f64,
    efficiency: f64,
}

impl Pricer {
    /// A pricer for the scenario's cluster and software stack.
    pub fn new(setup: &Setup) -> Self {
        Pricer {
            gpus_per_node: setup.gpus_per_node,
            nvlink: setup.nvlink.clone(),
            network: setup.network.clone(),
            nvlink_fraction: vec![1.0; setup.nodes as usize],
            nic_fraction: vec![1.0; setup.nodes as usize],
            // Every collective pays the scenario's fixed overhead plus the stack's launch
            // cost, every step the stack's extra latency, and every byte its bandwidth loss.
            overhead_ns: (setup.parallel.collective_overhead_us + setup.framework.kernel_overhead_us) * 1e3,
            step_overhead_ns: setup.framework.collective_step_overhead_us * 1e3,
            efficiency: setup.framework.collective_efficiency,
        }
    }

    /// What-if: one link class, on one node or all, at `fraction` of its bandwidth.
    pub fn set_link_fraction(&mut self, nvlink: bool, node: Option<u32>, fraction: f64) {
        let v = if nvlink { &mut self.nvlink_fraction } else { &mut self.nic_fraction };
        match node {
            Some(n) => v[n as usize] = fraction,
            None => v.iter_mut().for_each(|f| *f = fraction),
        }
    }

    /// Per-step latency (ns) and the bottleneck bandwidth (bytes/ns) of a group.
    fn alpha_beta(&self, gpus: &[u32]) -> (f64, f64) {
        let nodes: Vec<usize> = gpus.iter().map(|g| (g / self.gpus_per_node) as usize).collect();
        let one_node = nodes.iter().all(|n| *n == nodes[0]);
        if one_node {
            let bw = self.nvlink.bandwidth_gb_s * self.nvlink.efficiency * self.nvlink_fraction[nodes[0]];
            (self.nvlink.latency_us * 1e3, bw)
        } else {
            let worst = nodes.iter().map(|n| self.nic_fraction[*n]).fold(1.0, f64::min);
            let bw = self.network.nic_bandwidth_gb_s * self.network.efficiency * worst / self.network.oversubscription;
            (self.network.latency_us * 1e3, bw)
        }
    }

    /// The price of a TP all-reduce over `gpus`.
    pub fn all_reduce(&self, gpus: &[u32]) -> Price {
        self.affine(CollectiveOp::AllReduce, gpus).into()
    }

    /// The affine price of `op` over `gpus` (GB/s = bytes/ns, so 1/bw is ns per byte).
    pub fn affine(&self, op: CollectiveOp, gpus: &[u32]) -> Affine {
        let n = gpus.len() as f64;
        if gpus.len() < 2 {
            return Affine::default();
        }
        let (alpha, bw) = self.alpha_beta(gpus);
        let (alpha, bw) = (alpha + self.step_overhead_ns, bw * self.efficiency);
        let (fixed, per_byte) = match op {
            CollectiveOp::AllReduce => (2.0 * (n - 1.0) * alpha, 2.0 * (n - 1.0) / n / bw),
            CollectiveOp::AllToAll => ((n - 1.0) * alpha, 1.0 / bw),
            CollectiveOp::SendRecv => (alpha, 1.0 / bw),
        };
        Affine { fixed_ns: fixed + self.overhead_ns, per_byte_ns: per_byte }
    }
}
