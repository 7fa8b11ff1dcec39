//! The global router: which DP replica serves a new request.
//!
//! `cache_aware` (with prefix caching) sends a request where serving it costs least,
//! counting both the prefill it cannot skip there and the work already queued:
//! cost = `prompt - cached prefix` + the replica's outstanding tokens (prompt plus
//! output not yet produced of its requests), lowest index on ties. This is NVIDIA
//! Dynamo's KV router rule (cost = overlap_score_weight x blocks to prefill + active
//! blocks, weight 1 by default) in tokens; with no prefix cached anywhere it picks the
//! same replica as `least_outstanding`.

use crate::engine::rng::{stream, SimRng, Stream};
use crate::scenario::types::RouterKind;
use rand::Rng;

/// Picks replicas for arriving requests.
pub struct Router {
    kind: RouterKind,
    next: usize,
    rng: SimRng,
}

impl Router {
    /// A router of `kind`, seeded from the scenario seed.
    pub fn new(kind: RouterKind, seed: u64) -> Self {
        Router { kind, next: 0, rng: stream(seed, Stream::Router, 0) }
    }

    /// Chooses among replicas that are `alive`, given each one's outstanding tokens.
    /// Returns None when no replica is alive.
    pub fn choose(&mut self, alive: &[bool], outstanding_tokens: &[u64]) -> Option<usize> {
        let n = alive.len();
        if !alive.iter().any(|a| *a) {
            return None;
        }
        match self.kind {
            RouterKind::RoundRobin => {
                for _ in 0..n {
                    let i = self.next % n;
                    self.next = (self.next + 1) % n;
                    if alive[i] {
                        return Some(i);
                    }
                }
                None
            }
            RouterKind::Random => {
                let live: Vec<usize> = (0..n).filter(|i| alive[*i]).collect();
                Some(live[self.rng.random_range(0..live.len())])
            }
            // Ties go to the lowest index, so the choice is deterministic.
            RouterKind::LeastOutstanding | RouterKind::CacheAware => {
                (0..n).filter(|i| alive[*i]).min_by_key(|i| (outstanding_tokens[*i], *i))
            }
        }
    }

    /// True when [`Self::choose_cached`] should be asked, with each replica's uncached prompt.
    pub fn wants_prefix(&self) -> bool {
        self.kind == RouterKind::CacheAware
    }

    /// `cache_aware`: the live replica with the least `uncached_tokens` (prompt tokens
    /// it would still prefill there) + outstanding tokens; None when none is alive.
    pub fn choose_cached(
        &mut self,
        alive: &[bool],
        outstanding_tokens: &[u64],
        uncached_tokens: &[u64],
    ) -> Option<usize> {
        (0..alive.len()).filter(|i| alive[*i]).min_by_key(|i| (uncached_tokens[*i] + outstanding_tokens[*i], *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_dead_and_least_outstanding_picks_min() {
        let mut r = Router::new(RouterKind::RoundRobin, 1);
        let alive = [true, false, true];
        let picks: Vec<_> = (0..4).map(|_| r.choose(&alive, &[0, 0, 0]).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        let mut l = Router::new(RouterKind::LeastOutstanding, 1);
        assert_eq!(l.choose(&[true, true, true], &[50, 10, 10]), Some(1));
        assert_eq!(l.choose(&[true, false, true], &[50, 10, 20]), Some(2));
        assert_eq!(l.choose(&[false, false], &[0, 0]), None);
    }

    #[test]
    fn cache_aware_weighs_the_cached_prefix_against_load() {
        // A 1,000-token prompt. Replica 0 has 800 tokens cached and 500 outstanding:
        // cost 200 + 500 = 700. Replica 1 has nothing cached and 100 outstanding: 1,100.
        // Replica 2 has 800 cached but 1,000 outstanding: 1,200. Replica 0 wins; when it
        // is dead, replica 1 (1,100 < 1,200).
        let mut r = Router::new(RouterKind::CacheAware, 1);
        assert!(r.wants_prefix());
        let (out, unc) = ([500, 100, 1000], [200, 1000, 200]);
        assert_eq!(r.choose_cached(&[true, true, true], &out, &unc), Some(0));
        assert_eq!(r.choose_cached(&[false, true, true], &out, &unc), Some(1));
        assert_eq!(r.choose_cached(&[false, false, false], &out, &unc), None);
    }
}
