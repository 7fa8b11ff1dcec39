//! Request streams: arrival processes, length distributions, trace replay and
//! its error messages. Expected numbers are worked out in the comments.

use clustersim::engine::SimTime;
use clustersim::scenario::types::{ArrivalConfig, LengthDist, TraceFormat, WorkloadConfig};
use clustersim::workload::{RequestSpec, Workload};
use std::path::{Path, PathBuf};

const SCENARIO: &str = "test.toml";

fn generated(requests: u64, arrival: ArrivalConfig, prompt: LengthDist, output: LengthDist) -> WorkloadConfig {
    WorkloadConfig {
        requests: Some(requests),
        arrival: Some(arrival),
        prompt_tokens: Some(prompt),
        output_tokens: Some(output),
        ..WorkloadConfig::default()
    }
}

fn fixed(value: u32) -> LengthDist {
    LengthDist::Fixed { value }
}

fn build(config: &WorkloadConfig, seed: u64) -> Workload {
    match Workload::from_config(config, None, seed, Path::new(SCENARIO)) {
        Ok(w) => w,
        Err(e) => panic!("workload should build: {e}"),
    }
}

/// Every request of an open-loop workload.
fn drain(w: &mut Workload) -> Vec<RequestSpec> {
    let mut out = Vec::new();
    while let Some(r) = w.next_request(SimTime::ZERO) {
        out.push(r);
    }
    out
}

fn gaps_ns(reqs: &[RequestSpec]) -> Vec<f64> {
    reqs.windows(2).map(|p| (p[1].arrival.as_ns() - p[0].arrival.as_ns()) as f64).collect()
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}

fn assert_ordered(reqs: &[RequestSpec]) {
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.id, i as u64, "ids are 0, 1, 2, ...");
    }
    assert!(reqs.windows(2).all(|p| p[0].arrival <= p[1].arrival), "arrivals nondecreasing");
}

#[test]
fn poisson_mean_gap_and_cv() {
    // rate 50/s: mean gap 1/50 s = 20,000,000 ns. 100,001 requests give n = 100,000
    // gaps; exponential gaps have std = mean, so the sample mean's relative standard
    // error is 1/sqrt(n) = 0.32 %: 1.5 % is > 4 sigma. The sample std's relative
    // error is about sqrt((kurtosis 9 - 1)/n)/2 = 0.45 %, so cv = 1 within 3 %.
    let mut w = build(&generated(100_001, ArrivalConfig::Poisson { rate_per_s: 50.0 }, fixed(1), fixed(1)), 7);
    let reqs = drain(&mut w);
    assert_eq!(reqs.len(), 100_001);
    assert_eq!(reqs[0].arrival, SimTime::ZERO, "first request at t = 0");
    assert_ordered(&reqs);
    let (mean, std) = mean_std(&gaps_ns(&reqs));
    assert!(rel(mean, 20_000_000.0) < 0.015, "mean gap {mean} ns");
    assert!(rel(std / mean, 1.0) < 0.03, "cv {}", std / mean);
}

#[test]
fn gamma_cv_matches_request() {
    // rate 10/s, cv 3: gamma shape 1/9, mean gap 100,000,000 ns. n = 100,000 gaps.
    // Mean: relative SE = cv/sqrt(n) = 0.95 %, tolerance 4 % (> 4 sigma). Sample std:
    // gamma kurtosis 3 + 6/shape = 57, relative SE of std ~ sqrt(56/n)/2 = 1.2 %;
    // cv = std/mean within 6 % is > 4 sigma even if the errors added.
    let mut w = build(&generated(100_001, ArrivalConfig::Gamma { rate_per_s: 10.0, cv: 3.0 }, fixed(1), fixed(1)), 11);
    let (mean, std) = mean_std(&gaps_ns(&drain(&mut w)));
    assert!(rel(mean, 100_000_000.0) < 0.04, "mean gap {mean} ns");
    assert!(rel(std / mean, 3.0) < 0.06, "cv {}", std / mean);

    // cv 0.5 (smoother than Poisson): shape 4, kurtosis 4.5, SE of std ~0.3 %; 2 % is ample.
    let mut w = build(&generated(100_001, ArrivalConfig::Gamma { rate_per_s: 10.0, cv: 0.5 }, fixed(1), fixed(1)), 11);
    let (mean, std) = mean_std(&gaps_ns(&drain(&mut w)));
    assert!(rel(mean, 100_000_000.0) < 0.01, "mean gap {mean} ns");
    assert!(rel(std / mean, 0.5) < 0.02, "cv {}", std / mean);
}

