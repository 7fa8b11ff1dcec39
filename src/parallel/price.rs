//! The one price type of a transfer or collective: an affine function of its payload.
//!
//! Every α-β closed form is affine in the bytes (`latency + bytes / bandwidth` summed
//! over steps), so a collective over a fixed group on fixed links is priced once as
//! [`Affine`] and then, per call, with one multiply-add. The network's closed forms,
//! the software stack's costs and the serving pricer all speak this type.

use crate::engine::time::SimTime;

/// A time affine in the payload: `fixed_ns + per_byte_ns x bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Affine {
    /// Latency part (the steps' α, launch costs), ns.
    pub fixed_ns: f64,
    /// Bandwidth part, ns per byte of payload.
    pub per_byte_ns: f64,
}

impl Affine {
    /// Time for `bytes`, ns (zero bytes: no transfer at all).
    pub fn ns(&self, bytes: f64) -> u64 {
        if bytes <= 0.0 {
            0
        } else {
            SimTime::from_ns_f64(self.fixed_ns + self.per_byte_ns * bytes).as_ns()
        }
    }
}

/// One way to run a collective, priced: the largest of its affine pieces, so convex in
/// the payload. A step whose transfers cross tiers (NVLink and NICs) is gated by the
/// NICs' latency at small sizes and by NVLink's bytes at large ones: two pieces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Convex(pub Vec<Affine>);

impl Convex {
    /// Time for `bytes`, ns: the largest piece.
    pub fn ns(&self, bytes: f64) -> u64 {
        if bytes <= 0.0 {
            0
        } else {
            SimTime::from_ns_f64(self.top_ns(bytes)).as_ns()
        }
    }

    /// The largest piece at `bytes`, ns unrounded (minus infinity with no piece). The
    /// rounding is monotone, so rounding the largest equals the largest rounded: one
    /// rounding per call, not one per piece (the replay prices every collective).
    fn top_ns(&self, bytes: f64) -> f64 {
        self.0.iter().map(|a| a.fixed_ns + a.per_byte_ns * bytes).fold(f64::NEG_INFINITY, f64::max)
    }
}

/// A collective's price when several algorithms may run it: the fastest at each size
/// (as NCCL's tuner picks), each algorithm a [`Convex`] price.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Price(pub Vec<Convex>);

impl Price {
    /// Time for `bytes`, ns: the cheapest option (rounded once, as [`Convex::ns`]).
    pub fn ns(&self, bytes: f64) -> u64 {
        if bytes <= 0.0 || self.0.is_empty() {
            return 0;
        }
        SimTime::from_ns_f64(self.0.iter().map(|c| c.top_ns(bytes)).fold(f64::INFINITY, f64::min)).as_ns()
    }
}

/// Payloads at which [`cheapest_somewhere`] compares options: 16 per doubling from
/// 1 KiB to 1 TiB, beyond every collective a serving iteration makes.
fn probes() -> impl Iterator<Item = f64> {
    (0..=16 * 30).map(|i| 1024.0 * 2f64.powf(i as f64 / 16.0))
}

/// Which of `options` are the cheapest (ties to the first) at one of the probe payloads
/// (16 per doubling, 1 KiB to 1 TiB): the others can be dropped from a [`Price`]. An
/// option cheapest only between two probes, 4.4 % apart in size, is dropped; it can
/// undercut the kept ones there by no more than they differ across that gap.
pub fn cheapest_somewhere(options: &[Convex]) -> Vec<bool> {
    let mut keep = vec![false; options.len()];
    for s in probes() {
        if let Some(i) = (0..options.len()).min_by_key(|&i| options[i].ns(s)) {
            keep[i] = true;
        }
    }
    keep
}

impl From<Affine> for Price {
    fn from(a: Affine) -> Self {
        Price(vec![Convex(vec![a])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_and_cheapest_option_by_hand() {
        // 2 µs + 0.01 ns/B: 1 MB takes 2,000 + 10,000 = 12,000 ns; 0 B takes nothing.
        let a = Affine { fixed_ns: 2_000.0, per_byte_ns: 0.01 };
        assert_eq!((a.ns(1e6), a.ns(0.0)), (12_000, 0));
        // Against 10 µs + 0.002 ns/B (12,000 ns at 1 MB too, 10,200 at 100 kB vs 3,000):
        let b = Affine { fixed_ns: 10_000.0, per_byte_ns: 0.002 };
        let p = Price(vec![Convex(vec![a]), Convex(vec![b])]);
        assert_eq!(p.ns(1e5), 3_000);
        assert_eq!(p.ns(1e8), 210_000);
    }

    #[test]
    fn convex_options_and_the_ones_worth_keeping() {
        // A two-tier step: 5 µs + 0.001 ns/B (NIC latency) or 2 µs + 0.004 ns/B (NVLink
        // bytes), whichever is larger: they cross at 3,000 / 0.003 = 1 MB.
        let two_tier = Convex(vec![
            Affine { fixed_ns: 5_000.0, per_byte_ns: 0.001 },
            Affine { fixed_ns: 2_000.0, per_byte_ns: 0.004 },
        ]);
        assert_eq!(two_tier.ns(1e5), 5_100);
        assert_eq!(two_tier.ns(1e7), 42_000);
        // Against flat = 4 µs + 0.003 ns/B: at 100 kB 4,300 vs 5,100 (flat cheaper); at
        // 1 MB 7,000 vs 6,000 (two-tier cheaper); at 10 MB 34,000 vs 42,000 (flat). Both
        // are kept. small = 1 µs + 0.01 ns/B is cheapest below 3,000 / 0.007 = 429 kB
        // (1,010 vs 4,003 at 1 KiB): kept. worse = 6 µs + 0.004 ns/B is above flat
        // everywhere: dropped.
        let flat = Convex(vec![Affine { fixed_ns: 4_000.0, per_byte_ns: 0.003 }]);
        let small = Convex(vec![Affine { fixed_ns: 1_000.0, per_byte_ns: 0.01 }]);
        let worse = Convex(vec![Affine { fixed_ns: 6_000.0, per_byte_ns: 0.004 }]);
        assert_eq!(cheapest_somewhere(&[flat, two_tier, small, worse]), vec![true, true, true, false]);
    }
}
