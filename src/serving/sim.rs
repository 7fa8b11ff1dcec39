//! The serving simulation loop: arrivals, batches through pipeline stages, completions.
//!
//! Events are a closed enum. A batch is priced when it forms: every stage's run is
//! worked out then (stages take batches first-in first-out, so nothing later can
//! change them), the GPUs' time is booked, and one event fires when the batch leaves
//! the last stage (plus one when stage 0 frees up, with a pipeline). So a stage
//! iteration costs O(1) events however many layers and collectives it has.

use super::assemble::Assembly;
use super::experts::ExpertSampler;
use super::kv::blocks_for;
use super::request::{Request, RequestSlab};
use super::router::Router;
use super::scheduler::{BatchEntry, Limits, ReplicaQueues};
use super::stage::{run_stage, shape_tokens, LocalSpan, StageInput};
use crate::engine::{EventId, EventQueue, SimTime};
use crate::error::Result;
use crate::metrics::recorder::{Activity, Recorder, Span};
use crate::model::cost::{BatchShape, PrefillChunk};
use crate::parallel::ledger::{CommKind, GpuState};
use crate::scenario::types::{LinkClass, WhatIfEvent};
use crate::scenario::Setup;
use crate::workload::{RequestSpec, Workload};
use std::collections::VecDeque;
use std::path::PathBuf;

/// Options of one run.
#[derive(Default)]
pub struct RunOptions {
    /// Stream per-request rows to this file.
    pub requests_csv: Option<PathBuf>,
    /// Timeline window in seconds (default: a few iterations in steady state).
    pub window_s: Option<(f64, f64)>,
    /// Called now and then with (completed, total) requests.
    pub progress: Option<Box<dyn FnMut(u64, u64)>>,
    /// Write a Chrome/Perfetto trace of the timeline window here.
    pub trace_json: Option<PathBuf>,
}

#[derive(Clone, Debug)]
enum Event {
    Arrival(RequestSpec),
    Stage0Free(u32),
    BatchDone(u32),
    WhatIf { index: usize, end: bool },
}

struct InFlight {
    entries: Vec<BatchEntry>,
    done_event: EventId,
    /// Each stage run's span and per-GPU work, kept only when a GPU may fail, so the
    /// part after a failure can be taken back.
    bookings: Vec<Booking>,
}

/// One stage run booked into the ledger.
struct Booking {
    first_gpu: u32,
    start: SimTime,
    end: SimTime,
    gpus: Vec<crate::parallel::ledger::GpuTotals>,
}

struct Replica {
    queues: ReplicaQueues,
    alive: bool,
    stage_free: Vec<SimTime>,
    in_flight: VecDeque<InFlight>,
    outstanding: u64,
    period_end: SimTime,
}

/// A run in progress.
pub struct Simulation<'a> {
    setup: &'a Setup,
    asm: Assembly,
    queue: EventQueue<Event>,
    workload: Workload,
    router: Router,
    reqs: RequestSlab,
    replicas: Vec<Replica>,
    samplers: Vec<ExpertSampler>,
    speeds: Vec<f64>,
    limits: Limits,
    max_in_flight: usize,
    iteration_overhead: SimTime,
    /// What the run measured.
    pub rec: Recorder,
    events: u64,
    batch_seq: u64,
    entries: Vec<BatchEntry>,
    shapes: Vec<BatchShape>,
    emitting: Vec<u32>,
    local_spans: Vec<LocalSpan>,
    spare_entries: Vec<Vec<BatchEntry>>,
    stage_speeds: Vec<f64>,
    keep_bookings: bool,
    default_window: bool,
    last_batch_span: SimTime,
    arrivals_seen: u64,
    progress: Option<Box<dyn FnMut(u64, u64)>>,
    now: SimTime,
}

