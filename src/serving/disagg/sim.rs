//! The pooled run's event loop: it only dispatches events. Instances of every pool are
//! numbered in one list (pool 0's first); a request is prefilled on a prefill instance,
//! handed off ([`super::handoff`]), and decoded on a decode instance, or served whole
//! by one instance of a mixed pool.

use super::net::HandoffNet;
use super::pool::Pool;
use super::route::{PairRouting, SideView};
use super::stats::PoolStats;
use crate::engine::{EventId, EventQueue, SimTime};
use crate::error::Result;
use crate::metrics::recorder::Recorder;
use crate::scenario::pools::{KvTransferMode, PoolRole};
use crate::scenario::Setup;
use crate::serving::intake::Intake;
use crate::serving::links::{Move, Owner};
use crate::serving::paced::SharedFabric;
use crate::serving::replica::InFlight;
use crate::serving::request::{Request, RequestSlab};
use crate::serving::scheduler::BatchEntry;
use crate::serving::RunOptions;
use crate::workload::{RequestSpec, Workload};

/// Events of a pooled run.
#[derive(Clone, Debug)]
pub(super) enum Event {
    Arrival(RequestSpec),
    Stage0Free(u32),
    BatchDone(u32),
    /// The KV cache of the request in this slot has landed on its decode instance.
    Landed(u32),
}

/// A request on its way from prefill to decode.
#[derive(Clone, Debug)]
pub(super) struct Handoff {
    pub prefill: u32,
    pub decode: u32,
    /// Output tokens wanted (the prefill side sees 1).
    pub output_tokens: u32,
    /// Blocks reserved on the decode side, and their group, once reserved.
    pub reserved: Option<(u32, u32)>,
    /// Streaming began with the prefill at this time (layer-wise mode, reserved then).
    pub stream_from: Option<SimTime>,
    pub prefill_done_at: SimTime,
    pub transfer_start: SimTime,
    pub latency: SimTime,
    /// Once sent: when its last byte is due (as the fabric projects it) and the event
    /// of its landing, a latency later.
    pub landing: Option<(SimTime, EventId)>,
}

/// A pooled run in progress.
pub struct PoolSim {
    pub(super) queue: EventQueue<Event>,
    intake: Intake,
    pub(super) pools: Vec<Pool>,
    /// (pool, replica) of each instance.
    pub(super) insts: Vec<(u32, u32)>,
    prefill_side: Vec<u32>,
    decode_side: Vec<u32>,
    routing: PairRouting,
    pub(super) reqs: RequestSlab,
    pub(super) handoffs: Vec<Option<Handoff>>,
    /// Tokens / blocks routed to each decode instance and not landed yet.
    pub(super) incoming: Vec<(u64, u64)>,
    /// Prefilled requests waiting for KV blocks on each decode instance, in order.
    pub(super) pending: Vec<std::collections::VecDeque<u32>>,
    pub(super) net: HandoffNet,
    /// The one fabric of the cluster: every pool's traffic on shared links and every
    /// KV handoff (lent to a pool's pipeline while it books a batch; boxed, so lending
    /// moves a pointer).
    pub(super) fabric: Option<Box<SharedFabric>>,
    /// The first instance of each pool.
    first_inst: Vec<u32>,
    pub(super) mode: KvTransferMode,
    pub(super) sequence_kv: crate::model::memory::SequenceKv,
    pub(super) layers: u32,
    speeds: Vec<f64>,
    /// What the run measured.
    pub rec: Recorder,
    /// Pool-level measurements.
    pub stats: PoolStats,
    /// Events handled so far.
    pub events: u64,
    entries: Vec<BatchEntry>,
    progress: Option<Box<dyn FnMut(u64, u64)>>,
    /// Simulated time of the last event.
    pub now: SimTime,
    horizon: Option<SimTime>,
}

