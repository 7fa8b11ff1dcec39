//! Prefix caching end to end (issue 12): the hit rate the simulator reports on the
//! Mooncake trace against one computed straight from the trace's hash_ids, and how it
//! falls as the cache shrinks.

use clustersim::scenario::Setup;
use clustersim::serving::{simulate, RunOptions};
use std::collections::HashSet;
use std::path::Path;

const TRACE: &str = "../shared/data/traces/mooncake_conversation_trace.jsonl";
const ROWS: usize = 1500;

fn setup(text: &str) -> Setup {
    let path = Path::new("test.toml");
    let scenario = clustersim::scenario::parse(text, path, &[]).unwrap_or_else(|e| panic!("parse: {e}\n{text}"));
    clustersim::scenario::validate(&scenario, path).unwrap_or_else(|e| panic!("validate: {e}\n{text}"))
}

/// One replica of Llama-3-8B on an H100; batches large enough that every prompt is
/// prefilled in one chunk (the longest of the first 1,500 rows has 123,192 tokens),
/// so each prompt's blocks are cached when it is admitted, in arrival order.
fn scenario(extra_serving: &str) -> String {
    format!(
        r#"
[scenario]
name = "mooncake-hits"
seed = 1
[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 1
[model]
preset = "llama-3-8b"
dtype = "bf16"
[parallel]
dp = 1
[serving]
max_batch_tokens = 131072
max_seqs = 256
prefix_caching = true
{extra_serving}
[workload]
trace = "{TRACE}"
limit = {ROWS}
"#
    )
}

/// Token and request hit rates computed straight from the trace: walk the rows in
/// order; a row hits the leading run of its hash_ids seen in any earlier row (ids
/// name a block and everything before it), in whole 512-token blocks, at most
/// (input_length - 1) / 512 of them (one token is always prefilled); then its full
/// blocks (input_length / 512 of them) become seen.
fn hit_rates_from_trace() -> (f64, f64) {
    let text = std::fs::read_to_string(TRACE).expect("the shipped Mooncake trace");
    let mut seen = HashSet::new();
    let (mut hit, mut total, mut hit_rows) = (0u64, 0u64, 0u64);
    for line in text.lines().take(ROWS) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let prompt = v["input_length"].as_u64().expect("input_length");
        let ids: Vec<u64> = v["hash_ids"].as_array().expect("hash_ids").iter().map(|x| x.as_u64().unwrap()).collect();
        let run = ids.iter().take_while(|h| seen.contains(*h)).count() as u64;
        let blocks = run.min((prompt - 1) / 512);
        hit += blocks * 512;
        total += prompt;
        hit_rows += (blocks > 0) as u64;
        seen.extend(ids.iter().take((prompt / 512) as usize).copied());
    }
    (hit as f64 / total as f64, hit_rows as f64 / ROWS as f64)
}

fn reported(extra_serving: &str) -> clustersim::serving::prefix::stats::PrefixCacheSummary {
    let out = simulate(&setup(&scenario(extra_serving)), RunOptions::default()).expect("run");
    let s = out.report.summary;
    assert_eq!(s.requests.completed + s.requests.dropped, s.requests.arrived);
    assert_eq!(s.requests.arrived, ROWS as u64);
    s.prefix_cache.expect("prefix_cache section")
}

#[test]
fn with_an_unbounded_cache_the_hit_rate_is_the_traces_own_and_it_falls_as_the_cache_shrinks() {
    let (tokens, requests) = hit_rates_from_trace();
    // A host tier far larger than every block of the trace (29,150 distinct 64 MiB
    // blocks, ~1.8 TiB): nothing is ever lost.
    let unbounded = reported("[serving.kv_offload]\nhost_memory_gib = 1000000");
    assert_eq!(unbounded.requests, ROWS as u64);
    assert!((unbounded.token_hit_rate - tokens).abs() < 1e-12, "{} vs {tokens}", unbounded.token_hit_rate);
    assert!((unbounded.request_hit_rate - requests).abs() < 1e-12);
    assert_eq!(unbounded.host_dropped_blocks, 0);
    // Shrink the cache: host tiers of 512 and 64 GiB, then HBM alone (~56 GiB of
    // KV, shared with running requests). Each step keeps fewer blocks and hits less.
    let rates: Vec<f64> =
        ["[serving.kv_offload]\nhost_memory_gib = 512", "[serving.kv_offload]\nhost_memory_gib = 64", ""]
            .iter()
            .map(|extra| reported(extra).token_hit_rate)
            .collect();
    eprintln!("token hit rates: unbounded {tokens}, then {rates:?}");
    assert!(rates[0] < tokens && rates[1] < rates[0] && rates[2] < rates[1], "{rates:?} vs {tokens}");
}