impl<'a> Simulation<'a> {
    /// Prepares a run of `setup` on the assembled cluster.
    pub fn new(setup: &'a Setup, asm: Assembly, workload: Workload, opts: RunOptions) -> Result<Self> {
        let plan = asm.plan.clone();
        let experts = setup.model.experts as usize;
        let mut rec = Recorder::new(setup.total_gpus() as usize, experts, opts.requests_csv.as_deref())?;
        if let Some((a, b)) = opts.window_s {
            rec.window = Some((SimTime::from_secs_f64(a), SimTime::from_secs_f64(b)));
        }
        let s = &setup.serving;
        let limits = Limits {
            max_batch_tokens: s.max_batch_tokens,
            max_seqs: s.max_seqs,
            chunked_prefill: s.chunked_prefill,
            chunk_tokens: s.chunk_tokens.unwrap_or(s.max_batch_tokens),
        };
        let replicas = (0..plan.dp)
            .map(|_| Replica {
                queues: ReplicaQueues::new(asm.kv_blocks_per_replica, s.kv_block_tokens),
                alive: true,
                stage_free: vec![SimTime::ZERO; plan.pp as usize],
                in_flight: VecDeque::new(),
                outstanding: 0,
                period_end: SimTime::ZERO,
            })
            .collect();
        let samplers = (0..plan.dp * plan.pp)
            .map(|i| ExpertSampler::new(setup.model.experts, &setup.parallel.expert_routing, setup.seed, i as u64))
            .collect();
        let mut queue = EventQueue::new();
        for (index, e) in setup.events.iter().enumerate() {
            let (at, until) = event_times(e);
            queue.schedule(SimTime::from_secs_f64(at), Event::WhatIf { index, end: false });
            if let Some(u) = until {
                queue.schedule(SimTime::from_secs_f64(u), Event::WhatIf { index, end: true });
            }
        }
        Ok(Simulation {
            setup,
            queue,
            router: Router::new(s.router, setup.seed),
            reqs: RequestSlab::default(),
            replicas,
            samplers,
            speeds: vec![1.0; setup.total_gpus() as usize],
            limits,
            max_in_flight: s.max_inflight_batches.unwrap_or(plan.pp) as usize,
            iteration_overhead: SimTime::from_ns_f64(setup.framework.iteration_overhead_us * 1e3),
            rec,
            events: 0,
            batch_seq: 0,
            entries: Vec::new(),
            shapes: Vec::new(),
            emitting: Vec::new(),
            local_spans: Vec::new(),
            spare_entries: Vec::new(),
            stage_speeds: Vec::new(),
            keep_bookings: setup.events.iter().any(|e| matches!(e, WhatIfEvent::GpuFailure { .. })),
            default_window: opts.window_s.is_none(),
            last_batch_span: SimTime::ZERO,
            arrivals_seen: 0,
            progress: opts.progress,
            now: SimTime::ZERO,
            workload,
            asm,
        })
    }

    /// Runs to the end: every request finished or dropped.
    pub fn run(&mut self) -> Result<()> {
        match self.workload.closed_loop_concurrency() {
            Some(c) => {
                for _ in 0..c {
                    self.pull_request(SimTime::ZERO);
                }
            }
            None => self.pull_request(SimTime::ZERO),
        }
        let total = self.workload.total_requests();
        while let Some((t, ev)) = self.queue.pop() {
            self.now = t;
            self.events += 1;
            match ev {
                Event::Arrival(spec) => {
                    self.arrival(spec);
                    if self.workload.closed_loop_concurrency().is_none() {
                        self.pull_request(t);
                    }
                }
                Event::Stage0Free(r) => self.try_start(r as usize),
                Event::BatchDone(r) => self.batch_done(r as usize)?,
                Event::WhatIf { index, end } => self.what_if(index, end),
            }
            if self.events % 8192 == 0 {
                if let Some(p) = self.progress.as_mut() {
                    p(self.rec.completed + self.rec.dropped, total);
                }
            }
        }
        self.rec.close()
    }

    /// Events handled so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Simulated time of the last event.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Most KV blocks each replica had in use at once.
    pub fn kv_peak_blocks(&self) -> Vec<u32> {
        self.replicas.iter().map(|r| r.queues.kv.peak_used).collect()
    }

    /// The assembly the run uses.
    pub fn assembly(&self) -> &Assembly {
        &self.asm
    }

    fn pull_request(&mut self, now: SimTime) {
        if let Some(spec) = self.workload.next_request(now) {
            self.queue.schedule(spec.arrival, Event::Arrival(spec));
        }
    }

    fn arrival(&mut self, spec: RequestSpec) {
        self.rec.arrival(self.now);
        self.arrivals_seen += 1;
        if self.default_window && self.rec.window.is_none() && self.arrivals_seen * 2 >= self.workload.total_requests()
        {
            self.open_default_window();
        }
        let _ = self.admit(Request::new(spec.id, spec.arrival, spec.prompt_tokens, spec.output_tokens.max(1)));
    }

