//! Multi-head latent attention (MLA), as DeepSeek-V2 (arXiv:2405.04434, Section 2.1)
//! and DeepSeek-V3 (arXiv:2412.19437, Section 2.1.1) define it and serving engines run it.
//!
//! Keys and values of all heads are compressed into one latent vector of `kv_lora_rank`
//! (r) elements per token, plus one decoupled RoPE key of `qk_rope_head_dim` shared by
//! every head; the KV cache holds only these: (r + rope) elements per token per layer
//! (DeepSeek-V2 Table 1: (d_c + d_h^R)·l, 576 values for 512 + 64). Every head needs the
//! whole latent, so tensor parallelism splits the heads but not the cache: each TP rank
//! holds the full latent (which is why DeepSeek serves attention data-parallel).
//!
//! Projections of one layer on a TP rank of a_r = heads / tp heads: q_a (h x q_lora,
//! replicated) then q_b (q_lora x a_r·(nope + rope)), or h x a_r·(nope + rope) without a
//! query LoRA; kv_a (h x (r + rope), replicated, fused with q_a as SGLang's
//! `fused_qkv_a_proj_with_mqa`); kv_b (r x a_r·(nope + v): W_UK and W_UV); o (a_r·v x h).
//!
//! Decode runs the absorbed form (DeepSeek-V2 Section 2.1.2: W_UK is absorbed into the
//! query and W_UV into the output; the FlashMLA kernel, deepseek-ai/FlashMLA README, runs
//! it): the query's nope part is mapped into the latent space by a per-head product
//! (2·nope·r FLOPs per token per head), attention then reads one (r + rope)-wide key and
//! an r-wide value (the latent itself) per cached token, 2·(r + rope) + 2·r FLOPs per
//! head per cached token, and the output latent is mapped back per head (2·r·v) before
//! o. Prefill runs the unabsorbed form, as vLLM's and SGLang's MLA backends do for
//! prompt chunks (fewer FLOPs when many queries share the keys): kv_b expands the latent
//! of every token the chunk attends to into per-head keys (nope + rope) and values (v),
//! then ordinary causal attention runs with those widths.

use crate::model::attention::AttentionKernel;
use crate::model::cost::{BatchShape, CostModel, OpCost, OpKind};
use crate::model::spec::{dense, ModelSpec};
use serde::{Deserialize, Serialize};

/// The latent-attention dimensions of a model (Hugging Face config names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mla {
    /// Query compression rank (0, the default: queries projected straight from the
    /// hidden state, as DeepSeek-V2-Lite does).
    #[serde(default)]
    pub q_lora_rank: u32,
    /// KV compression rank r: the latent cached per token.
    pub kv_lora_rank: u32,
    /// Per-head query/key width without rotary embedding.
    pub qk_nope_head_dim: u32,
    /// Width of the decoupled rotary key (one per token, shared by all heads).
    pub qk_rope_head_dim: u32,
    /// Per-head value width.
    pub v_head_dim: u32,
}

impl Mla {
    /// KV-cache elements per token per layer: r + rope, on every TP rank.
    pub fn cache_elems_per_token(&self) -> f64 {
        (self.kv_lora_rank + self.qk_rope_head_dim) as f64
    }

    /// Weight elements of one layer's attention on a rank holding `heads` heads:
    /// q_a + kv_a (replicated), q_b, kv_b, o, and the q_a / kv_a norms.
    pub fn weight_elems(&self, hidden: f64, heads: f64) -> f64 {
        let (ql, r, rope) = (self.q_lora_rank as f64, self.kv_lora_rank as f64, self.qk_rope_head_dim as f64);
        let (nope, v) = (self.qk_nope_head_dim as f64, self.v_head_dim as f64);
        let q = if ql > 0.0 { hidden * ql + ql * heads * (nope + rope) + ql } else { hidden * heads * (nope + rope) };
        q + hidden * (r + rope) + r + r * heads * (nope + v) + heads * v * hidden
    }

    /// Activation elements per token of one layer's attention on a rank of `heads`
    /// heads: the a-projections' output, the query, the expanded keys and values
    /// (prefill) and the attention output.
    pub fn activation_elems(&self, heads: f64) -> f64 {
        let (ql, r, rope) = (self.q_lora_rank as f64, self.kv_lora_rank as f64, self.qk_rope_head_dim as f64);
        let (nope, v) = (self.qk_nope_head_dim as f64, self.v_head_dim as f64);
        ql + r + rope + heads * (nope + rope) + heads * (nope + rope + v) + heads * v
    }

