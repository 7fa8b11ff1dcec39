//! Per-GPU state accounting: at every instant each GPU is in exactly one state, and
//! the states add up to wall time to the nanosecond.

use crate::engine::SimTime;

pub use crate::metrics::ledger::GpuState;

fn index(state: GpuState) -> usize {
    match state {
        GpuState::Idle => 0,
        GpuState::Compute => 1,
        GpuState::Wait => 2,
        GpuState::Communicate => 3,
    }
}

/// Time spent in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateTotals {
    /// Idle time.
    pub idle: SimTime,
    /// Computing time.
    pub computing: SimTime,
    /// Synchronization wait.
    pub waiting: SimTime,
    /// Exposed communication.
    pub communicating: SimTime,
}

impl StateTotals {
    /// The sum of the four states.
    pub fn sum(&self) -> SimTime {
        self.idle + self.computing + self.waiting + self.communicating
    }
}

/// State transitions of every GPU, kept as running totals (no event log).
#[derive(Clone, Debug)]
pub struct Ledger {
    state: Vec<GpuState>,
    since: Vec<SimTime>,
    totals: Vec<[SimTime; 4]>,
}

impl Ledger {
    /// `gpus` GPUs, all idle from time zero.
    pub fn new(gpus: usize) -> Self {
        Ledger {
            state: vec![GpuState::Idle; gpus],
            since: vec![SimTime::ZERO; gpus],
            totals: vec![[SimTime::ZERO; 4]; gpus],
        }
    }

    /// Puts `gpu` in `state` from `at` on. Transitions of one GPU must come in time
    /// order; an earlier `at` is taken as the last transition's instant.
    pub fn set(&mut self, gpu: u32, state: GpuState, at: SimTime) {
        let g = gpu as usize;
        let at = at.max(self.since[g]);
        let i = index(self.state[g]);
        self.totals[g][i] += at - self.since[g];
        self.state[g] = state;
        self.since[g] = at;
    }

    /// The state `gpu` is in after its last transition, and since when.
    pub fn current(&self, gpu: u32) -> (GpuState, SimTime) {
        (self.state[gpu as usize], self.since[gpu as usize])
    }

    /// Totals of `gpu` from time zero to `until` (the current state runs to `until`).
    pub fn totals(&self, gpu: u32, until: SimTime) -> StateTotals {
        let g = gpu as usize;
        let mut t = self.totals[g];
        t[index(self.state[g])] += until.saturating_sub(self.since[g]);
        StateTotals { idle: t[0], computing: t[1], waiting: t[2], communicating: t[3] }
    }
}
