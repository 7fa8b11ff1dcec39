//! `clustersim plan`: the plan with the fewest GPUs, the lowest cost or the least
//! energy per token that meets the scenario's `[requirements]`.
//!
//! The search space ([`space`]) is enumerated into candidates; each is pruned
//! before simulating when it is invalid, does not fit memory or cannot reach the
//! throughput requirement ([`prune`]); survivors are simulated in parallel, likely
//! winners first, each run stopping as soon as a latency requirement provably
//! fails ([`search`]); the winner's goodput can be found by bisection on the
//! arrival rate ([`goodput`]) and its survival of a node failure checked
//! ([`survive`]); [`report`] ranks the plans, draws the Pareto frontier and writes
//! the winning scenario; [`distribute`] splits a search over the tasks of a batch
//! job and merges it back.

pub mod distribute;
pub mod goodput;
pub mod prune;
pub mod report;
pub mod search;
pub mod space;
pub mod survive;

use crate::error::{Error, Result};
use crate::scenario::search::{SearchConfig, SpaceFile};
use crate::scenario::{Override, Setup};
use prune::{Checked, PruneKind};
use search::RunResult;
use space::Candidate;
use std::path::Path;

/// What the search minimises.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Fewest GPUs (ties: lower $/h, then lower TTFT p99).
    Gpus,
    /// Lowest list price per hour (needs a price for every GPU searched).
    Cost,
    /// Fewest joules per token (needs a power model; every survivor runs).
    Energy,
}

impl Objective {
    /// Its name as typed.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Gpus => "gpus",
            Objective::Cost => "cost",
            Objective::Energy => "energy",
        }
    }
}

/// How to search.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// What to minimise.
    pub objective: Objective,
    /// Worker threads.
    pub jobs: usize,
    /// Stop runs that provably fail a latency requirement.
    pub early_stop: bool,
    /// Simulate every survivor (no skipping after a winner).
    pub exhaustive: bool,
    /// A `--space` file replacing the scenario's `[search]`.
    pub space_file: Option<std::path::PathBuf>,
    /// Simulate only this shard's plans (see [`search`]).
    pub shard: Option<crate::analysis::shard::Shard>,
}

/// One candidate's fate.
#[derive(Clone, Debug)]
pub struct PlanRow {
    /// Index in the enumerated space.
    pub index: usize,
    /// The plan.
    pub candidate: Candidate,
    /// Its physical throughput limit, tokens/ms/GPU.
    pub limit_tokens_per_ms_per_gpu: f64,
    /// Its list price, US$/h (if known).
    pub usd_per_hour: Option<f64>,
    /// Why it was pruned, if it was.
    pub pruned: Option<(PruneKind, String)>,
    /// Its simulation, if it ran.
    pub result: Option<RunResult>,
    /// Highest arrival rate (req/s) meeting the latency requirements, when asked.
    pub goodput_req_s: Option<f64>,
}

impl PlanRow {
    /// True when it ran and met every requirement.
    pub fn passed(&self) -> bool {
        self.pruned.is_none() && self.result.as_ref().is_some_and(RunResult::passed)
    }
}

/// A finished search.
#[derive(Clone, Debug)]
pub struct PlanSearch {
    /// Every candidate, in enumeration order.
    pub rows: Vec<PlanRow>,
    /// The objective.
    pub objective: Objective,
    /// Index of the winner in `rows`.
    pub winner: Option<usize>,
    /// The space searched.
    pub space: space::Space,
}

/// Reads the `[search]` table: from `space_file` if given, else the scenario's.
pub fn search_config(file: &Path, set: &[Override], space_file: Option<&Path>) -> Result<SearchConfig> {
    if let Some(p) = space_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::Usage(format!("--space {}: cannot read the search space: {e}", p.display())))?;
        let f: SpaceFile = toml::from_str(&text).map_err(|e| {
            Error::Usage(format!("{}: not a search space ([search] table): {}", p.display(), e.message()))
        })?;
        return Ok(f.search);
    }
    Ok(crate::scenario::load(file, set)?.search.unwrap_or_default())
}

