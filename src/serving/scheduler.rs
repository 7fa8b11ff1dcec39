//! The replica scheduler: iteration-level continuous batching as vLLM does it.
//!
//! Each iteration takes, within `max_batch_tokens` and `max_seqs`: first one token for
//! every decoding sequence (1 + the draft tokens it verifies when speculating), then the next prefill chunk of sequences part-way through
//! their prompt, then new requests first-come first-served while KV blocks last.
//! Without chunked prefill, an iteration is either all whole-prompt prefills (when
//! any waiting request can be admitted) or all decodes. When a decode needs a KV
//! block and none is free, the newest running request is preempted: its blocks are
//! freed and it goes back to the head of the queue, to be recomputed later.
//! Sequences in a batch still travelling through the pipeline are not scheduled
//! again until it finishes. Admission policies (`preempt`, `no_evict`): `admission`.
//!
//! A replica whose stages run attention data-parallel over `ep` groups has one KV pool
//! per group: a sequence is admitted into the group with the most free blocks and
//! stays there; preemption frees blocks only in the pool that ran out.

mod admission;
mod prefix;

use super::kv::{blocks_for, KvPool};
use super::request::{Request, RequestSlab};
use crate::engine::SimTime;
use crate::model::framework::{Admission, FrameworkProfile};
use crate::scenario::types::ServingConfig;
use std::collections::VecDeque;

/// Batching limits of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tokens per iteration.
    pub max_batch_tokens: u32,
    /// Most sequences per iteration.
    pub max_seqs: u32,
    /// Mix prompt chunks with decodes.
    pub chunked_prefill: bool,
    /// Largest prompt chunk.
    pub chunk_tokens: u32,
    /// How requests are admitted into the KV cache.
    pub admission: Admission,
}

impl Limits {
    /// `[serving]`'s limits; chunking and admission from the resolved profile `f`.
    pub fn of(s: &ServingConfig, f: &FrameworkProfile) -> Self {
        Limits {
            max_batch_tokens: s.max_batch_tokens,
            max_seqs: s.max_seqs,
            chunked_prefill: f.chunked_prefill,
            chunk_tokens: s.chunk_tokens.unwrap_or(s.max_batch_tokens),
            admission: f.admission,
        }
    }
}

/// One sequence's part in an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchEntry {
    /// Request slot.
    pub slot: u32,
    /// Tokens processed this iteration (1 for a decode).
    pub new_tokens: u32,
    /// Tokens already in the KV cache before this iteration.
    pub context: u32,
    /// The iteration produces a token for this sequence.
    pub emits: bool,
}

/// A replica's queues and KV pools.
#[derive(Debug)]
pub struct ReplicaQueues {
    /// Arrived, not admitted (preempted requests return to the front).
    pub waiting: VecDeque<u32>,
    /// Admitted (holding KV blocks), in admission order.
    pub running: Vec<u32>,
    /// One KV block pool per attention data-parallel group.
    pub kv: Vec<KvPool>,
    /// Running requests per group.
    running_in: Vec<u32>,
    /// Draft tokens each decode verifies (speculative decoding; 0: off): a decode then
    /// runs 1 + this many tokens and holds KV blocks for them.
    pub draft_tokens: u32,
    /// Earliest time a request waiting for KV reloaded from host memory can go on
    /// (the simulation wakes the replica then); taken by the caller.
    pub wake_at: Option<SimTime>,
}

impl ReplicaQueues {
    /// Empty queues over `groups` pools of `blocks` blocks of `block_tokens` tokens each.
    pub fn new(groups: u32, blocks: u32, block_tokens: u32) -> Self {
        let groups = groups.max(1) as usize;
        ReplicaQueues {
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv: vec![KvPool::new(blocks, block_tokens); groups],
            running_in: vec![0; groups],
            draft_tokens: 0,
            wake_at: None,
        }
    }

    /// Tokens per KV block.
    pub fn block_tokens(&self) -> u32 {
        self.kv[0].block_tokens
    }

