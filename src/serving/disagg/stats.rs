//! What a pooled run measures beyond the recorder: handoff times, queue lengths on
//! each side over time, and each pool's figures for summary.json.

use super::pool::Pool;
use crate::engine::SimTime;
use crate::metrics::pools::{Balance, DisaggSummary, PoolSummary};
use crate::metrics::recorder::Recorder;
use crate::metrics::stats::dist;
use crate::scenario::pools::PoolRole;
use std::collections::VecDeque;

/// Pool-level accumulators.
pub struct PoolStats {
    last: SimTime,
    /// Requests waiting x ns, by pool.
    queue_area: Vec<f64>,
    queue_max: Vec<u64>,
    transfer_s: Vec<f64>,
    wait_s: Vec<f64>,
    /// Bytes sent over handoff links.
    pub kv_bytes: f64,
}

impl PoolStats {
    /// Empty accumulators for `pools`.
    pub fn new(pools: &[Pool]) -> Self {
        PoolStats {
            last: SimTime::ZERO,
            queue_area: vec![0.0; pools.len()],
            queue_max: vec![0; pools.len()],
            transfer_s: Vec::new(),
            wait_s: Vec::new(),
            kv_bytes: 0.0,
        }
    }

    /// Counts the queues as they stood from the last event to `t`.
    pub fn advance(&mut self, t: SimTime, pools: &[Pool], pending: &[VecDeque<u32>], insts: &[(u32, u32)]) {
        let dt = t.saturating_sub(self.last).as_ns() as f64;
        self.last = self.last.max(t);
        let mut waiting: Vec<u64> =
            pools.iter().map(|p| p.replicas.iter().map(|r| r.queues.waiting.len() as u64).sum()).collect();
        for (i, q) in pending.iter().enumerate() {
            waiting[insts[i].0 as usize] += q.len() as u64;
        }
        for (p, w) in waiting.into_iter().enumerate() {
            self.queue_area[p] += w as f64 * dt;
            self.queue_max[p] = self.queue_max[p].max(w);
        }
    }

    /// A handoff landed after `transfer_s` on the links and `wait_s` waiting for room.
    pub fn handoff(&mut self, transfer_s: f64, wait_s: f64) {
        self.transfer_s.push(transfer_s);
        self.wait_s.push(wait_s);
    }

    /// Handoffs that had to wait for decode-side blocks.
    pub fn waits(&self) -> usize {
        self.wait_s.iter().filter(|w| **w > 0.0).count()
    }

    /// The summary section, over `wall` simulated time.
    pub fn summary(&mut self, pools: &[Pool], rec: &Recorder, wall: SimTime, names: (&str, &str)) -> DisaggSummary {
        let wall_ns = wall.as_ns().max(1) as f64;
        let mut out = DisaggSummary {
            kv_transfer: names.0.into(),
            router: names.1.into(),
            handoffs: self.transfer_s.len() as u64,
            kv_transfer_s: dist(&mut self.transfer_s),
            kv_wait_s: dist(&mut self.wait_s),
            kv_gb: self.kv_bytes / 1e9,
            ..Default::default()
        };
        let mut side = [(0.0, 0u32); 2];
        for (i, p) in pools.iter().enumerate() {
            let plan = &p.pipeline.asm.plan;
            let gpus = p.first_gpu..p.first_gpu + p.used_gpus();
            let busy: f64 = gpus.clone().map(|g| rec.ledger.gpu(g).compute_ns as f64 / wall_ns).sum();
            let kv_peak =
                p.replicas.iter().flat_map(|r| r.queues.kv.iter()).map(|k| k.peak_used as f64 / k.total.max(1) as f64);
            let queue_mean = self.queue_area[i] / wall_ns;
            let s = usize::from(p.role == PoolRole::Decode);
            side[s].0 += queue_mean;
            side[s].1 += p.replicas.len() as u32;
            out.pools.push(PoolSummary {
                role: p.role.name().into(),
                gpu: p.gpu_name.clone(),
                replicas: p.replicas.len() as u32,
                tp: plan.tp,
                pp: plan.pp,
                ep: plan.ep,
                gpus: p.used_gpus(),
                utilization_mean: busy / p.used_gpus().max(1) as f64,
                queue_mean,
                queue_max: self.queue_max[i],
                kv_peak_fraction: kv_peak.fold(0.0, f64::max),
            });
        }
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        out.balance = Balance {
            prefill_to_decode_instances: if side[1].1 > 0 { side[0].1 as f64 / side[1].1 as f64 } else { 0.0 },
            prefill_queue_mean: side[0].0,
            decode_queue_mean: side[1].0,
            prefill_wait_s_mean: mean(&rec.queue),
            decode_wait_s_mean: out.kv_wait_s.mean,
        };
        out
    }
}
