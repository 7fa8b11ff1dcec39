//! Statistics: exact percentiles of per-request figures, a bounded log-histogram for
//! per-token figures, and the coefficient of variation.
//!
//! Percentiles use the nearest-rank rule: the p-th percentile of n sorted values is
//! the value at 1-based rank ceil(p/100 x n). It is always one of the samples, so
//! a hand-worked test can name it exactly.

use super::summary::Dist;

/// The `q` quantile (0..=1) of ascending `sorted` values by the nearest-rank rule;
/// `None` if empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Mean, percentiles and max of `values` (sorted in place). Empty gives all zeros.
pub fn dist(values: &mut [f64]) -> Dist {
    if values.is_empty() {
        return Dist::default();
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = |q: f64| nearest_rank(values, q).unwrap_or(0.0);
    Dist {
        count: n as u64,
        mean: values.iter().sum::<f64>() / n as f64,
        p50: rank(0.50),
        p90: rank(0.90),
        p95: rank(0.95),
        p99: rank(0.99),
        max: values[n - 1],
    }
}

/// Coefficient of variation (population std / mean); 0 when the mean is 0.
pub fn cv(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// A histogram with logarithmic buckets for positive values: memory bounded by the
/// value range, not the count, and percentiles within `1 %` relative error.
#[derive(Clone, Debug)]
pub struct LogHistogram {
    counts: Vec<u64>,
    zeros: u64,
    count: u64,
    sum: f64,
    max: f64,
    /// The last value recorded and its bucket: the tokens of one decode batch often
    /// share one inter-token gap, so this skips the logarithm for repeats.
    last: (f64, usize),
}

/// Smallest value told apart from zero: 1 ns.
const FLOOR: f64 = 1e-9;
/// Bucket growth factor: 2 % wide buckets, reported at their geometric middle (±1 %).
const GROWTH: f64 = 1.02;

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram { counts: Vec::new(), zeros: 0, count: 0, sum: 0.0, max: 0.0, last: (f64::NAN, 0) }
    }
}

impl LogHistogram {
    /// Records one value (negative counts as zero).
    pub fn add(&mut self, v: f64) {
        self.count += 1;
        if v <= FLOOR {
            self.zeros += 1;
            return;
        }
        self.sum += v;
        self.max = self.max.max(v);
        let i = if v == self.last.0 { self.last.1 } else { ((v / FLOOR).ln() / GROWTH.ln()) as usize };
        self.last = (v, i);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
    }

    fn value_at_rank(&self, rank: u64) -> f64 {
        if rank <= self.zeros {
            return 0.0;
        }
        let mut seen = self.zeros;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // Geometric middle of bucket i, capped by the true maximum.
                return (FLOOR * GROWTH.powf(i as f64 + 0.5)).min(self.max);
            }
        }
        self.max
    }

    /// The distribution (mean and max exact; percentiles within 1 %).
    pub fn dist(&self) -> Dist {
        if self.count == 0 {
            return Dist::default();
        }
        let rank = |p: f64| ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        Dist {
            count: self.count,
            mean: self.sum / self.count as f64,
            p50: self.value_at_rank(rank(50.0)),
            p90: self.value_at_rank(rank(90.0)),
            p95: self.value_at_rank(rank(95.0)),
            p99: self.value_at_rank(rank(99.0)),
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        // 1..=100: p50 = rank 50 -> 50; p90 -> 90; p99 -> 99; mean 50.5.
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let d = dist(&mut v);
        assert_eq!((d.p50, d.p90, d.p95, d.p99, d.max), (50.0, 90.0, 95.0, 99.0, 100.0));
        assert!((d.mean - 50.5).abs() < 1e-12);
        // Four values: p50 = rank ceil(2) = 2nd smallest.
        let mut w = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(dist(&mut w).p50, 2.0);
    }

    #[test]
    fn cv_of_known_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population std 2 -> cv 0.4.
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!((cv(&v) - 0.4).abs() < 1e-12);
        assert_eq!(cv(&[3.0, 3.0]), 0.0);
    }

    #[test]
    fn log_histogram_within_one_percent() {
        // 1 ms .. 1000 ms in 1 ms steps: exact p50 = 500 ms, p99 = 990 ms.
        let mut h = LogHistogram::default();
        for i in 1..=1000 {
            h.add(i as f64 * 1e-3);
        }
        let d = h.dist();
        assert!((d.p50 / 0.5 - 1.0).abs() < 0.011, "{}", d.p50);
        assert!((d.p99 / 0.99 - 1.0).abs() < 0.011, "{}", d.p99);
        assert!((d.mean - 0.5005).abs() < 1e-9);
        assert_eq!(d.max, 1.0);
    }
}