    /// Routes and queues a request; false when it was dropped.
    fn admit(&mut self, req: Request) -> bool {
        let alive: Vec<bool> = self.replicas.iter().map(|r| r.alive).collect();
        let outstanding: Vec<u64> = self.replicas.iter().map(|r| r.outstanding).collect();
        let Some(r) = self.router.choose(&alive, &outstanding) else {
            self.rec.drop_request("no replica alive (every replica has a failed GPU)".into());
            // A dropped request frees its closed-loop slot, as a finished one does.
            self.after_completion();
            return false;
        };
        let rep = &mut self.replicas[r];
        let need = blocks_for(req.peak_tokens(), rep.queues.kv.block_tokens);
        if need > rep.queues.kv.total {
            self.rec.drop_request(format!(
                "request of {} prompt + {} output tokens needs {need} KV blocks; a replica holds {} (raise memory or tp/pp, or lower lengths)",
                req.prompt_tokens, req.output_tokens, rep.queues.kv.total
            ));
            self.after_completion();
            return false;
        }
        rep.outstanding += req.outstanding_tokens();
        let slot = self.reqs.insert(req);
        rep.queues.waiting.push_back(slot);
        self.try_start(r);
        true
    }

    fn open_default_window(&mut self) {
        let span = self.last_batch_span.max(SimTime::from_ms(1));
        let start = self.now + SimTime::from_ns(span.as_ns() * 3 / 2);
        self.rec.window = Some((start, start + SimTime::from_ns(span.as_ns() * 4)));
    }

    fn try_start(&mut self, r: usize) {
        let now = self.now;
        let rep = &mut self.replicas[r];
        if !rep.alive || rep.stage_free[0] > now || rep.in_flight.len() >= self.max_in_flight {
            return;
        }
        let preempted = rep.queues.form_batch(&mut self.reqs, &self.limits, now, &mut self.entries);
        self.rec.preemptions += preempted as u64;
        if self.entries.is_empty() {
            return;
        }
        for e in &self.entries {
            self.reqs.get_mut(e.slot).in_flight = true;
        }
        self.batch_seq += 1;
        let batch = self.batch_seq;
        self.split_batch();
        let plan = self.asm.plan.clone();
        // Host work before the GPUs start (scheduling, input preparation per prompt
        // chunk) and after the last stage (sampling, output per sequence): GPUs idle.
        let chunks: usize = self.shapes.iter().map(|s| s.prefill.len()).sum();
        let fw = &self.setup.framework;
        let host_before = self.iteration_overhead + SimTime::from_ns_f64(fw.prefill_overhead_us * 1e3 * chunks as f64);
        let host_after = SimTime::from_ns_f64(fw.per_seq_overhead_us * 1e3 * self.entries.len() as f64);
        let mut arrive = now + host_before;
        let mut bookings = Vec::new();
        for s in 0..plan.pp {
            let free = self.replicas[r].stage_free[s as usize];
            let start = arrive.max(free);
            let first_gpu = plan.stage_first_gpu(r as u32, s);
            let gpus = first_gpu..first_gpu + plan.stage_size();
            if s > 0 && start > free.max(now) {
                // The stage had nothing to do while this batch was upstream: pipeline wait.
                let from = free.max(now);
                for g in gpus.clone() {
                    self.rec.ledger.wait(g, CommKind::Pp, (start - from).as_ns());
                    self.rec.span(Span {
                        gpu: g,
                        start: from,
                        end: start,
                        state: GpuState::Wait,
                        what: Activity::PpSendRecv,
                        batch,
                        flops: 0.0,
                        bytes: 0.0,
                    });
                }
            }
            let layers = plan.stage_layers(s);
            let dense_layers = layers.clone().filter(|l| !self.asm.is_moe_layer(*l)).count() as u32;
            let moe_layers = layers.len() as u32 - dense_layers;
            self.stage_speeds.clear();
            self.stage_speeds.extend(gpus.clone().map(|g| self.speeds[g as usize]));
            let comm = &self.asm.comm[r][s as usize];
            let input = StageInput {
                shapes: &self.shapes,
                emitting: &self.emitting,
                dense_layers,
                moe_layers,
                tp: plan.tp,
                experts_per_group: self.setup.model.experts / plan.ep,
                top_k: self.setup.model.top_k,
                first: s == 0,
                last: s + 1 == plan.pp,
                speeds: &self.stage_speeds,
                comm,
                overlap: self.setup.parallel.overlap_comm,
            };
            let sampler = self.samplers.get_mut((r as u32 * plan.pp + s) as usize);
            // A stage run is at most a few iterations long: check the window against a
            // generous bound before pricing, then keep the spans that fall inside.
            let want = self.rec.wants_spans(start, start + SimTime::from_secs(60));
            self.local_spans.clear();
            let run = run_stage(
                self.asm.costs.as_ref(),
                &input,
                sampler,
                &mut self.rec.expert_tokens,
                if want { Some(&mut self.local_spans) } else { None },
            );
            let last = s + 1 == plan.pp;
            let end = start + SimTime(run.duration_ns) + if last { host_after } else { SimTime::ZERO };
            for (i, w) in run.gpus.iter().enumerate() {
                let g = first_gpu + i as u32;
                self.rec.ledger.compute(g, w.compute_ns, w.flops);
                for k in CommKind::ALL {
                    let ki = k as usize;
                    self.rec.ledger.communicate(g, k, w.comm_ns[ki]);
                    self.rec.ledger.wait(g, k, w.wait_ns[ki]);
                }
                self.rec.util.add_spread(start, start + SimTime(run.duration_ns), g as usize, w.compute_ns as f64);
            }
            for ls in &self.local_spans {
                let span = Span {
                    gpu: first_gpu + ls.local_gpu,
                    start: start + SimTime(ls.start_ns),
                    end: start + SimTime(ls.end_ns),
                    state: ls.state,
                    what: ls.what,
                    batch,
                    flops: ls.flops,
                    bytes: ls.bytes,
                };
                self.rec.span(span);
            }
            if want && !self.local_spans.is_empty() && !self.rec.batch_requests.contains_key(&batch) {
                let ids = self.entries.iter().map(|e| self.reqs.get(e.slot).id).collect();
                self.rec.batch_requests.insert(batch, ids);
            }
            self.rec.iterations += 1;
            self.rec.pipeline_stage_busy_ns += run.duration_ns as u128;
            if self.keep_bookings {
                let run_end = start + SimTime(run.duration_ns);
                bookings.push(Booking { first_gpu, start, end: run_end, gpus: run.gpus.clone() });
            }
            self.replicas[r].stage_free[s as usize] = end;
            arrive = end;
        }
        let done = arrive;
        self.last_batch_span = done - now;
        let rep = &mut self.replicas[r];
        // Pipeline capacity: pp x the length of time this replica has a batch in flight.
        let from = now.max(rep.period_end);
        if done > from {
            self.rec.pipeline_capacity_ns += plan.pp as u128 * (done - from).as_ns() as u128;
        }
        rep.period_end = rep.period_end.max(done);
        let done_event = self.queue.schedule(done, Event::BatchDone(r as u32));
        if plan.pp > 1 {
            self.queue.schedule(rep.stage_free[0], Event::Stage0Free(r as u32));
        }
        let entries = std::mem::replace(&mut self.entries, self.spare_entries.pop().unwrap_or_default());
        rep.in_flight.push_back(InFlight { entries, done_event, bookings });
    }

