//! Loading a results folder into memory for charting.
//!
//! Every file is required; a missing one is an I/O error naming it, a malformed one
//! an input error naming it (and the line, for CSV and JSON).

use crate::error::{Error, InputError, Result};
use crate::metrics::summary::Summary;
use crate::output::records::{GpuRow, RequestRow, SeriesRow, TimelineRow, UtilizationRow};
use crate::scenario::types::Requirements;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Everything the charts draw from, as read from a results folder.
#[derive(Clone, Debug, Default)]
pub struct PlotData {
    /// `summary.json`.
    pub summary: Summary,
    /// `requests.csv`.
    pub requests: Vec<RequestRow>,
    /// `gpus.csv`.
    pub gpus: Vec<GpuRow>,
    /// `timeline.csv`.
    pub timeline: Vec<TimelineRow>,
    /// `utilization.csv`.
    pub utilization: Vec<UtilizationRow>,
    /// `series.csv`.
    pub series: Vec<SeriesRow>,
    /// `[requirements]` of `scenario.toml`, if it has them.
    pub requirements: Option<Requirements>,
}

impl PlotData {
    /// Reads `summary.json`, `requests.csv`, `gpus.csv`, `timeline.csv`,
    /// `utilization.csv`, `series.csv` and `scenario.toml` from `dir`.
    pub fn load(dir: &Path) -> Result<PlotData> {
        let scenario_path = dir.join("scenario.toml");
        let text = read_text(&scenario_path)?;
        let scenario = crate::scenario::parse(&text, &scenario_path, &[])?;
        Ok(PlotData {
            summary: read_json(&dir.join("summary.json"))?,
            requests: read_csv(&dir.join("requests.csv"))?,
            gpus: read_csv(&dir.join("gpus.csv"))?,
            timeline: read_csv(&dir.join("timeline.csv"))?,
            utilization: read_csv(&dir.join("utilization.csv"))?,
            series: read_csv(&dir.join("series.csv"))?,
            requirements: scenario.requirements,
        })
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Reads a JSON file into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Input(InputError::line(path, e.line(), e.to_string())))
}

/// Reads a CSV file with a header row into rows of `T`.
pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    let mut rows = Vec::new();
    for row in reader.deserialize() {
        rows.push(row.map_err(|e| csv_error(path, &e))?);
    }
    Ok(rows)
}

fn csv_error(path: &Path, e: &csv::Error) -> Error {
    if let csv::ErrorKind::Io(io) = e.kind() {
        return Error::io(path, std::io::Error::new(io.kind(), io.to_string()));
    }
    let line = e.position().map(|p| p.line() as usize);
    let message = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(f) => format!("field {}: {}", f + 1, err.kind()),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    };
    match line {
        Some(l) => Error::Input(InputError::line(path, l, message)),
        None => Error::Input(InputError::file(path, message)),
    }
}
