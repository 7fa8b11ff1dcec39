//! The N+1 verdict: does a plan still meet its requirements when a node fails at
//! the worst moment?
//!
//! 1. Run the plan as is, keeping each request's arrival, first token and finish.
//! 2. Peak load is the instant with the most requests in the system (arrived, not
//!    finished); the failure is placed there.
//! 3. Run again with every GPU of node 0 failing at that instant (a `gpu_failure`
//!    event per GPU, never repaired): their replicas drain and their requests are
//!    re-routed and prefilled again on the survivors.
//! 4. Bucket requests by arrival time ([`BUCKETS`] equal buckets over the arrival
//!    span) and take TTFT p99 per bucket (nearest rank). The SLO-violation window is
//!    the total width of buckets whose p99 exceeds `ttft_p99_s`.

use crate::analysis::assess::{assess, Assessment};
use crate::error::Result;
use crate::metrics::recorder::RequestSink;
use crate::metrics::rows::RequestRow;
use crate::metrics::stats::nearest_rank;
use crate::scenario::types::WhatIfEvent;
use crate::scenario::Setup;
use crate::serving::RunOptions;
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;

/// Arrival-time buckets of the TTFT p99 series.
pub const BUCKETS: usize = 40;

/// (arrival_s, ttft_s, finish_s) of one finished request.
type Row = (f64, f64, f64);
/// The rows a run collects.
type Times = Rc<RefCell<Vec<Row>>>;

struct Collect(Times);

impl RequestSink for Collect {
    fn write(&mut self, row: &RequestRow) -> Result<()> {
        self.0.borrow_mut().push((row.arrival_s, row.ttft_s, row.finish_s));
        Ok(())
    }
    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// The N+1 verdict of one plan.
#[derive(Clone, Debug, Serialize)]
pub struct Survival {
    /// When node 0 fails, s (peak load of the plain run).
    pub failure_at_s: f64,
    /// The GPUs that fail.
    pub failed_gpus: Vec<u32>,
    /// True when every requirement holds through the failure.
    pub holds: bool,
    /// The failure run held against the requirements.
    pub assessment: Assessment,
    /// Width of one bucket, s.
    pub bucket_s: f64,
    /// (bucket start s, TTFT p99 without failure, with failure); NaN for empty buckets.
    pub ttft_p99_series: Vec<(f64, f64, f64)>,
    /// Total width of buckets whose TTFT p99 exceeds the requirement, s.
    pub violation_window_s: f64,
    /// Requests re-routed (and prefilled again) after the failure.
    pub rerouted: u64,
    /// Requests dropped (no replica left).
    pub dropped: u64,
}

fn run_collect(setup: &Setup) -> Result<(crate::metrics::summary::Summary, Vec<Row>)> {
    let times: Times = Rc::new(RefCell::new(Vec::new()));
    let opts = RunOptions { requests: Some(Box::new(Collect(times.clone()))), ..Default::default() };
    let o = crate::analysis::simulate_priced(setup, opts)?;
    let t = times.borrow().clone();
    Ok((o.report.summary, t))
}

/// The instant with the most requests in the system.
pub fn peak_load_s(times: &[(f64, f64, f64)]) -> f64 {
    let mut ev: Vec<(f64, i64)> = times.iter().flat_map(|t| [(t.0, 1), (t.2, -1)]).collect();
    // Departures before arrivals at one instant: the count then only peaks on real overlap.
    ev.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut n, mut best, mut at) = (0i64, 0i64, 0.0);
    for (t, d) in ev {
        n += d;
        if n > best {
            (best, at) = (n, t);
        }
    }
    at
}

/// TTFT p99 per arrival bucket of width `w` from `start`, `BUCKETS` buckets.
fn p99_series(times: &[(f64, f64, f64)], start: f64, w: f64) -> Vec<f64> {
    let mut b: Vec<Vec<f64>> = vec![Vec::new(); BUCKETS];
    for t in times {
        let k = (((t.0 - start) / w).floor().max(0.0) as usize).min(BUCKETS - 1);
        b[k].push(t.1);
    }
    b.into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            nearest_rank(&v, 0.99).unwrap_or(f64::NAN)
        })
        .collect()
}

/// Runs the N+1 check of `setup`.
pub fn survive(setup: &Setup) -> Result<Survival> {
    let (_, plain) = run_collect(setup)?;
    let at = peak_load_s(&plain);
    let failed_gpus: Vec<u32> = (0..setup.gpus_per_node.min(setup.plan_gpus())).collect();
    let mut failing = setup.clone();
    failing.events.extend(failed_gpus.iter().map(|&gpu| WhatIfEvent::GpuFailure { at_s: at, until_s: None, gpu }));
    let (summary, hit) = run_collect(&failing)?;
    let assessment = assess(&failing, &summary)?;
    let start = plain.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
    let end = plain.iter().map(|t| t.0).fold(0.0, f64::max);
    let w = ((end - start) / BUCKETS as f64).max(1e-3);
    let (a, b) = (p99_series(&plain, start, w), p99_series(&hit, start, w));
    let bound = setup.requirements.as_ref().and_then(|r| r.ttft_p99_s);
    let violation_window_s = bound.map_or(0.0, |x| b.iter().filter(|p| **p > x).count() as f64 * w);
    Ok(Survival {
        failure_at_s: at,
        failed_gpus,
        holds: assessment.passed() && summary.requests.dropped == 0,
        assessment,
        bucket_s: w,
        ttft_p99_series: (0..BUCKETS).map(|k| (start + k as f64 * w, a[k], b[k])).collect(),
        violation_window_s,
        rerouted: summary.requests.rerouted,
        dropped: summary.requests.dropped,
    })
}

/// Draws TTFT p99 per bucket with and without the failure, the requirement and the
/// failure instant (a vertical line) into `path`.
pub fn chart(path: &std::path::Path, s: &Survival, bound: Option<f64>) -> Result<()> {
    let pts = |f: fn(&(f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        s.ttft_p99_series.iter().filter(|p| f(p).is_finite()).map(|p| (p.0, f(p))).collect()
    };
    let with = pts(|p| p.2);
    let top = with.iter().chain(&pts(|p| p.1)).map(|p| p.1).fold(bound.unwrap_or(0.0), f64::max);
    let mut series = vec![
        ("without failure".to_string(), pts(|p| p.1)),
        (format!("node 0 fails at {:.1} s", s.failure_at_s), with),
        ("failure".to_string(), vec![(s.failure_at_s, 0.0), (s.failure_at_s, top)]),
    ];
    if let (Some(b), Some(first), Some(last)) = (bound, s.ttft_p99_series.first(), s.ttft_p99_series.last()) {
        series.push((format!("requirement {b} s"), vec![(first.0, b), (last.0 + s.bucket_s, b)]));
    }
    crate::analysis::line_chart_svg(path, "TTFT p99 per arrival bucket", "arrival time, s", "TTFT p99, s", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_load_is_where_most_requests_overlap() {
        // [0, 5], [1, 3], [2, 4]: three in the system from 2 to 3.
        assert_eq!(peak_load_s(&[(0.0, 0.1, 5.0), (1.0, 0.1, 3.0), (2.0, 0.1, 4.0)]), 2.0);
    }
}
