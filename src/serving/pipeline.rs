//! A batch through a replica's pipeline: split over the attention groups, each
//! stage priced by the stage pricer when the batch forms, and its GPUs' time booked.
//!
//! Stages take batches first-in first-out, so nothing later can change a batch's
//! stage runs: a batch is priced once, O(1) events however many layers and
//! collectives it has. A stage that had nothing to do while the batch was upstream
//! books that time as pipeline wait. When a GPU may fail, each stage run is kept as
//! a [`Booking`] so the part after a failure can be taken back.
//!
//! The exception is traffic on links shared with other replicas or stages: what it
//! meets there depends on batches formed later. A stage that crosses such links books
//! that traffic on the run's [`SharedFabric`] and ends when it says; batches formed later
//! may move that end (see [`super::paced`]), and the simulation moves the batch's
//! completion event with it.

use super::assemble::Assembly;
use super::experts::ExpertSampler;
use super::links::Move;
use super::paced::SharedFabric;
use super::replica::Replica;
use super::request::RequestSlab;
use super::scheduler::BatchEntry;
use super::stage::{run_stage, shape_tokens, LocalSpan, StageInput, StageRun};
use crate::engine::SimTime;
use crate::metrics::recorder::{Activity, Recorder, Span};
use crate::model::cost::{BatchShape, PrefillChunk};
use crate::model::framework::FrameworkProfile;
use crate::model::memory::stage_kv_layers;
use crate::parallel::ledger::{CommKind, GpuState, GpuTotals};
use crate::scenario::types::WhatIfEvent;
use crate::scenario::Setup;

/// One stage run booked into the ledger.
pub struct Booking {
    first_gpu: u32,
    start: SimTime,
    end: SimTime,
    gpus: Vec<GpuTotals>,
}

/// Fixed facts of the model and plan the pipeline needs per stage.
struct ModelFacts {
    /// Routed experts per EP group (0 for a dense model).
    experts_per_group: u32,
    /// Experts each token picks.
    top_k: u32,
    /// Overlap each collective with the computation before it.
    overlap: bool,
    /// Sliding-window width (0: no window layers).
    window_tokens: u32,
    /// Window layers of each stage.
    window_layers: Vec<u32>,
}

/// Prices and books batches; holds the scratch buffers reused from batch to batch.
pub struct Pipeline {
    /// The run's plan, costs and collective prices.
    pub asm: Assembly,
    facts: ModelFacts,
    framework: FrameworkProfile,
    samplers: Vec<ExpertSampler>,
    keep_bookings: bool,
    batch_seq: u64,
    /// Formation to completion of the latest batch (sizes the default timeline window).
    pub last_batch_span: SimTime,
    shapes: Vec<BatchShape>,
    window_shapes: Vec<BatchShape>,
    emitting: Vec<u32>,
    local_spans: Vec<LocalSpan>,
    stage_speeds: Vec<f64>,
    /// Links shared between replicas or stages, and the transfers on them (None when
    /// the plan shares none: every stage is priced in O(1)).
    pub fabric: Option<Box<SharedFabric>>,
    /// Moves found while booking, and whether they were applied to the replica.
    moves: Vec<(Move, bool)>,
    /// The cluster GPU of the plan's GPU 0 (a pool of a disaggregated run starts
    /// after the pools before it; 0 otherwise).
    gpu_base: u32,
    /// The run-wide number of replica 0, as the fabric knows it (likewise).
    replica_base: u32,
}

