//! The links a KV handoff crosses: from each sending GPU's NIC to the receiving GPU's
//! NIC across nodes, or from GPU to GPU over NVLink inside a node, with each pool's own
//! link speeds and latencies.

use super::links::KvLinks;
use crate::engine::SimTime;
use crate::scenario::pools::PoolSetup;

/// One node's links.
#[derive(Clone, Debug)]
struct NodeLinks {
    /// Link id of NIC 0's sending direction; NIC `i` sends on `first + 2i`, receives on `+1`.
    first_nic_link: u32,
    nics: u32,
    nic_latency_ns: f64,
    nvlink_latency_ns: f64,
}

/// The cluster's handoff links and their booking.
#[derive(Clone, Debug)]
pub struct HandoffNet {
    nodes: Vec<NodeLinks>,
    gpus_per_node: u32,
    /// Link id of GPU 0's NVLink sending direction; GPU `g` sends on `first + 2g`.
    first_nvlink: u32,
    capacity_gb_s: Vec<f64>,
    /// Transfers in progress.
    pub links: KvLinks,
}

/// A handoff as flows: `(links, bytes)` parts, the latency paid once after the last
/// byte, and how long it would take alone on its links.
pub struct Route {
    /// Flows.
    pub parts: Vec<(Vec<u32>, f64)>,
    /// Latency after the last byte.
    pub latency: SimTime,
    /// Time of the bytes alone on these links, ns.
    pub alone_ns: f64,
}

impl HandoffNet {
    /// The links of a cluster made of `pools` in order, `gpus_per_node` GPUs per node.
    pub fn new(pools: &[PoolSetup], gpus_per_node: u32) -> Self {
        let (mut nodes, mut capacity) = (Vec::new(), Vec::new());
        let mut nvlink = Vec::new();
        for p in pools {
            let s = &p.setup;
            let nic_gb_s = s.network.nic_bandwidth_gb_s * s.network.efficiency;
            for _ in 0..s.nodes {
                nodes.push(NodeLinks {
                    first_nic_link: capacity.len() as u32,
                    nics: s.network.nics_per_node.max(1),
                    nic_latency_ns: s.network.latency_us * 1e3,
                    nvlink_latency_ns: s.nvlink.latency_us * 1e3,
                });
                capacity.extend(std::iter::repeat_n(nic_gb_s, 2 * s.network.nics_per_node.max(1) as usize));
                let nvl_gb_s = s.nvlink.bandwidth_gb_s * s.nvlink.efficiency;
                nvlink.extend(std::iter::repeat_n(nvl_gb_s, 2 * gpus_per_node as usize));
            }
        }
        let first_nvlink = capacity.len() as u32;
        capacity.extend(nvlink);
        HandoffNet {
            nodes,
            gpus_per_node,
            first_nvlink,
            links: KvLinks::new(capacity.clone()),
            capacity_gb_s: capacity,
        }
    }

    /// `bytes` from the GPUs `src` to the GPUs `dst` (cluster indices): one flow per
    /// GPU of the larger side, each shard from source `j * |src| / n` to destination
    /// `j * |dst| / n`, so every GPU of both sides sends or receives its share.
    pub fn route(&self, src: &[u32], dst: &[u32], bytes: f64) -> Route {
        let n = src.len().max(dst.len()).max(1);
        let share = bytes / n as f64;
        let (mut parts, mut latency_ns, mut alone_ns) = (Vec::with_capacity(n), 0.0f64, 0.0f64);
        for j in 0..n {
            let (a, b) = (src[j * src.len() / n], dst[j * dst.len() / n]);
            let (links, lat) = self.path(a, b);
            let slowest = links.iter().map(|l| self.capacity_gb_s[*l as usize]).fold(f64::INFINITY, f64::min);
            alone_ns = alone_ns.max(share / slowest);
            latency_ns = latency_ns.max(lat);
            parts.push((links, share));
        }
        Route { parts, latency: SimTime::from_ns_f64(latency_ns), alone_ns }
    }

    /// The links from GPU `a` to GPU `b` and the path's latency, ns.
    fn path(&self, a: u32, b: u32) -> (Vec<u32>, f64) {
        let (na, nb) = ((a / self.gpus_per_node) as usize, (b / self.gpus_per_node) as usize);
        if na == nb {
            let lat = self.nodes[na].nvlink_latency_ns;
            return (vec![self.first_nvlink + 2 * a, self.first_nvlink + 2 * b + 1], lat);
        }
        let nic = |node: &NodeLinks, g: u32| {
            node.first_nic_link + 2 * ((g % self.gpus_per_node) * node.nics / self.gpus_per_node)
        };
        let (x, y) = (&self.nodes[na], &self.nodes[nb]);
        (vec![nic(x, a), nic(y, b) + 1], x.nic_latency_ns.max(y.nic_latency_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pools of one node each (8 GPUs per node), the first with 2 NICs per node.
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
gpu = "h100-sxm"
[pools.gpu_spec]
memory_gib = 80.0
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
        HandoffNet::new(&setup.pools, 8)
    }

    #[test]
    fn across_nodes_a_shard_crosses_both_nics_and_inside_a_node_nvlink() {
        let n = net();
        // Node 0: NICs 0, 1 -> links 0..4 (send, receive); node 1: links 4..8; NVLink of
        // GPU g from link 8: send 8 + 2g, receive 9 + 2g. GPU 5 of node 0 uses NIC
        // 5 x 2 / 8 = 1 (send link 2); GPU 9 is GPU 1 of node 1, NIC 0 (receive link 5).
        assert_eq!(n.path(5, 9).0, vec![2, 5]);
        // GPUs 1 and 6 share node 0: NVLink send of 1 (10), receive of 6 (21).
        assert_eq!(n.path(1, 6).0, vec![10, 21]);
        // One GPU to two: two flows of half the bytes, from GPU 0 to GPUs 8 and 9.
        let r = n.route(&[0], &[8, 9], 1e9);
        assert_eq!(
            r.parts.iter().map(|(l, b)| (l.clone(), *b)).collect::<Vec<_>>(),
            vec![(vec![0, 5], 5e8), (vec![0, 5], 5e8)]
        );
        // H100 preset NIC: 50 GB/s x 0.95 = 47.5 GB/s; each flow alone 5e8 / 47.5 ns.
        assert!((r.alone_ns - 5e8 / 47.5).abs() < 1e-6);
    }
}
