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
use std::path::{Path, PathBuf};

pub use crate::metrics::rows::{GpuRow, RequestRow, SeriesRow, TimelineRow, UtilizationRow};

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
