//! The scheduler's side of prefix caching: what an admission reuses, taking it,
//! registering blocks as prompts are scheduled, and freeing a request's blocks.
//!
//! A request's `blocks` counts every KV block its sequence spans; the first
//! `cached_blocks x engine_blocks` of them belong to the pool's prefix cache (shared,
//! reference counted), the rest to the request. A block is registered in the cache
//! when the chunk or decode step that fills it is scheduled, as vLLM does
//! (`cache_blocks` in `allocate_slots`), so a request admitted later hits it; a
//! request's chain says how far that goes (a trace row's prompt, a generated
//! request's prompt and reply).
//!
//! A hit never covers the whole prompt: at least one token is prefilled, since the
//! first output token needs the last prompt token's logits (vLLM caps a hit at
//! `num_tokens - 1` the same way), and hits are whole hash blocks.

use super::ReplicaQueues;
use crate::engine::SimTime;
use crate::serving::prefix::cache::{Hit, PrefixCache};
use crate::serving::request::Request;

/// What admitting a request into a pool would reuse (all zero without a cache).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reuse {
    /// The cached prefix found.
    pub hit: Hit,
    /// Prompt tokens it covers.
    pub tokens: u32,
    /// KV blocks it spans.
    pub kv: u32,
    /// KV blocks to take for hit blocks coming back from host memory.
    pub reload_kv: u32,
    /// KV blocks of the hit no request uses now (counted in `available()`).
    pub idle_kv: u32,
}

impl ReplicaQueues {
    /// Turns prefix caching on in every pool: hash blocks of `hash_block_tokens`
    /// tokens (a multiple of the KV block size), room for `host_blocks` hash blocks
    /// per pool in host memory, each copied back in `reload_ns_per_block`.
    pub fn enable_prefix(&mut self, hash_block_tokens: u32, host_blocks: u64, reload_ns_per_block: u64) {
        for pool in &mut self.kv {
            let mut c = PrefixCache::new(hash_block_tokens / pool.block_tokens, host_blocks);
            c.reload_ns_per_block = reload_ns_per_block;
            pool.cache = Some(Box::new(c));
        }
    }

    /// What `r` would reuse if admitted into `group` now.
    pub(super) fn reuse(&self, r: &Request, group: usize) -> Reuse {
        let pool = &self.kv[group];
        let Some(c) = pool.cache.as_ref() else { return Reuse::default() };
        let hash_tokens = c.engine_blocks * pool.block_tokens;
        let hit = c.lookup(&r.chain, r.prefill_len.saturating_sub(1) / hash_tokens);
        Reuse {
            hit,
            tokens: hit.blocks * hash_tokens,
            kv: hit.blocks * c.engine_blocks,
            reload_kv: hit.host_blocks * c.engine_blocks,
            idle_kv: hit.idle_hbm_blocks * c.engine_blocks,
        }
    }

    /// Prompt tokens `r` would still prefill here: its prompt less the longest cached
    /// prefix in any of the replica's pools (for the cache-aware router).
    pub fn uncached_tokens(&self, r: &Request) -> u32 {
        let best = (0..self.kv.len()).map(|g| self.reuse(r, g).tokens).max().unwrap_or(0);
        r.prompt_tokens - best.min(r.prompt_tokens)
    }

    /// References what `u` found for `r` in `group` (before its new blocks are taken,
    /// so taking them cannot evict the hit), counts it at the first admission, and
    /// starts the reload of host blocks: `r` waits for it (`kv_ready_at`).
    pub(super) fn take_reuse(&mut self, r: &mut Request, group: usize, u: &Reuse, now: SimTime) {
        let Some(c) = self.kv[group].cache.as_mut() else { return };
        c.acquire(&r.chain, u.hit.blocks);
        r.cached_blocks = u.hit.blocks;
        r.computed = u.tokens;
        if r.scheduled_at.is_none() {
            let k = &mut c.counters;
            k.requests += 1;
            k.hit_requests += (u.tokens > 0) as u64;
            k.prompt_tokens += r.prompt_tokens as u64;
            k.hit_tokens += u.tokens as u64;
            k.host_hit_tokens += (u.hit.host_blocks * (u.tokens / u.hit.blocks.max(1))) as u64;
            r.prefix_hit_tokens = Some(u.tokens);
        }
        if u.hit.host_blocks > 0 {
            // Reloads queue on the host-to-GPU link in the order they are asked for.
            let start = c.link_free_ns.max(now.0);
            c.link_free_ns = start + u.hit.host_blocks as u64 * c.reload_ns_per_block;
            r.kv_ready_at = SimTime(c.link_free_ns);
            self.wake_at = Some(self.wake_at.map_or(r.kv_ready_at, |w| w.min(r.kv_ready_at)));
        }
    }