    /// Splits the batch over EP groups: sequences go to the group with the fewest tokens.
    fn split_batch(&mut self) {
        let groups = self.asm.plan.ep as usize;
        self.shapes.clear();
        self.shapes.resize(groups, BatchShape::default());
        self.emitting.clear();
        self.emitting.resize(groups, 0);
        let mut load = vec![0u32; groups];
        for e in &self.entries {
            let g = if groups == 1 { 0 } else { (0..groups).min_by_key(|g| (load[*g], *g)).unwrap_or(0) };
            let req = self.reqs.get(e.slot);
            let shape = &mut self.shapes[g];
            if req.in_prefill() {
                shape.prefill.push(PrefillChunk {
                    tokens: e.new_tokens,
                    context: e.context,
                    completes_prompt: e.emits,
                });
            } else {
                shape.decode_seqs += 1;
                shape.decode_context_sum += e.context as u64;
            }
            load[g] += e.new_tokens;
            if e.emits {
                self.emitting[g] += 1;
            }
        }
        debug_assert_eq!(self.shapes.iter().map(shape_tokens).sum::<u32>(), load.iter().sum::<u32>());
    }

    fn batch_done(&mut self, r: usize) -> Result<()> {
        let now = self.now;
        let Some(batch) = self.replicas[r].in_flight.pop_front() else { return Ok(()) };
        let mut finished = Vec::new();
        for e in &batch.entries {
            let req = self.reqs.get_mut(e.slot);
            req.in_flight = false;
            let before = req.outstanding_tokens();
            let was_prefill = req.in_prefill();
            req.computed += e.new_tokens;
            let prev = req.last_token_at;
            if e.emits {
                req.generated += 1;
                req.first_token_at.get_or_insert(now);
                req.last_token_at = Some(now);
            }
            let delta = before - req.outstanding_tokens();
            let done = req.is_done();
            let req = self.reqs.get(e.slot);
            if was_prefill {
                self.rec.prompt_progress(now, e.new_tokens);
            }
            if e.emits {
                self.rec.token(req, prev, now);
            }
            self.replicas[r].outstanding -= delta;
            if done {
                finished.push(e.slot);
            }
        }
        for slot in finished {
            let rep = &mut self.replicas[r];
            rep.queues.running.retain(|s| *s != slot);
            let req = self.reqs.remove(slot);
            rep.queues.kv.give_back(req.blocks);
            rep.outstanding -= req.outstanding_tokens();
            self.rec.finish(&req, r as u32, now)?;
            self.after_completion();
        }
        self.spare_entries.push(batch.entries);
        let queued: usize = self.replicas.iter().map(|r| r.queues.waiting.len()).sum();
        let running: usize = self.replicas.iter().map(|r| r.queues.running.len()).sum();
        self.rec.levels(now, queued, running);
        self.try_start(r);
        Ok(())
    }