#[test]
fn constant_spacing_is_exact_without_drift() {
    // rate 8/s: every gap exactly 125,000,000 ns.
    let mut w = build(&generated(1_000, ArrivalConfig::Constant { rate_per_s: 8.0 }, fixed(1), fixed(1)), 1);
    let reqs = drain(&mut w);
    assert!(gaps_ns(&reqs).iter().all(|&g| g == 125_000_000.0));
    assert_eq!(reqs[999].arrival, SimTime(999 * 125_000_000));
    // rate 3/s: gaps of 333,333,333.3 ns are rounded per request from t = 0, so
    // request 300 is at exactly 100 s (summing rounded gaps would end 100 ns early).
    let mut w = build(&generated(301, ArrivalConfig::Constant { rate_per_s: 3.0 }, fixed(1), fixed(1)), 1);
    let reqs = drain(&mut w);
    assert_eq!(reqs[1].arrival, SimTime(333_333_333));
    assert_eq!(reqs[2].arrival, SimTime(666_666_667));
    assert_eq!(reqs[300].arrival, SimTime::from_secs(100));
}

#[test]
fn all_at_once_arrives_at_zero() {
    let mut w = build(&generated(500, ArrivalConfig::AllAtOnce, fixed(64), fixed(8)), 3);
    assert_eq!(w.total_requests(), 500);
    assert_eq!(w.closed_loop_concurrency(), None);
    let reqs = drain(&mut w);
    assert_eq!(reqs.len(), 500);
    assert_ordered(&reqs);
    assert!(reqs.iter().all(|r| r.arrival == SimTime::ZERO && r.prompt_tokens == 64 && r.output_tokens == 8));
}

#[test]
fn closed_loop_issues_concurrency_then_one_per_completion() {
    // concurrency 4, 10 requests: 4 at t = 0, then one per completion at the
    // completion time, and nothing after the 10th.
    let mut w = build(&generated(10, ArrivalConfig::ClosedLoop { concurrency: 4 }, fixed(16), fixed(4)), 5);
    assert_eq!(w.closed_loop_concurrency(), Some(4));
    assert_eq!(w.total_requests(), 10);
    let c = w.closed_loop_concurrency().unwrap_or(0);
    let first: Vec<RequestSpec> = (0..c).filter_map(|_| w.next_request(SimTime::ZERO)).collect();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|r| r.arrival == SimTime::ZERO));
    for k in 0..6u64 {
        let now = SimTime::from_ms(100 * (k + 1));
        let r = w.next_request(now).expect("a request per completion until 10");
        assert_eq!((r.id, r.arrival), (4 + k, now));
    }
    assert_eq!(w.remaining(), 0);
    assert_eq!(w.next_request(SimTime::from_secs(5)), None);
}

/// 100,000 prompt lengths from `dist` (outputs fixed).
fn prompt_lengths(dist: LengthDist) -> Vec<u32> {
    let mut w = build(&generated(100_000, ArrivalConfig::AllAtOnce, dist, fixed(1)), 21);
    drain(&mut w).iter().map(|r| r.prompt_tokens).collect()
}

fn frac(xs: &[u32], v: u32) -> f64 {
    xs.iter().filter(|&&x| x == v).count() as f64 / xs.len() as f64
}

#[test]
fn fixed_and_uniform_lengths() {
    assert!(prompt_lengths(fixed(777)).iter().all(|&x| x == 777));
    // Uniform integers 100..=200: mean 150, std sqrt((101^2 - 1)/12) = 29.15,
    // SE of the mean over 100,000 = 0.092 tokens; 0.5 is > 5 sigma. Each of the 101
    // values has p = 0.99 %, so both ends appear (P(miss) = e^-990).
    let xs = prompt_lengths(LengthDist::Uniform { min: 100, max: 200 });
    assert!(xs.iter().all(|&x| (100..=200).contains(&x)));
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64;
    assert!((mean - 150.0).abs() < 0.5, "uniform mean {mean}");
    assert!(xs.contains(&100) && xs.contains(&200));
}

