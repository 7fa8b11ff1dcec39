//! Charts from a synthetic results folder: every chart is written as a PNG that
//! decodes and is not blank (with text in its title band) and an SVG that parses;
//! output is deterministic; bad input is an error naming the file.

use clustersim::metrics::summary::{Dist, Summary};
use clustersim::output::plots::{self, LatencyMetric, PlotData, PlotOptions};
use clustersim::output::records::{GpuRow, RequestRow, SeriesRow, TimelineRow, UtilizationRow};
use std::path::{Path, PathBuf};

const SCENARIO: &str = r#"
[scenario]
name = "plot-test"
seed = 7

[hardware]
gpu = "seed-400tf"
nodes = 2
gpus_per_node = 4

[model]
preset = "seed-moe"

[parallel]
dp = 2
pp = 2
tp = 2

[workload]
requests = 300
arrival = { process = "poisson", rate_per_s = 10.0 }
prompt_tokens = { dist = "fixed", value = 512 }
output_tokens = { dist = "fixed", value = 64 }

[requirements]
ttft_p99_s = 5.0
tpot_p99_s = 0.05
memory_fraction_max = 0.9
overhead_fraction_max = 0.2
"#;

/// A tiny deterministic generator (64-bit LCG), so the data needs no RNG crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn write_csv<T: serde::Serialize>(path: &Path, rows: &[T]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    for r in rows {
        w.serialize(r).unwrap();
    }
    w.flush().unwrap();
}

/// Writes a results folder: `gpus` GPUs on `nodes` nodes (2 pipeline stages),
/// `seconds` of 1 s utilization buckets, `requests` requests with TTFT spread
/// evenly over 0.1..6.0 s, about `spans` timeline spans over all states.
fn write_results(dir: &Path, gpus: u32, nodes: u32, seconds: u32, requests: u32, spans: u32) {
    let mut rng = Lcg(42);
    let gpu_rows: Vec<GpuRow> = (0..gpus)
        .map(|g| {
            let wall = seconds as f64;
            let compute = wall * (0.5 + 0.15 * rng.next());
            let comm = wall * (0.06 + 0.03 * rng.next());
            let wait = wall * (0.03 + 0.05 * rng.next());
            GpuRow {
                gpu: g,
                node: g / (gpus / nodes),
                replica: (g / 4) as i64,
                stage: ((g / 2) % 2) as i64,
                tp_rank: (g % 2) as i64,
                ep_rank: -1,
                compute_s: compute,
                communicate_s: comm,
                wait_s: wait,
                idle_s: seconds as f64 - compute - comm - wait,
                utilization: compute / seconds as f64,
                overhead_fraction: (comm + wait) / (compute + comm + wait),
                tp_comm_s: comm * 0.7,
                tp_wait_s: wait * 0.3,
                pp_comm_s: comm * 0.3,
                pp_wait_s: wait * 0.7,
                ep_comm_s: 0.0,
                ep_wait_s: 0.0,
                weights_gib: 20.0 + g as f64 * 0.1,
                kv_gib: 30.0,
                kv_peak_gib: 12.0 + 10.0 * rng.next(),
                activations_gib: 3.0,
                comm_gb: 0.0,
                contention_s: 0.0,
                capacity_gib: 59.6,
                flops: 1e15,
            }
        })
        .collect();
    let req_rows: Vec<RequestRow> = (0..requests)
        .map(|i| {
            let arrival = i as f64 * seconds as f64 / requests as f64;
            let ttft = 0.1 + 5.9 * i as f64 / (requests - 1).max(1) as f64;
            let tpot = 0.02 + 0.03 * rng.next();
            let out = 64;
            let e2e = ttft + tpot * (out - 1) as f64;
            RequestRow {
                id: i as u64,
                replica: i % 2,
                arrival_s: arrival,
                prompt_tokens: 512,
                output_tokens: out,
                scheduled_s: arrival + ttft * 0.5,
                first_token_s: arrival + ttft,
                finish_s: arrival + e2e,
                ttft_s: ttft,
                tpot_s: tpot,
                e2e_s: e2e,
                queue_s: ttft * 0.5,
                preemptions: 0,
                rerouted: false,
            }
        })
        .collect();
    let kinds = [
        ("compute", "attention"),
        ("communicate", "tp_allreduce"),
        ("compute", "mlp"),
        ("compute", "experts"),
        ("communicate", "ep_alltoall"),
        ("wait", "pp_sendrecv"),
        ("communicate", "pp_sendrecv"),
        ("wait", "tp_allreduce"),
        ("compute", "lm_head"),
        ("idle", ""),
    ];
    let per_gpu = (spans / gpus).max(kinds.len() as u32);
    let window = 2.0_f64.min(seconds as f64);
    let mut tl_rows = Vec::new();
    for g in 0..gpus {
        let mut t = 0.0;
        for k in 0..per_gpu {
            let (state, what) = kinds[((k + g) as usize) % kinds.len()];
            let d = window / per_gpu as f64 * (0.5 + rng.next());
            tl_rows.push(TimelineRow {
                gpu: g,
                start_s: t,
                end_s: t + d,
                state: state.into(),
                what: what.into(),
                batch: k as i64,
            });
            t += d;
        }
    }
    let util_rows: Vec<UtilizationRow> = (0..seconds)
        .flat_map(|s| {
            let base = 0.5 + 0.3 * (s as f64 / 30.0).sin();
            (0..gpus).map(move |g| (s, g, base)).collect::<Vec<_>>()
        })
        .map(|(s, g, base)| UtilizationRow { t_s: s as f64, gpu: g, busy: (base + 0.2 * rng.next()).clamp(0.0, 1.0) })
        .collect();
    let series: Vec<SeriesRow> = (0..seconds)
        .map(|s| SeriesRow {
            t_s: s as f64,
            bucket_s: 1.0,
            output_tokens: 2000 + (1000.0 * rng.next()) as u64,
            prompt_tokens: 15000 + (5000.0 * rng.next()) as u64,
            queued: (20.0 * rng.next()) as u64,
            running: 60 + (20.0 * rng.next()) as u64,
        })
        .collect();
    let mut summary = Summary { scenario: "plot-test".into(), seed: 7, ..Summary::default() };
    summary.ttft_s = Dist { count: requests as u64, p99: 5.94, ..Dist::default() };
    summary.overhead.fraction = 0.18;
    summary.overhead.by_kind.tp.communication_fraction = 0.08;
    summary.overhead.by_kind.pp.wait_fraction = 0.06;
    write_csv(&dir.join("gpus.csv"), &gpu_rows);
    write_csv(&dir.join("requests.csv"), &req_rows);
    write_csv(&dir.join("timeline.csv"), &tl_rows);
    write_csv(&dir.join("utilization.csv"), &util_rows);
    write_csv(&dir.join("series.csv"), &series);
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    std::fs::write(dir.join("scenario.toml"), SCENARIO).unwrap();
}

