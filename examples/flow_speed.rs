//! Times the flow model on the two workloads of its speed targets, in release mode:
//!
//! - 16,256 flows of uneven sizes (1-2 MB) among 128 GPUs on 16 H100 nodes, all pairs,
//!   all started at once (as NCCL and DeepEP post them): target under 1 s, 100 MiB;
//! - an all-to-all among 1,024 GPUs (128 nodes), 1 MB to every peer, posted at once:
//!   1,047,552 flows; target under 5 s.
//!
//! Run: `cargo run --release --example flow_speed` (wrap in `/usr/bin/time -v` for the
//! peak memory). Prints wall time, the last finish instant, a digest of every flow's finish instant
//! (to compare two builds) and re-sharing counters per case.

use clustersim::hardware::network::Network;
use clustersim::hardware::spec::gpu_preset;
use clustersim::hardware::topology::Topology;
use std::time::Instant;

fn topo(nodes: u32) -> Topology {
    let p = gpu_preset("h100-sxm").expect("preset");
    Topology::new(nodes, 8, &(p.nvlink)(), &(p.network)()).expect("valid")
}

/// Every ordered pair of distinct GPUs; sizes from a fixed LCG when `uneven`.
fn all_pairs(gpus: u32, uneven: bool) -> Vec<(u32, u32, f64)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity((gpus * gpus) as usize);
    for s in 0..gpus {
        for d in (0..gpus).filter(|&d| d != s) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let b = if uneven { 1e6 * (1.0 + (x >> 40) as f64 / (1u64 << 24) as f64) } else { 1e6 };
            v.push((s, d, b));
        }
    }
    v
}

fn time(name: &str, topo: &Topology, flows: &[(u32, u32, f64)]) {
    let t0 = Instant::now();
    let mut net = Network::new(topo);
    for (i, &(s, d, b)) in flows.iter().enumerate() {
        net.start_flow(topo.route(s, d), b, i as u64);
    }
    let (mut done, mut last) = (0, Default::default());
    // FNV-1a over every (tag, finish ns) in completion order: two builds that print the
    // same digest finished every flow at the same instant, in the same order.
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    while let Some((t, d)) = net.step() {
        done += d.len();
        last = t;
        for f in &d {
            for word in [f.tag, f.finish.as_ns()] {
                digest = (digest ^ word).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let st = net.stats();
    println!(
        "{name}: {} flows, all done at {last} simulated (finish digest {digest:016x}), {:.3} s wall; {} re-sharings, {} flows looked at, {} rates changed",
        done,
        t0.elapsed().as_secs_f64(),
        st.recomputations,
        st.flows_rerated,
        st.rates_changed
    );
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    if which.is_empty() || which == "pairs" {
        time("all_pairs_128gpu_uneven", &topo(16), &all_pairs(128, true));
    }
    if which.is_empty() || which == "a2a" {
        time("all_to_all_1024gpu", &topo(128), &all_pairs(1024, false));
    }
}