#[test]
fn normal_lengths_are_rounded_and_clamped() {
    // N(100, 50) clamped to [60, 130]. A draw rounds to 60 when x < 60.5:
    // Phi((60.5 - 100)/50) = Phi(-0.79) = 0.2148; to 130 when x >= 129.5:
    // 1 - Phi(0.59) = 0.2776. SE with n = 100,000 is 0.0014; tolerance 0.008.
    let xs = prompt_lengths(LengthDist::Normal { mean: 100.0, std: 50.0, min: 60, max: 130 });
    assert!(xs.iter().all(|&x| (60..=130).contains(&x)));
    assert!((frac(&xs, 60) - 0.2148).abs() < 0.008, "at min {}", frac(&xs, 60));
    assert!((frac(&xs, 130) - 0.2776).abs() < 0.008, "at max {}", frac(&xs, 130));
}

#[test]
fn lognormal_lengths_median_and_clamp() {
    // ln L ~ N(ln 200, 1). Median 200: the SE of the sample median in log space is
    // 1.2533/sqrt(n) = 0.4 %, so within 2 % (4 tokens) is > 4 sigma. Clamped at 1000:
    // P(L >= 999.5) = 1 - Phi(ln(999.5/200)) = 1 - Phi(1.609) = 0.0538, SE 0.0007.
    let mut xs = prompt_lengths(LengthDist::Lognormal { median: 200.0, sigma: 1.0, min: 1, max: 1000 });
    assert!(xs.iter().all(|&x| (1..=1000).contains(&x)));
    assert!((frac(&xs, 1000) - 0.0538).abs() < 0.004, "at max {}", frac(&xs, 1000));
    xs.sort_unstable();
    let median = xs[xs.len() / 2];
    assert!((196..=204).contains(&median), "median {median}");
}

#[test]
fn zipf_rank_one_frequency() {
    // s = 1.2 over 100 values 10..=109: rank k has p = k^-1.2 / H(100, 1.2);
    // H = sum_{k=1..100} k^-1.2 = 3.6030, so p(10) = 1/H = 0.2775 and
    // p(11) = 2^-1.2 / H = 0.1208. SE <= 0.0014 with n = 100,000; tolerance 0.008.
    let xs = prompt_lengths(LengthDist::Zipf { s: 1.2, min: 10, max: 109 });
    assert!(xs.iter().all(|&x| (10..=109).contains(&x)));
    let h: f64 = (1..=100).map(|k| f64::from(k).powf(-1.2)).sum();
    assert!((h - 3.6030).abs() < 1e-3);
    assert!((frac(&xs, 10) - 1.0 / h).abs() < 0.008, "rank 1 {}", frac(&xs, 10));
    assert!((frac(&xs, 11) - 2f64.powf(-1.2) / h).abs() < 0.008, "rank 2 {}", frac(&xs, 11));
}

