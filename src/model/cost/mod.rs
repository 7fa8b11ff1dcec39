//! Per-operator cost on one GPU after sharding, priced by the roofline.
//!
//! An operator with F FLOPs moving B HBM bytes takes
//! `max(F / compute_rate, B / hbm_rate) + kernels x launch`, where the rates are the
//! GPU preset's sustained figures times the framework profile's factors, and launch is
//! the GPU's launch overhead plus the framework's per-kernel cost. Shapes follow
//! design.md: TP divides query heads and FFN columns by tp (rounded up: the busiest
//! rank sets the pace), KV heads too but never below one (replicated when
//! tp > kv_heads); EP places experts on ranks, each expert TP-sharded by tp.
//!
//! GEMMs (projections, MLP, experts, router, LM head) are priced by `model::gemm` (tile
//! and wave quantization, power-capped clock, FP8/FP4 quantization traffic), attention by
//! `model::attention` (flash-attention rate by sequence length), MoE layers by
//! `model::moe`.

use crate::engine::SimTime;
use crate::hardware::spec::GpuSpec;
use crate::model::attention::AttentionKernel;
use crate::model::framework::FrameworkProfile;
use crate::model::gemm::{GemmRates, Parts};
use crate::model::mla::{mla_kernel, Mla};
use crate::model::spec::ModelSpec;

pub use crate::model::gemm::{wave_utilization, TILE_M, TILE_N_MAX, TILE_N_MIN};

/// A piece of a prompt processed in this iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefillChunk {
    /// New prompt tokens in this chunk.
    pub tokens: u32,
    /// Tokens of the same prompt already in the KV cache (the chunk's offset).
    pub context: u32,
    /// True when this chunk ends the prompt, so the sequence emits its first token.
    pub completes_prompt: bool,
}

/// What one iteration runs: decoding sequences (one token each, or 1 + drafts when
/// speculating) and prefill chunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchShape {
    /// Sequences decoding.
    pub decode_seqs: u32,
    /// Sum over decoding sequences of their context (tokens already cached; for a
    /// sliding-window layer's shape, each capped at the window).
    pub decode_context_sum: u64,
    /// Prefill chunks.
    pub prefill: Vec<PrefillChunk>,
    /// Draft tokens each decoding sequence verifies besides its last token (0 without
    /// speculative decoding): it runs 1 + this many query tokens.
    pub draft_tokens: u32,
    /// The attention window this shape is priced for (0: full attention): prefill
    /// chunks see at most this many keys per query.
    pub window_tokens: u32,
}

impl BatchShape {
    /// Tokens processed by every linear layer: decode query tokens plus prefill tokens.
    pub fn tokens(&self) -> u32 {
        self.decode_query_tokens() + self.prefill.iter().map(|c| c.tokens).sum::<u32>()
    }
    /// Query tokens of the decoding sequences: one each, plus their drafts.
    pub fn decode_query_tokens(&self) -> u32 {
        self.decode_seqs * (1 + self.draft_tokens)
    }
    /// Cached tokens chunk `c` attends to: its context, capped at the window.
    pub fn attended_context(&self, c: &PrefillChunk) -> f64 {
        if self.window_tokens > 0 {
            c.context.min(self.window_tokens) as f64
        } else {
            c.context as f64
        }
    }
    /// Sequences that emit a token this iteration (decodes plus completed prompts).
    pub fn emitting_seqs(&self) -> u32 {
        self.decode_seqs + self.prefill.iter().filter(|c| c.completes_prompt).count() as u32
    }
    /// Sequences in the batch.
    pub fn seqs(&self) -> u32 {
        self.decode_seqs + self.prefill.len() as u32
    }
}

