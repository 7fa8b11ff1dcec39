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
