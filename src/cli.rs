//! The command line: a thin layer that parses arguments and calls the library.

use crate::error::{Error, Result};
use crate::output::records::CsvRequestSink;
use crate::output::{files, plots, table, writer};
use crate::scenario::{self, Override};
use crate::serving::RunOptions;
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

mod collective;
mod plan;
mod sweep;
use collective::collective_cmd;
pub use collective::CollectiveArgs;
pub use plan::{PlanArgs, SurviveWhat};
pub use sweep::{MergeArgs, SweepArgs};

/// clustersim: simulate LLM serving on a GPU cluster.
#[derive(Parser, Debug)]
#[command(name = "clustersim", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a scenario and write its results.
    Run(RunArgs),
    /// Check a scenario file without running it.
    Validate(ScenarioArgs),
    /// Re-render every chart of a finished run from its files, without simulating.
    Plot(PlotArgs),
    /// Write the operator graph of one iteration of the plan (DOT or JSON) to stdout.
    Dag(DagArgs),
    /// Simulate and hold the results against the scenario's `[requirements]` and the physical limit.
    Assess(AssessArgs),
    /// Run several plans and show them side by side (table + overlaid TTFT CDFs).
    Compare(CompareArgs),
    /// Run a grid of overrides in parallel and write one CSV row per point.
    Sweep(SweepArgs),
    /// Join the shards of a sweep or plan (run with --shard) into the one sweep.csv or plan.csv a single machine writes.
    Merge(MergeArgs),
    /// Find the plan with the fewest GPUs (or lowest cost or energy) that meets the requirements.
    Plan(PlanArgs),
    /// Time one collective over a range of sizes on a preset's nodes, like nccl-tests.
    Collective(CollectiveArgs),
    /// Run the shipped validation set (published measurements) and print measured vs simulated.
    Validation(crate::analysis::validation::ValidationArgs),
    /// Fit an engine profile's parameters to measurements (CSV, vLLM result JSON) and write it.
    Calibrate(crate::analysis::calibrate::CalibrateArgs),
}

/// `clustersim dag`.
#[derive(Args, Debug, Clone)]
pub struct DagArgs {
    /// Scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DagFormat::Dot)]
    pub format: DagFormat,
}

/// DAG output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DagFormat {
    /// Graphviz DOT (`dot -Tpng` renders it).
    Dot,
    /// JSON: nodes, edges, groups, per-GPU memory.
    Json,
}

/// `clustersim plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A results folder written by `clustersim run`.
    pub dir: PathBuf,
    /// Timeline window in seconds, START..END (default: the window the run recorded).
    #[arg(long, value_parser = parse_window)]
    pub window: Option<(f64, f64)>,
}

/// A scenario file and overrides.
#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Override a key: --set parallel.tp=4 (repeatable; value in TOML syntax, bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
}

/// `clustersim run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Results folder (default results/NAME/ after scenario.name, suffixed -2, -3, ... if taken).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite results in an existing folder.
    #[arg(long)]
    pub force: bool,
    /// Timeline window in seconds, START..END (default: a few iterations in steady state).
    #[arg(long, value_parser = parse_window)]
    pub window: Option<(f64, f64)>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// End the run at this simulated time, s (requests still held are dropped with that reason).
    #[arg(long, value_parser = parse_horizon)]
    pub max_simulated_s: Option<f64>,
    /// Skip the charts (summary and CSV files only).
    #[arg(long)]
    pub no_plots: bool,
    /// Also write trace.json (Perfetto / chrome://tracing) for the timeline window.
    #[arg(long)]
    pub trace: bool,
}

/// Parses `START..END` (seconds).
pub fn parse_window(s: &str) -> std::result::Result<(f64, f64), String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("`{s}`: expected START..END in seconds, e.g. 10.0..10.5"))?;
    let a: f64 = a.trim().parse().map_err(|_| format!("`{a}`: START is not a number of seconds"))?;
    let b: f64 = b.trim().parse().map_err(|_| format!("`{b}`: END is not a number of seconds"))?;
    if !(a >= 0.0 && b > a && b.is_finite()) {
        return Err(format!("`{s}`: need 0 <= START < END"));
    }
    Ok((a, b))
}

