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
//! Decode attention is linear in the sum of contexts, so a batch is priced in
//! O(number of prefill chunks), independent of the number of decoding sequences.

use crate::engine::SimTime;
use crate::hardware::spec::GpuSpec;
use crate::model::framework::FrameworkProfile;
use crate::model::spec::ModelSpec;

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
    hidden: f64,
    head_dim: f64,
    heads_rank: f64,
    kv_heads_rank: f64,
    ffn_rank: f64,
    expert_ffn_rank: f64,
    experts: f64,
    shared_experts: f64,
    top_k: f64,
    vocab_rank: f64,
    mlp_matrices: f64,
    dtype_bytes: f64,
    gemm_flops_per_s: f64,
    attention_flops_per_s: f64,
    hbm_bytes_per_s: f64,
    launch_s: f64,
    score_bytes: f64,
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
        let gemm = gpu.sustained_flops(s) * framework.gemm_efficiency;
        CostModel {
            hidden: model.hidden as f64,
            head_dim: model.head_dim as f64,
            heads_rank: per_rank(model.heads, tp),
            kv_heads_rank: per_rank(model.kv_heads, tp),
            ffn_rank: per_rank(model.ffn, tp),
            expert_ffn_rank: per_rank(model.expert_ffn, tp),
            experts: model.experts as f64,
            shared_experts: model.shared_experts as f64,
            top_k: model.top_k as f64,
            vocab_rank: per_rank(model.vocab, tp),
            mlp_matrices: if model.gated_mlp { 3.0 } else { 2.0 },
            dtype_bytes: s,
            gemm_flops_per_s: gemm,
            attention_flops_per_s: gpu.sustained_flops(s) * framework.attention_efficiency,
            hbm_bytes_per_s: gpu.sustained_bytes_per_s() * framework.memory_efficiency,
            launch_s: (gpu.launch_overhead_us + framework.kernel_overhead_us) * 1e-6,
            score_bytes: framework.attention_score_bytes,
        }
    }

    /// Roofline time in seconds (without launch) at compute rate `rate`.
    fn roofline_s(&self, flops: f64, bytes: f64, rate: f64) -> f64 {
        (flops / rate).max(bytes / self.hbm_bytes_per_s)
    }

    fn op(&self, kind: OpKind, flops: f64, bytes: f64, kernels: u32, rate: f64) -> OpCost {
        let secs = self.roofline_s(flops, bytes, rate) + kernels as f64 * self.launch_s;
        OpCost { kind, flops, bytes, kernels, time: SimTime::from_ns_f64(secs * 1e9) }
    }

    /// One GEMM of an `m x k` activation by a `k x n` weight on this GPU, as `kind`:
    /// 2·m·k·n FLOPs; weights, input and output bytes; one kernel. The building block
    /// of the projections, exposed for comparison with per-GEMM profiles.
    pub fn gemm(&self, kind: OpKind, m: u32, k: u32, n: u32) -> OpCost {
        let (m, k, n) = (m as f64, k as f64, n as f64);
        self.op(kind, 2.0 * m * k * n, self.dtype_bytes * (k * n + m * k + m * n), 1, self.gemm_flops_per_s)
    }

    /// One layer's attention block: QKV projection, attention, output projection, and
    /// the two norms with residual adds (`Other`), for `shape`.
    pub fn attention_block(&self, shape: &BatchShape) -> Vec<OpCost> {
        let (h, d, s) = (self.hidden, self.head_dim, self.dtype_bytes);
        let (a, k) = (self.heads_rank, self.kv_heads_rank);
        let t = shape.tokens() as f64;
        let qkv_cols = (a + 2.0 * k) * d;
        // QKV GEMM + rotary embedding kernel.
        let qkv = self.op(
            OpKind::Qkv,
            2.0 * t * h * qkv_cols,
            s * (h * qkv_cols + t * h + t * qkv_cols),
            2,
            self.gemm_flops_per_s,
        );
        let (mut flops, mut bytes) = (0.0, 0.0);
        // Decode: each query token reads its whole context once: linear in the sum.
        let ctx = shape.decode_context_sum as f64;
        flops += 4.0 * a * d * ctx;
        bytes += s * (2.0 * k * d * ctx + 2.0 * a * d * shape.decode_seqs as f64);
        for c in &shape.prefill {
            let (tn, c0) = (c.tokens as f64, c.context as f64);
            // Causal: query i sees c0 + i keys, on average c0 + T/2.
            flops += 4.0 * a * d * tn * (c0 + tn / 2.0);
            bytes += s * (2.0 * k * d * (c0 + tn) + 2.0 * a * d * tn);
            bytes += self.score_bytes * a * tn * (c0 + tn);
        }
        // KV-cache write, plus one kernel per attention flavour present.
        let kernels = 1 + u32::from(shape.decode_seqs > 0) + u32::from(!shape.prefill.is_empty());
        let attention = self.op(OpKind::Attention, flops, bytes, kernels, self.attention_flops_per_s);
        let out = self.op(
            OpKind::OutProj,
            2.0 * t * a * d * h,
            s * (a * d * h + t * a * d + t * h),
            1,
            self.gemm_flops_per_s,
        );
        // Two RMSNorms fused with residual adds: each reads and writes T x h twice.
        let norms = self.op(OpKind::Other, 8.0 * t * h, s * 4.0 * t * h, 2, self.gemm_flops_per_s);
        vec![qkv, attention, out, norms]
    }

    /// FLOPs and bytes of an MLP of `cols` columns per rank over `tokens` tokens.
    fn mlp_shape(&self, tokens: f64, cols: f64) -> (f64, f64) {
        let (h, s, m) = (self.hidden, self.dtype_bytes, self.mlp_matrices);
        let flops = 2.0 * m * tokens * h * cols;
        // Weights, input and output (T x h each), and the intermediate written and
        // read: gated writes 2 x T x cols (gate+up), the activation reads it and
        // writes T x cols, down reads that: 6 T cols; plain: 4 T cols.
        let bytes = s * (m * h * cols + 2.0 * tokens * h + 2.0 * (m - 1.0) * tokens * cols);
        (flops, bytes)
    }

    /// One layer's dense MLP over `tokens` tokens: gated (SwiGLU: gate+up GEMM,
    /// activation, down GEMM; 6·T·h·f FLOPs) or plain (4·T·h·f).
    pub fn dense_mlp(&self, tokens: u32) -> OpCost {
        let (flops, bytes) = self.mlp_shape(tokens as f64, self.ffn_rank);
        self.op(OpKind::Mlp, flops, bytes, 3, self.gemm_flops_per_s)
    }

    /// One MoE layer on this rank: the router over `tokens` tokens, the shared experts
    /// (as `Mlp`, if the model has any) and the routed experts this rank holds, given
    /// the tokens each of them received. Each routed expert is its own roofline (its
    /// weights are read once if it got any token); experts with no token cost nothing.
    pub fn moe_block(&self, tokens: u32, tokens_per_local_expert: &[u32]) -> Vec<OpCost> {
        let (h, s, e) = (self.hidden, self.dtype_bytes, self.experts);
        let t = tokens as f64;
        let mut ops = Vec::with_capacity(3);
        // Gate GEMM T x h x E (replicated on every rank) + softmax/top-k kernel.
        ops.push(self.op(OpKind::Router, 2.0 * t * h * e, s * (h * e + t * h + t * e), 2, self.gemm_flops_per_s));
        if self.shared_experts > 0.0 {
            let (flops, bytes) = self.mlp_shape(t, self.shared_experts * self.expert_ffn_rank);
            ops.push(self.op(OpKind::Mlp, flops, bytes, 3, self.gemm_flops_per_s));
        }
        let (mut flops, mut bytes, mut secs) = (0.0, 0.0, 0.0);
        for &n in tokens_per_local_expert.iter().filter(|&&n| n > 0) {
            let (f, b) = self.mlp_shape(n as f64, self.expert_ffn_rank);
            flops += f;
            bytes += b;
            secs += self.roofline_s(f, b, self.gemm_flops_per_s);
        }
        // Grouped GEMMs: gate+up, activation, down over all local experts at once.
        let kernels = 3;
        secs += kernels as f64 * self.launch_s;
        ops.push(OpCost { kind: OpKind::Experts, flops, bytes, kernels, time: SimTime::from_ns_f64(secs * 1e9) });
        ops
    }

    /// LM head for `seqs` sequences emitting a token: logits over this rank's vocabulary
    /// slice (2·h·V/tp FLOPs per sequence; weights h·V/tp read once).
    pub fn lm_head(&self, seqs: u32) -> OpCost {
        let (h, v, s, n) = (self.hidden, self.vocab_rank, self.dtype_bytes, seqs as f64);
        self.op(OpKind::LmHead, 2.0 * n * h * v, s * (h * v + n * h + n * v), 1, self.gemm_flops_per_s)
    }

    /// Embedding lookup of `tokens` tokens on the first stage (a gather: T·h read and written).
    pub fn embedding(&self, tokens: u32) -> OpCost {
        let bytes = 2.0 * tokens as f64 * self.hidden * self.dtype_bytes;
        self.op(OpKind::Other, 0.0, bytes, 1, self.gemm_flops_per_s)
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
