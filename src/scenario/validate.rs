//! Checks a parsed scenario for sense and resolves presets into a [`Setup`].
//!
//! Every check names the key path, the bad value and what is allowed.

use super::types::*;
use crate::error::InputError;
use crate::hardware::spec::{gpu_preset, gpu_preset_names, GpuSpec, NetworkSpec, NvlinkSpec};
use crate::model::framework::{framework_profile, FrameworkProfile, FRAMEWORK_NAMES};
use crate::model::spec::{model_preset, model_preset_names, Dtype, ModelSpec};
use std::path::{Path, PathBuf};

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
        check_event(&c, i, e, h.nodes, h.nodes * h.gpus_per_node)?;
    }
    let economics = crate::hardware::economics::Economics::checked(&gpu.name, s.economics.as_ref())
        .map_err(|(key, msg)| c.err(&format!("economics.{key}"), msg))?;
    Ok(Setup {
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
    })
}

fn resolve_gpu(c: &Checker, h: &HardwareConfig) -> Result<GpuSpec, InputError> {
    let o = h.gpu_spec.clone().unwrap_or_default();
    let mut g = match &h.gpu {
        Some(name) => {
            let p = gpu_preset(name).ok_or_else(|| {
                c.err("hardware.gpu", format!("unknown GPU preset {name:?}; known: {}", gpu_preset_names().join(", ")))
            })?;
            (p.spec)()
        }
        None => {
            let need = |v: Option<f64>, k: &str| {
                v.ok_or_else(|| {
                    c.err(
                        &format!("hardware.gpu_spec.{k}"),
                        format!(
                            "is missing; without a `hardware.gpu` preset every GPU field must be given (presets: {})",
                            gpu_preset_names().join(", ")
                        ),
                    )
                })
            };
            let peak = need(o.peak_tflops, "peak_tflops")?;
            let eff = need(o.compute_efficiency, "compute_efficiency")?;
            GpuSpec {
                name: "custom".into(),
                peak_tflops: peak,
                peak_fp8_tflops: o.peak_fp8_tflops.unwrap_or(peak),
                compute_efficiency: eff,
                // No power-cap window unless given: GEMMs at `compute_efficiency`.
                gemm_efficiency_short: eff,
                gemm_efficiency_long: eff,
                gemm_boost_window_us: 0.0,
                memory_gib: need(o.memory_gib, "memory_gib")?,
                memory_bandwidth_tb_s: need(o.memory_bandwidth_tb_s, "memory_bandwidth_tb_s")?,
                memory_efficiency: need(o.memory_efficiency, "memory_efficiency")?,
                launch_overhead_us: o.launch_overhead_us.unwrap_or(4.0),
                sm_count: crate::hardware::spec::default_sm_count(),
            }
        }
    };
    if let Some(v) = o.peak_tflops {
        g.peak_tflops = v;
    }
    if let Some(v) = o.peak_fp8_tflops {
        g.peak_fp8_tflops = v;
    }
    if let Some(v) = o.compute_efficiency {
        g.compute_efficiency = v;
        // Overriding the one efficiency alone keeps its old meaning for GEMMs too.
        if o.gemm_efficiency_short.is_none() && o.gemm_efficiency_long.is_none() {
            g.gemm_efficiency_short = v;
            g.gemm_efficiency_long = v;
        }
    }
    if let Some(v) = o.gemm_efficiency_short {
        g.gemm_efficiency_short = v;
        if o.gemm_efficiency_long.is_none() {
            g.gemm_efficiency_long = g.gemm_efficiency_long.min(v);
        }
    }
    if let Some(v) = o.gemm_efficiency_long {
        g.gemm_efficiency_long = v;
    }
    if let Some(v) = o.gemm_boost_window_us {
        g.gemm_boost_window_us = v;
    }
    if let Some(v) = o.memory_gib {
        g.memory_gib = v;
    }
    if let Some(v) = o.memory_bandwidth_tb_s {
        g.memory_bandwidth_tb_s = v;
    }
    if let Some(v) = o.memory_efficiency {
        g.memory_efficiency = v;
    }
    if let Some(v) = o.launch_overhead_us {
        g.launch_overhead_us = v;
    }
    c.positive("hardware.gpu_spec.peak_tflops", g.peak_tflops)?;
    c.positive("hardware.gpu_spec.peak_fp8_tflops", g.peak_fp8_tflops)?;
    c.fraction("hardware.gpu_spec.compute_efficiency", g.compute_efficiency)?;
    c.fraction("hardware.gpu_spec.gemm_efficiency_short", g.gemm_efficiency_short)?;
    c.fraction("hardware.gpu_spec.gemm_efficiency_long", g.gemm_efficiency_long)?;
    if g.gemm_efficiency_long > g.gemm_efficiency_short {
        return Err(c.err(
            "hardware.gpu_spec.gemm_efficiency_long",
            format!(
                "is {}; it cannot exceed gemm_efficiency_short ({})",
                g.gemm_efficiency_long, g.gemm_efficiency_short
            ),
        ));
    }
    c.non_negative("hardware.gpu_spec.gemm_boost_window_us", g.gemm_boost_window_us)?;
    c.positive("hardware.gpu_spec.memory_gib", g.memory_gib)?;
    c.positive("hardware.gpu_spec.memory_bandwidth_tb_s", g.memory_bandwidth_tb_s)?;
    c.fraction("hardware.gpu_spec.memory_efficiency", g.memory_efficiency)?;
    c.non_negative("hardware.gpu_spec.launch_overhead_us", g.launch_overhead_us)?;
    Ok(g)
}

