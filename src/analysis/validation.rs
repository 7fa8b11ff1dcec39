//! `clustersim validation`: the shipped validation set (data/validation/, compiled into
//! the binary) held against the simulator.
//!
//! Each serving row (TensorRT-LLM max-load throughput at fixed lengths) becomes a small
//! scenario built in code: one node of the row's GPU, TP as the row says, the row's
//! model and dtype, `framework = "optimized"`, and N requests of fixed lengths arriving
//! at once (N = the source's request count, capped by [`Options::max_requests`]). Kernel
//! rows (FlashAttention-3 rates) are priced by the preset's attention kernel; collective
//! rows (nccl-tests busbw, nvbandwidth) by the topology's closed forms at 1 GiB.
//! Error is (simulated - measured) / measured; the summary gives the median and worst
//! absolute error by class.

use crate::analysis::calibrate::figure;
use crate::analysis::measured::{gpu_preset_name, parse_csv, Measurement};
use crate::error::{Error, InputError, Result};
use crate::hardware::spec::{gpu_preset, GpuPreset};
use crate::hardware::topology::Topology;
use crate::model::attention::flash_rate;
use crate::model::framework::framework_profile;
use crate::parallel::collective::{closed_form_affine, CollectiveOp};
use crate::scenario::types::AllReduceAlgorithm;
use rayon::prelude::*;
use std::path::Path;

/// The serving measurements, as shipped.
pub const SERVING_CSV: &str = include_str!("../../data/validation/serving_throughput.csv");
/// The kernel and link measurements, as shipped.
pub const KERNELS_CSV: &str = include_str!("../../data/validation/kernels_and_links.csv");

/// `clustersim validation`.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidationArgs {
    /// Most requests simulated per serving row (the source's count when smaller).
    #[arg(long, default_value_t = 1000)]
    pub max_requests: u32,
    /// Only rows whose configuration contains this text (case-insensitive), e.g. "H200".
    #[arg(long)]
    pub only: Option<String>,
    /// Skip the leave-one-source-out table (its refits take most of the run).
    #[arg(long)]
    pub no_loso: bool,
}

/// Runs the set as `args` say and prints the table; exit status 0.
pub fn command(args: &ValidationArgs) -> Result<i32> {
    if args.max_requests == 0 {
        return Err(Error::Usage("--max-requests 0: need at least one request per row".into()));
    }
    let opts = Options { max_requests: args.max_requests, only: args.only.clone() };
    let rows = run(&opts)?;
    if rows.is_empty() {
        return Err(Error::Usage(format!(
            "--only {:?}: no validation row matches",
            args.only.as_deref().unwrap_or("")
        )));
    }
    print!("{}", markdown(&rows));
    let cases = serving_cases(&opts)?;
    if !args.no_loso && !cases.is_empty() {
        // run() puts the serving rows first, in the cases' order.
        let lines = crate::analysis::loso::leave_one_source_out(&cases, &rows[..cases.len()], opts.max_requests);
        print!("\n{}", crate::analysis::loso::markdown(&lines));
    }
    Ok(0)
}

/// How to run the set.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most requests simulated per serving row (the source's count when smaller).
    pub max_requests: u32,
    /// Only rows whose configuration contains this text (case-insensitive).
    pub only: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        // 1000 requests reach the steady state of every row at a few seconds each.
        Options { max_requests: 1000, only: None }
    }
}

/// One validated figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Where the measurement comes from.
    pub source: String,
    /// What was measured, e.g. "Llama-3.1-8B fp8 H100-SXM-80GB TP1 128/128".
    pub configuration: String,
    /// Class for the summary: "dense throughput", "MoE throughput", "kernels", "collectives".
    pub class: String,
    /// Metric name and unit.
    pub metric: String,
    /// Measured value.
    pub measured: f64,
    /// Simulated value, or why there is none.
    pub simulated: std::result::Result<f64, String>,
    /// Serving rows: the engine profile it ran under, and whether that profile was
    /// fitted to this row (its `fitted_rows`).
    pub profile: Option<(String, bool)>,
}

