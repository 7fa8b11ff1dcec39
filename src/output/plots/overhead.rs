//! Where each GPU's time went: stacked computing / communicating / waiting / idle
//! shares of wall time, and the overhead split by kind (TP, PP, EP; DP cluster-wide).

use super::bars::{self, Layer};
use super::draw::{self, Chart, DrawResult};
use super::legend::{self, Entry, Mark};
use super::style;
use crate::error::Result;
use crate::metrics::summary::{KindOverhead, Overhead};
use crate::output::records::GpuRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Draws `overhead.png` / `.svg` into `out_dir` from `gpus` (per GPU) and the
/// cluster-wide `summary` overhead (for the DP share and the totals in the legend).
/// `limit` is the scenario's `overhead_fraction_max`, drawn when given.
pub fn overhead(out_dir: &Path, gpus: &[GpuRow], summary: &Overhead, limit: Option<f64>) -> Result<Vec<PathBuf>> {
    let gpus = style::sorted_gpus(gpus);
    draw::write_chart(out_dir, &OverheadChart { labels: style::gpu_labels(&gpus), gpus, summary, limit })
}

/// Reads one figure of a GPU row.
type Pick = fn(&GpuRow) -> f64;

struct OverheadChart<'a> {
    gpus: Vec<GpuRow>,
    labels: Vec<String>,
    summary: &'a Overhead,
    limit: Option<f64>,
}

const KIND_COLORS: [RGBColor; 6] = [
    RGBColor(0xE0, 0x6C, 0x1A),
    RGBColor(0xF7, 0xC0, 0x8A),
    RGBColor(0xC8, 0x2A, 0x30),
    RGBColor(0xF0, 0xA0, 0xA3),
    RGBColor(0xB0, 0x30, 0x90),
    RGBColor(0xE4, 0xA8, 0xD6),
];

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part.is_finite() {
        100.0 * part / whole
    } else {
        0.0
    }
}

impl OverheadChart<'_> {
    fn state_layers(&self) -> Vec<Layer> {
        let names = ["computing", "communicating (exposed)", "waiting for peers", "idle"];
        let pick: [Pick; 4] = [|g| g.compute_s, |g| g.communicate_s, |g| g.wait_s, |g| g.idle_s];
        let wall: Vec<f64> = self.gpus.iter().map(|g| g.compute_s + g.communicate_s + g.wait_s + g.idle_s).collect();
        (0..4)
            .map(|k| Layer {
                label: names[k].to_string(),
                color: style::STATE_COLORS[k],
                values: self.gpus.iter().zip(&wall).map(|(g, &w)| pct(pick[k](g), w)).collect(),
            })
            .collect()
    }

    fn kind_layers(&self) -> Vec<Layer> {
        let s = &self.summary.by_kind;
        let cluster =
            |k: &KindOverhead, comm: bool| 100.0 * if comm { k.communication_fraction } else { k.wait_fraction };
        let kinds: [(&str, &KindOverhead, Pick, Pick); 3] = [
            ("TP", &s.tp, |g| g.tp_comm_s, |g| g.tp_wait_s),
            ("PP", &s.pp, |g| g.pp_comm_s, |g| g.pp_wait_s),
            ("EP", &s.ep, |g| g.ep_comm_s, |g| g.ep_wait_s),
        ];
        let busy: Vec<f64> = self.gpus.iter().map(|g| g.compute_s + g.communicate_s + g.wait_s).collect();
        let mut layers = Vec::new();
        for (i, (name, k, comm, wait)) in kinds.iter().enumerate() {
            for (j, (what, f)) in [("comm", comm), ("wait", wait)].into_iter().enumerate() {
                // A kind the plan does not use (zero everywhere) is left out of the legend.
                if cluster(k, j == 0) == 0.0 && self.gpus.iter().all(|g| f(g) == 0.0) {
                    continue;
                }
                layers.push(Layer {
                    label: format!("{name} {what} (cluster {} %)", style::short(cluster(k, j == 0))),
                    color: KIND_COLORS[2 * i + j],
                    values: self.gpus.iter().zip(&busy).map(|(g, &b)| pct(f(g), b)).collect(),
                });
            }
        }
        layers
    }
}

impl Chart for OverheadChart<'_> {
    fn name(&self) -> &str {
        "overhead"
    }

    fn size(&self) -> (u32, u32) {
        (style::WIDTH, 1000)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let title = format!(
            "Where GPU time goes ({} GPUs; cluster overhead {} % of busy time)",
            self.gpus.len(),
            style::short(100.0 * self.summary.fraction)
        );
        let body = draw::titled(root, &title)?;
        let (w, h) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        if self.gpus.is_empty() {
            return draw::no_data(&plot, "gpus.csv has no rows");
        }
        let (upper, lower) = plot.split_vertically(h / 2);
        let (side_up, side_low) = side.split_vertically(h / 2);
        let states = self.state_layers();
        bars::stacked(root, &upper, &self.labels, &states, 100.0, "share of wall time (%)")?;
        let kinds = self.kind_layers();
        let top = (0..self.gpus.len()).map(|i| kinds.iter().map(|l| l.values[i]).sum::<f64>()).fold(0.0, f64::max);
        let limit = self.limit.filter(|l| l.is_finite()).map(|l| l * 100.0);
        let y_max = (top.max(limit.unwrap_or(0.0)) * 1.15).max(1.0);
        let mut chart = bars::stacked(root, &lower, &self.labels, &kinds, y_max, "overhead (% of busy time)")?;
        let n = self.gpus.len() as f64;
        if let Some(l) = limit {
            chart.draw_series(DashedLineSeries::new([(-0.5, l), (n - 0.5, l)], 10, 6, BLACK.stroke_width(2)))?;
        }
        let boxes =
            |ls: &[Layer]| ls.iter().map(|l| Entry::new(l.label.clone(), l.color, Mark::Box)).collect::<Vec<_>>();
        legend::draw(&side_up, 20, "GPU state", &boxes(&states))?;
        let mut entries = boxes(&kinds);
        let dp = &self.summary.by_kind.dp;
        entries.push(Entry::new(
            format!("DP (cluster only): {} %", style::short(100.0 * dp.fraction)),
            style::MUTED,
            Mark::Note,
        ));
        if let Some(l) = limit {
            entries.push(Entry::new(format!("requirement ≤ {} %", style::short(l)), BLACK, Mark::Dashed));
        }
        legend::draw(&side_low, 20, "Overhead by kind", &entries)
    }
}
