//! The flow model against the closed forms, max-min sharing, contention between
//! collectives, stragglers, state accounting and the H100 calibration anchors.
//!
//! H100 preset numbers used throughout: NVLink 450 GB/s x 0.82 = 369 GB/s per
//! direction, α = 2 µs; NIC 50 GB/s x 0.95 = 47.5 GB/s per direction, α = 5 µs.

use clustersim::engine::SimTime;
use clustersim::hardware::network::Network;
use clustersim::hardware::spec::gpu_preset;
use clustersim::hardware::topology::Topology;
use clustersim::parallel::collective::{
    closed_form_time, links_intersect, links_used, resolve_all_reduce, AllReduceAlgorithm, CollectiveOp,
};
use clustersim::parallel::runner::{CollectiveDone, CollectiveRequest, CollectiveRunner};

const B_NV: f64 = 369e9;
const A_NV: f64 = 2e-6;
const B_NIC: f64 = 47.5e9;
const A_NET: f64 = 5e-6;
const MIB: f64 = 1048576.0;
const GIB: f64 = 1073741824.0;

fn h100(nodes: u32) -> Topology {
    let p = gpu_preset("h100-sxm").expect("preset");
    Topology::new(nodes, 8, &(p.nvlink)(), &(p.network)()).expect("valid topology")
}

fn run_alone(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32], bytes: f64) -> CollectiveDone {
    let mut r = CollectiveRunner::new(topo);
    r.admit(CollectiveRequest::new(topo, op, alg, ranks, bytes).expect("valid"), &vec![SimTime::ZERO; ranks.len()])
        .expect("admitted");
    let mut done = r.run_to_end();
    assert_eq!(done.len(), 1);
    done.remove(0)
}

/// Asserts the flow model is within 1 % of `formula_s` and equals the closed form
/// to within 1 ns per step (rounding).
fn check(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32], bytes: f64, formula_s: f64) {
    let d = run_alone(topo, op, alg, ranks, bytes);
    let t = d.duration().as_secs_f64();
    assert!((t / formula_s - 1.0).abs() < 0.01, "{op:?} n={}: flow {t} s vs formula {formula_s} s", ranks.len());
    let cf = closed_form_time(topo, op, alg, ranks, bytes);
    assert_eq!(cf, d.duration(), "{op:?} n={}: closed form must equal the flow model", ranks.len());
}

#[test]
fn ring_all_reduce_matches_closed_form_in_node_and_across_nodes() {
    let topo = h100(2);
    let s = 64.0 * MIB;
    for n in [2u32, 4, 8] {
        let ranks: Vec<u32> = (0..n).collect();
        let nf = n as f64;
        // 2(n-1)·α + 2(n-1)/n·S/B; n = 8: 14·2 µs + 14/8·67.1 MB/369 GB/s = 28 µs + 318.3 µs.
        let formula = 2.0 * (nf - 1.0) * A_NV + 2.0 * (nf - 1.0) / nf * s / B_NV;
        check(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &ranks, s, formula);
    }
    // 16 GPUs on 2 nodes, flat ring: GPU 7 -> 8 and 15 -> 0 cross NICs, which gate
    // every step: 30·5 µs + 30/16·67.1 MB/47.5 GB/s = 150 µs + 2649 µs.
    let ranks: Vec<u32> = (0..16).collect();
    let formula = 30.0 * A_NET + 30.0 / 16.0 * s / B_NIC;
    check(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &ranks, s, formula);
}

