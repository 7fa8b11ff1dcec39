//! The scheduler's side of prefix caching: what an admission reuses, taking it,
//! registering blocks as prompts are scheduled, and freeing a request's blocks.
//!
//! A request's `blocks` counts every KV block its sequence spans; the first
//! `cached_blocks x engine_blocks` of them belong to the pool's prefix cache (shared,
//! reference counted), the rest to the request. A block is registered in the cache
//! when the chunk that computes it is scheduled, as vLLM does (`cache_blocks` in
//! `allocate_slots`), so a request admitted later hits it.
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
