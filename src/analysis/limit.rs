//! The physical limit on throughput: the most tokens per ms per GPU any schedule
//! could reach on this hardware for this model and workload mix.
//!
//! Two bounds, each a pure function of the model's FLOPs and bytes per token, the
//! GPU's sustained rates and the workload's mean prompt and output lengths; the
//! smaller one binds.
//!
//! ## Compute bound (prefill is compute-bound)
//!
//! Every FLOP of a request must run on some GPU, and a GPU does at most
//! `R = peak x max_compute_efficiency` FLOP/s (the fastest any kernel runs). A request of `P` prompt and `O` output
//! tokens pushes `P + O - 1` tokens through the model (the last output token is
//! never fed back), so with the FLOP table of design.md (hidden h, q heads a, kv
//! heads k, head dim d, FFN f, plain/gated MLP of m = 2/3 matrices, E experts of
//! FFN f_e, top_k, vocabulary V, L layers):
//!
//! ```text
//! linear FLOPs per token = L (2 h (a + 2k) d + 2 a d h)                 QKV + output projection
//!                        + L_dense 2 m h f                               dense MLP layers
//!                        + L_moe (2 h E + (top_k + shared) 2 m h f_e)    router + experts
//! attention per request  = L (2 a d P^2                                  causal prefill, 4 a d P (P/2)
//!                             + 4 a d ((O-1) P + (O-1)(O-2)/2))          decode steps at context P, P+1, ...
//! LM head per request    = 2 h V O                                       one logits row per output token
//! F_req = (P + O - 1) linear + attention + LM head
//! tokens/s per GPU <= R (P + O) / F_req
//! ```
//!
//! Sharding does not reduce the total, it only spreads it, so this holds for any
//! parallel plan. Norms, softmax and activations are left out (they only add FLOPs,
//! so leaving them out keeps the bound an upper bound). Attention is convex in `P`,
//! so using the mean prompt length under-counts it for variable lengths (Jensen):
//! again the bound stays an upper bound.
//!
//! ## Memory bound (decode is memory-bound)
//!
//! A request needs `O - 1` decode steps (the first output token comes from prefill).
//! One iteration decodes at most `S = min(max_seqs, max_batch_tokens)` sequences and
//! must stream, somewhere in the replica, the weights its tokens touch: all
//! non-expert weights (attention, dense MLP, router, shared experts, LM head; the
//! embedding table is only gathered) and the routed experts the batch picks, in
//! expectation `E_touched(S) = sum_e 1 - (1 - p_e)^(top_k S)` per MoE layer (p_e from
//! the routing distribution; `E (1 - (1 - 1/E)^(top_k S))` when uniform). It must also
//! read every decoding sequence's K and V: `c x 2 L k d s` bytes at context `c`,
//! on average `c = P + (O - 2)/2` over the decode steps. So per decode token
//!
//! ```text
//! bytes per decode token = W_step(S) / S + (P + (O-2)/2) 2 L k d s
//! decode tokens/s per GPU <= B / bytes per decode token        (B = bandwidth x memory_efficiency)
//! tokens/s per GPU        <= that x (P + O) / (O - 1)
//! ```
//!
//! A replica of g GPUs has g x B of HBM bandwidth for its decode steps, so per GPU
//! the bound does not depend on the layout; replicated weights or KV heads only add
//! bytes. Because `E_touched(B)/B` falls as B grows, batches smaller than `S` read
//! more per token, never less: the bound holds for any batching within `max_seqs`.
//! It does depend on `max_seqs`: a larger batch shares the weights over more tokens.

use crate::error::{Error, InputError, Result};
use crate::hardware::spec::GpuSpec;
use crate::model::attention::pair_flops;
use crate::model::memory::{attention_weight_elems, kv_bytes_per_token, stage_kv_layers};
use crate::model::spec::ModelSpec;
use crate::model::window::causal_key_sum;
use crate::scenario::types::{ExpertRouting, LengthDist, WorkloadConfig};
use crate::scenario::Setup;
use crate::workload::trace::load_trace;
use serde::Serialize;

