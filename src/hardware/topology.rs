//! The physical topology: GPUs, NVLink, NICs and the fabric, as a flat list of
//! unidirectional links, plus deterministic routing between any two GPUs.
//!
//! Model (what a route crosses):
//! - Inside a node every GPU has an up link and a down link to a non-blocking NVSwitch
//!   (`NvlinkSpec::bandwidth_gb_s` per direction). GPU a -> GPU b in the same node:
//!   `[nvlink_up(a), nvlink_down(b)]`.
//! - Node n has `nics_per_node` NICs; GPU with local index j uses NIC
//!   `j * nics_per_node / gpus_per_node` (one NIC per GPU on DGX nodes; with fewer NICs,
//!   neighbouring GPUs share one). PCIe between GPU and NIC is not modelled, and neither
//!   is PXN rail switching: cross-node traffic leaves through the sender's own NIC and
//!   enters through the receiver's own NIC.
//! - Rail-optimized fabric: NIC i of every node sits on leaf i. Same rail:
//!   `[nic_up, nic_down]`; different rails meet at the spine:
//!   `[nic_up, leaf_up(src rail), leaf_down(dst rail), nic_down]`.
//! - Fat tree: one leaf per node; every cross-node route climbs to the spine:
//!   `[nic_up, leaf_up(src node), leaf_down(dst node), nic_down]`.
//! - A leaf's uplinks to the spine are pooled into one link per direction (ECMP spreads
//!   flows over them) of capacity `attached NICs x NIC bandwidth / oversubscription`.
//!
//! Bandwidths are `bandwidth x efficiency` in bytes/s. Latency: each link carries the
//! per-step latency α of its tier (NVLink or network); a route's latency is the largest
//! of its links', added once per transfer. The presets' α are end-to-end step latencies
//! as nccl-tests sees them, so they are not summed hop by hop.

use super::spec::{FabricTopology, NetworkSpec, NvlinkSpec, GB};
use crate::engine::SimTime;
use crate::error::{Error, Result};

/// Index of a link in [`Topology::links`].
pub type LinkId = u32;

/// What a link is, for reports and what-ifs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// GPU to NVSwitch.
    NvlinkUp,
    /// NVSwitch to GPU.
    NvlinkDown,
    /// NIC to its leaf switch.
    NicUp,
    /// Leaf switch to NIC.
    NicDown,
    /// Leaf to spine (pooled uplinks).
    LeafUp,
    /// Spine to leaf (pooled downlinks).
    LeafDown,
}

/// One unidirectional link.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// What it is.
    pub kind: LinkKind,
    /// Owner index: GPU id for NVLink, global NIC id for NIC links, leaf index for leaf links.
    pub owner: u32,
    /// Sustained capacity, bytes/s (bandwidth x efficiency).
    pub bytes_per_s: f64,
    /// Per-step latency α of this link's tier.
    pub latency: SimTime,
}

/// A route between two GPUs (or a GPU and its node's NVSwitch, for NVLS): up to four
/// links, `Copy` and allocation-free.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Route {
    links: [LinkId; 4],
    len: u8,
    /// Latency added once to every transfer on this route.
    pub latency: SimTime,
    /// The most a transfer on this route may take, bytes/s, whatever its links leave
    /// (infinite except through the NVSwitch's SHARP engine).
    pub rate_cap: f64,
}

impl Route {
    /// The empty route (a GPU to itself): no links, no latency.
    pub const LOCAL: Route = Route { links: [0; 4], len: 0, latency: SimTime::ZERO, rate_cap: f64::INFINITY };

    /// The links crossed, in order.
    pub fn links(&self) -> &[LinkId] {
        &self.links[..self.len as usize]
    }
}

/// GPUs, links and routes of a whole cluster.
#[derive(Clone, Debug)]
pub struct Topology {
    nodes: u32,
    gpus_per_node: u32,
    nics_per_node: u32,
    fabric: FabricTopology,
    links: Vec<Link>,
    nic_base: u32,
    leaf_base: u32,
    leaves: u32,
    /// NVLS port rate per GPU and direction, bytes/s, when the NVSwitch has SHARP.
    nvls_bytes_per_s: Option<f64>,
}