    /// `r`'s prompt is scheduled up to `tokens`: registers the hash blocks that
    /// completes. A block already cached (another request computed it meanwhile) is
    /// shared instead, and `r`'s copy goes back to the pool.
    pub(super) fn register_upto(&mut self, r: &mut Request, tokens: u32) {
        let pool = &mut self.kv[r.kv_group as usize];
        let Some(c) = pool.cache.as_mut() else { return };
        let full = (tokens / (c.engine_blocks * pool.block_tokens)).min(r.chain.len() as u32);
        let mut dup = 0;
        while r.cached_blocks < full {
            if !c.register(r.chain[r.cached_blocks as usize]) {
                dup += c.engine_blocks;
            }
            r.cached_blocks += 1;
        }
        pool.give_back(dup);
    }

    /// Frees `r`'s own blocks and drops its references to cached ones (retire, preempt).
    pub(super) fn free_blocks(&mut self, r: &mut Request) {
        let pool = &mut self.kv[r.kv_group as usize];
        let shared = match pool.cache.as_mut() {
            Some(c) => {
                c.release(&r.chain, r.cached_blocks);
                r.cached_blocks * c.engine_blocks
            }
            None => 0,
        };
        pool.give_back(r.blocks - shared);
        r.blocks = 0;
        r.cached_blocks = 0;
    }

    /// KV blocks of `group` that are in use, by whom: (requests' own, the cache's in
    /// HBM). With the free blocks they add up to the pool (conservation).
    pub fn kv_accounting(&self, reqs: &crate::serving::request::RequestSlab, group: usize) -> (u64, u64) {
        let pool = &self.kv[group];
        let m = pool.cache.as_ref().map_or(0, |c| c.engine_blocks);
        let own = self
            .running
            .iter()
            .map(|s| reqs.get(*s))
            .filter(|r| r.kv_group as usize == group)
            .map(|r| (r.blocks - r.cached_blocks * m) as u64)
            .sum();
        (own, pool.cache.as_ref().map_or(0, |c| c.hbm_engine_blocks()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BatchEntry, Limits};
    use super::*;
    use crate::serving::request::RequestSlab;

    fn lim() -> Limits {
        Limits {
            max_batch_tokens: 4096,
            max_seqs: 64,
            chunked_prefill: true,
            chunk_tokens: 4096,
            admission: crate::model::framework::Admission::Preempt,
        }
    }

    /// Books a batch as if it ran: progress, and retires what finished.
    fn run(q: &mut ReplicaQueues, reqs: &mut RequestSlab, out: &[BatchEntry]) {
        for e in out {
            let r = reqs.get_mut(e.slot);
            r.computed += e.new_tokens;
            r.generated += e.emits as u32;
            if r.is_done() {
                q.retire(reqs, e.slot);
                reqs.remove(e.slot);
            }
        }
    }

    #[test]
    fn a_prompt_sharing_three_of_four_blocks_prefills_one_block() {
        // 16-token KV blocks and hash blocks. A (64 tokens = 4 blocks, chain [1,2,3,4])
        // runs and finishes; B (64 tokens, chain [1,2,3,9]) then finds blocks 1-3
        // cached: its prefill is the last 16 tokens at context 48, and it takes one new
        // KV block, not four.
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 100, 16);
        q.enable_prefix(16, 0, 0);
        let mut a = Request::new(0, SimTime::ZERO, 64, 1);
        a.chain = vec![1, 2, 3, 4].into();
        let a = reqs.insert(a);
        q.waiting.push_back(a);
        let mut out = Vec::new();
        q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
        assert_eq!(out, vec![BatchEntry { slot: a, new_tokens: 64, context: 0, emits: true }]);
        run(&mut q, &mut reqs, &out);
        assert_eq!(q.kv[0].free, 96, "A's 4 blocks stay cached after it finished");
        let mut b = Request::new(1, SimTime::ZERO, 64, 1);
        b.chain = vec![1, 2, 3, 9].into();
        let b = reqs.insert(b);
        q.waiting.push_back(b);
        q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
        assert_eq!(out, vec![BatchEntry { slot: b, new_tokens: 16, context: 48, emits: true }]);
        assert_eq!(q.kv[0].free, 95);
        let c = q.kv[0].cache.as_ref().expect("cache");
        assert_eq!((c.counters.hit_tokens, c.counters.prompt_tokens, c.counters.hit_requests), (48, 128, 1));
    }

    #[test]
    fn a_prompt_found_whole_still_prefills_its_last_block() {
        // The same 64-token prompt again: 4 blocks cached, but the first output token
        // needs the last prompt token computed, so 3 blocks are reused and 16 tokens run.
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 100, 16);
        q.enable_prefix(16, 0, 0);
        let mut out = Vec::new();
        for id in 0..2 {
            let mut r = Request::new(id, SimTime::ZERO, 64, 1);
            r.chain = vec![1, 2, 3, 4].into();
            let s = reqs.insert(r);
            q.waiting.push_back(s);
            q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
            run(&mut q, &mut reqs, &out);
        }
        assert_eq!(out[0].new_tokens, 16);
        // The second copy of block 4 was a duplicate and went back: still 4 used.
        assert_eq!(q.kv[0].free, 96);
    }

