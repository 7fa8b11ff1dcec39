//! Open-loop arrival processes: Poisson, gamma, constant and all-at-once.
//!
//! A process yields *raw* arrival offsets in integer nanoseconds, before
//! `time_scale` and what-if rate changes (the [`super::pacer::Pacer`] applies
//! those). The first request arrives at offset 0 in every process; request
//! `k > 0` arrives one inter-arrival gap after request `k - 1`.

use super::config::ArrivalConfig;
use crate::engine::rng::SimRng;
use crate::error::InputError;
use rand_distr::{Distribution, Exp1, Gamma};
use std::path::Path;

const NS_PER_S: f64 = 1e9;

/// A stateful open-loop arrival process.
#[derive(Clone, Debug)]
pub struct ArrivalProcess {
    kind: Kind,
    rng: SimRng,
    /// Requests produced so far.
    count: u64,
    /// Offset of the last request produced, ns.
    last: u64,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Mean gap in ns; gaps are exponential.
    Poisson { mean_gap_ns: f64 },
    /// Gaps are gamma with this shape and scale (ns).
    Gamma(Gamma<f64>),
    /// Request k at exactly round(k * gap_ns): no drift for rates whose gap is not a whole ns.
    Constant { gap_ns: f64 },
    /// Everything at offset 0.
    AllAtOnce,
}

impl ArrivalProcess {
    /// The process for `config`, drawing from `rng` (the `Arrivals` stream).
    /// `None` for `closed_loop`, which has no arrival times of its own. Errors
    /// name `workload.arrival` in `file`.
    pub fn new(config: &ArrivalConfig, rng: SimRng, file: &Path) -> Result<Option<ArrivalProcess>, InputError> {
        let rate = |r: f64| {
            if r.is_finite() && r > 0.0 {
                Ok(r)
            } else {
                Err(InputError::key(file, "workload.arrival.rate_per_s", format!("is {r}; must be a number > 0")))
            }
        };
        let kind = match *config {
            ArrivalConfig::Poisson { rate_per_s } => Kind::Poisson { mean_gap_ns: NS_PER_S / rate(rate_per_s)? },
            ArrivalConfig::Gamma { rate_per_s, cv } => {
                let mean_gap_ns = NS_PER_S / rate(rate_per_s)?;
                if !(cv.is_finite() && cv > 0.0) {
                    return Err(InputError::key(file, "workload.arrival.cv", format!("is {cv}; must be a number > 0")));
                }
                // Gamma(shape k, scale θ): mean kθ, cv 1/sqrt(k). So k = 1/cv², θ = mean·cv².
                let shape = 1.0 / (cv * cv);
                let d = Gamma::new(shape, mean_gap_ns / shape).map_err(|e| {
                    InputError::key(file, "workload.arrival", format!("gamma with rate {rate_per_s} and cv {cv}: {e}"))
                })?;
                Kind::Gamma(d)
            }
            ArrivalConfig::Constant { rate_per_s } => Kind::Constant { gap_ns: NS_PER_S / rate(rate_per_s)? },
            ArrivalConfig::AllAtOnce => Kind::AllAtOnce,
            ArrivalConfig::ClosedLoop { .. } => return Ok(None),
        };
        Ok(Some(ArrivalProcess { kind, rng, count: 0, last: 0 }))
    }

    /// The raw offset of the next request, ns; nondecreasing.
    pub fn next_offset(&mut self) -> u64 {
        let k = self.count;
        self.count += 1;
        if k == 0 {
            return 0;
        }
        let next = match &self.kind {
            Kind::Poisson { mean_gap_ns } => {
                let e: f64 = Exp1.sample(&mut self.rng);
                self.last.saturating_add(round_ns(e * mean_gap_ns))
            }
            Kind::Gamma(d) => self.last.saturating_add(round_ns(d.sample(&mut self.rng))),
            Kind::Constant { gap_ns } => round_ns(k as f64 * gap_ns).max(self.last),
            Kind::AllAtOnce => 0,
        };
        self.last = next;
        next
    }
}

/// A non-negative float of nanoseconds rounded to an integer (saturating).
fn round_ns(ns: f64) -> u64 {
    if ns.is_nan() || ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns.round() as u64
    }
}
