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
//! Decode attention reads each sequence's KV cache once: memory-bound, linear in the sum
//! of contexts, so a batch is priced in O(number of prefill chunks).

use crate::model::cost::BatchShape;
use crate::model::gemm::Parts;

/// Flash attention's rate, FLOP/s, when each query sees `keys` keys: `asymptote x keys /
/// (keys + half_keys)`; the asymptote itself when `half_keys` is 0.
pub fn flash_rate(asymptote: f64, half_keys: f64, keys: f64) -> f64 {
    if half_keys <= 0.0 {
        return asymptote;
    }
    asymptote * keys.max(1.0) / (keys.max(1.0) + half_keys)
}

/// The attention heads of one rank and the rates they run at.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionKernel {
    /// Query heads on this rank.
    pub heads: f64,
    /// KV heads on this rank.
    pub kv_heads: f64,
    /// Head dimension.
    pub head_dim: f64,
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

    /// Decode and prefill attention of `shape` (launch not included): decode reads every
    /// context once (4·a·d·Σc FLOPs, 2·k·d·Σc·s KV bytes); each prefill chunk of T tokens
    /// at offset c is causal (4·a·d·T·(c + T/2) FLOPs) at the flash rate for c + T keys.
    pub fn parts(&self, shape: &BatchShape) -> Parts {
        let (a, k, d, s) = (self.heads, self.kv_heads, self.head_dim, self.dtype_bytes);
        let ctx = shape.decode_context_sum as f64;
        let seqs = shape.decode_seqs as f64;
        let mut out = Parts::default();
        if shape.decode_seqs > 0 {
            let flops = 4.0 * a * d * ctx;
            let bytes = s * (2.0 * k * d * ctx + 2.0 * a * d * seqs);
            let secs = self.roofline(flops, bytes, ctx / seqs);
            out = out.then(Parts { flops, bytes, secs });
        }
        for c in &shape.prefill {
            let (tn, c0) = (c.tokens as f64, c.context as f64);
            // Causal: query i sees c0 + i keys, on average c0 + T/2.
            let flops = 4.0 * a * d * tn * (c0 + tn / 2.0);
            let bytes = s * (2.0 * k * d * (c0 + tn) + 2.0 * a * d * tn) + self.score_bytes * a * tn * (c0 + tn);
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
