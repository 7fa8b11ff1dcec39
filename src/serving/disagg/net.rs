//! The cluster of a pooled run as one fabric, and the links a KV handoff crosses.
//!
//! Every pool has its own topology (its nodes, NICs and NVLink); the cluster numbers
//! their links in one id space, pool after pool, and books every transfer that crosses
//! a link shared in time on one [`SharedFabric`]: the instances' collectives where they
//! cross links other stages use, and every KV handoff. A handoff leaves through the
//! sending GPUs' NICs and enters through the receiving GPUs' NICs (pools never share a
//! node, so KV always crosses the network); the NICs of every prefill and decode pool
//! are tracked, so a handoff shares a NIC by max-min fairness with the other handoffs
//! and with the instance traffic on it while they overlap, and alone takes its closed
//! form. Between the pools' leaves the spine is taken as non-blocking.

use super::pool::Pool;
use crate::engine::SimTime;
use crate::hardware::topology::LinkId;
use crate::scenario::pools::{PoolRole, PoolSetup};
use crate::serving::paced::{FabricPart, SharedFabric};
use std::collections::BTreeMap;

/// Where KV handoffs go: each cluster GPU's NIC links and network latency.
#[derive(Clone, Debug)]
pub struct HandoffNet {
    /// Per cluster GPU: its NIC's up and down links (cluster link ids).
    gpu_nic: Vec<[LinkId; 2]>,
    /// Per cluster GPU: its pool's network latency, ns.
    gpu_latency_ns: Vec<f64>,
    /// Each cluster link's bandwidth, bytes / ns.
    bytes_per_ns: Vec<f64>,
    /// Each pool's first cluster link id.
    link_base: Vec<LinkId>,
}

/// A handoff on its links: the bytes it puts on each, and the latency paid once after
/// the last byte.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// (link, bytes), by link id.
    pub link_bytes: Vec<(LinkId, f64)>,
    /// Latency after the last byte.
    pub latency: SimTime,
}

impl Route {
    /// The same route carrying `fraction` of the bytes.
    pub fn scaled(mut self, fraction: f64) -> Self {
        self.link_bytes.iter_mut().for_each(|(_, b)| *b *= fraction);
        self
    }
}

impl HandoffNet {
    /// The cluster made of `pools` (built from `setups`, in order, `gpus_per_node` GPUs
    /// per node): the handoff routes, and the one fabric every pool books on (None when
    /// no link is shared and no handoff can happen).
    pub fn join(pools: &[Pool], setups: &[PoolSetup], gpus_per_node: u32) -> (Self, Option<SharedFabric>) {
        let (mut capacity, mut parts, mut link_base) = (Vec::new(), Vec::new(), Vec::new());
        let (mut gpu_nic, mut gpu_latency_ns) = (Vec::new(), Vec::new());
        for (pool, ps) in pools.iter().zip(setups) {
            let (asm, s) = (&pool.pipeline.asm, &ps.setup);
            let base = capacity.len() as LinkId;
            link_base.push(base);
            let (units, extra) = asm.fabric_links(&s.events);
            let units = units.into_iter().map(|u| u.into_iter().map(|l| l + base).collect()).collect();
            let extra = extra.into_iter().map(|l| l + base).collect();
            let (facts, plan) = (&asm.report.network, &asm.plan);
            parts.push(FabricPart { plan, unit_links: units, extra, facts, link_base: base, gpu_base: ps.first_gpu });
            // GPU j of a node uses NIC j x nics / gpus_per_node (hardware::topology).
            let nics = s.network.nics_per_node.max(1);
            let end = (ps.first_gpu + s.total_gpus()) as usize;
            gpu_nic.resize(end.max(gpu_nic.len()), [0; 2]);
            gpu_latency_ns.resize(end.max(gpu_latency_ns.len()), 0.0);
            for g in 0..s.total_gpus() {
                let (node, local) = (g / gpus_per_node, g % gpus_per_node);
                let c = (ps.first_gpu + g) as usize;
                gpu_nic[c] = asm.nic_links(node, local * nics / gpus_per_node).map(|l| l + base);
                gpu_latency_ns[c] = s.network.latency_us * 1e3;
            }
            capacity.extend(asm.link_capacities());
        }
        // The NICs of the pools that hand KV off (none when every pool is mixed).
        let mut kv_links: Vec<LinkId> = pools
            .iter()
            .zip(setups)
            .filter(|(p, _)| p.role != PoolRole::Mixed)
            .flat_map(|(_, ps)| (ps.first_gpu..ps.first_gpu + ps.setup.total_gpus()).map(|g| gpu_nic[g as usize]))
            .flatten()
            .collect();
        kv_links.sort_unstable();
        kv_links.dedup();
        let fabric = SharedFabric::join(&parts, &kv_links, &capacity);
        let bytes_per_ns = capacity.iter().map(|c| c / 1e9).collect();
        (HandoffNet { gpu_nic, gpu_latency_ns, bytes_per_ns, link_base }, fabric)
    }

