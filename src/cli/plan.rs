//! `clustersim plan`: search the plans of a scenario, print the ranked table and
//! verdict, and write plan.csv, pareto.svg and the winning scenario; with
//! `--survive node`, the N+1 verdict of the winner (also `assess --survive node`).

use super::ScenarioArgs;
use crate::analysis::plan::{self, report, survive, Objective, PlanOptions, PlanSearch};
use crate::error::Result;
use crate::output::files;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to fail in an N+1 check.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SurviveWhat {
    /// Every GPU of node 0, at peak load.
    Node,
}

/// `clustersim plan`.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Base scenario (model, workload, [requirements], optional [search]) and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// What to minimise.
    #[arg(long, value_enum, default_value_t = Objective::Gpus)]
    pub objective: Objective,
    /// A TOML file with a [search] table replacing the scenario's.
    #[arg(long, value_name = "SPACE.toml")]
    pub space: Option<PathBuf>,
    /// Results folder (default results/NAME-plan/, suffixed if taken).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite results in an existing folder.
    #[arg(long)]
    pub force: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Simulate every plan that survives pruning (no skipping of plans dearer than the winner).
    #[arg(long)]
    pub exhaustive: bool,
    /// Run every simulation to its end (no early stop on a provably failed latency requirement).
    #[arg(long)]
    pub no_early_stop: bool,
    /// Plans shown in the table.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// Re-run the winner with a node failure at peak load and report whether it survives.
    #[arg(long, value_enum)]
    pub survive: Option<SurviveWhat>,
}

pub(super) fn plan_cmd(a: &PlanArgs) -> Result<i32> {
    let path = &a.scenario.scenario;
    let base = crate::scenario::load_setup(path, &a.scenario.set)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = a.jobs.map_or(cores, usize::from);
    let opts = PlanOptions {
        objective: a.objective,
        jobs,
        early_stop: !a.no_early_stop,
        exhaustive: a.exhaustive,
        space_file: a.space.clone(),
    };
    let started = Instant::now();
    let found = plan::search(path, &a.scenario.set, &opts)?;
    let wall = started.elapsed().as_secs_f64();
    let dir = files::results_dir(a.out.as_deref(), &format!("{}-plan", base.name), a.force)?;
    files::ensure_dir(&dir)?;
    report::write_csv(&dir.join("plan.csv"), &found)?;
    let bound = base.requirements.as_ref().and_then(|r| r.ttft_p99_s);
    if let Err(e) = report::pareto_chart(&dir.join("pareto.svg"), &found, bound) {
        eprintln!("warning: {e}");
    }
    print!("{}", report::table(&found, a.top));
    println!("search     {:.2} s wall on {jobs} threads", wall);
    let code = match found.winner {
        Some(w) => {
            let row = &found.rows[w];
            let toml = report::winner_toml(path, &a.scenario.set, row)?;
            let file = dir.join("winner.toml");
            files::write_atomic(&file, toml.as_bytes())?;
            println!("winner     {} ({} GPUs{})", row.candidate.label(), row.candidate.gpus(), price(row.usd_per_hour));
            println!("scenario   {}", file.display());
            if a.survive.is_some() {
                survive_ranked(&found, path, &a.scenario.set, &dir)?;
            }
            0
        }
        None => {
            println!("verdict    {}", no_plan_verdict(&found, &base));
            1
        }
    };
    println!("results    {}", dir.display());
    Ok(code)
}

fn price(usd: Option<f64>) -> String {
    usd.map(|u| format!(", ${u:.2}/h at list price")).unwrap_or_default()
}

