//! One DP replica: its queues and KV pools, its stages' clocks, the batches it has in
//! flight, and whether it is alive.
//!
//! The replica owns everything that is its own state; the simulation loop only asks
//! it what to do next. A failure of any of its GPUs stops it: batches in flight are
//! lost (the pipeline takes back their booked work after the failure instant) and
//! every request it held goes back to the router. It revives only when every failed
//! GPU of it has recovered.

use super::assemble::Assembly;
use super::pipeline::Booking;
use super::request::{Request, RequestSlab};
use super::scheduler::{BatchEntry, ReplicaQueues};
use crate::engine::rng::{stream, SimRng, Stream};
use crate::engine::{EventId, SimTime};
use crate::error::Result;
use crate::metrics::recorder::Recorder;
use crate::model::speculative::Speculative;
use crate::scenario::Setup;
use std::collections::VecDeque;

/// A batch travelling through the replica's pipeline.
pub struct InFlight {
    /// Its sequences.
    pub entries: Vec<BatchEntry>,
    /// The event that fires when it leaves the last stage.
    pub done_event: EventId,
    /// Its stage runs, kept only when a GPU may fail, so they can be taken back.
    pub bookings: Vec<Booking>,
    /// Its number (the pipeline's batch sequence).
    pub batch: u64,
    /// When `done_event` fires (it moves when its traffic on shared links slows).
    pub done_at: SimTime,
}

/// One DP replica.
pub struct Replica {
    /// Waiting and running requests and the KV pools.
    pub queues: ReplicaQueues,
    /// When each stage is next free.
    pub stage_free: Vec<SimTime>,
    /// Batches in flight, oldest first.
    pub in_flight: VecDeque<InFlight>,
    /// Outstanding tokens (prompt + output still to produce) of its requests, for the router.
    pub outstanding: u64,
    /// End of the latest period with a batch in flight (for pipeline capacity).
    pub period_end: SimTime,
    /// GPUs of the replica currently failed.
    failed_gpus: u32,
    /// Speculative decoding: the acceptance model and this replica's draws.
    drafts: Option<(Speculative, SimRng)>,
}

/// What a failure takes from a replica.
pub struct Lost {
    /// Batches that were in flight.
    pub batches: Vec<InFlight>,
    /// Requests it held, in arrival order, to be routed again.
    pub requests: Vec<Request>,
}

impl Replica {
    /// A replica of `stages` stages whose KV lives in `kv_groups` pools of `blocks`
    /// blocks of `block_tokens` tokens.
    pub fn new(stages: u32, kv_groups: u32, blocks: u32, block_tokens: u32) -> Self {
        Replica {
            queues: ReplicaQueues::new(kv_groups, blocks, block_tokens),
            stage_free: vec![SimTime::ZERO; stages as usize],
            in_flight: VecDeque::new(),
            outstanding: 0,
            period_end: SimTime::ZERO,
            failed_gpus: 0,
            drafts: None,
        }
    }

    /// The replica of `setup` whose pools `asm` sized: speculating when the model does,
    /// its accepted drafts drawn from stream `index` (unique per replica in the run).
    pub fn for_setup(setup: &Setup, asm: &Assembly, index: u64) -> Self {
        let plan = &asm.plan;
        let rep = Replica::new(plan.pp, plan.ep, asm.kv_blocks_per_group, setup.serving.kv_block_tokens);
        match setup.model.speculative {
            Some(spec) => rep.with_speculation(spec, setup.seed, index),
            None => rep,
        }
    }

    /// Turns speculative decoding on: each decode verifies `spec.draft_tokens` drafts,
    /// and how many are accepted is drawn from stream `index` of `seed`.
    pub fn with_speculation(mut self, spec: Speculative, seed: u64, index: u64) -> Self {
        self.queues.draft_tokens = spec.draft_tokens;
        self.drafts = Some((spec, stream(seed, Stream::Speculation, index)));
        self
    }

    /// Tokens a decode entry that verified `drafts` drafts moves forward: its last
    /// token plus the drafts accepted (1 without speculation).
    fn decode_advance(&mut self, drafts: u32) -> u32 {
        match &mut self.drafts {
            Some((spec, rng)) if drafts > 0 => 1 + spec.draw_accepted(rng).min(drafts),
            _ => 1,
        }
    }

    /// No GPU of it is failed.
    pub fn alive(&self) -> bool {
        self.failed_gpus == 0
    }

    /// It can start a batch at `now`: alive, stage 0 free, room for one more in flight.
    pub fn ready(&self, now: SimTime, max_in_flight: usize) -> bool {
        self.alive() && self.stage_free[0] <= now && self.in_flight.len() < max_in_flight
    }

    /// Why `req` can never run here (its KV would not fit one group's pool), if so.
    pub fn refuses(&self, req: &Request) -> Option<String> {
        let pool = &self.queues.kv[0];
        // A speculating decode holds KV for its drafts too, past the request's end.
        let peak = req.peak_tokens().saturating_add(self.queues.draft_tokens);
        let need = super::kv::blocks_for(peak, pool.block_tokens);
        (need > pool.total).then(|| {
            format!(
                "request of {} prompt + {} output tokens needs {need} KV blocks; an attention group holds {} (raise memory or tp/pp, or lower lengths)",
                req.prompt_tokens, req.output_tokens, pool.total
            )
        })
    }