#[test]
fn same_seed_same_stream_and_lengths_do_not_move_arrivals() {
    let poisson = ArrivalConfig::Poisson { rate_per_s: 20.0 };
    let logn = LengthDist::Lognormal { median: 300.0, sigma: 0.8, min: 1, max: 8192 };
    let cfg = generated(2_000, poisson.clone(), logn.clone(), LengthDist::Uniform { min: 1, max: 512 });
    let a = drain(&mut build(&cfg, 42));
    let b = drain(&mut build(&cfg, 42));
    let c = drain(&mut build(&cfg, 43));
    assert_eq!(a, b, "same seed, same stream");
    assert_ne!(a.iter().map(|r| r.arrival).collect::<Vec<_>>(), c.iter().map(|r| r.arrival).collect::<Vec<_>>());
    assert_ne!(
        a.iter().map(|r| r.prompt_tokens).collect::<Vec<_>>(),
        c.iter().map(|r| r.prompt_tokens).collect::<Vec<_>>()
    );
    // Another length distribution, same seed: identical arrival times and output lengths.
    let other = generated(
        2_000,
        poisson,
        LengthDist::Zipf { s: 1.1, min: 1, max: 4096 },
        LengthDist::Uniform { min: 1, max: 512 },
    );
    let d = drain(&mut build(&other, 42));
    assert_eq!(a.iter().map(|r| r.arrival).collect::<Vec<_>>(), d.iter().map(|r| r.arrival).collect::<Vec<_>>());
    assert_eq!(
        a.iter().map(|r| r.output_tokens).collect::<Vec<_>>(),
        d.iter().map(|r| r.output_tokens).collect::<Vec<_>>()
    );
    assert_ne!(
        a.iter().map(|r| r.prompt_tokens).collect::<Vec<_>>(),
        d.iter().map(|r| r.prompt_tokens).collect::<Vec<_>>()
    );
}