impl PoolSim {
    /// Prepares a pooled run of `setup`.
    pub fn new(setup: &Setup, workload: Workload, opts: RunOptions) -> Result<Self> {
        let (mut pools, mut first_inst) = (Vec::<Pool>::new(), Vec::new());
        for (i, p) in setup.pools.iter().enumerate() {
            let first = pools.iter().map(|p| p.replicas.len() as u32).sum();
            first_inst.push(first);
            pools.push(Pool::build(i, p, first)?);
        }
        let (net, fabric) = HandoffNet::join(&pools, &setup.pools, setup.gpus_per_node);
        let insts: Vec<(u32, u32)> = pools
            .iter()
            .enumerate()
            .flat_map(|(p, pool)| (0..pool.replicas.len() as u32).map(move |r| (p as u32, r)))
            .collect();
        let side = |roles: &[PoolRole]| -> Vec<u32> {
            (0..insts.len() as u32).filter(|i| roles.contains(&pools[insts[*i as usize].0 as usize].role)).collect()
        };
        let (prefill_side, decode_side) =
            (side(&[PoolRole::Prefill, PoolRole::Mixed]), side(&[PoolRole::Decode, PoolRole::Mixed]));
        let gpus = setup.total_gpus() as usize;
        let intake = Intake::new(workload, &opts);
        let mut rec = Recorder::new(gpus, gpus, setup.model.experts as usize, opts.requests)?;
        rec.window = opts.window_s.map(|(a, b)| (SimTime::from_secs_f64(a), SimTime::from_secs_f64(b)));
        let n = insts.len();
        Ok(PoolSim {
            queue: EventQueue::new(),
            intake,
            stats: PoolStats::new(&pools),
            net,
            fabric: fabric.map(Box::new),
            first_inst,
            pools,
            insts,
            prefill_side,
            decode_side,
            routing: PairRouting::new(setup.disaggregation.router, setup.seed),
            reqs: RequestSlab::default(),
            handoffs: Vec::new(),
            incoming: vec![(0, 0); n],
            pending: vec![Default::default(); n],
            mode: setup.disaggregation.kv_transfer,
            // One path for KV size: the whole model's KV of a sequence at tp = 1 (window
            // layers hold at most W tokens).
            sequence_kv: crate::model::memory::SequenceKv::of(&setup.model),
            layers: setup.model.layers,
            speeds: vec![1.0; gpus],
            rec,
            events: 0,
            entries: Vec::new(),
            progress: opts.progress,
            now: SimTime::ZERO,
            horizon: opts.max_simulated_s.map(SimTime::from_secs_f64),
        })
    }

    /// Runs to the end: every request finished or dropped.
    pub fn run(&mut self) -> Result<()> {
        self.intake.start(&mut self.queue, Event::Arrival);
        let total = self.intake.workload.total_requests();
        while let Some((t, ev)) = self.queue.pop().filter(|(t, _)| self.horizon.is_none_or(|h| *t <= h)) {
            self.stats.advance(t, &self.pools, &self.pending, &self.insts);
            self.now = t;
            self.events += 1;
            match ev {
                Event::Arrival(spec) => self.arrival(spec),
                Event::Stage0Free(i) => self.try_start(i),
                Event::BatchDone(i) => self.batch_done(i)?,
                Event::Landed(slot) => self.landed(slot),
            }
            debug_assert!(self.events % 256 != 0 || self.audit_kv().is_ok(), "{:?}", self.audit_kv());
            if let (0, Some(p)) = (self.events % 8192, self.progress.as_mut()) {
                p(self.rec.completed + self.rec.dropped, total);
            }
        }
        if let Some(f) = self.fabric.as_mut() {
            f.settle(self.now, &mut self.rec);
        }
        let cut = self.horizon.filter(|_| self.queue.peek_time().is_some());
        for pool in &mut self.pools {
            pool.replicas.iter_mut().for_each(|rep| rep.drop_held(&mut self.rec, cut));
        }
        self.rec.close()
    }