fn check_objective(objective: Objective, space: &space::Space, file: &Path, set: &[Override]) -> Result<()> {
    use crate::hardware::economics::Economics;
    let cfg = crate::scenario::load(file, set)?.economics;
    for g in &space.gpus {
        let e = Economics::resolve(g, cfg.as_ref());
        let missing = match objective {
            Objective::Gpus => None,
            Objective::Cost => e.price_per_gpu_hour.is_none().then_some("price_per_gpu_hour"),
            Objective::Energy => e.power_w(0.0).is_none().then_some("busy_w and idle_w"),
        };
        if let Some(key) = missing {
            return Err(Error::Usage(format!(
                "--objective {}: GPU `{g}` has no cited {key}; give it in the scenario's [economics] table",
                objective.name()
            )));
        }
    }
    Ok(())
}

/// Plans re-run to the end for a verdict when nothing can pass: a constant, so that
/// the result does not depend on the thread count.
pub const VERDICT_RUNS: usize = 4;

/// Searches the plans of the scenario at `file` (with `set` applied).
///
/// With `opts.shard`, every plan is pruned (cheap, the same in every shard) but only
/// the shard's plans are simulated, all of them (no waves, no re-runs that depend on
/// other shards' results, no goodput): the shards' rows merged are exactly the rows
/// of an unsharded `--exhaustive` search.
pub fn search(file: &Path, set: &[Override], opts: &PlanOptions) -> Result<PlanSearch> {
    let base = crate::scenario::load_setup(file, set)?;
    let cfg = search_config(file, set, opts.space_file.as_deref())?;
    let space = space::resolve(&cfg, &base)?;
    check_objective(opts.objective, &space, file, set)?;
    let (mut rows, checked) = prune_all(file, set, &base, &space, opts.jobs)?;
    if let Some(first) = rows
        .iter()
        .find(|r| r.pruned.is_some())
        .filter(|_| rows.iter().all(|r| matches!(r.pruned, Some((PruneKind::Invalid, _)))))
    {
        // A space of nothing but invalid plans is a bad space, not a verdict.
        let why = first.pruned.as_ref().map(|p| p.1.as_str()).unwrap_or("");
        return Err(Error::Usage(format!(
            "the search space has {} plans and every one is invalid; the first ({}): {why}",
            rows.len(),
            first.candidate.label()
        )));
    }
    let mine = |i: &usize| opts.shard.is_none_or(|s| s.contains(*i as u64));
    let survivors: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].pruned.is_none()).filter(mine).collect();
    let exhaustive = opts.exhaustive || opts.shard.is_some();
    // Energy has no prior objective: every survivor runs (what exhaustive means).
    let objective = if exhaustive { Objective::Energy } else { opts.objective };
    simulate_in_order(&mut rows, &checked, &survivors, objective, opts)?;
    let to_end = PlanOptions { early_stop: false, ..opts.clone() };
    if rows.iter().all(|r| r.pruned.is_some()) {
        // Nothing can meet the requirements: run the plans with the highest limits
        // anyway, so the verdict can say what the best of them reaches.
        let best: Vec<usize> = best_of_pruned(&rows).into_iter().filter(mine).collect();
        simulate_in_order(&mut rows, &checked, &best, Objective::Energy, &to_end)?;
    }
    let mut winner = pick_winner(&rows, opts.objective);
    let finished = |r: &PlanRow| r.pruned.is_none() && matches!(r.result, Some(RunResult::Finished { .. }));
    if winner.is_none() && !exhaustive && !rows.iter().any(finished) {
        // Every simulated plan stopped early: run those that held out longest to the
        // end, so the verdict can name the closest plan and its shortfall.
        let late = latest_stopped(&rows);
        simulate_in_order(&mut rows, &checked, &late, Objective::Energy, &to_end)?;
        winner = pick_winner(&rows, opts.objective);
    }
    let mut found = PlanSearch { rows, objective: opts.objective, winner, space };
    if found.space.goodput && opts.shard.is_none() {
        goodput::fill(&mut found, &checked, opts)?;
    }
    Ok(found)
}

