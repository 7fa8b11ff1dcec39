//! Per-GPU compute utilization over time: one line per GPU for a few GPUs, a heatmap
//! (one row per GPU) for many, each with the cluster mean.

use super::axis;
use super::draw::{self, Chart, DrawResult};
use super::legend::{self, Entry, Mark};
use super::style::{self, TimeUnit};
use crate::error::Result;
use crate::output::records::{GpuRow, UtilizationRow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Draws `utilization.png` / `.svg` into `out_dir`: lines if there are at most
/// `max_line_gpus` GPUs, else a heatmap; the cluster mean either way.
pub fn utilization(
    out_dir: &Path,
    gpus: &[GpuRow],
    rows: &[UtilizationRow],
    max_line_gpus: usize,
) -> Result<Vec<PathBuf>> {
    let grid = Grid::new(gpus, rows);
    let heatmap = grid.labels.len() > max_line_gpus;
    draw::write_chart(out_dir, &Utilization { grid, heatmap })
}

/// Busy fractions on a (GPU, bucket) grid.
struct Grid {
    labels: Vec<String>,
    /// Bucket start times, s, ascending.
    times: Vec<f64>,
    /// Bucket length, s.
    bucket_s: f64,
    /// `busy[lane][bucket]`, NaN where there is no row.
    busy: Vec<Vec<f64>>,
}

impl Grid {
    fn new(gpus: &[GpuRow], rows: &[UtilizationRow]) -> Grid {
        let gpus = style::sorted_gpus(gpus);
        let mut lanes: BTreeMap<u32, String> = gpus.iter().map(|g| g.gpu).zip(style::gpu_labels(&gpus)).collect();
        for r in rows {
            lanes.entry(r.gpu).or_insert_with(|| format!("gpu {}", r.gpu));
        }
        let mut times: Vec<f64> = rows.iter().map(|r| r.t_s).filter(|t| t.is_finite()).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let bucket_s = times.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
        let bucket_s = if bucket_s.is_finite() && bucket_s > 0.0 { bucket_s } else { 1.0 };
        let lane_of: BTreeMap<u32, usize> = lanes.keys().enumerate().map(|(i, &g)| (g, i)).collect();
        let mut busy = vec![vec![f64::NAN; times.len()]; lanes.len()];
        for r in rows {
            if let (Some(&lane), Ok(b)) = (lane_of.get(&r.gpu), times.binary_search_by(|t| t.total_cmp(&r.t_s))) {
                busy[lane][b] = r.busy.clamp(0.0, 1.0);
            }
        }
        Grid { labels: lanes.into_values().collect(), times, bucket_s, busy }
    }

    fn span(&self) -> (f64, f64) {
        match (self.times.first(), self.times.last()) {
            (Some(&a), Some(&b)) => (a, b + self.bucket_s),
            _ => (0.0, 1.0),
        }
    }

    /// Mean over GPUs with a value, per bucket, at the bucket's middle.
    fn mean(&self) -> Vec<(f64, f64)> {
        (0..self.times.len())
            .filter_map(|b| {
                let v: Vec<f64> = self.busy.iter().map(|l| l[b]).filter(|v| !v.is_nan()).collect();
                (!v.is_empty()).then(|| (self.times[b] + self.bucket_s / 2.0, v.iter().sum::<f64>() / v.len() as f64))
            })
            .collect()
    }

    /// Column groups of at most `width` columns: (start s, end s, mean busy per lane).
    fn columns(&self, width: usize) -> Vec<(f64, f64, Vec<f64>)> {
        let k = self.times.len().div_ceil(width.max(1)).max(1);
        (0..self.times.len())
            .step_by(k)
            .map(|b0| {
                let b1 = (b0 + k).min(self.times.len());
                let vals = self
                    .busy
                    .iter()
                    .map(|l| {
                        let v: Vec<f64> = l[b0..b1].iter().copied().filter(|v| !v.is_nan()).collect();
                        if v.is_empty() {
                            f64::NAN
                        } else {
                            v.iter().sum::<f64>() / v.len() as f64
                        }
                    })
                    .collect();
                (self.times[b0], self.times[b1 - 1] + self.bucket_s, vals)
            })
            .collect()
    }
}

struct Utilization {
    grid: Grid,
    heatmap: bool,
}

const MEAN_PANEL_PX: u32 = 280;
/// Room for lane labels left of the heatmap, and the same for the mean panel so the
/// time axes line up.
const LANE_LABEL_AREA: u32 = 110;

impl Utilization {
    fn pitch(&self) -> u32 {
        (600 / self.grid.labels.len().max(1) as u32).clamp(6, 30)
    }
}

impl Chart for Utilization {
    fn name(&self) -> &str {
        "utilization"
    }

    fn size(&self) -> (u32, u32) {
        if self.heatmap {
            (style::WIDTH, 50 + self.grid.labels.len() as u32 * self.pitch() + 80 + MEAN_PANEL_PX)
        } else {
            (style::WIDTH, 800)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let g = &self.grid;
        let title =
            format!("Compute utilization per GPU ({} GPUs, {} s buckets)", g.labels.len(), style::short(g.bucket_s));
        let body = draw::titled(root, &title)?;
        let (w, h) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        if g.times.is_empty() {
            return draw::no_data(&plot, "utilization.csv has no rows");
        }
        let (t0, t1) = g.span();
        let unit = TimeUnit::for_span(t1 - t0);
        let mean = g.mean();
        let mean_entry = Entry::new("cluster mean", BLACK, Mark::Line);
        if !self.heatmap {
            let mut entries = Vec::new();
            let mut chart = time_chart(&plot, t0, t1, unit, "compute utilization (%)")?;
            for (i, (label, lane)) in g.labels.iter().zip(&g.busy).enumerate() {
                let c = style::PALETTE[i % style::PALETTE.len()];
                let pts =
                    g.times.iter().zip(lane).filter(|(_, v)| !v.is_nan()).map(|(&t, &v)| (t * unit.per_s, v * 100.0));
                chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))?;
                entries.push(Entry::new(label.clone(), c, Mark::Line));
            }
            chart.draw_series(LineSeries::new(
                mean.iter().map(|&(t, v)| (t * unit.per_s, v * 100.0)),
                BLACK.stroke_width(3),
            ))?;
            entries.push(mean_entry);
            return legend::draw(&side, 20, "GPU (node, GPU, stage)", &entries);
        }
        let (heat, lower) = plot.split_vertically(h.saturating_sub(MEAN_PANEL_PX));
        let n = g.labels.len();
        let mut chart = ChartBuilder::on(&heat)
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(LANE_LABEL_AREA)
            .build_cartesian_2d(t0 * unit.per_s..t1 * unit.per_s, 0.0..n as f64)?;
        super::draw::gpu_rows_over_time(chart.configure_mesh().disable_mesh(), &unit)?;
        let width = chart.plotting_area().dim_in_pixel().0 as usize;
        let cells = g.columns(width).into_iter().flat_map(|(a, b, vals)| {
            vals.into_iter().enumerate().filter(|(_, v)| !v.is_nan()).map(move |(lane, v)| {
                let y = (n - 1 - lane) as f64;
                Rectangle::new([(a * unit.per_s, y), (b * unit.per_s, y + 1.0)], style::viridis(v).filled())
            })
        });
        chart.draw_series(cells)?;
        let pitch = self.pitch() as usize;
        axis::left(root, &g.labels, 18usize.div_ceil(pitch), |i| {
            let (x, y) = chart.backend_coord(&(t0 * unit.per_s, (n - i) as f64 - 0.5));
            (x, y)
        })?;
        let mut mc = time_chart(&lower, t0, t1, unit, "mean (%)")?;
        mc.draw_series(LineSeries::new(mean.iter().map(|&(t, v)| (t * unit.per_s, v * 100.0)), BLACK.stroke_width(2)))?;
        colour_bar(&side)?;
        legend::draw(&side, 330, "", &[mean_entry])
    }
}

/// A time-by-percent chart with axes drawn.
fn time_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    t0: f64,
    t1: f64,
    unit: TimeUnit,
    y_desc: &str,
) -> std::result::Result<draw::Axes<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let x_desc = format!("time ({})", unit.symbol);
    draw::axes_with(area, t0 * unit.per_s..t1 * unit.per_s, 0.0..100.0, &x_desc, y_desc, true, LANE_LABEL_AREA)
}

/// The heatmap's colour scale, 0-100 % busy, in the legend column.
fn colour_bar<DB: DrawingBackend>(side: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    side.draw(&Text::new("busy (% of bucket)", (10, 20), style::label().color(&BLACK)))?;
    let (top, height) = (56, 240);
    for k in 0..height {
        let v = 1.0 - k as f64 / (height - 1) as f64;
        side.draw(&Rectangle::new([(14, top + k), (44, top + k + 1)], style::viridis(v).filled()))?;
    }
    for p in [0, 25, 50, 75, 100] {
        let y = top + (height - 1) * (100 - p) / 100;
        side.draw(&PathElement::new(vec![(44, y), (50, y)], BLACK))?;
        side.draw(&Text::new(format!("{p} %"), (56, y - 8), style::tick().color(&BLACK)))?;
    }
    Ok(())
}
