//! The one price type of a transfer or collective: an affine function of its payload.
//!
//! Every α-β closed form is affine in the bytes (`latency + bytes / bandwidth` summed
//! over steps), so a collective over a fixed group on fixed links is priced once as
//! [`Affine`] and then, per call, with one multiply-add. The network's closed forms,
//! the software stack's costs and the serving pricer all speak this type.

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
            (self.fixed_ns + self.per_byte_ns * bytes).round() as u64
        }
    }
}

/// A collective's price when several algorithms may run it: the fastest at each size
/// (as NCCL's tuner picks), each algorithm an [`Affine`] price.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Price(pub Vec<Affine>);

impl Price {
    /// Time for `bytes`, ns: the cheapest option.
    pub fn ns(&self, bytes: f64) -> u64 {
        self.0.iter().map(|a| a.ns(bytes)).min().unwrap_or(0)
    }
}

/// Which of `options` are the cheapest at some payload S > 0 (ties to the first): the
/// lower envelope of the lines. Which line is lowest changes only where two cross, so
/// probing between consecutive crossings (and past the last) finds every line on it.
pub fn lower_envelope(options: &[Affine]) -> Vec<bool> {
    let mut cuts: Vec<f64> = vec![0.0];
    for (i, a) in options.iter().enumerate() {
        for b in &options[i + 1..] {
            let s = (b.fixed_ns - a.fixed_ns) / (a.per_byte_ns - b.per_byte_ns);
            if s.is_finite() && s > 0.0 {
                cuts.push(s);
            }
        }
    }
    cuts.sort_by(f64::total_cmp);
    let last = cuts[cuts.len() - 1];
    let probes = cuts.windows(2).map(|w| 0.5 * (w[0] + w[1])).chain([2.0 * last + 1.0]);
    let mut keep = vec![false; options.len()];
    for s in probes {
        let cost = |a: &Affine| a.fixed_ns + a.per_byte_ns * s;
        let best = (0..options.len()).min_by(|&i, &j| cost(&options[i]).total_cmp(&cost(&options[j])));
        if let Some(i) = best {
            keep[i] = true;
        }
    }
    keep
}

impl From<Affine> for Price {
    fn from(a: Affine) -> Self {
        Price(vec![a])
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
        let p = Price(vec![a, b]);
        assert_eq!(p.ns(1e5), 3_000);
        assert_eq!(p.ns(1e8), 210_000);
    }

    #[test]
    fn envelope_keeps_the_lines_that_are_ever_cheapest() {
        // a = 2 µs + 0.01 ns/B, b = 10 µs + 0.002 ns/B cross at 8,000 / 0.008 = 1 MB.
        // c = 20 µs + 0.005 ns/B is above b everywhere (higher start, steeper): dropped.
        // d = 1 µs + 0.02 ns/B is below a up to 1,000 / 0.01 = 100 kB: kept.
        let a = Affine { fixed_ns: 2_000.0, per_byte_ns: 0.01 };
        let b = Affine { fixed_ns: 10_000.0, per_byte_ns: 0.002 };
        let c = Affine { fixed_ns: 20_000.0, per_byte_ns: 0.005 };
        let d = Affine { fixed_ns: 1_000.0, per_byte_ns: 0.02 };
        assert_eq!(lower_envelope(&[a, b, c, d]), vec![true, true, false, true]);
        // Two equal lines: the first is kept.
        assert_eq!(lower_envelope(&[a, a]), vec![true, false]);
    }
}
