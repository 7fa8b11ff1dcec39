//! Checks a parsed scenario for sense and resolves presets into a [`Setup`].
//!
//! Every check names the key path, the bad value and what is allowed. One file per
//! part of the scenario: `hardware`, `model`, `plan` (parallel and serving),
//! `workload`, `events` (requirements and what-ifs).

mod events;
mod hardware;
mod model;
mod plan;
mod workload;

use super::types::*;
use crate::error::InputError;
use crate::hardware::spec::{GpuSpec, NetworkSpec, NvlinkSpec};
use crate::model::framework::FrameworkProfile;
use crate::model::spec::ModelSpec;
use events::{check_event, check_requirements};
use hardware::{resolve_gpu, resolve_links};
use model::resolve_model;
use plan::{check_parallel, check_serving};
use std::path::{Path, PathBuf};
use workload::check_workload;

/// A scenario with presets resolved and every value checked: what a run is built from.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The scenario file (for messages).
    pub file: PathBuf,
    /// `scenario.name`.
    pub name: String,
    /// `scenario.seed`.
    pub seed: u64,
    /// The GPU.
    pub gpu: GpuSpec,
    /// Nodes.
    pub nodes: u32,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// NVLink inside a node, bandwidth_scale applied.
    pub nvlink: NvlinkSpec,
    /// Network between nodes, bandwidth_scale applied.
    pub network: NetworkSpec,
    /// The model.
    pub model: ModelSpec,
    /// The parallel plan as written.
    pub parallel: ParallelConfig,
    /// Serving limits.
    pub serving: ServingConfig,
    /// The software-stack profile named by `serving.framework`.
    pub framework: FrameworkProfile,
    /// The workload as written.
    pub workload: WorkloadConfig,
    /// The trace file, resolved against the scenario's folder.
    pub trace_path: Option<PathBuf>,
    /// Targets, if any.
    pub requirements: Option<Requirements>,
    /// What-if events.
    pub events: Vec<WhatIfEvent>,
    /// The GPU's list price and power model (preset, `[economics]` on top).
    pub economics: crate::hardware::economics::Economics,
    /// The pools of a disaggregated run (empty: co-located).
    pub pools: Vec<crate::scenario::pools::PoolSetup>,
    /// KV handoff and routing of a pooled run.
    pub disaggregation: crate::scenario::pools::DisaggConfig,
}

impl Setup {
    /// The request stream the scenario's `[workload]` describes.
    pub fn workload(&self) -> crate::Result<crate::workload::Workload> {
        crate::workload::Workload::from_config(&self.workload, self.trace_path.as_deref(), self.seed, &self.file)
    }
    /// GPUs in the cluster.
    pub fn total_gpus(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }
    /// GPUs the plan uses: dp x pp x tp x ep.
    pub fn plan_gpus(&self) -> u32 {
        let p = &self.parallel;
        p.dp * p.pp * p.tp * p.ep
    }
}

struct Checker<'a> {
    file: &'a Path,
}

impl Checker<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> InputError {
        InputError::key(self.file, key, msg)
    }
    fn positive(&self, key: &str, v: f64) -> Result<f64, InputError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.err(key, format!("is {v}; must be a number greater than 0")))
        }
    }
    fn fraction(&self, key: &str, v: f64) -> Result<f64, InputError> {
        if v.is_finite() && v > 0.0 && v <= 1.0 {
            Ok(v)
        } else {
            Err(self.err(key, format!("is {v}; must be a fraction in (0, 1]")))
        }
    }
    fn non_negative(&self, key: &str, v: f64) -> Result<f64, InputError> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.err(key, format!("is {v}; must be a number >= 0")))
        }
    }
    fn at_least_one(&self, key: &str, v: u32) -> Result<u32, InputError> {
        if v >= 1 {
            Ok(v)
        } else {
            Err(self.err(key, format!("is {v}; must be at least 1")))
        }
    }
}

/// Validates `s` (read from `file`) and resolves it into a [`Setup`].
pub fn validate(s: &Scenario, file: &Path) -> Result<Setup, InputError> {
    let c = Checker { file };
    if s.scenario.name.trim().is_empty() || s.scenario.name.contains(['/', '\\']) || s.scenario.name.starts_with('.') {
        return Err(c.err(
            "scenario.name",
            format!(
                "is {:?}; must be a non-empty name without slashes or a leading dot (it names the results folder)",
                s.scenario.name
            ),
        ));
    }
    let gpu = resolve_gpu(&c, &s.hardware)?;
    let h = &s.hardware;
    c.at_least_one("hardware.nodes", h.nodes)?;
    c.at_least_one("hardware.gpus_per_node", h.gpus_per_node)?;
    if h.nodes.checked_mul(h.gpus_per_node).is_none() {
        return Err(c.err(
            "hardware",
            format!(
                "nodes x gpus_per_node = {} x {} is too many GPUs; at most {} in all",
                h.nodes,
                h.gpus_per_node,
                u32::MAX
            ),
        ));
    }
    let (nvlink, network) = resolve_links(&c, h)?;
    let model = resolve_model(&c, &s.model)?;
    check_parallel(&c, &s.parallel, &model, h.nodes * h.gpus_per_node)?;
    let framework = check_serving(&c, &s.serving)?;
    let trace_path = check_workload(&c, &s.workload)?;
    if let Some(r) = &s.requirements {
        check_requirements(&c, r)?;
    }
    for (i, e) in s.events.iter().enumerate() {
        check_event(&c, i, e, h.nodes, h.gpus_per_node, network.nics_per_node)?;
    }
    let economics = crate::hardware::economics::Economics::checked(&gpu.name, s.economics.as_ref())
        .map_err(|(key, msg)| c.err(&format!("economics.{key}"), msg))?;
    let setup = Setup {
        file: file.to_path_buf(),
        name: s.scenario.name.clone(),
        seed: s.scenario.seed,
        gpu,
        nodes: h.nodes,
        gpus_per_node: h.gpus_per_node,
        nvlink,
        network,
        model,
        parallel: s.parallel.clone(),
        serving: s.serving.clone(),
        framework,
        workload: s.workload.clone(),
        trace_path,
        requirements: s.requirements.clone(),
        events: s.events.clone(),
        economics,
        pools: crate::scenario::pools::check_pools(s, file)?,
        disaggregation: s.disaggregation.clone().unwrap_or_default(),
    };
    super::bounds::check(&setup).map(|()| setup)
}
