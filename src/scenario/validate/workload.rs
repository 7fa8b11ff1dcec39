//! `[workload]`: a trace that exists (and no lengths beside it), or a request count,
//! an arrival process and two length distributions, each in range.

use super::Checker;
use crate::error::InputError;
use crate::scenario::types::{ArrivalConfig, LengthDist, WorkloadConfig};
use std::path::{Path, PathBuf};

/// The workload; returns the trace file resolved against the scenario's folder, if any.
pub(super) fn check_workload(c: &Checker, w: &WorkloadConfig) -> Result<Option<PathBuf>, InputError> {
    if let Some(t) = w.time_scale {
        c.positive("workload.time_scale", t)?;
    }
    if let Some(trace) = &w.trace {
        return check_trace(c, w, trace).map(Some);
    }
    let requests = w.requests.ok_or_else(|| {
        c.err("workload.requests", "is missing; give the number of requests to generate, or a trace to replay")
    })?;
    if requests == 0 {
        return Err(c.err("workload.requests", "is 0; generate at least one request"));
    }
    let arrival = w.arrival.as_ref().ok_or_else(|| {
        c.err("workload.arrival", "is missing; e.g. arrival = { process = \"poisson\", rate_per_s = 10.0 } (poisson, gamma, constant, all_at_once, closed_loop)")
    })?;
    check_arrival(c, arrival)?;
    let p = w.prompt_tokens.as_ref().ok_or_else(|| {
        c.err(
            "workload.prompt_tokens",
            "is missing; e.g. prompt_tokens = { dist = \"uniform\", min = 128, max = 2048 }",
        )
    })?;
    check_length(c, "workload.prompt_tokens", p)?;
    let o = w.output_tokens.as_ref().ok_or_else(|| {
        c.err("workload.output_tokens", "is missing; e.g. output_tokens = { dist = \"fixed\", value = 256 }")
    })?;
    check_length(c, "workload.output_tokens", o)?;
    if let Some(s) = &w.sessions {
        check_length(c, "workload.sessions.turns", &s.turns)?;
        check_length(c, "workload.sessions.follow_up_tokens", &s.follow_up_tokens)?;
        c.non_negative("workload.sessions.think_time_s", s.think_time_s)?;
    }
    Ok(None)
}

/// A replayed trace: the file exists, the limit is not 0, no length distributions.
fn check_trace(c: &Checker, w: &WorkloadConfig, trace: &str) -> Result<PathBuf, InputError> {
    let base = c.file.parent().unwrap_or(Path::new("."));
    let path = base.join(trace);
    if !path.is_file() {
        return Err(c.err(
            "workload.trace",
            format!("file {} does not exist (trace paths are relative to the scenario file's folder)", path.display()),
        ));
    }
    if let Some(n) = w.requests.or(w.limit) {
        if n == 0 {
            return Err(c.err("workload.limit", "is 0; replay at least one request"));
        }
    }
    if w.prompt_tokens.is_some() || w.output_tokens.is_some() {
        return Err(
            c.err("workload", "a trace gives its own lengths: remove prompt_tokens / output_tokens, or remove trace")
        );
    }
    if w.sessions.is_some() || w.system_prompt_tokens.is_some() {
        return Err(c.err(
            "workload",
            "sessions and system_prompt_tokens shape generated requests; a trace gives its own prompts (a Mooncake trace its hash_ids): remove them, or remove trace",
        ));
    }
    Ok(path)
}

/// The arrival process's rate, burstiness or concurrency.
fn check_arrival(c: &Checker, arrival: &ArrivalConfig) -> Result<(), InputError> {
    match *arrival {
        ArrivalConfig::Poisson { rate_per_s } | ArrivalConfig::Constant { rate_per_s } => {
            c.positive("workload.arrival.rate_per_s", rate_per_s)?;
        }
        ArrivalConfig::Gamma { rate_per_s, cv } => {
            c.positive("workload.arrival.rate_per_s", rate_per_s)?;
            c.positive("workload.arrival.cv", cv)?;
        }
        ArrivalConfig::AllAtOnce => {}
        ArrivalConfig::ClosedLoop { concurrency } => {
            c.at_least_one("workload.arrival.concurrency", concurrency)?;
        }
    }
    Ok(())
}

/// A length distribution at `key`: its parameters in range, 1 <= min <= max.
fn check_length(c: &Checker, key: &str, d: &LengthDist) -> Result<(), InputError> {
    let bounds = |min: u32, max: u32| {
        if min == 0 {
            Err(c.err(&format!("{key}.min"), "is 0; lengths must be at least 1 token"))
        } else if min > max {
            Err(c.err(key, format!("min ({min}) is greater than max ({max})")))
        } else {
            Ok(())
        }
    };
    match *d {
        LengthDist::Fixed { value } => c.at_least_one(&format!("{key}.value"), value).map(|_| ()),
        LengthDist::Uniform { min, max } => bounds(min, max),
        LengthDist::Normal { mean, std, min, max } => {
            c.positive(&format!("{key}.mean"), mean)?;
            c.non_negative(&format!("{key}.std"), std)?;
            bounds(min, max)
        }
        LengthDist::Lognormal { median, sigma, min, max } => {
            c.positive(&format!("{key}.median"), median)?;
            c.non_negative(&format!("{key}.sigma"), sigma)?;
            bounds(min, max)
        }
        LengthDist::Zipf { s, min, max } => {
            c.positive(&format!("{key}.s"), s)?;
            bounds(min, max)
        }
    }
}