/// Attention FLOPs of one request of `p` prompt and `o` output tokens over every layer:
/// causal prefill (p²/2 pairs) and decode at contexts p, p + 1, ... ((o - 1) p + (o -
/// 1)(o - 2)/2 pairs). A sliding-window layer counts its pairs with keys capped at W
/// (decode at the mean context capped at W: a slight over-count near W, by Jensen).
fn attention_flops_per_request(model: &ModelSpec, p: f64, o: f64, prefill_pair: f64, decode_pair: f64) -> f64 {
    let layers = model.layers as f64;
    let prefill_attn = prefill_pair * p * p / 2.0;
    let decode_attn = decode_pair * ((o - 1.0) * p + (o - 1.0) * (o - 2.0) / 2.0);
    let Some(w) = model.sliding_window else { return layers * (prefill_attn + decode_attn) };
    let window = w.window_layers_in(0..model.layers) as f64;
    let capped_prefill = prefill_pair * causal_key_sum(p, 0.0, w.window_tokens);
    let capped_decode = decode_pair * (o - 1.0) * (p + (o - 2.0) / 2.0).min(w.window_tokens as f64);
    (layers - window) * (prefill_attn + decode_attn) + window * (capped_prefill + capped_decode)
}

/// KV bytes one decode step of a sequence at context `context` reads, whole model:
/// every token of the layers caching them all, at most W of each window layer's.
fn kv_read_per_decode_step(model: &ModelSpec, context: f64) -> f64 {
    let (full, window) = stage_kv_layers(model, 1, 0);
    let capped = model.sliding_window.map_or(0.0, |w| context.min(w.window_tokens as f64));
    if window == 0 {
        return context * kv_bytes_per_token(model, 1, model.layers);
    }
    context * kv_bytes_per_token(model, 1, full) + capped * kv_bytes_per_token(model, 1, window)
}

/// Mean lengths of the requests of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WorkloadMix {
    /// Mean prompt tokens per request.
    pub mean_prompt_tokens: f64,
    /// Mean output tokens per request (>= 1).
    pub mean_output_tokens: f64,
}

/// Which bound is the smaller one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// Sustained FLOP/s (prefill-heavy mixes).
    Compute,
    /// Sustained HBM bandwidth (decode-heavy mixes, small batches).
    Memory,
}

/// The throughput limit and the figures it was worked out from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThroughputLimit {
    /// The workload mix used.
    pub mix: WorkloadMix,
    /// Sequences decoded per iteration at most (`S`).
    pub seqs_per_step: u32,
    /// Model FLOPs per counted (prompt + output) token, averaged over a request.
    pub flops_per_token: f64,
    /// Sustained FLOP/s of one GPU (peak x compute efficiency).
    pub sustained_flops_per_s: f64,
    /// Weight bytes one full decode step streams (non-expert weights + expected touched experts).
    pub weight_bytes_per_step: f64,
    /// KV bytes one token of context takes, whole model.
    pub kv_bytes_per_context_token: f64,
    /// HBM bytes per decode token: weights shared over `S` sequences, plus the sequence's KV.
    pub bytes_per_decode_token: f64,
    /// Decode tokens per counted token: (O - 1) / (P + O).
    pub decode_share: f64,
    /// Sustained HBM bytes/s of one GPU (bandwidth x memory efficiency).
    pub sustained_bytes_per_s: f64,
    /// Compute bound, tokens per ms per GPU.
    pub compute_tokens_per_ms_per_gpu: f64,
    /// Memory bound, tokens per ms per GPU (infinite when no decode steps).
    pub memory_tokens_per_ms_per_gpu: f64,
    /// The smaller of the two.
    pub tokens_per_ms_per_gpu: f64,
    /// Which one binds.
    pub binding: Binding,
}