fn resolve_links(c: &Checker, h: &HardwareConfig) -> Result<(NvlinkSpec, NetworkSpec), InputError> {
    let preset = h.gpu.as_deref().and_then(gpu_preset).or_else(|| gpu_preset("h100-sxm"));
    let preset = preset.ok_or_else(|| c.err("hardware.gpu", "no link preset"))?;
    let mut nv = (preset.nvlink)();
    let mut net = (preset.network)();
    net.nics_per_node = h.gpus_per_node;
    if let Some(o) = &h.nvlink {
        if let Some(v) = o.bandwidth_gb_s {
            nv.bandwidth_gb_s = c.positive("hardware.nvlink.bandwidth_gb_s", v)?;
        }
        if let Some(v) = o.efficiency {
            nv.efficiency = c.fraction("hardware.nvlink.efficiency", v)?;
        }
        if let Some(v) = o.latency_us {
            nv.latency_us = c.non_negative("hardware.nvlink.latency_us", v)?;
        }
        if let Some(v) = o.bandwidth_scale {
            nv.bandwidth_gb_s *= c.positive("hardware.nvlink.bandwidth_scale", v)?;
        }
    }
    if let Some(o) = &h.network {
        if let Some(v) = o.nic_bandwidth_gb_s {
            net.nic_bandwidth_gb_s = c.positive("hardware.network.nic_bandwidth_gb_s", v)?;
        }
        if let Some(v) = o.efficiency {
            net.efficiency = c.fraction("hardware.network.efficiency", v)?;
        }
        if let Some(v) = o.nics_per_node {
            net.nics_per_node = c.at_least_one("hardware.network.nics_per_node", v)?;
        }
        if let Some(v) = o.latency_us {
            net.latency_us = c.non_negative("hardware.network.latency_us", v)?;
        }
        if let Some(v) = o.topology {
            net.topology = v;
        }
        if let Some(v) = o.oversubscription {
            if !(v.is_finite() && v >= 1.0) {
                return Err(
                    c.err("hardware.network.oversubscription", format!("is {v}; must be >= 1 (1 = non-blocking)"))
                );
            }
            net.oversubscription = v;
        }
        if let Some(v) = o.bandwidth_scale {
            net.nic_bandwidth_gb_s *= c.positive("hardware.network.bandwidth_scale", v)?;
        }
    }
    Ok((nv, net))
}