/// Parses `args` (including the program name) and runs the command. Returns the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Validate(a) => {
            let setup = scenario::load_setup(&a.scenario, &a.set)?;
            if let Some(w) = scenario::bounds::work_warning(&setup) {
                eprintln!("warning: {w}");
            }
            // Read the trace too (if any), so a bad trace row is reported here, not only by `run`.
            let workload = setup.workload()?;
            for w in workload.warnings() {
                eprintln!("warning: {w}");
            }
            if !setup.pools.is_empty() {
                // Each pool's memory plan, so a pool that cannot fit fails here too.
                println!("{}: ok: {} requests", a.scenario.display(), workload.total_requests());
                crate::serving::disagg::describe(&setup)?.iter().for_each(|l| println!("  {l}"));
                return Ok(0);
            }
            // And the memory plan, so a plan that cannot fit fails here too.
            let asm = crate::serving::assemble::Assembly::build(&setup)?;
            for w in asm.contention() {
                eprintln!("warning: {}", crate::output::table::sharing_line(&w));
            }
            if let Some(w) = asm.cross_sharing() {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok: {} GPUs ({} nodes x {} {}), plan dp={} pp={} tp={} ep={} uses {}, model {}, \
                 KV cache {} tokens per replica, {} requests",
                a.scenario.display(),
                setup.total_gpus(),
                setup.nodes,
                setup.gpus_per_node,
                setup.gpu.name,
                setup.parallel.dp,
                setup.parallel.pp,
                setup.parallel.tp,
                setup.parallel.ep,
                setup.plan_gpus(),
                setup.model.name,
                asm.kv_blocks_per_group as u64 * setup.parallel.ep as u64 * setup.serving.kv_block_tokens as u64,
                workload.total_requests()
            );
            Ok(0)
        }
        Command::Run(a) => run(&a),
        Command::Dag(a) => {
            let setup = scenario::load_setup(&a.scenario.scenario, &a.scenario.set)?;
            setup.without_pools("dag")?;
            let asm = crate::serving::assemble::Assembly::build(&setup)?;
            for w in asm.contention() {
                eprintln!("warning: {}", crate::output::table::sharing_line(&w));
            }
            let dag = crate::output::dag::build(&setup.name, &asm);
            match a.format {
                DagFormat::Dot => print!("{}", crate::output::dag::to_dot(&dag)),
                DagFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&dag).map_err(|e| Error::Run(format!("cannot write JSON: {e}")))?
                ),
            }
            Ok(0)
        }
        Command::Plot(a) => {
            let opts = plots::PlotOptions { window: a.window, ..Default::default() };
            let written = plots::render_all(&a.dir, &opts)?;
            println!("{} charts written to {}", written.len(), plots::plots_dir(&a.dir).display());
            Ok(0)
        }
        Command::Collective(a) => collective_cmd(&a),
        Command::Validation(a) => crate::analysis::validation::command(&a),
        Command::Calibrate(a) => crate::analysis::calibrate::command(&a),
        Command::Assess(a) => assess_cmd(&a),
        Command::Compare(a) => compare_cmd(&a),
        Command::Sweep(a) => sweep::sweep_cmd(&a),
        Command::Merge(a) => sweep::merge_cmd(&a),
        Command::Plan(a) => plan::plan_cmd(&a),
    }
}

fn run(a: &RunArgs) -> Result<i32> {
    let path = &a.scenario.scenario;
    let parsed = scenario::load(path, &a.scenario.set)?;
    let setup = scenario::validate(&parsed, path)?;
    if let Some(w) = scenario::bounds::work_warning(&setup) {
        eprintln!("warning: {w}");
    }
    let dir = files::results_dir(a.out.as_deref(), &setup.name, a.force)?;
    // Everything is written to a hidden sibling and renamed into place at the end:
    // a failed or interrupted run leaves no half-filled folder, and --force
    // replaces the old folder whole.
    let staging = crate::output::staging::Staging::new(&dir)?;
    let summary = run_into(a, &parsed, &setup, staging.path())?;
    staging.commit()?;
    print!("{summary}");
    println!("results    {}", dir.display());
    Ok(0)
}

/// Runs the simulation writing every file into `dir`; returns the text to print.
fn run_into(
    a: &RunArgs,
    parsed: &scenario::Scenario,
    setup: &scenario::Setup,
    dir: &std::path::Path,
) -> Result<String> {
    let as_run = toml::to_string(parsed).map_err(|e| Error::Run(format!("cannot serialize the scenario: {e}")))?;
    files::write_atomic(&dir.join("scenario.toml"), as_run.as_bytes())?;
    let started = Instant::now();
    let progress = if a.quiet || !std::io::stderr().is_terminal() { None } else { Some(progress_bar(started)) };
    let opts = RunOptions {
        requests: Some(CsvRequestSink::create(&dir.join("requests.csv"))?),
        window_s: a.window,
        progress,
        max_simulated_s: a.max_simulated_s,
    };
    let outcome = crate::analysis::simulate_priced(setup, opts)?;
    if a.trace {
        let trace = dir.join("trace.json");
        let (spans, links) = (&outcome.spans, &outcome.link_spans);
        crate::output::chrome::write_trace(&trace, spans, &outcome.batch_requests, &outcome.plan, links)?;
    }
    let wall = started.elapsed().as_secs_f64();
    writer::write_report(dir, &outcome.report)?;
    let info = writer::RunInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        wall_s: wall,
        events: outcome.events,
        events_per_s: outcome.events as f64 / wall.max(1e-9),
        requests_per_s: outcome.report.summary.requests.completed as f64 / wall.max(1e-9),
        peak_rss_mib: writer::peak_rss_mib(),
    };
    writer::write_json(&dir.join("run_info.json"), &info)?;
    if !a.no_plots {
        plots::render_all(dir, &plots::PlotOptions::default())?;
    }
    Ok(format!(
        "{}wall       {:.3} s, {:.0} events/s, {:.0} requests/s, peak memory {:.0} MiB\n",
        table::summary_table(&outcome.report.summary),
        info.wall_s,
        info.events_per_s,
        info.requests_per_s,
        info.peak_rss_mib
    ))
}

