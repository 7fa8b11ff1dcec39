//! Reading a profile TOML file: every key known (unknown keys are rejected with the
//! line they are on), every number in its range (named by key), nothing defaulted.

use super::FrameworkProfile;
use crate::error::{InputError, Location};
use std::path::Path;

/// One numeric parameter of a profile: its key, its unit and meaning, and the range a
/// value must lie in (inclusive bounds; `None` = unbounded above).
#[derive(Clone, Copy, Debug)]
pub struct Parameter {
    /// The TOML key.
    pub key: &'static str,
    /// Unit and meaning, one line (written above a fitted value by `calibrate`).
    pub meaning: &'static str,
    /// Smallest allowed value.
    pub min: f64,
    /// Largest allowed value (`None`: no upper bound).
    pub max: Option<f64>,
    /// Greater than `min` strictly (a rate multiplier of 0 would divide by zero).
    pub above_min: bool,
    /// The interval `clustersim calibrate` searches: (low, high).
    pub fit_range: (f64, f64),
}

const fn overhead(key: &'static str, meaning: &'static str, fit_high: f64) -> Parameter {
    Parameter { key, meaning, min: 0.0, max: None, above_min: false, fit_range: (0.0, fit_high) }
}

const fn factor(key: &'static str, meaning: &'static str, fit_low: f64) -> Parameter {
    // A stack never beats the hardware preset's measured ceilings: at most 1.
    Parameter { key, meaning, min: 0.0, max: Some(1.0), above_min: true, fit_range: (fit_low, 1.0) }
}

/// Every numeric parameter, in file order.
pub const PARAMETERS: &[Parameter] = &[
    overhead("iteration_overhead_us", "Host-side scheduling and bookkeeping per iteration, µs (GPUs idle).", 2000.0),
    overhead("per_seq_overhead_us", "Host-side cost per sequence per iteration (sampling, output), µs.", 200.0),
    overhead("prefill_overhead_us", "Host-side cost per prompt chunk in the batch (input preparation), µs.", 500.0),
    overhead("kernel_overhead_us", "Extra launch cost per kernel and collective beyond the GPU's gap, µs.", 20.0),
    factor("gemm_efficiency", "Multiplier on the hardware preset's sustained GEMM rate (1 = operator profiles).", 0.3),
    factor("attention_efficiency", "Multiplier on the hardware's sustained rate for attention-kernel FLOPs.", 0.2),
    factor("memory_efficiency", "Multiplier on the hardware's sustained HBM bandwidth for every kernel.", 0.3),
    factor(
        "collective_efficiency",
        "Fraction of the link's sustained bandwidth collectives reach (1 = nccl-tests).",
        0.1,
    ),
    overhead(
        "collective_step_overhead_us",
        "Extra latency per ring step of a collective beyond the link's alpha, µs.",
        20.0,
    ),
    overhead("attention_score_bytes", "HBM bytes per attention score in prefill attention (0 = fused flash).", 16.0),
    overhead("eager_launch_us", "Host time per kernel of an iteration not replayed from a CUDA graph, µs.", 20.0),
];

impl FrameworkProfile {
    /// The value of numeric parameter `key` (one of [`PARAMETERS`]).
    pub fn get(&self, key: &str) -> Option<f64> {
        Some(match key {
            "iteration_overhead_us" => self.iteration_overhead_us,
            "per_seq_overhead_us" => self.per_seq_overhead_us,
            "prefill_overhead_us" => self.prefill_overhead_us,
            "kernel_overhead_us" => self.kernel_overhead_us,
            "gemm_efficiency" => self.gemm_efficiency,
            "attention_efficiency" => self.attention_efficiency,
            "memory_efficiency" => self.memory_efficiency,
            "collective_efficiency" => self.collective_efficiency,
            "collective_step_overhead_us" => self.collective_step_overhead_us,
            "attention_score_bytes" => self.attention_score_bytes,
            "eager_launch_us" => self.eager_launch_us,
            _ => return None,
        })
    }

    /// Sets numeric parameter `key`; false when there is no such key.
    pub fn set(&mut self, key: &str, v: f64) -> bool {
        let slot = match key {
            "iteration_overhead_us" => &mut self.iteration_overhead_us,
            "per_seq_overhead_us" => &mut self.per_seq_overhead_us,
            "prefill_overhead_us" => &mut self.prefill_overhead_us,
            "kernel_overhead_us" => &mut self.kernel_overhead_us,
            "gemm_efficiency" => &mut self.gemm_efficiency,
            "attention_efficiency" => &mut self.attention_efficiency,
            "memory_efficiency" => &mut self.memory_efficiency,
            "collective_efficiency" => &mut self.collective_efficiency,
            "collective_step_overhead_us" => &mut self.collective_step_overhead_us,
            "attention_score_bytes" => &mut self.attention_score_bytes,
            "eager_launch_us" => &mut self.eager_launch_us,
            _ => return false,
        };
        *slot = v;
        true
    }
}

