//! MoE layers as serving engines run them (TensorRT-LLM, vLLM and SGLang fused-MoE paths):
//!
//! 1. router: the gate GEMM (T x h x E, replicated on every rank), then a softmax/top-k
//!    kernel reading the FP32 logits and writing top_k ids and weights per token;
//! 2. shared experts, if any: a dense MLP over every token;
//! 3. permute: gather each (token, expert) pair's hidden row into expert order
//!    (memory-bound: read and write one row per pair; FP8/FP4 models quantize each
//!    token once first and move its low-precision row);
//! 4. grouped GEMMs (gate+up, activation, down) over all local experts in one kernel
//!    each: every busy expert pays whole 128-row tiles (`model::gemm`), so few tokens per
//!    expert waste most of each tile, and each busy expert's weights are read once;
//! 5. unpermute: read each pair's output row, write the top_k-weighted sum per token.

use crate::model::cost::{CostModel, OpCost, OpKind};
use crate::model::gemm::{Parts, ACTIVATION_BYTES};

/// Bytes per router logit (FP32) and per top-k entry (an i32 id and an FP32 weight).
const LOGIT_BYTES: f64 = 4.0;
const TOPK_ENTRY_BYTES: f64 = 8.0;

impl CostModel {
    /// Bytes one expert choice of one token moves in the EP combine: the expert's output
    /// row, which the grouped GEMM writes in BF16 whatever the weights' dtype, so h·2 for
    /// FP8/FP4 models (the dispatch moves the low-precision row, h·s:
    /// [`CostModel::ep_bytes_per_choice`]). DeepEP's benchmarks run DeepSeek-V3 this
    /// way, "FP8 dispatching and BF16 combining" (deepseek-ai/DeepEP README.md,
    /// Performance).
    pub fn ep_combine_bytes_per_choice(&self) -> f64 {
        self.hidden * self.dtype_bytes.max(ACTIVATION_BYTES)
    }

    /// One MoE layer on this rank: the router over `tokens` tokens, the shared experts
    /// (as `Mlp`, if the model has any) and the routed experts this rank holds, given
    /// the tokens each of them received (permute, grouped GEMMs, unpermute, as
    /// `Experts`). Experts with no token cost nothing but the launches.
    pub fn moe_block(&self, tokens: u32, tokens_per_local_expert: &[u32]) -> Vec<OpCost> {
        let (h, e) = (self.hidden, self.experts);
        let t = tokens as f64;
        let mut ops = Vec::with_capacity(3);
        let gate = self.gemm.lone(t, h, e);
        let top_k = self.stream(0.0, t * e * LOGIT_BYTES + t * self.top_k * TOPK_ENTRY_BYTES);
        ops.push(self.op_from(OpKind::Router, gate.then(top_k), 2));
        if self.shared_experts > 0.0 {
            let cols = self.shared_experts * self.expert_ffn_rank;
            ops.push(self.op_from(OpKind::Mlp, self.mlp_parts(&[t], cols, false), 3));
        }
        let rows: Vec<f64> = tokens_per_local_expert.iter().map(|&n| n as f64).collect();
        let pairs: f64 = rows.iter().sum();
        let row_bytes = h * ACTIVATION_BYTES;
        // Low precision: each token is quantized once (read BF16, write s bytes), then its
        // s-byte row is permuted; the grouped up-GEMM reads it as is.
        let s = self.dtype_bytes;
        let quantize = if self.gemm.low_precision() && pairs > 0.0 {
            self.stream(0.0, t * h * (ACTIVATION_BYTES + s))
        } else {
            Parts::default()
        };
        let permute = quantize.then(self.stream(0.0, 2.0 * pairs * h * s.min(ACTIVATION_BYTES)));
        let unpermute = self.stream(0.0, pairs * row_bytes + if pairs > 0.0 { t * row_bytes } else { 0.0 });
        let experts: Parts = permute.then(self.mlp_parts(&rows, self.expert_ffn_rank, true)).then(unpermute);
        ops.push(self.op_from(OpKind::Experts, experts, 5));
        ops
    }
}

#[cfg(test)]
mod tests {
    use crate::hardware::spec::gpu_preset;
    use crate::model::cost::{CostModel, OpKind};
    use crate::model::framework::framework_profile;
    use crate::model::spec::model_preset;

    fn mixtral(tp: u32) -> CostModel {
        let m = (model_preset("mixtral-8x7b").unwrap().spec)();
        let g = (gpu_preset("h100-sxm").unwrap().spec)();
        CostModel::new(&m, &g, &framework_profile("optimized").unwrap(), tp)
    }