#[test]
fn other_collectives_match_their_closed_forms() {
    let topo = h100(2);
    let s = 32.0 * MIB;
    let in_node: Vec<u32> = (0..8).collect();
    let across: Vec<u32> = (0..16).collect();
    // Reduce-scatter and all-gather: (n-1)·α + (n-1)/n·S/B.
    for op in [CollectiveOp::ReduceScatter, CollectiveOp::AllGather] {
        check(&topo, op, AllReduceAlgorithm::Auto, &in_node, s, 7.0 * A_NV + 7.0 / 8.0 * s / B_NV);
        check(&topo, op, AllReduceAlgorithm::Auto, &across, s, 15.0 * A_NET + 15.0 / 16.0 * s / B_NIC);
    }
    // Pairwise all-to-all: (n-1)·α + (n-1)/n·S/B. Across nodes every step has a rank
    // pair crossing the NICs (GPU 7 sends or receives across in every step), so B = NIC.
    check(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &in_node, s, 7.0 * A_NV + 7.0 / 8.0 * s / B_NV);
    check(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &across, s, 15.0 * A_NET + 15.0 / 16.0 * s / B_NIC);
    // Send/recv: α + S/B, in a node and across (GPU 3 -> GPU 11 on the same rail).
    check(&topo, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[0, 5], s, A_NV + s / B_NV);
    check(&topo, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[3, 11], s, A_NET + s / B_NIC);
    // Halving-doubling in a node: 2·log2(8)·α + 2·7/8·S/B.
    check(
        &topo,
        CollectiveOp::AllReduce,
        AllReduceAlgorithm::HalvingDoubling,
        &in_node,
        s,
        6.0 * A_NV + 1.75 * s / B_NV,
    );
    // Hierarchical on 2 x 8: 2·7 NVLink steps of S/8 + 2 NIC steps of S/16:
    // 14·(2 µs + S/8/369 GB/s) + 2·(5 µs + S/16/47.5 GB/s).
    let hier = 14.0 * (A_NV + s / 8.0 / B_NV) + 2.0 * (A_NET + s / 16.0 / B_NIC);
    check(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Hierarchical, &across, s, hier);
    // Broadcast in a node: pipelined chain, closed form (an upper bound in general) is
    // exact on uniform links. 1 GiB in c = 64 chunks (sqrt(6 S/(α B)) = 93, capped):
    // (64 + 6)·(2 µs + 1 GiB/64/369 GB/s) = 70·47.47 µs = 3.323 ms, busbw = 323.2 GB/s.
    let d = run_alone(&topo, CollectiveOp::Broadcast, AllReduceAlgorithm::Auto, &in_node, GIB);
    assert_eq!(d.duration(), closed_form_time(&topo, CollectiveOp::Broadcast, AllReduceAlgorithm::Auto, &in_node, GIB));
    assert!((d.busbw_gb_s() - 323.2).abs() < 0.5, "broadcast busbw {}", d.busbw_gb_s());
}

#[test]
fn max_min_sharing_worked_examples() {
    let topo = h100(1);
    let mut net = Network::new(&topo);
    // Two flows out of GPU 0 share its NVLink up link: 369/2 = 184.5 GB/s each.
    // 184.5 MB each: 1 ms of draining + 2 µs latency.
    let a = net.start_flow(topo.route(0, 1), 184.5e6, 1);
    let b = net.start_flow(topo.route(0, 2), 184.5e6, 2);
    net.next_event_time();
    assert_eq!(net.flow_rate(a), B_NV / 2.0);
    assert_eq!(net.flow_rate(b), B_NV / 2.0);
    let done = net.advance_until(SimTime::from_ms(2));
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|d| d.finish == SimTime::from_us(1002)));

    // Three flows into GPU 2 share its down link; flow A (from GPU 0) is held to 20 %
    // of B by GPU 0's up link (slowed down). Progressive filling: A's link has the
    // smallest share (0.2B / 1), so A = 0.2B; the down link has 0.8B left for B and C:
    // 0.4B each (not B/3 each, which plain equal sharing would give).
    let mut net = Network::new(&topo);
    net.set_link_capacity(topo.nvlink_up(0), 0.2 * B_NV);
    let fa = net.start_flow(topo.route(0, 2), 1e9, 1);
    let fb = net.start_flow(topo.route(1, 2), 1e9, 2);
    let fc = net.start_flow(topo.route(3, 2), 1e9, 3);
    net.next_event_time();
    let (ra, rb, rc) = (net.flow_rate(fa), net.flow_rate(fb), net.flow_rate(fc));
    assert!((ra / B_NV - 0.2).abs() < 1e-12 && (rb / B_NV - 0.4).abs() < 1e-12 && (rc / B_NV - 0.4).abs() < 1e-12);
    // When B and C finish (1e9/147.6 GB/s = 6.775 ms), A keeps 0.2B: it is bottlenecked elsewhere.
    let (t, _) = net.step().expect("B and C drain");
    assert_eq!(t.as_ns(), (1e9 / (0.4 * B_NV) * 1e9).round() as u64);
    assert!((net.flow_rate(fa) / B_NV - 0.2).abs() < 1e-12);
    assert!(net.link_load(topo.nvlink_down(2)) <= B_NV);
}

