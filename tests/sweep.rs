//! `clustersim sweep` and `merge`: grid order, sharding, byte-identical merges,
//! and the command line's limits (repeated keys, `--jobs`), table and charts.

mod common;
use common::clustersim;

use clustersim::analysis::shard::Shard;
use clustersim::analysis::sweep::{check_axes, grid, worker_threads, Vary};
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
    // All or nothing: a refused sweep leaves no folder, not even an empty one.
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["tiny.toml"], "no staging folder left behind");
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
    // A shard writes its own file, with its points only, and no sweep.csv.
    let s1: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s1/shard-1-of-2.json")).unwrap()).unwrap();
    let points: Vec<u64> = s1["rows"].as_array().unwrap().iter().map(|r| r[0].as_u64().unwrap()).collect();
    assert_eq!(points, [0, 2, 4]);
    assert!(!dir.path().join("s1/sweep.csv").exists());

    // Shard files given directly, in any order, with --out.
    let merged = d("merged");
    let (code, o, e) = clustersim(&[
        "merge",
        &format!("{}/shard-2-of-2.json", d("s2")),
        &format!("{}/shard-1-of-2.json", d("s1")),
        "--out",
        &merged,
    ]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(
        std::fs::read(format!("{merged}/sweep.csv")).unwrap(),
        all,
        "merged shards differ from the unsharded sweep"
    );

    // A missing shard is an error naming it, and so is overwriting without --force.
    let (code, _, e) = clustersim(&["merge", &d("s2"), "--out", &d("partial")]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("shard 1 of 2 is missing"), "{e}");
    assert!(!dir.path().join("partial/sweep.csv").exists());
    let (code, _, e) = clustersim(&["merge", &d("s1"), &d("s2"), "--out", &merged]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("--force"), "{e}");
    // Several folders need --out.
    let (code, _, e) = clustersim(&["merge", &d("s1"), &d("s2")]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("--out"), "{e}");
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
    // --force replaces the folder whole: a file of the earlier sweep does not survive.
    std::fs::write(out.join("sweep_old_chart.svg"), "stale").unwrap();
    assert_eq!(clustersim(&forced).0, 0);
    assert!(!out.join("sweep_old_chart.svg").exists());
    assert_eq!(std::fs::read(out.join("sweep.csv")).unwrap(), before);
}

#[test]
fn the_same_key_in_two_axes_is_refused() {
    // Issue 14: the second axis silently won and sweep.csv had two columns of one name.
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let out = dir.path().join("o");
    let (code, _, err) = clustersim(&[
        "sweep",
        p.to_str().unwrap(),
        "--vary",
        "serving.max_seqs=2,4",
        "--vary",
        "serving.max_seqs=8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--vary serving.max_seqs: the key is already varied by --vary number 1"), "{err}");
    assert!(err.contains("--vary serving.max_seqs=2,4,8"), "{err}");
    assert!(!out.exists(), "nothing is written for a refused sweep");
}

