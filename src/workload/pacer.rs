//! Maps raw arrival offsets to simulated arrival times under `time_scale` and
//! what-if rate changes.
//!
//! Between rate changes, arrival = segment start + round((raw - raw at segment
//! start) * time_scale / factor), computed from the segment start each time, not
//! summed gap by gap, so rounding never accumulates: replaying an hour-long trace
//! at `time_scale = 0.5` ends at exactly half the span (to the nanosecond). A rate
//! change starts a new segment at the last request handed out.

use crate::engine::SimTime;

/// Turns raw offsets into arrival times.
#[derive(Clone, Debug)]
pub struct Pacer {
    time_scale: f64,
    factor: f64,
    seg_raw: u64,
    seg_at: u64,
    last_raw: u64,
    last_at: u64,
}

impl Pacer {
    /// A pacer multiplying every gap by `time_scale` (> 0; 1 = as given).
    pub fn new(time_scale: f64) -> Pacer {
        Pacer { time_scale, factor: 1.0, seg_raw: 0, seg_at: 0, last_raw: 0, last_at: 0 }
    }

    /// The arrival time of the request at raw offset `raw` (raw offsets must be
    /// nondecreasing; the result is too).
    pub fn arrival(&mut self, raw: u64) -> SimTime {
        let d = raw.saturating_sub(self.seg_raw) as f64 * self.time_scale / self.factor;
        let at = SimTime::from_ns_f64(d).as_ns().saturating_add(self.seg_at).max(self.last_at);
        self.last_raw = raw.max(self.last_raw);
        self.last_at = at;
        SimTime(at)
    }

    /// From now on, gaps are divided by `factor` (2 = twice the request rate).
    /// Ignored unless `factor` is finite and > 0.
    pub fn set_rate_factor(&mut self, factor: f64) {
        if factor.is_finite() && factor > 0.0 {
            self.seg_raw = self.last_raw;
            self.seg_at = self.last_at;
            self.factor = factor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_has_no_drift_and_factor_applies_to_later_gaps() {
        let mut p = Pacer::new(1.0 / 3.0);
        // 3 ns * 1/3 = 1 ns per step; 3e12 raw ns end at exactly 1e12 ns.
        assert_eq!(p.arrival(0), SimTime(0));
        assert_eq!(p.arrival(3), SimTime(1));
        assert_eq!(p.arrival(3_000_000_000_000), SimTime(1_000_000_000_000));
        let mut q = Pacer::new(1.0);
        q.arrival(1_000);
        q.set_rate_factor(2.0);
        // Gap of 1,000 raw ns after the change takes 500 ns.
        assert_eq!(q.arrival(2_000), SimTime(1_500));
        q.set_rate_factor(0.0); // ignored
        assert_eq!(q.arrival(3_000), SimTime(2_000));
    }
}
