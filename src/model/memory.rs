//! Memory per GPU: weight shard, activation workspace, and the KV cache that fits.
//!
//! Weights: attention and dense MLP divided by tp, layers by pp, routed experts by ep
//! and then tp, embedding on the first stage and LM head on the last (vocabulary
//! split by tp). KV bytes per token per GPU = 2 · layers_in_stage · kv_heads_per_rank
//! · d · s. What is left of `gpu_memory_utilization x capacity` after weights and
//! workspace holds the KV cache. The binding stage (least KV room) is reported.

use crate::hardware::spec::{GpuSpec, GIB};
use crate::model::spec::ModelSpec;
use crate::{Error, Result};

/// The parallel layout and serving limits that memory depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryRequest {
    /// Tensor parallelism.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// Expert parallelism (ranks the routed experts are spread over).
    pub ep: u32,
    /// Most tokens in one iteration (sizes the activation workspace).
    pub max_batch_tokens: u32,
    /// Most sequences in one iteration (sizes the logits buffer).
    pub max_seqs: u32,
    /// Tokens per paged-KV block.
    pub kv_block_tokens: u32,
    /// Fraction of GPU memory the server may use (0-1].
    pub gpu_memory_utilization: f64,
}

/// Memory of the binding GPU (the stage with the least room for KV).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPlan {
    /// Stage index of the binding GPU.
    pub stage: u32,
    /// Layers on that stage.
    pub stage_layers: u32,
    /// Weight bytes on that GPU.
    pub weight_bytes: f64,
    /// Activation workspace bytes reserved for `max_batch_tokens`.
    pub activation_bytes: f64,
    /// KV-cache bytes per token on that GPU.
    pub kv_bytes_per_token: f64,
    /// Bytes the server may use: utilization x capacity.
    pub budget_bytes: f64,
    /// Bytes left for the KV cache.
    pub kv_capacity_bytes: f64,
    /// Whole blocks of KV that fit.
    pub kv_capacity_blocks: u64,
    /// Tokens those blocks hold.
    pub kv_capacity_tokens: u64,
}

/// Layers of stage `stage` when `layers` are split over `pp` stages (earlier stages
/// take the remainder).
pub fn stage_layers(layers: u32, pp: u32, stage: u32) -> u32 {
    let pp = pp.max(1);
    layers / pp + u32::from(stage < layers % pp)
}

/// KV-cache bytes per token on one GPU of a stage with `layers_in_stage` layers:
/// 2 (K and V) · layers · ceil(kv_heads / tp) · d · s.
pub fn kv_bytes_per_token(model: &ModelSpec, tp: u32, layers_in_stage: u32) -> f64 {
    let kv_rank = model.kv_heads.div_ceil(tp.max(1)) as f64;
    2.0 * layers_in_stage as f64 * kv_rank * model.head_dim as f64 * model.dtype.bytes()
}

/// Weight bytes on one GPU of stage `stage`.
pub fn stage_weight_bytes(model: &ModelSpec, req: &MemoryRequest, stage: u32) -> f64 {
    let (tp, pp, ep) = (req.tp.max(1), req.pp.max(1), req.ep.max(1));
    let (h, d, s) = (model.hidden as f64, model.head_dim as f64, model.dtype.bytes());
    let rank = |n: u32, by: u32| n.div_ceil(by) as f64;
    let m = if model.gated_mlp { 3.0 } else { 2.0 };
    let attn = h * (rank(model.heads, tp) + 2.0 * rank(model.kv_heads, tp)) * d + rank(model.heads, tp) * d * h;
    let norms = 2.0 * h;
    let dense_mlp = m * h * rank(model.ffn, tp);
    let expert = m * h * rank(model.expert_ffn, tp);
    let moe_mlp = h * model.experts as f64
        + rank(model.experts, ep) * expert
        + model.shared_experts as f64 * expert;
    // Global index of this stage's first layer, to tell leading dense layers apart.
    let first: u32 = (0..stage).map(|st| stage_layers(model.layers, pp, st)).sum();
    let n = stage_layers(model.layers, pp, stage);
    let mut params = 0.0;
    for layer in first..first + n {
        let mlp = if model.is_moe() && layer >= model.dense_layers { moe_mlp } else { dense_mlp };
        params += attn + norms + mlp;
    }
    let vocab_slice = h * rank(model.vocab, tp);
    if stage == 0 {
        params += vocab_slice;
    }
    if stage == pp - 1 {
        params += vocab_slice + h;
    }
    params * s
}