impl Row {
    /// Signed relative error, %: (simulated - measured) / measured x 100.
    pub fn error_pct(&self) -> Option<f64> {
        self.simulated.as_ref().ok().map(|s| (s - self.measured) / self.measured * 100.0)
    }
}

fn bad(line: usize, msg: String) -> Error {
    Error::Input(InputError::file(Path::new("data/validation/serving_throughput.csv"), format!("line {line}: {msg}")))
}

/// Parses a CSV into records, with "same" sources resolved to the previous row's.
fn records(text: &str) -> Result<Vec<(usize, csv::StringRecord)>> {
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut last_source = String::new();
    for (i, rec) in rd.records().enumerate() {
        let mut rec = rec.map_err(|e| bad(i + 2, format!("not CSV: {e}")))?;
        if &rec[0] == "same" {
            let fields: Vec<String> =
                std::iter::once(last_source.clone()).chain(rec.iter().skip(1).map(String::from)).collect();
            rec = csv::StringRecord::from(fields);
        }
        last_source = rec[0].to_string();
        out.push((i + 2, rec));
    }
    Ok(out)
}

/// The shipped serving measurements.
pub fn serving_measurements() -> Result<Vec<Measurement>> {
    parse_csv(SERVING_CSV, Path::new("data/validation/serving_throughput.csv"))
}

/// The shipped serving measurements `opts` selects, in file order.
pub fn serving_cases(opts: &Options) -> Result<Vec<Measurement>> {
    Ok(serving_measurements()?.into_iter().filter(|c| matches(opts, &c.configuration())).collect())
}

fn serving_rows(opts: &Options) -> Result<Vec<Row>> {
    let cases = serving_cases(opts)?;
    Ok(cases
        .par_iter()
        .map(|c| {
            let name = c.engine_profile();
            let profile = framework_profile(name);
            let fitted = profile.as_ref().is_some_and(|p| p.fitted_rows.contains(&c.configuration()));
            Row {
                source: c.source.clone(),
                configuration: c.configuration(),
                class: serving_class(c),
                metric: c.metric.clone(),
                measured: c.value,
                simulated: match profile {
                    Some(p) => c.simulate(&p, opts.max_requests),
                    None => Err(format!("no shipped profile {name}")),
                },
                profile: Some((name.to_string(), fitted)),
            }
        })
        .collect())
}

/// A serving row's class: dense or MoE, throughput or latency.
fn serving_class(c: &Measurement) -> String {
    let kind = if c.is_moe() { "MoE" } else { "dense" };
    let what = if c.metric.ends_with("_ms") { "latency" } else { "throughput" };
    format!("{kind} {what}")
}

fn matches(opts: &Options, configuration: &str) -> bool {
    opts.only.as_ref().is_none_or(|o| configuration.to_lowercase().contains(&o.to_lowercase()))
}

/// Large-message bandwidth, GB/s, of `op` over `ranks`.
fn bandwidth_gb_s(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32]) -> f64 {
    1.0 / closed_form_affine(topo, op, alg, ranks).per_byte_ns
}

/// Simulated value of a kernel or link row, if the set knows how to price it.
fn kernel_value(p: &GpuPreset, what: &str, metric: &str) -> Option<(&'static str, f64)> {
    let gpu = (p.spec)();
    let node = Topology::new(1, 8, &(p.nvlink)(), &(p.network)()).ok()?;
    let eight: Vec<u32> = (0..8).collect();
    if let Some(tokens) = metric.strip_prefix("attention TFLOP/s at ").and_then(|m| m.strip_suffix(" tokens")) {
        let keys: f64 = tokens.parse().ok()?;
        let rate = flash_rate(gpu.sustained_flops(2.0), gpu.kernels.attention_half_rate_keys, keys);
        return Some(("kernels", rate / 1e12));
    }
    let bus = 2.0 * 7.0 / 8.0;
    let v = if what.starts_with("pairwise device-to-device copy") {
        bandwidth_gb_s(&node, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[0, 1])
    } else if what.contains("NCCL_ALGO=RING") {
        bus * bandwidth_gb_s(&node, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &eight)
    } else if what.contains("NVLS") {
        // In-sample: the presets' NVLS port rate is derived from this very figure.
        bus * bandwidth_gb_s(&node, CollectiveOp::AllReduce, AllReduceAlgorithm::Nvls, &eight)
    } else if metric == "busbw per NIC" {
        let two = Topology::new(2, 8, &(p.nvlink)(), &(p.network)()).ok()?;
        bandwidth_gb_s(&two, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[0, 8])
    } else {
        return None;
    };
    Some(("collectives", v))
}

