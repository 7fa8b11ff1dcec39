//! The flow-level collective runner: collectives admitted one at a time, expanded into
//! transfers that run as flows on a shared [`Network`], so concurrent collectives slow
//! each other down exactly where they share links.
//!
//! A collective starts when its last rank arrives; the time each rank waits for the
//! others is recorded as synchronization wait, apart from the transfer time. A transfer
//! of step k starts once both its GPUs have finished their transfers of earlier steps,
//! so a slow link or rank delays exactly the ranks that depend on it. Each rank is
//! communicating from the start until its own last transfer completes, then idle.
//!
//! Driving it: like the network, ask [`CollectiveRunner::next_event_time`], wake up then
//! and call [`CollectiveRunner::step`]; or [`CollectiveRunner::run_to_end`]. Admitting a
//! collective can move the finishes of others: [`CollectiveRunner::admit_projected`]
//! returns the new collective's projected finish and every finish it moved (projection
//! runs a copy of the runner to the end, assuming nothing else is admitted).

use super::collective::AllReduceAlgorithm;
use super::collective::{
    expand, expand_all_to_all, expand_all_to_all_v, AllToAllAlgorithm, CollectiveOp, Schedule, Transfer,
};
use super::ledger::{CommKind, GpuState, GpuTotals, Ledger};
use crate::engine::{EventQueue, SimTime};
use crate::error::{Error, Result};
use crate::hardware::network::{FlowDone, Network};
use crate::hardware::topology::{LinkId, Topology};
use std::collections::BTreeMap;

/// Handle to an admitted collective; ids increase in admission order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollectiveId(pub u32);

/// A collective to run: its op and size (for bandwidth reports) and its steps.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectiveRequest {
    /// The operation.
    pub op: CollectiveOp,
    /// Buffer size S in bytes (nccl-tests convention).
    pub bytes: f64,
    /// The expanded steps.
    pub schedule: Schedule,
}

impl CollectiveRequest {
    /// Expands `op` of `bytes` over `ranks` with `alg` (used by all-reduce only).
    pub fn new(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32], bytes: f64) -> Result<Self> {
        Ok(CollectiveRequest { op, bytes, schedule: expand(topo, op, alg, ranks, bytes)? })
    }
    /// A uniform all-to-all of `bytes` per rank (S/n to each) posted as `alg` says.
    pub fn all_to_all(topo: &Topology, alg: AllToAllAlgorithm, ranks: &[u32], bytes: f64) -> Result<Self> {
        let n = ranks.len().max(1);
        let schedule = expand_all_to_all(topo, alg, ranks, &vec![bytes / n as f64; n * n])?;
        Ok(CollectiveRequest { op: CollectiveOp::AllToAll, bytes, schedule })
    }
    /// An all-to-all with `matrix[i * n + j]` bytes from `ranks[i]` to `ranks[j]`;
    /// `bytes` is reported as the largest row sum (what one rank sends).
    pub fn all_to_all_v(topo: &Topology, ranks: &[u32], matrix: &[f64]) -> Result<Self> {
        let schedule = expand_all_to_all_v(topo, ranks, matrix)?;
        let n = ranks.len();
        let bytes = (0..n).map(|i| matrix[i * n..(i + 1) * n].iter().sum::<f64>()).fold(0.0, f64::max);
        Ok(CollectiveRequest { op: CollectiveOp::AllToAll, bytes, schedule })
    }
}

/// A finished collective.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectiveDone {
    /// Its id.
    pub id: CollectiveId,
    /// The operation.
    pub op: CollectiveOp,
    /// Buffer size S, bytes.
    pub bytes: f64,
    /// Participating GPUs.
    pub ranks: Vec<u32>,
    /// When each rank arrived.
    pub arrivals: Vec<SimTime>,
    /// When the last rank arrived and transfers began.
    pub start: SimTime,
    /// When each rank finished its last transfer.
    pub rank_finish: Vec<SimTime>,
    /// When the last rank finished.
    pub finish: SimTime,
}

impl CollectiveDone {
    /// Transfer time t = finish - start (synchronization wait excluded).
    pub fn duration(&self) -> SimTime {
        self.finish - self.start
    }
    /// Synchronization wait of each rank: start - arrival.
    pub fn waits(&self) -> Vec<SimTime> {
        self.arrivals.iter().map(|&a| self.start.saturating_sub(a)).collect()
    }
    /// Algorithm bandwidth S/t, GB/s (10^9 bytes/s).
    pub fn algbw_gb_s(&self) -> f64 {
        let t = self.duration().as_secs_f64();
        if t > 0.0 {
            self.bytes / t / 1e9
        } else {
            0.0
        }
    }
    /// Bus bandwidth algbw x the nccl-tests factor of the op, GB/s.
    pub fn busbw_gb_s(&self) -> f64 {
        self.algbw_gb_s() * self.op.bus_factor(self.ranks.len())
    }
}

