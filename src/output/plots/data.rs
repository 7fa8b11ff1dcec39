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

/// Most GPU rows a per-GPU chart draws: beyond this a chart would be taller than any
/// screen (and its bitmap several GB), so every k-th GPU is drawn.
pub const MAX_CHART_GPUS: usize = 512;

/// The GPUs the per-GPU charts show: those the plan uses (a cluster may declare
/// many more), and at most [`MAX_CHART_GPUS`] of them, evenly spaced.
pub fn chart_gpus(all: Vec<GpuRow>) -> Vec<GpuRow> {
    let used: Vec<GpuRow> = all.into_iter().filter(|g| g.replica >= 0).collect();
    let step = used.len().div_ceil(MAX_CHART_GPUS).max(1);
    used.into_iter().step_by(step).collect()
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
            gpus: chart_gpus(read_csv(&dir.join("gpus.csv"))?),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gpu: u32, replica: i64) -> GpuRow {
        GpuRow {
            gpu,
            node: 0,
            replica,
            stage: 0,
            tp_rank: 0,
            ep_rank: 0,
            compute_s: 0.0,
            communicate_s: 0.0,
            wait_s: 0.0,
            idle_s: 0.0,
            utilization: 0.0,
            overhead_fraction: 0.0,
            tp_comm_s: 0.0,
            tp_wait_s: 0.0,
            pp_comm_s: 0.0,
            pp_wait_s: 0.0,
            ep_comm_s: 0.0,
            ep_wait_s: 0.0,
            weights_gib: 0.0,
            kv_gib: 0.0,
            kv_peak_gib: 0.0,
            activations_gib: 0.0,
            capacity_gib: 80.0,
            flops: 0.0,
            comm_gb: 0.0,
            contention_s: 0.0,
        }
    }

    #[test]
    fn charts_show_the_plans_gpus_at_most_512() {
        // 131,072 GPUs declared, the plan uses 1: one row (this used to ask for a 10 GB
        // bitmap and abort). A plan of 2,000 GPUs: every 4th (ceil(2000 / 512) = 4), 500 rows.
        let mut rows: Vec<GpuRow> = (0..131_072).map(|g| row(g, -1)).collect();
        rows[0].replica = 0;
        assert_eq!(chart_gpus(rows).len(), 1);
        let kept = chart_gpus((0..2_000).map(|g| row(g, 0)).collect());
        assert_eq!(kept.len(), 500);
        assert_eq!(kept[1].gpu, 4);
    }
}
