//! `summary.json`'s `prefix_cache` section: what prefix caching did in a run (filled by
//! `serving::prefix::stats`; see there for how hit rates are counted).

use super::summary::Dist;
use serde::{Deserialize, Serialize};

/// One tier of the cache in the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TierSummary {
    /// `hbm` or `host`.
    pub tier: String,
    /// Capacity for cached blocks per replica, GiB (HBM: the KV reserve it shares with
    /// running requests).
    pub capacity_gib: f64,
    /// Prompt tokens found in this tier.
    pub hit_tokens: u64,
    /// Those / prompt tokens looked up.
    pub token_hit_rate: f64,
    /// Hash blocks held in this tier at the end of the run, all replicas.
    pub blocks_at_end: u64,
}

/// `summary.json` `prefix_cache`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefixCacheSummary {
    /// Tokens per hash block.
    pub block_tokens: u32,
    /// Requests looked up (at their first admission).
    pub requests: u64,
    /// Requests that found at least one block cached.
    pub hit_requests: u64,
    /// hit_requests / requests.
    pub request_hit_rate: f64,
    /// Prompt tokens of the requests looked up.
    pub prompt_tokens: u64,
    /// Prompt tokens found cached, any tier.
    pub hit_tokens: u64,
    /// hit_tokens / prompt_tokens.
    pub token_hit_rate: f64,
    /// TTFT of completed requests that hit, s.
    pub ttft_hit_s: Dist,
    /// TTFT of completed requests that did not, s.
    pub ttft_miss_s: Dist,
    /// Hash blocks evicted from HBM (to host memory, or dropped).
    pub evicted_blocks: u64,
    /// Hash blocks copied back from host memory.
    pub reloaded_blocks: u64,
    /// Hash blocks dropped from a full host tier.
    pub host_dropped_blocks: u64,
    /// Time to reload one hash block over PCIe, us (0 without a host tier).
    pub reload_us_per_block: f64,
    /// Lower bound on the time to recompute one, us.
    pub recompute_us_per_block: f64,
    /// Per tier: HBM, then host memory when configured.
    pub tiers: Vec<TierSummary>,
}