impl ThroughputLimit {
    /// Sustained FLOP/s per GPU a target of `tokens_per_ms_per_gpu` would need.
    pub fn flops_needed(&self, tokens_per_ms_per_gpu: f64) -> f64 {
        tokens_per_ms_per_gpu * 1e3 * self.flops_per_token
    }
    /// Sustained HBM bytes/s per GPU a target of `tokens_per_ms_per_gpu` would need.
    pub fn bytes_needed(&self, tokens_per_ms_per_gpu: f64) -> f64 {
        tokens_per_ms_per_gpu * 1e3 * self.decode_share * self.bytes_per_decode_token
    }
    /// True when `target` (tokens/ms/GPU) is above the limit.
    pub fn is_impossible(&self, target: f64) -> bool {
        target > self.tokens_per_ms_per_gpu
    }
    /// The compute arithmetic for `target` tokens/ms/GPU, e.g.
    /// "needs 1,400 TFLOP/s per GPU (...); the GPU sustains 240".
    pub fn compute_arithmetic(&self, target: f64) -> String {
        // Four significant figures: 35.00, 3.664, 0.1234.
        let decimals = (3 - target.abs().max(1e-9).log10().floor() as i32).clamp(0, 6) as usize;
        format!(
            "needs {} TFLOP/s per GPU ({:.2} GFLOP per token x {:.*} tokens/ms); the GPU sustains {}",
            thousands(self.flops_needed(target) / 1e12),
            self.flops_per_token / 1e9,
            decimals,
            target,
            thousands(self.sustained_flops_per_s / 1e12)
        )
    }
    /// The HBM arithmetic for `target` tokens/ms/GPU.
    pub fn memory_arithmetic(&self, target: f64) -> String {
        format!(
            "needs {:.2} TB/s of HBM per GPU ({:.3} GB per decode token at {} sequences per step, {:.1} % of tokens decoded); the GPU sustains {:.2}",
            self.bytes_needed(target) / 1e12,
            self.bytes_per_decode_token / 1e9,
            self.seqs_per_step,
            self.decode_share * 100.0,
            self.sustained_bytes_per_s / 1e12
        )
    }
    /// Both, the binding one first, labelled: `["memory: needs ...", "compute: needs ..."]`.
    pub fn arithmetic(&self, target: f64) -> [String; 2] {
        let c = format!("compute: {}", self.compute_arithmetic(target));
        let m = format!("memory: {}", self.memory_arithmetic(target));
        match self.binding {
            Binding::Compute => [c, m],
            Binding::Memory => [m, c],
        }
    }
    /// The arithmetic behind the verdict for `target`, in one line.
    pub fn explain(&self, target: f64) -> String {
        let [a, b] = self.arithmetic(target);
        format!("{a}; {b}")
    }
}

/// `x` rounded to a whole number with thousands separators (1400.2 -> "1,400").
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 {
        out.insert(0, '-');
    }
    out
}

/// The throughput limit of `model` on `gpu` for requests of `mix`, with at most
/// `seqs_per_step` sequences decoded per iteration and experts picked by `routing`.
/// See the module docs for the derivation.
pub fn throughput_limit(
    model: &ModelSpec,
    gpu: &GpuSpec,
    mix: WorkloadMix,
    seqs_per_step: u32,
    routing: &ExpertRouting,
) -> ThroughputLimit {
    let h = model.hidden as f64;
    let s = model.dtype.bytes();
    let m = if model.gated_mlp { 3.0 } else { 2.0 };
    let layers = model.layers as f64;
    let (dense_layers, moe_layers) = if model.is_moe() {
        let dl = model.dense_layers.min(model.layers) as f64;
        (dl, layers - dl)
    } else {
        (layers, 0.0)
    };
    let (e, fe, top_k, shared) =
        (model.experts as f64, model.expert_ffn as f64, model.top_k as f64, model.shared_experts as f64);
    let vocab = model.vocab as f64;
    let (p, o) = (mix.mean_prompt_tokens.max(0.0), mix.mean_output_tokens.max(1.0));

    // Compute: FLOPs of one request, then per counted token.
    let attn_weights = attention_weight_elems(model, 1);
    let attn_proj = 2.0 * attn_weights;
    let dense_mlp = 2.0 * m * h * model.ffn as f64;
    let moe = 2.0 * h * e + (top_k + shared) * 2.0 * m * h * fe;
    let linear_per_token = layers * attn_proj + dense_layers * dense_mlp + moe_layers * moe;
    let (prefill_pair, decode_pair) = pair_flops(model);
    let attention = attention_flops_per_request(model, p, o, prefill_pair, decode_pair);
    let lm_head = 2.0 * h * vocab * o;
    let flops_req = (p + o - 1.0) * linear_per_token + attention + lm_head;
    let flops_per_token = flops_req / (p + o);
    // The fastest rate any kernel reaches (short GEMMs at boost clock on power-capped
    // parts), so the bound holds for every schedule.
    let sustained_flops_per_s = gpu.peak_flops(s) * gpu.max_compute_efficiency();
    let compute = sustained_flops_per_s / flops_per_token / 1e3;

    // Memory: bytes per decode token.
    let seqs = seqs_per_step.max(1);
    let touched = expected_touched_experts(model.experts, model.top_k, seqs, routing);
    let non_expert = layers * attn_weights
        + dense_layers * m * h * model.ffn as f64
        + moe_layers * (h * e + shared * m * h * fe)
        + h * vocab;
    let weight_bytes_per_step = s * (non_expert + moe_layers * touched * m * h * fe);
    let kv_bytes_per_context_token = kv_bytes_per_token(model, 1, model.layers);
    let mean_context = p + (o - 2.0) / 2.0;
    let mut bytes_per_decode_token =
        weight_bytes_per_step / seqs as f64 + kv_read_per_decode_step(model, mean_context.max(0.0));
    // Speculative decoding reads the weights and KV once for up to 1 + d tokens.
    bytes_per_decode_token /= 1.0 + model.draft_tokens() as f64;
    let decode_share = (o - 1.0) / (p + o);
    let sustained_bytes_per_s = gpu.sustained_bytes_per_s();
    let memory = if decode_share > 0.0 {
        sustained_bytes_per_s / bytes_per_decode_token / decode_share / 1e3
    } else {
        f64::INFINITY
    };
    let (tokens_per_ms_per_gpu, binding) =
        if compute <= memory { (compute, Binding::Compute) } else { (memory, Binding::Memory) };
    ThroughputLimit {
        mix,
        seqs_per_step: seqs,
        flops_per_token,
        sustained_flops_per_s,
        weight_bytes_per_step,
        kv_bytes_per_context_token,
        bytes_per_decode_token,
        decode_share,
        sustained_bytes_per_s,
        compute_tokens_per_ms_per_gpu: compute,
        memory_tokens_per_ms_per_gpu: memory,
        tokens_per_ms_per_gpu,
        binding,
    }
}

