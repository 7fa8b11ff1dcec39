//! `clustersim sweep` and `merge`: grid order, sharding, byte-identical merges.

mod common;
use common::clustersim;

use clustersim::analysis::sweep::{grid, Shard, Vary};
use std::path::{Path, PathBuf};

fn scenario(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(
        &p,
        r#"
[scenario]
name = "tiny"
seed = 3

[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 1

[model]
preset = "llama-3-8b"

[serving]
max_seqs = 8

[workload]
requests = 8
arrival = { process = "poisson", rate_per_s = 20.0 }
prompt_tokens = { dist = "uniform", min = 32, max = 128 }
output_tokens = { dist = "fixed", value = 8 }
"#,
    )
    .unwrap();
    p
}

#[test]
fn two_keys_of_two_values_make_four_points_first_key_slowest() {
    let a: Vary = "parallel.tp=1,2".parse().unwrap();
    let b: Vary = "serving.max_seqs=64,128".parse().unwrap();
    let g = grid(&[a, b]);
    let pts: Vec<Vec<(&str, &str)>> =
        g.iter().map(|p| p.iter().map(|o| (o.key.as_str(), o.value.as_str())).collect()).collect();
    assert_eq!(
        pts,
        vec![
            vec![("parallel.tp", "1"), ("serving.max_seqs", "64")],
            vec![("parallel.tp", "1"), ("serving.max_seqs", "128")],
            vec![("parallel.tp", "2"), ("serving.max_seqs", "64")],
            vec![("parallel.tp", "2"), ("serving.max_seqs", "128")],
        ]
    );
}

#[test]
fn ranges_and_bad_syntax() {
    // 1..4:1 includes both ends; 0.1..0.3:0.1 gives 0.1, 0.2, 0.3 without binary noise.
    assert_eq!("k=1..4:1".parse::<Vary>().unwrap().values, ["1", "2", "3", "4"]);
    assert_eq!("k=0.1..0.3:0.1".parse::<Vary>().unwrap().values, ["0.1", "0.2", "0.3"]);
    assert_eq!("k=8..20:8".parse::<Vary>().unwrap().values, ["8", "16"]);
    for bad in ["k", "=1,2", "k=1,,2", "k=a..4:1", "k=4..1:1", "k=1..4:0", "a..b=1"] {
        assert!(bad.parse::<Vary>().is_err(), "{bad} should be rejected");
    }
    let s: Shard = "2/3".parse().unwrap();
    assert!(s.contains(1) && s.contains(4) && !s.contains(0));
    for bad in ["0/2", "3/2", "1", "a/b"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn bad_vary_is_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let (code, _, err) = clustersim(&["sweep", p.to_str().unwrap(), "--vary", "serving.max_seqs", "--out", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected key=v1,v2,... or key=A..B:STEP"), "{err}");
    // A key the scenario does not have fails every point: the scenario error, exit 2.
    let out = dir.path().join("o");
    let (code, _, err) =
        clustersim(&["sweep", p.to_str().unwrap(), "--vary", "serving.max_sqes=1,2", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_sqes"), "{err}");
}

#[test]
fn shards_merge_into_the_unsharded_csv_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let p = p.to_str().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // 3 x 2 = 6 points: shard 1/2 runs 0, 2, 4 and shard 2/2 runs 1, 3, 5.
    let vary = ["--vary", "serving.max_seqs=2,4,8", "--vary", "workload.arrival.rate_per_s=10.0,40.0"];
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["sweep", p];
        args.extend(vary);
        args.extend(["--out", out]);
        args.extend(extra);
        let (code, o, e) = clustersim(&args);
        assert_eq!(code, 0, "{o}{e}");
    };
    run(&d("all"), &["--jobs", "2"]);
    run(&d("s1"), &["--shard", "1/2", "--jobs", "1"]);
    run(&d("s2"), &["--shard", "2/2"]);
    let all = std::fs::read(dir.path().join("all/sweep.csv")).unwrap();
    let text = String::from_utf8(all.clone()).unwrap();
    assert_eq!(text.lines().count(), 7, "header + 6 points");
    assert!(text.starts_with("point,serving.max_seqs,workload.arrival.rate_per_s,"));
    assert!(text.lines().next().unwrap().contains(",ttft_s.p99,") && text.lines().next().unwrap().ends_with(",error"));
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(rows[0].starts_with("0,2,10.0,") && rows[5].starts_with("5,8,40.0,"), "{rows:?}");
    let s1 = std::fs::read_to_string(dir.path().join("s1/sweep.csv")).unwrap();
    assert_eq!(s1.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect::<Vec<_>>(), ["0", "2", "4"]);

    let merged = dir.path().join("merged.csv");
    let (code, o, e) = clustersim(&[
        "merge",
        merged.to_str().unwrap(),
        &format!("{}/sweep.csv", d("s2")),
        &format!("{}/sweep.csv", d("s1")),
    ]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(std::fs::read(&merged).unwrap(), all, "merged shards differ from the unsharded sweep");

    // A missing shard is an error, and so is overwriting without --force.
    let partial = dir.path().join("partial.csv");
    let (code, _, e) = clustersim(&["merge", partial.to_str().unwrap(), &format!("{}/sweep.csv", d("s2"))]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("missing"), "{e}");
    let (code, _, e) = clustersim(&["merge", merged.to_str().unwrap(), &format!("{}/sweep.csv", d("s1"))]);
    assert_eq!(code, 2, "{e}");
}

#[test]
fn a_sweep_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let out = dir.path().join("o");
    let args = ["sweep", p.to_str().unwrap(), "--vary", "serving.max_seqs=2,4", "--out", out.to_str().unwrap()];
    assert_eq!(clustersim(&args).0, 0);
    let before = std::fs::read(out.join("sweep.csv")).unwrap();
    let (code, _, err) = clustersim(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force"), "{err}");
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(clustersim(&forced).0, 0);
    // Deterministic: the rerun writes the same bytes.
    assert_eq!(std::fs::read(out.join("sweep.csv")).unwrap(), before);
}