    /// Takes `slot` out of the running set (it finished) and frees its blocks.
    pub fn retire(&mut self, reqs: &mut RequestSlab, slot: u32) {
        self.running.retain(|s| *s != slot);
        let r = reqs.get_mut(slot);
        self.free_blocks(r);
        self.running_in[r.kv_group as usize] -= 1;
    }

    /// Empties every queue and pool (the replica failed); returns the slots it held.
    pub fn drain(&mut self) -> Vec<u32> {
        let mut slots: Vec<u32> = self.running.drain(..).collect();
        slots.extend(self.waiting.drain(..));
        for (pool, n) in self.kv.iter_mut().zip(self.running_in.iter_mut()) {
            pool.reset();
            *n = 0;
        }
        slots
    }

    /// The group a new sequence joins: the one with the most free blocks (lowest index on ties).
    fn pick_group(&self) -> usize {
        let mut best = 0;
        for (g, p) in self.kv.iter().enumerate() {
            if p.available() > self.kv[best].available() {
                best = g;
            }
        }
        best
    }

    /// Requests waiting or running.
    pub fn requests(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// Forms the next iteration's batch into `out` (cleared first). Returns the number
    /// of preemptions it made.
    pub fn form_batch(&mut self, reqs: &mut RequestSlab, lim: &Limits, now: SimTime, out: &mut Vec<BatchEntry>) -> u32 {
        out.clear();
        if !lim.chunked_prefill {
            let mut tokens_left = lim.max_batch_tokens;
            self.admit(reqs, lim, now, out, &mut tokens_left, lim.max_seqs, false);
            if !out.is_empty() {
                return 0;
            }
            let mut t = lim.max_batch_tokens;
            let mut s = lim.max_seqs;
            return self.decodes(reqs, out, &mut t, &mut s);
        }
        let mut tokens_left = lim.max_batch_tokens;
        let mut seqs_left = lim.max_seqs;
        let mut preempted = self.decodes(reqs, out, &mut tokens_left, &mut seqs_left);
        preempted += self.continue_prefills(reqs, lim, now, out, &mut tokens_left, &mut seqs_left);
        self.admit(reqs, lim, now, out, &mut tokens_left, seqs_left, true);
        preempted
    }

    fn decodes(&mut self, reqs: &mut RequestSlab, out: &mut Vec<BatchEntry>, tokens: &mut u32, seqs: &mut u32) -> u32 {
        let mut preempted = 0;
        let mut i = 0;
        let step = 1 + self.draft_tokens;
        while i < self.running.len() && *tokens >= step && *seqs > 0 {
            let slot = self.running[i];
            let r = reqs.get(slot);
            if r.in_flight || r.in_prefill() {
                i += 1;
                continue;
            }
            let group = r.kv_group as usize;
            let need = blocks_for(r.computed + step, self.block_tokens()).saturating_sub(r.blocks);
            if need > 0 && !self.kv[group].take(need) {
                // Preempt the newest request of this pool that is not in this batch or in flight.
                let victim = (i..self.running.len()).rev().find(|&j| {
                    let v = reqs.get(self.running[j]);
                    !v.in_flight && v.kv_group as usize == group
                });
                let Some(j) = victim else { break };
                self.preempt(reqs, j);
                preempted += 1;
                continue; // retry index i (or, if it was the victim, its successor)
            }
            let r = reqs.get_mut(slot);
            r.blocks += need;
            let context = r.computed;
            self.schedule(out, slot, r, context, step);
            *tokens -= step;
            *seqs -= 1;
            i += 1;
        }
        preempted
    }

    /// Next chunks of prompts part-way through. A chunk that finds its pool full
    /// preempts the youngest younger request of the pool (as vLLM does for any running
    /// request), so two half-done prompts can never hold the pool between them forever;
    /// when there is none it waits. Returns the preemptions made.
    fn continue_prefills(
        &mut self,
        reqs: &mut RequestSlab,
        lim: &Limits,
        now: SimTime,
        out: &mut Vec<BatchEntry>,
        tokens: &mut u32,
        seqs: &mut u32,
    ) -> u32 {
        let mut preempted = 0;
        let mut i = 0;
        while i < self.running.len() && *tokens > 0 && *seqs > 0 {
            let slot = self.running[i];
            let r = reqs.get(slot);
            if r.in_flight || !r.in_prefill() || r.kv_ready_at > now || out.iter().any(|e| e.slot == slot) {
                i += 1;
                continue;
            }
            let group = r.kv_group;
            let chunk = (r.prefill_len - r.computed).min(*tokens).min(lim.chunk_tokens);
            let need = blocks_for(r.computed + chunk, self.block_tokens()).saturating_sub(r.blocks);
            if !self.kv[group as usize].take(need) {
                let victim = (i + 1..self.running.len()).rev().find(|&j| {
                    let v = reqs.get(self.running[j]);
                    !v.in_flight && v.kv_group == group && !out.iter().any(|e| e.slot == self.running[j])
                });
                let Some(j) = victim else { return preempted };
                self.preempt(reqs, j);
                preempted += 1;
                continue;
            }
            let r = reqs.get_mut(slot);
            r.blocks += need;
            let context = r.computed;
            self.schedule(out, slot, r, context, chunk);
            *tokens -= chunk;
            *seqs -= 1;
            i += 1;
        }
        preempted
    }

    /// Puts `new_tokens` of request `r` (in `slot`), after the `context` it already
    /// holds, into this iteration, and caches the prefix blocks they fill. The iteration
    /// emits a token once the whole prompt is computed: a decode always (its context
    /// holds the prompt), a prompt chunk when it is the last one.
    fn schedule(&mut self, out: &mut Vec<BatchEntry>, slot: u32, r: &mut Request, context: u32, new_tokens: u32) {
        let emits = context + new_tokens >= r.prefill_len;
        out.push(BatchEntry { slot, new_tokens, context, emits });
        self.register_upto(r, context + new_tokens);
    }

    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        reqs: &mut RequestSlab,
        lim: &Limits,
        now: SimTime,
        out: &mut Vec<BatchEntry>,
        tokens: &mut u32,
        mut seqs: u32,
        chunked: bool,
    ) {
        while let Some(&slot) = self.waiting.front() {
            if *tokens == 0 || seqs == 0 {
                return;
            }
            let group = self.pick_group();
            // The cached prefix it reuses (none without prefix caching).
            let u = self.reuse(reqs.get(slot), group);
            let r = reqs.get_mut(slot);
            let rest = r.prefill_len - u.tokens;
            let chunk = if chunked {
                rest.min(*tokens).min(lim.chunk_tokens)
            } else if rest <= *tokens || out.is_empty() {
                // A prompt longer than the batch limit runs alone rather than never.
                rest
            } else {
                return;
            };
            let alone = self.running_in[group] == 0;
            let Some((span, need)) = admission::fit(lim.admission, r, &u, chunk, &self.kv[group], alone) else {
                return;
            };
            self.take_reuse(r, group, &u, now);
            self.kv[group].take(need);
            self.running_in[group] += 1;
            r.blocks = span;
            r.kv_group = group as u32;
            r.scheduled_at.get_or_insert(now);
            self.waiting.pop_front();
            self.running.push(slot);
            if r.kv_ready_at > now {
                continue; // its first chunk waits for the reload (`wake_at`)
            }
            self.schedule(out, slot, r, u.tokens, chunk);
            *tokens = tokens.saturating_sub(chunk);
            seqs -= 1;
        }
    }