/// Expected distinct routed experts (of `experts`) that a batch of `tokens` tokens,
/// each picking `top_k`, touches in one layer: `sum_e 1 - (1 - p_e)^(top_k tokens)`
/// (picks treated as independent draws). 0 for a dense model.
pub fn expected_touched_experts(experts: u32, top_k: u32, tokens: u32, routing: &ExpertRouting) -> f64 {
    if experts == 0 {
        return 0.0;
    }
    let picks = top_k as f64 * tokens as f64;
    let weights: Vec<f64> = match routing {
        ExpertRouting::Uniform => vec![1.0; experts as usize],
        ExpertRouting::Zipf { s } => (1..=experts).map(|r| (r as f64).powf(-s)).collect(),
    };
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| 1.0 - (1.0 - w / total).powf(picks)).sum()
}

/// The workload mix of a validated scenario: the length distributions' means, or
/// the trace's mean lengths (up to its request limit).
pub fn workload_mix(setup: &Setup) -> Result<WorkloadMix> {
    mix_of(&setup.workload, setup.trace_path.as_deref(), &setup.file)
}

fn mix_of(w: &WorkloadConfig, trace: Option<&std::path::Path>, file: &std::path::Path) -> Result<WorkloadMix> {
    if let Some(path) = trace {
        let limit = match (w.limit, w.requests) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let t = load_trace(path, w.trace_format, limit)?;
        if t.rows.is_empty() {
            return Err(Error::Input(InputError::file(path, "the trace has no requests")));
        }
        let n = t.rows.len() as f64;
        let p = t.rows.iter().map(|r| r.prompt_tokens as f64).sum::<f64>() / n;
        let o = t.rows.iter().map(|r| r.output_tokens.max(1) as f64).sum::<f64>() / n;
        return Ok(WorkloadMix { mean_prompt_tokens: p, mean_output_tokens: o });
    }
    let need = |d: &Option<LengthDist>, key: &str| {
        d.as_ref().map(mean_length).ok_or_else(|| Error::Input(InputError::key(file, key, "is missing")))
    };
    Ok(WorkloadMix {
        mean_prompt_tokens: need(&w.prompt_tokens, "workload.prompt_tokens")?,
        mean_output_tokens: need(&w.output_tokens, "workload.output_tokens")?.max(1.0),
    })
}

