//! Simulated time: an integer count of nanoseconds.
//!
//! Integer time means no epsilon comparisons and no drift with summation order:
//! two runs that schedule the same events see exactly the same instants.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// A point or span of simulated time, in nanoseconds since the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SimTime(pub u64);

impl SimTime {
    /// Time zero: the start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The latest representable instant (about 584 simulated years).
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// Nanoseconds, exactly.
    pub const fn from_ns(ns: u64) -> Self {
        SimTime(ns)
    }
    /// Microseconds, exactly.
    pub const fn from_us(us: u64) -> Self {
        SimTime(us * 1_000)
    }
    /// Milliseconds, exactly.
    pub const fn from_ms(ms: u64) -> Self {
        SimTime(ms * 1_000_000)
    }
    /// Seconds, exactly.
    pub const fn from_secs(s: u64) -> Self {
        SimTime(s * 1_000_000_000)
    }
    /// Seconds given as a float, rounded to the nearest nanosecond (negative and NaN clamp to zero).
    pub fn from_secs_f64(s: f64) -> Self {
        Self::from_ns_f64(s * 1e9)
    }
    /// Nanoseconds given as a float, rounded to the nearest nanosecond (negative and NaN clamp to zero).
    ///
    /// Cost formulas produce `f64` durations; this is the one place they become integer time.
    pub fn from_ns_f64(ns: f64) -> Self {
        if ns.is_nan() || ns <= 0.0 {
            SimTime(0)
        } else if ns >= u64::MAX as f64 {
            SimTime::MAX
        } else {
            // Half away from zero, as `f64::round`, without its library call (the flow
            // model rounds a finish per rate change): `ns - whole` is exact here.
            let whole = ns as u64;
            SimTime(whole + u64::from(ns - whole as f64 >= 0.5))
        }
    }
    /// The count of nanoseconds.
    pub const fn as_ns(self) -> u64 {
        self.0
    }
    /// In seconds, as a float (for reports only; never feed it back into the engine).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }
    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_sub(self, earlier: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(earlier.0))
    }
}

impl Add for SimTime {
    type Output = SimTime;
    fn add(self, rhs: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }
}
impl AddAssign for SimTime {
    fn add_assign(&mut self, rhs: SimTime) {
        *self = *self + rhs;
    }
}
impl Sub for SimTime {
    type Output = SimTime;
    fn sub(self, rhs: SimTime) -> SimTime {
        debug_assert!(self.0 >= rhs.0, "time went backwards: {} - {}", self.0, rhs.0);
        SimTime(self.0.saturating_sub(rhs.0))
    }
}
impl SubAssign for SimTime {
    fn sub_assign(&mut self, rhs: SimTime) {
        *self = *self - rhs;
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9} s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_exact_for_integers() {
        assert_eq!(SimTime::from_us(3).as_ns(), 3_000);
        assert_eq!(SimTime::from_ms(2).as_ns(), 2_000_000);
        assert_eq!(SimTime::from_secs(1).as_ns(), 1_000_000_000);
    }

    #[test]
    fn float_seconds_round_to_nearest_ns() {
        // 1.5 ns rounds half away from zero to 2 ns; 0.4 ns to 0.
        assert_eq!(SimTime::from_ns_f64(1.5).as_ns(), 2);
        assert_eq!(SimTime::from_ns_f64(0.4).as_ns(), 0);
        assert_eq!(SimTime::from_secs_f64(0.25).as_ns(), 250_000_000);
        assert_eq!(SimTime::from_secs_f64(-3.0), SimTime::ZERO);
        assert_eq!(SimTime::from_secs_f64(f64::NAN), SimTime::ZERO);
    }

    #[test]
    fn rounding_matches_f64_round_at_the_edges() {
        // The largest double below 0.5 rounds down; 2.5 and 2^52 - 0.5 (a double, the
        // last binade with halves) round up, away from zero; 2^53 - 1 and 2^63 + 2048
        // are whole and stay.
        let below_half = 0.5 - f64::EPSILON / 4.0;
        assert_eq!(SimTime::from_ns_f64(below_half).as_ns(), 0);
        assert_eq!(SimTime::from_ns_f64(2.5).as_ns(), 3);
        assert_eq!(SimTime::from_ns_f64(4_503_599_627_370_495.5).as_ns(), 4_503_599_627_370_496);
        assert_eq!(SimTime::from_ns_f64(9_007_199_254_740_991.0).as_ns(), 9_007_199_254_740_991);
        assert_eq!(SimTime::from_ns_f64(9_223_372_036_854_777_856.0).as_ns(), 9_223_372_036_854_777_856);
        for x in [0.7, 1e6 + 0.49999, 1e6 + 0.5, 3_976_080.2, 123_456_789.999_9] {
            assert_eq!(SimTime::from_ns_f64(x).as_ns(), x.round() as u64, "{x}");
        }
    }
}
