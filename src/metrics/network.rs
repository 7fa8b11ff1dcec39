//! What the network carried: traffic and utilization per link class (NVLink, NIC,
//! spine) and per link, and the communication time each GPU lost to contention.
//!
//! The recorder keeps only each GPU's collective payload per kind (one number per GPU
//! per kind, O(1) per collective). At the end, [`NetworkFacts`] turn payload into link
//! traffic: for each group, how many bytes each link carries per payload byte (from
//! the algorithm's expanded steps over the routes), and how much longer per payload
//! byte the group's collective took than on idle links (zero unless it shares links).

use crate::hardware::topology::LinkKind;
use crate::parallel::ledger::{CommKind, GpuTotals};
use serde::{Deserialize, Serialize};

/// A link, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkFact {
    /// "NIC 3 up", ...
    pub name: String,
    /// What it is.
    pub kind: LinkKind,
    /// Sustained capacity, bytes/s.
    pub bytes_per_s: f64,
}

/// One collective group's traffic pattern.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupFact {
    /// Bytes each link carries per payload byte one member records, (link, bytes).
    pub link_bytes_per_payload: Vec<(u32, f64)>,
    /// Extra ns per payload byte from sharing links with concurrent collectives.
    pub contention_ns_per_byte: f64,
}

/// How payload becomes link traffic, fixed by the plan and topology.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkFacts {
    /// Every link of the cluster.
    pub links: Vec<LinkFact>,
    /// Collective groups.
    pub groups: Vec<GroupFact>,
    /// Per GPU, per [`CommKind::index`]: the group its collectives of that kind run in.
    pub gpu_groups: Vec<[Option<u32>; 4]>,
}

/// Traffic of one link class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassTraffic {
    /// Bytes carried (both directions), GB (10^9 bytes).
    pub traffic_gb: f64,
    /// Mean utilization of the class's links over the run: bytes / (capacity x wall).
    pub utilization_mean: f64,
    /// Utilization of the busiest link of the class.
    pub utilization_max: f64,
}

/// One busy link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BusyLink {
    /// Which.
    pub link: String,
    /// Bytes carried, GB.
    pub traffic_gb: f64,
    /// bytes / (capacity x wall).
    pub utilization: f64,
}

/// summary.json `network`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// NVLink (GPU to NVSwitch and back).
    pub nvlink: ClassTraffic,
    /// NICs (node to leaf switch and back).
    pub nic: ClassTraffic,
    /// Spine (leaf to spine and back).
    pub spine: ClassTraffic,
    /// The five busiest links.
    pub busiest_links: Vec<BusyLink>,
    /// Communication time lost to contention, summed over GPUs, s.
    pub contention_s: f64,
    /// That loss as a share of all communication time.
    pub contention_fraction_of_comm: f64,
}

impl NetworkFacts {
    /// Contention loss of one GPU, ns: its payload of each kind times its group's
    /// extra time per byte (sharing inside a stage), plus what it lost to other
    /// replicas' or stages' traffic on shared links.
    pub fn contention_ns(&self, gpu: usize, t: &GpuTotals) -> f64 {
        let Some(groups) = self.gpu_groups.get(gpu) else { return t.contention_ns as f64 };
        t.contention_ns as f64
            + CommKind::ALL
                .iter()
                .filter_map(|k| {
                    groups[k.index()].map(|g| t.comm_bytes[k.index()] * self.groups[g as usize].contention_ns_per_byte)
                })
                .sum::<f64>()
                .max(0.0)
    }

    /// Bytes each link carried, given every GPU's totals.
    pub fn link_bytes(&self, gpus: &[GpuTotals]) -> Vec<f64> {
        let mut bytes = vec![0.0; self.links.len()];
        for (g, t) in gpus.iter().enumerate() {
            let Some(groups) = self.gpu_groups.get(g) else { continue };
            for k in CommKind::ALL {
                let Some(group) = groups[k.index()] else { continue };
                for &(l, per) in &self.groups[group as usize].link_bytes_per_payload {
                    bytes[l as usize] += t.comm_bytes[k.index()] * per;
                }
            }
        }
        bytes
    }