/// Operator families, for per-kind accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// Fused QKV projection (and rotary embedding).
    Qkv,
    /// Attention kernels (KV cache write, prefill and decode attention).
    Attention,
    /// Attention output projection.
    OutProj,
    /// Dense MLP (and shared experts).
    Mlp,
    /// MoE router (gate GEMM and top-k).
    Router,
    /// Routed experts held by this rank.
    Experts,
    /// LM head (logits of emitting sequences).
    LmHead,
    /// Norms, residual adds, embedding lookup.
    Other,
}

impl OpKind {
    /// Number of kinds, for arrays indexed by `index()`.
    pub const COUNT: usize = 8;
    /// Every kind, in `index()` order.
    pub const ALL: [OpKind; OpKind::COUNT] = [
        OpKind::Qkv,
        OpKind::Attention,
        OpKind::OutProj,
        OpKind::Mlp,
        OpKind::Router,
        OpKind::Experts,
        OpKind::LmHead,
        OpKind::Other,
    ];
    /// Position in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The cost of one operator on one GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpCost {
    /// Which operator.
    pub kind: OpKind,
    /// Floating-point operations on this GPU.
    pub flops: f64,
    /// HBM bytes read and written on this GPU.
    pub bytes: f64,
    /// Kernels launched (each pays the launch overhead).
    pub kernels: u32,
    /// Duration: roofline plus launch overheads.
    pub time: SimTime,
}

/// Prices a model's operators on one GPU of a TP group.
#[derive(Clone, Debug)]
pub struct CostModel {
    pub(super) tp: u32,
    pub(super) hidden: f64,
    pub(super) ffn_rank: f64,
    pub(super) expert_ffn_rank: f64,
    pub(super) experts: f64,
    pub(super) shared_experts: f64,
    pub(super) top_k: f64,
    pub(super) vocab_rank: f64,
    pub(super) mlp_matrices: f64,
    pub(super) dtype_bytes: f64,
    pub(super) gemm: GemmRates,
    pub(super) attention: AttentionKernel,
    pub(super) launch_s: f64,
    pub(super) mla: Option<Mla>,
}

/// `ceil(n / tp)` as f64; `tp` is at least 1.
fn per_rank(n: u32, tp: u32) -> f64 {
    n.div_ceil(tp.max(1)) as f64
}

impl CostModel {
    /// A cost model for `model` on `gpu` under `framework`, with tensor parallelism `tp`
    /// (0 is treated as 1).
    pub fn new(model: &ModelSpec, gpu: &GpuSpec, framework: &FrameworkProfile, tp: u32) -> Self {
        let s = model.dtype.bytes();
        let hbm = gpu.sustained_bytes_per_s() * framework.memory_efficiency;
        let gemm = GemmRates {
            flops_per_s: gpu.gemm_boost_flops(s) * framework.gemm_efficiency,
            hbm_bytes_per_s: hbm,
            boost_window_s: gpu.gemm_boost_window_us * 1e-6,
            power_slowdown: gpu.gemm_power_slowdown(),
            sms: gpu.sm_count,
            dtype_bytes: s,
        };
        let (heads, kv, d) = (per_rank(model.heads, tp), per_rank(model.kv_heads, tp), model.head_dim as f64);
        let attention = AttentionKernel {
            heads,
            decode_qk_dim: d,
            decode_v_dim: d,
            cache_elems: 2.0 * kv * d,
            prefill_qk_dim: d,
            prefill_v_dim: d,
            prefill_kv_elems: 2.0 * kv * d,
            kv_heads: kv,
            head_dim: d,
            dtype_bytes: s,
            score_bytes: framework.attention_score_bytes,
            // FP4 models run attention in FP8 at best (no FP4 attention kernels).
            asymptote_flops_per_s: gpu.sustained_flops(s.max(1.0)) * framework.attention_efficiency,
            half_rate_keys: gpu.kernels.attention_half_rate_keys,
            hbm_bytes_per_s: hbm,
        };
        let attention = match &model.mla {
            Some(m) => mla_kernel(m, attention),
            None => attention,
        };
        CostModel {
            tp: tp.max(1),
            hidden: model.hidden as f64,
            ffn_rank: per_rank(model.ffn, tp),
            expert_ffn_rank: per_rank(model.expert_ffn, tp),
            experts: model.experts as f64,
            shared_experts: model.shared_experts as f64,
            top_k: model.top_k as f64,
            vocab_rank: per_rank(model.vocab, tp),
            mlp_matrices: if model.gated_mlp { 3.0 } else { 2.0 },
            dtype_bytes: s,
            gemm,
            attention,
            launch_s: (gpu.launch_overhead_us + framework.kernel_overhead_us) * 1e-6,
            mla: model.mla,
        }
    }

