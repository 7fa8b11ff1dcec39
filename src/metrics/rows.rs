//! The rows a run's report is made of: one per finished request, per GPU, per
//! timeline span, per utilization bucket and per series bucket. output/ writes them
//! as CSV files and reads them back to re-render charts.

use serde::{Deserialize, Serialize};

/// One finished (or dropped) request: a row of `requests.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    /// Request id (arrival order).
    pub id: u64,
    /// DP replica that finished it.
    pub replica: u32,
    /// Arrival, s.
    pub arrival_s: f64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// First scheduled, s.
    pub scheduled_s: f64,
    /// First token produced, s.
    pub first_token_s: f64,
    /// Last token produced, s.
    pub finish_s: f64,
    /// first_token_s - arrival_s.
    pub ttft_s: f64,
    /// (e2e - ttft) / (output_tokens - 1); 0 for one-token outputs.
    pub tpot_s: f64,
    /// finish_s - arrival_s.
    pub e2e_s: f64,
    /// scheduled_s - arrival_s.
    pub queue_s: f64,
    /// Times preempted.
    pub preemptions: u32,
    /// Re-routed after a GPU failure.
    pub rerouted: bool,
}

/// One GPU's totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuRow {
    /// Global GPU index.
    pub gpu: u32,
    /// Node.
    pub node: u32,
    /// DP replica (or -1 if unused).
    pub replica: i64,
    /// Pipeline stage (-1 if unused).
    pub stage: i64,
    /// TP rank within the stage (-1 if unused).
    pub tp_rank: i64,
    /// EP rank within the stage (-1 if unused).
    pub ep_rank: i64,
    /// Computing, s.
    pub compute_s: f64,
    /// Exposed communication, s.
    pub communicate_s: f64,
    /// Waiting for peers, s.
    pub wait_s: f64,
    /// Idle, s.
    pub idle_s: f64,
    /// compute_s / wall.
    pub utilization: f64,
    /// (communicate + wait) / (compute + communicate + wait).
    pub overhead_fraction: f64,
    /// TP communication, s.
    pub tp_comm_s: f64,
    /// TP wait, s.
    pub tp_wait_s: f64,
    /// PP communication, s.
    pub pp_comm_s: f64,
    /// PP wait, s.
    pub pp_wait_s: f64,
    /// EP communication, s.
    pub ep_comm_s: f64,
    /// EP wait, s.
    pub ep_wait_s: f64,
    /// Weights, GiB.
    pub weights_gib: f64,
    /// KV cache reserved, GiB.
    pub kv_gib: f64,
    /// Peak KV cache used, GiB.
    pub kv_peak_gib: f64,
    /// Activation workspace, GiB.
    pub activations_gib: f64,
    /// Capacity, GiB.
    pub capacity_gib: f64,
    /// Model FLOPs executed.
    pub flops: f64,
    /// Collective payload this GPU took part in, GB (10^9 bytes).
    #[serde(default)]
    pub comm_gb: f64,
    /// Communication time lost to links shared with concurrent collectives, s.
    #[serde(default)]
    pub contention_s: f64,
}

/// A GPU state span inside the timeline window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Global GPU index.
    pub gpu: u32,
    /// Start, s.
    pub start_s: f64,
    /// End, s.
    pub end_s: f64,
    /// `compute`, `communicate`, `wait` or `idle`.
    pub state: String,
    /// What ran: `attention`, `mlp`, `experts`, `lm_head`, `overhead`, `tp_allreduce`,
    /// `pp_sendrecv`, `ep_alltoall`, or empty for idle.
    pub what: String,
    /// Batch (iteration) id, or -1.
    pub batch: i64,
}

/// Busy fraction of one GPU in one time bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UtilizationRow {
    /// Bucket start, s.
    pub t_s: f64,
    /// Global GPU index.
    pub gpu: u32,
    /// Computing fraction of the bucket.
    pub busy: f64,
}

/// Cluster figures per time bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Bucket start, s.
    pub t_s: f64,
    /// Bucket length, s.
    pub bucket_s: f64,
    /// Output tokens produced in the bucket.
    pub output_tokens: u64,
    /// Prompt tokens processed in the bucket.
    pub prompt_tokens: u64,
    /// Requests waiting (arrived, not yet scheduled) at bucket end.
    pub queued: u64,
    /// Requests running at bucket end.
    pub running: u64,
}