#[test]
fn jobs_beyond_the_points_are_clamped_with_a_note_and_a_table_is_printed() {
    // Issue 14: `--jobs 5000` spawned 5,000 threads for 2 points, and sweep printed no table.
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let out = dir.path().join("o");
    let (code, o, e) = clustersim(&[
        "sweep",
        p.to_str().unwrap(),
        "--vary",
        "serving.max_seqs=2,4",
        "--jobs",
        "5000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{o}{e}");
    assert!(e.contains("note: --jobs 5000: only 2 points to run; using 2 threads"), "{e}");
    assert!(o.contains("on 2 threads"), "{o}");
    // The table: a header naming the key and the headline figures, then one row per
    // point; the tiny scenario has 8 requests, all of which complete.
    let lines: Vec<&str> = o.lines().collect();
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(head[..4], ["point", "serving.max_seqs", "requests.completed", "requests.dropped"], "{o}");
    assert!(head.contains(&"ttft_s.p99") && head.contains(&"tpot_s.p99"), "{o}");
    for (i, seqs) in ["2", "4"].iter().enumerate() {
        let cells: Vec<&str> = lines[1 + i].split_whitespace().collect();
        assert_eq!(cells[..4], [i.to_string().as_str(), seqs, "8", "0"], "{o}");
    }
}

/// The x pixel of every point marker (`<circle>`) of an SVG chart, left to right.
fn marker_xs(svg: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let mut xs: Vec<f64> = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .map(|n| n.attribute("cx").unwrap().parse().unwrap())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs
}

#[test]
fn charts_mark_every_point_and_use_a_log_axis_for_log_spaced_values() {
    // Issue 14: no point markers, and a linear axis for log-spaced values.
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let chart = |values: &str, name: &str| {
        let out = dir.path().join(name);
        let (code, o, e) = clustersim(&[
            "sweep",
            p.to_str().unwrap(),
            "--vary",
            &format!("serving.max_seqs={values}"),
            "--plot",
            "requests.completed",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{o}{e}");
        assert!(out.join("sweep_requests_completed.png").exists());
        marker_xs(&out.join("sweep_requests_completed.svg"))
    };
    // 1, 2, 8 doubles at least at each step: log axis, so the gaps are
    // log10(8/2) / log10(2/1) = 2 to 1; on a linear axis they would be 6 to 1.
    let x = chart("1,2,8", "log");
    assert_eq!(x.len(), 3, "one marker per point: {x:?}");
    let ratio = (x[2] - x[1]) / (x[1] - x[0]);
    assert!((ratio - 2.0).abs() < 0.02, "log axis gap ratio {ratio}, markers {x:?}");
    // Names are placed at 0, 1, ... and written under the axis.
    let out = dir.path().join("names");
    let (code, o, e) = clustersim(&[
        "sweep",
        p.to_str().unwrap(),
        "--vary",
        "serving.router=round_robin,least_outstanding",
        "--plot",
        "requests.completed",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{o}{e}");
    let svg = std::fs::read_to_string(out.join("sweep_requests_completed.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    assert!(texts.contains(&"round_robin") && texts.contains(&"least_outstanding"), "category ticks: {texts:?}");
    assert_eq!(marker_xs(&out.join("sweep_requests_completed.svg")).len(), 2);
    // 2, 3, 9: 3 / 2 = 1.5 is not log-spaced, so the axis is linear: gaps 6 to 1.
    let x = chart("2,3,9", "lin");
    assert_eq!(x.len(), 3, "{x:?}");
    let ratio = (x[2] - x[1]) / (x[1] - x[0]);
    assert!((ratio - 6.0).abs() < 0.05, "linear axis gap ratio {ratio}, markers {x:?}");
}

#[test]
fn failed_points_show_in_the_table_and_a_sweep_where_all_fail_is_exit_2() {
    // Llama-3-70B's 131 GiB of weights cannot fit one 80 GB H100; Llama-3-8B can.
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let p = p.to_str().unwrap();
    let out = dir.path().join("o");
    let (code, o, e) =
        clustersim(&["sweep", p, "--vary", "model.preset=llama-3-70b,llama-3-8b", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{o}{e}");
    let lines: Vec<&str> = o.lines().collect();
    assert!(lines[0].trim_end().ends_with("error"), "{o}");
    // The table's error starts with the reason, not the scenario's path.
    assert!(lines[1].contains("llama-3-70b") && lines[1].contains(" the plan does not fit in GPU memory"), "{o}");
    assert!(!lines[1].contains("tiny.toml"), "{o}");
    assert!(e.contains("point 0 (llama-3-70b):"), "{e}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains("does not fit"), "{csv}");

    let out = dir.path().join("all");
    let (code, o, e) = clustersim(&["sweep", p, "--vary", "model.preset=llama-3-70b", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{o}{e}");
    assert!(e.contains("every point of the sweep failed"), "{e}");
    assert!(out.join("sweep.csv").exists(), "the CSV still says why each point failed");
}

#[test]
fn worker_threads_follow_points_and_cores() {
    // Default: one per core, but no more than the points.
    assert_eq!(worker_threads(None, 100, 2), (2, None));
    assert_eq!(worker_threads(None, 1, 16), (1, None));
    // A request above 4 per core is lowered to 4 x 2 = 8, with a note.
    let (n, note) = worker_threads(Some(100), 1000, 2);
    assert_eq!(n, 8);
    assert_eq!(note.unwrap(), "--jobs 100: at most 4 threads per core (2 cores); using 8");
    // Within both bounds a request stands, silently.
    assert_eq!(worker_threads(Some(3), 10, 2), (3, None));
    // A shard that owns no point still gets one thread (it runs nothing).
    let (n, note) = worker_threads(Some(4), 0, 2);
    assert_eq!((n, note.unwrap().as_str()), (1, "--jobs 4: only 0 points to run; using 1 thread"));
}

#[test]
fn grids_are_bounded() {
    // 1,000 x 1,001 = 1,001,000 points: over the 1,000,000 limit.
    let a: Vary = "a=1..1000:1".parse().unwrap();
    let b: Vary = "b=0..1000:1".parse().unwrap();
    let e = check_axes(&[a.clone(), b]).unwrap_err().to_string();
    assert!(e.contains("1001000 points; at most 1000000"), "{e}");
    assert_eq!(check_axes(&[a]).unwrap(), 1000);
}

#[test]
fn columns_include_the_sections_a_point_has_and_shards_of_different_sections_merge() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path());
    let p = p.to_str().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // Point 0 runs without prefix caching (no prefix_cache section in its summary),
    // point 1 with it and a 64-token system prompt shared by all 8 requests.
    let base = ["--set", "workload.system_prompt_tokens=64", "--vary", "serving.prefix_caching=false,true"];
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["sweep", p];
        args.extend(base);
        args.extend(["--out", out]);
        args.extend(extra);
        let (code, o, e) = clustersim(&args);
        assert_eq!(code, 0, "{o}{e}");
    };
    run(&d("all"), &[]);
    let all = std::fs::read_to_string(dir.path().join("all/sweep.csv")).unwrap();
    let header: Vec<&str> = all.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap_or_else(|| panic!("no {name} in {header:?}"));
    // The section's figures sit in summary order: after pipeline.*, before queue_s.*.
    let hit = col("prefix_cache.token_hit_rate");
    assert!(col("pipeline.bubble_fraction") < hit && hit < col("queue_s.p50"), "{header:?}");
    let rows: Vec<Vec<&str>> = all.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][hit], "", "a point without prefix caching has no hit rate");
    let rate: f64 = rows[1][hit].parse().unwrap();
    assert!(rate > 0.0 && rate < 1.0, "hit rate {rate}");
    // No disaggregation column: no point had pools.
    assert!(!header.iter().any(|c| c.starts_with("disaggregation.")), "{header:?}");

    // Shard 1/2 runs point 0 only (no prefix_cache columns), 2/2 point 1: the merge
    // joins their columns into exactly the unsharded sweep.csv.
    run(&d("s1"), &["--shard", "1/2"]);
    run(&d("s2"), &["--shard", "2/2"]);
    let s1 = std::fs::read_to_string(dir.path().join("s1/shard-1-of-2.json")).unwrap();
    assert!(!s1.contains("prefix_cache."), "shard 1 ran no prefix-cached point");
    let (code, o, e) = clustersim(&["merge", &d("s1"), &d("s2"), "--out", &d("merged")]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(std::fs::read_to_string(dir.path().join("merged/sweep.csv")).unwrap(), all);
}
