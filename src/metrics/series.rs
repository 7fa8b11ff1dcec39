//! Time-bucketed series with bounded memory.
//!
//! Buckets start 10 ms wide; when there would be more than [`MAX_BUCKETS`], pairs
//! merge and the width doubles. A run of any length keeps at most `MAX_BUCKETS`
//! buckets per series, and the final width adapts to the run (a 1-hour run ends with
//! ~1 s buckets, a 10 s run with 10 ms ones).
//!
//! A lane holds either amounts (added with [`Buckets::add_at`] / [`Buckets::add_spread`]:
//! tokens, completions, busy time), which merge by summing, or levels (set with
//! [`Buckets::max_at`]: queue length, running requests), which merge by taking the
//! maximum: a bucket's peak queue is the larger of its halves' peaks, never their sum.

use crate::engine::SimTime;

/// Most buckets a series keeps.
pub const MAX_BUCKETS: usize = 1024;
const INITIAL_WIDTH_NS: u64 = 10_000_000;

/// A family of series sharing one bucket width: `n` values per bucket.
#[derive(Clone, Debug)]
pub struct Buckets {
    width_ns: u64,
    lanes: usize,
    values: Vec<f64>,
    /// Per lane: true once it holds levels (merged by max), false for amounts (summed).
    level: Vec<bool>,
}

impl Buckets {
    /// Series with `lanes` values per bucket (e.g. one per GPU).
    pub fn new(lanes: usize) -> Self {
        Buckets { width_ns: INITIAL_WIDTH_NS, lanes, values: Vec::new(), level: vec![false; lanes] }
    }

    /// Current bucket width.
    pub fn width(&self) -> SimTime {
        SimTime(self.width_ns)
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.values.len() / self.lanes.max(1)
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn grow_to(&mut self, t_ns: u64) {
        if t_ns < self.len() as u64 * self.width_ns {
            return;
        }
        while (t_ns / self.width_ns) as usize >= MAX_BUCKETS {
            let n = self.len();
            let mut merged = vec![0.0; n.div_ceil(2) * self.lanes];
            for b in 0..n {
                for l in 0..self.lanes {
                    let v: f64 = self.values[b * self.lanes + l];
                    let slot: &mut f64 = &mut merged[(b / 2) * self.lanes + l];
                    *slot = if self.level[l] { slot.max(v) } else { *slot + v };
                }
            }
            self.values = merged;
            self.width_ns *= 2;
        }
        let need = (t_ns / self.width_ns) as usize + 1;
        if self.len() < need {
            self.values.resize(need * self.lanes, 0.0);
        }
    }

    /// Adds `amount` at instant `t` to `lane`.
    pub fn add_at(&mut self, t: SimTime, lane: usize, amount: f64) {
        self.grow_to(t.as_ns());
        let b = (t.as_ns() / self.width_ns) as usize;
        self.values[b * self.lanes + lane] += amount;
    }

    /// Spreads `amount` over the interval [start, end) in proportion to overlap.
    pub fn add_spread(&mut self, start: SimTime, end: SimTime, lane: usize, amount: f64) {
        self.add_spread_lanes(start, end, lane, std::iter::once(amount));
    }

    /// [`Buckets::add_spread`] of `amounts[i]` to lane `first_lane + i` for each `i`, over
    /// one interval: the bucket walk is done once for all lanes (same sums, same order
    /// per lane).
    pub fn add_spread_lanes(
        &mut self,
        start: SimTime,
        end: SimTime,
        first_lane: usize,
        amounts: impl Iterator<Item = f64> + Clone,
    ) {
        if end <= start {
            for (i, a) in amounts.enumerate() {
                self.add_at(start, first_lane + i, a);
            }
            return;
        }
        self.grow_to(end.as_ns().saturating_sub(1));
        let span = (end.as_ns() - start.as_ns()) as f64;
        let mut t = start.as_ns();
        while t < end.as_ns() {
            let b = t / self.width_ns;
            let bucket_end = ((b + 1) * self.width_ns).min(end.as_ns());
            let row = b as usize * self.lanes + first_lane;
            for (i, a) in amounts.clone().enumerate() {
                self.values[row + i] += a * (bucket_end - t) as f64 / span;
            }
            t = bucket_end;
        }
    }

    /// Sets the value of `lane` in the bucket holding `t` to the max of it and `v`
    /// (for levels such as queue length); the lane then merges by max. Levels are
    /// non-negative here, so the 0 an empty bucket starts with never wins wrongly.
    pub fn max_at(&mut self, t: SimTime, lane: usize, v: f64) {
        self.level[lane] = true;
        self.grow_to(t.as_ns());
        let b = (t.as_ns() / self.width_ns) as usize;
        let slot = &mut self.values[b * self.lanes + lane];
        *slot = slot.max(v);
    }

    /// The value of `lane` in bucket `b`.
    pub fn get(&self, b: usize, lane: usize) -> f64 {
        self.values[b * self.lanes + lane]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_splits_by_overlap_and_merging_conserves_sums() {
        // 10 ms buckets: [5 ms, 25 ms) covers 5 ms of bucket 0, 10 of bucket 1, 5 of bucket 2.
        let mut b = Buckets::new(1);
        b.add_spread(SimTime::from_ms(5), SimTime::from_ms(25), 0, 20.0);
        assert_eq!((b.get(0, 0), b.get(1, 0), b.get(2, 0)), (5.0, 10.0, 5.0));
        // An instant at 20 s needs 2001 buckets of 10 ms: widths double to 20 ms (1001
        // buckets, still > 1024? no: 1001 <= 1024), so width = 20 ms.
        b.add_at(SimTime::from_secs(20), 0, 1.0);
        assert_eq!(b.width(), SimTime::from_ms(20));
        let total: f64 = (0..b.len()).map(|i| b.get(i, 0)).sum();
        assert_eq!(total, 21.0);
        assert!(b.len() <= MAX_BUCKETS);
    }

    #[test]
    fn a_queue_profile_survives_three_merges_exactly() {
        // Lane 0 is a queue level sampled in 10 ms buckets j = 0..16:
        //   j 0..8:  1 2 3 4 3 2 1 0   -> peak 4
        //   j 8..16: 5 0 0 0 0 0 0 9   -> peak 9
        // Lane 1 counts one completion per bucket (an amount).
        let levels = [1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0];
        let mut b = Buckets::new(2);
        for (j, &q) in levels.iter().enumerate() {
            let t = SimTime::from_ms(10 * j as u64 + 5);
            b.max_at(t, 0, q);
            b.add_at(t, 1, 1.0);
        }
        // An instant at 80 s = 8,000 buckets of 10 ms: 1024 buckets need a width of
        // 80 ms (79.99 s / 80 ms = 999 < 1024; at 40 ms it would be 2000), so the
        // width doubles 3 times and each new bucket holds 8 old ones.
        b.add_at(SimTime::from_secs(80), 1, 0.0);
        assert_eq!(b.width(), SimTime::from_ms(80));
        // Peaks survive as peaks (summing would give 16 and 14).
        assert_eq!((b.get(0, 0), b.get(1, 0)), (4.0, 9.0));
        // Amounts are conserved: 8 completions in each 80 ms bucket.
        assert_eq!((b.get(0, 1), b.get(1, 1)), (8.0, 8.0));
    }
}
