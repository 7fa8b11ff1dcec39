//! Where each GPU's time went: computing, communicating, waiting, idle.
//!
//! Every GPU is at each instant in exactly one of the four states. Time is booked
//! two ways into the same totals: as durations (a serving run books a whole stage
//! run's compute, exposed communication and wait at once), or as transitions (the
//! flow-level collective runner says "GPU g is waiting from t"). Idle is what remains
//! of wall time, so the four always add up to wall time exactly (integer ns).

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
    /// Position in per-kind arrays (`[u64; 4]`), in [`Self::ALL`] order.
    pub fn index(self) -> usize {
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
    /// Exposed communication by kind ([`CommKind::index`]), ns.
    pub comm_ns: [u64; 4],
    /// Synchronization wait by kind, ns.
    pub wait_ns: [u64; 4],
    /// Model FLOPs executed.
    pub flops: f64,
    /// Payload bytes of the collectives it took part in, by kind (nccl-tests sizes;
    /// for all-to-all the volume one rank sends to the others).
    pub comm_bytes: [f64; 4],
    /// Communication time lost to traffic of other replicas or stages on shared links
    /// (already inside `comm_ns`), ns.
    pub contention_ns: u64,
}

impl GpuTotals {
    /// Computing + communicating + waiting, ns.
    pub fn busy_ns(&self) -> u64 {
        self.compute_ns + self.comm_total_ns() + self.wait_total_ns()
    }
    /// Communicating of one kind, ns.
    pub fn comm(&self, k: CommKind) -> u64 {
        self.comm_ns[k.index()]
    }
    /// Waiting of one kind, ns.
    pub fn wait(&self, k: CommKind) -> u64 {
        self.wait_ns[k.index()]
    }
    /// Communicating of every kind, ns.
    pub fn comm_total_ns(&self) -> u64 {
        self.comm_ns.iter().sum()
    }
    /// Waiting of every kind, ns.
    pub fn wait_total_ns(&self) -> u64 {
        self.wait_ns.iter().sum()
    }
    /// Idle, ns, given the wall time.
    pub fn idle_ns(&self, wall: SimTime) -> u64 {
        wall.as_ns().saturating_sub(self.busy_ns())
    }
    fn add(&mut self, state: GpuState, kind: CommKind, ns: u64) {
        match state {
            GpuState::Compute => self.compute_ns += ns,
            GpuState::Communicate => self.comm_ns[kind.index()] += ns,
            GpuState::Wait => self.wait_ns[kind.index()] += ns,
            GpuState::Idle => {}
        }
    }
}

/// The state a GPU entered at its last transition (transition-style booking).
#[derive(Clone, Copy, Debug)]
struct Open {
    state: GpuState,
    kind: CommKind,
    since: SimTime,
}

/// Per-GPU state totals for a whole cluster.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    gpus: Vec<GpuTotals>,
    open: Vec<Open>,
}

