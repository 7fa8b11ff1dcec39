//! `auto` all-reduce is one rule, NCCL's tuner in spirit (the fastest on idle links at
//! each size among the algorithms the layout allows), for `clustersim collective` and
//! for serving runs alike; its figures against nccl-tests; and the link traffic a
//! serving run books follows the algorithm chosen (issue 10, item 2).

use clustersim::hardware::spec::gpu_preset;
use clustersim::hardware::topology::Topology;
use clustersim::model::framework::{framework_profile, FrameworkProfile};
use clustersim::parallel::collective::{
    choose_all_reduce, choose_all_reduce_nccl, closed_form_time, AllReduceAlgorithm, CollectiveOp,
};
use clustersim::parallel::ledger::CommKind;
use clustersim::parallel::microbench::{run, Algorithms};
use clustersim::parallel::plan::Plan;
use clustersim::serving::pricing::Pricer;

const KIB: f64 = 1024.0;
const GIB: f64 = 1_073_741_824.0;

fn nodes(preset: &str, n: u32) -> Topology {
    let p = gpu_preset(preset).expect("preset");
    Topology::new(n, 8, &(p.nvlink)(), &(p.network)()).expect("topology")
}

/// A stack that adds nothing to a collective, so serving prices are the bare closed forms.
fn bare_stack() -> FrameworkProfile {
    FrameworkProfile {
        kernel_overhead_us: 0.0,
        collective_step_overhead_us: 0.0,
        collective_efficiency: 1.0,
        ..framework_profile("optimized").expect("profile")
    }
}

#[test]
fn auto_takes_nvls_in_an_h100_node_and_pipelined_across_nodes_by_hand() {
    // One H100 node, 64 KiB. NVLS in one chunk: its set-up (25 µs, NCCL's tuning.cc),
    // then a reduce step (S up each GPU's switch port, S/8 back) and a multicast step
    // (S/8 up, S back), each gated by the NVLS port rate 308.6 GB/s:
    // 25 + 2 x (2 µs + 65,536 B / 308.6 GB/s) = 25 + 2 x 2.21237 = 29.4247 µs.
    // The ring: 14 x (2 µs + 8,192 B / 369 GB/s) = 14 x 2.0222 = 28.31 µs: the ring.
    let s = 64.0 * KIB;
    let one = nodes("h100-sxm", 1);
    let eight: Vec<u32> = (0..8).collect();
    assert_eq!(choose_all_reduce_nccl(&one, &eight, s), AllReduceAlgorithm::Ring);
    let nvls = closed_form_time(&one, CollectiveOp::AllReduce, AllReduceAlgorithm::Nvls, &eight, s).as_secs_f64();
    assert!((nvls * 1e6 - 29.4247).abs() < 0.002, "NVLS at 64 KiB: {nvls} s");
    let ring = closed_form_time(&one, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &eight, s).as_secs_f64();
    assert!((ring * 1e6 - 28.31).abs() < 0.01, "ring at 64 KiB: {ring} s");
    // 64 MiB: NVLS at its best chunk count, C = 8 (chunk S/8 = 8 MiB, 27.183 µs at
    // 308.6 GB/s): a first and a last step of one stage, 2 + 27.183 µs each, and 7
    // steps carrying both stages (1 + 1/8 chunks each way), 2 + 30.581 µs each:
    // 25 + 2 x 29.183 + 7 x 32.581 = 311.43 µs (C = 4 gives 327.2, C = 16 315.6).
    // The ring: 14 x (2 + 8 MiB / 369 GB/s) = 14 x 24.733 = 346.27 µs. NVLS.
    let s = 64.0 * KIB * KIB;
    assert_eq!(choose_all_reduce_nccl(&one, &eight, s), AllReduceAlgorithm::Nvls);
    let t = closed_form_time(&one, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &eight, s).as_secs_f64();
    assert!((t * 1e6 - 311.43).abs() < 0.02, "NVLS at 64 MiB: {t} s");
    let s = 64.0 * KIB;
    // Two nodes, 16 GPUs, 64 KiB: pipelined hierarchical in one chunk runs its four
    // stages in turn: in-node exchange (7 x S/8 off each NVLink at 369 GB/s, 2 µs),
    // across nodes twice (S/16 per NIC at 47.5 GB/s, 5 µs), in-node again:
    // 2 x (2 + 0.15541) + 2 x (5 + 0.08623) = 14.483 µs; the flat ring pays 30 x 5 µs.
    let two = nodes("h100-sxm", 2);
    let sixteen: Vec<u32> = (0..16).collect();
    assert_eq!(choose_all_reduce_nccl(&two, &sixteen, s), AllReduceAlgorithm::Pipelined);
    let t = closed_form_time(&two, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &sixteen, s).as_secs_f64();
    assert!((t * 1e6 - 14.483).abs() < 0.002, "pipelined at 64 KiB: {t} s");
    // An A100 node has no SHARP, and NCCL's tree is a chain inside a node: the ring.
    let a100 = nodes("a100-80g", 1);
    for bytes in [8.0 * KIB, 1024.0 * KIB, GIB] {
        assert_eq!(choose_all_reduce_nccl(&a100, &eight, bytes), AllReduceAlgorithm::Ring);
    }
}

