//! Physical plausibility bounds on a validated scenario.
//!
//! [`super::validate()`] checks that values make sense in kind (positive, a
//! fraction, a known preset); this module checks that they make sense in size.
//! A value far outside what any real GPU, link, model or workload has is
//! almost always a typo (`1e-12` for `1.2`), and some of them make a run spin
//! forever (a clock that advances by 0 ns) or print nonsense (MFU of 1e303 %).
//! Every range below is wide: it admits every shipped preset and anything
//! built in the next decade or two by a few orders of magnitude, and refuses
//! only what cannot be meant. Each message names the key, the value and the range.

use super::types::{ArrivalConfig, LengthDist, WhatIfEvent};
use super::validate::Setup;
use crate::error::InputError;

/// An inclusive plausible range for one kind of value, with its unit for messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Smallest plausible value.
    pub min: f64,
    /// Largest plausible value.
    pub max: f64,
    /// Unit, for messages (`TFLOP/s`).
    pub unit: &'static str,
}

/// GPU dense peak: 0.1 TFLOP/s (a 2010 laptop GPU) to 100,000 TFLOP/s (50x a B200's
/// 2,250 dense BF16 TFLOP/s, NVIDIA B200 datasheet).
pub const PEAK_TFLOPS: Range = Range { min: 0.1, max: 100_000.0, unit: "TFLOP/s" };
/// Any fraction of speed or bandwidth (efficiencies, slowdowns): at least 1e-3.
/// Below that a run's clock advances 1,000x slower than the hardware and a few
/// seconds of simulated serving take hours; no measured kernel sits that low.
pub const SPEED_FRACTION: Range = Range { min: 1e-3, max: 1.0, unit: "(fraction)" };
/// HBM capacity: 0.01 GiB to 65,536 GiB (B200 has 180 GiB; 360x that). The floor is
/// far below any GPU so tiny models can be squeezed on purpose (tests force KV
/// pressure with a 64 MiB card), yet it stops denormal nonsense.
pub const MEMORY_GIB: Range = Range { min: 0.01, max: 65_536.0, unit: "GiB" };
/// HBM bandwidth: 0.01 TB/s (a laptop's DDR) to 1,000 TB/s (125x B200's 8 TB/s).
pub const MEMORY_BANDWIDTH_TB_S: Range = Range { min: 0.01, max: 1_000.0, unit: "TB/s" };
/// Latencies (kernel launch, link step, collective launch, boost window): 0 to
/// 100,000 µs (0.1 s; measured kernel launches are 2-10 µs, NCCL steps 1-20 µs).
pub const LATENCY_US: Range = Range { min: 0.0, max: 100_000.0, unit: "µs" };
/// Link bandwidth per direction: 0.1 GB/s (1 Gb/s Ethernet is 0.125) to 100,000 GB/s
/// (100x NVLink 5's 900 GB/s per direction per GPU).
pub const LINK_BANDWIDTH_GB_S: Range = Range { min: 0.1, max: 100_000.0, unit: "GB/s" };
/// Spine oversubscription: 1 (non-blocking) to 1,000.
pub const OVERSUBSCRIPTION: Range = Range { min: 1.0, max: 1_000.0, unit: "x" };
/// GPUs in one node (NVLink domain): up to 1,024 (GB200 NVL576 has 576).
pub const GPUS_PER_NODE_MAX: u64 = 1_024;
/// NICs per node: up to 1,024 (one per GPU of the largest node).
pub const NICS_PER_NODE_MAX: u64 = 1_024;
/// GPUs in the whole cluster: up to 131,072 (the largest announced training
/// clusters hold about 100,000 to 200,000 GPUs); each GPU of the cluster costs
/// memory in every run, so a typo here must not exhaust the machine.
pub const CLUSTER_GPUS_MAX: u64 = 131_072;
/// Token lengths (prompt, output, batch, chunk): up to 16,777,216 (2^24; the longest
/// context windows offered are 10M tokens, Llama 4 Scout model card).
pub const TOKENS_MAX: u64 = 1 << 24;
/// Model dimensions (hidden, FFN, vocabulary): up to 2^24 (Llama-3.1-405B has
/// hidden 16,384, FFN 53,248, vocabulary 128,256).
pub const MODEL_DIM_MAX: u64 = 1 << 24;
/// Model counts (layers, heads, head_dim, experts, top_k): up to 65,536 (DeepSeek-V3
/// has 61 layers, 128 heads, 256 experts).
pub const MODEL_COUNT_MAX: u64 = 65_536;
/// Sequences in one batch: up to 1,048,576.
pub const SEQS_MAX: u64 = 1 << 20;
/// Batches in flight through a pipeline: up to 1,024.
pub const INFLIGHT_MAX: u64 = 1_024;
/// Requests generated or replayed: up to 100,000,000 (the Azure 2023 week-long
/// trace has about 28 million).
pub const REQUESTS_MAX: u64 = 100_000_000;
/// Closed-loop concurrency: up to 1,000,000 requests in flight.
pub const CONCURRENCY_MAX: u64 = 1_000_000;
/// Arrival rates: 1e-6 to 1e9 requests/s.
pub const RATE_PER_S: Range = Range { min: 1e-6, max: 1e9, unit: "requests/s" };
/// Gamma coefficient of variation: 1e-3 to 1,000.
pub const CV: Range = Range { min: 1e-3, max: 1_000.0, unit: "" };
/// Trace time scale: 1e-6 to 1e6.
pub const TIME_SCALE: Range = Range { min: 1e-6, max: 1e6, unit: "x" };
/// Skew exponents (zipf `s`): 1e-3 to 100.
pub const SKEW: Range = Range { min: 1e-3, max: 100.0, unit: "" };
/// Log-normal sigma: 0 to 20 (e^20 is 5e8: wider than any token length).
pub const LOG_SIGMA: Range = Range { min: 0.0, max: 20.0, unit: "" };
/// Event times and the span of generated arrivals: up to 1e9 s (32 years). The
/// simulated clock is u64 ns and overflows at 1.8e10 s.
pub const SIM_SECONDS_MAX: f64 = 1e9;
/// Load-change factors: 1e-3 to 1,000.
pub const LOAD_FACTOR: Range = Range { min: 1e-3, max: 1_000.0, unit: "x" };
/// Estimated tokens to simulate (requests x mean (prompt + output)): at most 1e10,
/// 400x the whole Azure conversation trace (19,366 requests, about 2.5e7 tokens).
/// The simulator gets through a few million tokens per wall second (measured: 5e7
/// tokens of long decodes with preemption in 10 s of CPU), so 1e10 is already an hour.
pub const WORK_TOKENS_MAX: f64 = 1e10;
/// Estimated tokens above which `validate` and `run` warn with the estimate:
/// at the measured 0.3 to 2 µs of CPU per simulated token (long decodes with
/// preemption are the slow end), 1e8 tokens is minutes of wall time.
pub const WORK_TOKENS_WARN: f64 = 1e8;
/// Longest `scenario.name` in bytes: it names `results/<name>-sweep-NNNN/` and a
/// temporary sibling, and file names are at most 255 bytes on common filesystems.
pub const NAME_BYTES_MAX: usize = 200;

