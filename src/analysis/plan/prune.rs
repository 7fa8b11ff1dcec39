//! Pruning before simulating: each candidate is dropped, with its reason, when it
//! cannot be valid or cannot meet the requirements whatever a simulation would show.
//!
//! In order (the first that applies is reported):
//! 1. **invalid**: the scenario with the plan's overrides does not validate (a
//!    degree that does not divide heads, FFN, experts; more stages than layers).
//! 2. **gpus**: more GPUs than `requirements.gpus_max`.
//! 3. **memory**: weights, workspace and one KV block do not fit (`plan_memory`).
//! 4. **limit**: the physical throughput limit ([`crate::analysis::limit`]) for the
//!    plan's GPU and `min(max_seqs, max_batch_tokens)` is below the throughput
//!    requirement: no schedule reaches it.
//! 5. **load**: the workload cannot supply that throughput to this many GPUs.
//!    Throughput per GPU is tokens completed / (last completion - first arrival) /
//!    GPUs, and the last completion is no earlier than the last arrival, so it is at
//!    most (every request's tokens) / (last arrival - first arrival) / GPUs. The
//!    workload is the same for every plan (its streams do not depend on the plan).
//! 6. **same** (checked last, over the whole space by [`mark_same`]): with one
//!    replica the router has nothing to choose, so plans that differ only in their
//!    router are one plan; the first in enumeration order runs.

use super::space::Candidate;
use crate::analysis::limit::{throughput_limit, WorkloadMix};
use crate::error::{Error, Result};
use crate::scenario::{Override, Setup};
use std::path::Path;

/// Why a candidate was dropped without simulating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PruneKind {
    /// Fails validation (divisibility and the like).
    Invalid,
    /// More GPUs than `requirements.gpus_max`.
    Gpus,
    /// Does not fit in GPU memory.
    Memory,
    /// Physical throughput limit below the requirement.
    Limit,
    /// The offered load cannot reach the required throughput per GPU.
    Load,
    /// The same plan as an earlier one (a router choice with one replica).
    Same,
}

impl PruneKind {
    /// Short name for tables: `invalid`, `gpus`, `memory`, `limit`, `load`.
    pub fn name(self) -> &'static str {
        match self {
            PruneKind::Invalid => "invalid",
            PruneKind::Gpus => "gpus",
            PruneKind::Memory => "memory",
            PruneKind::Limit => "limit",
            PruneKind::Load => "load",
            PruneKind::Same => "same",
        }
    }
}

/// What every candidate is checked against: the same for all of them.
#[derive(Clone, Debug)]
pub struct PruneContext {
    /// The base scenario's text (read once).
    pub text: String,
    /// Its path (for messages and trace paths).
    pub file: std::path::PathBuf,
    /// `--set` overrides, applied before the plan's.
    pub set: Vec<Override>,
    /// The workload's mean lengths.
    pub mix: WorkloadMix,
    /// Upper bound on throughput x GPUs from the load, tokens/ms (`None` when the
    /// workload is closed-loop or arrives all at once).
    pub load_tokens_per_ms: Option<f64>,
    /// Required tokens/ms/GPU, if any.
    pub throughput_target: Option<f64>,
    /// `requirements.gpus_max`, if any.
    pub gpus_max: Option<u32>,
}

impl PruneContext {
    /// The context of the base scenario `base` (already validated from `file` with `set`).
    pub fn new(file: &Path, set: &[Override], base: &Setup) -> Result<PruneContext> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let req = base.requirements.clone().unwrap_or_default();
        Ok(PruneContext {
            text,
            file: file.to_path_buf(),
            set: set.to_vec(),
            mix: crate::analysis::limit::workload_mix(base)?,
            load_tokens_per_ms: load_bound(base)?,
            throughput_target: req.throughput_tokens_per_ms_per_gpu,
            gpus_max: req.gpus_max,
        })
    }

    /// The base scenario with `extra` overrides after `--set`, validated.
    pub fn setup_with(&self, extra: &[Override]) -> Result<Setup> {
        let all: Vec<Override> = self.set.iter().chain(extra).cloned().collect();
        let parsed = crate::scenario::parse(&self.text, &self.file, &all)?;
        Ok(crate::scenario::validate(&parsed, &self.file)?)
    }
}

