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
    /// Simulate only shard K of N (plans with index % N == K-1, every one of them) and write
    /// DIR/shard-K-of-N.json; `auto` takes K and N from a Slurm job array. Join with `clustersim merge DIR`.
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<crate::analysis::shard::ShardArg>,
}

pub(super) fn plan_cmd(a: &PlanArgs) -> Result<i32> {
    let path = &a.scenario.scenario;
    let base = crate::scenario::load_setup(path, &a.scenario.set)?;
    base.without_pools("plan")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = a.jobs.map_or(cores, usize::from);
    let shard = a.shard.map(|s| s.resolve(|k| std::env::var(k).ok())).transpose()?;
    let opts = PlanOptions {
        objective: a.objective,
        jobs,
        early_stop: !a.no_early_stop,
        // The N+1 check looks past the first passing plans for the smallest that survives.
        exhaustive: a.exhaustive || a.survive.is_some(),
        space_file: a.space.clone(),
        shard,
    };
    let default_dir = format!("{}-plan", base.name);
    let dir = super::sweep::output_dir(a.out.as_deref(), &default_dir, shard, a.force)?;
    let started = Instant::now();
    let found = plan::search(path, &a.scenario.set, &opts)?;
    let wall = started.elapsed().as_secs_f64();
    files::ensure_dir(&dir)?;
    if let Some(s) = shard {
        let fp = plan::distribute::fingerprint(path, &a.scenario.set, &opts)?;
        plan::distribute::write_job(&dir, path, &a.scenario.set, a.objective)?;
        let written = plan::distribute::shard_file(&found, s, fp).write(&dir, a.force)?;
        println!(
            "shard      {}/{}: {} of {} plans in {wall:.2} s",
            s.k,
            s.n,
            s.count_of(found.rows.len() as u64),
            found.rows.len()
        );
        println!("results    {}", written.display());
        return Ok(0);
    }
    report::write_csv(&dir.join("plan.csv"), &found)?;
    let bound = base.requirements.as_ref().and_then(|r| r.ttft_p99_s);
    if let Err(e) = report::pareto_chart(&dir.join("pareto.svg"), &found, bound) {
        eprintln!("warning: {e}");
    }
    print!("{}", report::table(&found, a.top));
    println!("search     {wall:.2} s wall on {jobs} threads");
    let code = match found.winner {
        Some(w) => {
            let row = &found.rows[w];
            let text = report::base_text(path, &a.scenario.set)?;
            let file = dir.join("winner.toml");
            files::write_atomic(&file, report::winner_toml(&text, path, &row.candidate)?.as_bytes())?;
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

/// `clustersim merge` of plan shards: `None` when the shards are not a plan's.
pub(super) fn merge_plan(inputs: &[PathBuf], out: Option<&Path>, force: bool) -> Result<Option<i32>> {
    if plan::distribute::shard_kind(inputs)? != plan::distribute::KIND {
        return Ok(None);
    }
    let dir = match (out, inputs) {
        (Some(o), _) => o.to_path_buf(),
        (None, [one]) if one.is_dir() => one.clone(),
        _ => return Err(crate::error::Error::Usage("merge: pass --out DIR to say where plan.csv goes".into())),
    };
    for name in ["plan.csv", "winner.toml"] {
        if dir.join(name).exists() && !force {
            return Err(crate::error::Error::Usage(format!(
                "{}: exists; pass --force to overwrite it",
                dir.join(name).display()
            )));
        }
    }
    files::ensure_dir(&dir)?;
    let m = plan::distribute::merge(inputs, &dir)?;
    println!("merged     {} shards, {} plans (plan {})", m.merged.shards, m.merged.rows.len(), m.merged.fingerprint);
    let code = match (m.winner, &m.winner_toml) {
        (Some(k), Some(toml)) => {
            files::write_atomic(&dir.join("winner.toml"), toml.as_bytes())?;
            println!("winner     plan {} ({})", m.merged.rows[k][0], toml.lines().next().unwrap_or(""));
            0
        }
        _ => {
            println!("verdict    no plan meets the requirements (see plan.csv)");
            1
        }
    };
    println!("results    {}", dir.join("plan.csv").display());
    Ok(Some(code))
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
        None => {
            let first = s.rows.iter().find_map(|r| r.pruned.as_ref().map(|p| (p, r)));
            let eg = first.map(|((k, why), r)| format!("; e.g. {} ({}): {why}", k.name(), r.candidate.label()));
            format!(
                "no plan meets the requirements: every plan was pruned or stopped early ({}){}",
                report::counts_line(s),
                eg.unwrap_or_default()
            )
        }
    }
}

/// Passing plans tried for the N+1 check, in rank order.
const SURVIVE_TRIES: usize = 16;

/// Tries the passing plans in rank order (at most [`SURVIVE_TRIES`]) until one
/// survives a node failure: the first that does is the smallest that survives.
fn survive_ranked(s: &PlanSearch, path: &Path, set: &[crate::scenario::Override], dir: &Path) -> Result<()> {
    for (tried, i) in report::ranked(s).into_iter().filter(|i| s.rows[*i].passed()).take(SURVIVE_TRIES).enumerate() {
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
    let dir = files::results_dir(None, &format!("{}-survive", setup.name), false)?;
    files::ensure_dir(&dir)?;
    let chart = dir.join("ttft_p99.svg");
    print!("{}", v.assessment.table());
    print_survival(&setup.name, &v, setup, &chart);
    Ok(if v.holds { 0 } else { 1 })
}
