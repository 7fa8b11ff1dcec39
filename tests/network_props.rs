//! Physical limits as properties: no link ever carries more than its capacity under
//! random concurrent collectives, every collective finishes, GPU states add up to wall
//! time (operators against the roofline: tests/roofline_props.rs).

use clustersim::engine::SimTime;
use clustersim::hardware::spec::{gpu_preset, FabricTopology};
use clustersim::hardware::topology::{LinkKind, Topology};
use clustersim::parallel::collective::AllReduceAlgorithm;
use clustersim::parallel::collective::CollectiveOp;
use clustersim::parallel::runner::{CollectiveRequest, CollectiveRunner};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn algs() -> impl Strategy<Value = AllReduceAlgorithm> {
    prop_oneof![
        Just(AllReduceAlgorithm::Auto),
        Just(AllReduceAlgorithm::Ring),
        Just(AllReduceAlgorithm::HalvingDoubling),
        Just(AllReduceAlgorithm::Hierarchical),
        Just(AllReduceAlgorithm::Pipelined),
        Just(AllReduceAlgorithm::Tree),
        Just(AllReduceAlgorithm::Nvls),
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

/// Max-min fair rates by plain progressive filling, from scratch: the reference the
/// incremental re-sharing must agree with. `flows[i]` is the list of links of flow i.
fn reference_max_min(caps: &[f64], flows: &[Vec<u32>]) -> Vec<f64> {
    let mut rem = caps.to_vec();
    let mut rate = vec![0.0; flows.len()];
    let mut fixed = vec![false; flows.len()];
    loop {
        // The link with the smallest fair share among links with unfixed flows.
        let mut best: Option<(f64, usize)> = None;
        for (l, r) in rem.iter().enumerate() {
            let n = (0..flows.len()).filter(|&i| !fixed[i] && flows[i].contains(&(l as u32))).count();
            if n > 0 {
                let share = r.max(0.0) / n as f64;
                if best.is_none_or(|(s, _)| share < s) {
                    best = Some((share, l));
                }
            }
        }
        let Some((share, l)) = best else { return rate };
        for i in 0..flows.len() {
            if !fixed[i] && flows[i].contains(&(l as u32)) {
                fixed[i] = true;
                rate[i] = share;
                for &m in &flows[i] {
                    rem[m as usize] -= share;
                }
            }
        }
    }
}

/// Drives a network over `topo` through flow starts `(src, dst, bytes, µs)` and capacity
/// changes `(link, fraction of nominal, µs)` in time order, and after every instant checks
/// each draining flow's rate against a full recomputation (to 1e-9 relative).
fn check_against_reference(
    topo: &Topology,
    flows: &[(u32, u32, f64, u64)],
    changes: &[(u32, f64, u64)],
) -> Result<(), TestCaseError> {
    let mut net = clustersim::hardware::network::Network::new(topo);
    // Starts and capacity changes in time order; each at its µs instant.
    let mut todo: Vec<(u64, usize, bool)> = flows.iter().enumerate().map(|(i, f)| (f.3, i, true)).collect();
    todo.extend(changes.iter().enumerate().map(|(i, s)| (s.2, i, false)));
    todo.sort_unstable();
    let mut ids = Vec::new();
    let mut routes: Vec<Vec<u32>> = Vec::new();
    let mut k = 0;
    loop {
        let next_todo = todo.get(k).map(|t| SimTime::from_us(t.0));
        let next_net = net.next_event_time();
        let at = match (next_todo, next_net) {
            (None, None) => break,
            (Some(a), Some(b)) if b < a => {
                net.step();
                None
            }
            (Some(a), _) => Some(a),
            (None, Some(_)) => {
                net.step();
                None
            }
        };
        if let Some(at) = at {
            net.advance_clock(at);
            while todo.get(k).is_some_and(|t| SimTime::from_us(t.0) == at) {
                let (_, i, is_flow) = todo[k];
                if is_flow {
                    let (s, d, b, _) = flows[i];
                    let r = topo.route(s, d);
                    ids.push(net.start_flow(r, b, i as u64));
                    routes.push(r.links().to_vec());
                } else {
                    let (l, frac, _) = changes[i];
                    net.set_link_capacity(l, topo.link(l).bytes_per_s * frac);
                }
                k += 1;
            }
        }
        net.next_event_time();
        let live: Vec<usize> = (0..ids.len()).filter(|&i| net.is_draining(ids[i])).collect();
        let caps: Vec<f64> = (0..topo.links().len() as u32).map(|l| net.link_capacity(l)).collect();
        let want = reference_max_min(&caps, &live.iter().map(|&i| routes[i].clone()).collect::<Vec<_>>());
        for (j, &i) in live.iter().enumerate() {
            let got = net.flow_rate(ids[i]);
            prop_assert!((got - want[j]).abs() <= 1e-9 * want[j].max(1.0), "flow {i}: {got} vs {}", want[j]);
        }
        for l in 0..topo.links().len() as u32 {
            let (load, cap) = (net.link_load(l), net.link_capacity(l));
            prop_assert!(load <= cap * (1.0 + 1e-9), "link {l} carries {load} > {cap}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// After every instant, each draining flow's rate equals the max-min fair rate a
    /// full recomputation gives (to 1e-9 relative), under random starts, uneven sizes
    /// and capacity changes on a 3-node cluster with a 2:1 spine and 4 NICs per node.
    #[test]
    fn incremental_sharing_equals_a_full_recomputation(
        flows in prop::collection::vec((0..24u32, 0..24u32, 1e5..5e7f64, 0..400u64), 1..60),
        slow in prop::collection::vec((0..200u32, 0.2..1.0f64, 0..400u64), 0..3),
    ) {
        let p = gpu_preset("h100-sxm").expect("preset");
        let mut netspec = (p.network)();
        netspec.oversubscription = 2.0;
        netspec.nics_per_node = 4;
        let topo = Topology::new(3, 8, &(p.nvlink)(), &netspec).expect("valid");
        let n = topo.links().len() as u32;
        let changes: Vec<(u32, f64, u64)> = slow.iter().map(|&(l, f, at)| (l % n, f, at)).collect();
        check_against_reference(&topo, &flows, &changes)?;
    }

    /// The same on non-blocking fabrics, whose spine links the sharing leaves out while
    /// they cannot fill: several flows of different sizes on each of a few routes, and
    /// NIC and spine links slowed or failed (0) in flight and restored later, so spine
    /// links start and stop binding.
    #[test]
    fn sharing_on_non_blocking_fabrics_equals_a_full_recomputation(
        fat_tree in any::<bool>(),
        nics in prop::sample::select(vec![2u32, 4, 8]),
        oversub in prop::sample::select(vec![0.5, 1.0]),
        pairs in prop::collection::vec((0..24u32, 0..24u32), 1..6),
        flows in prop::collection::vec((0..6usize, 1e5..5e7f64, 0..400u64), 1..50),
        slow in prop::collection::vec(
            (any::<bool>(), 0..1000usize, prop_oneof![Just(0.0), 0.05..1.0f64], 0..300u64, 0..300u64),
            0..4,
        ),
    ) {
        let p = gpu_preset("h100-sxm").expect("preset");
        let mut netspec = (p.network)();
        netspec.oversubscription = oversub;
        netspec.nics_per_node = nics;
        if fat_tree { netspec.topology = FabricTopology::FatTree; }
        let topo = Topology::new(3, 8, &(p.nvlink)(), &netspec).expect("valid");
        let kinds = |spine_only: bool| -> Vec<u32> {
            (0..topo.links().len() as u32)
                .filter(|&l| match topo.link(l).kind {
                    LinkKind::LeafUp | LinkKind::LeafDown => true,
                    LinkKind::NicUp | LinkKind::NicDown => !spine_only,
                    _ => false,
                })
                .collect()
        };
        let (spine, fabric) = (kinds(true), kinds(false));
        // Each slowdown (on a spine link half the time) is restored `back` µs later.
        let mut changes = Vec::new();
        for &(on_spine, pick, frac, at, back) in &slow {
            let among = if on_spine { &spine } else { &fabric };
            let l = among[pick % among.len()];
            changes.push((l, frac, at));
            changes.push((l, 1.0, at + back));
        }
        let flows: Vec<(u32, u32, f64, u64)> =
            flows.iter().map(|&(r, b, at)| { let (s, d) = pairs[r % pairs.len()]; (s, d, b, at) }).collect();
        check_against_reference(&topo, &flows, &changes)?;
    }
}