#[test]
fn link_slowdown_mid_transfer_moves_the_finish() {
    let topo = h100(2);
    let mut net = Network::new(&topo);
    // 95 MB from GPU 3 to GPU 11 over NIC 3: 2 ms at 47.5 GB/s. At 1 ms the NIC drops
    // to half: the remaining 47.5 MB take 2 ms more, drained at 3 ms, done at 3 ms + 5 µs.
    net.start_flow(topo.route(3, 11), 95e6, 0);
    assert!(net.advance_until(SimTime::from_ms(1)).is_empty());
    net.set_link_capacity(topo.nic_up(3), B_NIC / 2.0);
    let done = net.advance_until(SimTime::from_ms(10));
    assert_eq!(done[0].finish, SimTime::from_us(3005));
}

#[test]
fn contention_between_collectives_is_where_links_are_shared() {
    let topo = h100(3);
    let s = 64.0 * MIB;
    let across: Vec<u32> = (8..24).collect();
    let alone = run_alone(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &across, s).duration();
    // Two all-to-alls over the same 16 GPUs at once: every NIC carries both, so each
    // step's crossing transfers get half the NIC: about twice as long. Per step alone
    // α + x = 5 µs + 4 MiB/47.5 GB/s = 5 + 88.30 µs; together 5 + 176.60 µs: ratio 1.946
    // (the α part does not double).
    let mut r = CollectiveRunner::new(&topo);
    for _ in 0..2 {
        let req =
            CollectiveRequest::new(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &across, s).expect("ok");
        r.admit(req, &[SimTime::ZERO; 16]).expect("admitted");
    }
    let both = r.run_to_end();
    let ratio = both[1].finish.as_secs_f64() / alone.as_secs_f64();
    let x = 4.0 * MIB / B_NIC;
    let expected = (A_NET + 2.0 * x) / (A_NET + x);
    assert!((ratio / expected - 1.0).abs() < 0.01, "two all-to-alls took {ratio} x one, expected {expected}");
    assert!(ratio > 1.9 && ratio <= 2.0);

    // An all-reduce inside node 0 beside an all-to-all between nodes 1 and 2: no link
    // in common, so the all-reduce takes exactly as long as alone.
    let in_node: Vec<u32> = (0..8).collect();
    let ar_alone = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &in_node, s).duration();
    let a = links_used(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &in_node);
    let b = links_used(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &across);
    assert!(!links_intersect(&a, &b));
    let mut r = CollectiveRunner::new(&topo);
    let ar = r
        .admit(
            CollectiveRequest::new(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &in_node, s).expect("ok"),
            &[SimTime::ZERO; 8],
        )
        .expect("admitted");
    let req = CollectiveRequest::new(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &across, s).expect("ok");
    let adm = r.admit_projected(req, &[SimTime::ZERO; 16]).expect("admitted");
    assert!(adm.moved.is_empty(), "the all-reduce's finish must not move: {:?}", adm.moved);
    let done = r.run_to_end();
    let ar_done = done.iter().find(|d| d.id == ar).expect("finished");
    assert_eq!(ar_done.duration(), ar_alone);
    assert_eq!(done.iter().find(|d| d.id == adm.id).map(|d| d.finish), Some(adm.finish));
}

#[test]
fn admitting_a_contending_collective_reports_moved_finishes() {
    let topo = h100(2);
    let across: Vec<u32> = (0..16).collect();
    let mut r = CollectiveRunner::new(&topo);
    let mk = || {
        CollectiveRequest::new(&topo, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &across, 32.0 * MIB)
            .expect("ok")
    };
    let first = r.admit_projected(mk(), &[SimTime::ZERO; 16]).expect("ok");
    let alone = first.finish;
    let second = r.admit_projected(mk(), &[SimTime::ZERO; 16]).expect("ok");
    // The first all-to-all now shares every NIC: its projected finish moves later.
    assert_eq!(second.moved.len(), 1);
    let (id, before, after) = second.moved[0];
    assert_eq!((id, before), (first.id, alone));
    assert!(after > before);
    let done = r.run_to_end();
    assert_eq!(done.iter().find(|d| d.id == first.id).map(|d| d.finish), Some(after));
}

