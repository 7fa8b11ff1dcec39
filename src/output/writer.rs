//! Writes a finished run's files into its results folder, each atomically.

use super::files::{write_atomic, AtomicFile};
use crate::error::{Error, Result};
use crate::metrics::report::Report;
use serde::Serialize;
use std::path::Path;

/// Wall-clock figures of a run: they vary between runs, so they live apart from
/// summary.json, which must stay byte-identical for the same scenario and seed.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// clustersim version.
    pub version: String,
    /// Wall time of the simulation, s.
    pub wall_s: f64,
    /// Events handled.
    pub events: u64,
    /// Events per wall second.
    pub events_per_s: f64,
    /// Requests finished per wall second.
    pub requests_per_s: f64,
    /// Peak resident memory of the process, MiB (Linux only; 0 elsewhere).
    pub peak_rss_mib: f64,
}

/// Peak resident set size of this process in MiB, from /proc (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Serializes `value` as pretty JSON into `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Run(format!("{}: {e}", path.display())))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes rows as CSV with a header into `path`.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv::Writer::from_writer(AtomicFile::create(path)?);
    for r in rows {
        w.serialize(r).map_err(|e| Error::Run(format!("{}: {e}", path.display())))?;
    }
    let file = w.into_inner().map_err(|e| Error::Run(format!("{}: {e}", path.display())))?;
    file.commit()
}

/// Writes summary.json, gpus.csv, timeline.csv, utilization.csv and series.csv.
pub fn write_report(dir: &Path, report: &Report) -> Result<()> {
    write_json(&dir.join("summary.json"), &report.summary)?;
    write_csv(&dir.join("gpus.csv"), &report.gpus)?;
    write_csv(&dir.join("timeline.csv"), &report.timeline)?;
    write_csv(&dir.join("utilization.csv"), &report.utilization)?;
    write_csv(&dir.join("series.csv"), &report.series)
}
