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

/// What one iteration runs: decoding sequences (one token each) and prefill chunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchShape {
    /// Sequences decoding one token each.
    pub decode_seqs: u32,
    /// Sum over decoding sequences of their context (tokens already cached).
    pub decode_context_sum: u64,
    /// Prefill chunks.
    pub prefill: Vec<PrefillChunk>,
}

impl BatchShape {
    /// Tokens processed by every linear layer: decode tokens plus prefill tokens.
    pub fn tokens(&self) -> u32 {
        self.decode_seqs + self.prefill.iter().map(|c| c.tokens).sum::<u32>()
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
        let attention = AttentionKernel {
            heads: per_rank(model.heads, tp),
            kv_heads: per_rank(model.kv_heads, tp),
            head_dim: model.head_dim as f64,
            dtype_bytes: s,
            score_bytes: framework.attention_score_bytes,
            // FP4 models run attention in FP8 at best (no FP4 attention kernels).
            asymptote_flops_per_s: gpu.sustained_flops(s.max(1.0)) * framework.attention_efficiency,
            half_rate_keys: gpu.kernels.attention_half_rate_keys,
            hbm_bytes_per_s: hbm,
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
    /// the two norms with residual adds (`Other`), for `shape`.
    pub fn attention_block(&self, shape: &BatchShape) -> Vec<OpCost> {
        let (h, d, s) = (self.hidden, self.attention.head_dim, self.dtype_bytes);
        let (a, k) = (self.attention.heads, self.attention.kv_heads);
        let t = shape.tokens() as f64;
        // QKV GEMM + rotary embedding kernel (its traffic is not charged).
        let qkv = self.op_from(OpKind::Qkv, self.gemm.lone(t, h, (a + 2.0 * k) * d), 2);
        // KV-cache write, plus one kernel per attention flavour present.
        let kernels = 1 + u32::from(shape.decode_seqs > 0) + u32::from(!shape.prefill.is_empty());
        let attention = self.op_from(OpKind::Attention, self.attention.parts(shape), kernels);
        let out = self.op_from(OpKind::OutProj, self.gemm.lone(t, a * d, h), 1);
        // Two RMSNorms fused with residual adds: each reads and writes T x h twice.
        let norms = self.op_from(OpKind::Other, self.stream(8.0 * t * h, s * 4.0 * t * h), 2);
        vec![qkv, attention, out, norms]
    }

    /// An MLP of `cols` columns per rank over groups of `rows[i]` tokens (one group for a
    /// dense MLP, lone GEMMs; one per expert for a grouped MoE MLP, grouped GEMMs): the up
    /// (gate+up when gated) GEMM, the activation and the down GEMM, each its own kernel.
    pub(super) fn mlp_parts(&self, rows: &[f64], cols: f64, grouped: bool) -> Parts {
        let (h, s, m) = (self.hidden, self.dtype_bytes, self.mlp_matrices);
        let gemm = |k: f64, n: f64| match (grouped, rows) {
            (false, [t]) => self.gemm.lone(*t, k, n),
            _ => self.gemm.grouped(rows, k, n),
        };
        let up = gemm(h, (m - 1.0) * cols);
        let down = gemm(cols, h);
        // Gated: the activation reads gate and up (2 T cols) and writes T cols; plain:
        // applied in place of up's output (not charged). Low-precision GEMMs write BF16.
        let tokens: f64 = rows.iter().sum();
        let out_s = if self.gemm.low_precision() { crate::model::gemm::ACTIVATION_BYTES } else { s };
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

    /// Bytes of one TP all-reduce of the activations of `tokens` tokens: T·h·s.
    pub fn tp_allreduce_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.hidden * self.dtype_bytes
    }

    /// Bytes sent from one pipeline stage to the next for `tokens` tokens: T·h·s.
    pub fn pp_transfer_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.hidden * self.dtype_bytes
    }

    /// Bytes of one EP all-to-all (dispatch or combine) for `tokens` tokens, summed
    /// over the group, before skew: T·top_k·h·s.
    pub fn ep_alltoall_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.top_k * self.hidden * self.dtype_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::{gpu_preset, power_capped_s};
    use crate::model::framework::framework_profile;
    use crate::model::spec::model_preset;

    fn model(name: &str) -> ModelSpec {
        (model_preset(name).unwrap().spec)()
    }
    fn h100() -> GpuSpec {
        (gpu_preset("h100-sxm").unwrap().spec)()
    }
    fn bare(name: &str, tp: u32) -> CostModel {
        CostModel::new(&model(name), &h100(), &framework_profile("optimized").unwrap(), tp)
    }
    fn decode(seqs: u32, ctx_sum: u64) -> BatchShape {
        BatchShape { decode_seqs: seqs, decode_context_sum: ctx_sum, prefill: vec![] }
    }

    #[test]
    fn qkv_flops_of_a_small_model_by_hand() {
        // Llama-3-8B: h 4096, 32 q + 8 kv heads of 128. 10 tokens:
        // 2 * 10 * 4096 * (32 + 2*8) * 128 = 2 * 10 * 4096 * 6144 = 503,316,480.
        let ops = bare("llama-3-8b", 1).attention_block(&decode(10, 0));
        assert_eq!(ops[0].kind, OpKind::Qkv);
        assert_eq!(ops[0].flops, 503_316_480.0);
        // TP2: 16 q + 4 kv heads per rank: exactly half.
        let ops2 = bare("llama-3-8b", 2).attention_block(&decode(10, 0));
        assert_eq!(ops2[0].flops, 251_658_240.0);
    }

    #[test]
    fn tp_halves_per_gpu_mlp_flops_and_weights() {
        // Llama-2-70B gated MLP at 512 tokens: 6 * 512 * 8192 * 28672 = 721,554,505,728 FLOPs.
        let one = bare("llama-2-70b", 1).dense_mlp(512);
        let two = bare("llama-2-70b", 2).dense_mlp(512);
        assert_eq!(one.flops, 721_554_505_728.0);
        assert_eq!(two.flops * 2.0, one.flops);
        assert!(two.bytes < one.bytes && two.bytes > one.bytes / 2.0 - 1.0);
    }

    #[test]
    fn decode_is_memory_bound_and_prefill_compute_bound() {
        let c = bare("llama-2-70b", 1);
        // 1 token: weights 3 * 8192 * 28672 * 2 B = 1,409,286,144 B (+ activations) at
        // 3.35 TB/s * 0.92 = 3.082 TB/s -> 457.4 µs, + 3 kernels x 4.5 µs. FLOPs (2.8
        // GFLOP at ~800 TFLOP/s = 3.5 µs) do not bind.
        let d = c.dense_mlp(1);
        let mem_us = d.bytes / (3.35e12 * 0.92) * 1e6;
        assert!((d.time.as_ns() as f64 / 1e3 - (mem_us + 13.5)).abs() < 0.01, "{:?}", d.time);
        assert!((mem_us - 457.4).abs() < 0.1, "{mem_us}");
        // 4096 tokens: gate+up 2 * 4096 * 8192 * 57344 FLOPs in 32 x 224 = 7168 tiles
        // (55 waves of 132: 0.9873), down 2 * 4096 * 28672 * 8192 in 32 x 32 = 1024
        // tiles (8 waves: 0.9697), at the 794.5 TFLOP/s MAMF ceiling for the first 305 µs
        // of each and (794.5 / 989) / 0.745 times slower after (power cap); plus the
        // SwiGLU kernel streaming 3 * 4096 * 28672 * 2 B at 3.082 TB/s (228.6 µs) and 3
        // launches.
        let p = c.dense_mlp(4096);
        let rate = 794.5e12;
        let capped = |boost_us: f64| 305.0 + (boost_us - 305.0) * (794.5 / 989.0) / 0.745;
        let gu_us = capped(2.0 * 4096.0 * 8192.0 * 57344.0 / (rate * 7168.0 / 7260.0) * 1e6);
        let down_us = capped(2.0 * 4096.0 * 28672.0 * 8192.0 / (rate * 1024.0 / 1056.0) * 1e6);
        let act_us = 3.0 * 4096.0 * 28672.0 * 2.0 / (3.35e12 * 0.92) * 1e6;
        let want = gu_us + down_us + act_us + 13.5;
        assert!((p.time.as_ns() as f64 / 1e3 - want).abs() < 0.01, "{:?} vs {want}", p.time);
        assert!((act_us - 228.6).abs() < 0.1, "{act_us}");
    }

    #[test]
    fn power_cap_slows_only_the_part_past_the_boost_window() {
        // 200 µs at boost, window 305 µs: all at boost.
        assert_eq!(power_capped_s(200e-6, 305e-6, 1.1), 200e-6);
        // 1305 µs at boost: 305 µs at boost, the other 1000 µs 1.1x slower.
        assert!((power_capped_s(1305e-6, 305e-6, 1.1) - 1405e-6).abs() < 1e-12);
        // No window, or no slowdown: plain roofline.
        assert!((power_capped_s(1e-3, 0.0, 1.2) - 1.2e-3).abs() < 1e-15);
        assert_eq!(power_capped_s(1e-3, 305e-6, 1.0), 1e-3);
    }

    #[test]
    fn decode_attention_depends_on_context_sum_not_batch() {
        // 4 * a * d * sum(c): TP8 Llama-2-70B has 8 q heads per rank:
        // 4 * 8 * 128 * 10,000 = 40,960,000 FLOPs, whether 2 or 50 sequences.
        let c = bare("llama-2-70b", 8);
        let a = c.attention_block(&decode(2, 10_000))[1];
        let b = c.attention_block(&decode(50, 10_000))[1];
        assert_eq!(a.flops, 40_960_000.0);
        assert_eq!(a.flops, b.flops);
        // KV read: 2 * 1 kv head * 128 * 10,000 * 2 B = 5,120,000 B, plus 2 * 8 * 128 * 2 B
        // of q and output per sequence (4,096 B).
        assert_eq!(a.bytes, 5_120_000.0 + 2.0 * 4096.0);
    }

    #[test]
    fn kv_heads_are_replicated_when_tp_exceeds_them() {
        // 8 kv heads: tp 8 and tp 16 both keep one per rank, so the KV bytes read per
        // rank are equal while query FLOPs halve.
        let s = decode(1, 4096);
        let a8 = bare("llama-2-70b", 8).attention_block(&s)[1];
        let a16 = bare("llama-2-70b", 16).attention_block(&s)[1];
        assert_eq!(a8.flops, 2.0 * a16.flops);
        let kv = 2.0 * 128.0 * 4096.0 * 2.0;
        assert_eq!(a8.bytes - 2.0 * 8.0 * 128.0 * 2.0, kv);
        assert_eq!(a16.bytes - 2.0 * 4.0 * 128.0 * 2.0, kv);
    }

    #[test]
    fn causal_prefill_attention_flops_by_hand() {
        // 1024 tokens from an empty cache, TP8 Llama-2-70B (8 q heads per rank):
        // 4 * 8 * 128 * 1024 * 512 = 2,147,483,648. At offset 1024: c + T/2 = 1536, x3.
        let c = bare("llama-2-70b", 8);
        let chunk = |context| BatchShape {
            prefill: vec![PrefillChunk { tokens: 1024, context, completes_prompt: false }],
            ..Default::default()
        };
        assert_eq!(c.attention_block(&chunk(0))[1].flops, 2_147_483_648.0);
        assert_eq!(c.attention_block(&chunk(1024))[1].flops, 3.0 * 2_147_483_648.0);
    }

    #[test]
    fn unfused_attention_pays_for_materialized_scores() {
        // vllm-2023: 8 B per score; 512 tokens, 8 heads per rank: 8 * 8 * 512 * 512
        // = 16,777,216 extra bytes over the fused optimized profile.
        let m = model("llama-2-70b");
        let fused = CostModel::new(&m, &h100(), &framework_profile("optimized").unwrap(), 8);
        let unfused = CostModel::new(&m, &h100(), &framework_profile("vllm-2023").unwrap(), 8);
        let s = BatchShape {
            prefill: vec![PrefillChunk { tokens: 512, context: 0, completes_prompt: true }],
            ..Default::default()
        };
        let extra = unfused.attention_block(&s)[1].bytes - fused.attention_block(&s)[1].bytes;
        assert_eq!(extra, 16_777_216.0);
    }

    #[test]
    fn lm_head_and_message_sizes_by_hand() {
        // TP8 Llama-2-70B: 4000 vocab rows per rank; 3 sequences: 2 * 3 * 8192 * 4000
        // = 196,608,000 FLOPs. All-reduce of 10 tokens: 10 * 8192 * 2 = 163,840 B.
        let c = bare("llama-2-70b", 8);
        assert_eq!(c.lm_head(3).flops, 196_608_000.0);
        assert_eq!(c.tp_allreduce_bytes(10), 163_840.0);
        assert_eq!(c.pp_transfer_bytes(10), 163_840.0);
        // Mixtral top-2: 10 * 2 * 4096 * 2 = 163,840 B.
        assert_eq!(bare("mixtral-8x7b", 1).ep_alltoall_bytes(10), 163_840.0);
    }

    #[test]
    fn batch_shape_counts() {
        let s = BatchShape {
            decode_seqs: 5,
            decode_context_sum: 500,
            prefill: vec![
                PrefillChunk { tokens: 100, context: 0, completes_prompt: false },
                PrefillChunk { tokens: 30, context: 200, completes_prompt: true },
            ],
        };
        assert_eq!((s.tokens(), s.emitting_seqs(), s.seqs()), (135, 6, 7));
    }
}
