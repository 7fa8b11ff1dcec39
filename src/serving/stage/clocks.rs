//! Per-GPU clocks while a stage run is worked out: compute advances one GPU's clock;
//! a collective starts when its last member arrives (the others wait) and all leave
//! together after the transfer.

use super::{LocalSpan, Work};
use crate::engine::time::SimTime;
use crate::metrics::recorder::Activity;
use crate::parallel::ledger::{CommKind, GpuState, GpuTotals};

/// Per-GPU clocks and the work booked so far.
pub(super) struct Clocks<'s> {
    pub(super) t: Vec<u64>,
    pub(super) work: Vec<GpuTotals>,
    last_compute: Vec<u64>,
    overlap: bool,
    spans: Option<&'s mut Vec<LocalSpan>>,
}

/// Exposed part of a collective of `comm` ns after `compute` ns of work, when both are
/// split into two chunks so chunk 1's transfer runs under chunk 2's computation:
/// compute c/2, then max(c/2, m/2), then m/2 - so m/2 + max(0, (m - c)/2) stays exposed.
pub fn exposed_with_overlap(comm: u64, compute: u64) -> u64 {
    comm / 2 + comm.saturating_sub(compute) / 2
}

impl<'s> Clocks<'s> {
    /// `n` GPUs at time zero.
    pub(super) fn new(n: usize, overlap: bool, spans: Option<&'s mut Vec<LocalSpan>>) -> Self {
        Clocks { t: vec![0; n], work: vec![GpuTotals::default(); n], last_compute: vec![0; n], overlap, spans }
    }

    /// GPU `g` computes `w` at `speed` (1 = full speed).
    pub(super) fn compute(&mut self, g: usize, w: Work, speed: f64, what: Activity) {
        let ns = SimTime::from_ns_f64(w.ns / speed).as_ns();
        if let Some(s) = self.spans.as_deref_mut() {
            if ns > 0 {
                s.push(LocalSpan {
                    local_gpu: g as u32,
                    start_ns: self.t[g],
                    end_ns: self.t[g] + ns,
                    state: GpuState::Compute,
                    what,
                    flops: w.flops,
                    bytes: 0.0,
                });
            }
        }
        self.t[g] += ns;
        self.work[g].compute_ns += ns;
        self.work[g].flops += w.flops;
        self.last_compute[g] = ns;
    }

    /// A collective among `members`: starts at the latest arrival, takes `ns`.
    pub(super) fn collective(&mut self, members: &[usize], ns: u64, bytes: f64, what: Activity) {
        let k = what.comm_kind().unwrap_or(CommKind::Tp).index();
        let start = members.iter().map(|&g| self.t[g]).max().unwrap_or(0);
        let ns = if self.overlap {
            let before = members.iter().map(|&g| self.last_compute[g]).min().unwrap_or(0);
            exposed_with_overlap(ns, before)
        } else {
            ns
        };
        for &g in members {
            let wait = start - self.t[g];
            self.span(g, self.t[g], wait, GpuState::Wait, what, 0.0);
            self.span(g, start, ns, GpuState::Communicate, what, bytes);
            self.work[g].wait_ns[k] += wait;
            self.work[g].comm_ns[k] += ns;
            self.work[g].comm_bytes[k] += bytes;
            self.t[g] = start + ns;
        }
    }

    fn span(&mut self, g: usize, start: u64, ns: u64, state: GpuState, what: Activity, bytes: f64) {
        if let (Some(s), true) = (self.spans.as_deref_mut(), ns > 0) {
            s.push(LocalSpan {
                local_gpu: g as u32,
                start_ns: start,
                end_ns: start + ns,
                state,
                what,
                flops: 0.0,
                bytes,
            });
        }
    }
}