#[test]
fn the_collective_command_lands_near_nccl_tests() {
    let algs = Algorithms::default();
    // 8 x H100 at 1 GiB: auto runs NVLS; nccl-tests report ~480 GB/s busbw (the preset's
    // NVLS port rate is derived from it; the pipeline fill leaves 461).
    let one = nodes("h100-sxm", 1);
    let eight: Vec<u32> = (0..8).collect();
    let rows = run(&one, CollectiveOp::AllReduce, algs, &eight, &[1 << 30]).expect("runs");
    assert_eq!(rows[0].algorithm, "nvls");
    assert!((rows[0].busbw_gb_s / 480.0 - 1.0).abs() < 0.05, "busbw {}", rows[0].busbw_gb_s);
    // 2-16 nodes: pipelined hierarchical within 15 % of the 8-NIC bound, 8 x 47.5 GB/s
    // (NDR 50 GB/s x 0.95) = 380 GB/s.
    for n in [2u32, 4, 8, 16] {
        let topo = nodes("h100-sxm", n);
        let ranks: Vec<u32> = (0..8 * n).collect();
        let rows = run(&topo, CollectiveOp::AllReduce, algs, &ranks, &[1 << 30]).expect("runs");
        assert_eq!(rows[0].algorithm, "pipelined", "{n} nodes");
        assert!((rows[0].busbw_gb_s / 380.0 - 1.0).abs() < 0.15, "{n} nodes: busbw {}", rows[0].busbw_gb_s);
        // The flow model reproduces the closed form on idle links within 1 %.
        let (flow, cf) = (rows[0].time.as_ns() as f64, rows[0].closed_form.as_ns() as f64);
        assert!((flow / cf - 1.0).abs() < 0.01, "{n} nodes: flow {flow} ns vs closed form {cf} ns");
    }
}

#[test]
fn serving_prices_a_tp_all_reduce_by_the_same_rule() {
    // With a stack that adds nothing, a serving run's TP all-reduce costs what the one
    // rule (`choose_all_reduce` with the stack's kernel buffer, 8 MiB for `optimized`)
    // runs at every size: the cheapest of the candidates' prices (one per algorithm and
    // chunk count, each closed outside the sizes the rule gives it) is that choice.
    // Sizes: 4 KiB to 1 GiB by 4x, and each side of the rule's edges (256 KiB for 8
    // ranks, the 8 MiB buffer). Rounding: each of at most ~130 steps rounds to 1 ns.
    let cap = bare_stack().custom_all_reduce_max_bytes as f64;
    assert_eq!(cap, 8_388_608.0);
    let mut sizes: Vec<f64> = (0..10).map(|i| 4.0 * KIB * 4f64.powi(i)).collect();
    sizes.extend([256.0 * KIB - 16.0, cap - 16.0, cap, cap + 16.0]);
    for (preset, n_nodes) in [("h100-sxm", 1u32), ("h100-sxm", 2), ("a100-80g", 1)] {
        let topo = nodes(preset, n_nodes);
        let gpus: Vec<u32> = (0..8 * n_nodes).collect();
        let pricer = Pricer::on(topo.clone(), AllReduceAlgorithm::Auto, bare_stack(), 0.0);
        let price = pricer.all_reduce(&gpus);
        for &s in &sizes {
            let priced = price.ns(s) as f64;
            let alg = choose_all_reduce(&topo, &gpus, s, cap);
            let cf = closed_form_time(&topo, CollectiveOp::AllReduce, alg, &gpus, s).as_ns() as f64;
            assert!((priced - cf).abs() <= 150.0, "{preset} x{n_nodes} at {s} B: priced {priced} ns, {alg:?} {cf} ns");
        }
    }
    // A stack's per-step cost moves NCCL's choice towards fewer steps, as a tuner that
    // knew it would: at 1 MiB in an H100 node with 5 µs more per step and no kernels of
    // its own, NVLS in one chunk (2 steps) beats more chunks and the ring (14 steps,
    // 32.97 + 70 µs); its price is the bare one plus 2 x 5 µs.
    let topo = nodes("h100-sxm", 1);
    let eight: Vec<u32> = (0..8).collect();
    let slow = FrameworkProfile { collective_step_overhead_us: 5.0, custom_all_reduce_max_bytes: 0, ..bare_stack() };
    let price = Pricer::on(topo.clone(), AllReduceAlgorithm::Auto, slow, 0.0).all_reduce(&eight);
    // NVLS, 1 chunk, 1 MiB: 25 µs set-up + 2 x (2 µs + 1,048,576 B / 308.6 GB/s)
    // = 25 + 2 x 5.3978 = 35.796 µs (2 chunks: 25 + 3 x 2 + 3.125 x 1.6989 = 36.31).
    let expect = 35_796.0 + 10_000.0;
    assert!((price.ns(1_048_576.0) as f64 - expect).abs() < 2.0, "{} ns", price.ns(1_048_576.0));
}

