//! The serving simulation loop: it only dispatches events. Events are a closed enum:
//! an arrival, stage 0 of a replica freeing up, a batch
//! leaving a replica's last stage, and what-if events starting or ending. The
//! replica ([`super::replica`]) owns its queues, KV pools and failure state; the pipeline
//! ([`super::pipeline`]) prices and books each batch; [`super::whatif`] composes what-ifs.

use super::assemble::Assembly;
use super::intake::Intake;
use super::pipeline::Pipeline;
use super::prefix::config::PrefixSetup;
use super::prefix::stats::{PrefixCacheSummary, PrefixTtft};
use super::replica::Replica;
use super::request::{Request, RequestSlab};
use super::router::Router;
use super::scheduler::{BatchEntry, Limits};
use super::whatif::{event_times, WhatIfs};
use super::RunOptions;
use crate::engine::{EventQueue, SimTime};
use crate::error::Result;
use crate::metrics::recorder::Recorder;
use crate::metrics::report::ReportContext;
use crate::scenario::types::{LinkClass, WhatIfEvent};
use crate::scenario::Setup;
use crate::workload::{RequestSpec, Workload};

#[derive(Clone, Debug)]
enum Event {
    Arrival(RequestSpec),
    Stage0Free(u32),
    BatchDone(u32),
    WhatIf { index: usize, end: bool },
}

/// A run in progress.
pub struct Simulation {
    queue: EventQueue<Event>,
    intake: Intake,
    router: Router,
    reqs: RequestSlab,
    replicas: Vec<Replica>,
    pipeline: Pipeline,
    whatifs: WhatIfs,
    speeds: Vec<f64>,
    limits: Limits,
    max_in_flight: usize,
    /// What the run measured.
    pub rec: Recorder,
    /// Events handled so far.
    pub events: u64,
    entries: Vec<BatchEntry>,
    /// Entry buffers of finished batches, reused.
    spare_entries: Vec<Vec<BatchEntry>>,
    progress: Option<Box<dyn FnMut(u64, u64)>>,
    /// Simulated time of the last event.
    pub now: SimTime,
    horizon: Option<SimTime>,
    /// Prefix caching, when on.
    prefix: Option<PrefixSetup>,
    prefix_ttft: PrefixTtft,
    /// Hash blocks cached at the end (HBM, host), taken before held requests are dropped.
    prefix_end_blocks: (u64, u64),
}

impl Simulation {
    /// Prepares a run of `setup` on the assembled cluster.
    pub fn new(setup: &Setup, asm: Assembly, workload: Workload, opts: RunOptions) -> Result<Self> {
        let (plan, s) = (asm.plan.clone(), &setup.serving);
        let (gpus, experts) = (setup.total_gpus() as usize, setup.model.experts as usize);
        let intake = Intake::new(workload, &opts);
        let mut rec = Recorder::new(gpus, plan.gpus() as usize, experts, opts.requests)?;
        rec.window = opts.window_s.map(|(a, b)| (SimTime::from_secs_f64(a), SimTime::from_secs_f64(b)));
        let mut replicas: Vec<Replica> = (0..plan.dp).map(|r| Replica::for_setup(setup, &asm, r as u64)).collect();
        let prefix = PrefixSetup::resolve(setup, &asm, &intake.workload)?;
        if let Some(p) = &prefix {
            for rep in &mut replicas {
                rep.queues.enable_prefix(p.block_tokens, p.host_blocks_per_pool, p.reload_ns_per_block);
            }
        }
        let mut queue = EventQueue::new();
        for (index, e) in setup.events.iter().enumerate() {
            let (at, until) = event_times(e);
            queue.schedule(SimTime::from_secs_f64(at), Event::WhatIf { index, end: false });
            if let Some(u) = until {
                queue.schedule(SimTime::from_secs_f64(u), Event::WhatIf { index, end: true });
            }
        }
        Ok(Simulation {
            queue,
            router: Router::new(s.router, setup.seed),
            reqs: RequestSlab::default(),
            replicas,
            pipeline: Pipeline::for_setup(setup, asm),
            whatifs: WhatIfs::new(&setup.events),
            speeds: vec![1.0; setup.total_gpus() as usize],
            limits: Limits::of(s, &setup.framework),
            max_in_flight: s.max_inflight_batches.unwrap_or(plan.pp) as usize,
            rec,
            events: 0,
            entries: Vec::new(),
            spare_entries: Vec::new(),
            intake,
            progress: opts.progress,
            now: SimTime::ZERO,
            horizon: opts.max_simulated_s.map(SimTime::from_secs_f64),
            prefix,
            prefix_ttft: PrefixTtft::default(),
            prefix_end_blocks: (0, 0),
        })
    }

