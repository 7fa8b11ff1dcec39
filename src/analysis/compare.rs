//! Comparing deployment plans side by side.
//!
//! What "the same workload" means: each scenario file runs its own `[workload]`
//! (and seed), so plans written for one traffic pattern compare as written. With
//! `--workload-from FILE`, every plan instead gets that file's `[workload]` (its
//! trace resolved against that file's folder) and its `scenario.seed`, so every
//! plan sees exactly the same request stream: same arrivals, same lengths.
//!
//! The plans run in parallel (rayon). Each plan's requests go to
//! `DIR/<label>/requests.csv` (and its summary to `DIR/<label>/summary.json`), from
//! which the overlaid TTFT CDF `DIR/ttft_cdf.svg` is drawn; the side-by-side table
//! is printed and written to `DIR/compare.csv`.

use super::{flatten_summary, format_value, line_chart_svg, Series};
use crate::error::{Error, Result};
use crate::metrics::summary::Summary;
use crate::output::records::CsvRequestSink;
use crate::output::{files, writer};
use crate::scenario::Setup;
use crate::serving::RunOptions;
use rayon::prelude::*;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One plan's run.
#[derive(Clone, Debug)]
pub struct PlanRun {
    /// Column label: the scenario name (suffixed -2, -3, ... when names repeat).
    pub label: String,
    /// The scenario file.
    pub file: PathBuf,
    /// `dp x pp x tp x ep`.
    pub layout: String,
    /// GPUs the plan uses.
    pub gpus: u32,
    /// The run's summary.
    pub summary: Summary,
    /// Every completed request's TTFT, s, sorted ascending.
    pub ttft_s: Vec<f64>,
}

/// GPU-hours per million (prompt + output) tokens: `gpus / (tokens/s x 3600) x 10^6`.
/// Infinite when nothing was produced.
pub fn gpu_hours_per_million_tokens(gpus: u32, total_tokens_per_s: f64) -> f64 {
    if total_tokens_per_s > 0.0 {
        gpus as f64 / (total_tokens_per_s * 3600.0) * 1e6
    } else {
        f64::INFINITY
    }
}

/// Gives every setup `donor`'s workload, trace and seed (see the module docs).
pub fn use_workload_of(setups: &mut [Setup], donor: &Setup) {
    for s in setups {
        s.workload = donor.workload.clone();
        s.trace_path = donor.trace_path.clone();
        s.seed = donor.seed;
    }
}

/// Unique column labels from scenario names.
pub fn labels(setups: &[Setup]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in setups {
        let mut l = s.name.clone();
        let mut i = 2;
        while out.contains(&l) {
            l = format!("{}-{i}", s.name);
            i += 1;
        }
        out.push(l);
    }
    out
}

/// Runs every plan (in parallel) writing each one's files under `dir/<label>/`.
pub fn run_plans(setups: &[Setup], dir: &Path) -> Result<Vec<PlanRun>> {
    let labels = labels(setups);
    setups
        .par_iter()
        .zip(labels.into_par_iter())
        .map(|(setup, label)| {
            let sub = dir.join(&label);
            files::ensure_dir(&sub)?;
            let csv = sub.join("requests.csv");
            let requests = Some(CsvRequestSink::create(&csv)?);
            let outcome = super::simulate_priced(setup, RunOptions { requests, ..Default::default() })?;
            writer::write_json(&sub.join("summary.json"), &outcome.report.summary)?;
            let p = &setup.parallel;
            Ok(PlanRun {
                label,
                file: setup.file.clone(),
                layout: format!("dp={} pp={} tp={} ep={}", p.dp, p.pp, p.tp, p.ep),
                gpus: setup.plan_gpus(),
                summary: outcome.report.summary,
                ttft_s: read_ttfts(&csv)?,
            })
        })
        .collect()
}

fn read_ttfts(path: &Path) -> Result<Vec<f64>> {
    let bad = |m: String| Error::Run(format!("{}: {m}", path.display()));
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let col = r
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .position(|h| h == "ttft_s")
        .ok_or_else(|| bad("no ttft_s column".into()))?;
    let mut v = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        if let Some(x) = rec.get(col).and_then(|t| t.parse::<f64>().ok()).filter(|x| x.is_finite()) {
            v.push(x);
        }
    }
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// The summary figures that decide between plans, in the order a reader weighs
/// them: throughput per GPU, latency (TTFT, TPOT), what the GPUs spend on
/// synchronization, how busy and how full they are, and whether requests were served.
pub const DECIDING_METRICS: [&str; 14] = [
    "throughput.tokens_per_ms_per_gpu",
    "throughput.output_tokens_per_ms_per_gpu",
    "ttft_s.p50",
    "ttft_s.p99",
    "tpot_s.p50",
    "tpot_s.p99",
    "overhead.fraction",
    "gpu.utilization_mean",
    "gpu.mfu",
    "memory.peak_fraction_max",
    "load_imbalance.cv",
    "throughput.total_tokens_per_s",
    "requests.completed",
    "requests.dropped",
];

/// Rows before the summary figures (plan, gpus, cost) plus [`DECIDING_METRICS`]:
/// what `compare` prints; the rest goes to compare.csv only.
pub const DECIDING_ROWS: usize = 3 + DECIDING_METRICS.len();

