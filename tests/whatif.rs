//! What-if events and overhead knobs change what the run measures, by the amounts the
//! cost model says they should.

use clustersim::scenario::{parse, validate};
use clustersim::serving::{simulate, RunOptions};
use std::path::Path;

/// Llama-3-8B with TP=8 on one H100 node; the rest of each section is given.
fn build(parallel: &str, serving: &str, workload: &str, events: &str) -> String {
    format!(
        "[scenario]\nname = \"whatif\"\nseed = 5\n[hardware]\ngpu = \"h100-sxm\"\nnodes = 1\n\
         [model]\npreset = \"llama-3-8b\"\n[parallel]\ntp = 8\n{parallel}\n[serving]\n{serving}\n\
         [workload]\n{workload}\n{events}\n"
    )
}

/// 64 requests of 512 + 64 tokens at a constant 20/s.
fn scenario(extra: &str) -> String {
    let mixed = "requests = 64\narrival = { process = \"constant\", rate_per_s = 20.0 }\n\
                 prompt_tokens = { dist = \"fixed\", value = 512 }\noutput_tokens = { dist = \"fixed\", value = 64 }";
    match extra.split_once("[[events]]") {
        Some((parallel, events)) => build(parallel, "", mixed, &format!("[[events]]{events}")),
        None => build(extra, "", mixed, ""),
    }
}

fn run(text: &str) -> clustersim::metrics::report::Report {
    let path = Path::new("whatif.toml");
    let setup = validate(&parse(text, path, &[]).unwrap(), path).unwrap();
    simulate(&setup, RunOptions::default()).unwrap().report
}

/// 16 prompts of 4096 tokens and 1 output token, one per iteration (max_seqs = 1):
/// every iteration is the same prefill, with 64 identical TP all-reduces (2 per layer x
/// 32 layers) of 4096 x 4096 x 2 B = 33,554,432 B each.
fn prefills(parallel_extra: &str, events: &str) -> String {
    let prompts = "requests = 16\narrival = { process = \"all_at_once\" }\n\
                   prompt_tokens = { dist = \"fixed\", value = 4096 }\noutput_tokens = { dist = \"fixed\", value = 1 }";
    build(parallel_extra, "max_seqs = 1\nmax_batch_tokens = 4096", prompts, events)
}

#[test]
fn nvlink_at_half_bandwidth_doubles_the_bandwidth_part_of_every_all_reduce() {
    // Ring all-reduce over 8 GPUs: 2(n-1)·α + 2(n-1)/n · S/B with α = 2 µs and
    // B = 450 GB/s x 0.82 = 369 GB/s: 28 µs + 1.75 x 33,554,432 / 369e9 s
    // = 28 + 159.133 = 187.133 µs. At half bandwidth: 28 + 318.267 = 346.267 µs.
    // 16 iterations x 64 all-reduces each, on every GPU. (The ring named: `auto` runs
    // NVLS on H100 nodes.)
    let ring = "all_reduce = \"ring\"";
    let base = run(&prefills(ring, ""));
    let slow =
        run(&prefills(ring, "[[events]]\nkind = \"link_slowdown\"\nat_s = 0.0\nlink = \"nvlink\"\nfraction = 0.5"));
    let n = 16.0 * 64.0;
    assert!((base.gpus[0].tp_comm_s / n - 187.133e-6).abs() < 1e-9, "{}", base.gpus[0].tp_comm_s / n);
    assert!((slow.gpus[0].tp_comm_s / n - 346.267e-6).abs() < 1e-9, "{}", slow.gpus[0].tp_comm_s / n);
    assert_eq!(slow.summary.requests.completed, 16);
}

#[test]
fn collective_overhead_knob_adds_its_fixed_cost_to_every_collective() {
    // 10 µs more per all-reduce: 16 iterations x 64 all-reduces = 1024 of them, so the
    // TP time of every GPU grows by 10.24 ms exactly, and the overhead fraction rises.
    let base = run(&prefills("", ""));
    let more = run(&prefills("collective_overhead_us = 10.0", ""));
    let added = more.gpus[0].tp_comm_s - base.gpus[0].tp_comm_s;
    assert!((added - 10.24e-3).abs() < 1e-9, "added {added} s");
    assert!(more.summary.overhead.fraction > base.summary.overhead.fraction);
}

#[test]
fn overlapping_communication_lowers_the_overhead_fraction() {
    let base = run(&scenario(""));
    let overlapped = run(&scenario("overlap_comm = true"));
    assert!(
        overlapped.summary.overhead.fraction < base.summary.overhead.fraction,
        "{} vs {}",
        overlapped.summary.overhead.fraction,
        base.summary.overhead.fraction
    );
    assert_eq!(overlapped.summary.requests.completed, 64);
}

#[test]
fn load_change_doubles_the_arrival_rate_while_it_lasts() {
    // Constant 20/s: 64 arrivals span 3.15 s. With the rate doubled from t = 0 the
    // same 64 arrive in half the time, so the first 64 arrivals' window halves.
    let base = run(&scenario(""));
    let busy = run(&scenario("[[events]]\nkind = \"load_change\"\nat_s = 0.0\nfactor = 2.0"));
    let last_arrival = |r: &clustersim::metrics::report::Report| r.summary.sim.simulated_s;
    assert!(last_arrival(&busy) < last_arrival(&base));
    assert_eq!(busy.summary.requests.completed, 64);
}