/// `v` for a message: plain for everyday magnitudes, scientific for extreme ones
/// (so `1e-300` is not printed as 300 zeros).
fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e9).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

struct Bounds<'a> {
    setup: &'a Setup,
}

impl Bounds<'_> {
    fn err(&self, key: &str, msg: String) -> InputError {
        InputError::key(&self.setup.file, key, msg)
    }
    fn real(&self, key: &str, v: f64, r: Range) -> Result<(), InputError> {
        if v >= r.min && v <= r.max {
            return Ok(());
        }
        Err(self.err(key, format!("is {}; the plausible range is {} to {} {}", num(v), r.min, r.max, r.unit)))
    }
    fn count(&self, key: &str, v: u64, max: u64) -> Result<(), InputError> {
        if v <= max {
            return Ok(());
        }
        Err(self.err(key, format!("is {v}; at most {max} is plausible")))
    }
}

/// Checks every size, rate, latency, fraction and count of `setup` against its
/// plausible range, the results folder name, and the estimated work.
pub fn check(setup: &Setup) -> Result<(), InputError> {
    let b = Bounds { setup };
    check_name(&b)?;
    check_hardware(&b)?;
    check_model(&b)?;
    check_serving(&b)?;
    check_workload(&b)?;
    check_events(&b)
}

fn check_name(b: &Bounds) -> Result<(), InputError> {
    let name = &b.setup.name;
    if name.len() > NAME_BYTES_MAX {
        return Err(b.err(
            "scenario.name",
            format!("is {} bytes long; at most {NAME_BYTES_MAX} (it names the results folder)", name.len()),
        ));
    }
    if let Some(ch) = name.chars().find(|c| c.is_control()) {
        return Err(b.err(
            "scenario.name",
            format!("contains the control character {ch:?}; it names the results folder, use printable characters"),
        ));
    }
    Ok(())
}

