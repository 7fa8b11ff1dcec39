//! Analysis on top of runs: the physical throughput limit ([`limit`]), assessing a
//! plan against its `[requirements]` ([`assess`]), comparing plans side by side
//! ([`compare`]), what-if sweeps over a grid of overrides ([`sweep`], read back by
//! [`sweep_table`]), splitting indexed work into shards for batch systems such
//! as Slurm and merging them back ([`shard`]), the validation set of published
//! measurements ([`validation`]), and the search for the cheapest plan that meets
//! the requirements ([`plan`]).

pub mod assess;
pub mod calibrate;
pub mod compare;
pub mod limit;
pub mod loso;
pub mod measured;
pub mod plan;
pub mod shard;
pub mod sweep;
pub mod sweep_table;
pub mod validation;

use crate::metrics::summary::Summary;
use serde_json::Value;

/// Fills `summary.cost` from `setup`'s economics (list price, power model) and the
/// run's own figures: the GPUs the plan uses, tokens moved, window, utilization.
pub fn price(setup: &crate::scenario::Setup, summary: &mut Summary) {
    let tokens = summary.throughput.total_tokens_per_s * summary.throughput.window_s;
    summary.cost = setup.economics.cost_summary(
        setup.plan_gpus(),
        tokens,
        summary.throughput.window_s,
        summary.gpu.utilization_mean,
    );
}

/// [`crate::serving::simulate`] with the cost figures filled in ([`price`]): what
/// every command that reports a summary runs.
pub fn simulate_priced(
    setup: &crate::scenario::Setup,
    opts: crate::serving::RunOptions,
) -> crate::Result<crate::serving::Outcome> {
    let mut outcome = crate::serving::simulate(setup, opts)?;
    price(setup, &mut outcome.report.summary);
    Ok(outcome)
}

/// Every numeric figure of `summary` as `(dotted name, value)`, e.g.
/// `("ttft_s.p99", 1.2)` or `("throughput.tokens_per_ms_per_gpu", 20.1)`, in
/// alphabetical order of the dotted names (the same set for every summary).
/// Strings and lists (scenario name, drop reasons) are left out.
pub fn flatten_summary(summary: &Summary) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(summary) {
        walk(&v, "", &mut out);
    }
    out
}

fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(&map[k], &name, out);
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x));
            }
        }
        _ => {}
    }
}

/// The dotted names [`flatten_summary`] returns, in order.
pub fn summary_metric_names() -> Vec<String> {
    flatten_summary(&Summary::default()).into_iter().map(|(k, _)| k).collect()
}

/// Every dotted name a summary can have: [`summary_metric_names`] and those of the
/// optional sections (`expert_load.*`, `prefix_cache.*`, `disaggregation.*`), in
/// [`metric_order`].
pub fn all_metric_names() -> Vec<String> {
    let full = Summary {
        expert_load: Some(Default::default()),
        prefix_cache: Some(Default::default()),
        disaggregation: Some(Default::default()),
        ..Default::default()
    };
    flatten_summary(&full).into_iter().map(|(k, _)| k).collect()
}

/// The order [`flatten_summary`] gives dotted names: component by component, each
/// alphabetical (so `a.b` and `a_b.c` fall as in the summary's own nesting).
pub fn metric_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('.').cmp(b.split('.'))
}

/// Formats a metric value for tables and CSV: integers without a fraction, other
/// values with Rust's shortest round-trip representation (deterministic).
pub fn format_value(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// One line of a chart: a legend label and its points.
pub use crate::output::plots::sweep::Series;

/// Draws `series` as lines into an SVG file at `path` with plotters' SVG backend.
/// Axis ranges cover every point. Kept small so it can move to the shared chart
/// style later.
pub fn line_chart_svg(
    path: &std::path::Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> crate::Result<()> {
    use plotters::prelude::*;
    // The embedded DejaVu font measures the text; no system font is needed.
    crate::output::plots::style::ensure_fonts();
    let fail = |e: String| crate::Error::Run(format!("{}: cannot draw the chart: {e}", path.display()));
    let pts = series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = |a: f64, b: f64| if b > a { (b - a) * 0.05 } else { a.abs().max(1.0) * 0.05 };
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0.min(0.0) - py)..(y1 + py))
        .map_err(|e| fail(e.to_string()))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| fail(e.to_string()))?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| fail(e.to_string()))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    if series.len() > 1 || series.iter().any(|(l, _)| !l.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod chart_tests {
    #[test]
    fn font_and_chart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.svg");
        super::line_chart_svg(&p, "t", "x", "y", &[("a".into(), vec![(0.0, 1.0), (1.0, 2.0)])]).unwrap();
    }
}

#[cfg(test)]
mod metric_name_tests {
    use super::*;

    /// Every optional section of the summary is a figure column of sweeps and their
    /// shard merges (a section left out would be taken for a key column and moved to
    /// the end of a merged table, so a sharded sweep would differ from a local one).
    #[test]
    fn every_optional_section_is_a_metric_name() {
        let names = all_metric_names();
        for section in ["expert_load.", "prefix_cache.", "disaggregation."] {
            assert!(names.iter().any(|n| n.starts_with(section)), "{section} missing from {names:?}");
        }
        let json = serde_json::to_value(Summary::default()).expect("summary serializes");
        let everything = serde_json::to_value(Summary {
            expert_load: Some(Default::default()),
            prefix_cache: Some(Default::default()),
            disaggregation: Some(Default::default()),
            ..Default::default()
        })
        .expect("summary serializes");
        // The sections absent from a default summary are exactly the three above.
        let mut absent: Vec<&str> = everything
            .as_object()
            .expect("object")
            .keys()
            .filter(|k| !json.as_object().expect("object").contains_key(*k))
            .map(String::as_str)
            .collect();
        absent.sort_unstable();
        assert_eq!(absent, ["disaggregation", "expert_load", "prefix_cache"]);
    }
}