    fn after_completion(&mut self) {
        if self.workload.closed_loop_concurrency().is_some() {
            self.pull_request(self.now);
        }
    }

    fn what_if(&mut self, index: usize, end: bool) {
        let event = self.setup.events[index].clone();
        match event {
            WhatIfEvent::GpuSlowdown { gpu, fraction, .. } => {
                self.speeds[gpu as usize] = if end { 1.0 } else { fraction };
            }
            WhatIfEvent::LoadChange { factor, .. } => {
                self.workload.set_rate_factor(if end { 1.0 } else { factor });
            }
            WhatIfEvent::LinkSlowdown { link, node, fraction, .. } => {
                let f = if end { 1.0 } else { fraction };
                self.asm.set_link_fraction(link == LinkClass::Nvlink, node, f);
            }
            WhatIfEvent::GpuFailure { gpu, .. } => {
                let Some(rank) = self.asm.plan.rank_of(gpu) else { return };
                let r = rank.replica as usize;
                if end {
                    self.replicas[r].alive = true;
                    return;
                }
                self.fail_replica(r);
            }
        }
    }

    /// A GPU of replica `r` failed: batches in flight are lost, and every request the
    /// replica held goes back to the router, to be recomputed elsewhere.
    fn fail_replica(&mut self, r: usize) {
        self.replicas[r].alive = false;
        let lost: Vec<InFlight> = self.replicas[r].in_flight.drain(..).collect();
        for b in &lost {
            self.queue.cancel(b.done_event);
        }
        for b in lost.iter().flat_map(|b| &b.bookings) {
            self.unbook_after(b, self.now);
        }
        let rep = &mut self.replicas[r];
        for s in rep.stage_free.iter_mut() {
            *s = (*s).min(self.now);
        }
        let mut slots: Vec<u32> = rep.queues.running.drain(..).collect();
        slots.extend(rep.queues.waiting.drain(..));
        rep.queues.kv.free = rep.queues.kv.total;
        rep.outstanding = 0;
        // Re-route in arrival order, so the outcome does not depend on queue layout.
        slots.sort_by_key(|s| self.reqs.get(*s).id);
        for slot in slots {
            let mut req = self.reqs.remove(slot);
            req.in_flight = false;
            req.blocks = 0;
            req.computed = 0;
            req.prefill_len = req.prompt_tokens.saturating_add(req.generated);
            req.rerouted = true;
            if self.admit(req) {
                self.rec.rerouted += 1;
            }
        }
    }
}

impl Simulation<'_> {
    /// Takes back the share of a stage run's booked work that falls after `t` (the run
    /// is cut short there), pro rata over the run's span.
    fn unbook_after(&mut self, b: &Booking, t: SimTime) {
        if t >= b.end {
            return;
        }
        let span = (b.end - b.start).as_ns() as f64;
        let cut = if span > 0.0 { (b.end - t.max(b.start)).as_ns() as f64 / span } else { 1.0 };
        for (i, w) in b.gpus.iter().enumerate() {
            let g = b.first_gpu + i as u32;
            self.rec.ledger.take_back(g, w, cut);
            let taken = (w.compute_ns as f64 * cut).round();
            self.rec.util.add_spread(t.max(b.start), b.end, g as usize, -taken);
        }
        self.rec.pipeline_stage_busy_ns -=
            ((b.end - t.max(b.start)).as_ns() as u128).min(self.rec.pipeline_stage_busy_ns);
    }
}

fn event_times(e: &WhatIfEvent) -> (f64, Option<f64>) {
    match *e {
        WhatIfEvent::LinkSlowdown { at_s, until_s, .. }
        | WhatIfEvent::GpuSlowdown { at_s, until_s, .. }
        | WhatIfEvent::GpuFailure { at_s, until_s, .. }
        | WhatIfEvent::LoadChange { at_s, until_s, .. } => (at_s, until_s),
    }
}