/// Mean of a length distribution as the generator draws it (rounded to whole tokens
/// and clamped to `[min, max]`): exact for fixed, uniform and zipf; for normal and
/// log-normal, summed over every whole length with the normal CDF (error < 1e-6 of
/// a token per unit of probability).
pub fn mean_length(d: &LengthDist) -> f64 {
    match *d {
        LengthDist::Fixed { value } => value as f64,
        LengthDist::Uniform { min, max } => (min as f64 + max as f64) / 2.0,
        LengthDist::Zipf { s, min, max } => {
            let (mut num, mut den) = (0.0, 0.0);
            for k in 1..=(max.saturating_sub(min) as u64 + 1) {
                let w = (k as f64).powf(-s);
                num += w * (min as f64 + k as f64 - 1.0);
                den += w;
            }
            num / den
        }
        LengthDist::Normal { mean, std, min, max } => {
            rounded_clamped_mean(min, max, |x| if std > 0.0 { phi((x - mean) / std) } else { step(x - mean) })
        }
        LengthDist::Lognormal { median, sigma, min, max } => rounded_clamped_mean(min, max, |x| {
            if x <= 0.0 {
                0.0
            } else if sigma > 0.0 {
                phi((x.ln() - median.ln()) / sigma)
            } else {
                step(x - median)
            }
        }),
    }
}

fn step(x: f64) -> f64 {
    if x >= 0.0 {
        1.0
    } else {
        0.0
    }
}

/// E[clamp(round(X), min, max)] for X with CDF `cdf`.
fn rounded_clamped_mean(min: u32, max: u32, cdf: impl Fn(f64) -> f64) -> f64 {
    let (lo, hi) = (min as f64, max as f64);
    if min >= max {
        return lo;
    }
    // Mass at min: X < min + 0.5; at max: X >= max - 0.5; in between: one whole length each.
    let mut mean = lo * cdf(lo + 0.5) + hi * (1.0 - cdf(hi - 0.5));
    for n in (min + 1)..max {
        let n = n as f64;
        mean += n * (cdf(n + 0.5) - cdf(n - 0.5));
    }
    mean
}

/// Standard normal CDF, via erfc (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_of_length_distributions() {
        assert_eq!(mean_length(&LengthDist::Fixed { value: 256 }), 256.0);
        assert_eq!(mean_length(&LengthDist::Uniform { min: 128, max: 10240 }), 5184.0);
        // A normal far from its clamps keeps its mean.
        let n = mean_length(&LengthDist::Normal { mean: 500.0, std: 50.0, min: 1, max: 131_072 });
        assert!((n - 500.0).abs() < 1e-3, "{n}");
        // Clamped at 500 from below: E[max(X, 500)] = 500 + std x pdf(0)
        // = 500 + 100 x 0.39894 = 539.9 (continuous approximation).
        let c = mean_length(&LengthDist::Normal { mean: 500.0, std: 100.0, min: 500, max: 131_072 });
        assert!((c - 539.9).abs() < 0.5, "{c}");
        // Log-normal median 1000, sigma 0.5: mean e^(ln 1000 + 0.125) = 1133.1.
        let l = mean_length(&LengthDist::Lognormal { median: 1000.0, sigma: 0.5, min: 1, max: 131_072 });
        assert!((l - 1133.1).abs() < 0.5, "{l}");
        // Zipf s = 1 over {10, 11}: weights 1 and 1/2: (10 + 11/2) / 1.5 = 10.333.
        let z = mean_length(&LengthDist::Zipf { s: 1.0, min: 10, max: 11 });
        assert!((z - 31.0 / 3.0).abs() < 1e-12, "{z}");
    }

    #[test]
    fn touched_experts() {
        // One token, top-2 of 8 uniform: 8 (1 - (7/8)^2) = 8 x 15/64 = 1.875 (independent draws).
        let t = expected_touched_experts(8, 2, 1, &ExpertRouting::Uniform);
        assert!((t - 1.875).abs() < 1e-12, "{t}");
        assert_eq!(expected_touched_experts(0, 0, 10, &ExpertRouting::Uniform), 0.0);
        // Skewed routing touches fewer.
        assert!(
            expected_touched_experts(64, 2, 16, &ExpertRouting::Zipf { s: 1.2 })
                < expected_touched_experts(64, 2, 16, &ExpertRouting::Uniform)
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1400.2), "1,400");
        assert_eq!(thousands(240.0), "240");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