    #[test]
    fn every_kv_block_is_free_held_by_a_request_or_cached() {
        // A small pool (40 blocks of 16 tokens, 32-token hash blocks) under requests of
        // 6 sessions with growing prompts: admissions, hits, evictions and preemptions
        // all happen; after every iteration the pool's used blocks must equal the
        // requests' own plus the cache's, and at the end only cached blocks remain.
        let mut rng = crate::engine::rng::stream(7, crate::engine::rng::Stream::Test, 0);
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 40, 16);
        q.enable_prefix(32, 0, 0);
        let mut out = Vec::new();
        let (mut preempted, mut next_id) = (0, 0);
        for step in 0..3000u32 {
            if step < 300 && rand::Rng::random_range(&mut rng, 0..3) == 0 {
                let session = rand::Rng::random_range(&mut rng, 0..6u64);
                let prompt = rand::Rng::random_range(&mut rng, 20..200u32);
                let mut r = Request::new(next_id, SimTime::ZERO, prompt, rand::Rng::random_range(&mut rng, 1..40));
                r.chain = crate::workload::prefix::generated_chain(session, prompt, 64, 32);
                next_id += 1;
                let s = reqs.insert(r);
                q.waiting.push_back(s);
            }
            preempted += q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
            run(&mut q, &mut reqs, &out);
            if step >= 300 && q.requests() == 0 {
                break;
            }
            let (own, cached) = q.kv_accounting(&reqs, 0);
            assert_eq!((q.kv[0].total - q.kv[0].free) as u64, own + cached, "step {step}");
        }
        let c = q.kv[0].cache.as_ref().expect("cache");
        assert!(preempted > 0 && c.counters.evicted > 0 && c.counters.hit_tokens > 0);
        assert!(q.requests() == 0 && reqs.is_empty(), "all {next_id} requests finished");
        assert_eq!((q.kv[0].total - q.kv[0].free) as u64, c.hbm_engine_blocks());
    }

    #[test]
    fn a_prefix_in_host_memory_waits_for_its_reload_then_prefills_the_rest() {
        // Hash blocks of 16 tokens, a host tier of 10 blocks, 1 us to reload one. A
        // (64 tokens, chain [1,2,3,4]) runs and finishes; filling the pool evicts its 4
        // blocks to host memory. B (same chain) finds 3 blocks there (the 4th is its
        // last prompt block, always computed): it is admitted at t = 0 but runs nothing
        // until its 3 blocks are back at 3 x 1 us = 3 us; then it prefills 16 tokens.
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 100, 16);
        q.enable_prefix(16, 10, 1_000);
        let mut out = Vec::new();
        let mut a = Request::new(0, SimTime::ZERO, 64, 1);
        a.chain = vec![1, 2, 3, 4].into();
        let a = reqs.insert(a);
        q.waiting.push_back(a);
        q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
        run(&mut q, &mut reqs, &out);
        assert!(q.kv[0].take(100), "taking every block evicts the 4 cached ones");
        q.kv[0].give_back(100);
        let mut b = Request::new(1, SimTime::ZERO, 64, 1);
        b.chain = vec![1, 2, 3, 4].into();
        let b = reqs.insert(b);
        q.waiting.push_back(b);
        q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
        assert!(out.is_empty());
        assert_eq!(q.wake_at.take(), Some(SimTime(3_000)));
        q.form_batch(&mut reqs, &lim(), SimTime(2_999), &mut out);
        assert!(out.is_empty(), "not before the reload is done");
        q.form_batch(&mut reqs, &lim(), SimTime(3_000), &mut out);
        assert_eq!(out, vec![BatchEntry { slot: b, new_tokens: 16, context: 48, emits: true }]);
        let c = q.kv[0].cache.as_ref().expect("cache");
        assert_eq!((c.counters.reloaded, c.counters.host_hit_tokens, c.counters.evicted), (3, 48, 4));
    }

    #[test]
    fn decoding_caches_the_reply_blocks_it_fills() {
        // 16-token blocks; a 30-token prompt whose chain runs on through its reply (3
        // blocks). Prefill schedules tokens 0..30: block 0 (0..16) is full and cached.
        // The decode of token 30 fills 31 tokens, no new block; that of token 31 fills
        // 32: block 1 is cached. Block 2 (32..48) is never full: the chain's third hash
        // waits.
        let mut reqs = RequestSlab::default();
        let mut q = ReplicaQueues::new(1, 100, 16);
        q.enable_prefix(16, 0, 0);
        let mut r = Request::new(0, SimTime::ZERO, 30, 10);
        r.chain = vec![5, 6, 7].into();
        let s = reqs.insert(r);
        q.waiting.push_back(s);
        let mut out = Vec::new();
        let mut cached = Vec::new();
        for _ in 0..3 {
            q.form_batch(&mut reqs, &lim(), SimTime::ZERO, &mut out);
            run(&mut q, &mut reqs, &out);
            cached.push(reqs.get(s).cached_blocks);
        }
        assert_eq!(cached, vec![1, 1, 2]);
        assert_eq!(q.kv[0].cache.as_ref().expect("cache").lookup(&[5, 6, 7], 3).blocks, 2);
    }
}
