//! Assessing a run against its scenario's `[requirements]`, beside the physical limit.
//!
//! Every requirement becomes one row: target, simulated value, PASS/FAIL and the
//! margin (positive = slack, negative = shortfall, relative to the target). The
//! throughput target is also held against [`super::limit::throughput_limit`]: a
//! target above the limit is impossible on this hardware whatever the schedule, and
//! the row says so with the arithmetic.

use super::limit::{throughput_limit, workload_mix, Binding, ThroughputLimit};
use crate::error::Result;
use crate::metrics::summary::Summary;
use crate::scenario::Setup;
use serde::Serialize;
use std::fmt::Write;

/// Whether the simulated value must be at least or at most the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Simulated >= target.
    AtLeast,
    /// Simulated <= target.
    AtMost,
}

/// One requirement checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// The `[requirements]` key, e.g. `ttft_p99_s`.
    pub requirement: String,
    /// At least or at most.
    pub direction: Direction,
    /// The target as written.
    pub target: f64,
    /// What the run measured (the summary figure it is compared with).
    pub simulated: f64,
    /// Which summary figure that is, e.g. `ttft_s.p99`.
    pub measured_as: String,
    /// True when the requirement holds.
    pub pass: bool,
    /// Slack relative to the target: (simulated - target) / target for minimums,
    /// (target - simulated) / target for maximums; negative when failing.
    pub margin: f64,
}

/// The throughput target against the physical limit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitCheck {
    /// The throughput target, if the scenario has one, tokens/ms/GPU.
    pub target: Option<f64>,
    /// The limit and its inputs.
    pub limit: ThroughputLimit,
    /// `Some(false)` when the target is above the limit.
    pub possible: Option<bool>,
    /// (limit - target) / target, when there is a target.
    pub margin: Option<f64>,
    /// The arithmetic, for the target (or for the simulated throughput without one).
    pub explanation: String,
    /// True if the simulation beat the limit (would be a simulator bug).
    pub simulated_exceeds_limit: bool,
}

/// A run assessed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assessment {
    /// Scenario name.
    pub scenario: String,
    /// GPUs the plan uses.
    pub plan_gpus: u32,
    /// One row per requirement, in `[requirements]` field order.
    pub checks: Vec<Check>,
    /// The physical-limit row.
    pub limit: LimitCheck,
    /// The run's throughput, tokens/ms/GPU.
    pub simulated_throughput: f64,
}

impl Assessment {
    /// True when every requirement passes and the throughput target is possible.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass) && self.limit.possible != Some(false)
    }
    /// 0 when everything passes, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.passed() {
            0
        } else {
            1
        }
    }

    fn rows(&self) -> Vec<[String; 5]> {
        let mut rows = Vec::new();
        let dir = |d: Direction| if d == Direction::AtLeast { "min" } else { "max" };
        for c in &self.checks {
            rows.push([
                format!("{} ({})", c.requirement, dir(c.direction)),
                num(c.target),
                num(c.simulated),
                if c.pass { "PASS" } else { "FAIL" }.to_string(),
                pct(c.margin),
            ]);
            if c.requirement == "throughput_tokens_per_ms_per_gpu" {
                rows.push(self.limit_row());
            }
        }
        if !self.checks.iter().any(|c| c.requirement == "throughput_tokens_per_ms_per_gpu") {
            rows.push(self.limit_row());
        }
        rows
    }

    fn limit_row(&self) -> [String; 5] {
        let l = &self.limit;
        let which = match l.limit.binding {
            Binding::Compute => "compute",
            Binding::Memory => "memory",
        };
        [
            format!("physical limit, tokens/ms/GPU ({which}-bound)"),
            l.target.map(num).unwrap_or_else(|| "-".into()),
            num(l.limit.tokens_per_ms_per_gpu),
            match l.possible {
                Some(true) => "POSSIBLE",
                Some(false) => "IMPOSSIBLE",
                None => "-",
            }
            .to_string(),
            l.margin.map(pct).unwrap_or_else(|| "-".into()),
        ]
    }

    fn notes(&self) -> Vec<String> {
        let l = &self.limit;
        let t = &l.limit;
        let mut notes = vec![format!(
            "physical limit for mean prompt {:.1} and mean output {:.1} tokens: compute bound {:.2}, memory bound {:.2} tokens/ms/GPU ({} binds)",
            t.mix.mean_prompt_tokens,
            t.mix.mean_output_tokens,
            t.compute_tokens_per_ms_per_gpu,
            t.memory_tokens_per_ms_per_gpu,
            match t.binding {
                Binding::Compute => "compute",
                Binding::Memory => "memory",
            }
        )];
        let at = l.target.unwrap_or(self.simulated_throughput);
        let what = if l.target.is_some() { "the target" } else { "the simulated throughput" };
        for line in t.arithmetic(at) {
            notes.push(format!("  at {what} ({} tokens/ms/GPU), {line}", num(at)));
        }
        if let Some(target) = l.target {
            if target > t.compute_tokens_per_ms_per_gpu {
                notes.push("the throughput target is impossible on this hardware: it needs more FLOP/s than the GPU sustains, whatever the schedule".into());
            } else if target > t.memory_tokens_per_ms_per_gpu {
                notes.push(format!(
                    "the throughput target is impossible with at most {} sequences per step: streaming weights and KV needs more HBM bandwidth than the GPU sustains",
                    t.seqs_per_step
                ));
            }
        }
        if l.simulated_exceeds_limit {
            notes.push("warning: the simulated throughput exceeds the physical limit (a simulator bug)".into());
        }
        notes
    }

    /// A plain aligned table with notes below.
    pub fn table(&self) -> String {
        const HEAD: [&str; 5] = ["requirement", "target", "simulated", "result", "margin"];
        let rows = self.rows();
        let mut w = HEAD.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let mut o = String::new();
        let _ = writeln!(o, "assessment of {} ({} GPUs in the plan)", self.scenario, self.plan_gpus);
        let line = |o: &mut String, r: &[&str]| {
            let _ = writeln!(
                o,
                "{:<w0$}  {:>w1$}  {:>w2$}  {:<w3$}  {:>w4$}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            );
        };
        line(&mut o, &HEAD);
        for r in &rows {
            line(&mut o, &r.iter().map(String::as_str).collect::<Vec<_>>());
        }
        for n in self.notes() {
            let _ = writeln!(o, "{n}");
        }
        let _ = writeln!(o, "verdict: {}", if self.passed() { "PASS" } else { "FAIL" });
        o
    }

    /// A Markdown table with notes below.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "**Assessment of {}** ({} GPUs in the plan)\n", self.scenario, self.plan_gpus);
        let _ = writeln!(o, "| requirement | target | simulated | result | margin |");
        let _ = writeln!(o, "|---|---:|---:|---|---:|");
        for r in self.rows() {
            let _ = writeln!(o, "| {} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3], r[4]);
        }
        let _ = writeln!(o);
        for n in self.notes() {
            let _ = writeln!(o, "- {n}");
        }
        let _ = writeln!(o, "\n**Verdict: {}**", if self.passed() { "PASS" } else { "FAIL" });
        o
    }

    /// Pretty JSON, with a `passed` field.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            passed: bool,
            #[serde(flatten)]
            a: &'a Assessment,
        }
        let mut s = serde_json::to_string_pretty(&Out { passed: self.passed(), a: self })
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}

