//! A KV handoff and an instance's collective on one NIC share it (issue 10, item 1):
//! both are booked on the run's one fabric and slow each other by max-min fairness
//! for as long as they overlap, and only then.

use clustersim::engine::SimTime;
use clustersim::metrics::network::{GroupFact, NetworkFacts};
use clustersim::metrics::recorder::Recorder;
use clustersim::parallel::ledger::{CommKind, GpuTotals};
use clustersim::parallel::plan::Plan;
use clustersim::serving::links::Owner;
use clustersim::serving::paced::{FabricPart, SharedFabric};
use clustersim::serving::stage::StageRun;
use std::collections::BTreeSet;

/// Links (ids of this test): 0 = NIC up of node 0, 1 = NIC down of the decode node,
/// 2 = NIC down of node 1; each 1 GB/s = 1 byte / ns.
const CAPACITY: [f64; 3] = [1e9, 1e9, 1e9];

/// One instance of TP = 2 over two nodes of one GPU: its all-reduce crosses node 0's
/// NIC (link 0) and node 1's (link 2). Hand-made facts: each member's payload byte
/// puts half a byte on each link, so the two members' payloads of S bytes (both record
/// S) put S bytes on each.
fn instance() -> (Plan, NetworkFacts) {
    let plan = Plan { dp: 1, pp: 1, ep: 1, tp: 2, gpus_per_node: 1, layers: 1 };
    let group = GroupFact { link_bytes_per_payload: vec![(0, 0.5), (2, 0.5)], contention_ns_per_byte: 0.0 };
    let mut tp = [None; 4];
    tp[CommKind::Tp.index()] = Some(0);
    let facts = NetworkFacts { links: Vec::new(), groups: vec![group], gpu_groups: vec![tp, tp] };
    (plan, facts)
}

/// A stage run whose two GPUs each spend `comm_ns` in all-reduces of `bytes` payload.
fn run(duration_ns: u64, comm_ns: u64, bytes: f64) -> StageRun {
    let mut g = GpuTotals::default();
    g.comm_ns[CommKind::Tp.index()] = comm_ns;
    g.comm_bytes[CommKind::Tp.index()] = bytes;
    g.compute_ns = duration_ns - comm_ns;
    StageRun { duration_ns, gpus: vec![g.clone(), g] }
}

#[test]
fn a_handoff_and_an_all_reduce_on_one_nic_each_get_half_of_it_while_they_overlap() {
    let (plan, facts) = instance();
    let unit_links = vec![BTreeSet::from([0, 2])];
    let part = FabricPart { plan: &plan, unit_links, extra: Vec::new(), facts: &facts, link_base: 0, gpu_base: 0 };
    // Handoffs may leave through node 0's NIC (link 0) and enter the decode node (1).
    let mut fabric = SharedFabric::join(&[part], &[0, 1], &CAPACITY).expect("handoff links are tracked");
    let mut rec = Recorder::new(2, 2, 0, None).expect("recorder");

    // The stage runs 0..2,000 ns alone, its last 1,000 ns in an all-reduce of 1,000 B
    // payload: 2 x 0.5 x 1,000 = 1,000 B on links 0 and 2 in 1,000 ns, the whole of
    // each (1 B/ns).
    let end = fabric.book_stage(1, 0, 0, &run(2000, 1000, 1000.0), SimTime(2000), SimTime(0), &mut rec);
    assert_eq!(end, SimTime(2000), "alone on its links, the stage ends at its closed form");

    // At 1,500 ns a handoff of 1,000 B starts from node 0 to the decode node: alone
    // 1,000 ns (1 B/ns on links 0 and 1). By then the all-reduce has 500 ns of its
    // 1,000 left. From 1,500 both want all of link 0: max-min gives each half, so the
    // all-reduce's 500 ns take 1,000 (ends 2,500, 500 late); the handoff has moved 500 B
    // by then and runs alone for the other 500: ends 3,000, not 2,500.
    let handoff = Owner::handoff(7, 1);
    let landed =
        fabric.book_transfer(handoff, SimTime(1500), 1000, &[(0, 1000.0), (1, 1000.0)], SimTime(1500), &mut rec);
    assert_eq!(landed, SimTime(3000));
    let moves = fabric.take_moves();
    assert_eq!(moves.len(), 1);
    assert_eq!(
        (moves[0].owner, moves[0].from_ns, moves[0].delta_ns),
        (Owner { batch: 1, replica: 0, stage: 0 }, 2000, 500)
    );

    // Settled, the all-reduce's 500 late ns are communication lost to contention on
    // both GPUs (each moves its own bytes over a shared NIC); the handoff books none.
    fabric.settle(SimTime(3000), &mut rec);
    for g in 0..2 {
        let t = rec.ledger.gpu(g);
        assert_eq!((t.contention_ns, t.comm(CommKind::Tp)), (500, 500), "GPU {g}");
    }
}

#[test]
fn a_handoff_next_to_traffic_that_leaves_it_room_keeps_its_price() {
    // The same all-reduce at 0.4 of link 0 (400 B over 1,000 ns) and a handoff that
    // wants 0.5 of it: 0.9 fits in the link, so neither slows.
    let (plan, facts) = instance();
    let unit_links = vec![BTreeSet::from([0, 2])];
    let part = FabricPart { plan: &plan, unit_links, extra: Vec::new(), facts: &facts, link_base: 0, gpu_base: 0 };
    let mut fabric = SharedFabric::join(&[part], &[0, 1], &CAPACITY).expect("tracked");
    let mut rec = Recorder::new(2, 2, 0, None).expect("recorder");
    fabric.book_stage(1, 0, 0, &run(2000, 1000, 400.0), SimTime(2000), SimTime(0), &mut rec);
    let landed =
        fabric.book_transfer(Owner::handoff(7, 1), SimTime(1500), 1000, &[(0, 500.0)], SimTime(1500), &mut rec);
    assert_eq!(landed, SimTime(2500));
    let moves = fabric.take_moves();
    assert!(moves.is_empty(), "{moves:?}");
}
