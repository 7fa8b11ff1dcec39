//! What-if sweeps: the cartesian grid of `--vary` overrides on a base scenario,
//! run in parallel, one CSV row per point.
//!
//! Point `i` of the grid is the base scenario with the `--set` overrides and then
//! the point's overrides applied. Points are numbered in grid order: the first
//! `--vary` key changes slowest, the last fastest (nested loops). Every run is
//! independent and deterministic, so the rows do not depend on how many threads ran
//! them, and shards (`--shard K/N` or `--shard auto`, see [`super::shard`]) can be
//! merged back ([`merge`]) into the very bytes of the unsharded `sweep.csv`.
//!
//! Columns of `sweep.csv`: `point`, the varied keys (values as given), every summary
//! figure by dotted name ([`super::flatten_summary`]), and `error` (empty, or why a
//! point could not run, e.g. a plan that does not fit; its figures are then empty).

use super::shard::{Shard, ShardFile};
use super::{flatten_summary, format_value, metric_order, summary_metric_names};
use crate::error::{Error, Result};
use crate::scenario::{load_setup, Override};
use crate::serving::RunOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `--vary` axis: a key and its values (TOML value text, as for `--set`).
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    /// Dotted key path, as for `--set`.
    pub key: String,
    /// Values in order.
    pub values: Vec<String>,
}

impl std::str::FromStr for Vary {
    type Err = String;
    /// `key=v1,v2,...` or `key=A..B:STEP` (numbers; B included when a whole number
    /// of steps away, integers stay integers). Keys joined by `+` change together,
    /// their values joined the same way: `pools.0.replicas+pools.1.replicas=1+7,2+6`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (key, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected key=v1,v2,... or key=A..B:STEP, e.g. parallel.tp=1,2,4"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
            return Err(format!("`{s}`: the key path has an empty part; expected e.g. serving.max_seqs=64,128"));
        }
        let rest = rest.trim();
        let values = if let Some((range, step)) = rest.split_once(':').filter(|(r, _)| r.contains("..")) {
            range_values(s, range, step)?
        } else {
            let v: Vec<String> = rest.split(',').map(|v| v.trim().to_string()).collect();
            if v.iter().any(String::is_empty) {
                return Err(format!("`{s}`: empty value in the list; expected key=v1,v2,..."));
            }
            v
        };
        Ok(Vary { key: key.to_string(), values })
    }
}