#[test]
fn link_traffic_follows_the_algorithm_chosen() {
    // TP8 in one node. Per payload byte each of the 8 ranks records, GPU 0's NVLink up
    // carries: NVLS (H100) (1 + 1/8) S in all, so 1.125/8 = 0.140625 per recorded byte;
    // the ring (A100, no SHARP) 2 x 7/8 S, so 1.75/8 = 0.21875.
    let plan = Plan { dp: 1, pp: 1, ep: 1, tp: 8, gpus_per_node: 8, layers: 1 };
    for (preset, per_byte) in [("h100-sxm", 0.140625), ("a100-80g", 0.21875)] {
        let topo = nodes(preset, 1);
        let facts = Pricer::on(topo.clone(), AllReduceAlgorithm::Auto, bare_stack(), 0.0).network_facts(&plan);
        let group = facts.gpu_groups[0][CommKind::Tp.index()].expect("GPU 0 is in a TP group");
        let up = topo.nvlink_up(0);
        let got = facts.groups[group as usize].link_bytes_per_payload.iter().find(|(l, _)| *l == up).map(|x| x.1);
        let got = got.expect("NVLink up of GPU 0 carries TP traffic");
        assert!((got - per_byte).abs() < 1e-9, "{preset}: {got} bytes per payload byte");
    }
}

#[test]
fn a_step_across_tiers_bends_the_closed_form_and_the_convex_form_follows_it() {
    use clustersim::parallel::collective::{convex_closed_form, expand_chunked, schedule_time};
    use clustersim::parallel::price::Convex;
    // Pipelined hierarchical on 2 x 8 H100 in C = 2 chunks: step 1 runs the in-node
    // exchange of chunk 2 (each GPU's NVLink up carries 7/8 x S/2: 2 µs + S x 0.0011856
    // ns/B at 369 GB/s) beside the cross-node exchange of chunk 1 (S/2/16 per NIC:
    // 5 µs + S x 0.00065789 ns/B at 47.5 GB/s). The NIC's latency gates the step below
    // 3,000 / (0.0011856 - 0.00065789) = 5.69 MB, NVLink's bytes above: a bend, which a
    // single line through 0 and a huge payload misses by up to 3 µs per such step.
    let topo = nodes("h100-sxm", 2);
    let ranks: Vec<u32> = (0..16).collect();
    let (op, alg) = (CollectiveOp::AllReduce, AllReduceAlgorithm::Pipelined);
    let at_one = expand_chunked(&topo, op, alg, &ranks, 1.0, Some(2)).expect("valid");
    let pieces = convex_closed_form(&topo, &at_one, 1.0);
    assert!(pieces.len() >= 2, "{pieces:?}");
    let convex = Convex(pieces);
    let mut s = KIB;
    while s <= GIB {
        let exact = schedule_time(&topo, &expand_chunked(&topo, op, alg, &ranks, s, Some(2)).expect("valid"));
        // Each of the 5 steps rounds to 1 ns.
        let got = convex.ns(s) as i64;
        assert!((got - exact.as_ns() as i64).abs() <= 5, "at {s} B: {got} ns vs {exact}");
        s *= 2.0;
    }
}
