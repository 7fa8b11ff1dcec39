//! Regression tests for issue 14's nonsense and never-ending scenarios that
//! validation now stops: each value below used to be accepted by `validate` and
//! then spun forever, printed nonsense or aborted in `run`. Each must now be
//! refused at once with exit 2 and a message naming the key, the value and the
//! plausible range (src/scenario/bounds.rs).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml")
}

/// `validate tiny.toml --set SET` must exit 2 within 5 s naming every fragment.
fn refused(set: &str, fragments: &[&str]) {
    let t = tiny();
    let started = Instant::now();
    let (code, _, err) = common::clustersim(&["validate", t.to_str().unwrap(), "--set", set]);
    assert!(started.elapsed() < Duration::from_secs(5), "--set {set}: validation took {:?}", started.elapsed());
    assert_eq!(code, 2, "--set {set}: exit code; stderr:\n{err}");
    for f in fragments {
        assert!(err.contains(f), "--set {set}: stderr lacks {f:?}:\n{err}");
    }
}

#[test]
fn a_memory_bandwidth_of_1e_minus_12_is_refused() {
    // Used to spin at 100 % CPU: every decode step took ~1e12 s.
    refused("hardware.gpu_spec.memory_bandwidth_tb_s=1e-12", &["memory_bandwidth_tb_s", "1e-12", "0.01 to 1000 TB/s"]);
}

#[test]
fn a_launch_overhead_of_1e15_us_is_refused() {
    refused("hardware.gpu_spec.launch_overhead_us=1e15", &["launch_overhead_us", "1e15", "0 to 100000 µs"]);
}

#[test]
fn a_straggler_at_1e_minus_12_of_its_speed_is_refused() {
    let ev = "events=[{ kind = \"gpu_slowdown\", at_s = 0.0, gpu = 0, fraction = 1e-12 }]";
    refused(ev, &["events.0.fraction", "1e-12", "0.001 to 1"]);
}

#[test]
fn a_straggler_at_1e_minus_300_is_refused() {
    let ev = "events=[{ kind = \"gpu_slowdown\", at_s = 0.0, gpu = 0, fraction = 1e-300 }]";
    refused(ev, &["events.0.fraction", "1e-300"]);
}

#[test]
fn requests_beyond_any_trace_are_refused() {
    // u64::MAX does not fit a TOML integer (i64); the largest that does is refused by range.
    refused("workload.requests=9223372036854775807", &["workload.requests", "at most 100000000"]);
    refused("workload.requests=18446744073709551615", &["--set workload.requests=18446744073709551615"]);
}

#[test]
fn a_closed_loop_of_4294967295_is_refused() {
    // Used to take 20 s for one request.
    refused(
        "workload.arrival={ process = \"closed_loop\", concurrency = 4294967295 }",
        &["workload.arrival.concurrency", "at most 1000000"],
    );
}

#[test]
fn a_length_range_up_to_u32_max_is_refused() {
    // `assess` used to loop over every integer of the range for over a minute.
    refused(
        "workload.prompt_tokens={ dist = \"zipf\", s = 1.0, min = 1, max = 4294967295 }",
        &["workload.prompt_tokens.max", "4294967295", "at most 16777216"],
    );
}

#[test]
fn a_peak_of_1e_minus_300_tflops_is_refused() {
    // Used to report MFU 1.4e303 %.
    refused("hardware.gpu_spec.peak_tflops=1e-300", &["peak_tflops", "is 1e-300", "0.1 to 100000 TFLOP/s"]);
}

#[test]
fn a_collective_overhead_of_1e300_us_is_refused() {
    // Used to report overhead 2.4e13 % over 0.04 s of simulated time.
    refused("parallel.collective_overhead_us=1e300", &["collective_overhead_us", "1e300"]);
}

#[test]
fn sixty_five_thousand_gpus_per_node_are_refused() {
    // Chart rendering used to ask for 5 GB and abort.
    refused("hardware.gpus_per_node=65536", &["hardware.gpus_per_node", "65536", "at most 1024"]);
}

#[test]
fn eight_hundred_thousand_gpus_are_refused() {
    // 100,000 nodes x 4 (tiny.toml) = 400,000 GPUs; allocation per GPU of the cluster
    // used to abort at 800,000.
    refused("hardware.nodes=100000", &["hardware.nodes", "400000 GPUs", "at most 131072"]);
}

