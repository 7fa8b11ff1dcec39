//! Serving on the simulated cluster: router, replica scheduler (continuous batching,
//! chunked prefill, paged KV cache), stage executor, and the simulation loop.
//!
//! [`simulate`] runs a validated scenario end to end and returns its report.

pub mod assemble;
pub mod calibration;
pub mod disagg;
pub mod experts;
pub mod intake;
pub mod kv;
pub mod links;
pub mod paced;
pub mod pipeline;
pub mod prefix;
pub mod pricing;
pub mod replica;
pub mod request;
pub mod router;
pub mod scheduler;
pub mod sim;
pub mod stage;
pub mod whatif;

use crate::error::Result;
use crate::metrics::recorder::{RequestSink, Span};
use crate::metrics::report::{build, Report};
use crate::parallel::plan::Plan;
use crate::scenario::Setup;
use std::collections::BTreeMap;

/// Options of one run.
#[derive(Default)]
pub struct RunOptions {
    /// Stream per-request rows here (e.g. `output::records::CsvRequestSink`).
    pub requests: Option<Box<dyn RequestSink>>,
    /// Timeline window in seconds (default: a few iterations in steady state).
    pub window_s: Option<(f64, f64)>,
    /// Called now and then with (completed, total) requests.
    pub progress: Option<Box<dyn FnMut(u64, u64)>>,
    /// End the run cleanly at this simulated time, s: requests still held are dropped
    /// with that reason, arrivals after it never come.
    pub max_simulated_s: Option<f64>,
}

/// A finished run: its report and engine figures.
pub struct Outcome {
    /// Everything measured.
    pub report: Report,
    /// Events handled.
    pub events: u64,
    /// The plan the run used.
    pub plan: Plan,
    /// Timeline spans inside the window, by GPU and start (for a Perfetto trace).
    pub spans: Vec<Span>,
    /// Request ids of each batch with spans in the window.
    pub batch_requests: BTreeMap<u64, Vec<u64>>,
    /// Transfers on links shared between replicas or stages inside the window, each
    /// with its link's name (for the trace's per-link tracks).
    pub link_spans: Vec<(String, paced::LinkSpan)>,
}

/// Simulates `setup` to the end.
pub fn simulate(setup: &Setup, opts: RunOptions) -> Result<Outcome> {
    if !setup.pools.is_empty() {
        prefix::config::refuse_with_pools(setup)?;
        return disagg::simulate(setup, opts);
    }
    let asm = assemble::Assembly::build(setup)?;
    let workload = setup.workload()?;
    for w in workload.warnings() {
        eprintln!("warning: {w}");
    }
    let mut sim = sim::Simulation::new(setup, asm, workload, opts)?;
    sim.run()?;
    let ctx = sim.report_context();
    let (events, now) = (sim.events, sim.now);
    let mut report = build(&mut sim.rec, &ctx, now, events);
    report.summary.prefix_cache = sim.prefix_summary();
    let plan = ctx.plan.clone();
    let spans = std::mem::take(&mut sim.rec.spans);
    let link_spans = sim.link_spans();
    Ok(Outcome { report, events, plan, spans, batch_requests: std::mem::take(&mut sim.rec.batch_requests), link_spans })
}
