//! The parallel plan: which GPU holds which rank, and the TP / EP / PP / DP groups.
//!
//! Ranks are laid out with TP innermost, then EP, then PP stages, then DP replicas:
//!
//! ```text
//! gpu = ((replica * pp + stage) * ep + ep_rank) * tp + tp_rank
//! ```
//!
//! so a TP group is `tp` consecutive GPUs (inside one node whenever `tp` divides
//! `gpus_per_node`), a stage is `tp x ep` consecutive GPUs, and pipeline stages
//! spill onto the next node only when a node is full.
//!
//! How EP composes with TP and DP: every stage of a replica has `tp x ep` GPUs. The
//! attention part of each layer runs data-parallel over the `ep` groups (each group
//! takes a share of the batch's sequences, with its attention sharded `tp` ways);
//! the routed experts are spread over the `ep` groups (`experts / ep` each), each
//! expert sharded `tp` ways. Tokens travel to their experts by an all-to-all among
//! the GPUs of equal TP rank (dispatch) and back (combine). So "24 GPUs, DP=3 PP=2
//! TP=2 EP=2" is 3 replicas x 2 stages x (2 x 2) GPUs. DP replicas are independent
//! serving instances fed by the router.

use serde::Serialize;

/// Where one GPU sits in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rank {
    /// DP replica.
    pub replica: u32,
    /// Pipeline stage.
    pub stage: u32,
    /// EP rank within the stage.
    pub ep_rank: u32,
    /// TP rank within the EP group.
    pub tp_rank: u32,
}

/// A DP x PP x EP x TP plan laid over a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Replicas.
    pub dp: u32,
    /// Stages per replica.
    pub pp: u32,
    /// EP groups per stage.
    pub ep: u32,
    /// TP ranks per EP group.
    pub tp: u32,
    /// GPUs per node (for node numbers).
    pub gpus_per_node: u32,
    /// Model layers, split over stages.
    pub layers: u32,
}

impl Plan {
    /// GPUs the plan uses.
    pub fn gpus(&self) -> u32 {
        self.dp * self.pp * self.ep * self.tp
    }
    /// GPUs per stage.
    pub fn stage_size(&self) -> u32 {
        self.ep * self.tp
    }
    /// The GPU of a rank.
    pub fn gpu(&self, r: Rank) -> u32 {
        ((r.replica * self.pp + r.stage) * self.ep + r.ep_rank) * self.tp + r.tp_rank
    }
    /// The rank a GPU holds, or None if the plan leaves it unused.
    pub fn rank_of(&self, gpu: u32) -> Option<Rank> {
        if gpu >= self.gpus() {
            return None;
        }
        let tp_rank = gpu % self.tp;
        let rest = gpu / self.tp;
        let ep_rank = rest % self.ep;
        let rest = rest / self.ep;
        Some(Rank { replica: rest / self.pp, stage: rest % self.pp, ep_rank, tp_rank })
    }
    /// The node a GPU is in.
    pub fn node_of(&self, gpu: u32) -> u32 {
        gpu / self.gpus_per_node
    }
    /// The first GPU of a stage; the stage holds `stage_size()` consecutive GPUs.
    pub fn stage_first_gpu(&self, replica: u32, stage: u32) -> u32 {
        self.gpu(Rank { replica, stage, ep_rank: 0, tp_rank: 0 })
    }
    /// All GPUs of one stage of one replica, in (ep_rank, tp_rank) order.
    pub fn stage_gpus(&self, replica: u32, stage: u32) -> Vec<u32> {
        let first = self.stage_first_gpu(replica, stage);
        (first..first + self.stage_size()).collect()
    }
    /// The TP group of an EP rank in a stage.
    pub fn tp_group(&self, replica: u32, stage: u32, ep_rank: u32) -> Vec<u32> {
        let first = self.gpu(Rank { replica, stage, ep_rank, tp_rank: 0 });
        (first..first + self.tp).collect()
    }
    /// The EP group (GPUs of equal TP rank across EP ranks) in a stage.
    pub fn ep_group(&self, replica: u32, stage: u32, tp_rank: u32) -> Vec<u32> {
        (0..self.ep).map(|ep_rank| self.gpu(Rank { replica, stage, ep_rank, tp_rank })).collect()
    }
    /// The layers of a stage: `layers / pp` each, the first `layers % pp` stages one more.
    pub fn stage_layers(&self, stage: u32) -> std::ops::Range<u32> {
        stage_layer_range(self.layers, self.pp, stage)
    }
}

/// The layers of stage `stage` when `layers` are split over `pp` stages: `layers / pp`
/// each, the first `layers % pp` stages one more.
pub fn stage_layer_range(layers: u32, pp: u32, stage: u32) -> std::ops::Range<u32> {
    let pp = pp.max(1);
    let base = layers / pp;
    let extra = layers % pp;
    let start = stage * base + stage.min(extra);
    let len = base + u32::from(stage < extra);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_plan() -> Plan {
        Plan { dp: 3, pp: 2, ep: 2, tp: 2, gpus_per_node: 8, layers: 16 }
    }

    #[test]
    fn seed_corrected_layout() {
        // 24 GPUs: replica r fills node r; stage 0 = GPUs 8r..8r+3, stage 1 = 8r+4..8r+7;
        // within a stage, EP rank 0 = the first TP pair, EP rank 1 = the second.
        let p = seed_plan();
        assert_eq!(p.gpus(), 24);
        assert_eq!(p.stage_gpus(1, 1), vec![12, 13, 14, 15]);
        assert_eq!(p.tp_group(2, 0, 1), vec![18, 19]);
        assert_eq!(p.ep_group(0, 1, 1), vec![5, 7]);
        assert_eq!(p.node_of(19), 2);
        for g in 0..24 {
            let r = p.rank_of(g).unwrap();
            assert_eq!(p.gpu(r), g);
        }
        assert_eq!(p.rank_of(24), None);
    }

    #[test]
    fn layers_split_with_remainder_first() {
        // 80 layers on 3 stages: 27, 27, 26.
        let p = Plan { dp: 1, pp: 3, ep: 1, tp: 1, gpus_per_node: 8, layers: 80 };
        assert_eq!(p.stage_layers(0), 0..27);
        assert_eq!(p.stage_layers(1), 27..54);
        assert_eq!(p.stage_layers(2), 54..80);
    }
}