/// "no plan meets X; the closest is Y, short by Z" or, when the throughput target is
/// above every plan's physical limit, that limit and the best figure reached.
pub fn no_plan_verdict(s: &PlanSearch, base: &crate::scenario::Setup) -> String {
    use plan::search::RunResult;
    let finished = |r: &&plan::PlanRow| matches!(r.result, Some(RunResult::Finished { .. }));
    let all_limit = s.rows.iter().all(|r| r.pruned.is_some())
        && s.rows.iter().any(|r| matches!(r.pruned, Some((plan::prune::PruneKind::Limit, _))));
    if all_limit {
        let target = base.requirements.as_ref().and_then(|r| r.throughput_tokens_per_ms_per_gpu).unwrap_or(0.0);
        // The first plan with the highest limit (min_by on the reversed order keeps the first).
        let limited = s.rows.iter().filter(|r| matches!(r.pruned, Some((plan::prune::PruneKind::Limit, _))));
        let lim = limited.min_by(|a, b| b.limit_tokens_per_ms_per_gpu.total_cmp(&a.limit_tokens_per_ms_per_gpu));
        let best = s.rows.iter().filter(finished).filter_map(|r| match &r.result {
            Some(RunResult::Finished { summary, .. }) => Some((summary.throughput.tokens_per_ms_per_gpu, r)),
            _ => None,
        });
        let best = best.min_by(|a, b| b.0.total_cmp(&a.0));
        let mut m =
            format!("no plan can meet throughput_tokens_per_ms_per_gpu >= {target}: it is physically impossible");
        if let Some(l) = lim {
            m += &format!(
                "; the highest physical limit of any plan is {:.2} tokens/ms/GPU ({})",
                l.limit_tokens_per_ms_per_gpu,
                l.candidate.label()
            );
        }
        if let Some((x, r)) = best {
            m += &format!("; the best any simulated plan reached is {x:.2} ({})", r.candidate.label());
        }
        return m;
    }
    let closest = s
        .rows
        .iter()
        .filter(finished)
        .filter(|r| r.pruned.is_none())
        .filter_map(|r| report::binding(r).map(|b| (b, r)));
    match closest.max_by(|a, b| a.0 .1.total_cmp(&b.0 .1)) {
        Some(((req, margin), r)) => {
            format!("no plan meets {req}; the closest is {}, short by {:.1} %", r.candidate.label(), -margin * 100.0)
        }
        None => format!(
            "no plan meets the requirements: every plan was pruned or stopped early ({})",
            report::counts_line(s)
        ),
    }
}

/// Tries the passing plans in rank order (at most 8) until one survives a node failure.
fn survive_ranked(s: &PlanSearch, path: &Path, set: &[crate::scenario::Override], dir: &Path) -> Result<()> {
    for (tried, i) in report::ranked(s).into_iter().filter(|i| s.rows[*i].passed()).take(8).enumerate() {
        let row = &s.rows[i];
        let all: Vec<_> = set.iter().cloned().chain(row.candidate.overrides()).collect();
        let setup = crate::scenario::load_setup(path, &all)?;
        let v = survive::survive(&setup)?;
        let name = format!("survive-{}.svg", row.index);
        print_survival(&row.candidate.label(), &v, &setup, &dir.join(&name));
        if v.holds {
            if tried > 0 {
                println!("smallest plan that survives a node failure: {}", row.candidate.label());
            }
            return Ok(());
        }
    }
    println!("no passing plan tried survives a node failure");
    Ok(())
}

fn print_survival(label: &str, v: &survive::Survival, setup: &crate::scenario::Setup, chart: &Path) {
    let bound = setup.requirements.as_ref().and_then(|r| r.ttft_p99_s);
    if let Err(e) = survive::chart(chart, v, bound) {
        eprintln!("warning: {e}");
    }
    println!(
        "N+1        {label}: node 0 ({} GPUs) fails at {:.1} s (peak load): requirements {}; \
         TTFT p99 over its bound for {:.1} s; {} requests re-routed and prefilled again, {} dropped; chart {}",
        v.failed_gpus.len(),
        v.failure_at_s,
        if v.holds { "HOLD" } else { "FAIL" },
        v.violation_window_s,
        v.rerouted,
        v.dropped,
        chart.display()
    );
}

/// `assess --survive node`: the N+1 check of the scenario as written.
pub(super) fn assess_survive(setup: &crate::scenario::Setup) -> Result<i32> {
    let v = survive::survive(setup)?;
    let chart = PathBuf::from(format!("{}-survive.svg", setup.name));
    print!("{}", v.assessment.table());
    print_survival(&setup.name, &v, setup, &chart);
    Ok(if v.holds { 0 } else { 1 })
}
