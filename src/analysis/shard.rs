//! Running indexed work in shards on several machines and merging it back.
//!
//! Any analysis made of independent, numbered points (a sweep's grid, later the
//! plans of a search) runs its points with [`run_points`] and can be split into
//! `N` shards: shard `K` (1-based) owns the
//! points with `index % N == K - 1`. Round-robin rather than contiguous blocks,
//! because neighbouring points of a grid tend to cost alike, so every shard gets a
//! similar mix of cheap and dear points.
//!
//! Each shard writes one self-contained file, `shard-K-of-N.json` ([`ShardFile`]):
//! the table rows of its points, keyed by point index, plus a fingerprint of the
//! definition of the whole job (scenario, overrides, axes, program version). The
//! merge ([`merge`]) checks that the shards belong to one job (same kind, same
//! fingerprint, same `N`), that each of `1..=N` is there exactly once, and that
//! each holds exactly the points it owns; it then returns the rows in point order,
//! which the caller writes with the same CSV writer an unsharded run uses, so the
//! merged file is byte for byte the one a single machine writes.
//!
//! Under Slurm, `--shard auto` ([`ShardArg::resolve`]) takes `K` and `N` from the
//! job array's environment.

use crate::error::{Error, Result};
use crate::output::files;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One shard of `n`: points with `index % n == k - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shard {
    /// 1-based shard number.
    pub k: u64,
    /// Number of shards.
    pub n: u64,
}

impl Shard {
    /// True when point `index` belongs to this shard.
    pub fn contains(&self, index: u64) -> bool {
        index % self.n == self.k - 1
    }

    /// How many of the points `0..total` belong to this shard.
    pub fn count_of(&self, total: u64) -> u64 {
        // Points k-1, k-1+n, ... below total.
        if total < self.k {
            0
        } else {
            (total - self.k) / self.n + 1
        }
    }

    /// The shard's file name, `shard-K-of-N.json`, `K` zero-padded to the width of
    /// `N` so that a folder listing sorts in shard order.
    pub fn file_name(&self) -> String {
        let width = self.n.to_string().len();
        format!("shard-{:0width$}-of-{}.json", self.k, self.n)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let err = || format!("`{s}`: expected K/N with 1 <= K <= N, e.g. 2/4, or `auto` under a Slurm job array");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (k, n): (u64, u64) = (k.trim().parse().map_err(|_| err())?, n.trim().parse().map_err(|_| err())?);
        if k == 0 || n == 0 || k > n {
            return Err(err());
        }
        Ok(Shard { k, n })
    }
}

/// `--shard`: a fixed `K/N`, or `auto` (from a Slurm job array's environment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardArg {
    /// Explicit `K/N`.
    Fixed(Shard),
    /// From `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`.
    Auto,
}

impl std::str::FromStr for ShardArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "auto" {
            Ok(ShardArg::Auto)
        } else {
            s.parse().map(ShardArg::Fixed)
        }
    }
}

impl ShardArg {
    /// The shard to run. For `auto`, `env` looks up environment variables (pass
    /// `|k| std::env::var(k).ok()`): the task's position in the array is
    /// `(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`
    /// (minimum 0 and step 1 when unset), so `--array=0-3`, `1-4` and `0-6:2` all
    /// give shards 1..4 of 4.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        if let ShardArg::Fixed(s) = self {
            return Ok(*s);
        }
        let var = |name: &str, default: Option<u64>| -> Result<u64> {
            match env(name) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| Error::Usage(format!("--shard auto: {name}=`{v}` is not a whole number"))),
                None => default.ok_or_else(|| {
                    Error::Usage(format!(
                        "--shard auto: {name} is not set; run inside a Slurm job array (sbatch --array=0-3) \
                         or give the shard explicitly, e.g. --shard 1/4"
                    ))
                }),
            }
        };
        let id = var("SLURM_ARRAY_TASK_ID", None)?;
        let n = var("SLURM_ARRAY_TASK_COUNT", None)?;
        let min = var("SLURM_ARRAY_TASK_MIN", Some(0))?;
        let step = var("SLURM_ARRAY_TASK_STEP", Some(1))?.max(1);
        let offset = id.checked_sub(min).filter(|o| o % step == 0);
        match offset.map(|o| o / step) {
            Some(pos) if pos < n => Ok(Shard { k: pos + 1, n }),
            _ => Err(Error::Usage(format!(
                "--shard auto: task {id} of an array of {n} (min {min}, step {step}) is not one of \
                 {n} evenly spaced tasks; use a plain range such as --array=0-{}",
                n.saturating_sub(1)
            ))),
        }
    }
}

/// Runs `work(i)` for every point `i` of `0..total` that `shard` owns (every
/// point when `None`) on `jobs` threads, and returns `(i, result)` in point order,
/// whatever order the threads finished in. The one place indexed work is spread
/// over threads; a sweep's grid uses it, and a plan search can.
pub fn run_points<T: Send>(
    total: u64,
    shard: Option<Shard>,
    jobs: usize,
    work: impl Fn(u64) -> T + Sync,
) -> Result<Vec<(u64, T)>> {
    use rayon::prelude::*;
    let mine: Vec<u64> = (0..total).filter(|i| shard.is_none_or(|s| s.contains(*i))).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::Run(format!("cannot start worker threads: {e}")))?;
    // An indexed parallel iterator collects in input order, so the output is
    // deterministic.
    Ok(pool.install(|| mine.into_par_iter().map(|i| (i, work(i))).collect()))
}

/// A stable 64-bit FNV-1a hash of `bytes`, as 16 hex digits. Stable across Rust
/// versions and machines (unlike `std`'s hasher), which is what a fingerprint
/// compared between the tasks of a job array needs.
pub fn fingerprint(bytes: &[u8]) -> String {
    // FNV-1a 64-bit offset basis and prime (Fowler, Noll, Vo; IETF draft-eastlake-fnv).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The running program's identity: [`fingerprint`] of its executable's bytes (so
/// a rebuild with any change in the code is a different build), computed once;
/// the crate version if the executable cannot be read.
pub fn build_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| match std::env::current_exe().and_then(std::fs::read) {
        Ok(bytes) => fingerprint(&bytes),
        Err(_) => format!("version-{}", env!("CARGO_PKG_VERSION")),
    })
    .clone()
}

/// Version of the shard file layout; a merge refuses other versions.
pub const SHARD_FORMAT: u32 = 1;

/// One shard's results: everything a merge needs, in one file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// Layout version ([`SHARD_FORMAT`]).
    pub format: u32,
    /// What was sharded, e.g. `sweep`.
    pub kind: String,
    /// clustersim version that wrote it.
    pub version: String,
    /// The program that wrote it ([`build_id`]): shards of one definition run by
    /// different builds could differ in their figures.
    pub build: String,
    /// Fingerprint of the job's definition ([`fingerprint`]).
    pub fingerprint: String,
    /// 1-based shard number.
    pub shard: u64,
    /// Number of shards.
    pub shards: u64,
    /// Points in the whole job.
    pub total_points: u64,
    /// Table header.
    pub columns: Vec<String>,
    /// This shard's rows: (point index, cells), in point order.
    pub rows: Vec<(u64, Vec<String>)>,
}

impl ShardFile {
    /// Writes the file into `dir` as [`Shard::file_name`], atomically. An existing
    /// file of the same shard is an error unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<PathBuf> {
        let path = shard_path(dir, Shard { k: self.shard, n: self.shards }, force)?;
        let text = serde_json::to_string(self).map_err(|e| Error::Run(format!("{}: {e}", path.display())))?;
        files::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// Where `shard` is written in `dir`; an error if a file is already there and not
/// `force` (checked before a shard runs, and again when it is written).
pub fn shard_path(dir: &Path, shard: Shard, force: bool) -> Result<PathBuf> {
    let path = dir.join(shard.file_name());
    if path.exists() && !force {
        return Err(Error::Usage(format!(
            "{}: this shard was already written; pass --force to overwrite it, or choose another --out",
            path.display()
        )));
    }
    Ok(path)
}

/// Shards joined back together.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The job's fingerprint.
    pub fingerprint: String,
    /// Number of shards joined.
    pub shards: u64,
    /// Table header.
    pub columns: Vec<String>,
    /// Every point's row, in point order (row `i` is point `i`).
    pub rows: Vec<Vec<String>>,
}

/// The shard files among `inputs`: a file is taken as is; a folder gives every
/// `shard-*-of-*.json` in it (sorted by name). A folder without any is an error.
pub fn find_shard_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if !input.is_dir() {
            if !input.exists() {
                return Err(Error::Usage(format!("{}: no such shard file or folder", input.display())));
            }
            out.push(input.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| Error::io(input, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_shard_name))
            .collect();
        if found.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no shard files (shard-K-of-N.json) in this folder; \
                 did the tasks run with --shard and this folder as --out?",
                input.display()
            )));
        }
        found.sort();
        out.append(&mut found);
    }
    Ok(out)
}

fn is_shard_name(name: &str) -> bool {
    name.strip_prefix("shard-").and_then(|r| r.strip_suffix(".json")).is_some_and(|r| r.contains("-of-"))
}

/// Reads and checks the shard `files` of one job of `kind` (see the module docs)
/// and returns every row in point order.
pub fn merge(files: &[PathBuf], kind: &str) -> Result<Merged> {
    let mut shards: BTreeMap<u64, (PathBuf, ShardFile)> = BTreeMap::new();
    for path in files {
        let file = read(path, kind)?;
        if let Some((_, first)) = shards.values().next() {
            check_same_job(path, &file, first, &shards)?;
        }
        if let Some((other, _)) = shards.get(&file.shard) {
            return Err(Error::Usage(format!(
                "shard {} of {} appears twice: {} and {}",
                file.shard,
                file.shards,
                other.display(),
                path.display()
            )));
        }
        shards.insert(file.shard, (path.clone(), file));
    }
    let (_, first) = shards.values().next().ok_or_else(|| Error::Usage("merge: no shard files given".into()))?;
    let (n, total, fingerprint, columns) =
        (first.shards, first.total_points, first.fingerprint.clone(), first.columns.clone());
    let missing: Vec<u64> = (1..=n).filter(|k| !shards.contains_key(k)).collect();
    if let Some(first) = missing.first() {
        let mut list: Vec<String> = missing.iter().take(10).map(u64::to_string).collect();
        if missing.len() > 10 {
            list.push(format!("... ({} in all)", missing.len()));
        }
        let (s, verb) = if missing.len() == 1 { ("", "is") } else { ("s", "are") };
        return Err(Error::Usage(format!(
            "shard{s} {} of {n} {verb} missing (found {} of {n}); wait for every task of the array, \
             or rerun a missing one with --shard {first}/{n}",
            list.join(", "),
            shards.len()
        )));
    }
    // Row counts first: they bound the table's size before anything is allocated.
    for (path, file) in shards.values() {
        let owned = Shard { k: file.shard, n }.count_of(total);
        if file.rows.len() as u64 != owned {
            let what = format!("{} rows, but shard {}/{n} of {total} points owns {owned}", file.rows.len(), file.shard);
            return Err(corrupt(path, &what));
        }
    }
    let columns = join_columns(&columns, shards.values())?;
    let mut rows: Vec<Option<Vec<String>>> = vec![None; shards.values().map(|(_, f)| f.rows.len()).sum()];
    for (path, file) in shards.into_values() {
        let shard = Shard { k: file.shard, n };
        // Where each joined column is in this shard's table (None: a figure it lacks).
        let at: Vec<Option<usize>> = columns.iter().map(|c| file.columns.iter().position(|x| x == c)).collect();
        for (point, cells) in file.rows {
            let cells = if file.columns == columns {
                cells
            } else {
                at.iter().map(|i| i.and_then(|i| cells.get(i).cloned()).unwrap_or_default()).collect()
            };
            match rows.get_mut(point as usize).filter(|_| shard.contains(point)) {
                Some(slot) if slot.is_none() => *slot = Some(cells),
                _ => return Err(corrupt(&path, &format!("point {point} does not belong to shard {}/{n}", shard.k))),
            }
        }
    }
    // Every slot is filled: each shard holds count_of(total) distinct points it owns.
    let rows = rows
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::Usage("merge: the shards do not cover every point (a shard file was edited?)".into()))?;
    Ok(Merged { fingerprint, shards: n, columns, rows })
}

/// The columns of the merged table. A sweep's figure columns are the union of its
/// points' summaries (`prefix_cache.*` only where a point had that section), so shards
/// may differ there: the figures of every shard, in [`super::metric_order`], in the
/// place of the first shard's; every other column must be the same in each shard.
fn join_columns<'a>(first: &[String], shards: impl Iterator<Item = &'a (PathBuf, ShardFile)>) -> Result<Vec<String>> {
    let names = super::all_metric_names();
    let others = |c: &[String]| c.iter().filter(|x| !names.contains(x)).cloned().collect::<Vec<_>>();
    let mut figures = std::collections::BTreeSet::new();
    for (path, file) in shards {
        if others(&file.columns) != others(first) {
            return Err(corrupt(path, "its columns differ from the other shards'"));
        }
        figures.extend(file.columns.iter().filter(|x| names.contains(x)).cloned());
    }
    let mut figures: Vec<String> = figures.into_iter().collect();
    figures.sort_by(|a, b| super::metric_order(a, b));
    let at = first.iter().position(|x| names.contains(x)).unwrap_or(first.len());
    let mut out: Vec<String> = first[..at].to_vec();
    out.extend(figures);
    out.extend(first[at..].iter().filter(|x| !names.contains(x)).cloned());
    Ok(out)
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::Usage(format!("{}: damaged shard file: {what}", path.display()))
}

fn read(path: &Path, kind: &str) -> Result<ShardFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file: ShardFile = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not a clustersim shard file: {e}", path.display())))?;
    if file.format != SHARD_FORMAT {
        return Err(Error::Usage(format!(
            "{}: shard format {} (written by clustersim {}); this clustersim reads format {SHARD_FORMAT}",
            path.display(),
            file.format,
            file.version
        )));
    }
    if file.kind != kind {
        return Err(Error::Usage(format!("{}: a shard of a {}, not of a {kind}", path.display(), file.kind)));
    }
    if file.shards == 0 || file.shard == 0 || file.shard > file.shards {
        return Err(corrupt(path, &format!("shard {} of {}", file.shard, file.shards)));
    }
    Ok(file)
}

fn check_same_job(
    path: &Path,
    file: &ShardFile,
    first: &ShardFile,
    shards: &BTreeMap<u64, (PathBuf, ShardFile)>,
) -> Result<()> {
    let first_path = shards.values().next().map(|(p, _)| p.display().to_string()).unwrap_or_default();
    let differ = |what: &str, a: &str, b: &str| {
        Error::Usage(format!(
            "{}: {what} {b}, but {first_path} has {a}: shards of different {}s (another scenario, \
             --set, --vary or clustersim version); merge the shards of one run only",
            path.display(),
            file.kind
        ))
    };
    if file.fingerprint != first.fingerprint {
        return Err(differ("fingerprint", &first.fingerprint, &file.fingerprint));
    }
    if file.build != first.build {
        return Err(Error::Usage(format!(
            "{}: written by clustersim build {}, but {first_path} by build {}: two different binaries \
             ran this {}, so their figures may differ; rerun the shards with one binary",
            path.display(),
            file.build,
            first.build,
            file.kind
        )));
    }
    if file.shards != first.shards || file.total_points != first.total_points {
        let (a, b) = (
            format!("{} shards of {} points", first.shards, first.total_points),
            format!("{} shards of {} points", file.shards, file.total_points),
        );
        return Err(differ("split into", &a, &b));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
