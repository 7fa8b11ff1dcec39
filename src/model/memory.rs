//! Memory per GPU: weight shard, activation workspace, and the KV cache that fits.
//!
//! Weights: attention and dense MLP divided by tp, layers by pp, routed experts by ep
//! and then tp, embedding on the first stage and LM head on the last (vocabulary
//! split by tp); with speculative decoding the MTP draft layers (each a layer plus its
//! 2h x h input projection) sit on the last stage, beside the LM head they share.
//! KV bytes per token per GPU = 2 · layers_in_stage · kv_heads_per_rank · d · s, or
//! for latent attention (r + rope) · layers · s on every TP rank (`model::mla`).
//!
//! Sliding-window layers hold at most W tokens of a sequence. The engine keeps one
//! block table per sequence, sized by its full-attention layers; the window layers'
//! KV is reserved up front for `max_seqs` sequences of W tokens (what vLLM's hybrid
//! allocator gives them at most), so a block stands for one token's KV in the full
//! layers only. A model whose every layer is windowed has blocks of zero bytes: its
//! sequences are bounded by `max_seqs` and the reserve, not by blocks.
//!
//! What is left of `gpu_memory_utilization x capacity` after weights, workspace and the
//! window reserve holds the KV cache. The binding stage (least KV room) is reported.

use crate::error::{Error, Result};
use crate::hardware::spec::{GpuSpec, GIB};
use crate::model::spec::ModelSpec;
use crate::parallel::plan::stage_layer_range;

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

/// Layers of stage `stage` when `layers` are split over `pp` stages (the plan's split).
pub fn stage_layers(layers: u32, pp: u32, stage: u32) -> u32 {
    stage_layer_range(layers, pp, stage).len() as u32
}

/// KV-cache bytes per token on one GPU for `layers_in_stage` layers that cache every
/// token: 2 (K and V) · layers · ceil(kv_heads / tp) · d · s, or with latent attention
/// layers · (kv_lora_rank + rope) · s, the latent being replicated on every TP rank.
pub fn kv_bytes_per_token(model: &ModelSpec, tp: u32, layers_in_stage: u32) -> f64 {
    if let Some(m) = &model.mla {
        return layers_in_stage as f64 * m.cache_elems_per_token() * model.dtype.bytes();
    }
    let kv_rank = model.kv_heads.div_ceil(tp.max(1)) as f64;
    2.0 * layers_in_stage as f64 * kv_rank * model.head_dim as f64 * model.dtype.bytes()
}

/// Layers of stage `stage` (of `pp`) by how they cache KV: (layers caching every token,
/// i.e. full-attention layers plus the draft layers on the last stage; sliding-window
/// layers).
pub fn stage_kv_layers(model: &ModelSpec, pp: u32, stage: u32) -> (u32, u32) {
    let range = stage_layer_range(model.layers, pp.max(1), stage);
    let all = range.len() as u32;
    let window = model.sliding_window.map_or(0, |w| w.window_layers_in(range));
    let draft = if stage + 1 == pp.max(1) { model.draft_layers() } else { 0 };
    (all - window + draft, window)
}

/// KV bytes per token of the block pool on one GPU of stage `stage`: its layers that
/// cache every token (see [`stage_kv_layers`]).
pub fn stage_kv_bytes_per_token(model: &ModelSpec, tp: u32, pp: u32, stage: u32) -> f64 {
    kv_bytes_per_token(model, tp, stage_kv_layers(model, pp, stage).0)
}

/// KV bytes of one sequence over the whole model (every layer, TP 1): what a KV
/// handoff between instances moves. Full-attention layers hold every token; a window
/// layer at most W.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequenceKv {
    full_per_token: f64,
    window_per_token: f64,
    window_tokens: u32,
}

impl SequenceKv {
    /// The sizes of `model` (its draft layers excluded: the target's KV only).
    pub fn of(model: &ModelSpec) -> Self {
        let window = model.sliding_window.map_or(0, |w| w.window_layers_in(0..model.layers));
        SequenceKv {
            full_per_token: kv_bytes_per_token(model, 1, model.layers - window),
            window_per_token: kv_bytes_per_token(model, 1, window),
            window_tokens: model.sliding_window.map_or(0, |w| w.window_tokens),
        }
    }
    /// Bytes of a sequence of `tokens` tokens.
    pub fn bytes(&self, tokens: u32) -> f64 {
        let windowed =
            if self.window_tokens > 0 { self.window_per_token * tokens.min(self.window_tokens) as f64 } else { 0.0 };
        self.full_per_token * tokens as f64 + windowed
    }
}

