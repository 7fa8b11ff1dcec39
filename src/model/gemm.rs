//! GEMM pricing on one GPU: tile and wave quantization, the power-capped clock, and the
//! quantize/scale traffic of low-precision (FP8, FP4) GEMMs.
//!
//! A GEMM's `m x n` output is cut into 128-row tiles; the tiles run in waves over the
//! SMs. Its compute time is its FLOPs at the GPU's boost-clock GEMM rate times the wave
//! utilization ([`wave_utilization`]), slowed past the boost window
//! (`hardware::spec::power_capped_s`). In a grouped GEMM (MoE experts) every busy expert
//! also pays whole tiles: the compute is that of `ceil(m_e / 128) x 128` rows per expert,
//! so an expert with 3 tokens costs as much compute as one with 128. A lone GEMM with few
//! rows does not: libraries switch to split-K / GEMV kernels there (Vidur's H100 TP8
//! batch-1 QKV runs in 13 µs, memory-bound, where a padded 128-row tile would take 22). Its memory time is weights + input + output bytes
//! at the sustained HBM rate; the GEMM takes the larger of the two.
//!
//! Low-precision GEMMs read activations quantized to the weight dtype and write BF16
//! outputs. The quantization (read the BF16 activation, write it at `s` bytes with its
//! scale) is fused by current engines into the kernel before the GEMM (norm, SwiGLU), so
//! it adds HBM traffic but no launch.

use crate::hardware::spec::power_capped_s;

/// Output-tile rows of a GEMM tile (the M side: tokens).
pub const TILE_M: u32 = 128;
/// Widest output-tile columns (the N side); narrowed down to [`TILE_N_MIN`].
pub const TILE_N_MAX: u32 = 256;
/// Narrowest output-tile columns.
pub const TILE_N_MIN: u32 = 64;
/// Bytes per element of the activations GEMMs read before quantization and write: BF16.
pub const ACTIVATION_BYTES: f64 = 2.0;

/// Fraction of the SMs' tile slots a GEMM's output tiles fill: `tiles / (waves x sms)`.
///
/// The tiles run in waves of `sms`, and a last wave that is only partly full leaves SMs
/// idle for a whole tile's time (wave quantization). Hopper/Ampere GEMM libraries use
/// 128 x 256 tiles for large GEMMs and switch to narrower ones (128 x 128, 128 x 64) when
/// wide tiles would give fewer than two waves, trading some per-tile efficiency for idle
/// SMs; modelled by halving the tile width while there are fewer than two waves.
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

/// FLOPs, HBM bytes and seconds (without launch) of a piece of work.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Parts {
    /// Useful floating-point operations (padding rows not counted).
    pub flops: f64,
    /// HBM bytes read and written.
    pub bytes: f64,
    /// Duration without launch overhead, s.
    pub secs: f64,
}

impl Parts {
    /// Both pieces run one after the other.
    pub fn then(self, o: Parts) -> Parts {
        Parts { flops: self.flops + o.flops, bytes: self.bytes + o.bytes, secs: self.secs + o.secs }
    }
}

/// The rates GEMMs and streaming kernels of one model run at on one GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmRates {
    /// GEMM rate at the boost clock with full waves, FLOP/s (the measured ceiling at most).
    pub flops_per_s: f64,
    /// Sustained HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// How long GEMMs hold the boost rate, s.
    pub boost_window_s: f64,
    /// How much slower GEMMs run past the boost window (at least 1).
    pub power_slowdown: f64,
    /// SMs the tiles spread over.
    pub sms: u32,
    /// Bytes per element of weights and GEMM inputs.
    pub dtype_bytes: f64,
}

impl GemmRates {
    /// Seconds of a memory-bound kernel moving `bytes`.
    pub fn stream_s(&self, bytes: f64) -> f64 {
        bytes / self.hbm_bytes_per_s
    }

    /// True when GEMM inputs are quantized below BF16 (FP8, FP4).
    pub fn low_precision(&self) -> bool {
        self.dtype_bytes < ACTIVATION_BYTES
    }

    /// Bytes per element a GEMM writes: the dtype's for 16-bit models, BF16 for FP8/FP4
    /// ones (low-precision GEMMs quantize their input and write BF16).
    pub fn output_bytes(&self) -> f64 {
        self.dtype_bytes.max(ACTIVATION_BYTES)
    }

