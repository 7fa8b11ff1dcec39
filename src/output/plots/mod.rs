//! Charts of a finished run, drawn from the files in its results folder.
//!
//! [`render_all`] reads a results folder ([`data::PlotData::load`]) and writes every
//! chart as PNG and SVG into `DIR/plots/`; the per-chart functions ([`timeline()`],
//! [`utilization()`], [`latency()`], [`overhead()`], [`memory()`], [`throughput()`])
//! take already loaded rows, so a run can draw from memory and `clustersim plot DIR`
//! can re-draw from files without simulating again.
//!
//! Text is drawn with an embedded font (DejaVu Sans, see [`style`]), so charts look
//! the same on every machine. Output is deterministic: same rows, same bytes.

mod axis;
mod bars;
pub mod data;
mod draw;
mod lanes;
pub mod latency;
mod legend;
pub mod memory;
pub mod overhead;
pub mod stats;
pub mod style;
pub mod sweep;
pub mod throughput;
pub mod timeline;
pub mod utilization;

pub use data::PlotData;
pub use latency::{latency, LatencyMetric};
pub use memory::memory;
pub use overhead::overhead;
pub use throughput::throughput;
pub use timeline::timeline;
pub use utilization::utilization;

use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How charts are drawn. Every field has a default ([`PlotOptions::default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// Time window of the timeline chart, s (start, end). Default `None`: the span
    /// of the timeline rows.
    pub window: Option<(f64, f64)>,
    /// Utilization is drawn as one line per GPU up to this many GPUs, as a heatmap
    /// above. Default 8.
    pub max_line_gpus: usize,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { window: None, max_line_gpus: 8 }
    }
}

/// The folder charts go to: `results_dir/plots`.
pub fn plots_dir(results_dir: &Path) -> PathBuf {
    results_dir.join("plots")
}

/// Reads the results folder `results_dir`, draws every chart into `results_dir/plots/`
/// (created if needed) as PNG and SVG, and returns the paths written, in a fixed order.
///
/// Errors: a missing or malformed input file (named, with the line for CSV), an
/// invalid window, or a file that cannot be written.
pub fn render_all(results_dir: &Path, opts: &PlotOptions) -> Result<Vec<PathBuf>, Error> {
    let data = PlotData::load(results_dir)?;
    render_data(&data, &plots_dir(results_dir), opts)
}

/// Draws every chart of already loaded `data` into `out_dir` (created if needed).
pub fn render_data(data: &PlotData, out_dir: &Path, opts: &PlotOptions) -> Result<Vec<PathBuf>, Error> {
    crate::output::files::ensure_dir(out_dir)?;
    let req = data.requirements.as_ref();
    type Job<'a> = Box<dyn Fn() -> Result<Vec<PathBuf>> + Send + Sync + 'a>;
    let jobs: Vec<Job> = vec![
        Box::new(|| timeline(out_dir, &data.gpus, &data.timeline, opts.window)),
        Box::new(|| utilization(out_dir, &data.gpus, &data.utilization, opts.max_line_gpus)),
        Box::new(|| latency(out_dir, LatencyMetric::Ttft, &data.requests, req)),
        Box::new(|| latency(out_dir, LatencyMetric::Tpot, &data.requests, req)),
        Box::new(|| latency(out_dir, LatencyMetric::E2e, &data.requests, req)),
        Box::new(|| overhead(out_dir, &data.gpus, &data.summary.overhead, req.and_then(|r| r.overhead_fraction_max))),
        Box::new(|| memory(out_dir, &data.gpus, req.and_then(|r| r.memory_fraction_max))),
        Box::new(|| throughput(out_dir, &data.series)),
    ];
    let written: Vec<Result<Vec<PathBuf>>> = jobs.par_iter().map(|job| job()).collect();
    let mut paths = Vec::new();
    for w in written {
        paths.extend(w?);
    }
    Ok(paths)
}