fn check_hardware(b: &Bounds) -> Result<(), InputError> {
    let s = b.setup;
    let g = &s.gpu;
    let spec = "hardware.gpu_spec";
    b.real(&format!("{spec}.peak_tflops"), g.peak_tflops, PEAK_TFLOPS)?;
    b.real(&format!("{spec}.peak_fp8_tflops"), g.peak_fp8_tflops, PEAK_TFLOPS)?;
    for (k, v) in [
        ("compute_efficiency", g.compute_efficiency),
        ("gemm_efficiency_short", g.gemm_efficiency_short),
        ("gemm_efficiency_long", g.gemm_efficiency_long),
        ("memory_efficiency", g.memory_efficiency),
    ] {
        b.real(&format!("{spec}.{k}"), v, SPEED_FRACTION)?;
    }
    b.real(&format!("{spec}.gemm_boost_window_us"), g.gemm_boost_window_us, LATENCY_US)?;
    b.real(&format!("{spec}.memory_gib"), g.memory_gib, MEMORY_GIB)?;
    b.real(&format!("{spec}.memory_bandwidth_tb_s"), g.memory_bandwidth_tb_s, MEMORY_BANDWIDTH_TB_S)?;
    b.real(&format!("{spec}.launch_overhead_us"), g.launch_overhead_us, LATENCY_US)?;
    b.count("hardware.gpus_per_node", s.gpus_per_node.into(), GPUS_PER_NODE_MAX)?;
    let gpus = u64::from(s.nodes) * u64::from(s.gpus_per_node);
    if gpus > CLUSTER_GPUS_MAX {
        return Err(b.err(
            "hardware.nodes",
            format!(
                "is {}: {} x {} GPUs per node = {gpus} GPUs; at most {CLUSTER_GPUS_MAX} GPUs in all is plausible",
                s.nodes, s.nodes, s.gpus_per_node
            ),
        ));
    }
    // The link checks run on the resolved values, so a bandwidth_scale that pushes a
    // plausible bandwidth out of range is caught too.
    b.real("hardware.nvlink.bandwidth_gb_s", s.nvlink.bandwidth_gb_s, LINK_BANDWIDTH_GB_S)?;
    b.real("hardware.nvlink.efficiency", s.nvlink.efficiency, SPEED_FRACTION)?;
    b.real("hardware.nvlink.latency_us", s.nvlink.latency_us, LATENCY_US)?;
    b.real("hardware.network.nic_bandwidth_gb_s", s.network.nic_bandwidth_gb_s, LINK_BANDWIDTH_GB_S)?;
    b.real("hardware.network.efficiency", s.network.efficiency, SPEED_FRACTION)?;
    b.real("hardware.network.latency_us", s.network.latency_us, LATENCY_US)?;
    b.real("hardware.network.oversubscription", s.network.oversubscription, OVERSUBSCRIPTION)?;
    b.count("hardware.network.nics_per_node", s.network.nics_per_node.into(), NICS_PER_NODE_MAX)?;
    b.real("parallel.collective_overhead_us", s.parallel.collective_overhead_us, LATENCY_US)
}

fn check_model(b: &Bounds) -> Result<(), InputError> {
    let m = &b.setup.model;
    for (k, v) in
        [("model.hidden", m.hidden), ("model.ffn", m.ffn), ("model.expert_ffn", m.expert_ffn), ("model.vocab", m.vocab)]
    {
        b.count(k, v.into(), MODEL_DIM_MAX)?;
    }
    for (k, v) in [
        ("model.layers", m.layers),
        ("model.heads", m.heads),
        ("model.kv_heads", m.kv_heads),
        ("model.head_dim", m.head_dim),
        ("model.experts", m.experts),
        ("model.shared_experts", m.shared_experts),
        ("model.mtp_layers", m.mtp_layers),
    ] {
        b.count(k, v.into(), MODEL_COUNT_MAX)?;
    }
    if let Some(mla) = &m.mla {
        for (k, v) in [
            ("model.mla.q_lora_rank", mla.q_lora_rank),
            ("model.mla.kv_lora_rank", mla.kv_lora_rank),
            ("model.mla.qk_nope_head_dim", mla.qk_nope_head_dim),
            ("model.mla.qk_rope_head_dim", mla.qk_rope_head_dim),
            ("model.mla.v_head_dim", mla.v_head_dim),
        ] {
            b.count(k, v.into(), MODEL_DIM_MAX)?;
        }
    }
    if let Some(w) = &m.sliding_window {
        b.count("model.sliding_window.window_tokens", w.window_tokens.into(), TOKENS_MAX)?;
        b.count("model.sliding_window.full_every", w.full_every.into(), MODEL_COUNT_MAX)?;
    }
    if let crate::scenario::types::ExpertRouting::Zipf { s } = b.setup.parallel.expert_routing {
        b.real("parallel.expert_routing.s", s, SKEW)?;
    }
    Ok(())
}

