//! A sweep's chart: one metric against the first varied key, one line per
//! combination of the other keys, every point marked (a sweep has few points, and
//! a line alone hides where they are).
//!
//! When the swept values are log-spaced (all positive, each at least twice the
//! previous: 1, 2, 4, 8 or 0.05, 0.1, 0.25, ...), the x axis is logarithmic, so the
//! points spread evenly instead of crowding at the left; its ticks are then the
//! swept values themselves. When they are not numbers (a router, a preset), the
//! points sit at 0, 1, 2, ... and the ticks are the values' names.

use super::axis;
use super::draw::{self, Chart, DrawResult};
use super::legend::{self, Entry, Mark};
use super::style;
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One line of the chart: its legend label and its (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Draws `sweep_<metric with _ for .>.png` / `.svg` into `dir`: `metric` (the y
/// axis) against `x_key` for each of `series`. `categories`: the names of the x
/// values when they are not numbers (x = 0, 1, 2, ... in that order). Returns the
/// paths written.
pub fn sweep_chart(
    dir: &Path,
    metric: &str,
    x_key: &str,
    series: &[Series],
    categories: Option<&[String]>,
) -> Result<Vec<PathBuf>> {
    let series: Vec<Series> = series
        .iter()
        .map(|(l, pts)| (l.clone(), pts.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect()))
        .collect();
    let xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).collect();
    let chart = SweepChart {
        name: format!("sweep_{}", metric.replace('.', "_")),
        metric: metric.to_string(),
        x_key: x_key.to_string(),
        log_x: categories.is_none() && log_spaced(&xs),
        categories: categories.map(<[String]>::to_vec),
        series,
    };
    draw::write_chart(dir, &chart)
}

/// True when the distinct values of `xs`, sorted, are all positive and each is at
/// least twice the one before (a ratio of 2 or more, or 0.5 or less read the other
/// way). Fewer than two distinct values are not log-spaced.
pub fn log_spaced(xs: &[f64]) -> bool {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len() >= 2 && v[0] > 0.0 && v.windows(2).all(|w| w[1] >= 2.0 * w[0])
}

struct SweepChart {
    name: String,
    metric: String,
    x_key: String,
    log_x: bool,
    categories: Option<Vec<String>>,
    series: Vec<Series>,
}

impl SweepChart {
    /// Ticks drawn by hand (position on the axis, label): the swept values on a
    /// log axis, the names of non-numeric values; `None` for ordinary ticks.
    fn ticks(&self) -> Option<Vec<(f64, String)>> {
        if let Some(names) = &self.categories {
            return Some(names.iter().enumerate().map(|(i, n)| (i as f64, n.clone())).collect());
        }
        if !self.log_x {
            return None;
        }
        let mut values: Vec<f64> = self.series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        Some(values.iter().map(|v| (v.log10(), style::short(*v))).collect())
    }

    /// Where a value sits on the x axis: its log10 on a log axis.
    fn at(&self, x: f64) -> f64 {
        if self.log_x {
            x.log10()
        } else {
            x
        }
    }
}

/// Marker radius, px.
const MARKER_PX: i32 = 5;

impl Chart for SweepChart {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        (style::WIDTH, 800)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = draw::titled(root, &format!("{} against {}", self.metric, self.x_key))?;
        let (w, _) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        let pts = || self.series.iter().flat_map(|(_, p)| p.iter());
        let (Some(x0), Some(x1)) =
            (pts().map(|(x, _)| self.at(*x)).reduce(f64::min), pts().map(|(x, _)| self.at(*x)).reduce(f64::max))
        else {
            return draw::no_data(&plot, "no point of the sweep has this figure");
        };
        let y1 = pts().map(|(_, y)| *y).fold(0.0, f64::max);
        let y0 = pts().map(|(_, y)| *y).fold(0.0, f64::min);
        let pad = |a: f64, b: f64| if b > a { (b - a) * 0.05 } else { a.abs().max(1.0) * 0.05 };
        let x_desc = if self.log_x { format!("{} (log scale)", self.x_key) } else { self.x_key.clone() };
        let (px, py) = (pad(x0, x1), pad(y0, y1));
        let range_x = (x0 - px)..(x1 + px);
        let ticks = self.ticks();
        let y_range = (y0 - py)..(y1 + py);
        let mut chart = draw::axes_with(&plot, range_x, y_range, &x_desc, &self.metric, ticks.is_none(), 85)?;
        let mut entries = Vec::new();
        for (i, (label, points)) in self.series.iter().enumerate() {
            let color = style::PALETTE[i % style::PALETTE.len()];
            let at: Vec<(f64, f64)> = points.iter().map(|(x, y)| (self.at(*x), *y)).collect();
            chart.draw_series(LineSeries::new(at.iter().copied(), color.stroke_width(2)))?;
            chart.draw_series(at.iter().map(|p| Circle::new(*p, MARKER_PX, color.filled())))?;
            entries.push(Entry::new(
                if label.is_empty() { self.metric.clone() } else { label.clone() },
                color,
                Mark::Line,
            ));
        }
        if let Some(ticks) = ticks {
            let labels: Vec<String> = ticks.iter().map(|(_, l)| l.clone()).collect();
            let stride = style::label_stride(labels.len(), chart.plotting_area().dim_in_pixel().0 as usize / 80);
            axis::below(root, &labels, stride, |i| chart.backend_coord(&(ticks[i].0, y0 - py)))?;
        }
        legend::draw(&side, 20, "", &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::log_spaced;

    #[test]
    fn log_spacing_needs_positive_values_at_least_doubling() {
        assert!(log_spaced(&[1.0, 2.0, 4.0, 8.0]));
        // Order and repeats do not matter: 0.05, 0.1, 0.25, 0.5, 1, 2 (ratios 2, 2.5, 2, 2, 2).
        assert!(log_spaced(&[2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 1.0]));
        assert!(!log_spaced(&[2.0, 4.0, 6.0]), "6 / 4 = 1.5 < 2");
        assert!(!log_spaced(&[0.0, 1.0, 2.0]), "zero has no logarithm");
        assert!(!log_spaced(&[-4.0, -2.0]), "negative");
        assert!(!log_spaced(&[3.0, 3.0]), "one distinct value");
    }
}
