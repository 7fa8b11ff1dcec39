//! What-if sweeps: the cartesian grid of `--vary` overrides on a base scenario,
//! run in parallel, one CSV row per point.
//!
//! Point `i` of the grid is the base scenario with the `--set` overrides and then
//! the point's overrides applied. Points are numbered in grid order: the first
//! `--vary` key changes slowest, the last fastest (nested loops). Every run is
//! independent and deterministic, so the rows do not depend on how many threads ran
//! them, and `--shard K/N` (points with `index % N == K - 1`) runs can be merged back
//! ([`merge_csv`]) into the very bytes of the unsharded `sweep.csv`.
//!
//! Columns of `sweep.csv`: `point`, the varied keys (values as given), every summary
//! figure by dotted name ([`super::flatten_summary`]), and `error` (empty, or why a
//! point could not run, e.g. a plan that does not fit; its figures are then empty).

use super::{flatten_summary, format_value, summary_metric_names};
use crate::error::{Error, Result};
use crate::output::files::AtomicFile;
use crate::scenario::{load_setup, Override};
use crate::serving::{simulate, RunOptions};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

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
    /// of steps away, integers stay integers).
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

/// `--shard K/N`: run only points with `index % N == K - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard number.
    pub k: u64,
    /// Number of shards.
    pub n: u64,
}

impl Shard {
    /// True when point `index` belongs to this shard.
    pub fn contains(&self, index: usize) -> bool {
        index as u64 % self.n == self.k - 1
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let err = || format!("`{s}`: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (k, n): (u64, u64) = (k.trim().parse().map_err(|_| err())?, n.trim().parse().map_err(|_| err())?);
        if k == 0 || n == 0 || k > n {
            return Err(err());
        }
        Ok(Shard { k, n })
    }
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

/// One point's result.
#[derive(Clone, Debug, PartialEq)]
pub struct PointResult {
    /// Grid index.
    pub point: usize,
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
    /// Points run, in grid order.
    pub points: Vec<PointResult>,
}

/// Runs the points of the grid of `varies` over the scenario at `base` (with
/// `set` applied first) that belong to `shard` (all if `None`), on `jobs` threads
/// (all cores if `None`). A point that fails records its error; if every point
/// fails, the first point's error is returned (e.g. a misspelt key: exit code 2).
pub fn run_sweep(
    base: &Path,
    set: &[Override],
    varies: &[Vary],
    shard: Option<Shard>,
    jobs: Option<usize>,
) -> Result<SweepResult> {
    let all = grid(varies);
    let chosen: Vec<(usize, Vec<Override>)> =
        all.into_iter().enumerate().filter(|(i, _)| shard.is_none_or(|s| s.contains(*i))).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .build()
        .map_err(|e| Error::Run(format!("cannot start worker threads: {e}")))?;
    let outcomes: Vec<Outcome> = pool.install(|| {
        chosen
            .into_par_iter()
            .map(|(i, point)| {
                let r = run_point(base, set, &point);
                (i, point, r)
            })
            .collect()
    });
    if !outcomes.is_empty() && outcomes.iter().all(|(_, _, r)| r.is_err()) {
        if let Some((_, _, Err(e))) = outcomes.into_iter().next() {
            return Err(e);
        }
        return Err(Error::Run("every sweep point failed".into()));
    }
    let points = outcomes
        .into_iter()
        .map(|(point, ov, r)| {
            let values = ov.into_iter().map(|o| o.value).collect();
            match r {
                Ok(metrics) => PointResult { point, values, metrics, error: None },
                Err(e) => PointResult { point, values, metrics: BTreeMap::new(), error: Some(e.to_string()) },
            }
        })
        .collect();
    Ok(SweepResult { keys: varies.iter().map(|v| v.key.clone()).collect(), points })
}

/// A point's index, overrides and figures (or error).
type Outcome = (usize, Vec<Override>, Result<BTreeMap<String, f64>>);

fn run_point(base: &Path, set: &[Override], point: &[Override]) -> Result<BTreeMap<String, f64>> {
    let all: Vec<Override> = set.iter().chain(point).cloned().collect();
    let setup = load_setup(base, &all)?;
    let outcome = simulate(&setup, RunOptions::default())?;
    Ok(flatten_summary(&outcome.report.summary).into_iter().collect())
}

impl SweepResult {
    /// The CSV header: `point`, the varied keys, the summary figures, `error`.
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["point".to_string()];
        h.extend(self.keys.iter().cloned());
        h.extend(summary_metric_names());
        h.push("error".into());
        h
    }

    /// Writes the CSV to `path` atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let names = summary_metric_names();
        let mut w = csv::Writer::from_writer(AtomicFile::create(path)?);
        let io = |e: csv::Error| Error::Run(format!("{}: {e}", path.display()));
        w.write_record(self.header()).map_err(io)?;
        for p in &self.points {
            let mut row = vec![p.point.to_string()];
            row.extend(p.values.iter().cloned());
            for n in &names {
                row.push(p.metrics.get(n).map(|x| format_value(*x)).unwrap_or_default());
            }
            row.push(p.error.clone().unwrap_or_default());
            w.write_record(&row).map_err(io)?;
        }
        w.into_inner().map_err(|e| Error::Run(format!("{}: {e}", path.display())))?.commit()
    }
}

/// Joins shards' CSV files (same header, disjoint points) into `out`, rows in point
/// order: byte-identical to the unsharded sweep's CSV when the shards cover the grid.
/// Errors on differing headers, a point in two shards, or a gap in the points.
pub fn merge_csv(out: &Path, shards: &[&Path]) -> Result<usize> {
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: BTreeMap<u64, csv::StringRecord> = BTreeMap::new();
    for path in shards {
        let bad = |m: String| Error::Usage(format!("{}: {m}", path.display()));
        let mut r = csv::Reader::from_path(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let h = r.headers().map_err(|e| bad(format!("bad header: {e}")))?.clone();
        if h.get(0) != Some("point") {
            return Err(bad("not a sweep CSV: the first column is not `point`".into()));
        }
        match &header {
            None => header = Some(h),
            Some(first) if *first != h => {
                return Err(bad("its columns differ from the first shard's: shards of different sweeps?".into()))
            }
            Some(_) => {}
        }
        for (line, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| bad(format!("row {}: {e}", line + 2)))?;
            let point: u64 = rec
                .get(0)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad(format!("row {}: `point` is not a whole number", line + 2)))?;
            if rows.insert(point, rec).is_some() {
                return Err(bad(format!("point {point} appears in more than one shard")));
            }
        }
    }
    let header = header.ok_or_else(|| Error::Usage("merge: give at least one shard CSV".into()))?;
    let missing: Vec<String> =
        (0..rows.len() as u64).filter(|i| !rows.contains_key(i)).take(10).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "merge: points {} are missing: merge every shard of the sweep",
            missing.join(", ")
        )));
    }
    let mut w = csv::Writer::from_writer(AtomicFile::create(out)?);
    let io = |e: csv::Error| Error::Run(format!("{}: {e}", out.display()));
    w.write_record(&header).map_err(io)?;
    for rec in rows.values() {
        w.write_record(rec).map_err(io)?;
    }
    w.into_inner().map_err(|e| Error::Run(format!("{}: {e}", out.display())))?.commit()?;
    Ok(rows.len())
}
