//! `clustersim sweep` and `clustersim merge`: a grid of overrides run here or as
//! shards of a batch job (e.g. a Slurm array), and shards joined back.

use super::ScenarioArgs;
use crate::error::{Error, Result};
use crate::output::{files, plots};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

/// `clustersim sweep`.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// Base scenario and overrides applied to every point.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// An axis: key=v1,v2,... or key=A..B:STEP (repeatable; the grid is their cartesian product).
    #[arg(long = "vary", value_name = "KEY=VALUES", required = true)]
    pub vary: Vec<crate::analysis::sweep::Vary>,
    /// Results folder (default results/NAME-sweep/ after scenario.name, suffixed if taken).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite an existing sweep in --out.
    #[arg(long)]
    pub force: bool,
    /// Metrics to chart against the first varied key, by dotted name (e.g. ttft_s.p99,throughput.tokens_per_ms_per_gpu).
    #[arg(long, value_delimiter = ',')]
    pub plot: Vec<String>,
    /// Run only shard K of N (points with index % N == K-1) and write DIR/shard-K-of-N.json;
    /// `auto` takes K and N from a Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT).
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<crate::analysis::shard::ShardArg>,
    /// Worker threads (default: all cores; at most the points to run and 4 per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

/// `clustersim merge`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Folders holding shard-K-of-N.json files (the sweeps' --out), or shard files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Folder to write sweep.csv into (default: the one input folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite an existing sweep.csv there.
    #[arg(long)]
    pub force: bool,
    /// Metrics to chart against the first varied key, as for `sweep --plot`.
    #[arg(long, value_delimiter = ',')]
    pub plot: Vec<String>,
}

pub(super) fn sweep_cmd(a: &SweepArgs) -> Result<i32> {
    use crate::analysis::sweep;
    let points = sweep::check_axes(&a.vary)?;
    let base = crate::scenario::load_setup(&a.scenario.scenario, &a.scenario.set)?;
    check_plot_metrics(&a.plot)?;
    let shard = a.shard.map(|s| s.resolve(|k| std::env::var(k).ok())).transpose()?;
    let default_dir = format!("{}-sweep", base.name);
    let dir = output_dir(a.out.as_deref(), &default_dir, shard, a.force)?;
    // Before the runs, so a shard that cannot be written fails in seconds, not hours.
    let fingerprint = shard.map(|_| sweep::fingerprint(&a.scenario.scenario, &a.scenario.set, &a.vary)).transpose()?;
    // A whole sweep is staged and renamed into place at the end (all or nothing);
    // a shard writes its one file, atomically, into the folder the array shares.
    let staging = match shard {
        None => Some(crate::output::staging::Staging::new(&dir)?),
        Some(_) => {
            files::ensure_dir(&dir)?;
            None
        }
    };
    let to_run = shard.map_or(points, |s| s.count_of(points));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (jobs, note) =
        sweep::worker_threads(a.jobs.map(usize::from), usize::try_from(to_run).unwrap_or(usize::MAX), cores);
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let started = Instant::now();
    let result = sweep::run_sweep(&a.scenario.scenario, &a.scenario.set, &a.vary, shard, jobs)?;
    let wall = started.elapsed().as_secs_f64();
    for p in result.points.iter().filter(|p| p.error.is_some()) {
        eprintln!("point {} ({}): {}", p.point, p.values.join(", "), p.error.as_deref().unwrap_or(""));
    }
    let failed = result.points.iter().filter(|p| p.error.is_some()).count();
    let rows: Vec<Vec<String>> = result.rows().into_iter().map(|(_, r)| r).collect();
    let written = match (shard, staging) {
        (Some(s), _) => {
            if !a.plot.is_empty() {
                eprintln!("note: a shard draws no charts; pass --plot to `clustersim merge`");
            }
            print!("{}", crate::analysis::sweep_table::SweepTable::new(&result.header(), &rows).render_headline());
            println!("shard      {}/{}: {} of {} points", s.k, s.n, result.points.len(), points);
            result.shard_file(s, fingerprint.unwrap_or_default()).write(&dir, a.force)?
        }
        (None, staging) => {
            let staging =
                staging.ok_or_else(|| Error::Run("internal: an unsharded sweep has a staging folder".into()))?;
            sweep::write_csv(&staging.path().join("sweep.csv"), &result.header(), &rows)?;
            show_sweep(staging.path(), &result.header(), &rows, &a.plot);
            staging.commit()?;
            dir.join("sweep.csv")
        }
    };
    println!("sweep      {} points run ({failed} failed) in {wall:.2} s wall on {jobs} threads", result.points.len());
    println!("results    {}", written.display());
    if shard.is_none() && failed > 0 && failed == result.points.len() {
        // sweep.csv is kept (it says why each failed); the exit code says bad input.
        return Err(Error::Usage(format!(
            "every point of the sweep failed; the first: {}",
            result.points[0].error.as_deref().unwrap_or("")
        )));
    }
    Ok(0)
}