fn check_serving(b: &Bounds) -> Result<(), InputError> {
    let s = &b.setup.serving;
    b.count("serving.max_batch_tokens", s.max_batch_tokens.into(), TOKENS_MAX)?;
    b.count("serving.max_seqs", s.max_seqs.into(), SEQS_MAX)?;
    b.count("serving.kv_block_tokens", s.kv_block_tokens.into(), TOKENS_MAX)?;
    if let Some(v) = s.chunk_tokens {
        b.count("serving.chunk_tokens", v.into(), TOKENS_MAX)?;
    }
    if let Some(v) = s.max_inflight_batches {
        b.count("serving.max_inflight_batches", v.into(), INFLIGHT_MAX)?;
    }
    b.real("serving.gpu_memory_utilization", s.gpu_memory_utilization, SPEED_FRACTION)
}

fn check_workload(b: &Bounds) -> Result<(), InputError> {
    let w = &b.setup.workload;
    if let Some(v) = w.requests {
        b.count("workload.requests", v, REQUESTS_MAX)?;
    }
    if let Some(v) = w.limit {
        b.count("workload.limit", v, REQUESTS_MAX)?;
    }
    if let Some(v) = w.time_scale {
        b.real("workload.time_scale", v, TIME_SCALE)?;
    }
    match w.arrival {
        Some(ArrivalConfig::Poisson { rate_per_s }) | Some(ArrivalConfig::Constant { rate_per_s }) => {
            b.real("workload.arrival.rate_per_s", rate_per_s, RATE_PER_S)?;
        }
        Some(ArrivalConfig::Gamma { rate_per_s, cv }) => {
            b.real("workload.arrival.rate_per_s", rate_per_s, RATE_PER_S)?;
            b.real("workload.arrival.cv", cv, CV)?;
        }
        Some(ArrivalConfig::ClosedLoop { concurrency }) => {
            b.count("workload.arrival.concurrency", concurrency.into(), CONCURRENCY_MAX)?;
        }
        Some(ArrivalConfig::AllAtOnce) | None => {}
    }
    for (key, d) in [("workload.prompt_tokens", &w.prompt_tokens), ("workload.output_tokens", &w.output_tokens)] {
        if let Some(d) = d {
            check_length(b, key, d)?;
        }
    }
    if let Some(n) = w.system_prompt_tokens {
        // Every prompt carries it, and prefix caching hashes it block by block at each
        // arrival: 2^32 - 1 tokens made one request's chain 2 GiB and the run hang.
        b.count("workload.system_prompt_tokens", n.into(), TOKENS_MAX)?;
    }
    if w.trace.is_none() {
        check_span(b)?;
        check_work(b)?;
    }
    Ok(())
}

/// Checks a length distribution's parameters.
fn check_length(b: &Bounds, key: &str, d: &LengthDist) -> Result<(), InputError> {
    let (min, max) = match *d {
        LengthDist::Fixed { value } => {
            return b.count(&format!("{key}.value"), value.into(), TOKENS_MAX);
        }
        LengthDist::Uniform { min, max } => (min, max),
        LengthDist::Normal { mean, std, min, max } => {
            b.real(&format!("{key}.mean"), mean, Range { min: 0.0, max: TOKENS_MAX as f64, unit: "tokens" })?;
            b.real(&format!("{key}.std"), std, Range { min: 0.0, max: TOKENS_MAX as f64, unit: "tokens" })?;
            (min, max)
        }
        LengthDist::Lognormal { median, sigma, min, max } => {
            b.real(&format!("{key}.median"), median, Range { min: 0.0, max: TOKENS_MAX as f64, unit: "tokens" })?;
            b.real(&format!("{key}.sigma"), sigma, LOG_SIGMA)?;
            (min, max)
        }
        LengthDist::Zipf { s, min, max } => {
            b.real(&format!("{key}.s"), s, SKEW)?;
            (min, max)
        }
    };
    b.count(&format!("{key}.min"), min.into(), TOKENS_MAX)?;
    b.count(&format!("{key}.max"), max.into(), TOKENS_MAX)
}