/// Activation workspace on one GPU for `max_batch_tokens`: the largest live set of one
/// layer (residual, norm output, QKV, attention output, gate+up and activation
/// outputs) plus fp32 logits of `max_seqs` sequences on the last stage.
pub fn activation_bytes(model: &ModelSpec, req: &MemoryRequest, last_stage: bool) -> f64 {
    let tp = req.tp.max(1);
    let (h, d, s) = (model.hidden as f64, model.head_dim as f64, model.dtype.bytes());
    let heads = model.heads.div_ceil(tp) as f64;
    let kv = model.kv_heads.div_ceil(tp) as f64;
    let ffn = model.ffn.max(model.expert_ffn.saturating_mul(model.top_k.max(1))).div_ceil(tp) as f64;
    let per_token = 3.0 * h + (heads + 2.0 * kv) * d + heads * d + 3.0 * ffn;
    let logits = if last_stage { req.max_seqs as f64 * model.vocab.div_ceil(tp) as f64 * 4.0 } else { 0.0 };
    req.max_batch_tokens as f64 * per_token * s + logits
}

fn gib(b: f64) -> f64 {
    b / GIB
}

/// Plans memory on every stage and returns the binding one, or `Error::Infeasible`
/// (numbers in GiB, and what to change) when weights and workspace leave no room for
/// a single KV block.
pub fn plan_memory(model: &ModelSpec, gpu: &GpuSpec, req: &MemoryRequest) -> Result<MemoryPlan> {
    let pp = req.pp.max(1);
    let budget = req.gpu_memory_utilization * gpu.memory_bytes();
    let block_tokens = req.kv_block_tokens.max(1);
    let mut best: Option<MemoryPlan> = None;
    for stage in 0..pp {
        let layers = stage_layers(model.layers, pp, stage);
        let weights = stage_weight_bytes(model, req, stage);
        let act = activation_bytes(model, req, stage == pp - 1);
        let kv_tok = kv_bytes_per_token(model, req.tp, layers);
        let free = budget - weights - act;
        let block_bytes = kv_tok * block_tokens as f64;
        if free < block_bytes {
            return Err(Error::Infeasible(format!(
                "{} on {} with tp={} pp={} ep={}: stage {stage} needs weights {:.1} GiB + activation workspace \
                 {:.1} GiB + one KV block {:.3} GiB, but only {:.1} GiB is usable ({:.2} x {:.1} GiB); \
                 raise tp or pp (weights per GPU scale as 1/(tp*pp)), lower serving.max_batch_tokens, \
                 or raise serving.gpu_memory_utilization",
                model.name,
                gpu.name,
                req.tp,
                req.pp,
                req.ep,
                gib(weights),
                gib(act),
                gib(block_bytes),
                gib(budget),
                req.gpu_memory_utilization,
                gpu.memory_gib,
            )));
        }
        let blocks = if block_bytes > 0.0 { (free / block_bytes).floor() as u64 } else { u64::MAX };
        let plan = MemoryPlan {
            stage,
            stage_layers: layers,
            weight_bytes: weights,
            activation_bytes: act,
            kv_bytes_per_token: kv_tok,
            budget_bytes: budget,
            kv_capacity_bytes: free,
            kv_capacity_blocks: blocks,
            kv_capacity_tokens: blocks.saturating_mul(block_tokens as u64),
        };
        if best.as_ref().is_none_or(|b| plan.kv_capacity_tokens < b.kv_capacity_tokens) {
            best = Some(plan);
        }
    }
    best.ok_or_else(|| Error::Infeasible("no pipeline stage to place".into()))
}
