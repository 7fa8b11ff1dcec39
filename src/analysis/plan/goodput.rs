//! Goodput: the highest Poisson arrival rate at which a plan still meets the
//! latency requirements (TTFT p50/p99, TPOT p99), found by bisection on
//! `workload.arrival.rate_per_s`.
//!
//! The bracket is `[0, R]` with `R` the rate at which the plan's GPUs would run
//! at their physical limit: `R = limit x GPUs x 1000 / (mean prompt + mean output)`
//! requests/s; no rate above it can be sustained, so the answer lies inside. Each
//! step halves the bracket; [`STEPS`] steps leave it at `R / 2^STEPS`. Latency is
//! taken as rising with the rate (more load never shortens queues), which is what
//! makes bisection valid. Only the best passing plan of each GPU count is measured.

use super::prune::Checked;
use super::search::{run_plan, RunResult};
use super::{PlanOptions, PlanSearch};
use crate::analysis::assess::assess;
use crate::error::{Error, Result};
use crate::scenario::types::ArrivalConfig;
use crate::scenario::Setup;
use std::collections::BTreeMap;

/// Bisection steps: the bracket shrinks to 1/1024 of the limit rate.
pub const STEPS: u32 = 10;

/// True when `setup` at `rate_per_s` meets its latency requirements.
fn meets_latency(setup: &Setup, rate_per_s: f64) -> bool {
    let mut s = setup.clone();
    s.workload.arrival = Some(ArrivalConfig::Poisson { rate_per_s });
    // Throughput and GPU-count targets are not latency: goodput ignores them.
    if let Some(r) = s.requirements.as_mut() {
        r.throughput_tokens_per_ms_per_gpu = None;
        r.gpus_max = None;
    }
    match run_plan(&s, true) {
        RunResult::Finished { summary, .. } => assess(&s, &summary).is_ok_and(|a| a.passed()),
        _ => false,
    }
}

/// The goodput of `setup` (requests/s) by bisection between 0 and `max_rate`.
pub fn bisect(setup: &Setup, max_rate: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, max_rate);
    for _ in 0..STEPS {
        let mid = (lo + hi) / 2.0;
        if meets_latency(setup, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Fills `goodput_req_s` of the best passing plan of each GPU count.
pub fn fill(found: &mut PlanSearch, checked: &[Checked], opts: &PlanOptions) -> Result<()> {
    let mut best: BTreeMap<u32, usize> = BTreeMap::new();
    for r in found.rows.iter().filter(|r| r.passed()) {
        let g = r.candidate.gpus();
        let better = best.get(&g).is_none_or(|b| {
            let ttft = |i: usize| match &found.rows[i].result {
                Some(RunResult::Finished { summary, .. }) => summary.ttft_s.p99,
                _ => f64::INFINITY,
            };
            ttft(r.index) < ttft(*b)
        });
        if better {
            best.insert(g, r.index);
        }
    }
    let picks: Vec<usize> = best.into_values().collect();
    let mut jobs_input = Vec::new();
    for &i in &picks {
        let setup = checked[i].setup.as_ref().ok_or_else(|| Error::Run("internal: no scenario".into()))?;
        if !matches!(setup.workload.arrival, Some(ArrivalConfig::Poisson { .. })) || setup.trace_path.is_some() {
            return Err(Error::Usage(
                "search.goodput: needs a generated workload with a Poisson arrival process \
                 ([workload] arrival = { process = \"poisson\", ... })"
                    .into(),
            ));
        }
        let mix = crate::analysis::limit::workload_mix(setup)?;
        let tokens = mix.mean_prompt_tokens + mix.mean_output_tokens;
        let max_rate = found.rows[i].limit_tokens_per_ms_per_gpu * setup.plan_gpus() as f64 * 1e3 / tokens;
        jobs_input.push((i, setup, max_rate));
    }
    let out = crate::analysis::shard::run_points(jobs_input.len() as u64, None, opts.jobs, |k| {
        let (_, s, max) = jobs_input[k as usize];
        bisect(s, max)
    })?;
    for (k, g) in out {
        found.rows[jobs_input[k as usize].0].goodput_req_s = Some(g);
    }
    Ok(())
}