impl Parameter {
    /// Whether `v` is allowed, and if not what is.
    pub fn check(&self, v: f64) -> Result<(), String> {
        let low_ok = if self.above_min { v > self.min } else { v >= self.min };
        if v.is_finite() && low_ok && self.max.is_none_or(|m| v <= m) {
            return Ok(());
        }
        let low = if self.above_min { format!("> {}", self.min) } else { format!(">= {}", self.min) };
        Err(match self.max {
            Some(m) => format!("is {v}; must be {low} and <= {m}"),
            None => format!("is {v}; must be a number {low}"),
        })
    }
}

/// Parses profile text as if read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<FrameworkProfile, InputError> {
    let p: FrameworkProfile = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(r) => {
                let before = &text[..r.start.min(text.len())];
                Location::Line(before.matches('\n').count() + 1)
            }
            None => Location::File,
        };
        let allowed = "a profile holds `name`, `admission`, `chunked_prefill`, `cuda_graph_max_batch`, `custom_all_reduce_max_bytes` and the numeric keys of README \"Engine profiles and calibration\"";
        InputError { file: path.to_path_buf(), location, message: format!("{} ({allowed})", e.message().trim()) }
    })?;
    if p.name.trim().is_empty() {
        return Err(InputError::key(path, "name", "is empty; a profile needs a name"));
    }
    for param in PARAMETERS {
        let v = p.get(param.key).unwrap_or(f64::NAN);
        param.check(v).map_err(|m| InputError::key(path, param.key, m))?;
    }
    if let Some(k) = p.fitted_parameters.iter().find(|k| !PARAMETERS.iter().any(|q| q.key == k.as_str())) {
        let known: Vec<&str> = PARAMETERS.iter().map(|q| q.key).collect();
        let msg = format!("names {k:?}, not a numeric parameter; known: {}", known.join(", "));
        return Err(InputError::key(path, "fitted_parameters", msg));
    }
    Ok(p)
}

/// Reads and parses the profile file at `path`.
pub fn load(path: &Path) -> Result<FrameworkProfile, InputError> {
    let text = crate::textfile::read_text(path, "profile file")?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::framework::{Admission, SHIPPED};

    #[test]
    fn every_shipped_file_parses_and_documents_each_key_with_a_source() {
        for (name, text) in SHIPPED {
            let p = parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, *name);
            // Every key line is preceded (within its comment block) by a `# source:` line.
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                if l.contains(" = ") && !l.starts_with('#') && !l.starts_with("name") {
                    let block = lines[..i].iter().rev().take_while(|b| b.starts_with('#'));
                    assert!(block.into_iter().any(|b| b.starts_with("# source:")), "{name}: {l} has no source");
                }
            }
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = SHIPPED[0].1.replace("gemm_efficiency = 1.0", "gemm_eficiency = 1.0");
        let line = text.lines().position(|l| l.starts_with("gemm_eficiency")).unwrap() + 1;
        let e = parse(&text, Path::new("my.toml")).unwrap_err();
        assert_eq!(e.location, Location::Line(line));
        assert!(e.message.contains("gemm_eficiency"), "{}", e.message);
    }

    #[test]
    fn out_of_range_values_are_named_by_key() {
        let text = SHIPPED[0].1.replace("memory_efficiency = 1.0", "memory_efficiency = 1.2");
        let e = parse(&text, Path::new("my.toml")).unwrap_err();
        assert_eq!(e.location, Location::Key("memory_efficiency".into()));
        assert!(e.message.contains("<= 1"), "{}", e.message);
        let text = SHIPPED[0].1.replace("iteration_overhead_us = 100.0", "iteration_overhead_us = -1.0");
        assert!(parse(&text, Path::new("my.toml")).is_err());
        let text = SHIPPED[0].1.replace("admission = \"preempt\"", "admission = \"swap\"");
        assert!(parse(&text, Path::new("my.toml")).unwrap_err().message.contains("no_evict"));
    }

    #[test]
    fn a_missing_key_is_an_error_not_a_default() {
        let text = SHIPPED[0].1.replace("admission = \"preempt\"", "");
        let e = parse(&text, Path::new("my.toml")).unwrap_err();
        assert!(e.message.contains("admission"), "{}", e.message);
        let ok = parse(SHIPPED[0].1, Path::new("x")).unwrap();
        assert_eq!(ok.admission, Admission::Preempt);
    }
}