/// Total tokens of the workload over its arrival span, tokens/ms; `None` when the
/// span is not fixed by the workload (closed loop) or is zero.
fn load_bound(base: &Setup) -> Result<Option<f64>> {
    let mut w = base.workload()?;
    if w.closed_loop_concurrency().is_some() {
        return Ok(None);
    }
    let (mut first, mut last, mut tokens) = (u64::MAX, 0u64, 0f64);
    while let Some(r) = w.next_request(crate::engine::time::SimTime::ZERO) {
        first = first.min(r.arrival.0);
        last = last.max(r.arrival.0);
        tokens += r.prompt_tokens as f64 + r.output_tokens.max(1) as f64;
    }
    if last <= first {
        return Ok(None);
    }
    Ok(Some(tokens / ((last - first) as f64 / 1e6)))
}

/// A candidate after pruning.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The validated scenario of the plan (absent when invalid).
    pub setup: Option<Setup>,
    /// The physical throughput limit of the plan, tokens/ms/GPU (0 when invalid).
    pub limit_tokens_per_ms_per_gpu: f64,
    /// Why it was dropped, if it was.
    pub pruned: Option<(PruneKind, String)>,
}

/// Checks `cand` against `ctx`.
pub fn check(ctx: &PruneContext, cand: &Candidate) -> Checked {
    let setup = match ctx.setup_with(&cand.overrides()) {
        Ok(s) => s,
        Err(e) => return Checked { setup: None, limit_tokens_per_ms_per_gpu: 0.0, pruned: Some(invalid(&e)) },
    };
    let seqs = setup.serving.max_seqs.min(setup.serving.max_batch_tokens);
    let limit = throughput_limit(&setup.model, &setup.gpu, ctx.mix, seqs, &setup.parallel.expert_routing);
    let lim = limit.tokens_per_ms_per_gpu;
    let gpus = cand.gpus();
    let pruned = if let Some(max) = ctx.gpus_max.filter(|m| gpus > *m) {
        Some((PruneKind::Gpus, format!("{gpus} GPUs > requirements.gpus_max = {max}")))
    } else if let Err(e) = crate::serving::assemble::Assembly::build(&setup) {
        match e {
            Error::Infeasible(m) => Some((PruneKind::Memory, strip_file(&m))),
            other => Some(invalid(&other)),
        }
    } else if let Some(t) = ctx.throughput_target.filter(|t| limit.is_impossible(*t)) {
        Some((PruneKind::Limit, format!("physical limit {lim:.2} < {t} tokens/ms/GPU ({})", limit.explain(t))))
    } else if let (Some(t), Some(load)) = (ctx.throughput_target, ctx.load_tokens_per_ms) {
        let most = load / gpus as f64;
        (most < t).then(|| {
            (PruneKind::Load, format!("the workload offers at most {most:.2} tokens/ms/GPU on {gpus} GPUs < {t}"))
        })
    } else {
        None
    };
    Checked { setup: Some(setup), limit_tokens_per_ms_per_gpu: lim, pruned }
}

fn invalid(e: &Error) -> (PruneKind, String) {
    (PruneKind::Invalid, strip_file(&e.to_string()))
}

/// Messages name the base file; in a table of plans that is noise.
fn strip_file(m: &str) -> String {
    match m.split_once(": ") {
        Some((head, rest)) if head.ends_with(".toml") => rest.to_string(),
        _ => m.to_string(),
    }
}

/// Marks every surviving plan with one replica that differs from an earlier
/// survivor only in its router as [`PruneKind::Same`].
pub fn mark_same(cands: &[Candidate], checked: &mut [Checked]) {
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        if c.dp != 1 || checked[i].pruned.is_some() {
            continue;
        }
        let key = Candidate { router: crate::scenario::types::RouterKind::RoundRobin, ..c.clone() }.overrides();
        let key = format!("{key:?}");
        match seen.get(&key) {
            Some(first) => {
                let why = format!("same plan as {first}: with one replica the router has nothing to choose");
                checked[i].pruned = Some((PruneKind::Same, why));
            }
            None => {
                seen.insert(key, i);
            }
        }
    }
}