impl Pipeline {
    /// The pipeline of `setup`'s run over `asm`: one expert sampler per (replica,
    /// stage), and bookings kept when a GPU may fail.
    pub fn for_setup(setup: &Setup, asm: Assembly) -> Self {
        let plan = &asm.plan;
        let routing = &setup.parallel.expert_routing;
        let samplers = (0..plan.dp * plan.pp)
            .map(|i| ExpertSampler::new(setup.model.experts, routing, setup.seed, i as u64))
            .collect();
        let m = &setup.model;
        let facts = ModelFacts {
            experts_per_group: m.experts / plan.ep,
            top_k: m.top_k,
            overlap: setup.parallel.overlap_comm,
            window_tokens: m.sliding_window.map_or(0, |w| w.window_tokens),
            window_layers: (0..plan.pp).map(|s| stage_kv_layers(m, plan.pp, s).1).collect(),
        };
        let fabric = asm.shared_fabric(&setup.events).map(Box::new);
        Pipeline {
            asm,
            facts,
            framework: setup.framework.clone(),
            samplers,
            keep_bookings: setup.events.iter().any(|e| matches!(e, WhatIfEvent::GpuFailure { .. })),
            batch_seq: 0,
            last_batch_span: SimTime::ZERO,
            shapes: Vec::new(),
            window_shapes: Vec::new(),
            emitting: Vec::new(),
            local_spans: Vec::new(),
            stage_speeds: Vec::new(),
            fabric,
            moves: Vec::new(),
            gpu_base: 0,
            replica_base: 0,
        }
    }

    /// The same pipeline as one pool of a cluster: its GPUs numbered from `gpu_base`,
    /// its replicas from `replica_base`. It has no fabric of its own: the cluster's
    /// one is lent to [`Self::fabric`] while one of its batches is booked.
    pub fn in_cluster(mut self, gpu_base: u32, replica_base: u32) -> Self {
        (self.gpu_base, self.replica_base, self.fabric) = (gpu_base, replica_base, None);
        self
    }

    /// Prices `entries` through every stage of replica `r` from `now`, books the GPUs'
    /// time into `rec`, and moves the replica's stage clocks. Returns when the batch
    /// leaves the last stage, and its bookings (empty unless kept).
    #[allow(clippy::too_many_arguments)]
    pub fn book(
        &mut self,
        r: u32,
        rep: &mut Replica,
        entries: &[BatchEntry],
        reqs: &RequestSlab,
        speeds: &[f64],
        rec: &mut Recorder,
        now: SimTime,
    ) -> (SimTime, Vec<Booking>) {
        self.batch_seq += 1;
        let batch = self.batch_seq;
        self.split_batch(entries, reqs);
        // Host work before the GPUs start and after the last stage: GPUs idle.
        let chunks: usize = self.shapes.iter().map(|s| s.prefill.len()).sum();
        let host_after = self.framework.host_after(entries.len());
        let pp = self.asm.plan.pp;
        let decodes: usize = self.shapes.iter().map(|s| s.decode_seqs as usize).sum();
        let launch = self.framework.launch_host(chunks, decodes, || {
            // Each attention-DP group's host launches its own kernels at the same time.
            let per_layer = self.shapes.iter().map(|s| self.asm.costs.kernels_per_layer(s)).max().unwrap_or(0);
            per_layer as u64 * self.asm.plan.stage_layers(0).len() as u64
        });
        let mut arrive = now + self.framework.host_before(chunks) + launch;
        let mut bookings = Vec::new();
        for s in 0..pp {
            let free = rep.stage_free[s as usize];
            let start = arrive.max(free);
            let first_gpu = self.gpu_base + self.asm.plan.stage_first_gpu(r, s);
            if s > 0 && start > free.max(now) {
                pipeline_wait(rec, first_gpu..first_gpu + self.asm.plan.stage_size(), free.max(now), start, batch);
            }
            let run = self.run_stage_at(r, s, start, speeds, rec);
            self.keep_spans(rec, first_gpu, start, batch, entries, reqs);
            book_run(rec, first_gpu, start, &run);
            let mut run_end = start + SimTime(run.duration_ns);
            if let Some(f) = self.fabric.as_mut() {
                let owner_r = self.replica_base + r;
                run_end = f.book_stage(batch, owner_r, s, &run, run_end, now, rec);
                // This replica's later stages are booked next: their clocks must
                // already show what this booking moved.
                for mv in f.take_moves() {
                    let mine = mv.owner.is_stage() && mv.owner.replica == owner_r;
                    if mine {
                        super::paced::apply_move(rep, &mv, now, rec);
                    }
                    self.moves.push((mv, mine));
                }
            }
            if self.keep_bookings {
                bookings.push(Booking { first_gpu, start, end: run_end, gpus: run.gpus });
            }
            let end = run_end + if s + 1 == pp { host_after } else { SimTime::ZERO };
            rep.stage_free[s as usize] = end;
            arrive = end;
        }
        self.last_batch_span = arrive - now;
        // Pipeline capacity: pp x the length of time this replica has a batch in flight.
        let from = now.max(rep.period_end);
        if arrive > from {
            rec.pipeline_capacity_ns += pp as u128 * (arrive - from).as_ns() as u128;
        }
        rep.period_end = rep.period_end.max(arrive);
        (arrive, bookings)
    }

