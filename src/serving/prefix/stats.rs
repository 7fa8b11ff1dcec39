//! What prefix caching did in a run: `summary.json`'s `prefix_cache` section.
//!
//! Hit rates count each request once, at its first admission (a request preempted
//! and admitted again is not counted twice). By tokens: prompt tokens found cached /
//! prompt tokens of the requests looked up. By requests: requests that found at
//! least one block / requests looked up. TTFT is split by whether the request hit.

use super::cache::CacheCounters;
use super::config::PrefixSetup;
pub use crate::metrics::prefix::{PrefixCacheSummary, TierSummary};
use crate::metrics::stats::dist;
use crate::serving::request::Request;

/// TTFTs of finished requests, split by hit.
#[derive(Clone, Debug, Default)]
pub struct PrefixTtft {
    hit: Vec<f64>,
    miss: Vec<f64>,
}

impl PrefixTtft {
    /// Notes a finished request.
    pub fn finish(&mut self, r: &Request) {
        if let Some(first) = r.first_token_at {
            let ttft = first.saturating_sub(r.arrival).as_secs_f64();
            match r.prefix_hit_tokens {
                Some(t) if t > 0 => self.hit.push(ttft),
                _ => self.miss.push(ttft),
            }
        }
    }

    /// The summary from the run's counters (summed over pools), blocks at the end
    /// (HBM, host) and HBM capacity per replica.
    pub fn summary(
        mut self,
        setup: &PrefixSetup,
        k: &CacheCounters,
        blocks_at_end: (u64, u64),
        hbm_gib: f64,
    ) -> PrefixCacheSummary {
        let rate = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        let mut tiers = vec![TierSummary {
            tier: "hbm".into(),
            capacity_gib: hbm_gib,
            hit_tokens: k.hit_tokens - k.host_hit_tokens,
            token_hit_rate: rate(k.hit_tokens - k.host_hit_tokens, k.prompt_tokens),
            blocks_at_end: blocks_at_end.0,
        }];
        if setup.host_memory_gib > 0.0 {
            tiers.push(TierSummary {
                tier: "host".into(),
                capacity_gib: setup.host_memory_gib,
                hit_tokens: k.host_hit_tokens,
                token_hit_rate: rate(k.host_hit_tokens, k.prompt_tokens),
                blocks_at_end: blocks_at_end.1,
            });
        }
        PrefixCacheSummary {
            block_tokens: setup.block_tokens,
            requests: k.requests,
            hit_requests: k.hit_requests,
            request_hit_rate: rate(k.hit_requests, k.requests),
            prompt_tokens: k.prompt_tokens,
            hit_tokens: k.hit_tokens,
            token_hit_rate: rate(k.hit_tokens, k.prompt_tokens),
            ttft_hit_s: dist(&mut self.hit),
            ttft_miss_s: dist(&mut self.miss),
            evicted_blocks: k.evicted,
            reloaded_blocks: k.reloaded,
            host_dropped_blocks: k.host_dropped,
            reload_us_per_block: setup.reload_ns_per_block as f64 / 1e3,
            recompute_us_per_block: setup.recompute_ns_per_block as f64 / 1e3,
            tiers,
        }
    }
}

impl CacheCounters {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &CacheCounters) {
        self.requests += o.requests;
        self.hit_requests += o.hit_requests;
        self.prompt_tokens += o.prompt_tokens;
        self.hit_tokens += o.hit_tokens;
        self.host_hit_tokens += o.host_hit_tokens;
        self.evicted += o.evicted;
        self.host_dropped += o.host_dropped;
        self.reloaded += o.reloaded;
    }
}
