//! Writing one chart as PNG and SVG, atomically.
//!
//! A chart is drawn by a [`Chart`] implementation once per backend. The PNG goes to
//! a temporary name in the target folder (ending in `.png`, which is how the bitmap
//! backend picks its encoder) and is renamed into place; the SVG is drawn into a
//! string and written with [`write_atomic`].

use super::style;
use crate::error::{Error, Result};
use crate::output::files::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Result of drawing on a backend.
pub type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Something that can draw itself on any plotters backend.
pub trait Chart {
    /// File stem: `timeline` gives `timeline.png` and `timeline.svg`.
    fn name(&self) -> &str;
    /// Width and height, px.
    fn size(&self) -> (u32, u32);
    /// Draws on `root`, which is already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Writes `chart` into `dir` as `<name>.png` and `<name>.svg`; returns both paths.
pub fn write_chart<C: Chart>(dir: &Path, chart: &C) -> Result<Vec<PathBuf>> {
    style::ensure_fonts();
    let png = dir.join(format!("{}.png", chart.name()));
    let svg = dir.join(format!("{}.svg", chart.name()));
    write_png(&png, chart)?;
    write_svg(&svg, chart)?;
    Ok(vec![png, svg])
}

fn fail(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Run(format!("{}: drawing the chart failed: {e}", path.display()))
}

fn write_png<C: Chart>(path: &Path, chart: &C) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}.png", std::process::id()));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, chart.size()).into_drawing_area();
        root.fill(&WHITE)?;
        chart.draw(&root)?;
        root.present()
    })();
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn write_svg<C: Chart>(path: &Path, chart: &C) -> Result<()> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, chart.size()).into_drawing_area();
        let drawn = (|| {
            root.fill(&WHITE)?;
            chart.draw(&root)?;
            root.present()
        })();
        drawn.map_err(|e| fail(path, e))?;
    }
    write_atomic(path, text.as_bytes())
}

/// Draws `title` centred at the top of `root` (with a margin above it) and returns
/// the area below it.
pub fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.margin(14, 0, 0, 0).titled(title, style::title())
}

/// Draws "no data" in the middle of `area` (for charts whose input is empty).
pub fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, what: &str) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    let st = style::label().color(&style::MUTED).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    ));
    area.draw(&Text::new(format!("no data: {what}"), (w as i32 / 2, h as i32 / 2), st))
}

/// A chart with `f64` axes.
pub type Axes<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A chart with both axes drawn and described.
pub fn axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &str,
    y_desc: &str,
) -> std::result::Result<Axes<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    axes_with(area, x, y, x_desc, y_desc, true, 85)
}

/// Like [`axes`]; `x_ticks` false leaves the x axis without tick labels (the caller
/// draws category labels itself); `y_area` is the width left of the plot for the y
/// tick labels and description, px.
pub fn axes_with<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &str,
    y_desc: &str,
    x_ticks: bool,
    y_area: u32,
) -> std::result::Result<Axes<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart =
        ChartBuilder::on(area).margin(14).x_label_area_size(55).y_label_area_size(y_area).build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(style::GRID)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(style::label())
        .label_style(style::tick())
        .x_label_formatter(&|v| style::short(*v))
        .y_label_formatter(&|v| style::short(*v))
        .x_labels(if x_ticks { 10 } else { 0 })
        .draw()?;
    Ok(chart)
}

/// The axes of a chart with time across and one row per GPU: descriptions, styles and
/// short time labels; the caller draws the GPU labels (`y_labels(0)` here).
pub fn gpu_rows_over_time<'a, 'b, DB: DrawingBackend>(
    mesh: &mut plotters::chart::MeshStyle<
        'a,
        'b,
        plotters::coord::types::RangedCoordf64,
        plotters::coord::types::RangedCoordf64,
        DB,
    >,
    unit: &super::style::TimeUnit,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    mesh.x_desc(format!("time ({})", unit.symbol))
        .y_desc("GPU (node, GPU in node, stage)")
        .axis_desc_style(super::style::label())
        .label_style(super::style::tick())
        .x_label_formatter(&|v| super::style::short(*v))
        .y_labels(0)
        .draw()
}