#[test]
fn sessions_and_a_system_prompt_hit_what_was_worked_out_by_hand() {
    // 20 sessions of 2 turns on one replica with room for everything; 16-token blocks.
    // Sessions open 1 s apart and a turn 2 follows its turn 1 after 0.05 s on average,
    // so each session's two turns come before the next session opens (a gap over 1 s
    // has probability e^-20). Blocks are cached when scheduled, so a turn 2 that comes
    // while turn 1 still runs hits as well.
    // Turn 1: 512-token system prompt + 488 drawn = 1,000 tokens, reply 1 token (its KV
    // is never computed: the last token is not fed back). Turn 2: 1,000 + 1 + 200 new =
    // 1,201 tokens. Turn 1 caches its 62 full blocks (992 tokens), so every turn 2 hits
    // 992 tokens; every turn 1 but the very first hits the system prompt's 32 blocks.
    // Hits: 19 x 512 + 20 x 992 = 29,568 of 20 x 1,000 + 20 x 1,201 = 44,020 prompt
    // tokens; 39 of 40 requests hit. (Replies' blocks: see the scheduler's tests.)
    let text = r#"
[scenario]
name = "sessions"
seed = 5
[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 1
[model]
preset = "llama-3-8b"
dtype = "bf16"
[parallel]
dp = 1
[serving]
prefix_caching = true
[workload]
requests = 40
arrival = { process = "constant", rate_per_s = 1.0 }
prompt_tokens = { dist = "fixed", value = 488 }
output_tokens = { dist = "fixed", value = 1 }
system_prompt_tokens = 512
sessions = { turns = { dist = "fixed", value = 2 }, follow_up_tokens = { dist = "fixed", value = 200 }, think_time_s = 0.05 }
"#;
    let out = simulate(&setup(text), RunOptions::default()).expect("run");
    let p = out.report.summary.prefix_cache.expect("prefix_cache");
    assert_eq!((p.requests, p.hit_requests), (40, 39));
    assert_eq!((p.hit_tokens, p.prompt_tokens), (29_568, 44_020));
    assert_eq!(p.ttft_hit_s.count + p.ttft_miss_s.count, 40);
    assert_eq!(out.report.summary.requests.completed, 40);
}

/// Runs `clustersim run` on `text` (written to a temporary scenario) with `sets`;
/// asserts exit code 2 and that stderr names every fragment.
fn run_fails_with(text: &str, sets: &[&str], fragments: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("s.toml");
    std::fs::write(&file, text).expect("write scenario");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clustersim"));
    cmd.arg("run").arg(&file).arg("--out").arg(dir.path().join("out")).arg("--no-plots").arg("--quiet");
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let out = cmd.output().expect("clustersim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{stderr}");
    for f in fragments {
        assert!(stderr.contains(f), "stderr lacks {f:?}:\n{stderr}");
    }
}

#[test]
fn prefix_settings_that_make_no_sense_exit_2_naming_the_key() {
    let base = scenario("").replace(TRACE, &format!("{}/{TRACE}", env!("CARGO_MANIFEST_DIR")));
    run_fails_with(&base, &["serving.prefix_block_tokens=256"], &["serving.prefix_block_tokens", "512"]);
    run_fails_with(&base, &["serving.prefix_block_tokens=520"], &["serving.prefix_block_tokens"]);
    run_fails_with(&base, &["serving.prefix_caching=false", "serving.router=\"cache_aware\""], &["serving.router"]);
    run_fails_with(
        &format!("{base}\n[serving.kv_offload]\nhost_memory_gib = -1\n"),
        &[],
        &["serving.kv_offload.host_memory_gib"],
    );
}

#[test]
fn prefix_caching_with_pools_is_refused_not_ignored() {
    // Disaggregated runs do not model prefix reuse yet: asking for it must fail
    // naming the key, never run as if it were off.
    let pooled = r#"
[scenario]
name = "pooled"
seed = 1
[hardware]
gpu = "h100-sxm"
nodes = 2
gpus_per_node = 8
[model]
preset = "llama-3-8b"
dtype = "bf16"
[[pools]]
role = "prefill"
replicas = 1
nodes = 1
[[pools]]
role = "decode"
replicas = 1
nodes = 1
[serving]
prefix_caching = true
[workload]
requests = 4
arrival = { process = "poisson", rate_per_s = 1.0 }
prompt_tokens = { dist = "fixed", value = 100 }
output_tokens = { dist = "fixed", value = 10 }
"#;
    run_fails_with(pooled, &[], &["serving.prefix_caching", "[[pools]]"]);
    run_fails_with(pooled, &["serving.prefix_caching=false", "serving.router=\"cache_aware\""], &["serving.router"]);
    let offload =
        pooled.replace("prefix_caching = true", "prefix_caching = false\n[serving.kv_offload]\nhost_memory_gib = 64");
    run_fails_with(&offload, &[], &["serving.kv_offload", "[[pools]]"]);
}
