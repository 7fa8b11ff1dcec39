//! Seeded random streams, one per concern.
//!
//! Each concern (arrivals, lengths, expert routing, ...) draws from its own
//! generator derived from the scenario seed, so adding draws in one place does not
//! shift the numbers another place sees. ChaCha8 is portable and reproducible
//! across platforms, which byte-identical outputs need.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator type every stream uses.
pub type SimRng = ChaCha8Rng;

/// The concerns that draw random numbers. Each has a fixed stream id: never
/// renumber one, or every seeded result changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Request inter-arrival times.
    Arrivals,
    /// Prompt lengths.
    PromptLengths,
    /// Output lengths.
    OutputLengths,
    /// Which experts each token picks.
    ExpertRouting,
    /// Random routing of requests to replicas.
    Router,
    /// Faults and what-if events.
    Faults,
    /// Anything used only by tests and benchmarks.
    Test,
    /// Draft tokens accepted by speculative decoding (one stream per replica).
    Speculation,
}

impl Stream {
    fn id(self) -> u64 {
        match self {
            Stream::Arrivals => 1,
            Stream::PromptLengths => 2,
            Stream::OutputLengths => 3,
            Stream::ExpertRouting => 4,
            Stream::Router => 5,
            Stream::Faults => 6,
            Stream::Test => 7,
            Stream::Speculation => 8,
        }
    }
}

/// SplitMix64 finaliser: spreads nearby seeds (42, 43) to unrelated stream keys.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for `stream` under scenario seed `seed`, with a sub-index for
/// concerns that need several independent generators (e.g. one per replica).
pub fn stream(seed: u64, which: Stream, index: u64) -> SimRng {
    let key = mix(mix(seed) ^ mix(which.id().wrapping_mul(0x1000_0000_01B3) ^ index.rotate_left(17)));
    SimRng::seed_from_u64(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_seed_same_numbers_and_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| 0).scan(stream(42, Stream::Arrivals, 0), |r, _| Some(r.random())).collect();
        let b: Vec<u64> = (0..4).map(|_| 0).scan(stream(42, Stream::Arrivals, 0), |r, _| Some(r.random())).collect();
        let c: Vec<u64> =
            (0..4).map(|_| 0).scan(stream(42, Stream::PromptLengths, 0), |r, _| Some(r.random())).collect();
        let d: Vec<u64> = (0..4).map(|_| 0).scan(stream(43, Stream::Arrivals, 0), |r, _| Some(r.random())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
