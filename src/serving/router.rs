//! The global router: which DP replica serves a new request.

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
            RouterKind::LeastOutstanding => (0..n).filter(|i| alive[*i]).min_by_key(|i| (outstanding_tokens[*i], *i)),
        }
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
}
