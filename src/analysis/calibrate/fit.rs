//! The deterministic optimizer of `clustersim calibrate`: a bounded coordinate pattern
//! search (Hooke-Jeeves without the pattern move) over a profile's free parameters.
//!
//! Why this one: the objective is a simulation (no gradient, piecewise constant at the
//! nanosecond scale), the parameters are few and bounded, and the result must be the
//! same to the byte for the same input, so no randomness and no dependence on thread
//! timing (rows are simulated in parallel but summed in row order). The search starts
//! at the middle of each parameter's range, never at the base profile's value, so a
//! profile refitted from its own file comes out the same.

use crate::analysis::measured::Measurement;
use crate::model::framework::{FrameworkProfile, Parameter};
use rayon::prelude::*;

/// What a row that cannot be simulated costs: far worse than any simulated row.
const FAILED_ROW_COST: f64 = 100.0;

/// The fit's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most requests simulated per row.
    pub max_requests: u32,
    /// Stop when the step is below this fraction of each parameter's range.
    pub tolerance: f64,
    /// Most objective evaluations.
    pub max_evals: u32,
}

/// A fitted profile and how the search went.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The profile with the free parameters at their fitted values (rounded).
    pub profile: FrameworkProfile,
    /// Objective evaluations made.
    pub evals: u32,
    /// Objective at the end: mean squared log error.
    pub objective: f64,
}

/// Rounds `v` to 4 significant digits, so written profiles read as figures, not noise.
pub fn round4(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// The simulated value of every row under `p` (in row order).
pub fn simulate_all(p: &FrameworkProfile, rows: &[Measurement], max_requests: u32) -> Vec<Result<f64, String>> {
    rows.par_iter().map(|m| m.simulate(p, max_requests)).collect()
}

/// Mean squared log error of `p` over `rows`: a 10 % miss costs the same whichever way
/// and whatever the metric's scale.
pub fn objective(p: &FrameworkProfile, rows: &[Measurement], max_requests: u32) -> f64 {
    let sims = simulate_all(p, rows, max_requests);
    let sum: f64 = rows
        .iter()
        .zip(&sims)
        .map(|(m, s)| match s {
            Ok(v) if *v > 0.0 => (v / m.value).ln().powi(2),
            _ => FAILED_ROW_COST,
        })
        .sum();
    sum / rows.len().max(1) as f64
}

/// Fits `free` parameters of `base` to `rows`.
pub fn fit(base: &FrameworkProfile, free: &[Parameter], rows: &[Measurement], s: &Settings) -> Fitted {
    let at = |u: &[f64]| -> FrameworkProfile {
        let mut p = base.clone();
        for (param, x) in free.iter().zip(u) {
            let (lo, hi) = param.fit_range;
            p.set(param.key, lo + x * (hi - lo));
        }
        p
    };
    let mut u = vec![0.5; free.len()];
    let mut best = objective(&at(&u), rows, s.max_requests);
    let mut evals = 1;
    let mut step = 0.25;
    while step >= s.tolerance && evals < s.max_evals {
        let mut moved = false;
        for i in 0..free.len() {
            for dir in [1.0, -1.0] {
                let mut trial = u.clone();
                trial[i] = (u[i] + dir * step).clamp(0.0, 1.0);
                if trial[i] == u[i] || evals >= s.max_evals {
                    continue;
                }
                let f = objective(&at(&trial), rows, s.max_requests);
                evals += 1;
                if f < best {
                    (best, u, moved) = (f, trial, true);
                    break;
                }
            }
        }
        if !moved {
            step /= 2.0;
        }
    }
    let mut profile = at(&u);
    for param in free {
        let v = round4(profile.get(param.key).unwrap_or(0.0));
        // A factor rounded past its bound stays inside it.
        profile.set(param.key, v.clamp(param.fit_range.0, param.fit_range.1));
    }
    let objective = objective(&profile, rows, s.max_requests);
    Fitted { profile, evals: evals + 1, objective }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round4_keeps_four_significant_digits() {
        assert_eq!(round4(123.456), 123.5);
        assert_eq!(round4(0.0123456), 0.01235);
        assert_eq!(round4(0.0), 0.0);
    }
}
