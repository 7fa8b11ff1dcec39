//! Regression tests for issue 14's "results left behind or mixed": a results folder
//! is all-or-nothing (written to a hidden sibling, renamed into place at the end).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn tiny() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml").to_str().unwrap().to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn force_replaces_the_whole_folder() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("r");
    let out_s = out.to_str().unwrap();
    // The first run writes trace.json and plots/; the second (no --trace, --no-plots)
    // must not keep them beside its own summary.json.
    let (code, _, err) = common::clustersim(&["run", &tiny(), "--out", out_s, "--quiet", "--trace"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.join("trace.json").exists() && out.join("plots").exists());
    let (code, _, err) = common::clustersim(&["run", &tiny(), "--out", out_s, "--quiet", "--no-plots", "--force"]);
    assert_eq!(code, 0, "{err}");
    let n = names(&out);
    assert!(!n.contains(&"trace.json".to_string()) && !n.contains(&"plots".to_string()), "stale files: {n:?}");
    assert!(n.contains(&"summary.json".to_string()));
    assert_eq!(names(root.path()), vec!["r".to_string()], "no staging folder left beside it");
}

#[test]
fn a_bad_trace_leaves_an_existing_empty_out_empty() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("r");
    std::fs::create_dir(&out).unwrap();
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/with_bad_trace.toml");
    let (code, _, err) = common::clustersim(&["run", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(names(&out).is_empty(), "partial files: {:?}", names(&out));
    assert_eq!(names(root.path()), vec!["r".to_string()]);
}

#[test]
fn a_run_where_every_request_is_dropped_writes_the_requests_header() {
    // A 2,000,000-token prompt cannot fit the ~460k-token KV cache of tiny.toml:
    // all 40 requests are dropped, none finishes, requests.csv used to be 0 bytes.
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("r");
    let (code, _, err) = common::clustersim(&[
        "run",
        &tiny(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-plots",
        "--set",
        "workload.prompt_tokens={ dist = \"fixed\", value = 2000000 }",
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(out.join("requests.csv")).unwrap();
    assert!(text.starts_with("id,replica,arrival_s,prompt_tokens,"), "{text:?}");
    assert_eq!(text.lines().count(), 1, "header only: {text:?}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_no_partial_folder() {
    // The Azure conversation scenario takes over a second of wall time; SIGINT
    // arrives in the middle. Either the run was interrupted (exit 130, nothing left)
    // or, on a very fast machine, it had already finished whole.
    let root = tempfile::tempdir().unwrap();
    let out: PathBuf = root.path().join("r");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/azure_conv_llama2-70b.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    if status.code() == Some(0) {
        assert!(out.join("summary.json").exists(), "a finished run is whole");
    } else {
        assert_eq!(status.code(), Some(130), "{status:?}");
        assert!(!out.exists(), "interrupted run left {:?}", names(&out));
        assert!(names(root.path()).is_empty(), "staging left: {:?}", names(root.path()));
    }
}