fn resolve_model(c: &Checker, m: &ModelConfig) -> Result<ModelSpec, InputError> {
    let mut spec = match &m.preset {
        Some(name) => {
            let p = model_preset(name).ok_or_else(|| {
                c.err(
                    "model.preset",
                    format!("unknown model preset {name:?}; known: {}", model_preset_names().join(", ")),
                )
            })?;
            (p.spec)()
        }
        None => {
            let need = |v: Option<u32>, k: &str| {
                v.ok_or_else(|| {
                    c.err(
                        &format!("model.{k}"),
                        format!("is missing; without `model.preset` give layers, hidden, heads, ffn and vocab (presets: {})", model_preset_names().join(", ")),
                    )
                })
            };
            let hidden = need(m.hidden, "hidden")?;
            let heads = need(m.heads, "heads")?;
            let ffn = need(m.ffn, "ffn")?;
            ModelSpec {
                name: "custom".into(),
                layers: need(m.layers, "layers")?,
                hidden,
                heads,
                kv_heads: heads,
                head_dim: hidden.checked_div(heads).unwrap_or(0),
                ffn,
                gated_mlp: true,
                experts: 0,
                top_k: 0,
                shared_experts: 0,
                expert_ffn: ffn,
                dense_layers: 0,
                vocab: need(m.vocab, "vocab")?,
                dtype: Dtype::Bf16,
            }
        }
    };
    macro_rules! over {
        ($($f:ident),*) => { $( if let Some(v) = m.$f { spec.$f = v; } )* };
    }
    over!(
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        ffn,
        gated_mlp,
        experts,
        top_k,
        shared_experts,
        expert_ffn,
        dense_layers,
        vocab,
        dtype
    );
    for (k, v) in [
        ("model.layers", spec.layers),
        ("model.hidden", spec.hidden),
        ("model.heads", spec.heads),
        ("model.kv_heads", spec.kv_heads),
        ("model.head_dim", spec.head_dim),
        ("model.ffn", spec.ffn),
        ("model.vocab", spec.vocab),
    ] {
        c.at_least_one(k, v)?;
    }
    if spec.heads % spec.kv_heads != 0 {
        return Err(c.err(
            "model.kv_heads",
            format!(
                "is {}; must divide heads ({}) so query heads group evenly over KV heads",
                spec.kv_heads, spec.heads
            ),
        ));
    }
    if spec.experts > 0 {
        if spec.top_k == 0 || spec.top_k > spec.experts {
            return Err(c.err(
                "model.top_k",
                format!("is {}; must be in 1..={} (the number of experts)", spec.top_k, spec.experts),
            ));
        }
        c.at_least_one("model.expert_ffn", spec.expert_ffn)?;
        if spec.dense_layers > spec.layers {
            return Err(c.err(
                "model.dense_layers",
                format!("is {}; must be at most layers ({})", spec.dense_layers, spec.layers),
            ));
        }
    } else if spec.top_k > 0 || spec.shared_experts > 0 {
        return Err(c.err(
            "model.experts",
            "is 0 (dense model) but top_k or shared_experts is set; give experts > 0 for an MoE model",
        ));
    }
    Ok(spec)
}

fn check_parallel(c: &Checker, p: &ParallelConfig, m: &ModelSpec, gpus: u32) -> Result<(), InputError> {
    c.at_least_one("parallel.dp", p.dp)?;
    c.at_least_one("parallel.pp", p.pp)?;
    c.at_least_one("parallel.tp", p.tp)?;
    c.at_least_one("parallel.ep", p.ep)?;
    let need = p.dp as u64 * p.pp as u64 * p.tp as u64 * p.ep as u64;
    if need > gpus as u64 {
        return Err(c.err(
            "parallel",
            format!(
                "dp x pp x tp x ep = {} x {} x {} x {} = {need} GPUs, but the cluster has {gpus} (hardware.nodes x hardware.gpus_per_node)",
                p.dp, p.pp, p.tp, p.ep
            ),
        ));
    }
    if m.heads % p.tp != 0 {
        return Err(c.err("parallel.tp", format!("is {}; must divide the model's {} attention heads", p.tp, m.heads)));
    }
    let ffn_shard = if m.is_moe() { m.expert_ffn } else { m.ffn };
    if ffn_shard % p.tp != 0 {
        return Err(c.err("parallel.tp", format!("is {}; must divide the FFN size {ffn_shard}", p.tp)));
    }
    if p.pp > m.layers {
        return Err(c.err("parallel.pp", format!("is {}; at most one stage per layer ({} layers)", p.pp, m.layers)));
    }
    if p.ep > 1 {
        if !m.is_moe() {
            return Err(c.err(
                "parallel.ep",
                format!("is {}; expert parallelism needs an MoE model (model.experts > 0)", p.ep),
            ));
        }
        if m.experts % p.ep != 0 {
            return Err(c.err("parallel.ep", format!("is {}; must divide the {} experts", p.ep, m.experts)));
        }
    }
    if let ExpertRouting::Zipf { s } = p.expert_routing {
        c.positive("parallel.expert_routing.s", s)?;
    }
    c.non_negative("parallel.collective_overhead_us", p.collective_overhead_us)?;
    Ok(())
}

