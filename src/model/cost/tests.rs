//! Hand-worked checks of the cost model's operators.

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
    BatchShape { decode_seqs: seqs, decode_context_sum: ctx_sum, ..Default::default() }
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
        ..Default::default()
    };
    assert_eq!((s.tokens(), s.emitting_seqs(), s.seqs()), (135, 6, 7));
    // Speculating with 2 drafts, each decoding sequence runs 3 query tokens: 15 + 130.
    let spec = BatchShape { draft_tokens: 2, ..s };
    assert_eq!((spec.tokens(), spec.decode_query_tokens()), (145, 15));
}
