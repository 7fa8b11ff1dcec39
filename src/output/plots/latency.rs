//! Latency distributions (TTFT, TPOT, end-to-end): a histogram and a CDF side by
//! side, with p50/p90/p99 marked and the scenario's requirement drawn when it has one.

use super::draw::{self, Chart, DrawResult};
use super::legend::{self, Entry, Mark};
use super::stats;
use super::style::{self, TimeUnit};
use crate::error::Result;
use crate::output::records::RequestRow;
use crate::scenario::types::Requirements;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Which latency a chart shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyMetric {
    /// Time to first token (`ttft.png`).
    Ttft,
    /// Time per output token after the first (`tpot.png`); requests with one output
    /// token have none and are left out.
    Tpot,
    /// End-to-end latency (`e2e.png`).
    E2e,
}

impl LatencyMetric {
    /// File stem.
    pub fn name(self) -> &'static str {
        match self {
            LatencyMetric::Ttft => "ttft",
            LatencyMetric::Tpot => "tpot",
            LatencyMetric::E2e => "e2e",
        }
    }

    fn long_name(self) -> &'static str {
        match self {
            LatencyMetric::Ttft => "Time to first token (TTFT)",
            LatencyMetric::Tpot => "Time per output token (TPOT)",
            LatencyMetric::E2e => "End-to-end latency",
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            LatencyMetric::Ttft => "TTFT",
            LatencyMetric::Tpot => "TPOT",
            LatencyMetric::E2e => "e2e latency",
        }
    }

    /// The value of one request, if it has one (finite, not negative).
    pub fn value(self, r: &RequestRow) -> Option<f64> {
        let v = match self {
            LatencyMetric::Ttft => r.ttft_s,
            LatencyMetric::Tpot if r.output_tokens > 1 => r.tpot_s,
            LatencyMetric::Tpot => return None,
            LatencyMetric::E2e => r.e2e_s,
        };
        (v.is_finite() && v >= 0.0 && r.output_tokens > 0).then_some(v)
    }

    /// The requirements on this metric: (label, limit in s).
    pub fn requirements(self, req: Option<&Requirements>) -> Vec<(&'static str, f64)> {
        let Some(r) = req else { return Vec::new() };
        let all = match self {
            LatencyMetric::Ttft => vec![("p50", r.ttft_p50_s), ("p99", r.ttft_p99_s)],
            LatencyMetric::Tpot => vec![("p99", r.tpot_p99_s)],
            LatencyMetric::E2e => vec![],
        };
        all.into_iter().filter_map(|(l, v)| v.filter(|v| v.is_finite()).map(|v| (l, v))).collect()
    }
}

/// Draws `<metric>.png` / `.svg` into `out_dir` from the requests' values.
pub fn latency(
    out_dir: &Path,
    metric: LatencyMetric,
    requests: &[RequestRow],
    req: Option<&Requirements>,
) -> Result<Vec<PathBuf>> {
    let mut values: Vec<f64> = requests.iter().filter_map(|r| metric.value(r)).collect();
    values.sort_by(f64::total_cmp);
    let limits = metric.requirements(req);
    draw::write_chart(out_dir, &Latency { metric, values, limits })
}

struct Latency {
    metric: LatencyMetric,
    values: Vec<f64>,
    limits: Vec<(&'static str, f64)>,
}

const BINS: usize = 60;
const P_MARKS: [(&str, f64, RGBColor); 3] = [
    ("p50", 0.50, RGBColor(0x2C, 0xA0, 0x2C)),
    ("p90", 0.90, RGBColor(0xE0, 0x8A, 0x00)),
    ("p99", 0.99, RGBColor(0xD6, 0x27, 0x28)),
];
const BAR: RGBColor = RGBColor(0x9D, 0xB6, 0xD8);
const LIMIT: RGBColor = RGBColor(0, 0, 0);

impl Chart for Latency {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn size(&self) -> (u32, u32) {
        (style::WIDTH, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let title = format!("{} of {} requests", self.metric.long_name(), self.values.len());
        let body = draw::titled(root, &title)?;
        let (w, _) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        let (Some(&lo), Some(&hi)) = (self.values.first(), self.values.last()) else {
            return draw::no_data(&plot, "no request has this latency");
        };
        let top = self.limits.iter().map(|l| l.1).fold(hi, f64::max);
        let top = if top > 0.0 { top * 1.04 } else { 1.0 };
        let unit = TimeUnit::for_span(top);
        let u = |v: f64| v * unit.per_s;
        let marks: Vec<(String, f64, RGBColor)> = P_MARKS
            .iter()
            .filter_map(|&(l, q, c)| stats::quantile(&self.values, q).map(|v| (l.to_string(), v, c)))
            .collect();
        let x_desc = format!("{} ({})", self.metric.short_name(), unit.symbol);
        let (left, right) = plot.split_horizontally(plot.dim_in_pixel().0 / 2);

        // Histogram.
        let counts = stats::histogram(&self.values, lo.min(0.0), top, BINS);
        let ymax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.08;
        let mut hist = draw::axes(&left, u(lo.min(0.0))..u(top), 0.0..ymax, &x_desc, "requests per bin")?;
        let bw = (top - lo.min(0.0)) / BINS as f64;
        hist.draw_series(counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| {
            let a = lo.min(0.0) + i as f64 * bw;
            Rectangle::new([(u(a), 0.0), (u(a + bw), c as f64)], BAR.filled())
        }))?;
        for (_, v, c) in &marks {
            hist.draw_series(DashedLineSeries::new([(u(*v), 0.0), (u(*v), ymax)], 8, 5, c.stroke_width(2)))?;
        }
        for (_, v) in &self.limits {
            hist.draw_series(LineSeries::new([(u(*v), 0.0), (u(*v), ymax)], LIMIT.stroke_width(3)))?;
        }

        // CDF.
        let mut cdf = draw::axes(&right, u(lo.min(0.0))..u(top), 0.0..100.0, &x_desc, "requests at or below (%)")?;
        let pts = stats::cdf_points(&self.values, 2000);
        cdf.draw_series(LineSeries::new(
            pts.iter().map(|&(v, f)| (u(v), f * 100.0)),
            style::PALETTE[0].stroke_width(2),
        ))?;
        for (_, v, c) in &marks {
            cdf.draw_series(DashedLineSeries::new([(u(*v), 0.0), (u(*v), 100.0)], 8, 5, c.stroke_width(2)))?;
        }
        for (_, v) in &self.limits {
            cdf.draw_series(LineSeries::new([(u(*v), 0.0), (u(*v), 100.0)], LIMIT.stroke_width(3)))?;
        }

        let fmt = |v: f64| format!("{} {}", style::short(u(v)), unit.symbol);
        let mut entries = vec![Entry::new("requests", BAR, Mark::Box)];
        entries.extend(marks.iter().map(|(l, v, c)| Entry::new(format!("{l} = {}", fmt(*v)), *c, Mark::Dashed)));
        entries.push(Entry::new(format!("max = {}", fmt(hi)), style::MUTED, Mark::Note));
        entries.extend(
            self.limits.iter().map(|(l, v)| Entry::new(format!("requirement: {l} ≤ {}", fmt(*v)), LIMIT, Mark::Line)),
        );
        legend::draw(&side, 20, self.metric.short_name(), &entries)
    }
}