    /// The number of the latest batch booked.
    pub fn batch_seq(&self) -> u64 {
        self.batch_seq
    }

    /// Books the time lost to sharing by every transfer on shared links finished by `now`.
    pub fn settle(&mut self, now: SimTime, rec: &mut Recorder) {
        if let Some(f) = self.fabric.as_mut() {
            f.settle(now, rec);
        }
    }

    /// Transfers on shared links whose end moved since the last call, each with
    /// whether its replica's clocks were already moved (its batch's completion event
    /// must still move with it).
    pub fn take_moves(&mut self) -> Vec<(Move, bool)> {
        let mut out = std::mem::take(&mut self.moves);
        if let Some(f) = self.fabric.as_mut() {
            out.extend(f.take_moves().into_iter().map(|m| (m, false)));
        }
        out
    }

    /// Drops the transfers of a batch lost to a failure.
    pub fn cancel_batch(&mut self, batch: u64) {
        if let Some(f) = self.fabric.as_mut() {
            f.cancel_batch(batch);
        }
    }

    /// NVLink (`nvlink`) or NICs of each listed node now run at its fraction of their
    /// nominal bandwidth: later batches are priced at it, and transfers in flight on
    /// shared links share the new bandwidth from `now`.
    pub fn set_link_fractions(&mut self, nvlink: bool, fractions: &[(u32, f64)], now: SimTime, rec: &mut Recorder) {
        self.asm.set_link_fractions(nvlink, fractions);
        if let Some(f) = self.fabric.as_mut() {
            f.capacities_changed(now, &self.asm.link_capacities(), rec);
        }
    }

    /// Splits the batch over the stage's attention groups: each sequence runs in the
    /// group whose KV pool holds it.
    fn split_batch(&mut self, entries: &[BatchEntry], reqs: &RequestSlab) {
        let groups = self.asm.plan.ep as usize;
        self.shapes.clear();
        self.shapes.resize(groups, BatchShape::default());
        self.emitting.clear();
        self.emitting.resize(groups, 0);
        for e in entries {
            let req = reqs.get(e.slot);
            let g = req.kv_group as usize;
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
                // A speculating decode verifies its drafts: 1 + d query tokens and logits.
                shape.draft_tokens = e.new_tokens - 1;
            }
            if e.emits {
                self.emitting[g] += if req.in_prefill() { 1 } else { e.new_tokens };
            }
        }
        debug_assert_eq!(
            self.shapes.iter().map(shape_tokens).sum::<u32>(),
            entries.iter().map(|e| e.new_tokens).sum::<u32>()
        );
        self.window_shapes.clear();
        let w = self.facts.window_tokens;
        if w > 0 {
            self.window_shapes.extend(self.shapes.iter().map(|s| BatchShape {
                decode_context_sum: 0,
                window_tokens: w,
                ..s.clone()
            }));
            for e in entries {
                let req = reqs.get(e.slot);
                if !req.in_prefill() {
                    self.window_shapes[req.kv_group as usize].decode_context_sum += e.context.min(w) as u64;
                }
            }
        }
    }

    /// Runs stage `s` of replica `r` from `start` through the stage pricer.
    fn run_stage_at(&mut self, r: u32, s: u32, start: SimTime, speeds: &[f64], rec: &mut Recorder) -> StageRun {
        let plan = &self.asm.plan;
        let first_gpu = (self.gpu_base + plan.stage_first_gpu(r, s)) as usize;
        let layers = plan.stage_layers(s);
        let dense_layers = layers.clone().filter(|l| !self.asm.is_moe_layer(*l)).count() as u32;
        self.stage_speeds.clear();
        self.stage_speeds.extend_from_slice(&speeds[first_gpu..first_gpu + plan.stage_size() as usize]);
        let input = StageInput {
            shapes: &self.shapes,
            window_shapes: &self.window_shapes,
            window_layers: self.facts.window_layers[s as usize],
            emitting: &self.emitting,
            dense_layers,
            moe_layers: layers.len() as u32 - dense_layers,
            tp: plan.tp,
            experts_per_group: self.facts.experts_per_group,
            top_k: self.facts.top_k,
            first: s == 0,
            last: s + 1 == plan.pp,
            speeds: &self.stage_speeds,
            comm: &self.asm.comm[r as usize][s as usize],
            overlap: self.facts.overlap,
        };
        let sampler = self.samplers.get_mut((r * plan.pp + s) as usize);
        // A stage run is at most a few iterations long: check the window against a
        // generous bound before pricing, then keep the spans that fall inside.
        let want = rec.wants_spans(start, start + SimTime::from_secs(60));
        self.local_spans.clear();
        let spans = if want { Some(&mut self.local_spans) } else { None };
        rec.iterations += 1;
        run_stage(self.asm.costs.as_ref(), &input, sampler, &mut rec.expert_load, spans)
    }

    /// Moves the stage run's timeline spans into the recorder.
    fn keep_spans(
        &self,
        rec: &mut Recorder,
        first_gpu: u32,
        start: SimTime,
        batch: u64,
        entries: &[BatchEntry],
        reqs: &RequestSlab,
    ) {
        for ls in &self.local_spans {
            rec.span(Span {
                gpu: first_gpu + ls.local_gpu,
                start: start + SimTime(ls.start_ns),
                end: start + SimTime(ls.end_ns),
                state: ls.state,
                what: ls.what,
                batch,
                flops: ls.flops,
                bytes: ls.bytes,
            });
        }
        if !self.local_spans.is_empty() && !rec.batch_requests.contains_key(&batch) {
            rec.batch_requests.insert(batch, entries.iter().map(|e| reqs.get(e.slot).id).collect());
        }
    }
}