    /// A grouped GEMM: one kernel over groups of `rows[i]` rows each (the experts of an
    /// MoE layer), each by its own `k x n` weight. Groups with no row cost nothing; each
    /// busy group pays whole 128-row tiles, and all tiles share the SMs' waves.
    pub fn grouped(&self, rows: &[f64], k: f64, n: f64) -> Parts {
        self.priced(rows, k, n, true, true)
    }

    /// [`Self::grouped`] whose input rows were quantized before they were gathered (an
    /// MoE layer quantizes each token once, then permutes the low-precision rows): no
    /// quantize traffic here.
    pub fn grouped_prequantized(&self, rows: &[f64], k: f64, n: f64) -> Parts {
        self.priced(rows, k, n, true, false)
    }

    /// One `m x k` by `k x n` GEMM: no tile padding (see the module docs).
    pub fn lone(&self, m: f64, k: f64, n: f64) -> Parts {
        self.priced(&[m], k, n, false, true)
    }

    /// A GEMM over groups of `rows`, with whole-tile compute when `pad_tiles`, paying
    /// for quantizing its input when `quantize` (low precision only).
    fn priced(&self, rows: &[f64], k: f64, n: f64, pad_tiles: bool, quantize: bool) -> Parts {
        let busy = || rows.iter().copied().filter(|&r| r > 0.0);
        let groups = busy().count() as f64;
        let m: f64 = busy().sum();
        let m_tiles: f64 = busy().map(|r| (r / TILE_M as f64).ceil()).sum();
        let padded = if pad_tiles { m_tiles * TILE_M as f64 } else { m };
        let s = self.dtype_bytes;
        let out_bytes = self.output_bytes();
        let bytes = s * groups * k * n + s * m * k + out_bytes * m * n;
        let rate = self.flops_per_s * wave_utilization(m_tiles, n, self.sms);
        let compute = power_capped_s(2.0 * padded * k * n / rate, self.boost_window_s, self.power_slowdown);
        let mut secs = compute.max(self.stream_s(bytes));
        let mut total_bytes = bytes;
        if quantize && self.low_precision() {
            // Quantize the BF16 input: read 2 B, write s B per element (fused, no launch).
            let q = (ACTIVATION_BYTES + s) * m * k;
            total_bytes += q;
            secs += self.stream_s(q);
        }
        Parts { flops: 2.0 * m * k * n, bytes: total_bytes, secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H100 in FP8 at the measured ceiling: 1402.6 TFLOP/s at boost, 3.082 TB/s, no power
    /// cap (window longer than any kernel here), 132 SMs.
    fn h100_fp8() -> GemmRates {
        GemmRates {
            flops_per_s: 1402.6e12,
            hbm_bytes_per_s: 3.35e12 * 0.92,
            boost_window_s: 1.0,
            power_slowdown: 1.0,
            sms: 132,
            dtype_bytes: 1.0,
        }
    }

    #[test]
    fn wave_utilization_by_hand() {
        // QKV at 512 tokens on TP8 (n = 1280): 4 x 5 tiles of 128 x 256, too few for two
        // waves of 132 SMs; 128 x 128 gives 40, 128 x 64 gives 80 (the narrowest):
        // one wave, 80 / 132 busy.
        assert!((wave_utilization(4.0, 1280.0, 132) - 80.0 / 132.0).abs() < 1e-12);
        // Out projection at 512 tokens (n = 8192): 4 x 32 = 128 wide tiles, narrowed to
        // 256 of 128 x 128: two waves, 256 / 264.
        assert!((wave_utilization(4.0, 8192.0, 132) - 256.0 / 264.0).abs() < 1e-12);
        // Enough wide tiles: 32 x 224 = 7168 in 55 waves.
        assert!((wave_utilization(32.0, 57344.0, 132) - 7168.0 / 7260.0).abs() < 1e-12);
        // Fewer SMs, same tiles: 80 tiles on A100's 108 SMs fill 80 / 108.
        assert!((wave_utilization(4.0, 1280.0, 108) - 80.0 / 108.0).abs() < 1e-12);
        // A wide GEMM at full waves is priced at the plain GEMM rate.
        assert_eq!(wave_utilization(2.0 * 132.0, 256.0, 132), 1.0);
    }

    #[test]
    fn fp8_gemm_at_the_measured_ceiling_by_hand() {
        // m = 33,792 (264 tile rows), k = 8192, n = 8192 (32 wide tiles per row): 8448
        // tiles = 64 full waves of 132, so wave utilization 1 and the rate is the ceiling.
        // FLOPs 2 * 33,792 * 8192 * 8192 = 4.5354e15 -> / 1402.6e12 = 3233.6 µs.
        // Bytes: weights 8192^2 * 1 B + input 33,792 * 8192 * 1 B + BF16 output 33,792 *
        // 8192 * 2 B = 67.1 MB + 276.8 MB + 553.6 MB = 897.6 MB -> 291.2 µs: compute-bound.
        // Quantizing the input: 33,792 * 8192 * 3 B = 830.5 MB -> 269.5 µs more.
        let g = h100_fp8();
        let p = g.lone(33_792.0, 8192.0, 8192.0);
        let flops = 2.0 * 33_792.0 * 8192.0 * 8192.0;
        assert_eq!(p.flops, flops);
        let compute_us = flops / 1402.6e12 * 1e6;
        let quant_us: f64 = 33_792.0 * 8192.0 * 3.0 / (3.35e12 * 0.92) * 1e6;
        assert!((compute_us - 3233.6).abs() < 0.1, "{compute_us}");
        assert!((quant_us - 269.5).abs() < 0.1, "{quant_us}");
        assert!((p.secs * 1e6 - (compute_us + quant_us)).abs() < 1e-6, "{}", p.secs * 1e6);
        // The achieved GEMM rate (without the quantize pass) is exactly the ceiling.
        assert!((flops / (p.secs - quant_us * 1e-6) - 1402.6e12).abs() < 1e3);
    }

    #[test]
    fn grouped_gemm_with_3_tokens_per_expert_pays_whole_tiles() {
        // Mixtral-like expert down projection in FP8 (k = 14,336, n = 4096) on 8 experts.
        // 300 tokens per expert: 3 tile rows each (384 padded rows), 24 tile rows x 16
        // wide tiles = 384 tiles, 3 waves of 132 (396 slots): utilization 384 / 396.
        // Compute 2 * 8 * 384 * 14,336 * 4096 / (1402.6e12 * 384/396) = 265.3 µs > bytes
        // (8 * 58.7 MB weights + 34.4 MB in + 19.7 MB out = 523.8 MB -> 170.0 µs); plus
        // quantizing 2400 x 14,336 inputs at 3 B each: 33.5 µs. 298.7 µs in all.
        let g = h100_fp8();
        let (k, n) = (14_336.0, 4096.0);
        let busy = g.grouped(&[300.0; 8], k, n);
        let q300 = 2400.0 * k * 3.0 / (3.35e12 * 0.92);
        let c300 = 2.0 * 8.0 * 384.0 * k * n / (1402.6e12 * 384.0 / 396.0);
        assert!((c300 * 1e6 - 265.3).abs() < 0.1, "{}", c300 * 1e6);
        assert!((busy.secs - (c300 + q300)).abs() < 1e-12);
        // 3 tokens per expert: one tile row each (128 padded rows, 42.7x the useful 3):
        // 8 x 16 = 128 tiles, narrowed to 8 x 64 = 512 (128 x 64): 4 waves (528 slots).
        // Compute 2 * 8 * 128 * k * n / (1402.6e12 * 512/528) = 88.4 µs, but the 8
        // experts' weights (469.8 MB, + 0.5 MB in/out) take 152.6 µs: memory-bound;
        // + 0.3 µs quantizing = 152.9 µs.
        let thin = g.grouped(&[3.0; 8], k, n);
        let c3 = 2.0 * 8.0 * 128.0 * k * n / (1402.6e12 * 512.0 / 528.0);
        assert!((c3 * 1e6 - 88.4).abs() < 0.1, "{}", c3 * 1e6);
        let bytes3 = 8.0 * k * n + 24.0 * k + 2.0 * 24.0 * n;
        let q3 = 24.0 * k * 3.0 / (3.35e12 * 0.92);
        assert!((thin.secs - (bytes3 / (3.35e12 * 0.92) + q3)).abs() < 1e-12);
        // Per token, 3 tokens per expert cost 51x more than 300 (152.9 µs / 24 tokens vs
        // 298.7 µs / 2400 tokens).
        let ratio = (thin.secs / 24.0) / (busy.secs / 2400.0);
        assert!((ratio - 51.2).abs() < 0.1, "{ratio}");
        // Idle experts are free.
        assert_eq!(g.grouped(&[0.0, 3.0], k, n), g.grouped(&[3.0], k, n));
    }
}
