//! Physical limits as properties: no link ever carries more than its capacity under
//! random concurrent collectives, every collective finishes, GPU states add up to wall
//! time, and no operator runs faster than the GPU's peak FLOP/s or HBM bandwidth.

use clustersim::engine::SimTime;
use clustersim::hardware::gpu::op_time;
use clustersim::hardware::spec::{gpu_preset, FabricTopology, GPU_PRESETS};
use clustersim::hardware::topology::Topology;
use clustersim::parallel::collective::CollectiveOp;
use clustersim::parallel::runner::{CollectiveRequest, CollectiveRunner};
use clustersim::scenario::types::AllReduceAlgorithm;
use proptest::prelude::*;

fn algs() -> impl Strategy<Value = AllReduceAlgorithm> {
    prop_oneof![
        Just(AllReduceAlgorithm::Auto),
        Just(AllReduceAlgorithm::Ring),
        Just(AllReduceAlgorithm::HalvingDoubling),
        Just(AllReduceAlgorithm::Hierarchical),
    ]
}

/// (op index, algorithm, rank seed permutation, rank count, bytes, arrival µs)
fn collective() -> impl Strategy<Value = (usize, AllReduceAlgorithm, Vec<u32>, usize, f64, u64)> {
    (0..6usize, algs(), Just((0..24u32).collect::<Vec<_>>()).prop_shuffle(), 2..24usize, 1e3..3e7f64, 0..300u64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn links_never_exceed_capacity(
        fat_tree in any::<bool>(),
        oversub in 1.0..4.0f64,
        colls in prop::collection::vec(collective(), 1..5),
        slow in prop::option::of((0..100u32, 0.1..1.0f64)),
    ) {
        let p = gpu_preset("h100-sxm").expect("preset");
        let mut net = (p.network)();
        net.oversubscription = oversub;
        if fat_tree { net.topology = FabricTopology::FatTree; }
        let topo = Topology::new(3, 8, &(p.nvlink)(), &net).expect("valid");
        let mut r = CollectiveRunner::new(&topo);
        if let Some((link, frac)) = slow {
            let l = link % topo.links().len() as u32;
            r.set_link_capacity(l, topo.link(l).bytes_per_s * frac);
        }
        for (opi, alg, perm, n, bytes, at) in &colls {
            let op = CollectiveOp::ALL[*opi];
            let n = if op == CollectiveOp::SendRecv { 2 } else { *n };
            let ranks = &perm[..n];
            let req = CollectiveRequest::new(&topo, op, *alg, ranks, *bytes).expect("valid");
            r.admit(req, &vec![SimTime::from_us(*at); n]).expect("admitted");
        }
        let mut finished = 0;
        let mut end = SimTime::ZERO;
        while let Some((t, done)) = r.step() {
            finished += done.len();
            end = t;
            let net = r.network();
            for (i, link) in topo.links().iter().enumerate() {
                let load = net.link_load(i as u32);
                let cap = net.link_capacity(i as u32);
                prop_assert!(load <= cap * (1.0 + 1e-9), "link {i} ({:?}) carries {load} > {cap}", link.kind);
            }
        }
        prop_assert_eq!(finished, colls.len());
        for g in 0..topo.gpus() {
            prop_assert_eq!(r.gpu_totals(g, end).sum(), end);
        }
    }

    #[test]
    fn operators_respect_the_roofline(
        preset in 0..GPU_PRESETS.len(),
        flops in 0.0..1e15f64,
        bytes in 0.0..1e11f64,
        fp8 in any::<bool>(),
    ) {
        let gpu = (GPU_PRESETS[preset].spec)();
        let dtype = if fp8 { 1.0 } else { 2.0 };
        let t = op_time(&gpu, flops, bytes, dtype).as_secs_f64();
        let peak = if fp8 { gpu.peak_fp8_tflops } else { gpu.peak_tflops } * 1e12;
        prop_assert!(t > 0.0);
        // Rounding to the nanosecond may shave at most 0.5 ns off.
        prop_assert!(flops / (t + 0.5e-9) <= peak);
        prop_assert!(bytes / (t + 0.5e-9) <= gpu.memory_bandwidth_tb_s * 1e12);
        prop_assert!(t >= gpu.launch_overhead_us * 1e-6 - 0.5e-9);
    }
}
