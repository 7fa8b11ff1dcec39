//! `clustersim run` and `validate` end to end: results folders, --force,
//! default folder naming, --set on every command, --window parsing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml")
}

/// Runs clustersim with `args` in `dir`.
fn clustersim<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clustersim")).current_dir(dir).args(args).output().expect("clustersim runs")
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Every file in `dir` (one level) and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

fn tiny_path() -> String {
    tiny().to_string_lossy().into_owned()
}

#[test]
fn run_writes_consistent_results_and_prints_the_summary() {
    // The table on stdout, and files that agree with it and with each other.
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let stdout = ok(&clustersim(tmp.path(), &["run", &tiny_path(), "--out", out_dir.to_str().unwrap(), "--quiet"]));
    assert!(stdout.contains("scenario tiny (seed 42)"), "{stdout}");
    assert!(stdout.contains("40 arrived, 40 completed"), "{stdout}");
    assert!(stdout.contains(&format!("results    {}", out_dir.display())), "{stdout}");

    let s = summary(&out_dir);
    assert_eq!(s["scenario"], "tiny");
    assert_eq!(s["seed"], 42);
    assert_eq!(s["requests"]["completed"], 40);
    assert_eq!(s["ttft_s"]["count"], 40);
    let ttft_p50 = s["ttft_s"]["p50"].as_f64().unwrap();
    let ttft_max = s["ttft_s"]["max"].as_f64().unwrap();
    assert!(ttft_p50 > 0.0 && ttft_p50 <= ttft_max, "p50 {ttft_p50} max {ttft_max}");

    // requests.csv: a header and one row per completed request, ids 0..40 each once.
    let requests = std::fs::read_to_string(out_dir.join("requests.csv")).unwrap();
    let mut lines = requests.lines();
    assert!(lines.next().unwrap().starts_with("id,"));
    let mut ids: Vec<u64> = lines.map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());

    // gpus.csv: one row per GPU of the 4-GPU cluster.
    let gpus = std::fs::read_to_string(out_dir.join("gpus.csv")).unwrap();
    assert_eq!(gpus.lines().count(), 1 + 4, "{gpus}");

    // The as-run scenario is saved and is itself a valid scenario with the same name and seed.
    let as_run = clustersim::scenario::load_setup(&out_dir.join("scenario.toml"), &[]).expect("as-run scenario");
    assert_eq!((as_run.name.as_str(), as_run.seed), ("tiny", 42));
    assert_eq!(as_run.workload.requests, Some(40));
}

