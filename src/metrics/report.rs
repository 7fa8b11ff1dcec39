//! From a finished run's recorder to summary.json and the per-GPU / per-bucket rows.

use super::recorder::{Activity, Recorder};
use super::rows::{GpuRow, SeriesRow, TimelineRow, UtilizationRow};
use super::stats::{cv, dist};
use super::summary::*;
use crate::engine::SimTime;
use crate::parallel::ledger::{CommKind, GpuState};
use crate::parallel::plan::{Plan, Rank};

/// Facts about the cluster the report needs besides the recorder.
#[derive(Clone, Debug)]
pub struct ReportContext {
    /// Scenario name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// The plan.
    pub plan: Plan,
    /// GPUs in the cluster (the plan may use fewer).
    pub cluster_gpus: u32,
    /// Peak FLOP/s of one GPU for the model's dtype (for MFU).
    pub peak_flops_per_gpu: f64,
    /// Capacity per GPU, GiB.
    pub capacity_gib: f64,
    /// Weights per GPU, GiB, by stage.
    pub weights_gib_by_stage: Vec<f64>,
    /// KV cache reserved per GPU, GiB.
    pub kv_gib_per_gpu: f64,
    /// KV bytes one token takes on one GPU, by stage.
    pub kv_bytes_per_token_by_stage: Vec<f64>,
    /// Tokens per KV block.
    pub kv_block_tokens: u32,
    /// Activation workspace per GPU, GiB.
    pub activations_gib_per_gpu: f64,
    /// Peak KV blocks used, by replica.
    pub kv_peak_blocks: Vec<Vec<u32>>,
    /// How collective payload becomes link traffic (for the network section).
    pub network: super::network::NetworkFacts,
    /// The pools of a disaggregated run, each with its own facts (empty otherwise:
    /// `plan` then describes every GPU).
    pub pools: Vec<PoolPlace>,
}

/// Where a pool of a disaggregated run sits in the cluster.
#[derive(Clone, Debug)]
pub struct PoolPlace {
    /// Its first GPU.
    pub first_gpu: u32,
    /// Its first node.
    pub first_node: u32,
    /// Its first instance in the run's numbering.
    pub first_replica: u32,
    /// Its own facts (plan, memory, capacity), numbered from its first GPU.
    pub ctx: ReportContext,
}

/// GPU `g`'s rank (replica numbered over the run), node, memory and capacity.
fn place(ctx: &ReportContext, g: u32) -> (Option<Rank>, u32, GpuMemory, f64) {
    let Some(p) = ctx.pools.iter().rev().find(|p| p.first_gpu <= g) else {
        let rank = ctx.plan.rank_of(g);
        return (rank, ctx.plan.node_of(g), gpu_memory(ctx, rank), ctx.capacity_gib);
    };
    let local = p.ctx.plan.rank_of(g - p.first_gpu);
    let mem = gpu_memory(&p.ctx, local);
    let rank = local.map(|r| Rank { replica: r.replica + p.first_replica, ..r });
    (rank, p.first_node + p.ctx.plan.node_of(g - p.first_gpu), mem, p.ctx.capacity_gib)
}

/// GPUs the plan (or every pool's plan) uses, and their peak FLOP/s in all.
fn used_gpus(ctx: &ReportContext) -> (u32, f64) {
    if ctx.pools.is_empty() {
        return (ctx.plan.gpus(), ctx.plan.gpus() as f64 * ctx.peak_flops_per_gpu);
    }
    let gpus = ctx.pools.iter().map(|p| p.ctx.plan.gpus()).sum();
    (gpus, ctx.pools.iter().map(|p| p.ctx.plan.gpus() as f64 * p.ctx.peak_flops_per_gpu).sum())
}

use crate::hardware::spec::GIB;

/// Everything a finished run reports.
#[derive(Clone, Debug)]
pub struct Report {
    /// summary.json.
    pub summary: Summary,
    /// gpus.csv rows.
    pub gpus: Vec<GpuRow>,
    /// timeline.csv rows.
    pub timeline: Vec<TimelineRow>,
    /// utilization.csv rows.
    pub utilization: Vec<UtilizationRow>,
    /// series.csv rows.
    pub series: Vec<SeriesRow>,
}

