//! The readable summary table `clustersim run` prints.

use crate::metrics::summary::{Dist, Summary};
use std::fmt::Write;

fn dist_line(out: &mut String, name: &str, d: &Dist) {
    let _ = writeln!(
        out,
        "  {name:<10} mean {:>9.4}  p50 {:>9.4}  p90 {:>9.4}  p99 {:>9.4}  max {:>9.4}",
        d.mean, d.p50, d.p90, d.p99, d.max
    );
}

/// Formats the main figures of a run, units in every label.
pub fn summary_table(s: &Summary) -> String {
    let mut o = String::new();
    let r = &s.requests;
    let _ = writeln!(o, "scenario {} (seed {})", s.scenario, s.seed);
    let _ = writeln!(
        o,
        "requests   {} arrived, {} completed, {} dropped, {} preemptions, {} re-routed",
        r.arrived, r.completed, r.dropped, r.preempted, r.rerouted
    );
    for reason in &r.dropped_reasons {
        let _ = writeln!(o, "  dropped: {reason}");
    }
    let _ = writeln!(o, "latency (s)");
    dist_line(&mut o, "TTFT", &s.ttft_s);
    dist_line(&mut o, "TPOT", &s.tpot_s);
    dist_line(&mut o, "ITL", &s.itl_s);
    dist_line(&mut o, "E2E", &s.e2e_s);
    dist_line(&mut o, "queue", &s.queue_s);
    let t = &s.throughput;
    let _ = writeln!(
        o,
        "throughput {:.1} output tokens/s, {:.1} total tokens/s, {:.3} tokens/ms/GPU (total), {:.3} output tokens/ms/GPU over {:.1} s",
        t.output_tokens_per_s, t.total_tokens_per_s, t.tokens_per_ms_per_gpu, t.output_tokens_per_ms_per_gpu, t.window_s
    );
    let g = &s.gpu;
    let _ = writeln!(
        o,
        "GPUs       {} used; utilization mean {:.1} % (min {:.1} %, max {:.1} %); MFU {:.1} %",
        g.count,
        g.utilization_mean * 100.0,
        g.utilization_min * 100.0,
        g.utilization_max * 100.0,
        g.mfu * 100.0
    );
    let m = &s.memory;
    let _ = writeln!(
        o,
        "memory     per GPU: weights {:.2} GiB, KV reserved {:.2} GiB (peak used {:.2} GiB), activations {:.2} GiB of {:.1} GiB; peak {:.1} %",
        m.weights_gib_per_gpu,
        m.kv_gib_per_gpu,
        m.kv_peak_used_gib,
        m.activations_gib_per_gpu,
        m.capacity_gib,
        m.peak_fraction_max * 100.0
    );
    let ov = &s.overhead;
    let k = &ov.by_kind;
    let _ = writeln!(
        o,
        "overhead   {:.1} % of busy time (communication {:.1} %, waiting {:.1} %): TP {:.1} %, PP {:.1} %, EP {:.1} %, DP {:.1} %",
        ov.fraction * 100.0,
        ov.communication_fraction * 100.0,
        ov.wait_fraction * 100.0,
        k.tp.fraction * 100.0,
        k.pp.fraction * 100.0,
        k.ep.fraction * 100.0,
        k.dp.fraction * 100.0
    );
    let _ = writeln!(
        o,
        "balance    per-GPU busy CV {:.3}, expert load CV {:.3}; pipeline bubble {:.1} %",
        s.load_imbalance.cv,
        s.load_imbalance.expert_cv,
        s.pipeline.bubble_fraction * 100.0
    );
    if let Some(e) = &s.expert_load {
        experts_line(&mut o, e);
    }
    let _ = writeln!(
        o,
        "simulated  {:.2} s, {} events, {} stage iterations",
        s.sim.simulated_s, s.sim.events, s.sim.iterations
    );
    if let Some(d) = &s.disaggregation {
        pools_lines(&mut o, d);
    }
    o
}

/// The MoE line: tokens per expert per step, the busiest expert, the hottest's share.
fn experts_line(o: &mut String, e: &crate::metrics::experts::ExpertLoadSummary) {
    let _ = writeln!(
        o,
        "experts    per step {:.1} tokens per expert, busiest {:.1} ({:.2} x mean); hottest expert {:.1} % of tokens",
        e.mean_tokens_per_expert_per_step,
        e.max_tokens_per_expert_per_step,
        e.imbalance,
        e.hottest_expert_share * 100.0
    );
}

/// The pools of a disaggregated run: one line each, the KV handoffs, the P:D balance.
fn pools_lines(o: &mut String, d: &crate::metrics::pools::DisaggSummary) {
    let _ = writeln!(o, "pools      ({} KV transfer, {} router)", d.kv_transfer, d.router);
    for (i, p) in d.pools.iter().enumerate() {
        let _ = writeln!(
            o,
            "  {i} {:<8} {} x {} (tp {} pp {} ep {}, {} GPUs): utilization {:.1} %, waiting mean {:.2} max {}, KV peak {:.1} %",
            p.role,
            p.replicas,
            p.gpu,
            p.tp,
            p.pp,
            p.ep,
            p.gpus,
            p.utilization_mean * 100.0,
            p.queue_mean,
            p.queue_max,
            p.kv_peak_fraction * 100.0
        );
    }
    if d.handoffs > 0 {
        let _ = writeln!(o, "KV handoff {} handoffs, {:.2} GB sent", d.handoffs, d.kv_gb);
        let ms = |x: &Dist| Dist {
            mean: x.mean * 1e3,
            p50: x.p50 * 1e3,
            p90: x.p90 * 1e3,
            p99: x.p99 * 1e3,
            max: x.max * 1e3,
            ..x.clone()
        };
        dist_line(o, "xfer (ms)", &ms(&d.kv_transfer_s));
        dist_line(o, "wait (ms)", &ms(&d.kv_wait_s));
        let b = &d.balance;
        let _ = writeln!(
            o,
            "P:D        {:.2} prefill per decode instance; waiting mean {:.2} prefill / {:.2} decode requests, {:.4} s / {:.4} s",
            b.prefill_to_decode_instances, b.prefill_queue_mean, b.decode_queue_mean, b.prefill_wait_s_mean, b.decode_wait_s_mean
        );
    }
}

/// One line saying which collectives of a stage share which links.
pub fn sharing_line(w: &crate::serving::pricing::Sharing) -> String {
    let groups: Vec<String> = w.groups.iter().map(|g| format!("{g:?}")).collect();
    let more = if w.links.len() > 4 { format!(" and {} more", w.links.len() - 4) } else { String::new() };
    let shown: Vec<&str> = w.links.iter().take(4).map(String::as_str).collect();
    format!(
        "replica {} stage {}: the {:?} collectives of GPU groups {} start together and share {}{more}; \
         they are priced by the flow model (max-min sharing), so each gets a share of those links",
        w.replica,
        w.stage,
        w.kind,
        groups.join(", "),
        shown.join(", ")
    )
}