#[test]
fn rate_factor_divides_later_gaps() {
    // Constant 10/s: requests 0..=10 at 0, 0.1, ..., 1.0 s. Factor 2 after request 10:
    // later gaps are 50 ms, so request 20 is at 1.5 s; factor 1 again: 100 ms gaps.
    let mut w = build(&generated(30, ArrivalConfig::Constant { rate_per_s: 10.0 }, fixed(1), fixed(1)), 1);
    let mut reqs: Vec<RequestSpec> = (0..11).filter_map(|_| w.next_request(SimTime::ZERO)).collect();
    assert_eq!(reqs[10].arrival, SimTime::from_secs(1));
    w.set_rate_factor(2.0);
    reqs.extend((0..10).filter_map(|_| w.next_request(SimTime::ZERO)));
    assert_eq!(reqs[11].arrival, SimTime::from_ms(1_050));
    assert_eq!(reqs[20].arrival, SimTime::from_ms(1_500));
    w.set_rate_factor(1.0);
    reqs.extend(drain(&mut w));
    assert_eq!(reqs[29].arrival, SimTime::from_ms(2_400));
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn trace_cfg(path: &Path) -> WorkloadConfig {
    WorkloadConfig { trace: Some(path.display().to_string()), ..WorkloadConfig::default() }
}

fn replay(cfg: &WorkloadConfig) -> (Workload, Vec<RequestSpec>) {
    let mut w = build(cfg, 0);
    let reqs = drain(&mut w);
    (w, reqs)
}

#[test]
fn azure_conversation_trace_replays_in_full() {
    // 19,366 rows. First 2023-11-16 18:15:46.6805900, last 19:14:08.4025270:
    // span 58 min 21.7219370 s = 3,501.721937 s = 3,501,721,937,000 ns, exactly.
    let path = repo("scenarios/traces/AzureLLMInferenceTrace_conv.csv");
    let (w, reqs) = replay(&trace_cfg(&path));
    assert_eq!(w.trace_format(), Some(TraceFormat::Azure));
    assert!(w.warnings().is_empty(), "no zero-output rows: {:?}", w.warnings());
    assert_eq!(reqs.len(), 19_366);
    assert_ordered(&reqs);
    assert_eq!((reqs[0].arrival, reqs[0].prompt_tokens, reqs[0].output_tokens), (SimTime::ZERO, 374, 44));
    // Second row 18:15:50.9951690: 4.3145790 s after the first.
    assert_eq!(reqs[1].arrival, SimTime(4_314_579_000));
    let last = reqs[19_365];
    assert_eq!((last.arrival, last.prompt_tokens, last.output_tokens), (SimTime(3_501_721_937_000), 197, 183));

    // time_scale 0.5 replays twice as fast: the last arrival at exactly half, 1,750,860,968,500 ns.
    let mut cfg = trace_cfg(&path);
    cfg.time_scale = Some(0.5);
    let (_, fast) = replay(&cfg);
    assert_eq!(fast.len(), 19_366);
    assert_eq!(fast[19_365].arrival, SimTime(1_750_860_968_500));
    assert_eq!(fast[1].arrival, SimTime(2_157_289_500));

    // limit, and requests acting as a limit (the smaller wins).
    cfg.time_scale = None;
    cfg.limit = Some(100);
    let (w, few) = replay(&cfg);
    assert_eq!((w.total_requests(), few.len()), (100, 100));
    assert_eq!(few[..], reqs[..100]);
    cfg.requests = Some(40);
    assert_eq!(replay(&cfg).1.len(), 40);
}

#[test]
fn azure_code_trace_replays() {
    // 8,819 rows; 18:17:03.9799600 to 19:14:19.9280160 = 3,435.948056 s.
    let (_, reqs) = replay(&trace_cfg(&repo("scenarios/traces/AzureLLMInferenceTrace_code.csv")));
    assert_eq!(reqs.len(), 8_819);
    assert_eq!(reqs[8_818].arrival, SimTime(3_435_948_056_000));
}

#[test]
fn azure_across_midnight_and_zero_output_is_one_token_with_warning() {
    // 2023-12-31 23:59:59.9 -> 2024-01-01 00:00:00.1 (200 ms) -> 00:00:01.1 (1.2 s);
    // CRLF line ends, no final newline. Row 2 says 0 output tokens: replayed as 1.
    let (w, reqs) = replay(&trace_cfg(&repo("tests/data/traces/midnight_azure.csv")));
    let got: Vec<(u64, u32, u32)> =
        reqs.iter().map(|r| (r.arrival.as_ns(), r.prompt_tokens, r.output_tokens)).collect();
    assert_eq!(got, vec![(0, 10, 5), (200_000_000, 20, 1), (1_200_000_000, 30, 7)]);
    assert_eq!(w.warnings().len(), 1);
    assert!(w.warnings()[0].contains("1 rows have 0 output tokens"), "{:?}", w.warnings());
}

#[test]
fn plain_csv_and_mooncake_parse() {
    // Plain CSV: arrival_s as written (0.5 s first), a blank line skipped.
    let (w, reqs) = replay(&trace_cfg(&repo("tests/data/traces/good_plain.csv")));
    assert_eq!(w.trace_format(), Some(TraceFormat::Csv));
    let got: Vec<(u64, u32, u32)> =
        reqs.iter().map(|r| (r.arrival.as_ns(), r.prompt_tokens, r.output_tokens)).collect();
    assert_eq!(got, vec![(500_000_000, 100, 10), (500_000_000, 200, 20), (2_250_000_000, 300, 30)]);

    // Mooncake: ms timestamps, hash_ids ignored, a fractional ms kept to the ns.
    let (w, reqs) = replay(&trace_cfg(&repo("tests/data/traces/good_mooncake.jsonl")));
    assert_eq!(w.trace_format(), Some(TraceFormat::Mooncake));
    let got: Vec<(u64, u32, u32)> =
        reqs.iter().map(|r| (r.arrival.as_ns(), r.prompt_tokens, r.output_tokens)).collect();
    assert_eq!(got, vec![(0, 100, 10), (1_500_000_000, 2000, 20), (1_500_500_000, 300, 30)]);

    // The shipped Mooncake sample: 200 rows, first 6758/500 at 0, last at 72,000 ms.
    let (_, reqs) = replay(&trace_cfg(&repo("scenarios/traces/mooncake_conversation_sample.jsonl")));
    assert_eq!(reqs.len(), 200);
    assert_ordered(&reqs);
    assert_eq!((reqs[0].arrival, reqs[0].prompt_tokens, reqs[0].output_tokens), (SimTime::ZERO, 6758, 500));
    assert_eq!(reqs[199].arrival, SimTime::from_secs(72));
}

#[test]
fn trace_lengths_with_closed_loop_arrivals() {
    let mut cfg = trace_cfg(&repo("tests/data/traces/good_plain.csv"));
    cfg.arrival = Some(ArrivalConfig::ClosedLoop { concurrency: 2 });
    let mut w = build(&cfg, 0);
    assert_eq!(w.closed_loop_concurrency(), Some(2));
    assert!(w.warnings().iter().any(|m| m.contains("timestamps are ignored")));
    let r = w.next_request(SimTime::from_secs(9)).expect("first");
    assert_eq!((r.arrival, r.prompt_tokens), (SimTime::from_secs(9), 100));
}

/// The error for `name`, as displayed.
fn error_of(name: &str, format: Option<TraceFormat>) -> (String, String) {
    let path = repo(&format!("tests/data/traces/{name}"));
    let mut cfg = trace_cfg(&path);
    cfg.trace_format = format;
    match Workload::from_config(&cfg, Some(&path), 0, Path::new(SCENARIO)) {
        Ok(_) => panic!("{name} should be rejected"),
        Err(e) => (e.to_string(), path.display().to_string()),
    }
}

#[test]
fn malformed_rows_name_file_line_problem_and_expectation() {
    // (file, 1-based line of the bad row, words the message must contain)
    let cases: [(&str, usize, &[&str]); 8] = [
        ("bad_non_numeric.csv", 3, &["\"abc\"", "not a whole number", "expected"]),
        ("bad_zero_prompt.csv", 4, &["prompt_tokens (prompt tokens) is 0", "at least 1"]),
        ("bad_negative_prompt.csv", 2, &["-5, negative", ">= 1"]),
        ("bad_backwards.csv", 4, &["backwards", "line 3", "nondecreasing"]),
        // Line 3 is blank: the count is of physical lines.
        ("bad_columns.csv", 4, &["4 columns", "expected 3"]),
        ("bad_json.jsonl", 2, &["not valid JSON (EOF while parsing a value at column 37)", "expected one object"]),
        ("bad_missing_field.jsonl", 3, &["\"input_length\""]),
        ("bad_timestamp.csv", 2, &["25:15:46", "expected e.g. 2023-11-16"]),
    ];
    for (name, line, words) in cases {
        let (msg, file) = error_of(name, None);
        assert!(msg.starts_with(&format!("{file}:{line}: ")), "{name}: {msg}");
        for w in words {
            assert!(msg.contains(w), "{name}: {msg:?} lacks {w:?}");
        }
    }
}

#[test]
fn unknown_format_and_wrong_declared_format_are_explained() {
    let (msg, file) = error_of("bad_header.csv", None);
    assert!(msg.starts_with(&format!("{file}: cannot tell the trace format")), "{msg}");
    assert!(msg.contains("trace_format"), "{msg}");
    // Declared azure, but the header is the plain CSV one: line 1 names the missing column.
    let (msg, file) = error_of("good_plain.csv", Some(TraceFormat::Azure));
    assert!(msg.starts_with(&format!("{file}:1: ")) && msg.contains("no column timestamp"), "{msg}");
    // Declared mooncake on a CSV: line 1 is not JSON.
    let (msg, file) = error_of("good_plain.csv", Some(TraceFormat::Mooncake));
    assert!(msg.starts_with(&format!("{file}:1: ")) && msg.contains("not valid JSON"), "{msg}");
}

#[test]
fn missing_trace_file_is_an_io_error() {
    let cfg = trace_cfg(&repo("tests/data/traces/no_such_file.csv"));
    let err = Workload::from_config(&cfg, None, 0, Path::new(SCENARIO)).err().map(|e| e.to_string());
    assert!(err.is_some_and(|m| m.contains("no_such_file.csv")));
}

#[test]
fn from_setup_builds_the_shipped_scenario() {
    // seed_corrected.toml: 2,000 requests, Poisson 40/s, prompts uniform 128..=10240, outputs 256.
    let setup = clustersim::scenario::load_setup(&repo("scenarios/seed_corrected.toml"), &[]).expect("scenario loads");
    let mut w = setup.workload().expect("workload builds");
    let reqs = drain(&mut w);
    assert_eq!(reqs.len(), 2_000);
    assert_ordered(&reqs);
    assert!(reqs.iter().all(|r| (128..=10_240).contains(&r.prompt_tokens) && r.output_tokens == 256));
    // 1,999 gaps of mean 25 ms: 49.975 s expected, relative SE 1/sqrt(1999) = 2.2 %; within 10 %.
    let span = reqs[1_999].arrival.as_secs_f64();
    assert!(rel(span, 49.975) < 0.10, "span {span} s");
}
