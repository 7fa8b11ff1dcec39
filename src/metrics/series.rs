//! Time-bucketed series with bounded memory.
//!
//! Buckets start 10 ms wide; when there would be more than [`MAX_BUCKETS`], pairs
//! merge and the width doubles. A run of any length keeps at most `MAX_BUCKETS`
//! buckets per series, and the final width adapts to the run (a 1-hour run ends with
//! ~1 s buckets, a 10 s run with 10 ms ones).

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
}

impl Buckets {
    /// Series with `lanes` values per bucket (e.g. one per GPU).
    pub fn new(lanes: usize) -> Self {
        Buckets { width_ns: INITIAL_WIDTH_NS, lanes, values: Vec::new() }
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
                    merged[(b / 2) * self.lanes + l] += self.values[b * self.lanes + l];
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
        if end <= start {
            self.add_at(start, lane, amount);
            return;
        }
        self.grow_to(end.as_ns().saturating_sub(1));
        let span = (end.as_ns() - start.as_ns()) as f64;
        let mut t = start.as_ns();
        while t < end.as_ns() {
            let b = t / self.width_ns;
            let bucket_end = ((b + 1) * self.width_ns).min(end.as_ns());
            self.values[b as usize * self.lanes + lane] += amount * (bucket_end - t) as f64 / span;
            t = bucket_end;
        }
    }

    /// Sets the value of `lane` in the bucket holding `t` to the max of it and `v`
    /// (for levels such as queue length).
    pub fn max_at(&mut self, t: SimTime, lane: usize, v: f64) {
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
}