#[test]
fn arrivals_that_overflow_the_clock_are_refused() {
    let t = tiny();
    let (code, _, err) = common::clustersim(&[
        "validate",
        t.to_str().unwrap(),
        "--set",
        "workload.arrival={ process = \"poisson\", rate_per_s = 1e-6 }",
        "--set",
        "workload.requests=2000",
    ]);
    // 2,000 / 1e-6 = 2e9 s > 1e9 s.
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2.000e9 s") && err.contains("rate_per_s"), "{err}");
}

#[test]
fn absurd_work_is_refused_with_an_estimate() {
    // 10^8 requests x (fixed 1,000,000 prompt + 1 output) = 1.0e14 tokens > 1e10.
    let t = tiny();
    let (code, _, err) = common::clustersim(&[
        "validate",
        t.to_str().unwrap(),
        "--set",
        "workload.requests=100000000",
        "--set",
        "workload.arrival={ process = \"all_at_once\" }",
        "--set",
        "workload.prompt_tokens={ dist = \"fixed\", value = 1000000 }",
        "--set",
        "workload.output_tokens={ dist = \"fixed\", value = 1 }",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`workload.requests`") && err.contains("1.00e14 tokens"), "{err}");
}

#[test]
fn a_results_folder_name_the_filesystem_rejects_is_refused_by_validate() {
    // 300 bytes: over the 255-byte file-name limit, so `run` used to fail late.
    let long = format!("scenario.name=\"{}\"", "n".repeat(300));
    refused(&long, &["scenario.name", "300 bytes", "at most 200"]);
    refused("scenario.name=\"a\\u0000b\"", &["scenario.name", "control character"]);
}

#[test]
fn every_shipped_scenario_is_within_bounds() {
    // The bounds must not refuse anything real: every shipped scenario still validates.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (code, _, err) = common::clustersim(&["validate", p.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {err}", p.display());
            n += 1;
        }
    }
    assert!(n >= 5, "found {n} shipped scenarios");
}

/// `validate tiny.toml` with 100,000 requests of fixed `prompt` and `output` tokens
/// and `sets`: exit 0 and the stderr.
fn validate_work(prompt: u32, output: u32, sets: &[&str]) -> String {
    let t = tiny();
    let (p, o) = (
        format!("workload.prompt_tokens={{ dist = \"fixed\", value = {prompt} }}"),
        format!("workload.output_tokens={{ dist = \"fixed\", value = {output} }}"),
    );
    let mut args = vec!["validate", t.to_str().unwrap(), "--set", "workload.requests=100000", "--set", &p, "--set", &o];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let (code, _, err) = common::clustersim(&args);
    assert_eq!(code, 0, "{err}");
    err
}

#[test]
fn long_but_plausible_work_is_warned_with_an_estimate() {
    // 100,000 requests x (fixed 1,000 prompt + fixed 1,000 output) = 2.00e8 tokens:
    // above the 1e8 warning level, below the 1e10 refusal.
    let err = validate_work(1000, 1000, &[]);
    assert!(err.contains("warning:") && err.contains("2.00e8 tokens"), "{err}");
}

#[test]
fn a_system_prompt_of_2_pow_32_tokens_is_refused() {
    // Fuzz (issue 12 hardening): with prefix caching each arrival hashed 4,294,967,295
    // system-prompt tokens into 16-token blocks (268 M hashes, 2 GiB per request) and the
    // run hung. 16,777,216 (2^24) is the bound of every token length.
    refused("workload.system_prompt_tokens=4294967295", &["workload.system_prompt_tokens", "4294967295", "16777216"]);
}

#[test]
fn the_system_prompt_counts_in_the_work_estimate() {
    // 100,000 requests x (1,000 system + fixed 500 prompt + fixed 500 output) = 2.00e8
    // tokens: warned as long; without the system prompt 1.00e8 is not above the level.
    assert!(!validate_work(500, 500, &[]).contains("warning:"));
    let err = validate_work(500, 500, &["workload.system_prompt_tokens=1000"]);
    assert!(err.contains("warning:") && err.contains("2.00e8 tokens"), "{err}");
}