    fn arrival(&mut self, spec: RequestSpec) {
        // A few of the shortest iterations (decode steps), as in a co-located run; a
        // prefill batch of a long prompt would open a window of seconds.
        let spans = self.pools.iter().map(|p| p.pipeline.last_batch_span).filter(|s| *s > SimTime::ZERO);
        let req = self.intake.arrive(&spec, &mut self.rec, self.now, || spans.min().unwrap_or_default());
        if let Err(reason) = self.admit(req) {
            self.rec.drop_request(reason);
            self.after_completion();
        }
        self.intake.arrived(&mut self.queue, self.now, Event::Arrival);
    }

    /// Routes a request to its instances and queues it on the prefill one.
    fn admit(&mut self, mut req: Request) -> std::result::Result<(), String> {
        let loads = |sim: &Self, side: &[u32]| -> (Vec<u64>, Vec<i64>) {
            let load = side.iter().map(|&i| sim.replica_of(i).outstanding + sim.incoming[i as usize].0).collect();
            let free = side
                .iter()
                .map(|&i| {
                    let (p, r) = sim.insts[i as usize];
                    sim.pools[p as usize].free_blocks(r as usize) as i64 - sim.incoming[i as usize].1 as i64
                })
                .collect();
            (load, free)
        };
        let (load, free) = loads(self, &self.prefill_side);
        let p = self.prefill_side
            [self.routing.prefill(&SideView { load_tokens: &load, free_blocks: &free }).ok_or("no instance")?];
        let mixed = self.pools[self.insts[p as usize].0 as usize].role == PoolRole::Mixed;
        let d = if mixed {
            p
        } else {
            let (load, free) = loads(self, &self.decode_side);
            self.decode_side
                [self.routing.decode(&SideView { load_tokens: &load, free_blocks: &free }).ok_or("no instance")?]
        };
        if let Some(reason) = self.replica_of(d).refuses(&req) {
            return Err(reason);
        }
        let output_tokens = req.output_tokens;
        if !mixed {
            // The prefill side produces the first token only.
            req.output_tokens = 1;
            if let Some(reason) = self.replica_of(p).refuses(&req) {
                return Err(reason);
            }
        }
        let slot = self.reqs.insert(req);
        if !mixed && output_tokens > 1 {
            self.route_handoff(slot, p, d, output_tokens);
        }
        let (pi, ri) = self.insts[p as usize];
        self.pools[pi as usize].replicas[ri as usize].enqueue(slot, self.reqs.get(slot));
        self.try_start(p);
        Ok(())
    }

    /// The replica of instance `i`.
    pub(super) fn replica_of(&self, i: u32) -> &crate::serving::replica::Replica {
        let (p, r) = self.insts[i as usize];
        &self.pools[p as usize].replicas[r as usize]
    }

    pub(super) fn try_start(&mut self, i: u32) {
        let (p, r) = self.insts[i as usize];
        let (now, pool) = (self.now, &mut self.pools[p as usize]);
        let rep = &mut pool.replicas[r as usize];
        if !rep.ready(now, pool.max_in_flight) {
            return;
        }
        self.rec.preemptions += rep.queues.form_batch(&mut self.reqs, &pool.limits, now, &mut self.entries) as u64;
        if self.entries.is_empty() {
            return;
        }
        for e in &self.entries {
            self.reqs.get_mut(e.slot).in_flight = true;
        }
        // The cluster's fabric is lent to the pool for the booking (one ledger for all).
        std::mem::swap(&mut pool.pipeline.fabric, &mut self.fabric);
        let (done, bookings) = pool.pipeline.book(r, rep, &self.entries, &self.reqs, &self.speeds, &mut self.rec, now);
        let moves = pool.pipeline.take_moves();
        std::mem::swap(&mut pool.pipeline.fabric, &mut self.fabric);
        let done_event = self.queue.schedule(done, Event::BatchDone(i));
        if rep.stage_free.len() > 1 {
            self.queue.schedule(rep.stage_free[0], Event::Stage0Free(i));
        }
        let entries = std::mem::take(&mut self.entries);
        if pool.role == PoolRole::Prefill && self.mode == KvTransferMode::Layerwise {
            self.start_streams(&entries);
        }
        let pool = &mut self.pools[p as usize];
        let batch = pool.pipeline.batch_seq();
        pool.replicas[r as usize].in_flight.push_back(InFlight { entries, done_event, bookings, batch, done_at: done });
        self.follow(moves);
    }

