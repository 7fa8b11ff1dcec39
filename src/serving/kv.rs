//! Paged KV cache accounting: a pool of fixed-size blocks per replica.
//!
//! With prefix caching on, the pool also holds cached prefix blocks
//! ([`PrefixCache`]): those no running request references count as used but are
//! evicted (oldest first) when a request needs the room, as vLLM's free-block queue
//! holds cached blocks until reused.

use super::prefix::cache::PrefixCache;

/// Blocks needed to hold `tokens` tokens.
pub fn blocks_for(tokens: u32, block_tokens: u32) -> u32 {
    tokens.div_ceil(block_tokens)
}

/// A replica's block pool.
#[derive(Clone, Debug)]
pub struct KvPool {
    /// Tokens per block.
    pub block_tokens: u32,
    /// Blocks in all.
    pub total: u32,
    /// Blocks free.
    pub free: u32,
    /// Most blocks ever in use.
    pub peak_used: u32,
    /// The pool's prefix cache, when prefix caching is on.
    pub cache: Option<Box<PrefixCache>>,
}

impl KvPool {
    /// A pool of `total` blocks of `block_tokens` tokens.
    pub fn new(total: u32, block_tokens: u32) -> Self {
        KvPool { block_tokens, total, free: total, peak_used: 0, cache: None }
    }
    /// Blocks a request could get now: free ones, plus cached blocks no request uses.
    pub fn available(&self) -> u32 {
        self.free + self.cache.as_ref().map_or(0, |c| c.evictable_engine_blocks())
    }
    /// Takes `n` blocks if that many are free, evicting unused cached blocks if needed.
    pub fn take(&mut self, n: u32) -> bool {
        if n > self.free {
            if let Some(c) = self.cache.as_mut() {
                self.free += c.evict(n - self.free);
            }
            if n > self.free {
                return false;
            }
        }
        self.free -= n;
        self.peak_used = self.peak_used.max(self.total - self.free);
        true
    }
    /// Returns `n` blocks.
    pub fn give_back(&mut self, n: u32) {
        self.free = (self.free + n).min(self.total);
    }
    /// Frees every block and forgets the cache (the replica lost its GPU memory).
    pub fn reset(&mut self) {
        self.free = self.total;
        if let Some(c) = self.cache.as_mut() {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_up_and_pool_tracks_peak() {
        // 33 tokens in 16-token blocks need 3 blocks.
        assert_eq!(blocks_for(33, 16), 3);
        assert_eq!(blocks_for(32, 16), 2);
        let mut p = KvPool::new(10, 16);
        assert!(p.take(7));
        assert!(!p.take(4));
        p.give_back(5);
        assert!(p.take(4));
        assert_eq!((p.free, p.peak_used), (4, 7));
    }
}
