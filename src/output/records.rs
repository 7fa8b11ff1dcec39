//! Row types of the CSV files a run writes, shared by the writers and by
//! `clustersim plot`, which re-renders charts from them.
//!
//! Files in a results folder:
//! - `summary.json` ([`crate::metrics::summary::Summary`])
//! - `run_info.json` (wall-clock figures; not deterministic)
//! - `requests.csv` ([`RequestRow`]), one row per finished request, in completion order
//! - `gpus.csv` ([`GpuRow`]), one row per GPU
//! - `timeline.csv` ([`TimelineRow`]), GPU state spans inside the timeline window
//! - `utilization.csv` ([`UtilizationRow`]), per-GPU busy fraction per time bucket
//! - `series.csv` ([`SeriesRow`]), cluster throughput and queue per time bucket
//! - `scenario.toml`, the scenario as run (after overrides)

use serde::{Deserialize, Serialize};

/// One finished (or dropped) request.
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

/// The header line of `requests.csv` (column names from [`RequestRow`]'s fields,
/// the same serde names the csv writer uses for rows).
pub fn requests_csv_header() -> crate::error::Result<String> {
    let row = RequestRow {
        id: 0,
        replica: 0,
        arrival_s: 0.0,
        prompt_tokens: 0,
        output_tokens: 0,
        scheduled_s: 0.0,
        first_token_s: 0.0,
        finish_s: 0.0,
        ttft_s: 0.0,
        tpot_s: 0.0,
        e2e_s: 0.0,
        queue_s: 0.0,
        preemptions: 0,
        rerouted: false,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let bad = |e: String| crate::error::Error::Run(format!("cannot form the requests.csv header: {e}"));
    w.serialize(&row).map_err(|e| bad(e.to_string()))?;
    let bytes = w.into_inner().map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
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