    /// The tensor-parallel degree this model was built for (at least 1).
    pub fn tp(&self) -> u32 {
        self.tp
    }

    /// An op from its parts and its kernel count (each pays the launch cost).
    pub(super) fn op_from(&self, kind: OpKind, p: Parts, kernels: u32) -> OpCost {
        let secs = p.secs + kernels as f64 * self.launch_s;
        OpCost { kind, flops: p.flops, bytes: p.bytes, kernels, time: SimTime::from_ns_f64(secs * 1e9) }
    }

    /// A memory-bound elementwise kernel moving `bytes` (its few FLOPs are not priced).
    pub(super) fn stream(&self, flops: f64, bytes: f64) -> Parts {
        Parts { flops, bytes, secs: self.gemm.stream_s(bytes) }
    }

    /// One GEMM of an `m x k` activation by a `k x n` weight on this GPU, as `kind`:
    /// 2·m·k·n FLOPs; weights, input and output bytes; one kernel (`model::gemm`). The
    /// building block of the projections, exposed for comparison with per-GEMM profiles.
    pub fn gemm(&self, kind: OpKind, m: u32, k: u32, n: u32) -> OpCost {
        self.op_from(kind, self.gemm.lone(m as f64, k as f64, n as f64), 1)
    }

    /// One layer's attention block: QKV projection, attention, output projection, and
    /// the two norms with residual adds (`Other`), for `shape` (MLA models: `model::mla`).
    pub fn attention_block(&self, shape: &BatchShape) -> Vec<OpCost> {
        if let Some(m) = &self.mla {
            return self.mla_block(m, shape);
        }
        let [qkv, out, norms] = self.attention_projections(shape.tokens());
        vec![qkv, self.attention_core(shape), out, norms]
    }

    /// True when attention is multi-head latent (MLA): its block is not split into
    /// [`Self::attention_projections`] and [`Self::attention_core`].
    pub fn has_latent_attention(&self) -> bool {
        self.mla.is_some()
    }

    /// The parts of a (non-MLA) attention block that depend on the token count only:
    /// the QKV projection, the output projection and the two norms, in that order.
    pub fn attention_projections(&self, tokens: u32) -> [OpCost; 3] {
        let (h, d, s) = (self.hidden, self.attention.head_dim, self.dtype_bytes);
        let (a, k) = (self.attention.heads, self.attention.kv_heads);
        let t = tokens as f64;
        // QKV GEMM + rotary embedding kernel (its traffic is not charged).
        let qkv = self.op_from(OpKind::Qkv, self.gemm.lone(t, h, (a + 2.0 * k) * d), 2);
        let out = self.op_from(OpKind::OutProj, self.gemm.lone(t, a * d, h), 1);
        // Two RMSNorms fused with residual adds: each reads and writes T x h twice.
        let norms = self.op_from(OpKind::Other, self.stream(8.0 * t * h, s * 4.0 * t * h), 2);
        [qkv, out, norms]
    }

    /// The attention kernels of a (non-MLA) block for `shape`: the KV-cache write plus
    /// one kernel per attention flavour present (decode, prefill).
    pub fn attention_core(&self, shape: &BatchShape) -> OpCost {
        let kernels = 1 + u32::from(shape.decode_seqs > 0) + u32::from(!shape.prefill.is_empty());
        self.op_from(OpKind::Attention, self.attention.parts(shape), kernels)
    }