fn num(x: f64) -> String {
    if x == 0.0 || (x.abs() >= 0.01 && x.abs() < 1e6) {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.3e}")
    }
}

fn pct(m: f64) -> String {
    format!("{:+.1} %", m * 100.0)
}

/// Assesses a finished run (`summary`) of `setup` against its requirements.
pub fn assess(setup: &Setup, summary: &Summary) -> Result<Assessment> {
    let mix = workload_mix(setup)?;
    let seqs = setup.serving.max_seqs.min(setup.serving.max_batch_tokens);
    let limit = throughput_limit(&setup.model, &setup.gpu, mix, seqs, &setup.parallel.expert_routing);
    let req = setup.requirements.clone().unwrap_or_default();
    let mut checks = Vec::new();
    let mut add = |name: &str, dir: Direction, target: Option<f64>, simulated: f64, measured_as: &str| {
        if let Some(t) = target {
            let (pass, margin) = match dir {
                Direction::AtLeast => (simulated >= t, (simulated - t) / t),
                Direction::AtMost => (simulated <= t, (t - simulated) / t),
            };
            checks.push(Check {
                requirement: name.to_string(),
                direction: dir,
                target: t,
                simulated,
                measured_as: measured_as.to_string(),
                pass,
                margin,
            });
        }
    };
    use Direction::*;
    let s = summary;
    add(
        "throughput_tokens_per_ms_per_gpu",
        AtLeast,
        req.throughput_tokens_per_ms_per_gpu,
        s.throughput.tokens_per_ms_per_gpu,
        "throughput.tokens_per_ms_per_gpu",
    );
    add("ttft_p50_s", AtMost, req.ttft_p50_s, s.ttft_s.p50, "ttft_s.p50");
    add("ttft_p99_s", AtMost, req.ttft_p99_s, s.ttft_s.p99, "ttft_s.p99");
    add("tpot_p99_s", AtMost, req.tpot_p99_s, s.tpot_s.p99, "tpot_s.p99");
    add("memory_fraction_max", AtMost, req.memory_fraction_max, s.memory.peak_fraction_max, "memory.peak_fraction_max");
    add("overhead_fraction_max", AtMost, req.overhead_fraction_max, s.overhead.fraction, "overhead.fraction");
    add("load_imbalance_cv_max", AtMost, req.load_imbalance_cv_max, s.load_imbalance.cv, "load_imbalance.cv");
    add("gpu_utilization_min", AtLeast, req.gpu_utilization_min, s.gpu.utilization_mean, "gpu.utilization_mean");
    add("gpus_max", AtMost, req.gpus_max.map(f64::from), setup.plan_gpus() as f64, "plan GPUs (dp x pp x tp x ep)");

    let target = req.throughput_tokens_per_ms_per_gpu;
    let simulated = s.throughput.tokens_per_ms_per_gpu;
    let limit_check = LimitCheck {
        target,
        possible: target.map(|t| !limit.is_impossible(t)),
        margin: target.map(|t| (limit.tokens_per_ms_per_gpu - t) / t),
        explanation: limit.explain(target.unwrap_or(simulated)),
        simulated_exceeds_limit: simulated > limit.tokens_per_ms_per_gpu * (1.0 + 1e-9),
        limit,
    };
    Ok(Assessment {
        scenario: setup.name.clone(),
        plan_gpus: setup.plan_gpus(),
        checks,
        limit: limit_check,
        simulated_throughput: simulated,
    })
}