fn range_values(s: &str, range: &str, step: &str) -> std::result::Result<Vec<String>, String> {
    let (a, b) = range.split_once("..").ok_or_else(|| format!("`{s}`: expected A..B:STEP"))?;
    let num = |t: &str, what: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{s}`: {what} `{t}` is not a number"))
    };
    let (a, b, step) = (num(a, "start")?, num(b, "end")?, num(step, "step")?);
    if step <= 0.0 || b < a {
        return Err(format!("`{s}`: need START <= END and STEP > 0"));
    }
    let n = ((b - a) / step + 1e-9).floor() as u64 + 1;
    if n > 100_000 {
        return Err(format!("`{s}`: {n} values; at most 100,000 per key"));
    }
    let ints = [a, b, step].iter().all(|x| x.fract() == 0.0);
    Ok((0..n)
        .map(|i| {
            let x = a + i as f64 * step;
            if ints {
                format!("{}", x as i64)
            } else {
                // Round away binary noise (0.1 + 2 x 0.1 = 0.30000000000000004).
                let r: f64 = format!("{x:.12}").parse().unwrap_or(x);
                format!("{r}")
            }
        })
        .collect())
}

/// The grid: one list of overrides per point, in grid order (first key slowest).
/// No axes give one point with no overrides.
pub fn grid(varies: &[Vary]) -> Vec<Vec<Override>> {
    let mut points: Vec<Vec<Override>> = vec![Vec::new()];
    for v in varies {
        points = points
            .into_iter()
            .flat_map(|p| {
                v.values.iter().map(move |val| {
                    let mut q = p.clone();
                    q.push(Override { key: v.key.clone(), value: val.clone() });
                    q
                })
            })
            .collect();
    }
    points
}

/// Most points one sweep may have (the product of the axes' lengths): a grid is
/// held in memory as override lists, and a million simulations is already days.
pub const MAX_POINTS: u64 = 1_000_000;

/// Checks the axes together: no key in two axes (the second would silently win
/// and `sweep.csv` would have two columns of one name), and at most [`MAX_POINTS`].
/// Returns the number of points.
pub fn check_axes(varies: &[Vary]) -> Result<u64> {
    for v in varies.iter().filter(|v| v.key.contains('+')) {
        let keys = v.key.split('+').count();
        if let Some(bad) = v.values.iter().find(|x| x.split('+').count() != keys) {
            return Err(Error::Usage(format!(
                "--vary {}: linked keys take one value each, joined by `+` (e.g. 1+7); `{bad}` has {} for {keys} keys",
                v.key,
                bad.split('+').count()
            )));
        }
    }
    for (i, v) in varies.iter().enumerate() {
        if let Some(j) = varies[..i].iter().position(|w| w.key == v.key) {
            return Err(Error::Usage(format!(
                "--vary {}: the key is already varied by --vary number {}; give each key once, \
                 with all its values, e.g. --vary {}={},{}",
                v.key,
                j + 1,
                v.key,
                varies[j].values.join(","),
                v.values.join(",")
            )));
        }
    }
    let points = varies.iter().fold(1u64, |n, v| n.saturating_mul(v.values.len() as u64));
    if points > MAX_POINTS {
        return Err(Error::Usage(format!(
            "--vary: the grid has {points} points; at most {MAX_POINTS} (use fewer values or split the sweep)"
        )));
    }
    Ok(points)
}

/// The fingerprint of a sweep's definition ([`super::shard::fingerprint`]): the
/// scenario as parsed with `set` applied (so the file's path and comments do not
/// matter, its content does), the trace's bytes if any, the axes, and the program
/// version. Shards of one sweep agree on it; shards of different ones do not.
pub fn fingerprint(base: &Path, set: &[Override], varies: &[Vary]) -> Result<String> {
    let parsed = crate::scenario::load(base, set)?;
    let text = toml::to_string(&parsed).map_err(|e| Error::Run(format!("cannot serialize the scenario: {e}")))?;
    let mut bytes = format!("clustersim {}\nsweep\n{text}\n", env!("CARGO_PKG_VERSION")).into_bytes();
    if let Some(trace) = load_setup(base, set)?.trace_path {
        bytes.extend(std::fs::read(&trace).map_err(|e| Error::io(&trace, e))?);
    }
    for v in varies {
        // Unit separator between values: no value text can forge another split.
        bytes.extend(format!("\nvary {}={}", v.key, v.values.join("\u{1f}")).into_bytes());
    }
    Ok(super::shard::fingerprint(&bytes))
}

/// Worker threads for `points` runs on a machine with `cores` cores: `requested`
/// (all cores if `None`), but never more than the points (an idle thread costs a
/// stack and buys nothing) nor more than 4 threads per core (simulations are
/// CPU-bound; more only thrash). Returns the count and, when a request was
/// lowered, a note saying why.
pub fn worker_threads(requested: Option<usize>, points: usize, cores: usize) -> (usize, Option<String>) {
    let cores = cores.max(1);
    let cap_cores = 4 * cores;
    let want = requested.unwrap_or(cores);
    let n = want.min(points.max(1)).min(cap_cores).max(1);
    let note = match requested {
        Some(r) if r > n && n == points.max(1) => {
            Some(format!("--jobs {r}: only {points} point{} to run; using {n} thread{}", plural(points), plural(n)))
        }
        Some(r) if r > n => Some(format!("--jobs {r}: at most 4 threads per core ({cores} cores); using {n}")),
        _ => None,
    };
    (n, note)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One point's result.
#[derive(Clone, Debug, PartialEq)]
pub struct PointResult {
    /// Grid index.
    pub point: u64,
    /// The varied values, in `--vary` order.
    pub values: Vec<String>,
    /// Summary figures by dotted name (empty when the point failed).
    pub metrics: BTreeMap<String, f64>,
    /// Why the point could not run.
    pub error: Option<String>,
}

/// A finished sweep (or shard of one).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    /// The varied keys.
    pub keys: Vec<String>,
    /// Points in the whole grid (not only those run).
    pub total_points: u64,
    /// Points run, in grid order.
    pub points: Vec<PointResult>,
}

/// Runs the points of the grid of `varies` over the scenario at `base` (with `set`
/// applied first) that belong to `shard` (all if `None`), on `jobs` threads. A
/// point that fails records its error. If no point of the whole grid even loads
/// (e.g. a misspelt key), that first error is returned before anything runs; the
/// check looks at the whole grid, not the shard, so every shard decides alike.
pub fn run_sweep(
    base: &Path,
    set: &[Override],
    varies: &[Vary],
    shard: Option<Shard>,
    jobs: usize,
) -> Result<SweepResult> {
    check_axes(varies)?;
    let all = grid(varies);
    let total_points = all.len() as u64;
    first_loadable(base, set, &all)?;
    let points = super::shard::run_points(total_points, shard, jobs, |point| {
        let overrides = &all[point as usize];
        let values = overrides.iter().map(|o| o.value.clone()).collect();
        match run_point(base, set, overrides) {
            Ok(metrics) => PointResult { point, values, metrics, error: None },
            Err(e) => PointResult { point, values, metrics: BTreeMap::new(), error: Some(e.to_string()) },
        }
    })?;
    let points = points.into_iter().map(|(_, p)| p).collect();
    Ok(SweepResult { keys: varies.iter().map(|v| v.key.clone()).collect(), total_points, points })
}

/// A point's overrides with linked axes (`--vary a+b=1+7,2+6`: keys that change
/// together, one column in sweep.csv) split into one override per key.
fn expand(point: &[Override]) -> Vec<Override> {
    point
        .iter()
        .flat_map(|o| {
            o.key
                .split('+')
                .zip(o.value.split('+'))
                .map(|(k, v)| Override { key: k.trim().into(), value: v.trim().into() })
        })
        .collect()
}

/// Ok when some point of the grid loads (parses and validates); else the first
/// point's error. Stops at the first that loads, so a sound sweep pays one load.
fn first_loadable(base: &Path, set: &[Override], all: &[Vec<Override>]) -> Result<()> {
    let mut first_err = None;
    for point in all {
        let overrides: Vec<Override> = set.iter().cloned().chain(expand(point)).collect();
        match load_setup(base, &overrides) {
            Ok(_) => return Ok(()),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn run_point(base: &Path, set: &[Override], point: &[Override]) -> Result<BTreeMap<String, f64>> {
    let all: Vec<Override> = set.iter().cloned().chain(expand(point)).collect();
    let setup = load_setup(base, &all)?;
    let outcome = super::simulate_priced(&setup, RunOptions::default())?;
    Ok(flatten_summary(&outcome.report.summary).into_iter().collect())
}

impl SweepResult {
    /// The metric columns: the figures every summary has, and those of the optional
    /// sections (`prefix_cache.*`, `disaggregation.*`) of any point's summary (the union
    /// over points), in [`metric_order`] so the columns do not depend on point order.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = summary_metric_names().into_iter().collect();
        for p in &self.points {
            names.extend(p.metrics.keys().cloned());
        }
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort_by(|a, b| metric_order(a, b));
        names
    }

    /// The CSV header: `point`, the varied keys, the summary figures, `error`.
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["point".to_string()];
        h.extend(self.keys.iter().cloned());
        h.extend(self.metric_names());
        h.push("error".into());
        h
    }

    /// The CSV rows, one per point run, in point order: the one place a point's
    /// figures become text (sweep.csv, shard files and merges all use it).
    pub fn rows(&self) -> Vec<(u64, Vec<String>)> {
        let names = self.metric_names();
        self.points
            .iter()
            .map(|p| {
                let mut row = vec![p.point.to_string()];
                row.extend(p.values.iter().cloned());
                row.extend(names.iter().map(|n| p.metrics.get(n).map(|x| format_value(*x)).unwrap_or_default()));
                row.push(p.error.clone().unwrap_or_default());
                (p.point, row)
            })
            .collect()
    }

    /// The shard file of this result, run as `shard` of a sweep with `fingerprint`.
    pub fn shard_file(&self, shard: Shard, fingerprint: String) -> ShardFile {
        ShardFile {
            format: super::shard::SHARD_FORMAT,
            kind: "sweep".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            build: super::shard::build_id(),
            fingerprint,
            shard: shard.k,
            shards: shard.n,
            total_points: self.total_points,
            columns: self.header(),
            rows: self.rows(),
        }
    }

    /// Writes `sweep.csv` to `path` atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let rows: Vec<Vec<String>> = self.rows().into_iter().map(|(_, r)| r).collect();
        write_csv(path, &self.header(), &rows)
    }
}

/// Writes a sweep table as CSV: the single writer behind `sweep.csv`, whether a
/// sweep ran on one machine or was merged from shards, so the bytes agree.
pub fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    super::compare::write_table_csv(path, header, rows)
}

/// Joins the shard files among `inputs` (files, or folders holding them) into
/// `out`: exactly the `sweep.csv` of the unsharded sweep. Returns the merged table.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<super::shard::Merged> {
    let files = super::shard::find_shard_files(inputs)?;
    let merged = super::shard::merge(&files, "sweep")?;
    write_csv(out, &merged.columns, &merged.rows)?;
    Ok(merged)
}

#[cfg(test)]
mod linked_tests {
    use super::*;

    #[test]
    fn linked_keys_change_together_and_must_have_a_value_each() {
        let v: Vary = "pools.0.replicas+pools.1.replicas=1+7,2+6".parse().expect("parses");
        assert_eq!(check_axes(std::slice::from_ref(&v)).expect("two points"), 2);
        let points = grid(&[v]);
        let keys = |p: &[Override]| expand(p).into_iter().map(|o| format!("{}={}", o.key, o.value)).collect::<Vec<_>>();
        assert_eq!(keys(&points[1]), vec!["pools.0.replicas=2", "pools.1.replicas=6"]);
        let bad: Vary = "a.b+c.d=1+2,3".parse().expect("parses");
        assert!(check_axes(&[bad]).is_err());
    }
}
