//! Disaggregated serving: pools of prefill, decode (or mixed) instances, each pool
//! with its own GPU, nodes and plan, and the KV handoff between them.
//!
//! A request is routed to a prefill instance and a decode instance at arrival
//! ([`route`]). The prefill instance schedules it like any prompt (continuous
//! batching, chunked prefill) until its first token; its KV cache then moves to the
//! decode instance ([`handoff`]) over the NICs it crosses ([`net`]), booked on the
//! one fabric of the run, where it shares links by max-min fairness with the other
//! handoffs and the instances' own traffic, and it decodes there. TTFT ends when the KV has landed.
//! The pools reuse the co-located machinery: each has its own pipeline, replicas and
//! scheduler; [`sim`] only dispatches events.

mod audit;
pub mod handoff;
pub mod net;
pub mod pool;
pub mod route;
pub mod sim;
pub mod stats;

use crate::error::Result;
use crate::metrics::report::{build, PoolPlace, ReportContext};
use crate::scenario::Setup;
use crate::serving::{Outcome, RunOptions};

/// Simulates a scenario with `[[pools]]` to the end.
pub fn simulate(setup: &Setup, opts: RunOptions) -> Result<Outcome> {
    let workload = setup.workload()?;
    for w in workload.warnings() {
        eprintln!("warning: {w}");
    }
    let mut sim = sim::PoolSim::new(setup, workload, opts)?;
    sim.run()?;
    let ctx = report_context(setup, &sim);
    let (events, now) = (sim.events, sim.now);
    let names = (name(&setup.disaggregation.kv_transfer), name(&setup.disaggregation.router));
    let disagg = sim.stats.summary(&sim.pools, &sim.rec, now, (&names.0, &names.1));
    let mut report = build(&mut sim.rec, &ctx, now, events);
    report.summary.disaggregation = Some(disagg);
    let plan = ctx.plan.clone();
    let (spans, link_spans) = (std::mem::take(&mut sim.rec.spans), sim.link_spans());
    let batch_requests = std::mem::take(&mut sim.rec.batch_requests);
    Ok(Outcome { report, events, plan, spans, batch_requests, link_spans })
}

/// One line per pool of a pooled `setup`: role, instances, GPU, plan and KV capacity;
/// an error when a pool's plan does not fit in its GPUs' memory.
pub fn describe(setup: &Setup) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, p) in setup.pools.iter().enumerate() {
        let pool = pool::Pool::build(i, p, 0)?;
        let (s, plan) = (&p.setup, &pool.pipeline.asm.plan);
        let tokens = pool.pipeline.asm.kv_blocks_per_group as u64 * plan.ep as u64 * s.serving.kv_block_tokens as u64;
        lines.push(format!(
            "pool {i} ({}): {} instances on {} nodes ({} GPUs from GPU {}) of {}, plan pp={} tp={} ep={}, KV cache {tokens} tokens per instance",
            p.role.name(),
            plan.dp,
            s.nodes,
            s.total_gpus(),
            p.first_gpu,
            s.gpu.name,
            plan.pp,
            plan.tp,
            plan.ep
        ));
    }
    Ok(lines)
}

/// A setting's name as the scenario writes it.
fn name<T: serde::Serialize>(v: &T) -> String {
    toml::Value::try_from(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The report's facts: pool 0's, with the cluster's size and every pool placed.
fn report_context(setup: &Setup, sim: &sim::PoolSim) -> ReportContext {
    let mut first_replica = 0;
    let pools: Vec<PoolPlace> = sim
        .pools
        .iter()
        .zip(&setup.pools)
        .map(|(pool, ps)| {
            let kv_peak_blocks = pool.replicas.iter().map(|r| r.queues.kv.iter().map(|k| k.peak_used).collect());
            let ctx = ReportContext { kv_peak_blocks: kv_peak_blocks.collect(), ..pool.pipeline.asm.report.clone() };
            let place = PoolPlace { first_gpu: ps.first_gpu, first_node: ps.first_node, first_replica, ctx };
            first_replica += pool.replicas.len() as u32;
            place
        })
        .collect();
    let mut ctx = pools[0].ctx.clone();
    ctx.name = setup.name.clone();
    ctx.cluster_gpus = setup.total_gpus();
    ctx.network = Default::default();
    ctx.pools = pools;
    ctx
}