    /// Runs to the end: every request finished or dropped.
    pub fn run(&mut self) -> Result<()> {
        self.intake.start(&mut self.queue, Event::Arrival);
        let total = self.intake.workload.total_requests();
        while let Some((t, ev)) = self.queue.pop().filter(|(t, _)| self.horizon.is_none_or(|h| *t <= h)) {
            self.now = t;
            self.events += 1;
            match ev {
                Event::Arrival(spec) => self.arrival(spec),
                Event::Stage0Free(r) => self.try_start(r as usize),
                Event::BatchDone(r) => self.batch_done(r as usize)?,
                Event::WhatIf { index, end } => self.what_if(index, end),
            }
            if let (0, Some(p)) = (self.events % 8192, self.progress.as_mut()) {
                p(self.rec.completed + self.rec.dropped, total);
            }
        }
        self.pipeline.settle(self.now, &mut self.rec);
        let caches = self.replicas.iter().flat_map(|r| r.queues.kv.iter()).filter_map(|p| p.cache.as_ref());
        self.prefix_end_blocks = caches.fold((0, 0), |(a, b), c| (a + c.hbm_blocks, b + c.host_blocks()));
        let cut = self.horizon.filter(|_| self.queue.peek_time().is_some());
        self.replicas.iter_mut().for_each(|rep| rep.drop_held(&mut self.rec, cut));
        self.rec.close()
    }

    /// The report's facts: the assembly's, with each attention group's KV peak.
    pub fn report_context(&self) -> ReportContext {
        let kv_peak_blocks = self.replicas.iter().map(|r| r.queues.kv.iter().map(|p| p.peak_used).collect());
        ReportContext { kv_peak_blocks: kv_peak_blocks.collect(), ..self.pipeline.asm.report.clone() }
    }

    /// Transfers on shared links inside the timeline window, with their links' names.
    pub fn link_spans(&self) -> Vec<(String, super::paced::LinkSpan)> {
        let Some(f) = &self.pipeline.fabric else { return Vec::new() };
        f.link_spans.iter().map(|s| (self.pipeline.asm.link_name(s.link), *s)).collect()
    }

    /// `summary.json`'s `prefix_cache` section, when prefix caching is on.
    pub fn prefix_summary(&mut self) -> Option<PrefixCacheSummary> {
        let p = self.prefix.as_ref()?;
        let mut k = super::prefix::cache::CacheCounters::default();
        for c in self.replicas.iter().flat_map(|r| r.queues.kv.iter()).filter_map(|pool| pool.cache.as_ref()) {
            k.add(&c.counters);
        }
        let ctx = &self.pipeline.asm.report;
        let hbm_gib = ctx.kv_gib_per_gpu * (ctx.plan.gpus() / ctx.plan.dp.max(1)) as f64;
        Some(std::mem::take(&mut self.prefix_ttft).summary(p, &k, self.prefix_end_blocks, hbm_gib))
    }

    fn arrival(&mut self, spec: RequestSpec) {
        let span = self.pipeline.last_batch_span;
        let mut req = self.intake.arrive(&spec, &mut self.rec, self.now, || span);
        if let Some(p) = &self.prefix {
            req.chain = self.intake.workload.chain(&spec, p.block_tokens);
        }
        self.admit(req);
        self.intake.arrived(&mut self.queue, self.now, Event::Arrival);
    }

    /// Routes and queues a request; false when it was dropped.
    fn admit(&mut self, req: Request) -> bool {
        let alive: Vec<bool> = self.replicas.iter().map(|r| r.alive()).collect();
        let outstanding: Vec<u64> = self.replicas.iter().map(|r| r.outstanding).collect();
        let choice = if self.router.wants_prefix() {
            let uncached: Vec<u64> = self.replicas.iter().map(|r| r.queues.uncached_tokens(&req) as u64).collect();
            self.router.choose_cached(&alive, &outstanding, &uncached)
        } else {
            self.router.choose(&alive, &outstanding)
        };
        let reason = match choice {
            None => "no replica alive (every replica has a failed GPU)".to_string(),
            Some(r) => match self.replicas[r].refuses(&req) {
                Some(reason) => reason,
                None => {
                    let slot = self.reqs.insert(req);
                    self.replicas[r].enqueue(slot, self.reqs.get(slot));
                    self.try_start(r);
                    return true;
                }
            },
        };
        self.rec.drop_request(reason);
        // A dropped request frees its closed-loop slot, as a finished one does.
        self.after_completion();
        false
    }

