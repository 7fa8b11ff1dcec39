//! Per-GPU state accounting: at every instant each GPU is in exactly one state, and
//! the states add up to wall time to the nanosecond.

use crate::engine::SimTime;

/// What a GPU is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GpuState {
    /// No work.
    Idle,
    /// Running a compute operator.
    Computing,
    /// Ready for a collective whose other ranks have not all arrived (synchronization wait).
    Waiting,
    /// Blocked in a collective that has started (exposed communication).
    Communicating,
}

impl GpuState {
    fn index(self) -> usize {
        match self {
            GpuState::Idle => 0,
            GpuState::Computing => 1,
            GpuState::Waiting => 2,
            GpuState::Communicating => 3,
        }
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
        let i = self.state[g].index();
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
        t[self.state[g].index()] += until.saturating_sub(self.since[g]);
        StateTotals { idle: t[0], computing: t[1], waiting: t[2], communicating: t[3] }
    }
}
