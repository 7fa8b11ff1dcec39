//! Flow-model speed: simulated flows per second of wall time.
//!
//! - `all_pairs_128gpu`: 128 GPUs on 16 H100 nodes, every GPU sends to every other at
//!   once: 16,256 concurrent flows sharing NVLink, NICs and the spine.
//! - `all_pairs_32gpu_uneven`: 32 GPUs on 4 nodes, all pairs with uneven sizes, so the
//!   992 flows finish at ~1,000 distinct instants. Each finish ripples small rate
//!   changes through the flows of the NICs it frees.
//! - `all_pairs_128gpu_uneven`: the same among 128 GPUs on 16 nodes: 16,256 flows
//!   (1-2 MB each) finishing at ~16,000 instants, each moving about 3,000 max-min
//!   rates (the speed target: under 1 s; `examples/flow_speed.rs` runs it alone, for
//!   `/usr/bin/time -v`).
//! - `all_to_all_1024gpu`: 1,024 GPUs on 128 nodes, 1 MB from every GPU to every other,
//!   posted at once (1,047,552 flows): equal sizes, so the NIC flows all finish at one
//!   instant and re-share once (target: under 5 s).
//! - `independent_10k`: 10,000 flows on 1,250 nodes that share no link, with distinct
//!   sizes: each finish re-shares only its own flow, so the cost stays linear.
//!
//! Run: `cargo bench --bench network` (criterion reports elements/s = flows/s).

use clustersim::hardware::network::Network;
use clustersim::hardware::spec::gpu_preset;
use clustersim::hardware::topology::Topology;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn topo(nodes: u32) -> Topology {
    let p = gpu_preset("h100-sxm").expect("preset");
    Topology::new(nodes, 8, &(p.nvlink)(), &(p.network)()).expect("valid")
}

/// Starts `flows` at time zero and runs them all to completion; returns completions.
fn run(topo: &Topology, flows: &[(u32, u32, f64)]) -> usize {
    let mut net = Network::new(topo);
    for (i, &(s, d, b)) in flows.iter().enumerate() {
        net.start_flow(topo.route(s, d), b, i as u64);
    }
    let mut done = 0;
    while let Some((_, d)) = net.step() {
        done += d.len();
    }
    done
}

fn all_pairs(gpus: u32, uneven: bool) -> Vec<(u32, u32, f64)> {
    let mut v = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for s in 0..gpus {
        for d in 0..gpus {
            if s != d {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let b = if uneven { 1e6 * (1.0 + (x >> 40) as f64 / (1u64 << 24) as f64) } else { 1e6 };
                v.push((s, d, b));
            }
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("flows");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    let t16 = topo(16);
    let t4 = topo(4);
    for (name, t, flows) in [
        ("all_pairs_128gpu", &t16, all_pairs(128, false)),
        ("all_pairs_32gpu_uneven", &t4, all_pairs(32, true)),
        ("all_pairs_128gpu_uneven", &t16, all_pairs(128, true)),
    ] {
        g.throughput(Throughput::Elements(flows.len() as u64));
        g.bench_with_input(BenchmarkId::new(name, flows.len()), &flows, |b, f| b.iter(|| black_box(run(t, f))));
    }
    let t128 = topo(128);
    let a2a = all_pairs(1024, false);
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(a2a.len() as u64));
    g.bench_with_input(BenchmarkId::new("all_to_all_1024gpu", a2a.len()), &a2a, |b, f| {
        b.iter(|| black_box(run(&t128, f)))
    });
    g.measurement_time(Duration::from_secs(8));
    let t1250 = topo(1250);
    let indep: Vec<(u32, u32, f64)> = (0..10_000u32)
        .map(|g| {
            let dst = (g / 8) * 8 + (g % 8 + 1) % 8;
            (g, dst, 1e6 + g as f64 * 997.0)
        })
        .collect();
    g.throughput(Throughput::Elements(indep.len() as u64));
    g.bench_with_input(BenchmarkId::new("independent_10k", indep.len()), &indep, |b, f| {
        b.iter(|| black_box(run(&t1250, f)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