    /// Reserves `blocks` blocks for a sequence whose KV cache is on its way (a
    /// disaggregated handoff), in the group with the most free blocks; the group, or
    /// None when no group has that many free.
    pub fn reserve(&mut self, blocks: u32) -> Option<u32> {
        let group = self.pick_group();
        self.kv[group].take(blocks).then_some(group as u32)
    }

    /// Puts `slot`, whose KV cache has landed in blocks reserved in `group`, straight
    /// into the running set: it decodes from the next iteration.
    pub fn install(&mut self, slot: u32, group: u32) {
        self.running.push(slot);
        self.running_in[group as usize] += 1;
    }

    fn preempt(&mut self, reqs: &mut RequestSlab, index: usize) {
        let slot = self.running.remove(index);
        let r = reqs.get_mut(slot);
        self.free_blocks(r);
        self.running_in[r.kv_group as usize] -= 1;
        r.computed = 0;
        r.prefill_len = r.prompt_tokens.saturating_add(r.generated);
        r.preemptions += 1;
        self.waiting.push_front(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::request::Request;

    fn lim(tokens: u32, chunked: bool) -> Limits {
        Limits {
            max_batch_tokens: tokens,
            max_seqs: 8,
            chunked_prefill: chunked,
            chunk_tokens: tokens,
            admission: Admission::Preempt,
        }
    }

    #[test]
    fn chunked_prefill_splits_a_long_prompt() {
        // A 100-token prompt with a 64-token budget: chunk 64 (no token), then 36 (emits).
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 100, 16);
        let s = reqs.insert(Request::new(0, SimTime::ZERO, 100, 5));
        q.waiting.push_back(s);
        let mut out = Vec::new();
        q.form_batch(&mut reqs, &lim(64, true), SimTime::ZERO, &mut out);
        assert_eq!(out, vec![BatchEntry { slot: s, new_tokens: 64, context: 0, emits: false }]);
        reqs.get_mut(s).computed = 64;
        q.form_batch(&mut reqs, &lim(64, true), SimTime::ZERO, &mut out);
        assert_eq!(out, vec![BatchEntry { slot: s, new_tokens: 36, context: 64, emits: true }]);
        // 64 + 36 = 100 tokens in 16-token blocks = 7 blocks held.
        assert_eq!(reqs.get(s).blocks, 7);
    }

    #[test]
    fn decode_out_of_blocks_preempts_newest() {
        // Pool of 2 blocks of 4 tokens; two requests each hold 1 full block (4 tokens
        // computed, decoding). The first decode needs a second block: takes the last
        // free one. The second then needs one: none left, so the newest (itself) is
        // preempted back to the queue with its output recomputed as prompt.
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 3, 4);
        assert!(q.kv[0].take(2));
        q.running_in[0] = 2;
        for id in 0..2 {
            let mut r = Request::new(id, SimTime::ZERO, 3, 10);
            r.computed = 4;
            r.prefill_len = 4;
            r.generated = 1;
            r.blocks = 1;
            let s = reqs.insert(r);
            q.running.push(s);
        }
        let mut out = Vec::new();
        let pre = q.form_batch(&mut reqs, &lim(64, true), SimTime::ZERO, &mut out);
        assert_eq!(pre, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].slot, 0);
        assert_eq!(q.waiting.front(), Some(&1));
        let r1 = reqs.get(1);
        assert_eq!((r1.computed, r1.blocks, r1.prefill_len, r1.preemptions), (0, 0, 4, 1));
    }

    #[test]
    fn without_chunking_prefills_run_alone() {
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 1000, 16);
        let mut r = Request::new(0, SimTime::ZERO, 10, 10);
        r.computed = 10;
        r.generated = 1;
        r.blocks = 1;
        let d = reqs.insert(r);
        q.running.push(d);
        q.running_in[0] = 1;
        let w = reqs.insert(Request::new(1, SimTime::ZERO, 20, 10));
        q.waiting.push_back(w);
        let mut out = Vec::new();
        q.form_batch(&mut reqs, &lim(64, false), SimTime::ZERO, &mut out);
        assert_eq!(out, vec![BatchEntry { slot: w, new_tokens: 20, context: 0, emits: true }]);
    }

    #[test]
    fn an_ep4_replica_holds_four_pools_and_balances_admission() {
        // Each attention group's pool: 100 blocks of 16 tokens (watermark ceil(1 %) = 1
        // block). 40 waiting prompts of 160 tokens need 10 blocks each. One group admits
        // 9 (90 blocks used, 10 free < 10 + 1); four groups admit 9 each = 36, 4x as
        // many, balanced 9/9/9/9 because each goes to the pool with the most free blocks.
        let admitted = |groups: u32| {
            let mut reqs = RequestSlab::default();
            let mut q = ReplicaQueues::new(groups, 100, 16);
            for id in 0..40 {
                let s = reqs.insert(Request::new(id, SimTime::ZERO, 160, 10));
                q.waiting.push_back(s);
            }
            let mut out = Vec::new();
            let lim = Limits {
                max_batch_tokens: 100_000,
                max_seqs: 1_000,
                chunked_prefill: true,
                chunk_tokens: 100_000,
                admission: Admission::Preempt,
            };
            q.form_batch(&mut reqs, &lim, SimTime::ZERO, &mut out);
            let per_group: Vec<u32> = q.kv.iter().map(|p| (p.total - p.free) / 10).collect();
            (out.len(), per_group)
        };
        assert_eq!(admitted(1), (9, vec![9]));
        assert_eq!(admitted(4), (36, vec![9, 9, 9, 9]));
    }

    #[test]
    fn preemption_frees_blocks_only_in_the_pool_that_ran_out() {
        // Two groups of 2 blocks of 4 tokens. Group 0 holds two decoding requests of 4
        // tokens (1 block each, pool full); group 1 holds one. Request 0's decode needs a
        // second block: the victim must come from group 0 (request 1), not group 1's (2).
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(2, 2, 4);
        for (id, group) in [(0, 0), (1, 0), (2, 1)] {
            let mut r = Request::new(id, SimTime::ZERO, 3, 10);
            (r.computed, r.prefill_len, r.generated, r.blocks, r.kv_group) = (4, 4, 1, 1, group);
            q.kv[group as usize].take(1);
            q.running_in[group as usize] += 1;
            let s = reqs.insert(r);
            q.running.push(s);
        }
        let mut out = Vec::new();
        let lim = Limits {
            max_batch_tokens: 64,
            max_seqs: 8,
            chunked_prefill: true,
            chunk_tokens: 64,
            admission: Admission::Preempt,
        };
        assert_eq!(q.form_batch(&mut reqs, &lim, SimTime::ZERO, &mut out), 1);
        assert_eq!(reqs.get(1).preemptions, 1);
        assert_eq!(reqs.get(2).preemptions, 0);
        assert_eq!(out.iter().map(|e| e.slot).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn two_half_done_prompts_cannot_hold_the_pool_forever() {
        // One pool of 10 blocks of 16 tokens; prompts A (older) and B of 120 tokens
        // (8 blocks each) have each prefilled 80 tokens (5 blocks): the pool is full and
        // nothing is in flight. A's next chunk (40 tokens, 3 more blocks) preempts B, the
        // younger, and runs: A holds 8 blocks, B is back at the head of the queue with none.
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 10, 16);
        for id in 0..2 {
            let mut r = Request::new(id, SimTime::ZERO, 120, 4);
            (r.computed, r.blocks) = (80, 5);
            q.kv[0].take(5);
            q.running_in[0] += 1;
            let s = reqs.insert(r);
            q.running.push(s);
        }
        let mut out = Vec::new();
        let lim = Limits {
            max_batch_tokens: 64,
            max_seqs: 8,
            chunked_prefill: true,
            chunk_tokens: 64,
            admission: Admission::Preempt,
        };
        assert_eq!(q.form_batch(&mut reqs, &lim, SimTime::ZERO, &mut out), 1);
        assert_eq!(out, vec![BatchEntry { slot: 0, new_tokens: 40, context: 80, emits: true }]);
        assert_eq!((reqs.get(0).blocks, reqs.get(1).blocks), (8, 0));
        assert_eq!(q.waiting.front(), Some(&1));
    }
}