#[test]
fn a_straggler_delays_the_collective_and_shows_as_waiting() {
    let topo = h100(1);
    let ranks: Vec<u32> = (0..8).collect();
    let s = 16.0 * MIB;
    let t_alone = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &ranks, s).duration();
    let mut r = CollectiveRunner::new(&topo);
    let mut arrivals = [SimTime::ZERO; 8];
    arrivals[3] = SimTime::from_ms(1);
    let req = CollectiveRequest::new(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &ranks, s).expect("ok");
    r.admit(req, &arrivals).expect("admitted");
    let d = r.run_to_end().remove(0);
    // Starts at 1 ms, finishes 1 ms later than alone; every other rank waited 1 ms.
    assert_eq!(d.start, SimTime::from_ms(1));
    assert_eq!(d.finish, SimTime::from_ms(1) + t_alone);
    let end = d.finish;
    for g in 0..8u32 {
        let tot = r.gpu_totals(g, end);
        let expect_wait = if g == 3 { SimTime::ZERO } else { SimTime::from_ms(1) };
        assert_eq!(tot.wait_total_ns(), expect_wait.as_ns(), "GPU {g}");
        assert_eq!(tot.comm_total_ns(), t_alone.as_ns(), "GPU {g}");
        // GPU 3 was idle (not waiting) until it arrived.
        assert_eq!(tot.idle_ns(end), if g == 3 { SimTime::from_ms(1).as_ns() } else { 0 });
        assert_eq!(tot.busy_ns() + tot.idle_ns(end), end.as_ns());
    }
}

#[test]
fn states_sum_to_wall_time_with_compute_and_collectives() {
    let topo = h100(1);
    let mut r = CollectiveRunner::new(&topo);
    // GPUs 0-3 compute for (g + 1) x 100 µs (GPU g), then all-reduce 8 MiB together;
    // GPUs 4-7 stay idle. The slowest (GPU 3) sets the start; the others wait for it.
    let mut arrivals = Vec::new();
    for g in 0..4u32 {
        let d = SimTime::from_us((g as u64 + 1) * 100);
        arrivals.push(r.compute(g, SimTime::ZERO, d));
    }
    let req =
        CollectiveRequest::new(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &[0, 1, 2, 3], 8.0 * MIB)
            .expect("ok");
    r.admit(req, &arrivals).expect("admitted");
    let d = r.run_to_end().remove(0);
    let wall = d.finish + SimTime::from_us(10);
    for g in 0..8u32 {
        let t = r.gpu_totals(g, wall);
        assert!(t.busy_ns() <= wall.as_ns(), "GPU {g} is busy longer than the wall time");
        if g < 4 {
            assert_eq!(t.compute_ns, arrivals[g as usize].as_ns());
            assert_eq!(t.wait_total_ns(), (d.start - arrivals[g as usize]).as_ns());
            assert_eq!(t.comm_total_ns(), (d.rank_finish[g as usize] - d.start).as_ns());
            // Idle only after its own last transfer.
            assert_eq!(t.idle_ns(wall), (wall - d.rank_finish[g as usize]).as_ns());
        } else {
            assert_eq!(t.idle_ns(wall), wall.as_ns());
        }
    }
}