/// What admitting a collective did, from projections assuming nothing else arrives.
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    /// The new collective.
    pub id: CollectiveId,
    /// Its projected finish.
    pub finish: SimTime,
    /// Running collectives whose projected finish moved: (id, before, after).
    pub moved: Vec<(CollectiveId, SimTime, SimTime)>,
}

#[derive(Clone, Debug)]
struct Running {
    op: CollectiveOp,
    bytes: f64,
    ranks: Vec<u32>,
    arrivals: Vec<SimTime>,
    start: SimTime,
    transfers: Vec<Transfer>,
    /// The latency every transfer pays in place of its route's, when set.
    step_latency: Option<SimTime>,
    /// (src rank index, dst rank index) of each transfer.
    ends: Vec<(u32, u32)>,
    step_of: Vec<u32>,
    /// Transfers of step k are `transfers[step_off[k]..step_off[k + 1]]`.
    step_off: Vec<u32>,
    /// For step k and rank r: `inv[inv_off[k * (n + 1) + r] .. inv_off[k * (n + 1) + r + 1]]`
    /// are the transfers of step k that r takes part in.
    inv_off: Vec<u32>,
    inv: Vec<u32>,
    pending: Vec<u32>,
    started: Vec<bool>,
    step_done: Vec<u32>,
    rank_finish: Vec<Option<SimTime>>,
    ranks_left: usize,
}

impl Running {
    fn build(req: CollectiveRequest, arrivals: Vec<SimTime>, start: SimTime) -> Self {
        let ranks = req.schedule.ranks.clone();
        let n = ranks.len();
        let mut transfers = Vec::new();
        let mut step_off = vec![0u32];
        for p in &req.schedule.phases {
            for _ in 0..p.repeat {
                transfers.extend_from_slice(&p.transfers);
                step_off.push(transfers.len() as u32);
            }
        }
        let steps = step_off.len() - 1;
        // A transfer to or from a switch (NVLS) involves only its GPU end; the closed
        // form counts the same ends.
        let ends = crate::parallel::collective::rank_ends(&ranks, &transfers);
        let mut step_of = vec![0u32; transfers.len()];
        let mut pending = vec![0u32; steps * n];
        let mut inv_off = vec![0u32; steps * (n + 1)];
        let mut inv = vec![0u32; 2 * transfers.len()];
        for k in 0..steps {
            let (a, b) = (step_off[k] as usize, step_off[k + 1] as usize);
            let base = k * (n + 1);
            for (ti, &(s, d)) in ends.iter().enumerate().take(b).skip(a) {
                step_of[ti] = k as u32;
                pending[k * n + s as usize] += 1;
                pending[k * n + d as usize] += 1;
            }
            // Counting sort of (rank, transfer) pairs into the CSR.
            let mut off = 2 * a as u32;
            for r in 0..n {
                inv_off[base + r] = off;
                off += pending[k * n + r];
            }
            inv_off[base + n] = off;
            let mut fill: Vec<u32> = (0..n).map(|r| inv_off[base + r]).collect();
            for (ti, &(s, d)) in ends.iter().enumerate().take(b).skip(a) {
                inv[fill[s as usize] as usize] = ti as u32;
                fill[s as usize] += 1;
                inv[fill[d as usize] as usize] = ti as u32;
                fill[d as usize] += 1;
            }
        }
        Running {
            op: req.op,
            bytes: req.bytes,
            ranks,
            arrivals,
            start,
            started: vec![false; transfers.len()],
            transfers,
            step_latency: req.schedule.step_latency,
            ends,
            step_of,
            step_off,
            inv_off,
            inv,
            pending,
            step_done: vec![0; n],
            rank_finish: vec![None; n],
            ranks_left: n,
        }
    }

    fn steps(&self) -> u32 {
        (self.step_off.len() - 1) as u32
    }
}

/// What the runner's own queue holds (flow events live in the network's queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunnerEvent {
    /// The last rank of collective `id` has arrived: its first transfers start.
    Start(u32),
}

/// Runs collectives as flows over a topology, with per-GPU state accounting.
#[derive(Clone, Debug)]
pub struct CollectiveRunner {
    topo: Topology,
    net: Network,
    running: BTreeMap<u32, Running>,
    starts: EventQueue<RunnerEvent>,
    next_id: u32,
    ledger: Ledger,
    projection: Option<BTreeMap<CollectiveId, SimTime>>,
}

