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
    rows: u64,
}

impl CsvRequestSink {
    /// A sink writing `path` (through a temporary file renamed into place at close).
    pub fn create(path: &Path) -> Result<Box<dyn RequestSink>> {
        let writer = csv::Writer::from_writer(AtomicFile::create(path)?);
        Ok(Box::new(CsvRequestSink { writer, path: path.to_path_buf(), rows: 0 }))
    }
}

impl RequestSink for CsvRequestSink {
    fn write(&mut self, row: &RequestRow) -> Result<()> {
        self.rows += 1;
        self.writer.serialize(row).map_err(|e| Error::Run(format!("{}: {e}", self.path.display())))
    }
    fn close(mut self: Box<Self>) -> Result<()> {
        if self.rows == 0 {
            // The csv writer writes the header with the first row; a run in which
            // every request was dropped still gets a file a reader can parse.
            let header = requests_csv_header()?;
            self.writer
                .write_record(header.split(','))
                .map_err(|e| Error::Run(format!("{}: {e}", self.path.display())))?;
        }
        let file = self.writer.into_inner().map_err(|e| Error::Run(format!("{}: {e}", self.path.display())))?;
        file.commit()
    }
}

/// The header line of `requests.csv`: the serde names of [`RequestRow`]'s fields,
/// taken from the csv writer itself so they cannot drift from the rows' columns.
pub fn requests_csv_header() -> Result<String> {
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
    let bad = |e: String| Error::Run(format!("cannot form the requests.csv header: {e}"));
    w.serialize(&row).map_err(|e| bad(e.to_string()))?;
    let bytes = w.into_inner().map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}
