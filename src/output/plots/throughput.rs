//! Cluster throughput over time (tokens per second) and requests queued and
//! running over time, from `series.csv`.
//!
//! Three panels, each with its own y axis: prompt + output tokens/s, output
//! tokens/s alone (about 100x smaller in prompt-heavy traffic, so on a shared axis
//! it would sit flat at zero), and requests queued and running.

use super::draw::{self, Chart, DrawResult};
use super::legend::{self, Entry, Mark};
use super::style::{self, TimeUnit};
use crate::error::Result;
use crate::output::records::SeriesRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Draws `throughput.png` / `.svg` into `out_dir` from the per-bucket `series`.
pub fn throughput(out_dir: &Path, series: &[SeriesRow]) -> Result<Vec<PathBuf>> {
    let mut rows: Vec<&SeriesRow> =
        series.iter().filter(|r| r.t_s.is_finite() && r.bucket_s.is_finite() && r.bucket_s > 0.0).collect();
    rows.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    draw::write_chart(out_dir, &Throughput { rows })
}

struct Throughput<'a> {
    rows: Vec<&'a SeriesRow>,
}

const OUTPUT: RGBColor = style::PALETTE[0];
const TOTAL: RGBColor = style::PALETTE[1];
const QUEUED: RGBColor = style::PALETTE[3];
const RUNNING: RGBColor = style::PALETTE[2];

impl Chart for Throughput<'_> {
    fn name(&self) -> &str {
        "throughput"
    }

    fn size(&self) -> (u32, u32) {
        (style::WIDTH, 1200)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = draw::titled(root, "Throughput and queue over time")?;
        let (w, _) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        let (Some(first), Some(last)) = (self.rows.first(), self.rows.last()) else {
            return draw::no_data(&plot, "series.csv has no rows");
        };
        let (t0, t1) = (first.t_s, last.t_s + last.bucket_s);
        let unit = TimeUnit::for_span(t1 - t0);
        let x = |r: &SeriesRow| (r.t_s + r.bucket_s / 2.0) * unit.per_s;
        let x_desc = format!("time ({})", unit.symbol);
        let panels = plot.split_evenly((3, 1));
        let sides = side.split_evenly((3, 1));
        let out = |r: &SeriesRow| r.output_tokens as f64 / r.bucket_s;
        let total = |r: &SeriesRow| (r.output_tokens + r.prompt_tokens) as f64 / r.bucket_s;
        let bucket = format!("per {} s bucket", style::short(first.bucket_s));
        for (i, (rate, label, color)) in [
            (&total as &dyn Fn(&SeriesRow) -> f64, "prompt + output tokens/s", TOTAL),
            (&out, "output tokens/s", OUTPUT),
        ]
        .into_iter()
        .enumerate()
        {
            let top = self.rows.iter().map(|r| rate(r)).fold(0.0, f64::max);
            let mut c =
                draw::axes(&panels[i], t0 * unit.per_s..t1 * unit.per_s, 0.0..(top * 1.1).max(1.0), &x_desc, label)?;
            c.draw_series(LineSeries::new(self.rows.iter().map(|r| (x(r), rate(r))), color.stroke_width(2)))?;
            legend::draw(
                &sides[i],
                20,
                "Throughput",
                &[Entry::new(label, color, Mark::Line), Entry::new(bucket.clone(), style::MUTED, Mark::Note)],
            )?;
        }
        let (lower, side_low) = (&panels[2], &sides[2]);

        let top = self.rows.iter().map(|r| r.queued.max(r.running)).max().unwrap_or(0) as f64;
        let mut c =
            draw::axes(lower, t0 * unit.per_s..t1 * unit.per_s, 0.0..(top * 1.1).max(1.0), &x_desc, "requests")?;
        let at_end = |r: &SeriesRow| (r.t_s + r.bucket_s) * unit.per_s;
        c.draw_series(LineSeries::new(
            self.rows.iter().map(|r| (at_end(r), r.running as f64)),
            RUNNING.stroke_width(2),
        ))?;
        c.draw_series(LineSeries::new(self.rows.iter().map(|r| (at_end(r), r.queued as f64)), QUEUED.stroke_width(2)))?;
        legend::draw(
            side_low,
            20,
            "Requests (at bucket end)",
            &[Entry::new("running", RUNNING, Mark::Line), Entry::new("queued (waiting)", QUEUED, Mark::Line)],
        )
    }
}
