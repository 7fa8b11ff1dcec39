//! Simulating the candidates that survive pruning: each run watches its finished
//! requests and stops as soon as a latency requirement provably fails, and the
//! runs go in waves, likely winners first, so a search stops once a wave has a
//! plan that meets every requirement.
//!
//! ## Stopping a run early
//!
//! Percentiles use the nearest-rank rule: p_q of n values is the value of rank
//! ceil(q n). It exceeds a bound B as soon as more than n - ceil(q n) values do.
//! A run of N requests finishes at most N, and n - ceil(q n) + 1 does not fall as n
//! grows, so once k = N - ceil(q N) + 1 finished requests are above B, p_q is above
//! B whatever happens next: the run stops and the plan fails that requirement. An
//! overloaded plan (queue growing without bound) gets there after about (1 - q) N
//! late requests instead of running to the end. The watcher is a
//! [`RequestSink`]: returning an error from it ends the run, so the simulator needs
//! no hook of its own.
//!
//! ## Waves
//!
//! With `--objective gpus|cost` the objective of a plan is known before it runs.
//! Survivors are sorted by (objective, physical limit descending, index) and run in
//! waves of at least [`WAVE`] plans, a wave always ending where the objective
//! changes. After a wave with a passing plan, plans of a higher objective cannot
//! win and are not run ("skipped"). Which plans run depends only on the sorted list
//! and the results of whole waves, never on thread timing: deterministic.

use super::Objective;
use crate::analysis::assess::{assess, Assessment};
use crate::error::{Error, Result};
use crate::metrics::recorder::RequestSink;
use crate::metrics::rows::RequestRow;
use crate::metrics::summary::Summary;
use crate::scenario::Setup;
use crate::serving::RunOptions;
use std::cell::RefCell;
use std::rc::Rc;

/// A latency requirement the watcher checks: percentile `q` of TTFT or TPOT <= bound.
#[derive(Clone, Debug, PartialEq)]
struct Watch {
    name: &'static str,
    tpot: bool,
    q: f64,
    bound_s: f64,
    /// Finished requests above the bound that prove failure.
    proof: u64,
    above: u64,
}

/// The watcher: counts finished requests above each bound, and ends the run when
/// one requirement is proven failed, leaving the reason in `stopped`.
struct EarlyStop {
    watches: Vec<Watch>,
    stopped: Rc<RefCell<Option<(String, f64)>>>,
}

/// Finished requests above the bound that prove p_q > bound in a run of `n`.
pub fn proof_count(n: u64, q: f64) -> u64 {
    let rank = (q * n as f64).ceil() as u64;
    n - rank.min(n) + 1
}

