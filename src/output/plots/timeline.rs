//! The timeline: a Gantt chart with one lane per GPU, coloured by GPU state and by
//! what ran, over a time window.

use super::axis;
use super::draw::{self, Chart, DrawResult};
use super::lanes::{Binner, Category};
use super::legend::{self, Entry, Mark};
use super::style::{self, TimeUnit};
use crate::error::{Error, Result};
use crate::output::records::{GpuRow, TimelineRow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Draws `timeline.png` / `timeline.svg` into `out_dir`: one lane per GPU of `gpus`
/// (plus any GPU that only appears in `spans`), over `window` (s; default: the span
/// of `spans`). Errors on a window that is not a finite, increasing pair.
pub fn timeline(
    out_dir: &Path,
    gpus: &[GpuRow],
    spans: &[TimelineRow],
    window: Option<(f64, f64)>,
) -> Result<Vec<PathBuf>> {
    let window = match window {
        Some((a, b)) if a.is_finite() && b.is_finite() && b > a => (a, b),
        Some((a, b)) => return Err(Error::Usage(format!("timeline window {a}..{b} s: need start < end, both finite"))),
        None => data_span(spans),
    };
    let gpus = style::sorted_gpus(gpus);
    let mut lanes: BTreeMap<u32, String> = gpus.iter().map(|g| g.gpu).zip(style::gpu_labels(&gpus)).collect();
    for s in spans {
        lanes.entry(s.gpu).or_insert_with(|| format!("gpu {}", s.gpu));
    }
    draw::write_chart(out_dir, &Timeline { lanes, spans, window })
}

fn data_span(spans: &[TimelineRow]) -> (f64, f64) {
    let lo = spans.iter().map(|s| s.start_s).filter(|v| v.is_finite()).fold(f64::INFINITY, f64::min);
    let hi = spans.iter().map(|s| s.end_s).filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo, lo + 1.0)
    } else {
        (0.0, 1.0)
    }
}

struct Timeline<'a> {
    lanes: BTreeMap<u32, String>,
    spans: &'a [TimelineRow],
    window: (f64, f64),
}

const TOP_BOTTOM_PX: u32 = 150;

impl Timeline<'_> {
    fn pitch(&self) -> u32 {
        (760 / self.lanes.len().max(1) as u32).clamp(16, 40)
    }
}

impl Chart for Timeline<'_> {
    fn name(&self) -> &str {
        "timeline"
    }

    fn size(&self) -> (u32, u32) {
        let n = self.lanes.len().max(1) as u32;
        (style::WIDTH, (n * self.pitch() + TOP_BOTTOM_PX).max(420))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (t0, t1) = self.window;
        let unit = TimeUnit::for_span(t1 - t0);
        let title = format!(
            "GPU timeline, {}–{} {} ({} GPUs)",
            style::short(t0 * unit.per_s),
            style::short(t1 * unit.per_s),
            unit.symbol,
            self.lanes.len()
        );
        let body = draw::titled(root, &title)?;
        let (w, _) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        let n = self.lanes.len();
        let labels: Vec<String> = self.lanes.values().cloned().collect();
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(55)
            .y_label_area_size(110)
            .build_cartesian_2d(t0 * unit.per_s..t1 * unit.per_s, 0.0..n.max(1) as f64)?;
        draw::gpu_rows_over_time(
            chart.configure_mesh().disable_y_mesh().light_line_style(TRANSPARENT).bold_line_style(style::GRID),
            &unit,
        )?;
        axis::left(root, &labels, style::label_stride(n, n), |i| {
            let (_, y) = chart.backend_coord(&(t0 * unit.per_s, (n - i) as f64 - 0.5));
            let (x, _) = chart.backend_coord(&(t0 * unit.per_s, 0.0));
            (x, y)
        })?;
        let width = chart.plotting_area().dim_in_pixel().0 as usize;
        let lane_of: BTreeMap<u32, usize> = self.lanes.keys().enumerate().map(|(i, &g)| (g, i)).collect();
        let mut binner = Binner::new(n, width, t0, t1);
        for s in self.spans {
            if let Some(&lane) = lane_of.get(&s.gpu) {
                binner.add(lane, s.start_s, s.end_s, Category::of(&s.state, &s.what));
            }
        }
        let px_s = (t1 - t0) / width.max(1) as f64;
        let x = |col: usize| (t0 + col as f64 * px_s) * unit.per_s;
        chart.draw_series(binner.runs().into_iter().map(|r| {
            let y = (n - 1 - r.lane) as f64;
            Rectangle::new([(x(r.col0), y + 0.12), (x(r.col1), y + 0.88)], r.cat.color().filled())
        }))?;
        let present = binner.present();
        if present.is_empty() {
            draw::no_data(&chart.plotting_area().strip_coord_spec(), "no timeline spans in this window")?;
        }
        let entries: Vec<Entry> = present.iter().map(|c| Entry::new(c.label(), c.color(), Mark::Box)).collect();
        legend::draw(&side, 20, "State: what ran", &entries)?;
        let pu = TimeUnit::for_span(px_s);
        let note = format!("one pixel column = {} {}", style::short(px_s * pu.per_s), pu.symbol);
        side.draw(&Text::new(
            note,
            (10, 20 + legend::ROW_PX * (entries.len() as i32 + 2)),
            style::tick().color(&style::MUTED),
        ))?;
        Ok(())
    }
}
