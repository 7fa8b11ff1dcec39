//! Attention kernels priced as flash attention runs them.
//!
//! Prefill attention is compute-bound, and a flash-attention kernel's rate depends on the
//! number of keys each query sees: short sequences leave its tiles and pipeline half
//! empty. Measured FlashAttention-3 forward rates on H100 (head dim 128; 430, 517, 566,
//! 590, 614, 621 TFLOP/s at 512, 1k, 2k, 4k, 8k, 16k tokens; pytorch/benchmark commit
//! ff65cb67, in data/validation/kernels_and_links.csv) follow `R x L / (L + L_half)` with
//! R = 630 TFLOP/s and L_half = 239 keys within 1.3 %; the GPU preset holds R (as a
//! fraction of peak, `compute_efficiency`) and L_half (`attention_half_rate_keys`).
//! Head dimension 128 is what every shipped model uses; FA3's head-dim-256 curve
//! ramps more slowly, which this does not model.
//!
//! Decode attention reads each sequence's KV cache once: memory-bound for standard
//! attention, linear in the sum of contexts, so a batch is priced in O(number of prefill
//! chunks). Latent attention (`model::mla`) does ~4x the FLOPs per cached byte of
//! standard attention with head dim 128 and runs nearer the compute roof; the same
//! roofline prices both.

use crate::model::cost::BatchShape;
use crate::model::gemm::Parts;
use crate::model::spec::ModelSpec;
use crate::model::window::causal_key_sum;

/// Flash attention's rate, FLOP/s, when each query sees `keys` keys: `asymptote x keys /
/// (keys + half_keys)`; the asymptote itself when `half_keys` is 0.
pub fn flash_rate(asymptote: f64, half_keys: f64, keys: f64) -> f64 {
    if half_keys <= 0.0 {
        return asymptote;
    }
    asymptote * keys.max(1.0) / (keys.max(1.0) + half_keys)
}

/// FLOPs per query-key pair of one layer with all its heads, in prefill and in decode:
/// 2·a·(qk + v), i.e. 4·a·d for standard attention; for MLA the unabsorbed prefill
/// and absorbed decode widths (`model::mla`).
pub fn pair_flops(model: &ModelSpec) -> (f64, f64) {
    let a = model.heads as f64;
    match &model.mla {
        Some(m) => {
            let [dqk, dv, _, pqk, pv, _] = m.kernel_dims(a);
            (2.0 * a * (pqk + pv), 2.0 * a * (dqk + dv))
        }
        None => {
            let d = model.head_dim as f64;
            (4.0 * a * d, 4.0 * a * d)
        }
    }
}

/// The attention heads of one rank, the widths their kernels work on, and the rates
/// they run at. Standard (grouped-query) attention has every width the head dim d and
/// caches 2·k·d elements per token; multi-head latent attention (`model::mla`) runs its
/// decode kernel on the latent and its prefill on expanded keys and values.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionKernel {
    /// Query heads on this rank.
    pub heads: f64,
    /// KV heads on this rank (standard attention's projections).
    pub kv_heads: f64,
    /// Head dimension (standard attention's projections).
    pub head_dim: f64,
    /// Per head and cached token in decode: the query-key product's width.
    pub decode_qk_dim: f64,
    /// Per head and cached token in decode: the value width.
    pub decode_v_dim: f64,
    /// KV-cache elements decode reads per cached token on this rank.
    pub cache_elems: f64,
    /// Per head and key in prefill: the query-key product's width.
    pub prefill_qk_dim: f64,
    /// Per head and key in prefill: the value width.
    pub prefill_v_dim: f64,
    /// Key and value elements prefill reads per attended token on this rank.
    pub prefill_kv_elems: f64,
    /// Bytes per KV-cache and query element.
    pub dtype_bytes: f64,
    /// HBM bytes per materialized score (0 for fused flash attention).
    pub score_bytes: f64,
    /// Long-sequence attention rate, FLOP/s.
    pub asymptote_flops_per_s: f64,
    /// Keys at which the rate is half the asymptote.
    pub half_rate_keys: f64,
    /// Sustained HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
}

impl AttentionKernel {
    fn roofline(&self, flops: f64, bytes: f64, keys: f64) -> f64 {
        let rate = flash_rate(self.asymptote_flops_per_s, self.half_rate_keys, keys);
        (flops / rate).max(bytes / self.hbm_bytes_per_s)
    }