    /// Queues the request in `slot`.
    pub fn enqueue(&mut self, slot: u32, req: &Request) {
        self.outstanding += req.outstanding_tokens();
        self.queues.waiting.push_back(slot);
    }

    /// Books the progress of a batch that left the last stage at `now`; returns the
    /// slots of the requests it finished (still held, for [`Self::retire`]).
    pub fn complete(&mut self, batch: &InFlight, reqs: &mut RequestSlab, rec: &mut Recorder, now: SimTime) -> Vec<u32> {
        let mut finished = Vec::new();
        let (mut emitted, mut prompt) = (0u64, 0u64);
        for e in &batch.entries {
            let was_prefill = reqs.get(e.slot).in_prefill();
            // A decode keeps the KV of its last token and of the drafts accepted, and
            // yields as many tokens (the accepted drafts and the target's own next one).
            let advance = if was_prefill { e.new_tokens } else { self.decode_advance(e.new_tokens - 1) };
            let req = reqs.get_mut(e.slot);
            req.in_flight = false;
            let before = req.outstanding_tokens();
            req.computed += advance;
            let prev = req.last_token_at;
            let left = req.output_tokens.saturating_sub(req.generated);
            let produced = if !e.emits {
                0
            } else if was_prefill {
                1
            } else {
                advance.min(left)
            };
            if produced > 0 {
                req.generated += produced;
                req.first_token_at.get_or_insert(now);
                req.last_token_at = Some(now);
            }
            self.outstanding -= before - req.outstanding_tokens();
            if was_prefill {
                prompt += e.new_tokens as u64;
            }
            emitted += produced as u64;
            for i in 0..produced {
                // Tokens of one step arrive together: gaps after the first are 0.
                rec.token(if i == 0 { prev } else { Some(now) }, now);
            }
            if req.is_done() {
                finished.push(e.slot);
            }
        }
        rec.batch_progress(now, emitted, prompt);
        finished
    }

    /// Removes a finished request, frees its KV blocks and records it.
    pub fn retire(
        &mut self,
        slot: u32,
        reqs: &mut RequestSlab,
        rec: &mut Recorder,
        r: u32,
        now: SimTime,
    ) -> Result<()> {
        self.queues.retire(reqs, slot);
        let req = reqs.remove(slot);
        self.outstanding -= req.outstanding_tokens();
        rec.finish(&req.times(), r, now)
    }

    /// A GPU of this replica failed at `now`. The first failure stops the replica and
    /// returns what it loses; a failure of a replica already stopped only counts.
    pub fn gpu_failed(&mut self, reqs: &mut RequestSlab, now: SimTime) -> Option<Lost> {
        self.failed_gpus += 1;
        if self.failed_gpus > 1 {
            return None;
        }
        let batches: Vec<InFlight> = self.in_flight.drain(..).collect();
        for s in self.stage_free.iter_mut() {
            *s = (*s).min(now);
        }
        let mut slots = self.queues.drain();
        self.outstanding = 0;
        // Re-route in arrival order, so the outcome does not depend on queue layout.
        slots.sort_by_key(|s| reqs.get(*s).id);
        let requests = slots.into_iter().map(|s| reqs.remove(s).restart()).collect();
        Some(Lost { batches, requests })
    }

    /// At the end of a run, every request still held is dropped with its reason, never
    /// lost: the run was cut at the `horizon` (`--max-simulated-s`), or nothing was left
    /// to happen, so it could never finish (the scheduler's rules should make that
    /// impossible).
    pub fn drop_held(&mut self, rec: &mut Recorder, horizon: Option<SimTime>) {
        for _ in self.queues.drain() {
            rec.drop_request(match horizon {
                Some(h) => format!("not finished by the --max-simulated-s horizon ({} s)", h.as_secs_f64()),
                None => "stranded: no event could ever schedule it (a scheduler bug; please report)".into(),
            });
        }
    }

    /// A failed GPU of this replica recovered; true when that revived the replica.
    pub fn gpu_recovered(&mut self) -> bool {
        self.failed_gpus = self.failed_gpus.saturating_sub(1);
        self.failed_gpus == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_with_two_failed_gpus_revives_only_when_both_recover() {
        let mut reqs = RequestSlab::default();
        let mut rep = Replica::new(2, 1, 10, 16);
        let slot = reqs.insert(Request::new(7, SimTime::ZERO, 10, 5));
        rep.enqueue(slot, reqs.get(slot));
        // First failure: the replica stops and hands back its one request.
        let lost = rep.gpu_failed(&mut reqs, SimTime::from_ms(1)).expect("first failure stops it");
        assert_eq!(lost.requests.iter().map(|r| r.id).collect::<Vec<_>>(), vec![7]);
        assert!(lost.requests[0].rerouted);
        // Second GPU fails: nothing more to lose; one recovery is not enough.
        assert!(rep.gpu_failed(&mut reqs, SimTime::from_ms(2)).is_none());
        assert!(!rep.gpu_recovered());
        assert!(!rep.alive());
        assert!(rep.gpu_recovered());
        assert!(rep.alive());
    }
}
