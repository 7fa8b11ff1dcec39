//! Regression test for issue 14's wrong chart: series.csv's `running` and `queued`
//! lanes are levels, and re-bucketing used to sum them, inflating early buckets 2^k
//! times (37 running in the first bucket of a 1 request/s run).

mod common;

use std::path::Path;

#[test]
fn running_never_exceeds_the_requests_alive_in_its_bucket() {
    // 200 requests at 1/s: about 200 s simulated, so the 10 ms buckets merge 5 times.
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("r");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml");
    let (code, _, err) = common::clustersim(&[
        "run",
        tiny.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-plots",
        "--set",
        "workload.arrival.rate_per_s=1.0",
        "--set",
        "workload.requests=200",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut reqs = csv::Reader::from_path(out.join("requests.csv")).unwrap();
    let h = reqs.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (a, f) = (col("arrival_s"), col("finish_s"));
    let spans: Vec<(f64, f64)> = reqs
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[a].parse().unwrap(), r[f].parse().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), 200);
    let mut series = csv::Reader::from_path(out.join("series.csv")).unwrap();
    let h = series.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (t, w, q, run) = (col("t_s"), col("bucket_s"), col("queued"), col("running"));
    let mut merged = false;
    for r in series.records() {
        let r = r.unwrap();
        let (start, width): (f64, f64) = (r[t].parse().unwrap(), r[w].parse().unwrap());
        merged |= width > 0.0101;
        // Requests alive at some instant of [start, start + width): arrived before its
        // end and not finished before its start. Queued + running can never exceed it.
        let alive = spans.iter().filter(|(arr, fin)| *arr < start + width && *fin >= start).count() as f64;
        let (queued, running): (f64, f64) = (r[q].parse().unwrap(), r[run].parse().unwrap());
        assert!(
            running <= alive && queued <= alive,
            "bucket at {start} s: {running} running, {queued} queued, {alive} alive"
        );
    }
    assert!(merged, "the run was long enough to re-bucket");
}

#[test]
fn output_tokens_per_s_has_its_own_axis_on_the_throughput_chart() {
    // Output tokens/s is ~100x smaller than prompt + output tokens/s on prompt-heavy
    // traffic; on a shared axis it sat flat at zero. Its own panel labels its y axis
    // "output tokens/s" (besides its legend entry): two text elements of exactly
    // that line (plotters writes each text on a line of its own).
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("r");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios/tiny.toml");
    let (code, _, err) =
        common::clustersim(&["run", tiny.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(out.join("plots/throughput.svg")).unwrap();
    let lines = |t: &str| svg.lines().filter(|l| l.trim() == t).count();
    assert!(lines("output tokens/s") >= 2, "no axis of its own");
    assert!(lines("prompt + output tokens/s") >= 2, "total keeps its axis");
}
