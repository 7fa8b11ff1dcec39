//! `clustersim validate` on bad input: every problem gets exit code 2 and one
//! message naming the file, where in it (line:col or a key path) and what is
//! allowed; never a panic (exit code 101).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios").join(name)
}

/// Runs `clustersim validate FILE --set S...` from the scenario folder.
fn validate(file: &str, sets: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clustersim"));
    cmd.current_dir(data("")).arg("validate").arg(file);
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    cmd.output().expect("clustersim runs")
}

/// Asserts exit code 2 and that stderr holds every fragment; returns stderr.
fn fails_with(out: &Output, fragments: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    for f in fragments {
        assert!(stderr.contains(f), "stderr lacks {f:?}:\n{stderr}");
    }
    // One message, not a cascade.
    assert_eq!(stderr.matches("error:").count(), 1, "exactly one error message:\n{stderr}");
    stderr
}

#[test]
fn the_tiny_scenario_is_valid() {
    // The base every other test breaks: it must pass, or the tests below prove nothing.
    let out = validate("tiny.toml", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn toml_syntax_error_names_line_and_column() {
    // The unclosed string on line 8 (column 16 is where the string runs out).
    let out = validate("syntax_error.toml", &[]);
    fails_with(&out, &["syntax_error.toml:8:", "`\"`"]);
}

#[test]
fn unknown_top_level_key_lists_the_allowed_tables() {
    let out = validate("tiny.toml", &["colour=1"]);
    fails_with(&out, &["tiny.toml:", "unknown field `colour`", "`hardware`", "`workload`"]);
}

#[test]
fn unknown_nested_key_names_its_line_and_the_allowed_keys() {
    // `max_seq` (a typo) on line 16 of the file, inside [serving].
    let out = validate("unknown_nested_key.toml", &[]);
    fails_with(&out, &["unknown_nested_key.toml:16:1", "`max_seq`", "`max_seqs`"]);
}

#[test]
fn unknown_nested_key_via_set_is_rejected() {
    let out = validate("tiny.toml", &["hardware.gpus=2"]);
    fails_with(&out, &["tiny.toml:", "unknown field `gpus`", "`gpus_per_node`", "--set hardware.gpus=2"]);
}

#[test]
fn wrong_type_names_line_column_and_the_expected_type() {
    // nodes = "two" is on line 9, the value starts at column 9.
    let out = validate("wrong_type.toml", &[]);
    fails_with(&out, &["wrong_type.toml:9:9", "string \"two\"", "u32"]);
}

#[test]
fn tp_zero_is_rejected_at_its_key() {
    let out = validate("tiny.toml", &["parallel.tp=0"]);
    fails_with(&out, &["tiny.toml", "`parallel.tp`", "at least 1"]);
}

#[test]
fn plan_larger_than_the_cluster_is_rejected() {
    // dp=5 on 4 GPUs: the message gives the product and the cluster size.
    let out = validate("tiny.toml", &["parallel.dp=5"]);
    fails_with(&out, &["tiny.toml", "`parallel`", "= 5 GPUs", "the cluster has 4"]);
}

#[test]
fn tp_must_divide_the_heads() {
    // Llama-3-8B has 32 heads; tp=3 fits the 4 GPUs with dp=1 but does not divide 32.
    let out = validate("tiny.toml", &["parallel.dp=1", "parallel.tp=3"]);
    fails_with(&out, &["tiny.toml", "`parallel.tp`", "is 3", "must divide", "32 attention heads"]);
}

#[test]
fn missing_trace_file_is_named() {
    let out = validate("tiny.toml", &["workload.trace=no_such_trace.csv"]);
    fails_with(&out, &["tiny.toml", "`workload.trace`", "no_such_trace.csv", "relative to the scenario file"]);
}

#[test]
fn unknown_gpu_preset_lists_the_presets() {
    let out = validate("tiny.toml", &["hardware.gpu=z100"]);
    fails_with(&out, &["tiny.toml", "`hardware.gpu`", "\"z100\"", "h100-sxm", "a100-80g"]);
}

#[test]
fn unknown_model_preset_lists_the_presets() {
    let out = validate("tiny.toml", &["model.preset=gpt-9"]);
    fails_with(&out, &["tiny.toml", "`model.preset`", "\"gpt-9\"", "llama-3-8b", "mixtral-8x7b"]);
}

#[test]
fn unknown_framework_lists_the_frameworks() {
    let out = validate("tiny.toml", &["serving.framework=trt"]);
    fails_with(&out, &["tiny.toml", "`serving.framework`", "\"trt\"", "optimized", "vllm-2023"]);
}

#[test]
fn bad_arrival_process_lists_the_processes() {
    let out = validate("tiny.toml", &[r#"workload.arrival={ process = "burst", rate_per_s = 1.0 }"#]);
    fails_with(&out, &["tiny.toml:", "`burst`", "`poisson`", "`closed_loop`"]);
}

#[test]
fn length_min_above_max_is_rejected() {
    let out = validate("tiny.toml", &["workload.prompt_tokens.min=600", "workload.prompt_tokens.max=100"]);
    fails_with(&out, &["tiny.toml", "`workload.prompt_tokens`", "min (600) is greater than max (100)"]);
}

#[test]
fn negative_rate_is_rejected() {
    let out = validate("tiny.toml", &["workload.arrival.rate_per_s=-1.0"]);
    fails_with(&out, &["tiny.toml", "`workload.arrival.rate_per_s`", "is -1", "greater than 0"]);
}

#[test]
fn efficiency_above_one_is_rejected() {
    let out = validate("tiny.toml", &["hardware.gpu_spec.compute_efficiency=1.5"]);
    fails_with(&out, &["tiny.toml", "`hardware.gpu_spec.compute_efficiency`", "is 1.5", "(0, 1]"]);
}

#[test]
fn power_capped_gemm_efficiency_cannot_exceed_the_boost_one() {
    let out = validate(
        "tiny.toml",
        &["hardware.gpu_spec.gemm_efficiency_short=0.7", "hardware.gpu_spec.gemm_efficiency_long=0.8"],
    );
    fails_with(&out, &["tiny.toml", "`hardware.gpu_spec.gemm_efficiency_long`", "is 0.8", "cannot exceed"]);
}

#[test]
fn set_without_equals_is_a_usage_error() {
    // Caught by the argument parser: names the flag, the bad text and the expected form.
    let out = validate("tiny.toml", &["parallel.tp"]);
    fails_with(&out, &["--set", "`parallel.tp`", "key.path=value"]);
}

#[test]
fn set_into_a_scalar_names_the_key() {
    // scenario.name is a string: nothing can be set inside it.
    let out = validate("tiny.toml", &["scenario.name.x=1"]);
    fails_with(&out, &["tiny.toml", "`scenario.name.x`", "--set", "holds a value, not a table"]);
}

#[test]
fn malformed_trace_row_names_the_trace_file_and_line() {
    // validate parses the trace: row 4 of bad_trace.csv has a non-numeric prompt length.
    let out = validate("with_bad_trace.toml", &[]);
    fails_with(&out, &["bad_trace.csv:4:", "\"many\"", "whole number of tokens"]);
}

#[test]
fn the_same_scenario_with_a_good_trace_is_valid() {
    // Control for the test above: the failure comes from the row, not the scenario.
    let out = validate("with_bad_trace.toml", &["workload.trace=good_trace.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn nonexistent_scenario_file_is_named() {
    let out = validate("no_such_scenario.toml", &[]);
    fails_with(&out, &["no_such_scenario.toml", "cannot read the scenario file"]);
}

#[test]
fn event_ending_before_it_starts_is_rejected() {
    let out = validate("tiny.toml", &[r#"events=[{ kind = "load_change", at_s = 2.0, until_s = 1.0, factor = 2.0 }]"#]);
    fails_with(&out, &["tiny.toml", "`events.0.until_s`", "later than at_s"]);
}

#[test]
fn event_ending_when_it_starts_is_rejected() {
    // until_s == at_s is an empty interval: also an error.
    let out = validate(
        "tiny.toml",
        &[r#"events=[{ kind = "gpu_slowdown", at_s = 1.0, until_s = 1.0, gpu = 0, fraction = 0.5 }]"#],
    );
    fails_with(&out, &["tiny.toml", "`events.0.until_s`", "later than at_s"]);
}

#[test]
fn event_gpu_out_of_range_names_the_valid_range() {
    // The tiny cluster has GPUs 0..3.
    let out = validate("tiny.toml", &[r#"events=[{ kind = "gpu_failure", at_s = 1.0, gpu = 4 }]"#]);
    fails_with(&out, &["tiny.toml", "`events.0.gpu`", "is 4", "0..3"]);
}

#[test]
fn too_many_gpus_do_not_overflow() {
    // nodes x gpus_per_node past u32 used to panic with a multiply overflow.
    let out = validate("tiny.toml", &["hardware.nodes=100000", "hardware.gpus_per_node=100000"]);
    fails_with(&out, &["tiny.toml", "`hardware`", "too many GPUs"]);
}
