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
    let mut rows: Vec<Option<Vec<String>>> = vec![None; shards.values().map(|(_, f)| f.rows.len()).sum()];
    for (path, file) in shards.into_values() {
        let shard = Shard { k: file.shard, n };
        for (point, cells) in file.rows {
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
    if file.shards != first.shards || file.total_points != first.total_points {
        let (a, b) = (
            format!("{} shards of {} points", first.shards, first.total_points),
            format!("{} shards of {} points", file.shards, file.total_points),
        );
        return Err(differ("split into", &a, &b));
    }
    if file.columns != first.columns {
        return Err(corrupt(path, "its columns differ from the other shards'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn auto_maps_slurm_array_tasks_to_shards() {
        // --array=0-3: task 2 is the third of four.
        let s = ShardArg::Auto.resolve(env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")]));
        assert_eq!(s.unwrap(), Shard { k: 3, n: 4 });
        // --array=1-4: task 1 is the first.
        let v = [("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "1")];
        assert_eq!(ShardArg::Auto.resolve(env(&v)).unwrap(), Shard { k: 1, n: 4 });
        // --array=10-16:2 (tasks 10, 12, 14, 16): task 14 is (14 - 10) / 2 + 1 = 3rd.
        let v = [
            ("SLURM_ARRAY_TASK_ID", "14"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert_eq!(ShardArg::Auto.resolve(env(&v)).unwrap(), Shard { k: 3, n: 4 });
    }

    #[test]
    fn auto_outside_an_array_or_with_odd_ids_is_a_clear_error() {
        let e = ShardArg::Auto.resolve(env(&[])).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID is not set"), "{e}");
        // --array=1,3,9 has 3 tasks; task 9 is not the third of an evenly spaced range.
        let v = [("SLURM_ARRAY_TASK_ID", "9"), ("SLURM_ARRAY_TASK_COUNT", "3"), ("SLURM_ARRAY_TASK_MIN", "1")];
        let e = ShardArg::Auto.resolve(env(&v)).unwrap_err().to_string();
        assert!(e.contains("--array=0-2"), "{e}");
        let v = [("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "3")];
        assert!(ShardArg::Auto.resolve(env(&v)).unwrap_err().to_string().contains("not a whole number"));
    }

    #[test]
    fn shards_split_points_round_robin_and_count_them() {
        // 10 points in 4 shards: shard 1 has 0, 4, 8; shard 2 has 1, 5, 9; shards 3 and 4 have 2 each.
        let counts: Vec<u64> = (1..=4).map(|k| Shard { k, n: 4 }.count_of(10)).collect();
        assert_eq!(counts, [3, 3, 2, 2]);
        let s2: Vec<u64> = (0..10).filter(|i| Shard { k: 2, n: 4 }.contains(*i)).collect();
        assert_eq!(s2, [1, 5, 9]);
        assert_eq!(Shard { k: 3, n: 4 }.count_of(2), 0);
        assert_eq!(Shard { k: 3, n: 12 }.file_name(), "shard-03-of-12.json");
        assert_eq!("auto".parse::<ShardArg>().unwrap(), ShardArg::Auto);
        for bad in ["0/2", "3/2", "1", "a/b", "automatic"] {
            assert!(bad.parse::<ShardArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn run_points_runs_only_the_shard_in_point_order() {
        // Shard 2 of 3 over 0..8 owns 1, 4, 7; the work squares its index.
        let out = run_points(8, Some(Shard { k: 2, n: 3 }), 3, |i| i * i).unwrap();
        assert_eq!(out, [(1, 1), (4, 16), (7, 49)]);
        assert_eq!(run_points(3, None, 1, |i| i).unwrap(), [(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // FNV-1a 64 of "" is the offset basis; of "a" is af63dc4c8601ec8c (reference vectors
        // of the FNV specification, draft-eastlake-fnv).
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
    }

    fn shard(k: u64, n: u64, total: u64, fp: &str) -> ShardFile {
        let sh = Shard { k, n };
        ShardFile {
            format: SHARD_FORMAT,
            kind: "sweep".into(),
            version: "test".into(),
            fingerprint: fp.into(),
            shard: k,
            shards: n,
            total_points: total,
            columns: vec!["point".into(), "x".into()],
            rows: (0..total).filter(|i| sh.contains(*i)).map(|i| (i, vec![i.to_string(), format!("v{i}")])).collect(),
        }
    }

    #[test]
    fn merge_orders_rows_and_rejects_missing_duplicate_and_foreign_shards() {
        let dir = tempfile::tempdir().unwrap();
        let write = |f: &ShardFile, sub: &str| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            f.write(&d, false).unwrap()
        };
        let a = write(&shard(1, 3, 7, "f"), "a");
        let b = write(&shard(2, 3, 7, "f"), "a");
        let c = write(&shard(3, 3, 7, "f"), "b");
        let m = merge(&[c.clone(), a.clone(), b.clone()], "sweep").unwrap();
        let firsts: Vec<&str> = m.rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(firsts, ["v0", "v1", "v2", "v3", "v4", "v5", "v6"]);

        let e = merge(&[a.clone(), c.clone()], "sweep").unwrap_err().to_string();
        assert!(e.contains("shard 2 of 3 is missing"), "{e}");
        let e = merge(&[a.clone(), a.clone()], "sweep").unwrap_err().to_string();
        assert!(e.contains("shard 1 of 3 appears twice"), "{e}");
        let other = write(&shard(3, 3, 7, "g"), "c");
        let e = merge(&[a.clone(), b.clone(), other], "sweep").unwrap_err().to_string();
        assert!(e.contains("fingerprint g") && e.contains("different sweeps"), "{e}");
        let e = merge(std::slice::from_ref(&a), "plan").unwrap_err().to_string();
        assert!(e.contains("a shard of a sweep, not of a plan"), "{e}");
        // The same shard written twice without --force is refused.
        assert!(shard(1, 3, 7, "f").write(&dir.path().join("a"), false).is_err());
        let found = find_shard_files(&[dir.path().join("a"), dir.path().join("b")]).unwrap();
        assert_eq!(found, [a, b, c]);
        assert!(find_shard_files(&[dir.path().to_path_buf()]).unwrap_err().to_string().contains("no shard files"));
    }
}