    /// `bytes` from the GPUs `src` to the GPUs `dst` (cluster indices): one shard per
    /// GPU of the larger side, shard `j` from source `j * |src| / n` to destination
    /// `j * |dst| / n`, so every GPU of both sides sends or receives its share.
    pub fn route(&self, src: &[u32], dst: &[u32], bytes: f64) -> Route {
        let n = src.len().max(dst.len()).max(1);
        let share = bytes / n as f64;
        let (mut on, mut latency_ns) = (BTreeMap::<LinkId, f64>::new(), 0.0f64);
        for j in 0..n {
            let (a, b) = (src[j * src.len() / n] as usize, dst[j * dst.len() / n] as usize);
            *on.entry(self.gpu_nic[a][0]).or_default() += share;
            *on.entry(self.gpu_nic[b][1]).or_default() += share;
            latency_ns = latency_ns.max(self.gpu_latency_ns[a]).max(self.gpu_latency_ns[b]);
        }
        Route { link_bytes: on.into_iter().collect(), latency: SimTime::from_ns_f64(latency_ns) }
    }

    /// The pool a cluster link belongs to, and its id in that pool's topology.
    pub fn pool_link(&self, link: LinkId) -> (usize, LinkId) {
        let p = self.link_base.partition_point(|b| *b <= link).saturating_sub(1);
        (p, link - self.link_base.get(p).copied().unwrap_or(0))
    }

    /// The time of `route`'s bytes alone on its links: its busiest link's bytes over
    /// that link's bandwidth (every shard moves at once), ns.
    pub fn alone_ns(&self, route: &Route) -> f64 {
        route.link_bytes.iter().map(|(l, b)| b / self.bytes_per_ns[*l as usize]).fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pools of one node each (8 GPUs and 2 NICs per node).
    fn net() -> HandoffNet {
        let text = r#"
[scenario]
name = "net"
seed = 1
[hardware]
gpu = "h100-sxm"
nodes = 2
[model]
preset = "llama-3-8b"
[[pools]]
role = "prefill"
replicas = 1
nodes = 1
[[pools]]
role = "decode"
replicas = 1
nodes = 1
[workload]
requests = 1
arrival = { process = "all_at_once" }
prompt_tokens = { dist = "fixed", value = 10 }
output_tokens = { dist = "fixed", value = 10 }
"#;
        let path = std::path::Path::new("net.toml");
        let mut s = crate::scenario::parse(text, path, &[]).expect("parses");
        s.hardware.network =
            Some(crate::scenario::types::NetworkConfig { nics_per_node: Some(2), ..Default::default() });
        let setup = crate::scenario::validate(&s, path).expect("valid");
        let pools: Vec<Pool> =
            setup.pools.iter().enumerate().map(|(i, p)| Pool::build(i, p, 0).expect("fits")).collect();
        HandoffNet::join(&pools, &setup.pools, 8).0
    }

    #[test]
    fn a_shard_leaves_through_the_senders_nic_and_enters_through_the_receivers() {
        let n = net();
        // Each pool's topology (one node, 8 GPUs, 2 NICs, rail-optimized: 2 leaves):
        // NVLink up 0..8, down 8..16, NIC up 16..18, down 18..20, leaf up and down
        // 20..24; pool 1's ids follow from 24. GPU j uses NIC j x 2 / 8: GPUs 0-3 NIC 0,
        // 4-7 NIC 1. GPU 9 is GPU 1 of the decode node: NIC 0, links 24 + 16, 24 + 18.
        assert_eq!((n.gpu_nic[5], n.gpu_nic[9]), ([17, 19], [40, 42]));
        // One GPU to two: two shards of half the bytes, both out of GPU 0's NIC (link
        // 16) and into NIC 0 of the decode node (link 42, GPUs 8 and 9).
        let r = n.route(&[0], &[8, 9], 1e9);
        assert_eq!(r.link_bytes, vec![(16, 1e9), (42, 1e9)]);
        // H100 preset NIC: 50 GB/s x 0.95 = 47.5 GB/s: 1e9 B take 1e9 / 47.5 ns.
        assert!((n.alone_ns(&r) - 1e9 / 47.5).abs() < 1e-6);
        assert_eq!(r.clone().scaled(0.5).link_bytes, vec![(16, 5e8), (42, 5e8)]);
        assert_eq!((n.pool_link(16), n.pool_link(42)), ((0, 16), (1, 18)));
    }
}
