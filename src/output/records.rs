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

use super::files::AtomicFile;
use crate::error::{Error, Result};
use crate::metrics::recorder::RequestSink;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::metrics::recorder::RequestRow;

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

/// Streams request rows to a CSV file that appears whole at [`RequestSink::close`].
pub struct CsvRequestSink {
    writer: csv::Writer<AtomicFile>,
    path: PathBuf,
}

impl CsvRequestSink {
    /// A sink writing `path` (through a temporary file renamed into place at close).
    pub fn create(path: &Path) -> Result<Box<dyn RequestSink>> {
        let writer = csv::Writer::from_writer(AtomicFile::create(path)?);
        Ok(Box::new(CsvRequestSink { writer, path: path.to_path_buf() }))
    }
}

impl RequestSink for CsvRequestSink {
    fn write(&mut self, row: &RequestRow) -> Result<()> {
        self.writer.serialize(row).map_err(|e| Error::Run(format!("{}: {e}", self.path.display())))
    }
    fn close(self: Box<Self>) -> Result<()> {
        let file = self.writer.into_inner().map_err(|e| Error::Run(format!("{}: {e}", self.path.display())))?;
        file.commit()
    }
}
