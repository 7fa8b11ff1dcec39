//! Stacked bars, one per GPU, with GPU labels under the bars.

use super::axis;
use super::draw::{self, Axes};
use super::style;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One layer of a stacked bar chart: a value per GPU.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Legend text.
    pub label: String,
    /// Fill colour.
    pub color: RGBColor,
    /// One value per GPU, in the order of the labels.
    pub values: Vec<f64>,
}

/// Draws `layers` stacked bottom-up as one bar per GPU in `area`, y from 0 to
/// `y_max`, GPU labels (thinned so they do not overlap) under the bars; returns the
/// chart so the caller can draw lines over it. `root` is the whole canvas.
pub fn stacked<'a, DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &'a DrawingArea<DB, Shift>,
    gpu_labels: &[String],
    layers: &[Layer],
    y_max: f64,
    y_desc: &str,
) -> Result<Axes<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let n = gpu_labels.len().max(1);
    let mut chart =
        draw::axes_with(area, -0.5..n as f64 - 0.5, 0.0..y_max, "GPU (node, GPU in node, stage)", y_desc, false, 85)?;
    let half = if n > 64 { 0.45 } else { 0.38 };
    let mut base = vec![0.0; gpu_labels.len()];
    for layer in layers {
        let bars = layer.values.iter().zip(base.iter_mut()).enumerate().filter_map(|(i, (&v, b))| {
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
            let from = *b;
            *b += v;
            (v > 0.0).then(|| {
                let x = i as f64;
                Rectangle::new([(x - half, from), (x + half, from + v)], layer.color.filled())
            })
        });
        let bars: Vec<_> = bars.collect();
        chart.draw_series(bars)?;
    }
    let plot_w = chart.plotting_area().dim_in_pixel().0 as usize;
    let stride = style::label_stride(gpu_labels.len(), plot_w / 95);
    axis::below(root, gpu_labels, stride, |i| chart.backend_coord(&(i as f64, 0.0)))?;
    Ok(chart)
}