#[test]
fn h100_presets_land_near_nccl_tests() {
    let topo = h100(2);
    let in_node: Vec<u32> = (0..8).collect();
    // 8-GPU ring all-reduce of 1 GiB: t = 14·(2 µs + 1 GiB/8/369 GB/s) = 5.1203 ms,
    // algbw = 209.7 GB/s, busbw = 7/4 x algbw = 367.0 GB/s: just under nccl-tests' 370.
    let d = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &in_node, GIB);
    assert!((d.busbw_gb_s() - 367.0).abs() < 0.5, "busbw {}", d.busbw_gb_s());
    assert!((d.busbw_gb_s() / 370.0 - 1.0).abs() < 0.2);
    // 2 nodes, flat ring: the NIC crossing bounds busbw by 47.5 GB/s (minus the α share).
    let across: Vec<u32> = (0..16).collect();
    let d = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &across, GIB);
    assert!(d.busbw_gb_s() <= 47.5 && d.busbw_gb_s() > 47.0, "busbw {}", d.busbw_gb_s());
    // Hierarchical: each NIC must carry 2·(m-1)/m·S/g = S/8 each way, so
    // t >= 1 GiB/8/47.5 GB/s = 2.826 ms; it takes 14·365.7 µs + 2·(5 + 1412.8) µs = 7.956 ms.
    let d = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Hierarchical, &across, GIB);
    assert!(d.duration().as_secs_f64() >= GIB / 8.0 / B_NIC);
    assert!((d.duration().as_secs_f64() - 7.956e-3).abs() < 0.002e-3, "{}", d.duration());
}

#[test]
fn uneven_all_to_all_is_gated_by_its_heaviest_pair() {
    use clustersim::parallel::collective::{expand_all_to_all_v, schedule_time};
    let topo = h100(1);
    // Three GPUs; 0 -> 1 carries 369 MB (1 ms at 369 GB/s), every other pair 36.9 MB
    // (0.1 ms). Step 1 (i -> i+1): 0 -> 1 ends at 1 ms + 2 µs. Step 2 (i -> i+2) needs
    // GPUs 0 and 1 done with step 1, so all of it starts at 1.002 ms and ends at
    // 1.002 + 0.1 + 0.002 = 1.104 ms.
    let (big, small) = (369e6, 36.9e6);
    let m = [0.0, big, small, small, 0.0, small, small, small, 0.0];
    let ranks = [0u32, 1, 2];
    let req = CollectiveRequest::all_to_all_v(&topo, &ranks, &m).expect("valid");
    let sched = expand_all_to_all_v(&topo, &ranks, &m).expect("valid");
    let mut r = CollectiveRunner::new(&topo);
    r.admit(req, &[SimTime::ZERO; 3]).expect("admitted");
    let d = r.run_to_end().remove(0);
    assert_eq!(d.finish, SimTime::from_us(1104));
    assert_eq!(schedule_time(&topo, &sched), SimTime::from_us(1104));
    // A malformed matrix is an error, not a panic.
    assert!(expand_all_to_all_v(&topo, &ranks, &m[..8]).is_err());
    assert!(expand_all_to_all_v(&topo, &[0, 1, 1], &m).is_err());
}

/// Runs a prepared request alone from time zero.
fn run_request(topo: &Topology, req: CollectiveRequest) -> CollectiveDone {
    let mut r = CollectiveRunner::new(topo);
    let n = req.schedule.ranks.len();
    r.admit(req, &vec![SimTime::ZERO; n]).expect("admitted");
    r.run_to_end().remove(0)
}

#[test]
fn nvls_all_reduce_matches_its_closed_form_and_nccl_tests() {
    let topo = h100(1);
    let ranks: Vec<u32> = (0..8).collect();
    // NVLS port rate 308.6 GB/s (from nccl-tests' ~480 GB/s busbw, see the preset).
    // C = round(sqrt(X/α)), X = 9/8 x 1 GiB / 308.6 GB/s = 3.913 ms, α = 2 µs: 44.
    // Two stages pipelined over 44 chunks: 45 steps; the first moves S/C up (reduce
    // only), the last S/C down (multicast only), the 43 between (1 + 1/8) S/C each way:
    // t = 45·2 µs + (2 + 43·9/8)·(1 GiB/44)/308.6 GB/s = 90 µs + 3.9835 ms = 4.0735 ms;
    // busbw = 7/4 · 1 GiB / t = 461.3 GB/s, 4 % under nccl-tests' ~480.
    let chunk = GIB / 44.0;
    let formula = 45.0 * A_NV + (2.0 + 43.0 * 9.0 / 8.0) * chunk / 308.6e9;
    let d = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Nvls, &ranks, GIB);
    let t = d.duration().as_secs_f64();
    assert!((t / formula - 1.0).abs() < 0.01, "NVLS {t} s vs formula {formula} s");
    assert_eq!(closed_form_time(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Nvls, &ranks, GIB), d.duration());
    assert!((d.busbw_gb_s() / 480.0 - 1.0).abs() < 0.05, "busbw {}", d.busbw_gb_s());
    // A100 nodes have no NVLink SHARP: NVLS falls back to the ring.
    let a100 = gpu_preset("a100-80g").expect("preset");
    let topo_a = Topology::new(1, 8, &(a100.nvlink)(), &(a100.network)()).expect("valid");
    assert_eq!(resolve_all_reduce(&topo_a, AllReduceAlgorithm::Nvls, &ranks), AllReduceAlgorithm::Ring);
}

