//! Regression tests for issue 14's wrong exit codes and messages: traces that are
//! not text or cannot be read, `--set` errors, and stdout closed early. Each used
//! to exit 1 without a line, point at a line of a document the user never saw, or
//! panic with exit 101.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml")
}

/// A copy of tiny.toml in `dir` that replays `trace` instead of generating requests.
fn scenario_with_trace(dir: &Path, trace: &str) -> PathBuf {
    let text = std::fs::read_to_string(tiny()).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !["requests", "arrival", "prompt_tokens", "output_tokens"].iter().any(|k| l.starts_with(k)))
        .collect();
    let p = dir.join("s.toml");
    std::fs::write(&p, format!("{}\ntrace = {trace:?}\n", kept.join("\n"))).unwrap();
    p
}

/// Both `validate` and `run` exit 2 naming every fragment, and `run` leaves no folder.
fn both_refuse(scenario: &Path, fragments: &[&str]) {
    let out = scenario.parent().unwrap().join("out");
    for args in [
        vec!["validate", scenario.to_str().unwrap()],
        vec!["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()],
    ] {
        let (code, _, err) = common::clustersim(&args);
        assert_eq!(code, 2, "{args:?}: exit code; stderr:\n{err}");
        for f in fragments {
            assert!(err.contains(f), "{args:?}: stderr lacks {f:?}:\n{err}");
        }
    }
    assert!(!out.exists(), "a refused run left {}", out.display());
}

#[test]
fn a_trace_with_a_non_utf8_byte_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // 0xff is byte 6 of line 3 ("0.5,1\xff,5").
    std::fs::write(dir.path().join("t.csv"), b"arrival_s,prompt_tokens,output_tokens\n0,10,5\n0.5,1\xff,5\n").unwrap();
    let s = scenario_with_trace(dir.path(), "t.csv");
    both_refuse(&s, &["t.csv:3:", "0xff", "UTF-8"]);
}

#[test]
fn a_binary_trace_is_called_binary_with_a_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), b"arrival_s,prompt_tokens,output_tokens\n\x7fELF\x02\x01\x00\x00")
        .unwrap();
    let s = scenario_with_trace(dir.path(), "t.csv");
    both_refuse(&s, &["t.csv:2:", "binary"]);
}

#[test]
fn an_unreadable_trace_exits_2_naming_the_file() {
    // /proc/self/mem is a regular file that every read of offset 0 fails on (EIO).
    if !Path::new("/proc/self/mem").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = scenario_with_trace(dir.path(), "/proc/self/mem");
    both_refuse(&s, &["/proc/self/mem", "cannot read the trace"]);
}

#[test]
fn a_set_error_names_the_override_not_a_line_of_a_rewritten_document() {
    // Used to say "tiny.toml:26:12: invalid type ..." (a line of the re-serialized
    // document; in seed_corrected.toml that line is a comment).
    let t = tiny();
    let (code, _, err) = common::clustersim(&["validate", t.to_str().unwrap(), "--set", "parallel.tp=four"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`parallel.tp`") && err.contains("--set parallel.tp=four"), "{err}");
    assert!(err.contains("read as a string"), "explains the bare word: {err}");
    assert!(!err.contains("tiny.toml:1") && !err.contains("tiny.toml:2"), "no line:col of a rewritten document: {err}");
}

#[test]
fn a_set_beside_a_broken_file_reports_the_file_line() {
    // The file's own error keeps its true line (8) even with overrides given.
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/syntax_error.toml");
    let (code, _, err) = common::clustersim(&["validate", f.to_str().unwrap(), "--set", "parallel.tp=1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("syntax_error.toml:8:"), "{err}");
}

/// Runs `args` with stdout a pipe whose reading end is closed at once.
fn with_closed_stdout(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        let quiet = out.status.code() == Some(0) || out.status.signal() == Some(libc_sigpipe());
        assert!(quiet, "{args:?}: ended with {:?}; stderr:\n{err}", out.status);
    }
}

/// SIGPIPE's number on Linux and the BSDs.
#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let t = tiny();
    let t = t.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    with_closed_stdout(&["dag", t]);
    with_closed_stdout(&["dag", t, "--format", "json"]);
    with_closed_stdout(&["validate", t]);
    with_closed_stdout(&["collective", "--sizes", "1KiB..1MiB"]);
    with_closed_stdout(&["assess", t]);
    with_closed_stdout(&["run", t, "--out", out.to_str().unwrap(), "--no-plots", "--quiet"]);
    with_closed_stdout(&["--help"]);
}

#[test]
fn collective_with_absurd_node_counts_is_refused_at_once() {
    // Issue 14: `collective --nodes 100000` ran for minutes (4,096 nodes took 11.6 GB);
    // now it exits 2 naming the allowed range, and 0 nodes likewise.
    for nodes in ["100000", "0"] {
        let started = std::time::Instant::now();
        let (code, _, err) = common::clustersim(&["collective", "--nodes", nodes]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("1 to 128"), "{err}");
        assert!(started.elapsed().as_secs() < 10);
    }
}

#[test]
fn collective_with_an_unknown_framework_names_the_flag_and_the_profiles() {
    // `collective --framework` takes a shipped profile or a .toml file: anything else
    // exits 2 naming the flag and the shipped names; a missing file names the file.
    let (code, _, err) = common::clustersim(&["collective", "--framework", "nope", "--sizes", "16KiB..16KiB"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--framework nope") && err.contains("trtllm"), "{err}");
    let (code, _, err) = common::clustersim(&["collective", "--framework", "no/such.toml", "--sizes", "16KiB..16KiB"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no/such.toml"), "{err}");
    // A shipped profile with kernels: 16 KiB over 8 H100s runs one-shot.
    let (code, out, err) = common::clustersim(&["collective", "--framework", "vllm", "--sizes", "16KiB..16KiB"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("one_shot"), "{out}");
}