    /// The attention kernel widths: decode absorbed (qk r + rope, v r, cache r + rope
    /// per token), prefill unabsorbed (qk nope + rope, v v, expanded K and V of
    /// `heads`·(nope + rope + v) per context token).
    pub fn kernel_dims(&self, heads: f64) -> [f64; 6] {
        let (r, rope) = (self.kv_lora_rank as f64, self.qk_rope_head_dim as f64);
        let (nope, v) = (self.qk_nope_head_dim as f64, self.v_head_dim as f64);
        [r + rope, r, self.cache_elems_per_token(), nope + rope, v, heads * (nope + rope + v)]
    }
}

/// The `deepseek-v3` preset: MLA, 256 routed + 1 shared experts, top-8, the first 3
/// layers dense, one MTP module (sources in `spec::MODEL_PRESETS`). `kv_heads` and
/// `head_dim` are the config's (128 heads of nope + rope = 192); MLA replaces them.
pub fn deepseek_v3() -> ModelSpec {
    ModelSpec {
        head_dim: 192,
        experts: 256,
        top_k: 8,
        shared_experts: 1,
        expert_ffn: 2048,
        dense_layers: 3,
        mla: Some(Mla {
            q_lora_rank: 1536,
            kv_lora_rank: 512,
            qk_nope_head_dim: 128,
            qk_rope_head_dim: 64,
            v_head_dim: 128,
        }),
        mtp_layers: 1,
        ..dense("deepseek-v3", 61, 7168, 128, 128, 18432, 129280)
    }
}

impl CostModel {
    /// One layer's MLA block (see the module docs): fused q_a + kv_a and q_b GEMMs,
    /// the decode queries' absorption into the latent space, the prefill chunks' latent
    /// expansion by kv_b, the attention kernels, the decode outputs' mapping back, and o.
    pub(super) fn mla_block(&self, m: &Mla, shape: &BatchShape) -> Vec<OpCost> {
        let (h, s, a) = (self.hidden, self.dtype_bytes, self.attention.heads);
        let (ql, r, rope) = (m.q_lora_rank as f64, m.kv_lora_rank as f64, m.qk_rope_head_dim as f64);
        let (nope, v) = (m.qk_nope_head_dim as f64, m.v_head_dim as f64);
        let t = shape.tokens() as f64;
        let td = shape.decode_query_tokens() as f64;
        let mut kernels = 2; // the fused a-projection (or the lone q projection) and rotary
        let mut qkv = if ql > 0.0 {
            kernels += 1;
            self.gemm.lone(t, h, ql + r + rope).then(self.gemm.lone(t, ql, a * (nope + rope)))
        } else {
            self.gemm.lone(t, h, a * (nope + rope) + r + rope)
        };
        let expanded: f64 = shape.prefill.iter().map(|c| shape.attended_context(c) + c.tokens as f64).sum();
        if td > 0.0 {
            // Per-head q_nope x W_UK: priced as one GEMM of the same FLOPs and weights.
            qkv = qkv.then(self.gemm.lone(td, nope, a * r));
            kernels += 1;
        }
        if expanded > 0.0 {
            qkv = qkv.then(self.gemm.lone(expanded, r, a * (nope + v)));
            kernels += 1;
        }
        let qkv = self.op_from(OpKind::Qkv, qkv, kernels);
        let attn_kernels = 1 + u32::from(shape.decode_seqs > 0) + u32::from(!shape.prefill.is_empty());
        let attention = self.op_from(OpKind::Attention, self.attention.parts(shape), attn_kernels);
        let mut out = self.gemm.lone(t, a * v, h);
        if td > 0.0 {
            // Per-head latent x W_UV, as one GEMM of the same FLOPs and weights.
            out = self.gemm.lone(td, a * r, v).then(out);
        }
        let out = self.op_from(OpKind::OutProj, out, 1 + u32::from(td > 0.0));
        let norms = self.op_from(OpKind::Other, self.stream(8.0 * t * h, s * 4.0 * t * h), 2);
        vec![qkv, attention, out, norms]
    }
}