impl Ledger {
    /// A ledger for `n` GPUs, all idle from time zero.
    pub fn new(n: usize) -> Self {
        let idle = Open { state: GpuState::Idle, kind: CommKind::Tp, since: SimTime::ZERO };
        Ledger { gpus: vec![GpuTotals::default(); n], open: vec![idle; n] }
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
    /// Marks `ns` of its communication as lost to traffic of other replicas or stages.
    pub fn contend(&mut self, gpu: u32, ns: u64) {
        self.gpus[gpu as usize].contention_ns += ns;
    }
    /// Adds payload bytes of collectives of `kind`.
    pub fn moved(&mut self, gpu: u32, kind: CommKind, bytes: f64) {
        self.gpus[gpu as usize].comm_bytes[kind.index()] += bytes;
    }
    /// Adds synchronization wait.
    pub fn wait(&mut self, gpu: u32, kind: CommKind, ns: u64) {
        self.gpus[gpu as usize].wait_ns[kind.index()] += ns;
    }
    /// Takes back work booked ahead of a failure: `work` scaled by `share` (0..=1), with
    /// each part rounded as it was booked.
    pub fn take_back(&mut self, gpu: u32, work: &GpuTotals, share: f64) {
        let take = |ns: u64| (ns as f64 * share).round() as u64;
        let g = &mut self.gpus[gpu as usize];
        g.compute_ns = g.compute_ns.saturating_sub(take(work.compute_ns));
        g.flops = (g.flops - work.flops * share).max(0.0);
        for k in 0..4 {
            g.comm_ns[k] = g.comm_ns[k].saturating_sub(take(work.comm_ns[k]));
            g.wait_ns[k] = g.wait_ns[k].saturating_sub(take(work.wait_ns[k]));
            g.comm_bytes[k] = (g.comm_bytes[k] - work.comm_bytes[k] * share).max(0.0);
        }
    }
    /// Puts `gpu` in `state` (of `kind`, for communication and wait) from `at` on,
    /// booking the time since its last transition. Transitions of one GPU must come in
    /// time order; an earlier `at` is taken as the last transition's instant.
    pub fn set(&mut self, gpu: u32, state: GpuState, kind: CommKind, at: SimTime) {
        let g = gpu as usize;
        let open = self.open[g];
        let at = at.max(open.since);
        self.gpus[g].add(open.state, open.kind, (at - open.since).as_ns());
        self.open[g] = Open { state, kind, since: at };
    }
    /// The state `gpu` is in after its last transition, and since when.
    pub fn current(&self, gpu: u32) -> (GpuState, SimTime) {
        let o = self.open[gpu as usize];
        (o.state, o.since)
    }
    /// Totals of `gpu` up to `until`, its current state running to `until`.
    pub fn totals_until(&self, gpu: u32, until: SimTime) -> GpuTotals {
        let g = gpu as usize;
        let o = self.open[g];
        let mut t = self.gpus[g].clone();
        t.add(o.state, o.kind, until.saturating_sub(o.since).as_ns());
        t
    }
    /// One GPU's booked totals.
    pub fn gpu(&self, gpu: u32) -> &GpuTotals {
        &self.gpus[gpu as usize]
    }
    /// All GPUs' booked totals.
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

    #[test]
    fn transitions_book_into_the_same_totals() {
        // Idle 0-2 µs, compute 2-5, EP wait 5-6, EP transfer 6-10, idle after; at 12 µs:
        // compute 3 µs, wait 1 µs, comm 4 µs, idle 2 + 2 = 4 µs.
        let mut l = Ledger::new(1);
        l.set(0, GpuState::Compute, CommKind::Tp, SimTime::from_us(2));
        l.set(0, GpuState::Wait, CommKind::Ep, SimTime::from_us(5));
        l.set(0, GpuState::Communicate, CommKind::Ep, SimTime::from_us(6));
        l.set(0, GpuState::Idle, CommKind::Ep, SimTime::from_us(10));
        let t = l.totals_until(0, SimTime::from_us(12));
        assert_eq!((t.compute_ns, t.wait(CommKind::Ep), t.comm(CommKind::Ep)), (3_000, 1_000, 4_000));
        assert_eq!(t.idle_ns(SimTime::from_us(12)), 4_000);
        // Durations booked beside transitions land in the same totals.
        l.communicate(0, CommKind::Tp, 500);
        assert_eq!(l.totals_until(0, SimTime::from_us(12)).busy_ns(), 8_500);
    }

    #[test]
    fn take_back_removes_a_share_of_booked_work() {
        // 1,000 ns compute and 300 ns TP comm booked; a failure takes back 40 %: 400 and 120.
        let mut l = Ledger::new(1);
        let work = GpuTotals { compute_ns: 1_000, comm_ns: [300, 0, 0, 0], flops: 10.0, ..Default::default() };
        l.compute(0, 1_000, 10.0);
        l.communicate(0, CommKind::Tp, 300);
        l.take_back(0, &work, 0.4);
        assert_eq!((l.gpu(0).compute_ns, l.gpu(0).comm_ns[0]), (600, 180));
        assert!((l.gpu(0).flops - 6.0).abs() < 1e-12);
    }
}