impl CollectiveRunner {
    /// An idle runner over `topology` at time zero.
    pub fn new(topology: &Topology) -> Self {
        CollectiveRunner {
            net: Network::new(topology),
            ledger: Ledger::new(topology.gpus() as usize),
            topo: topology.clone(),
            running: BTreeMap::new(),
            starts: EventQueue::new(),
            next_id: 0,
            projection: None,
        }
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }
    /// The network (loads, capacities, counters).
    pub fn network(&self) -> &Network {
        &self.net
    }
    /// The per-GPU state ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    /// State totals of `gpu` from zero to `until`.
    pub fn gpu_totals(&self, gpu: u32, until: SimTime) -> GpuTotals {
        self.ledger.totals_until(gpu, until)
    }
    /// Collectives admitted and not finished.
    pub fn active(&self) -> usize {
        self.running.len()
    }

    /// Sets `link`'s capacity (bytes/s) from the network's current instant on, for the
    /// transfers in flight too (call [`CollectiveRunner::run_until`] to the instant
    /// first). 0 is a failed link: its flows stall until the capacity is set again, so
    /// [`CollectiveRunner::run_to_end`] can return with [`CollectiveRunner::active`] > 0.
    pub fn set_link_capacity(&mut self, link: LinkId, bytes_per_s: f64) {
        self.projection = None;
        self.net.set_link_capacity(link, bytes_per_s);
    }

    /// Records a compute operator on `gpu` from `start` for `duration`; returns its end.
    /// Transitions of one GPU must be given in time order.
    pub fn compute(&mut self, gpu: u32, start: SimTime, duration: SimTime) -> SimTime {
        self.ledger.set(gpu, GpuState::Compute, CommKind::Tp, start);
        self.ledger.set(gpu, GpuState::Idle, CommKind::Tp, start + duration);
        start + duration
    }

    /// Admits a collective whose ranks arrive at `arrivals` (one per rank, in
    /// `req.schedule.ranks` order, none before the runner's clock). It starts when the
    /// last one arrives.
    pub fn admit(&mut self, req: CollectiveRequest, arrivals: &[SimTime]) -> Result<CollectiveId> {
        let n = req.schedule.ranks.len();
        if arrivals.len() != n {
            return Err(Error::Usage(format!("collective has {n} ranks but {} arrival times", arrivals.len())));
        }
        if let Some(&g) = req.schedule.ranks.iter().find(|&&g| g >= self.topo.gpus()) {
            return Err(Error::Usage(format!("rank GPU {g} is outside the cluster of {} GPUs", self.topo.gpus())));
        }
        self.projection = None;
        let now = self.net.now();
        let arrivals: Vec<SimTime> = arrivals.iter().map(|&a| a.max(now)).collect();
        let start = arrivals.iter().copied().max().unwrap_or(now);
        for (&g, &a) in req.schedule.ranks.iter().zip(&arrivals) {
            let kind = req.op.comm_kind();
            self.ledger.set(g, GpuState::Wait, kind, a);
            self.ledger.set(g, GpuState::Communicate, kind, start);
        }
        let id = self.next_id;
        self.next_id += 1;
        // The first step waits for the schedule's start-up (NVLS's set-up), communicating.
        let first_step = start + req.schedule.startup;
        self.running.insert(id, Running::build(req, arrivals, start));
        self.starts.schedule(first_step, RunnerEvent::Start(id));
        Ok(CollectiveId(id))
    }

    /// Admits a collective and reports its projected finish and the finishes it moved.
    /// Costs two runs of a copy of the runner to the end.
    pub fn admit_projected(&mut self, req: CollectiveRequest, arrivals: &[SimTime]) -> Result<Admission> {
        let before = match self.projection.take() {
            Some(p) => p,
            None => self.projected_finishes(),
        };
        let id = self.admit(req, arrivals)?;
        let after = self.projected_finishes();
        let finish = after.get(&id).copied().unwrap_or(SimTime::MAX);
        let moved =
            after.iter().filter_map(|(k, &t)| before.get(k).filter(|&&b| b != t).map(|&b| (*k, b, t))).collect();
        self.projection = Some(after);
        Ok(Admission { id, finish, moved })
    }

    /// Projected finish of every admitted, unfinished collective if nothing else arrives.
    pub fn projected_finishes(&self) -> BTreeMap<CollectiveId, SimTime> {
        let mut copy = self.clone();
        copy.run_to_end().into_iter().map(|d| (d.id, d.finish)).collect()
    }