/// A progress callback that draws a bar on stderr once a run has lasted a second.
fn progress_bar(started: Instant) -> Box<dyn FnMut(u64, u64)> {
    let mut bar: Option<indicatif::ProgressBar> = None;
    Box::new(move |done, total| {
        if bar.is_none() && started.elapsed().as_secs_f64() > 1.0 {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} requests")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_position(done);
            if done >= total {
                b.finish_and_clear();
            }
        }
    })
}

/// Output format of `clustersim assess`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Aligned text.
    Table,
    /// JSON.
    Json,
    /// Markdown table.
    Markdown,
}

/// `clustersim assess`.
#[derive(Args, Debug, Clone)]
pub struct AssessArgs {
    /// Scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Also re-run with a node failure at peak load (N+1) and report whether the requirements hold.
    #[arg(long, value_enum)]
    pub survive: Option<SurviveWhat>,
}

/// `clustersim compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Two or more scenario files (each runs its own `[workload]` unless --workload-from).
    #[arg(required = true, num_args = 2..)]
    pub scenarios: Vec<PathBuf>,
    /// Override a key in every scenario (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
    /// Run every plan on this scenario file's `[workload]` and seed.
    #[arg(long, value_name = "FILE")]
    pub workload_from: Option<PathBuf>,
    /// Results folder (default results/compare/, suffixed if taken).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite results in an existing folder.
    #[arg(long)]
    pub force: bool,
}

fn assess_cmd(a: &AssessArgs) -> Result<i32> {
    let setup = scenario::load_setup(&a.scenario.scenario, &a.scenario.set)?;
    setup.without_pools("assess")?;
    if a.survive.is_some() {
        return plan::assess_survive(&setup);
    }
    let outcome = crate::analysis::simulate_priced(&setup, RunOptions::default())?;
    let assessment = crate::analysis::assess::assess(&setup, &outcome.report.summary)?;
    match a.format {
        ReportFormat::Table => print!("{}", assessment.table()),
        ReportFormat::Json => print!("{}", assessment.json()),
        ReportFormat::Markdown => print!("{}", assessment.markdown()),
    }
    Ok(assessment.exit_code())
}

fn compare_cmd(a: &CompareArgs) -> Result<i32> {
    use crate::analysis::compare;
    let mut setups = a.scenarios.iter().map(|p| scenario::load_setup(p, &a.set)).collect::<Result<Vec<_>>>()?;
    for s in &setups {
        s.without_pools("compare")?;
    }
    if let Some(from) = &a.workload_from {
        let donor = scenario::load_setup(from, &a.set)?;
        compare::use_workload_of(&mut setups, &donor);
    }
    let dir = files::results_dir(a.out.as_deref(), "compare", a.force)?;
    files::ensure_dir(&dir)?;
    let runs = compare::run_plans(&setups, &dir)?;
    let (header, rows) = compare::table(&runs, true);
    compare::write_table_csv(&dir.join("compare.csv"), &header, &rows)?;
    let (header, rows) = compare::table(&runs, false);
    if let Err(e) = compare::ttft_cdf_svg(&dir.join("ttft_cdf.svg"), &runs) {
        eprintln!("warning: {e}");
    }
    // The figures that decide between plans; the other rows are in compare.csv.
    let shown = rows.len().min(compare::DECIDING_ROWS);
    print!("{}", compare::render(&header, &rows[..shown]));
    if rows.len() > shown {
        println!("(+{} more figures in {})", rows.len() - shown, dir.join("compare.csv").display());
    }
    println!("results    {}", dir.display());
    Ok(0)
}

fn parse_horizon(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("`{s}`: expected simulated seconds, a number above 0 and at most 1e9")),
    }
}