fn kernel_rows(opts: &Options) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for (line, rec) in records(KERNELS_CSV)? {
        let Some(p) = gpu_preset_name(&rec[2]).and_then(gpu_preset) else { continue };
        let Some((class, sim)) = kernel_value(p, &rec[1], &rec[4]) else { continue };
        // A range in the source ("46-48") is held against its midpoint.
        let parts: Vec<f64> = rec[5].split('-').filter_map(|x| x.trim().parse().ok()).collect();
        if parts.is_empty() {
            return Err(bad(line, format!("value {:?} is not a number or range", &rec[5])));
        }
        let configuration = format!("{} {} {}", &rec[2], &rec[1], &rec[4]);
        if !matches(opts, &configuration) {
            continue;
        }
        out.push(Row {
            source: rec[0].to_string(),
            configuration,
            class: class.into(),
            metric: rec[6].to_string(),
            measured: parts.iter().sum::<f64>() / parts.len() as f64,
            simulated: Ok(sim),
            profile: None,
        });
    }
    Ok(out)
}

/// Runs the shipped validation set: serving rows, then kernel and collective rows.
pub fn run(opts: &Options) -> Result<Vec<Row>> {
    let mut rows = serving_rows(opts)?;
    rows.extend(kernel_rows(opts)?);
    Ok(rows)
}

/// Median and worst absolute error, %, of `errors` (None when empty).
pub fn median_and_worst(errors: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some((median, v[n - 1]))
}

/// The summary lines: (class, rows with a simulated value, median |error| %, worst), per
/// class in first-seen order, then "all".
pub fn summary(rows: &[Row]) -> Vec<(String, usize, f64, f64)> {
    let mut classes: Vec<&str> = Vec::new();
    for r in rows {
        if !classes.contains(&r.class.as_str()) {
            classes.push(&r.class);
        }
    }
    let stat = |name: &str, pick: &dyn Fn(&Row) -> bool| {
        let errs: Vec<f64> = rows.iter().filter(|r| pick(r)).filter_map(Row::error_pct).collect();
        median_and_worst(&errs).map(|(m, w)| (name.to_string(), errs.len(), m, w))
    };
    let mut out: Vec<_> = classes.iter().filter_map(|c| stat(c, &|r: &Row| r.class == *c)).collect();
    out.extend(stat("all", &|_| true));
    out
}

/// Per engine profile and class: ("profile, class", rows it was fitted to: count,
/// median, worst; the other rows: count, median, worst), absolute errors in %, in
/// first-seen order.
pub type ProfileLine = (String, (usize, f64, f64), (usize, f64, f64));

/// The per-profile summary of the serving rows: fitted (in-sample) against held out,
/// by class (a profile fitted to dense rows says nothing of its MoE rows).
pub fn by_profile(rows: &[Row]) -> Vec<ProfileLine> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if let Some((n, _)) = &r.profile {
            if !keys.contains(&(n.as_str(), r.class.as_str())) {
                keys.push((n, &r.class));
            }
        }
    }
    let stat = |name: &str, class: &str, fitted: bool| {
        let errs: Vec<f64> = rows
            .iter()
            .filter(|r| r.class == class && r.profile.as_ref().is_some_and(|(n, f)| n == name && *f == fitted))
            .filter_map(Row::error_pct)
            .collect();
        let (m, w) = median_and_worst(&errs).unwrap_or((f64::NAN, f64::NAN));
        (errs.len(), m, w)
    };
    keys.iter().map(|(n, c)| (format!("{n}, {c}"), stat(n, c, true), stat(n, c, false))).collect()
}

