//! `[[pools]]` and `[disaggregation]`: a cluster split into pools of serving instances
//! with roles (prefill, decode, or mixed), each with its own GPU type, node count and
//! parallel plan.
//!
//! Without `[[pools]]` a run is the co-located mode: every replica prefills and decodes
//! its own requests. With pools, the cluster's nodes go to the pools in the order
//! written (pool 0's first; nodes left over after the last pool stay idle), and each pool is checked as if it were a scenario of its own
//! (its GPU, its nodes, its plan with `dp = replicas`), so every check of a plain
//! scenario applies to it, with the error's key renamed to the pool's.

use super::types::{GpuSpecConfig, ParallelConfig, Scenario};
use super::validate::Setup;
use crate::error::{InputError, Location};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a pool's instances do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// Prefill only: batch prompts, produce the first token, hand the KV cache on.
    Prefill,
    /// Decode only: receive a prefilled KV cache, produce the remaining tokens.
    Decode,
    /// Both, co-located (a request stays on one instance).
    Mixed,
}

impl PoolRole {
    /// The role as written in the scenario.
    pub fn name(self) -> &'static str {
        match self {
            PoolRole::Prefill => "prefill",
            PoolRole::Decode => "decode",
            PoolRole::Mixed => "mixed",
        }
    }
}

/// `[[pools]]`: one pool of identical serving instances.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// `prefill`, `decode` or `mixed`.
    pub role: PoolRole,
    /// Serving instances in the pool (the pool's `dp`).
    pub replicas: u32,
    /// Nodes of the pool (default: the fewest that hold its replicas).
    #[serde(default)]
    pub nodes: Option<u32>,
    /// GPU preset (default `[hardware].gpu`, with `[hardware.gpu_spec]`).
    #[serde(default)]
    pub gpu: Option<String>,
    /// Per-field GPU overrides (default: `[hardware.gpu_spec]` when `gpu` is not given).
    #[serde(default)]
    pub gpu_spec: Option<GpuSpecConfig>,
    /// The plan of one instance (default `[parallel]`); its `dp` must stay 1.
    #[serde(default)]
    pub parallel: Option<ParallelConfig>,
}

/// How a prefilled KV cache moves to its decode instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvTransferMode {
    /// Layer by layer while prefill runs (as vLLM's and SGLang's connectors do): only
    /// the last layer's share, or what the link could not carry during prefill, remains.
    #[default]
    Layerwise,
    /// The whole cache after prefill ends.
    Whole,
}

/// How a request's prefill and decode instances are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairRouter {
    /// Instances of each side in turn.
    #[default]
    RoundRobin,
    /// On each side, the instance with the fewest outstanding tokens.
    LeastLoaded,
    /// Prefill: fewest outstanding tokens; decode: the most free KV blocks.
    KvAware,
}

/// `[disaggregation]`: settings of a pooled run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisaggConfig {
    /// `layerwise` (default) or `whole`.
    #[serde(default)]
    pub kv_transfer: KvTransferMode,
    /// `round_robin` (default), `least_loaded` or `kv_aware`.
    #[serde(default)]
    pub router: PairRouter,
}

/// One pool, checked: its own scenario's setup and where it sits in the cluster.
#[derive(Clone, Debug)]
pub struct PoolSetup {
    /// What its instances do.
    pub role: PoolRole,
    /// The pool as a scenario of its own (its GPU, nodes, plan with `dp = replicas`).
    pub setup: Setup,
    /// Its first node in the cluster.
    pub first_node: u32,
    /// Its first GPU in the cluster.
    pub first_gpu: u32,
}

