//! Memory per GPU: weights, activation workspace and reserved KV cache stacked
//! against capacity, with the peak KV cache actually used marked.

use super::bars::{self, Layer};
use super::draw::{self, Chart, DrawResult};
use super::legend::{self, Entry, Mark};
use super::style;
use crate::error::Result;
use crate::output::records::GpuRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Draws `memory.png` / `.svg` into `out_dir`. `limit` is the scenario's
/// `memory_fraction_max` (of capacity), drawn when given.
pub fn memory(out_dir: &Path, gpus: &[GpuRow], limit: Option<f64>) -> Result<Vec<PathBuf>> {
    let gpus = style::sorted_gpus(gpus);
    draw::write_chart(out_dir, &Memory { labels: style::gpu_labels(&gpus), gpus, limit })
}

struct Memory {
    gpus: Vec<GpuRow>,
    labels: Vec<String>,
    limit: Option<f64>,
}

const CAPACITY: RGBColor = RGBColor(0xC0, 0x1C, 0x28);
const LIMIT: RGBColor = RGBColor(0, 0, 0);

impl Chart for Memory {
    fn name(&self) -> &str {
        "memory"
    }

    fn size(&self) -> (u32, u32) {
        (style::WIDTH, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = draw::titled(root, &format!("Memory per GPU ({} GPUs)", self.gpus.len()))?;
        let (w, _) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w.saturating_sub(style::LEGEND_W));
        if self.gpus.is_empty() {
            return draw::no_data(&plot, "gpus.csv has no rows");
        }
        let col = |f: fn(&GpuRow) -> f64| self.gpus.iter().map(f).collect::<Vec<f64>>();
        let layers = [
            Layer { label: "weights".into(), color: style::PALETTE[0], values: col(|g| g.weights_gib) },
            Layer { label: "activations".into(), color: style::PALETTE[4], values: col(|g| g.activations_gib) },
            Layer { label: "KV cache reserved".into(), color: style::PALETTE[2], values: col(|g| g.kv_gib) },
        ];
        let finite = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
        let stack = |g: &GpuRow| finite(g.weights_gib) + finite(g.activations_gib) + finite(g.kv_gib);
        let top = self.gpus.iter().map(|g| stack(g).max(finite(g.capacity_gib))).fold(0.0, f64::max);
        let y_max = (top * 1.12).max(1.0);
        let mut chart = bars::stacked(root, &plot, &self.labels, &layers, y_max, "memory (GiB = 2^30 bytes)")?;
        let half = 0.45;
        chart.draw_series(self.gpus.iter().enumerate().map(|(i, g)| {
            let c = finite(g.capacity_gib);
            PathElement::new(vec![(i as f64 - half, c), (i as f64 + half, c)], CAPACITY.stroke_width(3))
        }))?;
        chart.draw_series(self.gpus.iter().enumerate().map(|(i, g)| {
            let y = finite(g.weights_gib) + finite(g.activations_gib) + finite(g.kv_peak_gib);
            PathElement::new(vec![(i as f64 - half * 0.8, y), (i as f64 + half * 0.8, y)], BLACK.stroke_width(2))
        }))?;
        let limit = self.limit.filter(|l| l.is_finite());
        if let Some(f) = limit {
            for (i, g) in self.gpus.iter().enumerate() {
                let y = f * finite(g.capacity_gib);
                let seg = [(i as f64 - 0.5, y), (i as f64 + 0.5, y)];
                chart.draw_series(DashedLineSeries::new(seg, 6, 4, LIMIT.stroke_width(2)))?;
            }
        }
        let mut entries: Vec<Entry> = layers.iter().map(|l| Entry::new(l.label.clone(), l.color, Mark::Box)).collect();
        entries.push(Entry::new("KV cache peak used (top)", BLACK, Mark::Line));
        entries.push(Entry::new("capacity", CAPACITY, Mark::Line));
        if let Some(f) = limit {
            entries.push(Entry::new(
                format!("requirement ≤ {} % of capacity", style::short(f * 100.0)),
                LIMIT,
                Mark::Dashed,
            ));
        }
        if let Some(g) = self.gpus.first() {
            entries.push(Entry::new(
                format!("capacity {} GiB", style::short(g.capacity_gib)),
                style::MUTED,
                Mark::Note,
            ));
        }
        legend::draw(&side, 20, "Memory", &entries)
    }
}