/// Generated arrivals must fit in the simulated clock: requests / rate at most
/// [`SIM_SECONDS_MAX`].
fn check_span(b: &Bounds) -> Result<(), InputError> {
    let w = &b.setup.workload;
    let rate = match w.arrival {
        Some(ArrivalConfig::Poisson { rate_per_s })
        | Some(ArrivalConfig::Constant { rate_per_s })
        | Some(ArrivalConfig::Gamma { rate_per_s, .. }) => rate_per_s,
        _ => return Ok(()),
    };
    let span_s = w.requests.unwrap_or(0) as f64 / rate;
    if span_s > SIM_SECONDS_MAX {
        return Err(b.err(
            "workload.arrival.rate_per_s",
            format!(
                "is {rate}: {} requests would arrive over about {span_s:.3e} s of simulated time; \
                 at most {SIM_SECONDS_MAX:e} s fit the clock",
                w.requests.unwrap_or(0)
            ),
        ));
    }
    Ok(())
}

/// Estimated tokens a generated workload simulates: requests x (system prompt +
/// midpoint of the prompt range + midpoint of the output range); `None` for a trace replay. The
/// midpoint is the mean of a uniform draw and an order-of-magnitude figure for the
/// others, which is all a refusal or a warning needs.
pub fn estimated_work_tokens(setup: &Setup) -> Option<f64> {
    let w = &setup.workload;
    if w.trace.is_some() {
        return None;
    }
    let mid = |d: &Option<LengthDist>| match d {
        Some(LengthDist::Fixed { value }) => f64::from(*value),
        Some(
            LengthDist::Uniform { min, max }
            | LengthDist::Normal { min, max, .. }
            | LengthDist::Lognormal { min, max, .. }
            | LengthDist::Zipf { min, max, .. },
        ) => (f64::from(*min) + f64::from(*max)) / 2.0,
        None => 0.0,
    };
    let system = f64::from(w.system_prompt_tokens.unwrap_or(0));
    Some(w.requests.unwrap_or(0) as f64 * (system + mid(&w.prompt_tokens) + mid(&w.output_tokens)))
}

/// A warning with the estimate when a run will be long ([`WORK_TOKENS_WARN`]).
pub fn work_warning(setup: &Setup) -> Option<String> {
    let work = estimated_work_tokens(setup)?;
    (work > WORK_TOKENS_WARN).then(|| {
        format!(
            "{}: about {work:.2e} tokens to simulate (workload.requests x mean prompt + output length); \
             expect minutes to hours of wall time",
            setup.file.display()
        )
    })
}

/// Refuses a run whose estimated work (requests x mean tokens) is absurd.
fn check_work(b: &Bounds) -> Result<(), InputError> {
    let requests = b.setup.workload.requests.unwrap_or(0) as f64;
    let work = estimated_work_tokens(b.setup).unwrap_or(0.0);
    if work > WORK_TOKENS_MAX {
        return Err(b.err(
            "workload.requests",
            format!(
                "is {requests}: about {work:.2e} tokens to simulate (requests x mean prompt + output length), \
                 more than {WORK_TOKENS_MAX:e}, which would take hours; use fewer or shorter requests"
            ),
        ));
    }
    Ok(())
}

fn check_events(b: &Bounds) -> Result<(), InputError> {
    let time = Range { min: 0.0, max: SIM_SECONDS_MAX, unit: "s" };
    for (i, e) in b.setup.events.iter().enumerate() {
        let key = |k: &str| format!("events.{i}.{k}");
        let (at_s, until_s) = match *e {
            WhatIfEvent::LinkSlowdown { at_s, until_s, fraction, .. }
            | WhatIfEvent::GpuSlowdown { at_s, until_s, fraction, .. } => {
                b.real(&key("fraction"), fraction, SPEED_FRACTION)?;
                (at_s, until_s)
            }
            WhatIfEvent::GpuFailure { at_s, until_s, .. } | WhatIfEvent::LinkFailure { at_s, until_s, .. } => {
                (at_s, until_s)
            }
            WhatIfEvent::LoadChange { at_s, until_s, factor } => {
                b.real(&key("factor"), factor, LOAD_FACTOR)?;
                (at_s, until_s)
            }
        };
        b.real(&key("at_s"), at_s, time)?;
        if let Some(u) = until_s {
            b.real(&key("until_s"), u, time)?;
        }
    }
    Ok(())
}
