//! Which instances serve a request in a pooled run: one of the prefill side and one
//! of the decode side (the same instance when pools are mixed), by the scenario's
//! `[disaggregation] router`.

use crate::scenario::pools::PairRouter;
use crate::scenario::types::RouterKind;
use crate::serving::router::Router;

/// What the router sees of one side's candidate instances.
pub struct SideView<'a> {
    /// Outstanding tokens of each (queued, running, and on their way).
    pub load_tokens: &'a [u64],
    /// Free KV blocks of each, less those promised to handoffs on their way.
    pub free_blocks: &'a [i64],
}

/// Picks instances of each side.
pub struct PairRouting {
    kind: PairRouter,
    prefill: Router,
    decode: Router,
}

impl PairRouting {
    /// A router of `kind`, seeded from the scenario seed.
    pub fn new(kind: PairRouter, seed: u64) -> Self {
        let k = match kind {
            PairRouter::RoundRobin => RouterKind::RoundRobin,
            PairRouter::LeastLoaded | PairRouter::KvAware => RouterKind::LeastOutstanding,
        };
        PairRouting { kind, prefill: Router::new(k, seed), decode: Router::new(k, seed) }
    }

    /// The prefill-side instance (index into the side's candidates).
    pub fn prefill(&mut self, side: &SideView) -> Option<usize> {
        let alive = vec![true; side.load_tokens.len()];
        self.prefill.choose(&alive, side.load_tokens)
    }

    /// The decode-side instance: by load, or with `kv_aware` the one with the most
    /// free KV blocks (lowest index on ties, so the choice is deterministic).
    pub fn decode(&mut self, side: &SideView) -> Option<usize> {
        if self.kind == PairRouter::KvAware {
            let n = side.free_blocks.len();
            return (0..n).max_by_key(|&i| (side.free_blocks[i], std::cmp::Reverse(i)));
        }
        let alive = vec![true; side.load_tokens.len()];
        self.decode.choose(&alive, side.load_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_aware_takes_the_most_free_blocks_and_least_loaded_the_fewest_tokens() {
        let load = [30, 10, 10];
        let free = [5, 9, 9];
        let view = SideView { load_tokens: &load, free_blocks: &free };
        let mut kv = PairRouting::new(PairRouter::KvAware, 1);
        // Prefill side by load: 1 (tie with 2 goes to the lower index); decode by free
        // blocks: 9 at 1 and 2, the lower index.
        assert_eq!((kv.prefill(&view), kv.decode(&view)), (Some(1), Some(1)));
        let mut rr = PairRouting::new(PairRouter::RoundRobin, 1);
        let picks: Vec<_> = (0..4).map(|_| rr.decode(&view).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0]);
    }
}
