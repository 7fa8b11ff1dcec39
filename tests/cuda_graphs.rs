//! CUDA graphs in engine profiles: decode-only iterations of at most
//! `cuda_graph_max_batch` sequences replay a graph and pay no per-kernel host launch;
//! any other iteration pays `eager_launch_us` for every kernel of its layers.

mod synthetic;

use clustersim::analysis::measured::Measurement;
use clustersim::model::framework::{framework_profile, FrameworkProfile};

/// One request at a time (concurrency 1): every decode iteration holds one sequence.
fn row(metric: &str) -> Measurement {
    synthetic::vllm_row("synthetic", 1, 4, metric)
}

fn with_graphs(max_batch: u32, eager_us: f64) -> FrameworkProfile {
    let mut p = framework_profile("vllm").expect("shipped");
    p.cuda_graph_max_batch = max_batch;
    p.eager_launch_us = eager_us;
    p
}

fn ms(p: &FrameworkProfile, metric: &str) -> f64 {
    row(metric).simulate(p, 1000).expect("simulates")
}

#[test]
fn eager_iterations_pay_a_launch_per_kernel_and_graph_replays_do_not() {
    // Llama-3-8B at TP1 launches 10 kernels per layer in a one-sequence decode: QKV GEMM
    // and rotary (2), KV write and decode attention (2), output projection (1), two
    // fused norms (2), gate/up, activation and down of the MLP (3). 32 layers: 320
    // kernels; at 10 µs each an eager iteration waits 3.2 ms longer on its host.
    let base = with_graphs(512, 0.0);
    let graphed = with_graphs(512, 10.0);
    let eager = with_graphs(0, 10.0);
    let tpot = |p: &FrameworkProfile| ms(p, "median_tpot_ms");
    let ttft = |p: &FrameworkProfile| ms(p, "median_ttft_ms");
    // Decodes of one sequence are inside the captured sizes: the same step time (to the
    // rounding of (e2e - TTFT) / 15 at shifted absolute times).
    assert!((tpot(&graphed) - tpot(&base)).abs() < 1e-9, "{} vs {}", tpot(&graphed), tpot(&base));
    // Without graphs every decode step waits 320 x 10 µs = 3.2 ms more.
    assert!((tpot(&eager) - tpot(&base) - 3.2).abs() < 1e-6, "{} vs {}", tpot(&eager), tpot(&base));
    // The prefill iteration (64 prompt tokens: attention has a prefill kernel instead of
    // a decode one, still 10 kernels per layer) runs eagerly under either profile.
    assert!((ttft(&graphed) - ttft(&base) - 3.2).abs() < 1e-6, "{} vs {}", ttft(&graphed), ttft(&base));
    assert!((ttft(&eager) - ttft(&graphed)).abs() < 1e-9);
}

#[test]
fn a_batch_above_the_captured_size_runs_eagerly() {
    let p = with_graphs(8, 2.0);
    assert!(p.replays_graph(0, 8));
    assert!(!p.replays_graph(0, 9), "9 decodes exceed the 8 captured");
    assert!(!p.replays_graph(1, 4), "a prefill chunk in the batch");
    assert!(!p.replays_graph(0, 0), "nothing to decode");
    // 9 decodes, 100 kernels at 2 µs: 200 µs; the same batch within the graph: 0.
    assert_eq!(p.launch_host(0, 9, || 100).as_ns(), 200_000);
    assert_eq!(p.launch_host(0, 8, || unreachable!("not counted when a graph replays")).as_ns(), 0);
}