    /// The network section of the summary over a run of `wall_s` seconds.
    pub fn summarize(&self, gpus: &[GpuTotals], wall_s: f64) -> NetworkSummary {
        let bytes = self.link_bytes(gpus);
        let util = |i: usize| if wall_s > 0.0 { bytes[i] / (self.links[i].bytes_per_s * wall_s) } else { 0.0 };
        let class = |kinds: [LinkKind; 2]| {
            let idx: Vec<usize> = (0..self.links.len()).filter(|i| kinds.contains(&self.links[*i].kind)).collect();
            ClassTraffic {
                traffic_gb: idx.iter().map(|i| bytes[*i]).sum::<f64>() / 1e9,
                utilization_mean: idx.iter().map(|i| util(*i)).sum::<f64>() / idx.len().max(1) as f64,
                utilization_max: idx.iter().map(|i| util(*i)).fold(0.0, f64::max),
            }
        };
        let mut order: Vec<usize> = (0..self.links.len()).filter(|i| bytes[*i] > 0.0).collect();
        order.sort_by(|a, b| util(*b).total_cmp(&util(*a)).then(a.cmp(b)));
        let busiest_links = order
            .iter()
            .take(5)
            .map(|&i| BusyLink { link: self.links[i].name.clone(), traffic_gb: bytes[i] / 1e9, utilization: util(i) })
            .collect();
        // max(0): a float sum of nothing is -0.0.
        let contention_ns = gpus.iter().enumerate().map(|(g, t)| self.contention_ns(g, t)).sum::<f64>().max(0.0);
        let comm_ns: f64 = gpus.iter().map(|t| t.comm_total_ns() as f64).sum();
        NetworkSummary {
            nvlink: class([LinkKind::NvlinkUp, LinkKind::NvlinkDown]),
            nic: class([LinkKind::NicUp, LinkKind::NicDown]),
            spine: class([LinkKind::LeafUp, LinkKind::LeafDown]),
            busiest_links,
            contention_s: contention_ns / 1e9,
            contention_fraction_of_comm: if comm_ns > 0.0 { (contention_ns / comm_ns).min(1.0) } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_becomes_link_traffic_and_contention_by_hand() {
        // Two GPUs in one group; each payload byte puts 0.5 B on link 0 (a NIC, 10 B/s)
        // and 1 B on link 1 (NVLink, 100 B/s); sharing costs 2 ns per byte. GPU 0 moved
        // 40 B, GPU 1 60 B of TP payload: link 0 carries 50 B, link 1 100 B. Over 10 s:
        // NIC utilization 50 / 100 = 0.5, NVLink 100 / 1000 = 0.1. Contention: 200 ns.
        let link = |name: &str, kind, bytes_per_s| LinkFact { name: name.into(), kind, bytes_per_s };
        let facts = NetworkFacts {
            links: vec![link("NIC 0 up", LinkKind::NicUp, 10.0), link("NVLink up of GPU 0", LinkKind::NvlinkUp, 100.0)],
            groups: vec![GroupFact { link_bytes_per_payload: vec![(0, 0.5), (1, 1.0)], contention_ns_per_byte: 2.0 }],
            gpu_groups: vec![[Some(0), None, None, None]; 2],
        };
        let mut a = GpuTotals { comm_ns: [1_000, 0, 0, 0], ..Default::default() };
        a.comm_bytes[0] = 40.0;
        let mut b = a.clone();
        b.comm_bytes[0] = 60.0;
        let s = facts.summarize(&[a, b], 10.0);
        assert_eq!(s.nic.utilization_max, 0.5);
        assert_eq!(s.nvlink.utilization_mean, 0.1);
        assert_eq!(s.busiest_links[0].link, "NIC 0 up");
        assert!((s.contention_s - 200e-9).abs() < 1e-18);
        assert!((s.contention_fraction_of_comm - 0.1).abs() < 1e-12);
    }
}
