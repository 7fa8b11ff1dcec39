//! Small statistics the charts need: percentiles, histograms, downsampled CDFs.

/// The `q` quantile (0..=1) of ascending `sorted` values by the same nearest-rank rule
/// as summary.json, so a chart marks exactly the figure the summary reports.
pub use crate::metrics::stats::nearest_rank as quantile;

/// Counts of `values` in `bins` equal bins over `[lo, hi]` (values outside are clamped
/// into the first or last bin).
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<u64> {
    let bins = bins.max(1);
    let mut counts = vec![0u64; bins];
    let width = (hi - lo) / bins as f64;
    for &v in values {
        let i = if width > 0.0 { ((v - lo) / width).floor() } else { 0.0 };
        let i = if i.is_finite() { i.clamp(0.0, (bins - 1) as f64) as usize } else { 0 };
        counts[i] += 1;
    }
    counts
}

/// Points (value, fraction of values <= value) of the empirical CDF of ascending
/// `sorted`, at most about `max_points` of them (every k-th rank plus the last).
pub fn cdf_points(sorted: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(max_points.max(1)).max(1);
    let mut pts: Vec<(f64, f64)> = (0..n).step_by(step).map(|i| (sorted[i], (i + 1) as f64 / n as f64)).collect();
    if pts.last().map(|p| p.1) != Some(1.0) {
        pts.push((sorted[n - 1], 1.0));
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        // Nearest rank: ceil(0.5 x 2) = rank 1.
        assert_eq!(quantile(&[1.0, 2.0], 0.5), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn histogram_counts_every_value() {
        let h = histogram(&[0.0, 0.5, 1.0, 2.0, -1.0], 0.0, 1.0, 2);
        assert_eq!(h, vec![2, 3]);
    }

    #[test]
    fn cdf_is_bounded_and_ends_at_one() {
        let v: Vec<f64> = (0..10_000).map(f64::from).collect();
        let p = cdf_points(&v, 100);
        assert!(p.len() <= 101);
        assert_eq!(p.last(), Some(&(9999.0, 1.0)));
    }
}