/// The side-by-side table: a header (`metric`, then one column per plan) and rows:
/// plan layout, GPUs, cost in GPU-hours per million tokens, the
/// [`DECIDING_METRICS`], then every other summary figure alphabetically.
/// `precise`: full round-trip precision (for CSV); otherwise 4 significant digits.
pub fn table(runs: &[PlanRun], precise: bool) -> (Vec<String>, Vec<Vec<String>>) {
    let fmt = |x: f64| if precise { format_value(x) } else { short_value(x) };
    let mut header = vec!["metric".to_string()];
    header.extend(runs.iter().map(|r| r.label.clone()));
    let mut rows = vec![
        row("plan", runs.iter().map(|r| r.layout.clone())),
        row("gpus", runs.iter().map(|r| r.gpus.to_string())),
        row(
            "cost_gpu_hours_per_million_tokens",
            runs.iter().map(|r| fmt(gpu_hours_per_million_tokens(r.gpus, r.summary.throughput.total_tokens_per_s))),
        ),
    ];
    let flat: Vec<Vec<(String, f64)>> = runs.iter().map(|r| flatten_summary(&r.summary)).collect();
    // Every figure any run has, matched by name: runs may differ in optional sections
    // (e.g. `prefix_cache` only where prefix caching is on); a run without one shows "".
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in flat.iter().flatten() {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let rank = |name: &str| DECIDING_METRICS.iter().position(|m| *m == name).unwrap_or(DECIDING_METRICS.len());
    // Stable: the deciding metrics in their order, then the rest as flattened (alphabetical).
    names.sort_by_key(|n| rank(n));
    for name in names {
        let cell = |f: &Vec<(String, f64)>| f.iter().find(|(n, _)| n == name).map(|(_, v)| fmt(*v)).unwrap_or_default();
        rows.push(row(name, flat.iter().map(cell)));
    }
    (header, rows)
}

/// `x` with about 4 significant digits (integers and large values without noise).
pub fn short_value(x: f64) -> String {
    if !x.is_finite() || x.fract() == 0.0 {
        return format_value(x);
    }
    if x.abs() >= 1000.0 {
        return format!("{x:.1}");
    }
    let decimals = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{x:.decimals$}")
}

fn row(name: &str, cells: impl Iterator<Item = String>) -> Vec<String> {
    std::iter::once(name.to_string()).chain(cells).collect()
}

/// The table as aligned text.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let mut o = String::new();
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        for (i, c) in r.iter().enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            if i == 0 {
                let _ = write!(o, "{c:<width$}");
            } else {
                let _ = write!(o, "  {c:>width$}");
            }
        }
        let _ = writeln!(o);
    }
    o
}

/// Writes the table as CSV, atomically.
pub fn write_table_csv(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    let mut w = csv::Writer::from_writer(files::AtomicFile::create(path)?);
    let io = |e: csv::Error| Error::Run(format!("{}: {e}", path.display()));
    w.write_record(header).map_err(io)?;
    for r in rows {
        w.write_record(r).map_err(io)?;
    }
    w.into_inner().map_err(|e| Error::Run(format!("{}: {e}", path.display())))?.commit()
}

/// The empirical TTFT CDF of each plan, overlaid, as an SVG.
pub fn ttft_cdf_svg(path: &Path, runs: &[PlanRun]) -> Result<()> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| {
            let n = r.ttft_s.len() as f64;
            let pts = r.ttft_s.iter().enumerate().map(|(i, &t)| (t, (i + 1) as f64 / n)).collect();
            (format!("{} ({} GPUs)", r.label, r.gpus), pts)
        })
        .collect();
    line_chart_svg(path, "TTFT CDF", "TTFT (s)", "fraction of requests", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deciding_metrics_come_first_and_all_exist() {
        let run = PlanRun {
            label: "a".into(),
            file: PathBuf::from("a.toml"),
            layout: "1x1x1x1".into(),
            gpus: 1,
            summary: Summary::default(),
            ttft_s: Vec::new(),
        };
        let (_, rows) = table(&[run], false);
        let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(&names[..3], ["plan", "gpus", "cost_gpu_hours_per_million_tokens"]);
        // Every deciding name is a real summary figure (a renamed field would drop out
        // of the ordering silently), in the listed order right after the first three.
        assert_eq!(&names[3..DECIDING_ROWS], DECIDING_METRICS);
        // The rest keep the flattened (alphabetical) order.
        let rest = &names[DECIDING_ROWS..];
        assert!(rest.windows(2).all(|w| w[0] < w[1]), "{rest:?}");
        assert!(rest.len() > 20, "the other figures are still in the table");
    }

    #[test]
    fn runs_with_different_sections_line_up_by_name() {
        // Run b has a prefix_cache section run a lacks: every row must still pair a's
        // and b's values of the same figure (a positional pairing would shift them).
        let run = |label: &str, completed: u64, prefix: bool| PlanRun {
            label: label.into(),
            file: PathBuf::from("x.toml"),
            layout: "1x1x1x1".into(),
            gpus: 1,
            summary: Summary {
                requests: crate::metrics::summary::RequestCounts { completed, ..Default::default() },
                prefix_cache: prefix.then(Default::default),
                ..Summary::default()
            },
            ttft_s: Vec::new(),
        };
        let (_, rows) = table(&[run("b", 7, true), run("a", 5, false)], false);
        let find = |name: &str| rows.iter().find(|r| r[0] == name).cloned();
        assert_eq!(find("requests.completed"), Some(vec!["requests.completed".into(), "7".into(), "5".into()]));
        let hit = find("prefix_cache.token_hit_rate").expect("b's figure is listed");
        assert_eq!(hit[2], "", "a has no prefix_cache section");
    }
}