/// Bytes reserved on one GPU of stage `stage` for its sliding-window layers: `max_seqs`
/// sequences of W tokens each (0 without window layers).
pub fn window_kv_reserve_bytes(model: &ModelSpec, req: &MemoryRequest, stage: u32) -> f64 {
    let Some(w) = model.sliding_window else { return 0.0 };
    let window_layers = stage_kv_layers(model, req.pp, stage).1;
    req.max_seqs as f64 * w.window_tokens as f64 * kv_bytes_per_token(model, req.tp, window_layers)
}

/// Weight elements of one layer's attention projections on one rank of a TP group of
/// `tp`: QKV and output (standard), or MLA's (`model::mla`).
pub fn attention_weight_elems(model: &ModelSpec, tp: u32) -> f64 {
    let tp = tp.max(1);
    let (h, d) = (model.hidden as f64, model.head_dim as f64);
    let rank = |n: u32| n.div_ceil(tp) as f64;
    match &model.mla {
        Some(m) => m.weight_elems(h, rank(model.heads)),
        None => h * (rank(model.heads) + 2.0 * rank(model.kv_heads)) * d + rank(model.heads) * d * h,
    }
}

/// Weight bytes on one GPU of stage `stage`.
pub fn stage_weight_bytes(model: &ModelSpec, req: &MemoryRequest, stage: u32) -> f64 {
    let (tp, pp, ep) = (req.tp.max(1), req.pp.max(1), req.ep.max(1));
    let (h, s) = (model.hidden as f64, model.dtype.bytes());
    let rank = |n: u32, by: u32| n.div_ceil(by) as f64;
    let m = if model.gated_mlp { 3.0 } else { 2.0 };
    let attn = attention_weight_elems(model, tp);
    let norms = 2.0 * h;
    let dense_mlp = m * h * rank(model.ffn, tp);
    let expert = m * h * rank(model.expert_ffn, tp);
    let moe_mlp = h * model.experts as f64 + rank(model.experts, ep) * expert + model.shared_experts as f64 * expert;
    // Global index of this stage's first layer, to tell leading dense layers apart.
    let range = stage_layer_range(model.layers, pp, stage);
    let (first, n) = (range.start, range.len() as u32);
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
        // Draft (MTP) layers: a layer like the model's last, its 2h x h projection of
        // [embedding; hidden state] and its two input norms (arXiv:2412.19437 Sec. 2.2).
        let last_mlp = if model.is_moe() && model.layers > model.dense_layers { moe_mlp } else { dense_mlp };
        params += model.draft_layers() as f64 * (attn + norms + last_mlp + 2.0 * h * h + 2.0 * h);
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
    let attention = match &model.mla {
        Some(m) => m.activation_elems(heads),
        None => (heads + 2.0 * kv) * d + heads * d,
    };
    let per_token = 3.0 * h + attention + 3.0 * ffn;
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
        let kv_tok = stage_kv_bytes_per_token(model, req.tp, pp, stage);
        let window = window_kv_reserve_bytes(model, req, stage);
        let free = budget - weights - act - window;
        let block_bytes = kv_tok * block_tokens as f64;
        if free < block_bytes || free < 0.0 {
            let reserve = if window > 0.0 {
                format!(" + sliding-window KV for max_seqs sequences {:.1} GiB (lower serving.max_seqs)", gib(window))
            } else {
                String::new()
            };
            return Err(Error::Infeasible(format!(
                "{} on {} with tp={} pp={} ep={}: stage {stage} needs weights {:.1} GiB + activation workspace \
                 {:.1} GiB + one KV block {:.3} GiB{reserve}, but only {:.1} GiB is usable ({:.2} x {:.1} GiB); \
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;
    use crate::model::spec::{model_preset, Dtype};

    fn llama70() -> ModelSpec {
        let mut m = (model_preset("llama-2-70b").unwrap().spec)();
        m.dtype = Dtype::Fp16;
        m
    }
    fn req(tp: u32, pp: u32) -> MemoryRequest {
        MemoryRequest {
            tp,
            pp,
            ep: 1,
            max_batch_tokens: 8192,
            max_seqs: 256,
            kv_block_tokens: 16,
            gpu_memory_utilization: 0.9,
        }
    }

    #[test]
    fn kv_bytes_per_token_of_llama_2_70b() {
        // Whole model: 2 * 80 layers * 8 kv heads * 128 * 2 B = 327,680 B.
        let m = llama70();
        assert_eq!(kv_bytes_per_token(&m, 1, 80), 327_680.0);
        // TP8: one kv head per rank -> /8 = 40,960; TP8 PP2: 40 layers -> 20,480.
        assert_eq!(kv_bytes_per_token(&m, 8, 80), 40_960.0);
        assert_eq!(kv_bytes_per_token(&m, 8, stage_layers(80, 2, 1)), 20_480.0);
        // TP16: kv heads replicated, still one per rank: no further saving.
        assert_eq!(kv_bytes_per_token(&m, 16, 80), 40_960.0);
    }

    #[test]
    fn a_sequence_moves_every_token_of_full_layers_and_at_most_w_of_window_layers() {
        // Llama-2-70B fp16: 327,680 B per token, 1,000 tokens: 327,680,000 B.
        let m = llama70();
        assert_eq!(SequenceKv::of(&m).bytes(1000), 327_680_000.0);
        // Half its layers windowed at 256: 40 x 4,096 B x 1,000 + 40 x 4,096 B x 256.
        let w = ModelSpec {
            sliding_window: Some(crate::model::window::SlidingWindow { window_tokens: 256, full_every: 2 }),
            ..llama70()
        };
        assert_eq!(SequenceKv::of(&w).bytes(1000), 163_840_000.0 + 41_943_040.0);
    }

    #[test]
    fn stage_layers_split_remainder_to_early_stages() {
        // 80 layers on 3 stages: 27, 27, 26.
        assert_eq!((0..3).map(|s| stage_layers(80, 3, s)).collect::<Vec<_>>(), vec![27, 27, 26]);
    }

    #[test]
    fn llama_2_70b_tp8_weight_shard_by_hand() {
        // Per layer and rank: QKV 8192 * (8 + 2*1) * 128 = 10,485,760; out 8 * 128 * 8192
        // = 8,388,608; norms 16,384; MLP 3 * 8192 * 3584 = 88,080,384: 106,971,136.
        // x 80 = 8,557,690,880; embedding and LM head 8192 * 4000 each + final norm 8192:
        // 65,544,192. Total 8,623,235,072 params x 2 B = 17,246,470,144 B (16.06 GiB).
        let w = stage_weight_bytes(&llama70(), &req(8, 1), 0);
        assert_eq!(w, 17_246_470_144.0);
        // PP2: first stage has the embedding, last the LM head; both half the layers.
        let r2 = req(8, 2);
        let (s0, s1) = (stage_weight_bytes(&llama70(), &r2, 0), stage_weight_bytes(&llama70(), &r2, 1));
        assert_eq!(s0 + s1, w);
    }

    #[test]
    fn kv_capacity_is_what_is_left_in_whole_blocks() {
        let gpu = (gpu_preset("h100-sxm").unwrap().spec)();
        let plan = plan_memory(&llama70(), &gpu, &req(8, 1)).unwrap();
        // 0.9 * 80 GiB = 77,309,411,328 B usable.
        assert_eq!(plan.budget_bytes, 77_309_411_328.0);
        let free = plan.budget_bytes - plan.weight_bytes - plan.activation_bytes;
        assert_eq!(plan.kv_capacity_bytes, free);
        let block = 40_960.0 * 16.0;
        let blocks = plan.kv_capacity_blocks as f64;
        assert!(blocks * block <= free && free < (blocks + 1.0) * block);
        assert_eq!(plan.kv_capacity_tokens, plan.kv_capacity_blocks * 16);
        // ~77.3 - 17.2 - 0.6 GB = 59.4 GB / 40,960 B: about 1.45 M tokens.
        assert!((1_400_000..1_500_000).contains(&plan.kv_capacity_tokens), "{}", plan.kv_capacity_tokens);
    }

    #[test]
    fn too_big_a_model_is_infeasible_with_numbers_in_gib() {
        // TP1 on one A100: 138 GB of fp16 weights (128.5 GiB) in 72 GiB.
        let gpu = (gpu_preset("a100-80g").unwrap().spec)();
        let err = plan_memory(&llama70(), &gpu, &req(1, 1)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Infeasible(_)));
        assert!(msg.contains("weights 128.5 GiB"), "{msg}");
        assert!(msg.contains("72.0 GiB is usable"), "{msg}");
        assert!(msg.contains("raise tp or pp"), "{msg}");
    }

    #[test]
    fn experts_divide_by_ep_then_tp() {
        // Mixtral expert: 3 * 4096 * 14336 = 176,160,768 params. 8 experts: ep 4 -> 2 per
        // rank; then tp 2 halves each: per layer the expert share is 176,160,768 params.
        let m = (model_preset("mixtral-8x7b").unwrap().spec)();
        let base = MemoryRequest { ep: 1, ..req(1, 1) };
        let w1 = stage_weight_bytes(&m, &base, 0);
        let w4 = stage_weight_bytes(&m, &MemoryRequest { ep: 4, ..base }, 0);
        // ep 4 drops 6 of 8 experts per layer: 6 * 176,160,768 * 32 layers * 2 B.
        assert_eq!(w1 - w4, 6.0 * 176_160_768.0 * 32.0 * 2.0);
    }
}