    /// An MLP of `cols` columns per rank over groups of `rows[i]` tokens (one group for a
    /// dense MLP, lone GEMMs; one per expert for a grouped MoE MLP, grouped GEMMs): the up
    /// (gate+up when gated) GEMM, the activation and the down GEMM, each its own kernel.
    pub(super) fn mlp_parts(&self, rows: &[f64], cols: f64, grouped: bool) -> Parts {
        let (h, m) = (self.hidden, self.mlp_matrices);
        let gemm = |k: f64, n: f64| match (grouped, rows) {
            (false, [t]) => self.gemm.lone(*t, k, n),
            _ => self.gemm.grouped(rows, k, n),
        };
        // Grouped (MoE): tokens were quantized once before the permute (`model::moe`).
        let up =
            if grouped { self.gemm.grouped_prequantized(rows, h, (m - 1.0) * cols) } else { gemm(h, (m - 1.0) * cols) };
        let down = gemm(cols, h);
        // Gated: the activation reads gate and up (2 T cols) and writes T cols; plain:
        // applied in place of up's output (not charged). Low-precision GEMMs write BF16.
        let tokens: f64 = rows.iter().sum();
        let out_s = self.activation_bytes();
        let act = if m > 2.0 { self.stream(0.0, out_s * 3.0 * tokens * cols) } else { Parts::default() };
        up.then(act).then(down)
    }

    /// One layer's dense MLP over `tokens` tokens: gated (SwiGLU: gate+up GEMM,
    /// activation, down GEMM; 6·T·h·f FLOPs) or plain (4·T·h·f).
    pub fn dense_mlp(&self, tokens: u32) -> OpCost {
        self.op_from(OpKind::Mlp, self.mlp_parts(&[tokens as f64], self.ffn_rank, false), 3)
    }

    /// LM head for `seqs` sequences emitting a token: logits over this rank's vocabulary
    /// slice (2·h·V/tp FLOPs per sequence; weights h·V/tp read once).
    pub fn lm_head(&self, seqs: u32) -> OpCost {
        self.op_from(OpKind::LmHead, self.gemm.lone(seqs as f64, self.hidden, self.vocab_rank), 1)
    }

    /// Embedding lookup of `tokens` tokens on the first stage (a gather: T·h read and written).
    pub fn embedding(&self, tokens: u32) -> OpCost {
        let bytes = 2.0 * tokens as f64 * self.hidden * self.dtype_bytes;
        self.op_from(OpKind::Other, self.stream(0.0, bytes), 1)
    }

    /// Bytes of one TP all-reduce of the activations of `tokens` tokens: T·h·a.
    pub fn tp_allreduce_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.hidden * self.activation_bytes()
    }

    /// Bytes sent from one pipeline stage to the next for `tokens` tokens: T·h·a.
    pub fn pp_transfer_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.hidden * self.activation_bytes()
    }

    /// Bytes per element of the hidden states between layers, a: what the GEMMs write
    /// ([`crate::model::gemm::GemmRates::output_bytes`]: BF16 for FP8/FP4 models), so the
    /// row-parallel outputs a TP all-reduce sums and the residual stream a pipeline stage
    /// hands on are BF16 there.
    pub fn activation_bytes(&self) -> f64 {
        self.gemm.output_bytes()
    }

    /// Bytes one expert choice of one token moves in the EP dispatch all-to-all: its
    /// hidden state at the model's dtype, h·s (the combine: `ep_combine_bytes_per_choice`).
    pub fn ep_bytes_per_choice(&self) -> f64 {
        self.hidden * self.dtype_bytes
    }

    /// Bytes of one EP dispatch all-to-all for `tokens` tokens, summed over the group,
    /// before skew: T·top_k·h·s.
    pub fn ep_alltoall_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.top_k * self.ep_bytes_per_choice()
    }
}

#[cfg(test)]
mod tests;
