//! The prefix cache of one KV pool: hash blocks keyed by content hash, reference
//! counted, evicted least recently used, optionally spilled to a host-memory tier.
//!
//! A request's prompt is a chain of hash blocks (`hash_block_tokens` tokens each); a
//! block's hash names its whole prefix (Mooncake's `hash_ids`, vLLM's chained block
//! hashes), so two requests share block `i` only if they share blocks `0..=i`. One
//! hash block spans `engine_blocks` of the engine's paged-KV blocks.
//!
//! Every cached block is in exactly one state: referenced by running requests (in
//! HBM, never evicted), unreferenced in HBM (evictable, ordered by the tick of its
//! last release), or unreferenced in host memory. Eviction takes the oldest
//! unreferenced HBM block first; with a host tier it moves there (dropping the host
//! tier's own oldest block when full) instead of being lost.

use std::collections::{BTreeSet, HashMap};

/// Where a cached block lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// GPU memory: usable at once.
    Hbm,
    /// Host memory: must be copied back over PCIe before use.
    Host,
}

#[derive(Clone, Debug)]
struct Entry {
    hash: u64,
    refs: u32,
    tick: u64,
    tier: Tier,
}

/// What a lookup found: the longest cached prefix of a chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hit {
    /// Leading hash blocks cached (any tier).
    pub blocks: u32,
    /// Of those, blocks in host memory (to be reloaded).
    pub host_blocks: u32,
    /// Of those, unreferenced HBM blocks (evictable now; acquiring them makes them not).
    pub idle_hbm_blocks: u32,
}

/// Counters of one cache, summed over pools for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Requests looked up at their first admission.
    pub requests: u64,
    /// Of those, requests that found at least one block cached.
    pub hit_requests: u64,
    /// Prompt tokens of the requests looked up.
    pub prompt_tokens: u64,
    /// Prompt tokens found cached (HBM or host).
    pub hit_tokens: u64,
    /// Of those, tokens found in host memory.
    pub host_hit_tokens: u64,
    /// Hash blocks evicted from HBM (moved to host, or dropped without a host tier).
    pub evicted: u64,
    /// Hash blocks dropped from the host tier (it was full).
    pub host_dropped: u64,
    /// Hash blocks copied back from host memory.
    pub reloaded: u64,
}

/// The prefix cache of one KV pool.
#[derive(Clone, Debug)]
pub struct PrefixCache {
    /// Engine KV blocks per hash block.
    pub engine_blocks: u32,
    map: HashMap<u64, u32>,
    entries: Vec<Entry>,
    free_entries: Vec<u32>,
    idle_hbm: BTreeSet<(u64, u32)>,
    idle_host: BTreeSet<(u64, u32)>,
    host_capacity: u64,
    tick: u64,
    /// Hash blocks resident in HBM (referenced or not).
    pub hbm_blocks: u64,
    /// What happened so far.
    pub counters: CacheCounters,
    /// Time to copy one hash block from host memory into HBM over PCIe, ns.
    pub reload_ns_per_block: u64,
    /// When the host-to-GPU link is next free (reloads queue on it), ns.
    pub link_free_ns: u64,
}

impl PrefixCache {
    /// An empty cache whose hash blocks span `engine_blocks` KV blocks each, with room
    /// for `host_capacity_blocks` hash blocks in host memory (0: no host tier).
    pub fn new(engine_blocks: u32, host_capacity_blocks: u64) -> Self {
        PrefixCache {
            engine_blocks,
            map: HashMap::new(),
            entries: Vec::new(),
            free_entries: Vec::new(),
            idle_hbm: BTreeSet::new(),
            idle_host: BTreeSet::new(),
            host_capacity: host_capacity_blocks,
            tick: 0,
            hbm_blocks: 0,
            counters: CacheCounters::default(),
            reload_ns_per_block: 0,
            link_free_ns: 0,
        }
    }

    /// Engine KV blocks that eviction could free now (unreferenced HBM blocks).
    pub fn evictable_engine_blocks(&self) -> u32 {
        (self.idle_hbm.len() as u64 * self.engine_blocks as u64).min(u32::MAX as u64) as u32
    }

    /// Engine KV blocks the cache holds in HBM.
    pub fn hbm_engine_blocks(&self) -> u64 {
        self.hbm_blocks * self.engine_blocks as u64
    }

    /// Hash blocks held in host memory.
    pub fn host_blocks(&self) -> u64 {
        self.idle_host.len() as u64
    }

