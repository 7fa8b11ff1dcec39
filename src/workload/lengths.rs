//! Token-length distributions for generated requests.
//!
//! Every draw is rounded to whole tokens and clamped to the distribution's
//! `[min, max]` (fixed: exactly `value`; uniform and zipf: their range). The
//! parameters are checked again here, so a caller that skipped scenario
//! validation gets an error naming the key, never a panic.

use super::config::LengthDist;
use crate::engine::rng::SimRng;
use crate::error::InputError;
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal, Zipf};
use std::path::Path;

/// A ready-to-draw length distribution.
#[derive(Clone, Debug)]
pub struct LengthSampler {
    kind: Kind,
    min: u32,
    max: u32,
}

#[derive(Clone, Debug)]
enum Kind {
    Fixed,
    Uniform,
    Normal(Normal<f64>),
    LogNormal(LogNormal<f64>),
    /// Rank k in 1..=n with weight 1/k^s; the length is `min + k - 1`.
    Zipf(Zipf<f64>),
}

impl LengthSampler {
    /// Builds a sampler for `dist`; `key` (e.g. `workload.prompt_tokens`) and
    /// `file` name the scenario setting in errors.
    pub fn new(dist: &LengthDist, key: &str, file: &Path) -> Result<LengthSampler, InputError> {
        let err = |what: String| InputError::key(file, key, what);
        let bounds = |min: u32, max: u32| {
            if min == 0 || min > max {
                Err(err(format!("has min {min} and max {max}; need 1 <= min <= max")))
            } else {
                Ok(())
            }
        };
        let (kind, min, max) = match *dist {
            LengthDist::Fixed { value } => {
                bounds(value, value)?;
                (Kind::Fixed, value, value)
            }
            LengthDist::Uniform { min, max } => {
                bounds(min, max)?;
                (Kind::Uniform, min, max)
            }
            LengthDist::Normal { mean, std, min, max } => {
                bounds(min, max)?;
                let d = Normal::new(mean, std)
                    .map_err(|e| err(format!("normal with mean {mean} and std {std}: {e}; need a finite std >= 0")))?;
                (Kind::Normal(d), min, max)
            }
            LengthDist::Lognormal { median, sigma, min, max } => {
                bounds(min, max)?;
                if !(median.is_finite() && median > 0.0) {
                    return Err(err(format!("lognormal median is {median}; must be a number > 0")));
                }
                let d = LogNormal::new(median.ln(), sigma)
                    .map_err(|e| err(format!("lognormal sigma {sigma}: {e}; need a finite sigma >= 0")))?;
                (Kind::LogNormal(d), min, max)
            }
            LengthDist::Zipf { s, min, max } => {
                bounds(min, max)?;
                if !(s.is_finite() && s > 0.0) {
                    return Err(err(format!("zipf s is {s}; must be a number > 0")));
                }
                let n = f64::from(max - min) + 1.0;
                let d = Zipf::new(n, s).map_err(|e| err(format!("zipf with s {s} over {n} values: {e}")))?;
                (Kind::Zipf(d), min, max)
            }
        };
        Ok(LengthSampler { kind, min, max })
    }

    /// Smallest length this sampler returns.
    pub fn min(&self) -> u32 {
        self.min
    }

    /// Largest length this sampler returns.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// One length in tokens, in `[min, max]`.
    pub fn sample(&self, rng: &mut SimRng) -> u32 {
        let x = match &self.kind {
            Kind::Fixed => return self.min,
            Kind::Uniform => return rng.random_range(self.min..=self.max),
            Kind::Normal(d) => d.sample(rng),
            Kind::LogNormal(d) => d.sample(rng),
            Kind::Zipf(d) => f64::from(self.min) + d.sample(rng) - 1.0,
        };
        self.clamp(x)
    }

    /// Rounds to the nearest token and clamps into `[min, max]` (NaN goes to `min`).
    fn clamp(&self, x: f64) -> u32 {
        let r = x.round();
        if r.is_nan() || r <= f64::from(self.min) {
            self.min
        } else if r >= f64::from(self.max) {
            self.max
        } else {
            r as u32
        }
    }
}
