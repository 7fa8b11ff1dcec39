//! Serving on the simulated cluster: router, replica scheduler (continuous batching,
//! chunked prefill, paged KV cache), stage executor, and the simulation loop.
//!
//! [`simulate`] runs a validated scenario end to end and returns its report.

pub mod assemble;
pub mod calibration;
pub mod experts;
pub mod kv;
pub mod pricing;
pub mod request;
pub mod router;
pub mod scheduler;
pub mod sim;
pub mod stage;

use crate::error::Result;
use crate::metrics::report::{build, Report};
use crate::scenario::Setup;
use crate::workload::Workload;
pub use sim::RunOptions;

/// A finished run: its report and engine figures.
pub struct Outcome {
    /// Everything measured.
    pub report: Report,
    /// Events handled.
    pub events: u64,
}

/// Simulates `setup` to the end.
pub fn simulate(setup: &Setup, mut opts: RunOptions) -> Result<Outcome> {
    let asm = assemble::Assembly::build(setup)?;
    let workload = Workload::from_setup(setup)?;
    for w in workload.warnings() {
        eprintln!("warning: {w}");
    }
    let trace = opts.trace_json.take();
    let mut sim = sim::Simulation::new(setup, asm, workload, opts)?;
    sim.run()?;
    if let Some(path) = trace {
        crate::output::chrome::write_trace(&path, &sim.rec.spans, &sim.rec.batch_requests, &sim.assembly().plan)?;
    }
    let mut ctx = sim.assembly().report.clone();
    ctx.kv_peak_blocks_by_replica = sim.kv_peak_blocks();
    let events = sim.events();
    let now = sim.now();
    let report = build(&mut sim.rec, &ctx, now, events);
    Ok(Outcome { report, events })
}