    /// The longest cached prefix of `chain`, at most `max_blocks` long.
    pub fn lookup(&self, chain: &[u64], max_blocks: u32) -> Hit {
        let mut hit = Hit::default();
        for h in chain.iter().take(max_blocks as usize) {
            let Some(&e) = self.map.get(h) else { break };
            let e = &self.entries[e as usize];
            hit.blocks += 1;
            match (e.tier, e.refs) {
                (Tier::Host, _) => hit.host_blocks += 1,
                (Tier::Hbm, 0) => hit.idle_hbm_blocks += 1,
                (Tier::Hbm, _) => {}
            }
        }
        hit
    }

    /// References the first `n` blocks of `chain` (a [`Self::lookup`] found them).
    /// Host blocks come back to HBM: the caller must have taken `engine_blocks` free
    /// KV blocks for each ([`Hit::host_blocks`]).
    pub fn acquire(&mut self, chain: &[u64], n: u32) {
        for h in &chain[..n as usize] {
            let idx = self.map[h];
            let e = &mut self.entries[idx as usize];
            if e.refs == 0 {
                let key = (e.tick, idx);
                match e.tier {
                    Tier::Hbm => self.idle_hbm.remove(&key),
                    Tier::Host => {
                        self.counters.reloaded += 1;
                        self.hbm_blocks += 1;
                        self.idle_host.remove(&key)
                    }
                };
                e.tier = Tier::Hbm;
            }
            e.refs += 1;
        }
    }

    /// A request finished computing block `hash` (its engine blocks are in HBM).
    /// Returns true when the cache now owns them (a new entry, referenced once), false
    /// when that hash was cached already: then the caller's copy is a duplicate it
    /// gives back, and the cached one is referenced instead (host copies come back).
    pub fn register(&mut self, hash: u64) -> bool {
        if self.map.contains_key(&hash) {
            let e = self.map[&hash];
            if self.entries[e as usize].tier == Tier::Host {
                // The fresh copy in HBM replaces the host one: the caller's blocks become the entry's.
                let key = (self.entries[e as usize].tick, e);
                self.idle_host.remove(&key);
                let entry = &mut self.entries[e as usize];
                (entry.tier, entry.refs) = (Tier::Hbm, 1);
                self.hbm_blocks += 1;
                return true;
            }
            self.acquire(&[hash], 1);
            return false;
        }
        let entry = Entry { hash, refs: 1, tick: 0, tier: Tier::Hbm };
        let idx = match self.free_entries.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.map.insert(hash, idx);
        self.hbm_blocks += 1;
        true
    }

    /// Drops one reference to each of the first `n` blocks of `chain`. Blocks freed
    /// together are released tail first, so a chain's tail is evicted before its head
    /// (vLLM's free queue does the same: the head is what other requests share).
    pub fn release(&mut self, chain: &[u64], n: u32) {
        for h in chain[..n as usize].iter().rev() {
            let idx = self.map[h];
            let e = &mut self.entries[idx as usize];
            e.refs -= 1;
            if e.refs == 0 {
                self.tick += 1;
                e.tick = self.tick;
                self.idle_hbm.insert((e.tick, idx));
            }
        }
    }

    /// Evicts unreferenced HBM blocks, oldest release first, until at least
    /// `engine_blocks` KV blocks are freed or none is left; returns the KV blocks freed.
    pub fn evict(&mut self, engine_blocks: u32) -> u32 {
        let mut freed = 0;
        while freed < engine_blocks {
            let Some((tick, idx)) = self.idle_hbm.pop_first() else { break };
            self.counters.evicted += 1;
            self.hbm_blocks -= 1;
            freed += self.engine_blocks;
            if self.host_capacity == 0 {
                self.forget(idx);
                continue;
            }
            if self.idle_host.len() as u64 >= self.host_capacity {
                if let Some((_, old)) = self.idle_host.pop_first() {
                    self.counters.host_dropped += 1;
                    self.forget(old);
                }
            }
            self.entries[idx as usize].tier = Tier::Host;
            self.idle_host.insert((tick, idx));
        }
        freed
    }

    fn forget(&mut self, idx: u32) {
        let hash = self.entries[idx as usize].hash;
        self.map.remove(&hash);
        self.free_entries.push(idx);
    }

    /// Forgets everything (the replica failed: its HBM and host copies are gone).
    pub fn clear(&mut self) {
        let fresh = PrefixCache::new(self.engine_blocks, self.host_capacity);
        *self = PrefixCache { counters: self.counters, reload_ns_per_block: self.reload_ns_per_block, ..fresh };
    }
}

#[cfg(test)]
mod tests;