    /// The next instant something happens (a start, a drain or a completion).
    pub fn next_event_time(&mut self) -> Option<SimTime> {
        let s = self.starts.peek_time();
        match (s, self.net.next_event_time()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the next instant; returns it and the collectives that finished then.
    pub fn step(&mut self) -> Option<(SimTime, Vec<CollectiveDone>)> {
        let t = self.next_event_time()?;
        let mut done = Vec::new();
        loop {
            while self.starts.peek_time() == Some(t) {
                let Some((_, RunnerEvent::Start(id))) = self.starts.pop() else { break };
                self.net.advance_clock(t);
                self.begin(id, t, &mut done);
            }
            match self.net.next_event_time() {
                Some(nt) if nt == t => {
                    if let Some((_, flows)) = self.net.step() {
                        for f in flows {
                            self.on_flow_done(f, &mut done);
                        }
                    }
                }
                _ => break,
            }
        }
        Some((t, done))
    }

    /// Runs every instant up to and including `until`.
    pub fn run_until(&mut self, until: SimTime) -> Vec<CollectiveDone> {
        let mut out = Vec::new();
        while self.next_event_time().is_some_and(|t| t <= until) {
            if let Some((_, mut d)) = self.step() {
                out.append(&mut d);
            }
        }
        self.net.advance_clock(until);
        out
    }

    /// Runs until nothing is pending.
    pub fn run_to_end(&mut self) -> Vec<CollectiveDone> {
        let mut out = Vec::new();
        while let Some((_, mut d)) = self.step() {
            out.append(&mut d);
        }
        out
    }

    fn begin(&mut self, id: u32, t: SimTime, done: &mut Vec<CollectiveDone>) {
        let n = self.running.get(&id).map_or(0, |c| c.ranks.len());
        for r in 0..n {
            self.rank_ready(id, r as u32, t, done);
        }
    }

    /// Rank `r` has finished every step before `step_done[r]`: start what it can of
    /// the next step, or move past steps it has no part in.
    fn rank_ready(&mut self, id: u32, r: u32, t: SimTime, done: &mut Vec<CollectiveDone>) {
        let Some(c) = self.running.get_mut(&id) else { return };
        let n = c.ranks.len();
        let ri = r as usize;
        loop {
            let k = c.step_done[ri];
            if k == c.steps() {
                c.rank_finish[ri] = Some(t);
                c.ranks_left -= 1;
                self.ledger.set(c.ranks[ri], GpuState::Idle, c.op.comm_kind(), t);
                if c.ranks_left == 0 {
                    if let Some(c) = self.running.remove(&id) {
                        done.push(CollectiveDone {
                            id: CollectiveId(id),
                            op: c.op,
                            bytes: c.bytes,
                            ranks: c.ranks,
                            arrivals: c.arrivals,
                            start: c.start,
                            rank_finish: c.rank_finish.iter().map(|f| f.unwrap_or(t)).collect(),
                            finish: t,
                        });
                    }
                }
                return;
            }
            let ku = k as usize;
            if c.pending[ku * n + ri] == 0 {
                c.step_done[ri] += 1;
                continue;
            }
            let base = ku * (n + 1);
            for p in c.inv_off[base + ri]..c.inv_off[base + ri + 1] {
                let ti = c.inv[p as usize] as usize;
                if c.started[ti] {
                    continue;
                }
                let (s, d) = c.ends[ti];
                let other = if s == r { d } else { s };
                if c.step_done[other as usize] >= k {
                    c.started[ti] = true;
                    let tr = c.transfers[ti];
                    let route = Schedule::route(&self.topo, c.step_latency, &tr);
                    self.net.start_flow(route, tr.bytes, (u64::from(id) << 32) | ti as u64);
                }
            }
            return;
        }
    }

    fn on_flow_done(&mut self, f: FlowDone, done: &mut Vec<CollectiveDone>) {
        let id = (f.tag >> 32) as u32;
        let ti = (f.tag & 0xffff_ffff) as usize;
        let mut ready = [None, None];
        if let Some(c) = self.running.get_mut(&id) {
            let n = c.ranks.len();
            let k = c.step_of[ti] as usize;
            let (s, d) = c.ends[ti];
            for (slot, x) in [s, d].into_iter().enumerate() {
                let xi = x as usize;
                c.pending[k * n + xi] -= 1;
                if c.pending[k * n + xi] == 0 && c.step_done[xi] as usize == k {
                    c.step_done[xi] += 1;
                    ready[slot] = Some(x);
                }
            }
        }
        for x in ready.into_iter().flatten() {
            self.rank_ready(id, x, f.finish, done);
        }
    }
}