fn frac(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Sums over the GPUs the plan uses, gathered while the per-GPU rows are built.
#[derive(Default)]
struct GpuTotals {
    compute_ns: u64,
    comm_ns: u64,
    wait_ns: u64,
    /// Communication by `CommKind` index (tp, pp, ep, dp).
    kind_comm_ns: [u64; 4],
    /// Waiting by `CommKind` index (tp, pp, ep, dp).
    kind_wait_ns: [u64; 4],
    busy_fracs: Vec<f64>,
    busy_ns: Vec<f64>,
    flops: f64,
    peak_fraction_max: f64,
    kv_peak_gib_max: f64,
}

/// Memory one GPU holds, GiB: weights, KV reserved, KV at its peak, activations.
struct GpuMemory {
    weights: f64,
    kv: f64,
    kv_peak: f64,
    act: f64,
}

/// Builds the report. `wall` is the simulated end; `events` the events handled.
pub fn build(rec: &mut Recorder, ctx: &ReportContext, wall: SimTime, events: u64) -> Report {
    let used = used_gpus(ctx).0;
    let (gpus, totals) = gpu_rows(rec, ctx, wall);
    let summary = summarize(rec, ctx, &totals, wall, events);
    Report {
        summary,
        gpus,
        timeline: timeline_rows(rec),
        utilization: utilization_rows(rec, used),
        series: series_rows(rec),
    }
}

/// One row per GPU of the cluster, and the totals over those the plan uses.
fn gpu_rows(rec: &Recorder, ctx: &ReportContext, wall: SimTime) -> (Vec<GpuRow>, GpuTotals) {
    let wall_ns = wall.as_ns() as f64;
    let mut gpus = Vec::with_capacity(ctx.cluster_gpus as usize);
    let mut tot = GpuTotals::default();
    for g in 0..ctx.cluster_gpus {
        let t = rec.ledger.gpu(g).clone();
        let (rank, node, mem, capacity_gib) = place(ctx, g);
        let comm: u64 = t.comm_ns.iter().sum();
        let wait: u64 = t.wait_ns.iter().sum();
        if rank.is_some() {
            tot.compute_ns += t.compute_ns;
            tot.comm_ns += comm;
            tot.wait_ns += wait;
            for k in 0..4 {
                tot.kind_comm_ns[k] += t.comm_ns[k];
                tot.kind_wait_ns[k] += t.wait_ns[k];
            }
            tot.busy_fracs.push(frac(t.compute_ns as f64, wall_ns));
            tot.busy_ns.push(t.compute_ns as f64);
            tot.flops += t.flops;
            tot.peak_fraction_max = tot.peak_fraction_max.max(frac(mem.weights + mem.kv_peak + mem.act, capacity_gib));
            tot.kv_peak_gib_max = tot.kv_peak_gib_max.max(mem.kv_peak);
        }
        let s = |ns: u64| ns as f64 * 1e-9;
        gpus.push(GpuRow {
            gpu: g,
            node,
            replica: rank.map_or(-1, |r| r.replica as i64),
            stage: rank.map_or(-1, |r| r.stage as i64),
            tp_rank: rank.map_or(-1, |r| r.tp_rank as i64),
            ep_rank: rank.map_or(-1, |r| r.ep_rank as i64),
            compute_s: s(t.compute_ns),
            communicate_s: s(comm),
            wait_s: s(wait),
            idle_s: s(t.idle_ns(wall)),
            utilization: frac(t.compute_ns as f64, wall_ns),
            overhead_fraction: frac((comm + wait) as f64, t.busy_ns() as f64),
            tp_comm_s: s(t.comm(CommKind::Tp)),
            tp_wait_s: s(t.wait(CommKind::Tp)),
            pp_comm_s: s(t.comm(CommKind::Pp)),
            pp_wait_s: s(t.wait(CommKind::Pp)),
            ep_comm_s: s(t.comm(CommKind::Ep)),
            ep_wait_s: s(t.wait(CommKind::Ep)),
            weights_gib: mem.weights,
            kv_gib: mem.kv,
            kv_peak_gib: mem.kv_peak,
            activations_gib: mem.act,
            comm_gb: t.comm_bytes.iter().sum::<f64>() / 1e9,
            contention_s: ctx.network.contention_ns(g as usize, &t) * 1e-9,
            capacity_gib,
            flops: t.flops,
        });
    }
    (gpus, tot)
}

/// What a GPU holds: its stage's weights and KV, its pool's peak; nothing if unused.
fn gpu_memory(ctx: &ReportContext, rank: Option<Rank>) -> GpuMemory {
    let Some(r) = rank else { return GpuMemory { weights: 0.0, kv: 0.0, kv_peak: 0.0, act: 0.0 } };
    let s = r.stage as usize;
    let pools = ctx.kv_peak_blocks.get(r.replica as usize);
    let peak_blocks = pools.and_then(|p| p.get(r.ep_rank as usize)).copied().unwrap_or(0);
    let kv_peak = peak_blocks as f64 * ctx.kv_block_tokens as f64 * ctx.kv_bytes_per_token_by_stage[s] / GIB;
    GpuMemory {
        weights: ctx.weights_gib_by_stage[s],
        kv: ctx.kv_gib_per_gpu,
        kv_peak,
        act: ctx.activations_gib_per_gpu,
    }
}

/// summary.json from the recorder's distributions and the per-GPU totals.
fn summarize(rec: &mut Recorder, ctx: &ReportContext, tot: &GpuTotals, wall: SimTime, events: u64) -> Summary {
    let (used, peak_flops) = used_gpus(ctx);
    let wall_s = wall.as_secs_f64();
    let window_s = rec.first_arrival.map_or(0.0, |f| rec.last_completion.saturating_sub(f).as_secs_f64());
    Summary {
        scenario: ctx.name.clone(),
        seed: ctx.seed,
        requests: RequestCounts {
            arrived: rec.arrived,
            completed: rec.completed,
            preempted: rec.preemptions,
            rerouted: rec.rerouted,
            dropped: rec.dropped,
            dropped_reasons: rec.dropped_reasons.clone(),
        },
        ttft_s: dist(&mut rec.ttft),
        tpot_s: dist(&mut rec.tpot),
        itl_s: rec.itl.dist(),
        e2e_s: dist(&mut rec.e2e),
        queue_s: dist(&mut rec.queue),
        throughput: throughput(rec, window_s, used),
        gpu: GpuSummary {
            count: used,
            utilization_mean: tot.busy_fracs.iter().sum::<f64>() / tot.busy_fracs.len().max(1) as f64,
            utilization_min: tot.busy_fracs.iter().copied().fold(f64::INFINITY, f64::min).clamp(0.0, 1.0),
            utilization_max: tot.busy_fracs.iter().copied().fold(0.0, f64::max),
            mfu: frac(tot.flops, peak_flops * wall_s),
        },
        memory: MemorySummary {
            capacity_gib: ctx.capacity_gib,
            weights_gib_per_gpu: ctx.weights_gib_by_stage.iter().copied().fold(0.0, f64::max),
            kv_gib_per_gpu: ctx.kv_gib_per_gpu,
            kv_peak_used_gib: tot.kv_peak_gib_max,
            activations_gib_per_gpu: ctx.activations_gib_per_gpu,
            peak_fraction_max: tot.peak_fraction_max,
        },
        overhead: overhead(tot),
        pipeline: Pipeline {
            bubble_fraction: 1.0 - frac(rec.pipeline_stage_busy_ns as f64, rec.pipeline_capacity_ns as f64).min(1.0),
        },
        load_imbalance: LoadImbalance {
            cv: cv(&tot.busy_ns),
            expert_cv: cv(&rec.expert_load.tokens.iter().map(|c| *c as f64).collect::<Vec<_>>()),
        },
        expert_load: rec.expert_load.summary(),
        sim: SimFigures { events, iterations: rec.iterations, simulated_s: wall_s },
        // Filled by `analysis::price` from the scenario's economics.
        cost: Default::default(),
        network: ctx.network.summarize(rec.ledger.all(), wall_s),
        // Filled by `serving::simulate` when prefix caching is on.
        prefix_cache: None,
        disaggregation: None,
    }
}

/// Token rates over the window from the first arrival to the last completion.
fn throughput(rec: &Recorder, window_s: f64, used: u32) -> Throughput {
    let total_tokens = (rec.output_tokens + rec.prompt_tokens) as f64;
    let per_ms_per_gpu = |tokens: f64| frac(tokens, window_s * 1e3 * used as f64);
    Throughput {
        window_s,
        output_tokens_per_s: frac(rec.output_tokens as f64, window_s),
        total_tokens_per_s: frac(total_tokens, window_s),
        tokens_per_ms_per_gpu: per_ms_per_gpu(total_tokens),
        output_tokens_per_ms_per_gpu: per_ms_per_gpu(rec.output_tokens as f64),
    }
}

/// Communication and waiting as fractions of busy time, overall and by kind.
fn overhead(tot: &GpuTotals) -> Overhead {
    let busy_total = (tot.compute_ns + tot.comm_ns + tot.wait_ns) as f64;
    let kind = |k: usize| KindOverhead {
        communication_fraction: frac(tot.kind_comm_ns[k] as f64, busy_total),
        wait_fraction: frac(tot.kind_wait_ns[k] as f64, busy_total),
        fraction: frac((tot.kind_comm_ns[k] + tot.kind_wait_ns[k]) as f64, busy_total),
    };
    Overhead {
        fraction: frac((tot.comm_ns + tot.wait_ns) as f64, busy_total),
        communication_fraction: frac(tot.comm_ns as f64, busy_total),
        wait_fraction: frac(tot.wait_ns as f64, busy_total),
        by_kind: OverheadByKind { tp: kind(0), pp: kind(1), ep: kind(2), dp: kind(3) },
    }
}

/// Window spans per GPU, sorted, with the gaps filled as idle.
fn timeline_rows(rec: &mut Recorder) -> Vec<TimelineRow> {
    let Some((a, b)) = rec.window else { return Vec::new() };
    rec.spans.sort_by_key(|s| (s.gpu, s.start, s.end));
    let mut rows = Vec::with_capacity(rec.spans.len() * 2);
    let mut i = 0;
    while i < rec.spans.len() {
        let gpu = rec.spans[i].gpu;
        let mut cursor = a;
        while i < rec.spans.len() && rec.spans[i].gpu == gpu {
            let s = rec.spans[i];
            if s.start > cursor {
                rows.push(row(gpu, cursor, s.start, GpuState::Idle, Activity::Idle, -1));
            }
            let start = s.start.max(cursor);
            if s.end > start {
                rows.push(row(gpu, start, s.end, s.state, s.what, s.batch as i64));
                cursor = s.end;
            }
            i += 1;
        }
        if cursor < b {
            rows.push(row(gpu, cursor, b, GpuState::Idle, Activity::Idle, -1));
        }
    }
    rows
}

fn row(gpu: u32, start: SimTime, end: SimTime, state: GpuState, what: Activity, batch: i64) -> TimelineRow {
    TimelineRow {
        gpu,
        start_s: start.as_secs_f64(),
        end_s: end.as_secs_f64(),
        state: state.name().to_string(),
        what: what.name().to_string(),
        batch,
    }
}

fn utilization_rows(rec: &Recorder, gpus: u32) -> Vec<UtilizationRow> {
    let width = rec.util.width();
    let w = width.as_ns() as f64;
    let mut rows = Vec::with_capacity(rec.util.len() * gpus as usize);
    for b in 0..rec.util.len() {
        for g in 0..gpus {
            rows.push(UtilizationRow {
                t_s: (b as u64 * width.as_ns()) as f64 * 1e-9,
                gpu: g,
                busy: (rec.util.get(b, g as usize) / w).min(1.0),
            });
        }
    }
    rows
}

fn series_rows(rec: &Recorder) -> Vec<SeriesRow> {
    let width = rec.series.width();
    (0..rec.series.len())
        .map(|b| SeriesRow {
            t_s: (b as u64 * width.as_ns()) as f64 * 1e-9,
            bucket_s: width.as_secs_f64(),
            output_tokens: rec.series.get(b, 0) as u64,
            prompt_tokens: rec.series.get(b, 1) as u64,
            queued: rec.series.get(b, 2) as u64,
            running: rec.series.get(b, 3) as u64,
        })
        .collect()
}