/// The table as Markdown: one line per row, then the summary by class and by profile.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| source | configuration | profile | metric | measured | simulated | error % |\n|---|---|---|---|---:|---:|---:|\n",
    );
    for r in rows {
        let (sim, err) = match (&r.simulated, r.error_pct()) {
            (Ok(v), Some(e)) => (figure(*v), format!("{e:+.1}")),
            (Err(why), _) => (format!("n/a ({why})"), "-".into()),
            _ => ("n/a".into(), "-".into()),
        };
        let profile = match &r.profile {
            Some((n, true)) => format!("{n} (fitted)"),
            Some((n, false)) => n.clone(),
            None => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.source,
            r.configuration,
            profile,
            r.metric,
            figure(r.measured),
            sim,
            err
        ));
    }
    s.push_str("\n| class | rows | median abs error % | worst abs error % |\n|---|---:|---:|---:|\n");
    for (class, n, median, worst) in summary(rows) {
        s.push_str(&format!("| {class} | {n} | {median:.1} | {worst:.1} |\n"));
    }
    s.push_str(
        "\n| profile | fitted rows | median % | worst % | held-out rows | median % | worst % |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    let cell = |(n, m, w): (usize, f64, f64)| {
        if n == 0 {
            "0 | - | -".to_string()
        } else {
            format!("{n} | {m:.1} | {w:.1}")
        }
    };
    for (name, fitted, held) in by_profile(rows) {
        s.push_str(&format!("| {name} | {} | {} |\n", cell(fitted), cell(held)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_csvs_parse_and_every_row_maps_to_presets() {
        let cases = serving_measurements().expect("parses");
        assert_eq!(cases.len(), 98);
        assert!(cases.iter().all(|c| gpu_preset_name(&c.gpu).is_some()));
        // 87 TensorRT-LLM rows (perf-overview and NIM), 5 vLLM rows (CI and blog), 6
        // SGLang rows (two runs of its attention-backend benchmark, 3 lengths each).
        let engines = |e: &str| cases.iter().filter(|c| c.engine_profile() == e).count();
        assert_eq!((engines("trtllm"), engines("vllm"), engines("sglang")), (87, 5, 6));
        // "same" resolves to the row above it.
        assert!(cases.iter().all(|c| c.source != "same"));
    }

    #[test]
    fn median_and_worst_by_hand() {
        // |-10|, 2, |-4|, 30 -> sorted 2, 4, 10, 30: median (4 + 10) / 2 = 7, worst 30.
        assert_eq!(median_and_worst(&[-10.0, 2.0, -4.0, 30.0]), Some((7.0, 30.0)));
        assert_eq!(median_and_worst(&[]), None);
    }

    #[test]
    fn by_profile_splits_fitted_from_held_out_rows_by_class() {
        let row = |class: &str, sim: f64, fitted: bool| Row {
            source: "s".into(),
            configuration: "c".into(),
            class: class.into(),
            metric: "m".into(),
            measured: 100.0,
            simulated: Ok(sim),
            profile: Some(("trtllm".into(), fitted)),
        };
        // Dense fitted: +10 %, -2 % -> median 6, worst 10; dense held out: +20 %;
        // MoE held out: -50 %; nothing fitted to MoE.
        let rows =
            [row("dense", 110.0, true), row("dense", 98.0, true), row("dense", 120.0, false), row("MoE", 50.0, false)];
        let lines = by_profile(&rows);
        assert_eq!(lines[0], ("trtllm, dense".to_string(), (2, 6.0, 10.0), (1, 20.0, 20.0)));
        assert_eq!((lines[1].0.as_str(), lines[1].1 .0, lines[1].2), ("trtllm, MoE", 0, (1, 50.0, 50.0)));
    }
}
