//! `clustersim assess` and `compare`, and the physical throughput limit, end to end.
//! Scenarios are tiny (a dozen requests on one H100) so each run takes milliseconds.

mod common;
use common::clustersim;

use clustersim::analysis::limit::{throughput_limit, Binding, WorkloadMix};
use clustersim::hardware::spec::gpu_preset;
use clustersim::model::spec::model_preset;
use clustersim::scenario::types::ExpertRouting;
use std::path::{Path, PathBuf};

/// A one-GPU Llama-3-8B scenario with `requirements` appended.
fn tiny(dir: &Path, name: &str, tp: u32, requirements: &str) -> PathBuf {
    let text = format!(
        r#"
[scenario]
name = "{name}"
seed = 7

[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 2

[model]
preset = "llama-3-8b"

[parallel]
tp = {tp}

[serving]
max_seqs = 16

[workload]
requests = 12
arrival = {{ process = "poisson", rate_per_s = 20.0 }}
prompt_tokens = {{ dist = "uniform", min = 64, max = 256 }}
output_tokens = {{ dist = "fixed", value = 16 }}

{requirements}
"#
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn seed_moe_limit_on_seed_400tf_by_hand() {
    // seed-moe: L 16, h 4096, a = k = 32 heads of d 128, 64 plain (m = 2) experts of
    // f_e 16384, top-2, V 32000, bf16 (2 B). seed-400tf: 400 TFLOP/s x 0.6 = 240e12
    // FLOP/s; 1.8 TB/s x 0.8 = 1.44e12 B/s. Mix: P = 5184 (uniform 128..10240),
    // O = 256; S = 256 sequences per step.
    let model = (model_preset("seed-moe").unwrap().spec)();
    let gpu = (gpu_preset("seed-400tf").unwrap().spec)();
    let mix = WorkloadMix { mean_prompt_tokens: 5184.0, mean_output_tokens: 256.0 };
    let l = throughput_limit(&model, &gpu, mix, 256, &ExpertRouting::Uniform);

    // Compute. Per token per layer: QKV 2·4096·(32+64)·128 = 100,663,296; out proj
    // 2·32·128·4096 = 33,554,432; router 2·4096·64 = 524,288; experts
    // 2 (top-k) · 2·2·4096·16384 = 536,870,912. Sum 671,612,928; x 16 layers =
    // 10,745,806,848 per token, for P + O - 1 = 5439 tokens: 58,446,443,446,272.
    // Attention per layer: prefill 2·32·128·5184² = 220,150,628,352; decode
    // 4·32·128·(255·5184 + 255·254/2) = 16384 · 1,354,305 = 22,188,933,120; x 16 =
    // 3,877,432,983,552. LM head 2·4096·32000·256 = 67,108,864,000.
    // F_req = 62,390,985,293,824; per counted token (/5440) = 11,468,931,120.2.
    let f_tok = 62_390_985_293_824.0 / 5440.0;
    assert!((l.flops_per_token / f_tok - 1.0).abs() < 1e-12, "{}", l.flops_per_token);
    // 240e12 / 11,468,931,120.2 = 20,926.1 tokens/s = 20.926 tokens/ms per GPU.
    assert!((l.compute_tokens_per_ms_per_gpu - 20.9261).abs() < 1e-3, "{}", l.compute_tokens_per_ms_per_gpu);

    // Memory. Non-expert weights: 16·(4096·96·128 + 32·128·4096) = 1,073,741,824,
    // routers 16·4096·64 = 4,194,304, LM head 4096·32000 = 131,072,000: 1,209,008,128.
    // Experts touched by 256 tokens x 2 picks: 64 (1 - (63/64)^512) = 64 (1 - 0.00031493)
    // = 63.97984 per layer, each 2·4096·16384 = 134,217,728 weights: x 16 layers =
    // 137,395,669,984. Total 138,604,678,112 weights x 2 B = 277,209,356,224 B per step,
    // / 256 = 1,082,849,048 B per decode token. KV: 2·16·32·128·2 = 262,144 B per
    // context token, at mean context 5184 + (256-2)/2 = 5311: 1,392,246,784 B.
    // Per decode token: 2,475,095,832 B. 1.44e12 / that = 581.796 decode tokens/s;
    // decode share 255/5440: 12,411.6 tokens/s = 12.412 tokens/ms per GPU.
    assert!((l.bytes_per_decode_token / 2_475_095_832.0 - 1.0).abs() < 1e-6, "{}", l.bytes_per_decode_token);
    assert!((l.memory_tokens_per_ms_per_gpu - 12.4116).abs() < 1e-3, "{}", l.memory_tokens_per_ms_per_gpu);
    assert_eq!(l.binding, Binding::Memory);
    assert_eq!(l.tokens_per_ms_per_gpu, l.memory_tokens_per_ms_per_gpu);
    // The report's 35 tokens/ms would need 35e3 x 11.4689e9 = 401.4 TFLOP/s: above 240.
    assert!(l.is_impossible(35.0));
    assert!(l.compute_arithmetic(35.0).starts_with("needs 401 TFLOP/s per GPU"), "{}", l.compute_arithmetic(35.0));
    assert!(l.compute_arithmetic(35.0).ends_with("the GPU sustains 240"));
}

#[test]
fn an_impossible_throughput_target_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // Llama-3-8B on an H100 cannot come near 10^6 tokens/ms per GPU.
    let p = tiny(dir.path(), "impossible", 1, "[requirements]\nthroughput_tokens_per_ms_per_gpu = 1000000.0\n");
    let (code, out, err) = clustersim(&["assess", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("IMPOSSIBLE"), "{out}");
    assert!(out.contains("impossible on this hardware"), "{out}");
    assert!(out.contains("throughput_tokens_per_ms_per_gpu (min)") && out.contains("FAIL"), "{out}");
    assert!(out.contains("verdict: FAIL"), "{out}");
    // JSON says the same.
    let (code, out, _) = clustersim(&["assess", p.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["limit"]["possible"], false);
}

#[test]
fn easy_targets_pass_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(
        dir.path(),
        "easy",
        1,
        "[requirements]\nthroughput_tokens_per_ms_per_gpu = 0.001\nttft_p99_s = 100.0\ngpus_max = 2\nmemory_fraction_max = 1.0\n",
    );
    let (code, out, err) = clustersim(&["assess", p.to_str().unwrap(), "--format", "markdown"]);
    assert_eq!(code, 0, "{out}{err}");
    // One row per requirement plus the limit row, all passing.
    for r in ["throughput_tokens_per_ms_per_gpu", "ttft_p99_s", "gpus_max", "memory_fraction_max"] {
        assert!(out.contains(&format!("| {r} (")), "{r} missing:\n{out}");
    }
    assert!(out.contains("POSSIBLE") && !out.contains("IMPOSSIBLE") && !out.contains("FAIL |"), "{out}");
    // A GPU cap below the plan fails: tp 2 uses 2 GPUs, cap 1.
    let q = tiny(dir.path(), "capped", 2, "[requirements]\ngpus_max = 1\n");
    let (code, out, _) = clustersim(&["assess", q.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("gpus_max (max)"), "{out}");
}

#[test]
fn bad_assess_input_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path(), "bad", 1, "[requirements]\nttft_p99_s = -1.0\n");
    let (code, _, err) = clustersim(&["assess", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("requirements.ttft_p99_s"), "{err}");
}

#[test]
fn compare_runs_both_plans_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny(dir.path(), "plan-tp1", 1, "");
    let b = tiny(dir.path(), "plan-tp2", 2, "");
    let out_dir = dir.path().join("cmp");
    let (code, out, err) =
        clustersim(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let header = out.lines().next().unwrap();
    assert!(header.contains("plan-tp1") && header.contains("plan-tp2"), "{header}");
    // GPU counts 1 and 2, in column order.
    let gpus = out.lines().find(|l| l.starts_with("gpus ")).unwrap();
    assert_eq!(gpus.split_whitespace().collect::<Vec<_>>(), ["gpus", "1", "2"]);
    assert!(out.contains("cost_gpu_hours_per_million_tokens") && out.contains("ttft_s.p99"), "{out}");
    // Both plans served all 12 requests; the CSV has the same rows.
    let completed = out.lines().find(|l| l.starts_with("requests.completed")).unwrap();
    assert_eq!(completed.split_whitespace().collect::<Vec<_>>(), ["requests.completed", "12", "12"]);
    let csv = std::fs::read_to_string(out_dir.join("compare.csv")).unwrap();
    assert!(csv.starts_with("metric,plan-tp1,plan-tp2\n"), "{csv}");
    let svg = std::fs::read_to_string(out_dir.join("ttft_cdf.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("plan-tp1 (1 GPUs)") && svg.contains("plan-tp2 (2 GPUs)"));
    // Cost: 1 GPU / (tokens/s x 3600) x 1e6, from the same summary.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("plan-tp1/summary.json")).unwrap()).unwrap();
    let tps = s["throughput"]["total_tokens_per_s"].as_f64().unwrap();
    let cost_row = csv.lines().find(|l| l.starts_with("cost_gpu_hours_per_million_tokens")).unwrap();
    let cost: f64 = cost_row.split(',').nth(1).unwrap().parse().unwrap();
    assert!((cost - 1e6 / (tps * 3600.0)).abs() < 1e-12 * cost.max(1.0), "{cost}");
}

#[test]
fn compare_with_workload_from_uses_one_request_stream() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny(dir.path(), "a", 1, "");
    // b asks for 5 requests; with --workload-from a it serves a's 12.
    let b_text = std::fs::read_to_string(&a)
        .unwrap()
        .replace("name = \"a\"", "name = \"b\"")
        .replace("requests = 12", "requests = 5");
    let b = dir.path().join("b.toml");
    std::fs::write(&b, b_text).unwrap();
    let out_dir = dir.path().join("cmp");
    let args = [
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--workload-from",
        a.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let (code, out, err) = clustersim(&args);
    assert_eq!(code, 0, "{err}");
    let completed = out.lines().find(|l| l.starts_with("requests.completed")).unwrap();
    assert_eq!(completed.split_whitespace().collect::<Vec<_>>(), ["requests.completed", "12", "12"]);
}
