//! End-to-end benchmarks: whole serving runs of shipped scenarios.
//!
//! `cargo bench --bench e2e`. Throughput is reported in simulated requests per wall
//! second. The full Azure replay (19,366 requests) is timed by the README's command
//! instead, since criterion's repetitions would take minutes.

use clustersim::scenario::{load_setup, Override};
use clustersim::serving::{simulate, RunOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::time::Duration;

fn run(path: &str, overrides: &[&str]) -> u64 {
    let o: Vec<Override> = overrides.iter().map(|s| s.parse().expect("override")).collect();
    let setup = load_setup(Path::new(path), &o).expect("scenario");
    let out = simulate(&setup, RunOptions::default()).expect("run");
    out.report.summary.requests.completed
}

fn e2e(c: &mut Criterion) {
    let mut g = c.benchmark_group("e2e");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    let cases: [(&str, &str, &[&str], u64); 3] = [
        ("azure_llama2-70b_tp8_2000req", "scenarios/azure_conv_llama2-70b.toml", &["workload.limit=2000"], 2000),
        ("seed_corrected_moe_500req", "scenarios/seed_corrected.toml", &["workload.requests=500"], 500),
        ("llama3-8b_16dp_5000req", "scenarios/llama3-8b_16dp_poisson.toml", &["workload.requests=5000"], 5000),
    ];
    for (name, path, overrides, requests) in cases {
        g.throughput(Throughput::Elements(requests));
        g.bench_function(name, |b| b.iter(|| run(path, overrides)));
    }
    g.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