#[test]
fn pipelined_hierarchical_all_reduce_overlaps_nvlink_and_nics() {
    let topo = h100(2);
    let ranks: Vec<u32> = (0..16).collect();
    // g = 8, m = 2. X = max(2·7/8·S/B_nv, 2·1/2·S/(8·B_nic)) = max(4.911, 2.826) ms;
    // α = 5 µs: C = round(sqrt(3 X/α)) = 54 chunks of Sc = 1 GiB/54. Per step each
    // stage loads NVLink with 7/8·Sc (in-node exchange, 45.48 µs) or the NIC with
    // Sc/16 (across, 26.16 µs); each transfer pays its own tier's α:
    //   steps 0, 55, 56 (one in-node stage): 2 + 45.48;  step 1 (+1 across): same;
    //   steps 2, 54 (one in-node stage, two across): 5 + 2·26.16 = 57.32;
    //   steps 3..53 (51 full steps): 2 + 2·45.48 = 92.96 (NVLink bound).
    // t = 4·47.48 + 2·57.32 + 51·92.96 = 5045.5 µs; busbw = 15/8·S/t = 399 GB/s,
    // within 15 % of the 8-NIC bound 8 x 47.5 = 380 GB/s.
    let sc = GIB / 54.0;
    let nv = 7.0 / 8.0 * sc / B_NV;
    let nic = sc / 16.0 / B_NIC;
    let formula = 4.0 * (A_NV + nv) + 2.0 * (A_NET + 2.0 * nic) + 51.0 * (A_NV + 2.0 * nv);
    let d = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Pipelined, &ranks, GIB);
    let t = d.duration().as_secs_f64();
    assert!((t / formula - 1.0).abs() < 0.01, "pipelined {t} s vs formula {formula} s");
    assert_eq!(
        closed_form_time(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Pipelined, &ranks, GIB),
        d.duration()
    );
    assert!((d.busbw_gb_s() / 380.0 - 1.0).abs() < 0.15, "busbw {}", d.busbw_gb_s());
    // Today's hierarchical runs the phases one after another: 7.776 ms (see above).
    let h = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Hierarchical, &ranks, GIB);
    assert!(h.duration().as_secs_f64() > 1.5 * t);
}

#[test]
fn tree_all_reduce_matches_its_closed_form() {
    let topo = h100(1);
    let ranks: Vec<u32> = (0..8).collect();
    // Double binary tree on 8 GPUs, depth D = 3; each tree carries S/2 in C chunks,
    // C = round(sqrt(2D·S/B/α)) = round(sqrt(6·2.807 ms/2 µs)) = 92, clamped to 64.
    // 2(C + D - 1) = 132 steps. A rank inner in one tree is a leaf in the other, so in
    // a full step its NVLink up carries 2 chunks (to its parent in each tree) and its
    // down link 2 (from its children): 2 µs + 2·(S/128)/B per full step; fill and
    // drain steps carry less. So t <= 132·α + 132·2·(S/128)/B = 264 µs + 5.615 ms, and
    // t > 0.9 of that (fill and drain are 2(D-1) = 4 of the 132 steps).
    let d = run_alone(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Tree, &ranks, GIB);
    let cf = closed_form_time(&topo, CollectiveOp::AllReduce, AllReduceAlgorithm::Tree, &ranks, GIB);
    let t = d.duration().as_secs_f64();
    assert!((t / cf.as_secs_f64() - 1.0).abs() < 0.01, "tree {t} s vs closed form {cf}");
    let bound = 132.0 * A_NV + 2.0 * GIB / B_NV * (132.0 / 128.0);
    assert!(t <= bound && t > 0.9 * bound, "tree {t} s vs bound {bound} s");
}