impl RequestSink for EarlyStop {
    fn write(&mut self, row: &RequestRow) -> Result<()> {
        for w in &mut self.watches {
            let (value, counts) = if w.tpot { (row.tpot_s, row.output_tokens > 1) } else { (row.ttft_s, true) };
            if counts && value > w.bound_s {
                w.above += 1;
                if w.above >= w.proof {
                    let why = format!(
                        "{} > {} s proven after {} requests above it (stopped at {:.1} s)",
                        w.name, w.bound_s, w.above, row.finish_s
                    );
                    *self.stopped.borrow_mut() = Some((why.clone(), row.finish_s));
                    return Err(Error::Run(format!("stopped early: {why}")));
                }
            }
        }
        Ok(())
    }
    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// What one simulated plan gave.
#[derive(Clone, Debug)]
pub enum RunResult {
    /// Ran to the end.
    Finished {
        /// Its summary (with cost figures).
        summary: Box<Summary>,
        /// Held against the requirements.
        assessment: Box<Assessment>,
    },
    /// Stopped once a requirement provably failed: why, and the simulated time it
    /// stopped at, s (later means the plan held out longer).
    Stopped(String, f64),
    /// Could not run.
    Failed(String),
}

impl RunResult {
    /// True when it ran to the end and met every requirement.
    pub fn passed(&self) -> bool {
        matches!(self, RunResult::Finished { assessment, .. } if assessment.passed())
    }
}

/// Simulates `setup`, stopping early when `early_stop` and a latency requirement
/// provably fails.
pub fn run_plan(setup: &Setup, early_stop: bool) -> RunResult {
    let stopped = Rc::new(RefCell::new(None));
    let requests: Option<Box<dyn RequestSink>> = if early_stop {
        watches(setup).map(|watches| Box::new(EarlyStop { watches, stopped: stopped.clone() }) as Box<dyn RequestSink>)
    } else {
        None
    };
    let outcome = crate::analysis::simulate_priced(setup, RunOptions { requests, ..Default::default() });
    if let Some((why, at)) = stopped.borrow_mut().take() {
        return RunResult::Stopped(why, at);
    }
    match outcome.and_then(|o| {
        let a = assess(setup, &o.report.summary)?;
        Ok((o.report.summary, a))
    }) {
        Ok((s, a)) => RunResult::Finished { summary: Box::new(s), assessment: Box::new(a) },
        Err(e) => RunResult::Failed(e.to_string()),
    }
}

fn watches(setup: &Setup) -> Option<Vec<Watch>> {
    let req = setup.requirements.as_ref()?;
    let n = setup.workload().ok()?.total_requests();
    let mk = |name, tpot, q, bound: Option<f64>| {
        bound.map(|bound_s| Watch { name, tpot, q, bound_s, proof: proof_count(n, q), above: 0 })
    };
    let w: Vec<Watch> = [
        mk("ttft p99", false, 0.99, req.ttft_p99_s),
        mk("ttft p50", false, 0.50, req.ttft_p50_s),
        mk("tpot p99", true, 0.99, req.tpot_p99_s),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!w.is_empty()).then_some(w)
}

/// The objective value of a plan known before it runs (`None` for energy).
pub fn prior_objective(objective: Objective, setup: &Setup) -> Option<f64> {
    match objective {
        Objective::Gpus => Some(setup.plan_gpus() as f64),
        Objective::Cost => setup.economics.usd_per_hour(setup.plan_gpus()),
        Objective::Energy => None,
    }
}

/// Fewest plans in a wave: enough to keep a few cores busy; a constant (not the
/// thread count) so which plans run does not depend on `--jobs`.
pub const WAVE: usize = 8;

/// Runs `order` (indices into `setups`) in waves and returns each one's result
/// (`None`: skipped, a dearer plan than a passing one). `prior[i]` is plan i's
/// objective when known before running; with `None` every plan runs.
pub fn run_waves(
    setups: &[&Setup],
    order: &[usize],
    prior: &[Option<f64>],
    jobs: usize,
    early_stop: bool,
) -> Result<Vec<Option<RunResult>>> {
    let mut results: Vec<Option<RunResult>> = vec![None; setups.len()];
    let mut at = 0;
    while at < order.len() {
        let mut end = (at + WAVE).min(order.len());
        // Close the wave where the objective changes (plans of one objective run together).
        while end < order.len() && prior[order[end]].is_some() && prior[order[end]] == prior[order[end - 1]] {
            end += 1;
        }
        if prior[order[at]].is_none() {
            end = order.len();
        }
        let wave = &order[at..end];
        let ran = crate::analysis::shard::run_points(wave.len() as u64, None, jobs, |k| {
            run_plan(setups[wave[k as usize]], early_stop)
        })?;
        let mut passed = false;
        for (k, r) in ran {
            passed |= r.passed();
            results[wave[k as usize]] = Some(r);
        }
        at = end;
        if passed && prior[order[at.saturating_sub(1)]].is_some() {
            break;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::proof_count;

    #[test]
    fn proof_counts_follow_nearest_rank() {
        // 2000 requests: p99 is rank ceil(1980) = 1980, so 2000 - 1980 + 1 = 21 values
        // above the bound put the 1980th above it.
        assert_eq!(proof_count(2000, 0.99), 21);
        // 10 requests: p99 is rank ceil(9.9) = 10 (the maximum): one value above is enough.
        assert_eq!(proof_count(10, 0.99), 1);
        // 10 requests, p50 is rank 5: 6 values above put the 5th above.
        assert_eq!(proof_count(10, 0.5), 6);
    }
}
