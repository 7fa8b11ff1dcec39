//! Same scenario and seed: byte-identical results. Another seed: other results.

use clustersim::scenario::{load_setup, Override};
use clustersim::serving::{simulate, RunOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const FILES: [&str; 6] = ["summary.json", "requests.csv", "gpus.csv", "timeline.csv", "utilization.csv", "series.csv"];

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml")
}

/// Overrides that make the tiny run draw from every random stream: random routing,
/// gamma arrivals, lognormal lengths, plus what-if events.
const BUSY: [&str; 5] = [
    "serving.router=random",
    r#"workload.arrival={ process = "gamma", rate_per_s = 30.0, cv = 2.0 }"#,
    r#"workload.prompt_tokens={ dist = "lognormal", median = 200.0, sigma = 0.8, min = 8, max = 2000 }"#,
    r#"events=[{ kind = "gpu_slowdown", at_s = 0.3, until_s = 0.9, gpu = 1, fraction = 0.5 }, { kind = "load_change", at_s = 0.5, factor = 2.0 }]"#,
    "workload.requests=60",
];

/// Runs `clustersim run tiny.toml --out <dir>/<name> --set ...` and returns the folder.
fn run(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clustersim"));
    cmd.current_dir(dir).arg("run").arg(tiny()).arg("--quiet").arg("--out").arg(&out);
    for s in BUSY.iter().chain(extra) {
        cmd.arg("--set").arg(s);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn same_seed_gives_byte_identical_files() {
    // Two separate processes, same scenario and seed: every result file is equal byte for byte.
    let tmp = tempfile::tempdir().unwrap();
    let a = run(tmp.path(), "a", &[]);
    let b = run(tmp.path(), "b", &[]);
    for f in FILES {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x.len() > 100, "{f} is nearly empty ({} bytes)", x.len());
        assert!(x == y, "{f} differs between two runs with the same seed");
    }
}

#[test]
fn another_seed_gives_another_summary() {
    // The seed reaches the random streams: seed 43 yields different arrivals and so a different summary.
    let tmp = tempfile::tempdir().unwrap();
    let a = run(tmp.path(), "a", &[]);
    let b = run(tmp.path(), "b", &["scenario.seed=43"]);
    let strip_seed = |dir: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("seed");
        v
    };
    // Not only the `seed` field: the measured figures change.
    assert_ne!(strip_seed(&a), strip_seed(&b));
    assert_ne!(std::fs::read(a.join("requests.csv")).unwrap(), std::fs::read(b.join("requests.csv")).unwrap());
}

#[test]
fn library_runs_are_deterministic() {
    // Through the library, on a shipped MoE scenario (expert routing, PP, EP, DP) cut to 20 short requests.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_corrected.toml");
    let sets: Vec<Override> =
        ["workload.requests=20", "workload.output_tokens.value=32"].iter().map(|s| s.parse().unwrap()).collect();
    let setup = load_setup(&path, &sets).unwrap();
    let first = simulate(&setup, RunOptions::default()).unwrap();
    let second = simulate(&setup, RunOptions::default()).unwrap();
    let (x, y) =
        (serde_json::to_string(&first.report.summary).unwrap(), serde_json::to_string(&second.report.summary).unwrap());
    assert_eq!(first.report.summary.requests.completed, 20);
    assert_eq!(x, y);
    assert_eq!(first.events, second.events);

    // And a different seed through the library changes the summary beyond its seed field.
    let mut other = setup.clone();
    other.seed = 43;
    let third = simulate(&other, RunOptions::default()).unwrap();
    let mut z: serde_json::Value = serde_json::to_value(&third.report.summary).unwrap();
    let mut w: serde_json::Value = serde_json::to_value(&first.report.summary).unwrap();
    z.as_object_mut().unwrap().remove("seed");
    w.as_object_mut().unwrap().remove("seed");
    assert_ne!(z, w);
}

/// Runs `clustersim run <scenario> --quiet --no-plots --out <dir>/<name> --set ...`
/// (no BUSY overrides) and returns the folder with its parsed summary.
fn run_plain(dir: &Path, scenario: &Path, name: &str, sets: &[&str]) -> (PathBuf, serde_json::Value) {
    let out = dir.join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clustersim"));
    cmd.current_dir(dir).arg("run").arg(scenario).args(["--quiet", "--no-plots", "--out"]).arg(&out);
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    (out, summary)
}

/// Two processes on `scenario` with `sets`: summary.json, requests.csv and gpus.csv
/// equal byte for byte; returns the summary to check the feature was on.
fn twice_identical(scenario: &Path, sets: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let (a, summary) = run_plain(tmp.path(), scenario, "a", sets);
    let (b, _) = run_plain(tmp.path(), scenario, "b", sets);
    for f in ["summary.json", "requests.csv", "gpus.csv"] {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x.len() > 100, "{f} is nearly empty ({} bytes)", x.len());
        assert!(x == y, "{f} differs between two runs of {} with the same seed", scenario.display());
    }
    summary
}

#[test]
fn pooled_run_is_deterministic() {
    // The shipped P:D scenario (kv_aware routing, layer-wise handoffs over the NICs), cut to 40 requests.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/pd_disagg_llama3-70b.toml");
    let s = twice_identical(&path, &["workload.limit=40"]);
    // Every request was prefilled on one side and handed to the other: 40 handoffs.
    assert_eq!(s["disaggregation"]["handoffs"], 40, "{}", s["disaggregation"]);
}

#[test]
fn prefix_cached_run_with_sessions_is_deterministic() {
    // Prefix caching with cache-aware routing, a host-memory tier, a shared 256-token
    // system prompt and multi-turn sessions (turn gaps drawn from their own stream).
    let s = twice_identical(
        &tiny(),
        &[
            "serving.prefix_caching=true",
            "serving.router=cache_aware",
            "serving.kv_offload={ host_memory_gib = 1.0 }",
            "workload.system_prompt_tokens=256",
            r#"workload.sessions={ turns = { dist = "uniform", min = 1, max = 4 }, follow_up_tokens = { dist = "uniform", min = 16, max = 64 }, think_time_s = 0.2 }"#,
        ],
    );
    // Later turns and the system prompt hit: some prompt tokens came from the cache.
    assert!(s["prefix_cache"]["hit_tokens"].as_u64().unwrap() > 0, "{}", s["prefix_cache"]);
}

#[test]
fn speculative_run_is_deterministic() {
    // MTP-style drafting of 2 tokens accepted 70 % of the time: the accepted count of
    // every sequence at every step is drawn from the seeded speculation stream.
    let s = twice_identical(
        &tiny(),
        &["model.mtp_layers=1", "model.speculative={ draft_tokens = 2, acceptance_rate = 0.7 }"],
    );
    assert_eq!(s["requests"]["completed"], 40);
}