/// Enumerates `space` and prunes every candidate (in parallel).
fn prune_all(
    file: &Path,
    set: &[Override],
    base: &Setup,
    space: &space::Space,
    jobs: usize,
) -> Result<(Vec<PlanRow>, Vec<Checked>)> {
    let cands = space::enumerate(space)?;
    let ctx = prune::PruneContext::new(file, set, base)?;
    let mut checked: Vec<Checked> =
        crate::analysis::shard::run_points(cands.len() as u64, None, jobs, |i| prune::check(&ctx, &cands[i as usize]))?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
    prune::mark_same(&cands, &mut checked);
    let rows = cands
        .into_iter()
        .zip(&checked)
        .enumerate()
        .map(|(index, (candidate, c))| PlanRow {
            index,
            usd_per_hour: c.setup.as_ref().and_then(|s| s.economics.usd_per_hour(s.plan_gpus())),
            candidate,
            limit_tokens_per_ms_per_gpu: c.limit_tokens_per_ms_per_gpu,
            pruned: c.pruned.clone(),
            result: None,
            goodput_req_s: None,
        })
        .collect();
    Ok((rows, checked))
}

/// The [`VERDICT_RUNS`] plans pruned by limit or load with the highest limit, then
/// the fewest GPUs (the most load per GPU).
fn best_of_pruned(rows: &[PlanRow]) -> Vec<usize> {
    let mut best: Vec<usize> =
        (0..rows.len()).filter(|i| matches!(rows[*i].pruned, Some((PruneKind::Limit | PruneKind::Load, _)))).collect();
    best.sort_by(|a, b| {
        let (ra, rb) = (&rows[*a], &rows[*b]);
        rb.limit_tokens_per_ms_per_gpu
            .total_cmp(&ra.limit_tokens_per_ms_per_gpu)
            .then(ra.candidate.gpus().cmp(&rb.candidate.gpus()))
            .then(a.cmp(b))
    });
    best.truncate(VERDICT_RUNS);
    best
}

/// The [`VERDICT_RUNS`] stopped plans that held out longest.
fn latest_stopped(rows: &[PlanRow]) -> Vec<usize> {
    let stop_at = |i: &usize| match rows[*i].result {
        Some(RunResult::Stopped(_, at)) if rows[*i].pruned.is_none() => at,
        _ => f64::NEG_INFINITY,
    };
    let mut late: Vec<usize> = (0..rows.len()).filter(|i| stop_at(i).is_finite()).collect();
    late.sort_by(|a, b| stop_at(b).total_cmp(&stop_at(a)).then(a.cmp(b)));
    late.truncate(VERDICT_RUNS);
    late
}

/// Simulates `which` (indices of rows), ordered by prior objective and limit.
fn simulate_in_order(
    rows: &mut [PlanRow],
    checked: &[Checked],
    which: &[usize],
    objective: Objective,
    opts: &PlanOptions,
) -> Result<()> {
    let setups: Vec<&Setup> = which.iter().filter_map(|i| checked[*i].setup.as_ref()).collect();
    if setups.len() != which.len() {
        return Err(Error::Run("internal: a plan to simulate has no scenario".into()));
    }
    let prior: Vec<Option<f64>> = setups.iter().map(|s| search::prior_objective(objective, s)).collect();
    let mut order: Vec<usize> = (0..which.len()).collect();
    order.sort_by(|a, b| {
        let (pa, pb) = (prior[*a].unwrap_or(0.0), prior[*b].unwrap_or(0.0));
        let (la, lb) = (rows[which[*a]].limit_tokens_per_ms_per_gpu, rows[which[*b]].limit_tokens_per_ms_per_gpu);
        pa.total_cmp(&pb).then(lb.total_cmp(&la)).then(a.cmp(b))
    });
    let results = search::run_waves(&setups, &order, &prior, opts.jobs, opts.early_stop)?;
    for (k, r) in results.into_iter().enumerate() {
        rows[which[k]].result = r;
    }
    Ok(())
}

/// The objective value of a row that ran to the end.
pub fn objective_value(row: &PlanRow, objective: Objective) -> Option<f64> {
    let Some(RunResult::Finished { summary, .. }) = &row.result else { return None };
    Some(match objective {
        Objective::Gpus => row.candidate.gpus() as f64,
        Objective::Cost => row.usd_per_hour.unwrap_or(f64::INFINITY),
        Objective::Energy => summary.cost.joules_per_token,
    })
}

/// The passing row with the lowest (objective, $/h, TTFT p99, index): the rule of
/// [`report::winner_of_table`], applied to the rows as `plan.csv` writes them (so a
/// merge of shards picks the same winner from the merged table).
pub fn pick_winner(rows: &[PlanRow], objective: Objective) -> Option<usize> {
    let table: Vec<Vec<String>> = rows.iter().map(report::csv_row).collect();
    report::winner_of_table(&table, objective).map(|k| rows[k].index)
}
