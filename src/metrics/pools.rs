//! The `disaggregation` section of summary.json: KV handoffs, the balance between
//! the prefill and decode sides, and each pool's figures.

use super::summary::Dist;
use serde::{Deserialize, Serialize};

/// A pooled run's own figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DisaggSummary {
    /// `layerwise` or `whole`.
    pub kv_transfer: String,
    /// How instances were picked.
    pub router: String,
    /// KV handoffs that landed.
    pub handoffs: u64,
    /// Transfer start to KV landed on the decode side (bytes on the links + latency), s.
    pub kv_transfer_s: Dist,
    /// Prefill done to transfer start: waiting for KV blocks on the decode side, s.
    pub kv_wait_s: Dist,
    /// Bytes sent over the links (after layer-wise overlap), GB.
    pub kv_gb: f64,
    /// Which side queues.
    pub balance: Balance,
    /// Each pool, in scenario order.
    pub pools: Vec<PoolSummary>,
}

/// The P:D balance: how long and how many requests wait on each side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// Prefill instances over decode instances.
    pub prefill_to_decode_instances: f64,
    /// Time-averaged requests waiting on the prefill side (prompts not yet admitted).
    pub prefill_queue_mean: f64,
    /// Time-averaged requests waiting on the decode side (prefilled, waiting for KV
    /// blocks; or preempted, waiting to be recomputed).
    pub decode_queue_mean: f64,
    /// Mean arrival to first prefill iteration, s.
    pub prefill_wait_s_mean: f64,
    /// Mean prefill done to KV transfer start, s.
    pub decode_wait_s_mean: f64,
}

/// One pool's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// `prefill`, `decode` or `mixed`.
    pub role: String,
    /// GPU preset.
    pub gpu: String,
    /// Instances.
    pub replicas: u32,
    /// Plan of one instance.
    pub tp: u32,
    /// Pipeline stages of one instance.
    pub pp: u32,
    /// Expert-parallel groups of one instance.
    pub ep: u32,
    /// GPUs its plan uses.
    pub gpus: u32,
    /// Mean compute-busy fraction of its GPUs.
    pub utilization_mean: f64,
    /// Time-averaged requests waiting.
    pub queue_mean: f64,
    /// Most requests waiting at once.
    pub queue_max: u64,
    /// Most KV blocks in use at once over its instances' blocks, largest instance.
    pub kv_peak_fraction: f64,
}
