//! Where each GPU's time went: computing, communicating, waiting, idle.
//!
//! Every GPU is at each instant in exactly one of the four states. The simulation
//! records computing, exposed communication and synchronization wait (split by
//! parallelism kind) as they happen; idle is what remains of wall time, so the four
//! always add up to wall time exactly (integer nanoseconds).

use crate::engine::SimTime;

/// The parallelism a communication or wait belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommKind {
    /// Tensor-parallel all-reduce.
    Tp,
    /// Pipeline send/recv.
    Pp,
    /// Expert-parallel all-to-all.
    Ep,
    /// Data-parallel traffic.
    Dp,
}

impl CommKind {
    /// All kinds, in report order.
    pub const ALL: [CommKind; 4] = [CommKind::Tp, CommKind::Pp, CommKind::Ep, CommKind::Dp];
    fn index(self) -> usize {
        self as usize
    }
}

/// The four GPU states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GpuState {
    /// Running kernels.
    Compute,
    /// Blocked on a transfer it takes part in (exposed communication).
    Communicate,
    /// Ready for a collective or receive whose partners are not there yet.
    Wait,
    /// No work.
    Idle,
}

impl GpuState {
    /// Lower-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            GpuState::Compute => "compute",
            GpuState::Communicate => "communicate",
            GpuState::Wait => "wait",
            GpuState::Idle => "idle",
        }
    }
}

/// Totals of one GPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuTotals {
    /// Computing, ns.
    pub compute_ns: u64,
    /// Exposed communication by kind, ns.
    pub comm_ns: [u64; 4],
    /// Synchronization wait by kind, ns.
    pub wait_ns: [u64; 4],
    /// Model FLOPs executed.
    pub flops: f64,
}

impl GpuTotals {
    /// Computing + communicating + waiting, ns.
    pub fn busy_ns(&self) -> u64 {
        self.compute_ns + self.comm_ns.iter().sum::<u64>() + self.wait_ns.iter().sum::<u64>()
    }
    /// Communicating of one kind, ns.
    pub fn comm(&self, k: CommKind) -> u64 {
        self.comm_ns[k.index()]
    }
    /// Waiting of one kind, ns.
    pub fn wait(&self, k: CommKind) -> u64 {
        self.wait_ns[k.index()]
    }
    /// Idle, ns, given the wall time.
    pub fn idle_ns(&self, wall: SimTime) -> u64 {
        wall.as_ns().saturating_sub(self.busy_ns())
    }
}

/// Per-GPU state totals for a whole cluster.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    gpus: Vec<GpuTotals>,
}

impl Ledger {
    /// A ledger for `n` GPUs, all idle.
    pub fn new(n: usize) -> Self {
        Ledger { gpus: vec![GpuTotals::default(); n] }
    }
    /// Adds computing time and FLOPs.
    pub fn compute(&mut self, gpu: u32, ns: u64, flops: f64) {
        let g = &mut self.gpus[gpu as usize];
        g.compute_ns += ns;
        g.flops += flops;
    }
    /// Adds exposed communication.
    pub fn communicate(&mut self, gpu: u32, kind: CommKind, ns: u64) {
        self.gpus[gpu as usize].comm_ns[kind.index()] += ns;
    }
    /// Adds synchronization wait.
    pub fn wait(&mut self, gpu: u32, kind: CommKind, ns: u64) {
        self.gpus[gpu as usize].wait_ns[kind.index()] += ns;
    }
    /// Takes back computing booked ahead of a failure.
    pub fn uncompute(&mut self, gpu: u32, ns: u64, flops: f64) {
        let g = &mut self.gpus[gpu as usize];
        g.compute_ns = g.compute_ns.saturating_sub(ns);
        g.flops = (g.flops - flops).max(0.0);
    }
    /// Takes back communication booked ahead of a failure.
    pub fn uncommunicate(&mut self, gpu: u32, kind: CommKind, ns: u64) {
        let v = &mut self.gpus[gpu as usize].comm_ns[kind.index()];
        *v = v.saturating_sub(ns);
    }
    /// Takes back waiting booked ahead of a failure.
    pub fn unwait(&mut self, gpu: u32, kind: CommKind, ns: u64) {
        let v = &mut self.gpus[gpu as usize].wait_ns[kind.index()];
        *v = v.saturating_sub(ns);
    }
    /// One GPU's totals.
    pub fn gpu(&self, gpu: u32) -> &GpuTotals {
        &self.gpus[gpu as usize]
    }
    /// All GPUs' totals.
    pub fn all(&self) -> &[GpuTotals] {
        &self.gpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_sum_to_wall_time() {
        // 3 ms compute + 1 ms TP + 0.5 ms PP wait on a 10 ms run leaves 5.5 ms idle.
        let mut l = Ledger::new(2);
        l.compute(1, 3_000_000, 1e9);
        l.communicate(1, CommKind::Tp, 1_000_000);
        l.wait(1, CommKind::Pp, 500_000);
        let g = l.gpu(1);
        let wall = SimTime::from_ms(10);
        assert_eq!(g.idle_ns(wall), 5_500_000);
        assert_eq!(g.busy_ns() + g.idle_ns(wall), wall.as_ns());
        assert_eq!(l.gpu(0).idle_ns(wall), wall.as_ns());
    }
}