fn check_plot_metrics(plot: &[String]) -> Result<()> {
    let names = crate::analysis::all_metric_names();
    match plot.iter().find(|m| !names.contains(m)) {
        Some(bad) => Err(Error::Usage(format!("--plot: unknown metric `{bad}`; known: {}", names.join(", ")))),
        None => Ok(()),
    }
}

/// Draws the `plot` charts of a sweep table into `dir` and prints its headline table.
fn show_sweep(dir: &std::path::Path, columns: &[String], rows: &[Vec<String>], plot: &[String]) {
    let table = crate::analysis::sweep_table::SweepTable::new(columns, rows);
    for m in plot {
        let x_key = table.keys().first().cloned().unwrap_or_default();
        let categories = table.x_categories();
        if let Err(e) = plots::sweep::sweep_chart(dir, m, &x_key, &table.series(m), categories.as_deref()) {
            eprintln!("warning: {e}");
        }
    }
    print!("{}", table.render_headline());
}

pub(super) fn merge_cmd(a: &MergeArgs) -> Result<i32> {
    if let Some(code) = super::plan::merge_plan(&a.inputs, a.out.as_deref(), a.force)? {
        return Ok(code);
    }
    check_plot_metrics(&a.plot)?;
    let dir = match (&a.out, a.inputs.as_slice()) {
        (Some(out), _) => out.clone(),
        (None, [one]) if one.is_dir() => one.clone(),
        _ => {
            return Err(Error::Usage(
                "merge: pass --out DIR to say where sweep.csv goes (needed unless the input is one folder)".into(),
            ))
        }
    };
    let csv = dir.join("sweep.csv");
    if csv.exists() && !a.force {
        return Err(Error::Usage(format!("{}: exists; pass --force to overwrite it", csv.display())));
    }
    files::ensure_dir(&dir)?;
    let merged = crate::analysis::sweep::merge(&a.inputs, &csv)?;
    show_sweep(&dir, &merged.columns, &merged.rows, &a.plot);
    println!("merged     {} shards, {} points (sweep {})", merged.shards, merged.rows.len(), merged.fingerprint);
    println!("results    {}", csv.display());
    Ok(0)
}

/// The folder a sweep or plan search writes: the tasks of a sharded array share one
/// folder (no suffixing; each checks only its own shard file); otherwise a fresh
/// results folder (suffixed if taken, unless `force`).
pub(super) fn output_dir(
    out: Option<&std::path::Path>,
    default_dir: &str,
    shard: Option<crate::analysis::shard::Shard>,
    force: bool,
) -> Result<PathBuf> {
    match shard {
        Some(s) => {
            let dir = out.map_or_else(|| PathBuf::from("results").join(default_dir), |o| o.to_path_buf());
            crate::analysis::shard::shard_path(&dir, s, force)?;
            Ok(dir)
        }
        None => files::results_dir(out, default_dir, force),
    }
}
