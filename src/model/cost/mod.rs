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
//! GEMMs (projections, MLP, experts, router, LM head) pay for wave quantization: see
//! [`wave_utilization`]; their compute rate is the GPU's boost-clock GEMM rate for the
//! first `gemm_boost_window_us` of each kernel and its power-capped rate after
//! (`hardware::spec::power_capped_s`).
//!
//! Decode attention is linear in the sum of contexts, so a batch is priced in
//! O(number of prefill chunks), independent of the number of decoding sequences.

use crate::engine::SimTime;
use crate::hardware::spec::{power_capped_s, GpuSpec};
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
    tp: u32,
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
    sms: u32,
    /// How long GEMMs hold the boost rate `gemm_flops_per_s`, s (`power_capped_s`).
    boost_window_s: f64,
    /// How much slower GEMMs run past the boost window.
    power_slowdown: f64,
}

/// Output-tile rows of a GEMM tile (the M side: tokens).
pub const TILE_M: u32 = 128;
/// Widest output-tile columns (the N side); narrowed down to [`TILE_N_MIN`].
pub const TILE_N_MAX: u32 = 256;
/// Narrowest output-tile columns.
pub const TILE_N_MIN: u32 = 64;

/// Fraction of the SMs' tile slots a GEMM's output tiles fill: `tiles / (waves x sms)`.
///
/// A GEMM's `m x n` output is cut into tiles, one per SM at a time; the tiles run in
/// waves of `sms`, and a last wave that is only partly full leaves SMs idle for a
/// whole tile's time (wave quantization). Hopper/Ampere GEMM libraries use 128 x 256
/// tiles for large bf16 GEMMs and switch to narrower ones (128 x 128, 128 x 64) when
/// wide tiles would give fewer than two waves, trading some per-tile efficiency for
/// idle SMs; modelled by halving the tile width while there are fewer than two waves.
/// `m_tiles` is the number of 128-row tile rows (`ceil(m / 128)`, summed over the
/// experts of a grouped GEMM). E.g. QKV at 512 tokens on TP8 H100 (n = 1280): 4 x 20
/// wide tiles, narrowed to 4 x 20 (128 x 64) = 80 tiles on 132 SMs: 0.61.
pub fn wave_utilization(m_tiles: f64, n: f64, sms: u32) -> f64 {
    let sms = sms.max(1) as f64;
    let mut tile_n = TILE_N_MAX as f64;
    let mut tiles = m_tiles * (n / tile_n).ceil();
    while tiles < 2.0 * sms && tile_n > TILE_N_MIN as f64 {
        tile_n /= 2.0;
        tiles = m_tiles * (n / tile_n).ceil();
    }
    if tiles <= 0.0 {
        return 1.0;
    }
    tiles / ((tiles / sms).ceil() * sms)
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
        let gemm = gpu.gemm_boost_flops(s) * framework.gemm_efficiency;
        CostModel {
            tp: tp.max(1),
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
            sms: gpu.sm_count,
            boost_window_s: gpu.gemm_boost_window_us * 1e-6,
            power_slowdown: gpu.gemm_power_slowdown(),
        }
    }

    /// The tensor-parallel degree this model was built for (at least 1).
    pub fn tp(&self) -> u32 {
        self.tp
    }

    /// Roofline time in seconds (without launch) at compute rate `rate`.
    fn roofline_s(&self, flops: f64, bytes: f64, rate: f64) -> f64 {
        (flops / rate).max(bytes / self.hbm_bytes_per_s)
    }

    fn op(&self, kind: OpKind, flops: f64, bytes: f64, kernels: u32, rate: f64) -> OpCost {
        let secs = self.roofline_s(flops, bytes, rate) + kernels as f64 * self.launch_s;
        OpCost { kind, flops, bytes, kernels, time: SimTime::from_ns_f64(secs * 1e9) }
    }

    /// FLOPs, bytes and roofline seconds (no launch) of one `m x k` by `k x n` GEMM
    /// whose tiles share the SMs with `m_tiles` tile rows in all (`ceil(m / 128)` for a
    /// lone GEMM; the sum over experts for a grouped one): the compute rate is scaled
    /// by the wave utilization, and slowed past the boost window (`power_capped_s`).
    fn gemm_parts(&self, m: f64, k: f64, n: f64, m_tiles: f64) -> (f64, f64, f64) {
        let flops = 2.0 * m * k * n;
        let bytes = self.dtype_bytes * (k * n + m * k + m * n);
        let rate = self.gemm_flops_per_s * wave_utilization(m_tiles, n, self.sms);
        let compute = power_capped_s(flops / rate, self.boost_window_s, self.power_slowdown);
        (flops, bytes, compute.max(bytes / self.hbm_bytes_per_s))
    }

    /// [`Self::gemm_parts`] of a lone GEMM.
    fn lone_gemm(&self, m: f64, k: f64, n: f64) -> (f64, f64, f64) {
        self.gemm_parts(m, k, n, (m / TILE_M as f64).ceil())
    }

    /// Seconds of a memory-bound elementwise kernel moving `bytes` (and `flops`).
    fn stream_s(&self, flops: f64, bytes: f64) -> f64 {
        self.roofline_s(flops, bytes, self.gemm_flops_per_s)
    }

    /// An op from its parts: FLOPs, bytes, roofline seconds and kernels.
    fn op_from(&self, kind: OpKind, flops: f64, bytes: f64, secs: f64, kernels: u32) -> OpCost {
        let secs = secs + kernels as f64 * self.launch_s;
        OpCost { kind, flops, bytes, kernels, time: SimTime::from_ns_f64(secs * 1e9) }
    }

    /// One GEMM of an `m x k` activation by a `k x n` weight on this GPU, as `kind`:
    /// 2·m·k·n FLOPs; weights, input and output bytes; one kernel, at the GEMM rate
    /// times the wave utilization. The building block of the projections, exposed for
    /// comparison with per-GEMM profiles.
    pub fn gemm(&self, kind: OpKind, m: u32, k: u32, n: u32) -> OpCost {
        let (flops, bytes, secs) = self.lone_gemm(m as f64, k as f64, n as f64);
        self.op_from(kind, flops, bytes, secs, 1)
    }

    /// One layer's attention block: QKV projection, attention, output projection, and
    /// the two norms with residual adds (`Other`), for `shape`.
    pub fn attention_block(&self, shape: &BatchShape) -> Vec<OpCost> {
        let (h, d, s) = (self.hidden, self.head_dim, self.dtype_bytes);
        let (a, k) = (self.heads_rank, self.kv_heads_rank);
        let t = shape.tokens() as f64;
        let qkv_cols = (a + 2.0 * k) * d;
        // QKV GEMM + rotary embedding kernel (its traffic is not charged).
        let (f, b, secs) = self.lone_gemm(t, h, qkv_cols);
        let qkv = self.op_from(OpKind::Qkv, f, b, secs, 2);
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
        let (f, b, secs) = self.lone_gemm(t, a * d, h);
        let out = self.op_from(OpKind::OutProj, f, b, secs, 1);
        // Two RMSNorms fused with residual adds: each reads and writes T x h twice.
        let norms = self.op(OpKind::Other, 8.0 * t * h, s * 4.0 * t * h, 2, self.gemm_flops_per_s);
        vec![qkv, attention, out, norms]
    }

    /// FLOPs, bytes and roofline seconds of an MLP of `cols` columns per rank over
    /// `tokens` tokens: the up (gate+up when gated) GEMM, the activation and the down
    /// GEMM, each its own roofline. `m_tiles` as in [`Self::gemm_parts`].
    fn mlp_parts(&self, tokens: f64, cols: f64, m_tiles: f64) -> (f64, f64, f64) {
        let (h, s, m) = (self.hidden, self.dtype_bytes, self.mlp_matrices);
        let (f_up, b_up, t_up) = self.gemm_parts(tokens, h, (m - 1.0) * cols, m_tiles);
        let (f_down, b_down, t_down) = self.gemm_parts(tokens, cols, h, m_tiles);
        // Gated: the activation reads gate and up (2 T cols) and writes T cols (its few
        // FLOPs are not counted); plain: applied in place of up's output (not charged).
        let b_act = if m > 2.0 { s * 3.0 * tokens * cols } else { 0.0 };
        (f_up + f_down, b_up + b_act + b_down, t_up + self.stream_s(0.0, b_act) + t_down)
    }

    /// One layer's dense MLP over `tokens` tokens: gated (SwiGLU: gate+up GEMM,
    /// activation, down GEMM; 6·T·h·f FLOPs) or plain (4·T·h·f).
    pub fn dense_mlp(&self, tokens: u32) -> OpCost {
        let t = tokens as f64;
        let (flops, bytes, secs) = self.mlp_parts(t, self.ffn_rank, (t / TILE_M as f64).ceil());
        self.op_from(OpKind::Mlp, flops, bytes, secs, 3)
    }

    /// One MoE layer on this rank: the router over `tokens` tokens, the shared experts
    /// (as `Mlp`, if the model has any) and the routed experts this rank holds, given
    /// the tokens each of them received. Each routed expert is its own roofline (its
    /// weights are read once if it got any token); experts with no token cost nothing.
    pub fn moe_block(&self, tokens: u32, tokens_per_local_expert: &[u32]) -> Vec<OpCost> {
        let (h, e) = (self.hidden, self.experts);
        let t = tokens as f64;
        let mut ops = Vec::with_capacity(3);
        // Gate GEMM T x h x E (replicated on every rank) + softmax/top-k kernel.
        let (f, b, secs) = self.lone_gemm(t, h, e);
        ops.push(self.op_from(OpKind::Router, f, b, secs, 2));
        if self.shared_experts > 0.0 {
            let cols = self.shared_experts * self.expert_ffn_rank;
            let (f, b, secs) = self.mlp_parts(t, cols, (t / TILE_M as f64).ceil());
            ops.push(self.op_from(OpKind::Mlp, f, b, secs, 3));
        }
        // Grouped GEMMs: gate+up, activation, down over all local experts at once, so
        // the tiles of every expert share the SMs' waves; each expert's weights are
        // read once if it got any token, and experts with no token cost nothing.
        let busy = || tokens_per_local_expert.iter().filter(|&&n| n > 0).map(|&n| n as f64);
        let m_tiles: f64 = busy().map(|n| (n / TILE_M as f64).ceil()).sum();
        let (mut flops, mut bytes, mut secs) = (0.0, 0.0, 0.0);
        for n in busy() {
            let (f, b, t) = self.mlp_parts(n, self.expert_ffn_rank, m_tiles);
            flops += f;
            bytes += b;
            secs += t;
        }
        ops.push(self.op_from(OpKind::Experts, flops, bytes, secs, 3));
        ops
    }

    /// LM head for `seqs` sequences emitting a token: logits over this rank's vocabulary
    /// slice (2·h·V/tp FLOPs per sequence; weights h·V/tp read once).
    pub fn lm_head(&self, seqs: u32) -> OpCost {
        let (f, b, secs) = self.lone_gemm(seqs as f64, self.hidden, self.vocab_rank);
        self.op_from(OpKind::LmHead, f, b, secs, 1)
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

    /// Bytes one expert choice of one token moves in an EP all-to-all (dispatch or
    /// combine): its hidden state, h·s.
    pub fn ep_bytes_per_choice(&self) -> f64 {
        self.hidden * self.dtype_bytes
    }

    /// Bytes of one EP all-to-all (dispatch or combine) for `tokens` tokens, summed
    /// over the group, before skew: T·top_k·h·s.
    pub fn ep_alltoall_bytes(&self, tokens: u32) -> f64 {
        tokens as f64 * self.top_k * self.ep_bytes_per_choice()
    }
}

#[cfg(test)]
mod tests;
