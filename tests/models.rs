//! Models as they are served (issue 12, item 4): Hugging Face configs read into the
//! shapes clustersim prices, sliding-window KV and attention bounded by the window, and
//! speculative decoding finishing requests in fewer, costlier steps. Expected numbers
//! are worked out by hand in the comments.

mod common;

use clustersim::model::cost::{BatchShape, CostModel};
use clustersim::model::framework::framework_profile;
use clustersim::model::hf_config::read_hf_config;
use clustersim::model::memory::{stage_kv_bytes_per_token, window_kv_reserve_bytes, MemoryRequest};
use clustersim::model::spec::{model_preset, Dtype};
use clustersim::scenario::Setup;
use clustersim::serving::{simulate, RunOptions};
use std::path::{Path, PathBuf};

fn hf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf").join(name).join("config.json")
}

fn setup(text: &str) -> Setup {
    let path = Path::new("test.toml");
    let scenario = clustersim::scenario::parse(text, path, &[]).unwrap_or_else(|e| panic!("parse: {e}\n{text}"));
    clustersim::scenario::validate(&scenario, path).unwrap_or_else(|e| panic!("validate: {e}\n{text}"))
}

#[test]
fn deepseek_v3_config_json_reads_as_the_preset() {
    // The published config is FP8 (quantization_config.quant_method "fp8"); the preset
    // defaults to bf16 and takes the scenario's dtype. Everything else must agree.
    let read = read_hf_config(&hf("deepseek-v3"), false).expect("reads");
    let mut preset = (model_preset("deepseek-v3").expect("preset").spec)();
    preset.dtype = Dtype::Fp8;
    assert_eq!(read, preset);
    let mla = read.mla.expect("latent attention");
    assert_eq!((mla.kv_lora_rank, mla.qk_rope_head_dim, read.mtp_layers), (512, 64, 1));
}

#[test]
fn qwen3_config_json_reads_as_the_preset() {
    let read = read_hf_config(&hf("qwen3-235b-a22b"), false).expect("reads");
    assert_eq!(read, (model_preset("qwen3-235b-a22b").expect("preset").spec)());
    // GQA 64 q / 4 kv heads of 128; KV per token for the whole model, bf16:
    // 2 x 94 x 4 x 128 x 2 B = 192,512 B.
    assert_eq!(stage_kv_bytes_per_token(&read, 1, 1, 0), 192_512.0);
}

#[test]
fn window_patterns_come_from_layer_types_or_the_window_alone() {
    // gpt-oss-120b: sliding, full, sliding, full... (every 2nd layer full), W = 128;
    // 128 experts of 2,880 (intermediate_size, no moe_intermediate_size), top-4, MXFP4.
    let oss = read_hf_config(&hf("gpt-oss-120b"), false).expect("reads");
    let w = oss.sliding_window.expect("window");
    assert_eq!((w.window_tokens, w.full_every), (128, 2));
    assert_eq!((oss.experts, oss.top_k, oss.expert_ffn, oss.dtype), (128, 4, 2880, Dtype::Fp4));
    // Mistral-7B-v0.1: a window of 4,096 on every layer.
    let mistral = read_hf_config(&hf("mistral-7b-v0.1"), false).expect("reads");
    let w = mistral.sliding_window.expect("window");
    assert_eq!((w.window_tokens, w.full_every), (4096, 0));
}

#[test]
fn a_layer_type_it_cannot_map_is_named_with_the_file() {
    let err = read_hf_config(&hf("bad-layer-types"), false).expect_err("linear attention is not modelled");
    let msg = err.to_string();
    assert!(msg.contains("bad-layer-types/config.json"), "{msg}");
    assert!(msg.contains("layer_types") && msg.contains("linear_attention"), "{msg}");
}