const CHARTS: [&str; 8] = ["timeline", "utilization", "ttft", "tpot", "e2e", "overhead", "memory", "throughput"];

fn small_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_results(dir.path(), 8, 2, 120, 300, 2000);
    dir
}

/// Luma variance of the whole image, and the darkest luma in its top 40 rows
/// (where only the title is).
fn png_stats(path: &Path) -> (f64, u8) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_luma8();
    let px: Vec<f64> = img.pixels().map(|p| p.0[0] as f64).collect();
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let var = px.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / px.len() as f64;
    let title_min = img.rows().take(40).flatten().map(|p| p.0[0]).min().unwrap_or(255);
    (var, title_min)
}

#[test]
fn every_chart_is_written_as_png_and_svg_that_decode_and_are_not_blank() {
    let dir = small_folder();
    let paths = plots::render_all(dir.path(), &PlotOptions::default()).unwrap();
    let expected: Vec<PathBuf> =
        CHARTS.iter().flat_map(|c| ["png", "svg"].map(|e| dir.path().join("plots").join(format!("{c}.{e}")))).collect();
    assert_eq!(paths, expected);
    for p in &paths {
        assert!(p.is_file(), "{} missing", p.display());
        if p.extension().is_some_and(|e| e == "png") {
            let (var, title_min) = png_stats(p);
            assert!(var > 200.0, "{} looks blank: luma variance {var}", p.display());
            assert!(title_min < 80, "{}: no dark title text in the top band (darkest {title_min})", p.display());
        } else {
            let text = std::fs::read_to_string(p).unwrap();
            let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            let texts = doc.descendants().filter(|n| n.has_tag_name("text")).count();
            let rects = doc.descendants().filter(|n| n.has_tag_name("rect") || n.has_tag_name("polyline")).count();
            assert!(texts >= 5 && rects >= 3, "{}: {texts} texts, {rects} shapes", p.display());
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Deterministic: drawing again from the same files gives the same bytes.
    let first: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let again = plots::render_all(dir.path(), &PlotOptions::default()).unwrap();
    let second: Vec<Vec<u8>> = again.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(first == second, "same inputs gave different bytes");
}

/// Loads the folder and returns it with its `plots/` folder (created).
fn load(dir: &Path) -> (PlotData, PathBuf) {
    let out = dir.join("plots");
    std::fs::create_dir_all(&out).unwrap();
    (PlotData::load(dir).unwrap(), out)
}

fn svg_texts(path: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

#[test]
fn latency_chart_marks_percentiles_and_requirement() {
    let dir = small_folder();
    let (data, out) = load(dir.path());
    assert_eq!(data.requirements.as_ref().and_then(|r| r.ttft_p99_s), Some(5.0));
    plots::latency(&out, LatencyMetric::Ttft, &data.requests, data.requirements.as_ref()).unwrap();
    let texts = svg_texts(&out.join("ttft.svg"));
    // TTFT_i = 0.1 + 5.9 i / 299 for i = 0..299. Nearest rank, as summary.json:
    // p50 = rank 150 (i = 149) = 0.1 + 5.9 x 149 / 299 = 3.040 s;
    // p99 = rank 297 (i = 296) = 0.1 + 5.9 x 296 / 299 = 5.941 s.
    for want in ["p50 = 3.04 s", "p99 = 5.94 s", "requirement: p99 ≤ 5 s", "TTFT (s)"] {
        assert!(texts.iter().any(|t| t == want), "{want:?} missing from {texts:?}");
    }
    plots::latency(&out, LatencyMetric::E2e, &data.requests, data.requirements.as_ref()).unwrap();
    let texts = svg_texts(&out.join("e2e.svg"));
    assert!(!texts.iter().any(|t| t.contains("requirement")), "e2e has no requirement in the scenario");
}

#[test]
fn timeline_window_selects_the_spans_drawn() {
    let dir = small_folder();
    let (data, out) = load(dir.path());
    plots::timeline(&out, &data.gpus, &data.timeline, Some((0.5, 0.6))).unwrap();
    let texts = svg_texts(&out.join("timeline.svg"));
    assert!(texts.iter().any(|t| t.contains("500–600 ms")), "title should name the window in ms: {texts:?}");
    assert!(texts.iter().any(|t| t == "time (ms)"), "axis in ms for a 100 ms window");
    let err = plots::timeline(&out, &data.gpus, &data.timeline, Some((2.0, 1.0))).unwrap_err().to_string();
    assert!(err.contains("window"), "{err}");
}

#[test]
fn many_gpus_switch_utilization_to_a_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    write_results(dir.path(), 32, 4, 60, 100, 3000);
    let (data, out) = load(dir.path());
    plots::utilization(&out, &data.gpus, &data.utilization, 8).unwrap();
    let texts = svg_texts(&out.join("utilization.svg"));
    assert!(texts.iter().any(|t| t == "busy (% of bucket)"), "heatmap colour bar expected for 32 GPUs");
    plots::utilization(&out, &data.gpus, &data.utilization, 32).unwrap();
    let texts = svg_texts(&out.join("utilization.svg"));
    assert!(!texts.iter().any(|t| t == "busy (% of bucket)"), "lines expected up to max_line_gpus");
    assert!(texts.iter().any(|t| t == "n3 g7 s1") && texts.iter().any(|t| t == "cluster mean"));
}

#[test]
fn a_128_gpu_timeline_gets_a_readable_lane_per_gpu() {
    let dir = tempfile::tempdir().unwrap();
    write_results(dir.path(), 128, 16, 30, 50, 128 * 20);
    let (data, out) = load(dir.path());
    plots::timeline(&out, &data.gpus, &data.timeline, None).unwrap();
    let img = image::open(out.join("timeline.png")).unwrap();
    assert!(img.height() >= 128 * 16, "lanes too thin: {} px for 128 lanes", img.height());
    let texts = svg_texts(&out.join("timeline.svg"));
    let lanes = texts.iter().filter(|t| t.starts_with('n') && t.contains(" g")).count();
    assert_eq!(lanes, 128, "every lane labelled");
}

#[test]
fn missing_or_malformed_files_are_errors_naming_them() {
    let dir = small_folder();
    std::fs::remove_file(dir.path().join("gpus.csv")).unwrap();
    let err = plots::render_all(dir.path(), &PlotOptions::default()).unwrap_err().to_string();
    assert!(err.contains("gpus.csv"), "{err}");

    let dir = small_folder();
    let path = dir.path().join("requests.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replacen(',', ",x", 1); // replica "x0" is not a number
    std::fs::write(&path, lines.join("\n")).unwrap();
    let err = plots::render_all(dir.path(), &PlotOptions::default()).unwrap_err().to_string();
    assert!(err.contains("requests.csv:3"), "{err}");

    let dir = small_folder();
    std::fs::write(dir.path().join("summary.json"), "{ \"scenario\": 3 }").unwrap();
    let err = plots::render_all(dir.path(), &PlotOptions::default()).unwrap_err().to_string();
    assert!(err.contains("summary.json"), "{err}");
}

/// Speed check: a 24-GPU, 10-minute run (600 one-second buckets, 20,000 requests,
/// 50,000 timeline spans). Run with
/// `cargo test --release --test plots -- --ignored --nocapture`; must take < 2 s.
/// With `PLOTS_KEEP=<dir>` the results folder is written there and kept, to look at.
#[test]
#[ignore]
fn render_time_of_a_ten_minute_24_gpu_run() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("PLOTS_KEEP").map(PathBuf::from);
    let dir = keep.as_deref().unwrap_or(tmp.path());
    std::fs::create_dir_all(dir).unwrap();
    write_results(dir, 24, 3, 600, 20_000, 50_000);
    let start = std::time::Instant::now();
    let paths = plots::render_all(dir, &PlotOptions::default()).unwrap();
    let took = start.elapsed();
    println!("render_all: {} files in {:.3} s", paths.len(), took.as_secs_f64());
    assert!(took.as_secs_f64() < 2.0, "took {took:?}");
}