    #[test]
    fn moe_prices_router_permutation_and_only_touched_experts() {
        // Mixtral, tp 1: router 2 * 100 * 4096 * 8 = 6,553,600 FLOPs. Experts: 60 + 40
        // tokens on two experts, one idle: 6 * 100 * 4096 * 14336 FLOPs, and two
        // experts' weights (2 * 3 * 4096 * 14336 * 2 B = 704.6 MB) plus activations and
        // the permutation (100 pairs: 2 * 100 * 8 KiB in, 100 * 8 KiB + 100 * 8 KiB out).
        let c = mixtral(1);
        let ops = c.moe_block(100, &[60, 0, 40]);
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].kind, ops[0].flops), (OpKind::Router, 6_553_600.0));
        assert_eq!(ops[1].flops, 6.0 * 100.0 * 4096.0 * 14336.0);
        let weights = 2.0 * 3.0 * 4096.0 * 14336.0 * 2.0;
        assert!(ops[1].bytes > weights && ops[1].bytes < weights * 1.05);
        // Router bytes: gate weights 4096 x 8 x 2 B + input 100 x 4096 x 2 B + output
        // 100 x 8 x 2 B, then top-k reads 100 x 8 x 4 B logits, writes 100 x 2 x 8 B.
        let router = 4096.0 * 8.0 * 2.0 + 100.0 * 4096.0 * 2.0 + 1600.0 + 3200.0 + 1600.0;
        assert_eq!(ops[0].bytes, router);
        // An idle rank pays launches only: 5 kernels x 4.5 µs on H100.
        let idle = c.moe_block(0, &[0, 0]);
        assert_eq!(idle[1].flops, 0.0);
        assert_eq!(idle[1].time.as_ns(), 5 * 4_500);
    }

    #[test]
    fn fp8_quantizes_each_token_once_and_permutes_one_byte_rows() {
        // Mixtral FP8, TP1, 100 tokens all to experts 0 and 1 (200 pairs). Beside the
        // grouped GEMMs and unpermute (identical in both accountings), the permute side
        // moves: quantize 100 x 4096 x (2 + 1) B = 1,228,800 B, then read + write 200
        // one-byte rows of 4096: 1,638,400 B. The up GEMM then charges no quantize; the
        // down GEMM quantizes its 200 x 14,336 inputs: 200 x 14,336 x 3 = 8,601,600 B.
        let mut m = (model_preset("mixtral-8x7b").unwrap().spec)();
        m.dtype = crate::model::spec::Dtype::Fp8;
        let g = (gpu_preset("h100-sxm").unwrap().spec)();
        let c = CostModel::new(&m, &g, &framework_profile("optimized").unwrap(), 1);
        let e = c.moe_block(100, &[100, 100])[1];
        let (h, f) = (4096.0, 14336.0);
        // Grouped up: weights 2 x h x 2f x 1 B, in 200 x h x 1 B, BF16 out 200 x 2f x 2 B;
        // activation 3 x 200 x f x 2 B; down: weights 2 x f x h, in 200 x f, out
        // 200 x h x 2 B, + its quantize; unpermute 200 x h x 2 + 100 x h x 2.
        let up = 2.0 * h * 2.0 * f + 200.0 * h + 200.0 * 2.0 * f * 2.0;
        let act = 3.0 * 200.0 * f * 2.0;
        let down = 2.0 * f * h + 200.0 * f + 200.0 * h * 2.0 + 8_601_600.0;
        let unpermute = 200.0 * h * 2.0 + 100.0 * h * 2.0;
        assert_eq!(e.bytes, 1_228_800.0 + 1_638_400.0 + up + act + down + unpermute);
    }

    #[test]
    fn fp8_dispatches_one_byte_rows_and_combines_bf16_rows() {
        // Mixtral, h = 4096: BF16 moves 8 KiB per choice both ways; FP8 dispatches
        // 4096 B and combines 8192 B.
        let bf16 = mixtral(1);
        assert_eq!((bf16.ep_bytes_per_choice(), bf16.ep_combine_bytes_per_choice()), (8192.0, 8192.0));
        let mut m = (model_preset("mixtral-8x7b").unwrap().spec)();
        m.dtype = crate::model::spec::Dtype::Fp8;
        let g = (gpu_preset("h100-sxm").unwrap().spec)();
        let fp8 = CostModel::new(&m, &g, &framework_profile("optimized").unwrap(), 1);
        assert_eq!((fp8.ep_bytes_per_choice(), fp8.ep_combine_bytes_per_choice()), (4096.0, 8192.0));
    }

    #[test]
    fn few_tokens_per_expert_cost_more_per_token() {
        // 8 experts, TP1: 3 tokens each is memory-bound on the 8 experts' weights; 300
        // each pays 3 tiles per expert of compute. Per token the thin case must cost far
        // more (the weights are read for 24 tokens instead of 2400).
        let c = mixtral(1);
        let thin = c.moe_block(12, &[3; 8])[1].time.as_ns() as f64 / 24.0;
        let busy = c.moe_block(1200, &[300; 8])[1].time.as_ns() as f64 / 2400.0;
        assert!(thin > 20.0 * busy, "{thin} vs {busy}");
    }
}