/// Checks `[[pools]]` and `[disaggregation]` of `s`; empty when the run is co-located.
pub(crate) fn check_pools(s: &Scenario, file: &Path) -> Result<Vec<PoolSetup>, InputError> {
    let err = |key: &str, msg: String| InputError::key(file, key, msg);
    if s.pools.is_empty() {
        return match s.disaggregation {
            Some(_) => Err(err("disaggregation", "is given but there are no [[pools]]; add pools or remove it".into())),
            None => Ok(Vec::new()),
        };
    }
    let count = |r: PoolRole| s.pools.iter().filter(|p| p.role == r).count();
    let (prefill, decode, mixed) = (count(PoolRole::Prefill), count(PoolRole::Decode), count(PoolRole::Mixed));
    if (prefill > 0) != (decode > 0) {
        let (has, lacks) = if prefill > 0 { ("prefill", "decode") } else { ("decode", "prefill") };
        return Err(err("pools", format!("has a {has} pool but no {lacks} pool; a request needs both sides")));
    }
    if mixed > 0 && prefill > 0 {
        return Err(err(
            "pools",
            "mixes `mixed` pools with prefill/decode pools, which is not supported; use either mixed pools only, or prefill and decode pools".into(),
        ));
    }
    if s.serving.prefix_caching {
        return Err(err(
            "serving.prefix_caching",
            "is true; prefix caching with [[pools]] is not supported yet; turn it off or remove the pools".into(),
        ));
    }
    if s.serving.router != super::types::RouterKind::default() {
        return Err(err(
            "serving.router",
            "is set, but with [[pools]] instances are picked by [disaggregation] router (round_robin, least_loaded, kv_aware); remove serving.router".into(),
        ));
    }
    if !s.events.is_empty() {
        return Err(err("events", "what-if events are not supported with [[pools]] yet; remove them".into()));
    }
    let gpn = s.hardware.gpus_per_node.max(1) as u64;
    let mut nodes = Vec::with_capacity(s.pools.len());
    for (i, p) in s.pools.iter().enumerate() {
        if p.replicas == 0 {
            return Err(err(&format!("pools.{i}.replicas"), "is 0; must be at least 1".into()));
        }
        let plan = p.parallel.as_ref().unwrap_or(&s.parallel);
        let gpus = p.replicas as u64 * plan.pp as u64 * plan.tp as u64 * plan.ep as u64;
        nodes.push(p.nodes.unwrap_or(gpus.div_ceil(gpn).min(u32::MAX as u64) as u32));
    }
    let total: u64 = nodes.iter().map(|n| *n as u64).sum();
    if total > s.hardware.nodes as u64 {
        return Err(err(
            "hardware.nodes",
            format!(
                "is {}; the pools need {total} nodes in all (pool by pool: {nodes:?}); the nodes after them stay idle",
                s.hardware.nodes
            ),
        ));
    }
    let mut out = Vec::with_capacity(s.pools.len());
    let mut first_node = 0u32;
    for (i, p) in s.pools.iter().enumerate() {
        let scenario = pool_scenario(s, p, nodes[i]);
        let setup = super::validate::validate(&scenario, file).map_err(|e| rename(e, i, p.role))?;
        if p.parallel.as_ref().unwrap_or(&s.parallel).dp != 1 {
            let key = if p.parallel.is_some() { format!("pools.{i}.parallel.dp") } else { "parallel.dp".into() };
            return Err(err(&key, "must stay 1 with [[pools]]; a pool's instances are its `replicas`".into()));
        }
        out.push(PoolSetup { role: p.role, setup, first_node, first_gpu: first_node * gpn as u32 });
        first_node += nodes[i];
    }
    Ok(out)
}

/// Pool `p` as a scenario of its own.
fn pool_scenario(s: &Scenario, p: &PoolConfig, nodes: u32) -> Scenario {
    let mut one = s.clone();
    one.pools = Vec::new();
    one.disaggregation = None;
    one.hardware.nodes = nodes;
    if p.gpu.is_some() {
        one.hardware.gpu = p.gpu.clone();
        one.hardware.gpu_spec = p.gpu_spec.clone();
    } else if p.gpu_spec.is_some() {
        one.hardware.gpu_spec = p.gpu_spec.clone();
    }
    one.parallel = p.parallel.clone().unwrap_or_else(|| s.parallel.clone());
    one.parallel.dp = p.replicas;
    one
}

/// An error found in pool `i`'s own scenario, renamed to the pool's keys.
fn rename(mut e: InputError, i: usize, role: PoolRole) -> InputError {
    if let Location::Key(k) = &e.location {
        let key = match k.as_str() {
            "parallel.dp" => format!("pools.{i}.replicas"),
            "parallel" => format!("pools.{i}.parallel"),
            k if k.starts_with("parallel.") => format!("pools.{i}.{k}"),
            k => match k.strip_prefix("hardware.") {
                Some(rest @ ("nodes" | "gpu")) => format!("pools.{i}.{rest}"),
                Some(rest) if rest.starts_with("gpu_spec") => format!("pools.{i}.{rest}"),
                _ => k.to_string(),
            },
        };
        e.location = Location::Key(key);
    }
    e.message = format!("{} (in the {} pool pools.{i})", e.message, role.name());
    e
}

impl Setup {
    /// An error naming `command` when the scenario has pools: that command reads the
    /// one `[parallel]` plan of a co-located run and would describe the wrong cluster.
    pub fn without_pools(&self, command: &str) -> Result<(), InputError> {
        if self.pools.is_empty() {
            return Ok(());
        }
        Err(InputError::key(
            &self.file,
            "pools",
            format!("`{command}` reads one [parallel] plan and does not support [[pools]] yet; use `run` or `sweep`"),
        ))
    }
}