fn check_positive(what: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Usage(format!("{what} must be a positive number, got {v}")))
    }
}

fn check_fraction(what: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(Error::Usage(format!("{what} must be in (0, 1], got {v}")))
    }
}

impl Topology {
    /// Builds `nodes` nodes of `gpus_per_node` GPUs joined by `nvlink` inside a node
    /// and by `network` between nodes. Errors name the bad parameter.
    pub fn new(nodes: u32, gpus_per_node: u32, nvlink: &NvlinkSpec, network: &NetworkSpec) -> Result<Self> {
        if nodes == 0 || gpus_per_node == 0 {
            return Err(Error::Usage(format!(
                "a cluster needs at least one node of at least one GPU, got {nodes} nodes x {gpus_per_node} GPUs"
            )));
        }
        if network.nics_per_node == 0 || network.nics_per_node > gpus_per_node {
            return Err(Error::Usage(format!(
                "nics_per_node must be between 1 and gpus_per_node ({gpus_per_node}), got {}",
                network.nics_per_node
            )));
        }
        check_positive("NVLink bandwidth_gb_s", nvlink.bandwidth_gb_s)?;
        check_fraction("NVLink efficiency", nvlink.efficiency)?;
        if let Some(b) = nvlink.nvls_bandwidth_gb_s {
            check_positive("NVLink nvls_bandwidth_gb_s", b)?;
        }
        check_positive("NIC bandwidth_gb_s", network.nic_bandwidth_gb_s)?;
        check_fraction("network efficiency", network.efficiency)?;
        check_positive("network oversubscription", network.oversubscription)?;
        if !(nvlink.latency_us >= 0.0 && network.latency_us >= 0.0) {
            return Err(Error::Usage("link latencies must be >= 0 µs".to_string()));
        }
        let gpus = nodes * gpus_per_node;
        let nics = nodes * network.nics_per_node;
        let nv_bw = nvlink.bandwidth_gb_s * GB * nvlink.efficiency;
        let nv_lat = SimTime::from_ns_f64(nvlink.latency_us * 1e3);
        let nic_bw = network.nic_bandwidth_gb_s * GB * network.efficiency;
        let net_lat = SimTime::from_ns_f64(network.latency_us * 1e3);
        let (leaves, nics_per_leaf) = match network.topology {
            FabricTopology::RailOptimized => (network.nics_per_node, nodes),
            FabricTopology::FatTree => (nodes, network.nics_per_node),
        };
        let leaf_bw = nics_per_leaf as f64 * nic_bw / network.oversubscription;
        let mut links = Vec::with_capacity((2 * gpus + 2 * nics + 2 * leaves) as usize);
        // Link ids by kind, in this order: NVLink up and down per GPU, NIC up and down
        // per NIC, leaf up and down per leaf (the accessors below index into it).
        let tiers = [
            (LinkKind::NvlinkUp, gpus, nv_bw, nv_lat),
            (LinkKind::NvlinkDown, gpus, nv_bw, nv_lat),
            (LinkKind::NicUp, nics, nic_bw, net_lat),
            (LinkKind::NicDown, nics, nic_bw, net_lat),
            (LinkKind::LeafUp, leaves, leaf_bw, net_lat),
            (LinkKind::LeafDown, leaves, leaf_bw, net_lat),
        ];
        for (kind, count, bytes_per_s, latency) in tiers {
            links.extend((0..count).map(|owner| Link { kind, owner, bytes_per_s, latency }));
        }
        Ok(Topology {
            nodes,
            gpus_per_node,
            nics_per_node: network.nics_per_node,
            fabric: network.topology,
            links,
            nic_base: 2 * gpus,
            leaf_base: 2 * gpus + 2 * nics,
            leaves,
            nvls_bytes_per_s: nvlink.nvls_bandwidth_gb_s.map(|b| b * GB),
        })
    }