#[test]
fn all_to_all_posted_at_once_pays_latency_once() {
    use clustersim::parallel::collective::AllToAllAlgorithm;
    let topo = h100(2);
    let ranks: Vec<u32> = (0..16).collect();
    let s = 64.0 * MIB;
    let req = |alg| CollectiveRequest::all_to_all(&topo, alg, &ranks, s).expect("valid");
    // Direct: one step. GPU i's NIC carries its 8 sends to the other node, S/16 each:
    // t = 5 µs + (S/2)/47.5 GB/s = 5 + 706.4 µs (NVLink: 7·S/16 at 382.5 GB/s, 76.8 µs).
    let d = run_request(&topo, req(AllToAllAlgorithm::Direct));
    let formula = A_NET + s / 2.0 / B_NIC;
    assert!((d.duration().as_secs_f64() / formula - 1.0).abs() < 0.01, "direct {}", d.duration());
    // Pairwise pays 15 step latencies for the same bytes: 15·5 µs + 15/16·S/B_nic.
    let p = run_request(&topo, req(AllToAllAlgorithm::Pairwise));
    assert!(p.duration() > d.duration());
    // DeepEP: step 1 sends each node's 8 shares, aggregated (S/2), to the same-rail GPU
    // (5 µs + S/2/B_nic), step 2 forwards 7 shares of S/16 over NVLink (2 µs + 7S/16/B_nv):
    // 5 + 706.4 + 2 + 76.8 = 790.2 µs; no byte crosses the spine.
    let e = run_request(&topo, req(AllToAllAlgorithm::DeepEp));
    let formula = A_NET + s / 2.0 / B_NIC + A_NV + 7.0 * s / 16.0 / B_NV;
    assert!((e.duration().as_secs_f64() / formula - 1.0).abs() < 0.01, "deep_ep {}", e.duration());
    // A 1-token decode dispatch at EP128 (7 KiB per peer, 16 nodes): pairwise pays 127
    // latencies (>= 635 µs); posted at once it is one latency plus the bytes.
    let big = h100(16);
    let all: Vec<u32> = (0..128).collect();
    let tiny = 7168.0 * 128.0;
    let pw = closed_form_time(&big, CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, &all, tiny);
    let sched = clustersim::parallel::collective::expand_all_to_all(
        &big,
        AllToAllAlgorithm::Direct,
        &all,
        &vec![tiny / 128.0; 128 * 128],
    )
    .expect("valid");
    let direct = clustersim::parallel::collective::schedule_time(&big, &sched);
    assert!(pw >= SimTime::from_us(635) && direct < SimTime::from_us(30), "pairwise {pw}, direct {direct}");
}

#[test]
fn nccl_like_auto_picks_by_size_and_topology() {
    use clustersim::parallel::collective::choose_all_reduce_nccl as choose;
    let one = h100(1);
    let eight: Vec<u32> = (0..8).collect();
    // One H100 node: NVLS at 1 GiB (4.07 ms against the ring's 4.94 ms).
    assert_eq!(choose(&one, &eight, GIB), AllReduceAlgorithm::Nvls);
    // Two nodes at 1 GiB: pipelined hierarchical (5.05 ms; ring 22.6 ms, tree slower).
    let two = h100(2);
    let sixteen: Vec<u32> = (0..16).collect();
    assert_eq!(choose(&two, &sixteen, GIB), AllReduceAlgorithm::Pipelined);
    // A100 node (no SHARP) at 1 GiB: the ring.
    let a100 = gpu_preset("a100-80g").expect("preset");
    let topo_a = Topology::new(1, 8, &(a100.nvlink)(), &(a100.network)()).expect("valid");
    assert_eq!(choose(&topo_a, &eight, GIB), AllReduceAlgorithm::Ring);
}