    /// Decode and prefill attention of `shape` (launch not included). Decode reads every
    /// cached token once for all of a sequence's q = 1 + drafts queries: 2·a·(qk + v)
    /// FLOPs per query and key (4·a·d·Σc for standard attention and q = 1), cache bytes
    /// per cached token; each prefill chunk of T tokens at offset c is causal
    /// (2·a·(qk + v)·T·(c + T/2), keys capped by a window) at the flash rate for its keys.
    pub fn parts(&self, shape: &BatchShape) -> Parts {
        let (a, s) = (self.heads, self.dtype_bytes);
        let ctx = shape.decode_context_sum as f64;
        let seqs = shape.decode_seqs as f64;
        let q = 1.0 + shape.draft_tokens as f64;
        let mut out = Parts::default();
        if shape.decode_seqs > 0 {
            let (qk, v) = (self.decode_qk_dim, self.decode_v_dim);
            // Query j of a sequence's q sees its context plus the j drafts before it.
            let keys = q * ctx + seqs * q * (q - 1.0) / 2.0;
            let flops = 2.0 * a * (qk + v) * keys;
            let bytes = s * (self.cache_elems * ctx + a * (qk + v) * seqs * q);
            let secs = self.roofline(flops, bytes, ctx / seqs);
            out = out.then(Parts { flops, bytes, secs });
        }
        let (qk, v) = (self.prefill_qk_dim, self.prefill_v_dim);
        for c in &shape.prefill {
            let (tn, c0) = (c.tokens as f64, shape.attended_context(c));
            let flops = 2.0 * a * (qk + v) * causal_key_sum(tn, c.context as f64, shape.window_tokens);
            let bytes =
                s * (self.prefill_kv_elems * (c0 + tn) + a * (qk + v) * tn) + self.score_bytes * a * tn * (c0 + tn);
            let secs = self.roofline(flops, bytes, c0 + tn);
            out = out.then(Parts { flops, bytes, secs });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::PrefillChunk;

    #[test]
    fn the_flash_ramp_reproduces_the_measured_fa3_rates() {
        // R = 630, L_half = 239: 630 * 512 / 751 = 429.5 (measured 430), 630 * 2048 /
        // 2287 = 564.2 (566), 630 * 16384 / 16623 = 620.9 (621): within 1.3 % at all six.
        let measured = [
            (512.0, 430.32),
            (1024.0, 517.10),
            (2048.0, 565.54),
            (4096.0, 590.23),
            (8192.0, 614.23),
            (16384.0, 620.73),
        ];
        for (keys, tflops) in measured {
            let r = flash_rate(630.0, 239.0, keys);
            assert!((r / tflops - 1.0).abs() < 0.013, "{keys}: {r} vs {tflops}");
        }
        assert_eq!(flash_rate(630.0, 0.0, 10.0), 630.0);
    }

    #[test]
    fn prefill_chunk_time_by_hand() {
        // 8 q heads, 1 kv head of 128 (Llama-2-70B on TP8), bf16, H100 rates: 2048 tokens
        // from an empty cache: 4 * 8 * 128 * 2048 * 1024 = 8,589,934,592 FLOPs at
        // 630e12 * 2048 / 2287 = 564.2e12 FLOP/s: 15.226 µs. Bytes (2 * 128 * 2048 +
        // 2 * 8 * 128 * 2048) * 2 = 9.4 MB: 3.1 µs. Compute-bound.
        let k = AttentionKernel {
            heads: 8.0,
            kv_heads: 1.0,
            head_dim: 128.0,
            decode_qk_dim: 128.0,
            decode_v_dim: 128.0,
            cache_elems: 256.0,
            prefill_qk_dim: 128.0,
            prefill_v_dim: 128.0,
            prefill_kv_elems: 256.0,
            dtype_bytes: 2.0,
            score_bytes: 0.0,
            asymptote_flops_per_s: 630e12,
            half_rate_keys: 239.0,
            hbm_bytes_per_s: 3.082e12,
        };
        let shape = BatchShape {
            prefill: vec![PrefillChunk { tokens: 2048, context: 0, completes_prompt: true }],
            ..Default::default()
        };
        let p = k.parts(&shape);
        assert_eq!(p.flops, 8_589_934_592.0);
        let want = 8_589_934_592.0 / (630e12 * 2048.0 / 2287.0);
        assert!((p.secs - want).abs() < 1e-15, "{} vs {want}", p.secs);
        assert!((want * 1e6 - 15.226).abs() < 0.001, "{}", want * 1e6);
    }
}