    /// Transfers on tracked links inside the timeline window (KV handoffs among them),
    /// each with its link's name ("pool 1 NIC 0 down").
    pub fn link_spans(&self) -> Vec<(String, crate::serving::paced::LinkSpan)> {
        let Some(f) = &self.fabric else { return Vec::new() };
        let name = |l| {
            let (p, local) = self.net.pool_link(l);
            format!("pool {p} {}", self.pools[p].pipeline.asm.link_name(local))
        };
        f.link_spans.iter().map(|s| (name(s.link), *s)).collect()
    }

    /// Follows transfers whose end moved on the fabric (with whether their replica's
    /// clocks already moved): a batch's completion and its stage clocks
    /// ([`crate::serving::paced::follow_moves`], pool by pool), a handoff's landing.
    pub(super) fn follow(&mut self, moves: Vec<(Move, bool)>) {
        if moves.is_empty() {
            return;
        }
        let mut by_pool: Vec<Vec<(Move, bool)>> = vec![Vec::new(); self.pools.len()];
        for (mv, applied) in moves {
            if !mv.owner.is_stage() {
                self.move_landing(mv);
                continue;
            }
            // The fabric numbers replicas over the run; a pool's replicas from 0.
            let (p, r) = self.insts[mv.owner.replica as usize];
            by_pool[p as usize].push((Move { owner: Owner { replica: r, ..mv.owner }, ..mv }, applied));
        }
        for (p, moves) in by_pool.into_iter().enumerate().filter(|(_, m)| !m.is_empty()) {
            let first = self.first_inst[p];
            let stage0 = |r: u32| Event::Stage0Free(first + r);
            let reps = &mut self.pools[p].replicas;
            crate::serving::paced::follow_moves(moves, reps, &mut self.queue, self.now, &mut self.rec, stage0);
        }
    }

    fn batch_done(&mut self, i: u32) -> Result<()> {
        let (p, r) = self.insts[i as usize];
        let pool = &mut self.pools[p as usize];
        let Some(batch) = pool.replicas[r as usize].in_flight.pop_front() else { return Ok(()) };
        let finished = pool.replicas[r as usize].complete(&batch, &mut self.reqs, &mut self.rec, self.now);
        let prefill = pool.role == PoolRole::Prefill;
        for slot in finished {
            // A request wanting one token is done when its prefill is.
            if prefill && self.handoffs.get(slot as usize).is_some_and(Option::is_some) {
                self.prefill_done(slot);
                continue;
            }
            let rep = &mut self.pools[p as usize].replicas[r as usize];
            rep.retire(slot, &mut self.reqs, &mut self.rec, i, self.now)?;
            self.after_completion();
        }
        self.levels();
        self.try_pending(i);
        self.try_start(i);
        Ok(())
    }

    fn levels(&mut self) {
        let reps = self.pools.iter().flat_map(|p| p.replicas.iter());
        let (queued, running) =
            reps.fold((0, 0), |(q, r), rep| (q + rep.queues.waiting.len(), r + rep.queues.running.len()));
        self.rec.levels(self.now, queued, running);
    }

    pub(super) fn after_completion(&mut self) {
        self.intake.finished(&mut self.queue, self.now, Event::Arrival);
    }
}