fn check_serving(c: &Checker, s: &ServingConfig) -> Result<FrameworkProfile, InputError> {
    c.at_least_one("serving.max_batch_tokens", s.max_batch_tokens)?;
    c.at_least_one("serving.max_seqs", s.max_seqs)?;
    c.at_least_one("serving.kv_block_tokens", s.kv_block_tokens)?;
    if let Some(v) = s.chunk_tokens {
        c.at_least_one("serving.chunk_tokens", v)?;
    }
    if let Some(v) = s.max_inflight_batches {
        c.at_least_one("serving.max_inflight_batches", v)?;
    }
    c.fraction("serving.gpu_memory_utilization", s.gpu_memory_utilization)?;
    framework_profile(&s.framework).ok_or_else(|| {
        c.err(
            "serving.framework",
            format!("unknown framework {:?}; known: {}", s.framework, FRAMEWORK_NAMES.join(", ")),
        )
    })
}

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

fn check_workload(c: &Checker, w: &WorkloadConfig) -> Result<Option<PathBuf>, InputError> {
    if let Some(t) = w.time_scale {
        c.positive("workload.time_scale", t)?;
    }
    if let Some(trace) = &w.trace {
        let base = c.file.parent().unwrap_or(Path::new("."));
        let path = base.join(trace);
        if !path.is_file() {
            return Err(c.err(
                "workload.trace",
                format!(
                    "file {} does not exist (trace paths are relative to the scenario file's folder)",
                    path.display()
                ),
            ));
        }
        if let Some(n) = w.requests.or(w.limit) {
            if n == 0 {
                return Err(c.err("workload.limit", "is 0; replay at least one request"));
            }
        }
        if w.prompt_tokens.is_some() || w.output_tokens.is_some() {
            return Err(c.err(
                "workload",
                "a trace gives its own lengths: remove prompt_tokens / output_tokens, or remove trace",
            ));
        }
        return Ok(Some(path));
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
    Ok(None)
}

fn check_requirements(c: &Checker, r: &Requirements) -> Result<(), InputError> {
    let pos = [
        ("requirements.throughput_tokens_per_ms_per_gpu", r.throughput_tokens_per_ms_per_gpu),
        ("requirements.ttft_p50_s", r.ttft_p50_s),
        ("requirements.ttft_p99_s", r.ttft_p99_s),
        ("requirements.tpot_p99_s", r.tpot_p99_s),
        ("requirements.overhead_fraction_max", r.overhead_fraction_max),
        ("requirements.load_imbalance_cv_max", r.load_imbalance_cv_max),
    ];
    for (k, v) in pos {
        if let Some(v) = v {
            c.positive(k, v)?;
        }
    }
    if let Some(v) = r.memory_fraction_max {
        c.fraction("requirements.memory_fraction_max", v)?;
    }
    if let Some(v) = r.gpu_utilization_min {
        c.fraction("requirements.gpu_utilization_min", v)?;
    }
    if let Some(v) = r.gpus_max {
        c.at_least_one("requirements.gpus_max", v)?;
    }
    Ok(())
}

fn check_event(c: &Checker, i: usize, e: &WhatIfEvent, nodes: u32, gpus: u32) -> Result<(), InputError> {
    let key = |k: &str| format!("events.{i}.{k}");
    let (at, until) = match *e {
        WhatIfEvent::LinkSlowdown { at_s, until_s, node, fraction, .. } => {
            c.fraction(&key("fraction"), fraction)?;
            if let Some(n) = node {
                if n >= nodes {
                    return Err(c.err(&key("node"), format!("is {n}; nodes are numbered 0..{}", nodes - 1)));
                }
            }
            (at_s, until_s)
        }
        WhatIfEvent::GpuSlowdown { at_s, until_s, gpu, fraction } => {
            c.fraction(&key("fraction"), fraction)?;
            if gpu >= gpus {
                return Err(c.err(&key("gpu"), format!("is {gpu}; GPUs are numbered 0..{}", gpus - 1)));
            }
            (at_s, until_s)
        }
        WhatIfEvent::GpuFailure { at_s, until_s, gpu } => {
            if gpu >= gpus {
                return Err(c.err(&key("gpu"), format!("is {gpu}; GPUs are numbered 0..{}", gpus - 1)));
            }
            (at_s, until_s)
        }
        WhatIfEvent::LoadChange { at_s, until_s, factor } => {
            c.positive(&key("factor"), factor)?;
            (at_s, until_s)
        }
    };
    c.non_negative(&key("at_s"), at)?;
    if let Some(u) = until {
        if !(u.is_finite() && u > at) {
            return Err(c.err(&key("until_s"), format!("is {u}; must be later than at_s ({at})")));
        }
    }
    Ok(())
}