/// The attention kernel of an MLA model on a rank of `kernel.heads` heads: its widths
/// set from `m` (the rates and bytes per element kept).
pub fn mla_kernel(m: &Mla, kernel: AttentionKernel) -> AttentionKernel {
    let [dqk, dv, cache, pqk, pv, pkv] = m.kernel_dims(kernel.heads);
    AttentionKernel {
        decode_qk_dim: dqk,
        decode_v_dim: dv,
        cache_elems: cache,
        prefill_qk_dim: pqk,
        prefill_v_dim: pv,
        prefill_kv_elems: pkv,
        ..kernel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::spec::gpu_preset;
    use crate::model::framework::framework_profile;
    use crate::model::memory::kv_bytes_per_token;
    use crate::model::spec::{model_preset, Dtype};

    fn v3() -> ModelSpec {
        (model_preset("deepseek-v3").expect("preset").spec)()
    }

    #[test]
    fn deepseek_v3_kv_bytes_per_token_are_the_latent_times_layers() {
        // (512 + 64) x 61 layers x 2 B (bf16) = 70,272 B per token for the whole model;
        // fp8: 35,136 B. The latent is replicated on every TP rank, so TP8 holds the same.
        let mut m = v3();
        assert_eq!(kv_bytes_per_token(&m, 1, 61), 576.0 * 61.0 * 2.0);
        assert_eq!(kv_bytes_per_token(&m, 8, 61), 70_272.0);
        m.dtype = Dtype::Fp8;
        assert_eq!(kv_bytes_per_token(&m, 1, 61), 35_136.0);
        // What GQA with the config's 128 KV heads of 192 would hold: 2 x 128 x 192 = 49,152
        // values per layer, 85.3 x the latent's 576.
        assert!(49_152.0 / m.mla.expect("mla").cache_elems_per_token() > 85.0);
    }

    #[test]
    fn absorbed_decode_attention_flops_and_bytes_by_hand() {
        // One H100, TP8 (16 heads per rank), bf16; 4 sequences of 1,000 cached tokens.
        // FLOPs per head per cached token: 2 x (512 + 64) + 2 x 512 = 2,176; x 16 heads
        // x 4,000 tokens = 139,264,000. Bytes: latent 576 x 4,000 x 2 = 4,608,000, plus
        // queries and outputs 16 x (576 + 512) x 4 x 2 = 139,264: 4,747,264.
        let fw = framework_profile("optimized").expect("profile");
        let c = CostModel::new(&v3(), &(gpu_preset("h100-sxm").expect("gpu").spec)(), &fw, 8);
        let shape = BatchShape { decode_seqs: 4, decode_context_sum: 4_000, ..Default::default() };
        let p = c.attention.parts(&shape);
        assert_eq!(p.flops, 139_264_000.0);
        assert_eq!(p.bytes, 4_747_264.0);
    }

    #[test]
    fn prefill_runs_unabsorbed_with_192_wide_keys_and_128_wide_values() {
        // TP8: 16 heads. A 1,024-token prompt from an empty cache: causal key sum
        // 1,024 x 512 = 524,288; FLOPs 2 x 16 x (192 + 128) x 524,288 = 5,368,709,120.
        // kv_b expands 1,024 latents: 2 x 1,024 x 512 x 16 x (128 + 128) FLOPs =
        // 4,294,967,296 inside the Qkv op.
        let fw = framework_profile("optimized").expect("profile");
        let c = CostModel::new(&v3(), &(gpu_preset("h100-sxm").expect("gpu").spec)(), &fw, 8);
        let shape = BatchShape {
            prefill: vec![crate::model::cost::PrefillChunk { tokens: 1024, context: 0, completes_prompt: true }],
            ..Default::default()
        };
        assert_eq!(c.attention.parts(&shape).flops, 5_368_709_120.0);
        let ops = c.attention_block(&shape);
        // q_a + kv_a: 2 x 1,024 x 7,168 x (1,536 + 576); q_b: 2 x 1,024 x 1,536 x 16 x 192.
        let qa = 2.0 * 1024.0 * 7168.0 * 2112.0;
        let qb = 2.0 * 1024.0 * 1536.0 * 3072.0;
        assert_eq!(ops[0].flops, qa + qb + 4_294_967_296.0);
        // o: 2 x 1,024 x (16 x 128) x 7,168.
        assert_eq!(ops[2].flops, 2.0 * 1024.0 * 2048.0 * 7168.0);
    }

    #[test]
    fn mla_weights_per_layer_by_hand() {
        // One rank with all 128 heads: q_a 7,168 x 1,536 = 11,010,048; q_b 1,536 x 128 x
        // 192 = 37,748,736; q norm 1,536; kv_a 7,168 x 576 = 4,128,768; kv norm 512;
        // kv_b 512 x 128 x 256 = 16,777,216; o 128 x 128 x 7,168 = 117,440,512.
        // Sum 187,107,328 (DeepSeek-V3's attention is ~187 M parameters per layer).
        let m = v3().mla.expect("mla");
        assert_eq!(m.weight_elems(7168.0, 128.0), 187_107_328.0);
    }
}