    /// Number of nodes.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }
    /// NICs per node.
    pub fn nics_per_node(&self) -> u32 {
        self.nics_per_node
    }
    /// GPUs in each node.
    pub fn gpus_per_node(&self) -> u32 {
        self.gpus_per_node
    }
    /// GPUs in the cluster; ids run `0..gpus()`.
    pub fn gpus(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }
    /// The node of a GPU.
    pub fn node_of(&self, gpu: u32) -> u32 {
        gpu / self.gpus_per_node
    }
    /// The index of a GPU inside its node.
    pub fn local_of(&self, gpu: u32) -> u32 {
        gpu % self.gpus_per_node
    }
    /// Every link; a [`LinkId`] indexes this slice.
    pub fn links(&self) -> &[Link] {
        &self.links
    }
    /// One link.
    pub fn link(&self, id: LinkId) -> &Link {
        &self.links[id as usize]
    }
    /// The global NIC id GPU `gpu` sends and receives through.
    pub fn nic_of(&self, gpu: u32) -> u32 {
        let local_nic = self.local_of(gpu) * self.nics_per_node / self.gpus_per_node;
        self.node_of(gpu) * self.nics_per_node + local_nic
    }
    /// Link id of GPU `gpu`'s NVLink up link.
    pub fn nvlink_up(&self, gpu: u32) -> LinkId {
        gpu
    }
    /// Link id of GPU `gpu`'s NVLink down link.
    pub fn nvlink_down(&self, gpu: u32) -> LinkId {
        self.gpus() + gpu
    }
    /// Link id of NIC `nic`'s up link (to its leaf).
    pub fn nic_up(&self, nic: u32) -> LinkId {
        self.nic_base + nic
    }
    /// Link id of NIC `nic`'s down link (from its leaf).
    pub fn nic_down(&self, nic: u32) -> LinkId {
        self.nic_base + self.nodes * self.nics_per_node + nic
    }
    /// Link id of leaf `leaf`'s pooled uplink to the spine.
    pub fn leaf_up(&self, leaf: u32) -> LinkId {
        self.leaf_base + leaf
    }
    /// Link id of leaf `leaf`'s pooled downlink from the spine.
    pub fn leaf_down(&self, leaf: u32) -> LinkId {
        self.leaf_base + self.leaves + leaf
    }
    /// For a NIC up (down) link, its leaf's up (down) link to the spine; `None` for other
    /// links. Every route through a leaf link also crosses one NIC link under that leaf,
    /// so a leaf link never carries more than those NIC links' capacities summed.
    pub fn leaf_link_above(&self, link: LinkId) -> Option<LinkId> {
        let l = self.links.get(link as usize)?;
        match l.kind {
            LinkKind::NicUp => Some(self.leaf_up(self.leaf_of_nic(l.owner))),
            LinkKind::NicDown => Some(self.leaf_down(self.leaf_of_nic(l.owner))),
            _ => None,
        }
    }
    fn leaf_of_nic(&self, nic: u32) -> u32 {
        match self.fabric {
            FabricTopology::RailOptimized => nic % self.nics_per_node,
            FabricTopology::FatTree => nic / self.nics_per_node,
        }
    }

    /// True when the nodes' NVSwitch can reduce and multicast (NVLink SHARP).
    pub fn has_nvls(&self) -> bool {
        self.nvls_bytes_per_s.is_some()
    }

    /// The endpoint id of node `node`'s NVSwitch as a transfer target (NVLS): ids
    /// from [`Topology::gpus`] on are switches.
    pub fn switch_of(&self, node: u32) -> u32 {
        self.gpus() + node
    }