/// Books a stage run's per-GPU work from `start`.
fn book_run(rec: &mut Recorder, first_gpu: u32, start: SimTime, run: &StageRun) {
    let end = start + SimTime(run.duration_ns);
    for (i, w) in run.gpus.iter().enumerate() {
        let g = first_gpu + i as u32;
        rec.ledger.compute(g, w.compute_ns, w.flops);
        for k in CommKind::ALL {
            rec.ledger.communicate(g, k, w.comm(k));
            rec.ledger.wait(g, k, w.wait(k));
            rec.ledger.moved(g, k, w.comm_bytes[k.index()]);
        }
    }
    let busy = run.gpus.iter().map(|w| w.compute_ns as f64);
    rec.util.add_spread_lanes(start, end, first_gpu as usize, busy);
    rec.pipeline_stage_busy_ns += run.duration_ns as u128;
}

/// The stage's GPUs had nothing to do from `from` to `start` while the batch was
/// upstream: pipeline wait.
fn pipeline_wait(rec: &mut Recorder, gpus: std::ops::Range<u32>, from: SimTime, start: SimTime, batch: u64) {
    for g in gpus {
        rec.ledger.wait(g, CommKind::Pp, (start - from).as_ns());
        let (state, what) = (GpuState::Wait, Activity::PpSendRecv);
        rec.span(Span { gpu: g, start: from, end: start, state, what, batch, flops: 0.0, bytes: 0.0 });
    }
}

impl Booking {
    /// Takes back the share of the booked work that falls after `t` (the run is cut
    /// short there), pro rata over the run's span.
    pub fn take_back_after(&self, t: SimTime, rec: &mut Recorder) {
        if t >= self.end {
            return;
        }
        let span = (self.end - self.start).as_ns() as f64;
        let cut_from = t.max(self.start);
        let cut = if span > 0.0 { (self.end - cut_from).as_ns() as f64 / span } else { 1.0 };
        for (i, w) in self.gpus.iter().enumerate() {
            let g = self.first_gpu + i as u32;
            rec.ledger.take_back(g, w, cut);
            let taken = (w.compute_ns as f64 * cut).round();
            rec.util.add_spread(cut_from, self.end, g as usize, -taken);
        }
        let busy = (self.end - cut_from).as_ns() as u128;
        rec.pipeline_stage_busy_ns -= busy.min(rec.pipeline_stage_busy_ns);
    }
}
