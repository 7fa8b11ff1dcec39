//! Physical limits as properties: no link ever carries more than its capacity under
//! random concurrent collectives, every collective finishes, GPU states add up to wall
//! time (operators against the roofline: tests/roofline_props.rs).

use clustersim::engine::SimTime;
use clustersim::hardware::spec::{gpu_preset, FabricTopology};
use clustersim::hardware::topology::Topology;
use clustersim::parallel::collective::AllReduceAlgorithm;
use clustersim::parallel::collective::CollectiveOp;
use clustersim::parallel::runner::{CollectiveRequest, CollectiveRunner};
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
            prop_assert!(r.gpu_totals(g, end).busy_ns() <= end.as_ns());
        }
    }
}