#[test]
fn existing_out_folder_is_not_overwritten_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = out_dir.to_str().unwrap();
    ok(&clustersim(tmp.path(), &["run", &tiny_path(), "--out", out, "--quiet"]));
    let before = snapshot(&out_dir);
    assert!(before.contains_key("summary.json"));

    // A second run (with another seed, so its results would differ) is refused: exit 2,
    // a message naming the folder and --force, and every file byte for byte untouched.
    let refused = clustersim(tmp.path(), &["run", &tiny_path(), "--out", out, "--quiet", "--set", "scenario.seed=43"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(err.contains(out) && err.contains("--force"), "{err}");
    assert_eq!(snapshot(&out_dir), before, "results changed without --force");

    // With --force the run goes ahead and replaces the results.
    ok(&clustersim(
        tmp.path(),
        &["run", &tiny_path(), "--out", out, "--quiet", "--force", "--set", "scenario.seed=43"],
    ));
    assert_eq!(summary(&out_dir)["seed"], 43);
    assert_ne!(snapshot(&out_dir)["summary.json"], before["summary.json"]);
}

#[test]
fn empty_out_folder_is_used_without_force() {
    // An existing but empty folder holds nothing to lose: no --force needed.
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("empty");
    std::fs::create_dir(&out_dir).unwrap();
    ok(&clustersim(tmp.path(), &["run", &tiny_path(), "--out", out_dir.to_str().unwrap(), "--quiet"]));
    assert_eq!(summary(&out_dir)["requests"]["completed"], 40);
}

#[test]
fn default_results_folder_is_named_after_the_scenario_and_never_reused() {
    // Without --out: results/<scenario name>/ under the working folder, then results/<name>-2/.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(tiny(), tmp.path().join("my.toml")).unwrap();
    let first = ok(&clustersim(tmp.path(), &["run", "my.toml", "--quiet"]));
    assert!(first.contains("results    results/tiny\n"), "{first}");
    let r1 = tmp.path().join("results/tiny");
    let before = snapshot(&r1);

    let second = ok(&clustersim(tmp.path(), &["run", "my.toml", "--quiet", "--set", "scenario.seed=7"]));
    assert!(second.contains("results    results/tiny-2\n"), "{second}");
    let r2 = tmp.path().join("results/tiny-2");
    assert_eq!(summary(&r2)["seed"], 7);
    assert_eq!(snapshot(&r1), before, "the first run's results were touched");

    let third = ok(&clustersim(tmp.path(), &["run", "my.toml", "--quiet"]));
    assert!(third.contains("results    results/tiny-3\n"), "{third}");
}

#[test]
fn set_changes_what_validate_reports() {
    // tiny.toml plans dp=2 (2 GPUs of 4); --set parallel.dp=1 makes the plan use 1.
    let dir = tiny().parent().unwrap().to_path_buf();
    let base = ok(&clustersim(&dir, &["validate", "tiny.toml"]));
    assert!(base.contains("dp=2") && base.contains("uses 2,"), "{base}");
    let one = ok(&clustersim(&dir, &["validate", "tiny.toml", "--set", "parallel.dp=1"]));
    assert!(one.contains("dp=1") && one.contains("uses 1,"), "{one}");
    let more = ok(&clustersim(&dir, &["validate", "tiny.toml", "--set", "hardware.nodes=2"]));
    assert!(more.contains("8 GPUs (2 nodes x 4"), "{more}");
}

#[test]
fn set_changes_the_run() {
    // A lower arrival rate spreads the same 40 requests over a longer time: the
    // throughput window grows, and the override is recorded in the as-run scenario.
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, sets: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec!["run".to_string(), tiny_path(), "--quiet".into(), "--out".into()];
        args.push(out.to_str().unwrap().to_string());
        for s in sets {
            args.push("--set".into());
            args.push(s.to_string());
        }
        ok(&clustersim(tmp.path(), &args));
        out
    };
    let base = run("base", &[]);
    let slow = run("slow", &["workload.arrival.rate_per_s=5.0"]);
    let (b, s) = (summary(&base), summary(&slow));
    assert_ne!(b, s);
    let window = |v: &serde_json::Value| v["throughput"]["window_s"].as_f64().unwrap();
    // 40 arrivals at 20/s take about 2 s, at 5/s about 8 s.
    assert!(window(&s) > 2.0 * window(&b), "window {} vs {}", window(&s), window(&b));
    let as_run = std::fs::read_to_string(slow.join("scenario.toml")).unwrap();
    assert!(as_run.contains("rate_per_s = 5.0"), "{as_run}");

    // An inline table as the value: a constant process at 2/s, evenly spaced arrivals.
    let constant = run("constant", &[r#"workload.arrival={ process = "constant", rate_per_s = 2.0 }"#]);
    let c = summary(&constant);
    assert_eq!(c["requests"]["completed"], 40);
    let requests = std::fs::read_to_string(constant.join("requests.csv")).unwrap();
    let mut arrivals: Vec<f64> =
        requests.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect();
    arrivals.sort_by(f64::total_cmp);
    for w in arrivals.windows(2) {
        assert!((w[1] - w[0] - 0.5).abs() < 1e-6, "constant 2/s arrivals are 0.5 s apart: {arrivals:?}");
    }
}

#[test]
fn malformed_window_is_a_usage_error() {
    // `--window 5` has no `..`; exit 2 and a message saying the expected form.
    let tmp = tempfile::tempdir().unwrap();
    let out = clustersim(tmp.path(), &["run", &tiny_path(), "--quiet", "--window", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--window") && err.contains("START..END"), "{err}");
    // Nothing ran, so nothing was written.
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn window_must_be_increasing_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["2..1", "a..1", "1..b", "-1..1", "1..1"] {
        // `--window=...` so that `-1..1` is not taken for a flag.
        let out = clustersim(tmp.path(), &["run", &tiny_path(), "--quiet", &format!("--window={bad}")]);
        assert_eq!(out.status.code(), Some(2), "--window {bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--window"), "--window {bad}: {}", stderr(&out));
    }
}

#[test]
fn a_valid_window_is_accepted() {
    // Control for the tests above: a well-formed window runs.
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("w");
    ok(&clustersim(
        tmp.path(),
        &["run", &tiny_path(), "--quiet", "--window", "0.5..0.6", "--out", out_dir.to_str().unwrap()],
    ));
    assert_eq!(summary(&out_dir)["requests"]["completed"], 40);
    // The timeline holds that window: every interval overlaps [0.5, 0.6], and some exist.
    let timeline = std::fs::read_to_string(out_dir.join("timeline.csv")).unwrap();
    let spans: Vec<(f64, f64)> = timeline
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert!(!spans.is_empty());
    assert!(spans.iter().all(|&(a, b)| a < 0.6 + 1e-9 && b > 0.5 - 1e-9), "interval outside the window");
}

#[test]
fn run_rejects_a_bad_scenario_with_exit_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = clustersim(tmp.path(), &["run", &tiny_path(), "--quiet", "--set", "parallel.tp=0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`parallel.tp`"), "{}", stderr(&out));
    assert!(!tmp.path().join("results").exists(), "a rejected scenario created a results folder");
}

#[test]
fn a_run_that_fails_on_its_trace_leaves_no_folder_behind() {
    // The trace is read when the run starts; a bad row (line 4) is exit 2 naming the
    // trace file and line, and the results folder the run had created is removed, so
    // the next run with the same --out is not refused.
    let tmp = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/with_bad_trace.toml");
    let out_dir = tmp.path().join("out");
    let out =
        clustersim(tmp.path(), &["run", scenario.to_str().unwrap(), "--quiet", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad_trace.csv:4:"), "{}", stderr(&out));
    assert!(!out_dir.exists(), "a failed run left {} behind", out_dir.display());

    // The same --out with the good trace then runs without --force.
    let out = clustersim(
        tmp.path(),
        &[
            "run",
            scenario.to_str().unwrap(),
            "--quiet",
            "--out",
            out_dir.to_str().unwrap(),
            "--set",
            "workload.trace=good_trace.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out_dir)["requests"]["completed"], 4);
}