    fn try_start(&mut self, r: usize) {
        let (now, rep) = (self.now, &mut self.replicas[r]);
        if !rep.ready(now, self.max_in_flight) {
            return;
        }
        self.rec.preemptions += rep.queues.form_batch(&mut self.reqs, &self.limits, now, &mut self.entries) as u64;
        if let Some(t) = rep.queues.wake_at.take() {
            // A request waits for KV reloaded from host memory: look again when it is in.
            self.queue.schedule(t, Event::Stage0Free(r as u32));
        }
        if self.entries.is_empty() {
            return;
        }
        for e in &self.entries {
            self.reqs.get_mut(e.slot).in_flight = true;
        }
        let (done, bookings) =
            self.pipeline.book(r as u32, rep, &self.entries, &self.reqs, &self.speeds, &mut self.rec, now);
        let done_event = self.queue.schedule(done, Event::BatchDone(r as u32));
        if rep.stage_free.len() > 1 {
            self.queue.schedule(rep.stage_free[0], Event::Stage0Free(r as u32));
        }
        let entries = std::mem::replace(&mut self.entries, self.spare_entries.pop().unwrap_or_default());
        let batch = self.pipeline.batch_seq();
        rep.in_flight.push_back(super::replica::InFlight { entries, done_event, bookings, batch, done_at: done });
        self.apply_moves();
    }

    fn batch_done(&mut self, r: usize) -> Result<()> {
        let Some(batch) = self.replicas[r].in_flight.pop_front() else { return Ok(()) };
        let finished = self.replicas[r].complete(&batch, &mut self.reqs, &mut self.rec, self.now);
        self.spare_entries.push(batch.entries);
        for slot in finished {
            self.prefix_ttft.finish(self.reqs.get(slot));
            self.replicas[r].retire(slot, &mut self.reqs, &mut self.rec, r as u32, self.now)?;
            self.after_completion();
        }
        let queued: usize = self.replicas.iter().map(|r| r.queues.waiting.len()).sum();
        let running: usize = self.replicas.iter().map(|r| r.queues.running.len()).sum();
        self.rec.levels(self.now, queued, running);
        self.try_start(r);
        Ok(())
    }

    fn after_completion(&mut self) {
        self.intake.finished(&mut self.queue, self.now, Event::Arrival);
    }

    fn what_if(&mut self, index: usize, end: bool) {
        self.whatifs.set(index, !end);
        match self.whatifs.events()[index] {
            WhatIfEvent::GpuSlowdown { gpu, .. } => self.speeds[gpu as usize] = self.whatifs.gpu_speed(gpu),
            WhatIfEvent::LoadChange { .. } => self.intake.workload.set_rate_factor(self.whatifs.load_factor()),
            WhatIfEvent::LinkSlowdown { link, node, .. } => {
                let fractions = self.whatifs.link_fractions(link, node, self.pipeline.asm.nodes());
                self.pipeline.set_link_fractions(link == LinkClass::Nvlink, &fractions, self.now, &mut self.rec);
                self.apply_moves();
            }
            WhatIfEvent::GpuFailure { .. } | WhatIfEvent::LinkFailure { .. } => {
                for r in self.pipeline.asm.replicas_hit(&self.whatifs.events()[index]) {
                    if end {
                        self.replicas[r as usize].gpu_recovered();
                    } else {
                        self.fail(r as usize);
                    }
                }
            }
        }
    }

    /// A GPU of replica `r` failed: batches in flight are lost (their work after now is
    /// taken back), and every request the replica held goes back to the router.
    fn fail(&mut self, r: usize) {
        let Some(lost) = self.replicas[r].gpu_failed(&mut self.reqs, self.now) else { return };
        for b in &lost.batches {
            self.queue.cancel(b.done_event);
            self.pipeline.cancel_batch(b.batch);
            for booking in &b.bookings {
                booking.take_back_after(self.now, &mut self.rec);
            }
        }
        for req in lost.requests {
            if self.admit(req) {
                self.rec.rerouted += 1;
            }
        }
    }

    /// Moves the completion of every batch whose traffic on shared links now ends at
    /// another time, and the stage clocks that waited on it (see [`super::paced`]).
    fn apply_moves(&mut self) {
        let moves = self.pipeline.take_moves();
        super::paced::follow_moves(
            moves,
            &mut self.replicas,
            &mut self.queue,
            self.now,
            &mut self.rec,
            Event::Stage0Free,
        );
    }
}
