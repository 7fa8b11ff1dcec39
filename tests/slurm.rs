//! Sharded sweeps as a Slurm job array runs them, on this machine: each task is
//! `clustersim sweep ... --shard auto` with the array's environment variables, and
//! `clustersim merge` must give back the single-machine `sweep.csv` byte for byte.
//! (`.ci/slurm-test.sh` runs the same through a real Slurm.)

mod common;
use common::clustersim;

use std::path::{Path, PathBuf};
use std::process::Command;

fn scenario(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(
        &p,
        r#"
[scenario]
name = "tiny"
seed = 5

[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 1

[model]
preset = "llama-3-8b"

[workload]
requests = 6
arrival = { process = "poisson", rate_per_s = 20.0 }
prompt_tokens = { dist = "uniform", min = 32, max = 128 }
output_tokens = { dist = "fixed", value = 4 }
"#,
    )
    .unwrap();
    p
}

/// Runs one task of an array `--array=MIN-...` of `count` tasks: `--shard auto`.
fn task(args: &[&str], id: u64, count: u64, min: u64) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .args(["--shard", "auto", "--jobs", "1"])
        .env("SLURM_ARRAY_TASK_ID", id.to_string())
        .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
        .env("SLURM_ARRAY_TASK_MIN", min.to_string())
        .env("SLURM_ARRAY_TASK_STEP", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sweep_args<'a>(p: &'a str, out: &'a str, seqs: &'a str) -> Vec<&'a str> {
    vec!["sweep", p, "--vary", seqs, "--vary", "workload.arrival.rate_per_s=5.0,50.0", "--out", out]
}

#[test]
fn four_array_tasks_merge_into_the_single_machine_csv_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let p = p.to_str().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // 5 x 2 = 10 points over 4 tasks: shards of 3, 3, 2 and 2 points.
    let seqs = "serving.max_seqs=1,2,4,8,16";
    let (code, o, e) = clustersim(&sweep_args(p, &d("local"), seqs));
    assert_eq!(code, 0, "{o}{e}");
    // --array=1-4, tasks run in a scrambled order into one shared folder.
    for id in [3, 1, 4, 2] {
        let (code, o, e) = task(&sweep_args(p, &d("array"), seqs), id, 4, 1);
        assert_eq!(code, 0, "{o}{e}");
        assert!(o.contains(&format!("shard      {id}/4: {} of 10 points", if id <= 2 { 3 } else { 2 })), "{o}");
    }
    let (code, o, e) = clustersim(&["merge", &d("array"), "--plot", "ttft_s.p99"]);
    assert_eq!(code, 0, "{o}{e}");
    assert!(o.contains("merged     4 shards, 10 points"), "{o}");
    assert!(dir.path().join("array/sweep_ttft_s_p99.svg").exists(), "merge draws the charts asked for");
    let local = std::fs::read(dir.path().join("local/sweep.csv")).unwrap();
    assert_eq!(local.iter().filter(|b| **b == b'\n').count(), 11, "header + 10 points");
    assert_eq!(std::fs::read(dir.path().join("array/sweep.csv")).unwrap(), local);
    // The merge prints the same table as the local run.
    let table = |s: &str| s.lines().take(11).map(str::to_string).collect::<Vec<_>>();
    let local2 = d("local2");
    let mut again = sweep_args(p, &local2, seqs);
    again.push("--force");
    let (_, local_out, _) = clustersim(&again);
    assert_eq!(table(&o), table(&local_out));

    // A task run twice refuses to overwrite its shard without --force.
    let (code, _, e) = task(&sweep_args(p, &d("array"), seqs), 2, 4, 1);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("shard-2-of-4.json: this shard was already written"), "{e}");
}

#[test]
fn more_tasks_than_points_still_merge() {
    // 2 points over 3 tasks (--array=0-2): task 2 runs nothing but still writes its shard.
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let p = p.to_str().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let seqs = "serving.max_seqs=2,4";
    let (local, array) = (d("local"), d("array"));
    let (code, o, e) = clustersim(&["sweep", p, "--vary", seqs, "--out", &local]);
    assert_eq!(code, 0, "{o}{e}");
    for id in 0..3 {
        let (code, o, e) = task(&["sweep", p, "--vary", seqs, "--out", &array], id, 3, 0);
        assert_eq!(code, 0, "{o}{e}");
    }
    let (code, o, e) = clustersim(&["merge", &d("array"), "--out", &d("merged")]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(
        std::fs::read(dir.path().join("merged/sweep.csv")).unwrap(),
        std::fs::read(dir.path().join("local/sweep.csv")).unwrap()
    );
}

#[test]
fn shards_of_different_sweeps_or_twice_the_same_shard_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let p = p.to_str().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let seqs = "serving.max_seqs=2,4";
    for (id, out) in [(0, "a"), (1, "a"), (1, "b")] {
        let (code, o, e) = task(&sweep_args(p, &d(out), seqs), id, 2, 0);
        assert_eq!(code, 0, "{o}{e}");
    }
    // The same shard from two folders.
    let (code, _, e) = clustersim(&["merge", &d("a"), &d("b"), "--out", &d("m")]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("shard 2 of 2 appears twice"), "{e}");
    // Shard 2 of a sweep with another seed (--set): a different fingerprint.
    let c = d("c");
    let mut other = sweep_args(p, &c, seqs);
    other.extend(["--set", "scenario.seed=6"]);
    let (code, o, e) = task(&other, 1, 2, 0);
    assert_eq!(code, 0, "{o}{e}");
    let (code, _, e) = clustersim(&[
        "merge",
        &format!("{}/shard-1-of-2.json", d("a")),
        &format!("{}/shard-2-of-2.json", d("c")),
        "--out",
        &d("m"),
    ]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("shards of different sweeps"), "{e}");
    assert!(!dir.path().join("m/sweep.csv").exists());
    // --shard auto outside a job array says what is missing.
    let out = d("x");
    let mut args = sweep_args(p, &out, seqs);
    args.extend(["--shard", "auto"]);
    let (code, _, e) = clustersim(&args);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("SLURM_ARRAY_TASK_ID is not set"), "{e}");
}