    /// The deterministic route from `src` to `dst` (GPU ids `< gpus()`, or one of them
    /// a [`Topology::switch_of`] id: then only the GPU's NVLink up or down link, at
    /// most at the NVLS port rate).
    pub fn route(&self, src: u32, dst: u32) -> Route {
        if src >= self.gpus() || dst >= self.gpus() {
            return self.switch_route(src, dst);
        }
        if src == dst {
            return Route::LOCAL;
        }
        let mut links = [0; 4];
        let len;
        if self.node_of(src) == self.node_of(dst) {
            links[0] = self.nvlink_up(src);
            links[1] = self.nvlink_down(dst);
            len = 2;
        } else {
            let (a, b) = (self.nic_of(src), self.nic_of(dst));
            let (la, lb) = (self.leaf_of_nic(a), self.leaf_of_nic(b));
            links[0] = self.nic_up(a);
            if la == lb {
                links[1] = self.nic_down(b);
                len = 2;
            } else {
                links[1] = self.leaf_up(la);
                links[2] = self.leaf_down(lb);
                links[3] = self.nic_down(b);
                len = 4;
            }
        }
        let latency = links[..len].iter().map(|&l| self.links[l as usize].latency).max().unwrap_or(SimTime::ZERO);
        Route { links, len: len as u8, latency, rate_cap: f64::INFINITY }
    }

    /// GPU to its NVSwitch or back (NVLS multimem traffic).
    fn switch_route(&self, src: u32, dst: u32) -> Route {
        let (link, gpu) = if dst >= self.gpus() { (self.nvlink_up(src), src) } else { (self.nvlink_down(dst), dst) };
        debug_assert!(gpu < self.gpus(), "switch-to-switch transfer");
        let rate_cap = self.nvls_bytes_per_s.unwrap_or(f64::INFINITY);
        Route { links: [link, 0, 0, 0], len: 1, latency: self.links[link as usize].latency, rate_cap }
    }

    /// Sets a link's capacity (e.g. a what-if slowdown); the flow model reads
    /// capacities at construction, so use [`super::network::Network::set_link_capacity`] mid-run.
    pub fn set_link_capacity(&mut self, id: LinkId, bytes_per_s: f64) {
        self.links[id as usize].bytes_per_s = bytes_per_s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;

    fn h100(nodes: u32, fabric: FabricTopology) -> Topology {
        let p = gpu_preset("h100-sxm").expect("preset");
        let mut net = (p.network)();
        net.topology = fabric;
        Topology::new(nodes, 8, &(p.nvlink)(), &net).expect("valid")
    }

    #[test]
    fn routes_follow_rails_and_spine() {
        let t = h100(2, FabricTopology::RailOptimized);
        // 16 GPUs: 32 NVLink links, 16 NICs x 2, 8 rails x 2 = 80 links.
        assert_eq!(t.links().len(), 80);
        assert_eq!(t.route(1, 5).links(), &[1, 16 + 5]);
        // GPU 3 -> GPU 11 (node 1, local 3): same rail, NIC 3 up, NIC 11 down.
        assert_eq!(t.route(3, 11).links(), &[32 + 3, 48 + 11]);
        // GPU 3 -> GPU 12: rail 3 -> rail 4 via the spine.
        assert_eq!(t.route(3, 12).links(), &[35, 64 + 3, 72 + 4, 48 + 12]);
        assert_eq!(t.route(3, 12).latency, SimTime::from_us(5));
        assert_eq!(t.route(0, 1).latency, SimTime::from_us(2));
        let f = h100(2, FabricTopology::FatTree);
        // Fat tree: leaves = nodes; every cross-node route climbs to the spine.
        assert_eq!(f.route(3, 11).links(), &[35, 64, 66 + 1, 59]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let p = gpu_preset("h100-sxm").expect("preset");
        let mut nv = (p.nvlink)();
        nv.efficiency = 1.5;
        let err = Topology::new(2, 8, &nv, &(p.network)()).expect_err("efficiency > 1");
        assert!(err.to_string().contains("NVLink efficiency"));
        assert!(Topology::new(0, 8, &(p.nvlink)(), &(p.network)()).is_err());
    }
}