#[test]
fn hf_config_errors_exit_2_naming_field_and_file() {
    // A config without hidden_size, read through a scenario on the command line.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        r#"{"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 100}"#,
    )
    .expect("write");
    let scenario = dir.path().join("s.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml"))
        .expect("tiny")
        .replace("preset = \"llama-3-8b\"", "hf_config = \"config.json\"");
    std::fs::write(&scenario, text).expect("write");
    let (code, _, stderr) = common::clustersim(&["validate", scenario.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("config.json") && stderr.contains("hidden_size") && stderr.contains("missing"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_window_layer_holds_min_context_w_tokens() {
    // gpt-oss-120b, bf16 for round numbers, TP1: per layer and token 2 x 8 x 64 x 2 B =
    // 2,048 B. Its 18 full layers cache every token: 36,864 B per token in the block
    // pool; its 18 window layers hold at most W = 128 tokens of each sequence: with
    // max_seqs 256 the reserve is 256 x 128 x 18 x 2,048 = 1,207,959,552 B.
    let mut m = read_hf_config(&hf("gpt-oss-120b"), true).expect("reads");
    assert_eq!(m.dtype, Dtype::Bf16);
    m.dtype = Dtype::Bf16;
    assert_eq!(stage_kv_bytes_per_token(&m, 1, 1, 0), 36_864.0);
    let req = MemoryRequest {
        tp: 1,
        pp: 1,
        ep: 1,
        max_batch_tokens: 8192,
        max_seqs: 256,
        kv_block_tokens: 16,
        gpu_memory_utilization: 0.9,
    };
    assert_eq!(window_kv_reserve_bytes(&m, &req, 0), 1_207_959_552.0);
    // Decode attention of a window layer at context 10,000 reads 128 tokens' KV: the
    // shape the pipeline builds for window layers caps each context at W.
    let gpu = (clustersim::hardware::spec::gpu_preset("h100-sxm").expect("gpu").spec)();
    let c = CostModel::new(&m, &gpu, &framework_profile("optimized").expect("fw"), 1);
    let full = BatchShape { decode_seqs: 1, decode_context_sum: 10_000, ..Default::default() };
    let window = BatchShape { decode_context_sum: 128, window_tokens: 128, ..full.clone() };
    // FLOPs 4 x 64 heads x 64 x keys: 163,840,000 at 10,000 keys, 2,097,152 at 128.
    assert_eq!(c.attention_block(&full)[1].flops, 163_840_000.0);
    assert_eq!(c.attention_block(&window)[1].flops, 2_097_152.0);
}

/// A one-replica Llama-3-8B-shaped model with an MTP module, serving `requests`
/// requests of a 256-token prompt and `output` tokens, one at a time, with speculation
/// `spec` (a TOML inline table or "").
fn speculating(spec: &str, requests: u32, output: u32) -> Setup {
    let spec_line = if spec.is_empty() { String::new() } else { format!("speculative = {spec}\n") };
    setup(&format!(
        "[scenario]\nname = \"spec\"\nseed = 5\n[hardware]\ngpu = \"h100-sxm\"\nnodes = 1\ngpus_per_node = 1\n\
         [model]\npreset = \"llama-3-8b\"\nmtp_layers = 1\n{spec_line}\
         [workload]\nrequests = {requests}\narrival = {{ process = \"closed_loop\", concurrency = 1 }}\n\
         prompt_tokens = {{ dist = \"fixed\", value = 256 }}\noutput_tokens = {{ dist = \"fixed\", value = {output} }}\n"
    ))
}

#[test]
fn accepting_every_draft_halves_the_decode_steps() {
    // 101 output tokens: the prefill emits the first; 100 remain. Without speculation
    // 100 decode steps: 101 iterations. One draft always accepted yields 2 per step: 50
    // decode steps, 51 iterations. Acceptance 0 yields 1 per step: 101 again, each
    // step dearer (2 query tokens and the draft layer).
    let iters = |spec: &str| {
        let out = simulate(&speculating(spec, 1, 101), RunOptions::default()).expect("runs");
        (out.report.summary.sim.iterations, out.report.summary.tpot_s.mean)
    };
    let (plain, plain_tpot) = iters("");
    let (all, all_tpot) = iters("{ draft_tokens = 1, acceptance_rate = 1.0 }");
    let (none, none_tpot) = iters("{ draft_tokens = 1, acceptance_rate = 0.0 }");
    assert_eq!((plain, all, none), (101, 51, 101));
    assert!(all_tpot < plain_tpot && plain_tpot < none_tpot, "{all_tpot} {plain_tpot} {none_tpot}");
}

#[test]
fn one_draft_at_0_8_averages_1_8_tokens_per_decode_step() {
    // 200 requests of 201 output tokens: 40,000 tokens after the first ones. At 1.8 per
    // step about 22,222 decode steps; each step's count is drawn (0.4 standard
    // deviation of 1 + k), so over ~22,000 steps the mean is 1.8 +- 0.003 (1 sigma);
    // a request ending part-way through a 2-token step wastes at most one token, which
    // moves the mean by < 200 / 22,000 = 0.009. Within 0.02.
    let out = simulate(&speculating("{ draft_tokens = 1, acceptance_rate = 0.8 }", 200, 201), RunOptions::default())
        .expect("runs");
    let decode_steps = out.report.summary.sim.iterations - 200;
    let per_step = 40_000.0 / decode_steps as f64;
    assert!((per_step - 1.8).abs() < 0.02, "{per_step} tokens per step over {decode_steps} steps");
    assert_eq!(out.report.summary.requests.completed, 200);
}

#[test]
fn speculation_without_a_draft_or_with_a_nonsense_rate_is_refused() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml");
    let t = tiny.to_str().expect("utf-8");
    // Llama-3-8B has no MTP module: speculation has nothing to draft with.
    let (code, _, err) =
        common::clustersim(&["validate", t, "--set", "model.speculative={ draft_tokens = 1, acceptance_rate = 0.8 }"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model.speculative") && err.contains("mtp_layers"), "{err}");
    // An acceptance rate is a probability.
    let (code, _, err) = common::clustersim(&[
        "validate",
        t,
        "--set",
        "model.mtp_layers=1",
        "--set",
        "model.speculative={ draft_tokens = 1, acceptance_rate = 1.5 }",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("model.speculative.acceptance_rate") && err.contains("[0, 1]"), "{err}");
    // draft_tokens = 0 is speculation off: valid, and the run is the plain one.
    let (code, _, err) =
        common::clustersim(&["validate", t, "--set", "model.speculative={ draft_tokens = 0, acceptance_rate = 0.8 }"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_all_window_model_serves_prompts_longer_than_its_window() {
    // Mistral-7B-v0.1 windows every layer at 4,096: the block pool holds no bytes per
    // token (no full layer), the window reserve bounds memory, and prompts of up to
    // 12,000 tokens are served, none dropped.
    let cfg = hf("mistral-7b-v0.1");
    let s = setup(&format!(
        "[scenario]\nname = \"mistral\"\nseed = 3\n[hardware]\ngpu = \"h100-sxm\"\nnodes = 1\ngpus_per_node = 1\n\
         [model]\nhf_config = {:?}\n[serving]\nmax_seqs = 64\n\
         [workload]\nrequests = 30\narrival = {{ process = \"poisson\", rate_per_s = 5.0 }}\n\
         prompt_tokens = {{ dist = \"uniform\", min = 2000, max = 12000 }}\noutput_tokens = {{ dist = \"fixed\", value = 20 }}\n",
        cfg.to_str().expect("utf-8")
    ));
    assert_eq!(stage_kv_bytes_per_token(&s.model, 1, 1, 0), 0.0);
    let out = simulate(&s, RunOptions::default()).expect("runs");
    let r = &out.report.summary.requests;
    assert_eq!((r.arrived, r.completed, r.dropped), (30, 30, 0));
    // KV reserved per GPU: per token 32 layers x 2 x 8 heads x 128 x 2 B = 131,072 B;
    // 64 sequences x 4,096 tokens x 131,072 B = 34,359,738,368 B = 32 GiB.
    assert!(
        (out.report.summary.memory.kv_gib_per_gpu - 32.0).abs() < 1e-9,
        "{}",
        out.report.summary.memory.kv_gib_per_gpu
    );
}

#[test]
fn accepted_drafts_come_from_the_seeded_stream() {
    // Same seed: the same steps to the ns. Another seed: other draws, so (almost
    // surely, over ~1,100 steps) another step count.
    let run = |seed: u64| {
        let mut s = speculating("{ draft_tokens = 2, acceptance_rate = 0.6 }", 10, 201);
        s.seed = seed;
        let out = simulate(&s, RunOptions::default()).expect("runs");
        (out.report.summary.sim.iterations, out.report.summary.sim.simulated_s.to_bits())
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5).0, run(6).0);
}

#[test]
fn the_physical_limit_reads_the_latent_cache_and_shares_steps_among_drafts() {
    use clustersim::analysis::limit::{throughput_limit, WorkloadMix};
    use clustersim::model::speculative::Speculative;
    use clustersim::scenario::types::ExpertRouting;
    // DeepSeek-V3 in FP8 caches (512 + 64) x 61 = 35,136 B per context token.
    let mut m = (model_preset("deepseek-v3").expect("preset").spec)();
    m.dtype = Dtype::Fp8;
    let gpu = (clustersim::hardware::spec::gpu_preset("h100-sxm").expect("gpu").spec)();
    let mix = WorkloadMix { mean_prompt_tokens: 1024.0, mean_output_tokens: 256.0 };
    let plain = throughput_limit(&m, &gpu, mix, 256, &ExpertRouting::Uniform);
    assert_eq!(plain.kv_bytes_per_context_token, 35_136.0);
    // One draft: a step may yield 2 tokens, so the bytes per decode token halve.
    m.speculative = Some(Speculative { draft_tokens: 1, acceptance_rate: 0.8 });
    let spec = throughput_limit(&m, &gpu, mix, 256, &ExpertRouting::Uniform);
    assert!(
        (spec.bytes_per_decode_token * 2.0 - plain.bytes_per_decode_token).abs() < 1e-6 * plain.bytes_per_decode_token
    );
}
