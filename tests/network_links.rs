//! Link capacity changes while flows are in flight: slowdowns, failures (stall until
//! restored) and re-routing the bytes left onto another route, with hand-worked times.
//!
//! H100 preset: NVLink α = 2 µs, 369 GB/s per direction; NIC α = 5 µs, 47.5 GB/s.

use clustersim::engine::SimTime;
use clustersim::hardware::network::Network;
use clustersim::hardware::spec::gpu_preset;
use clustersim::hardware::topology::Topology;

const B_NIC: f64 = 47.5e9;

fn h100(nodes: u32) -> Topology {
    let p = gpu_preset("h100-sxm").expect("preset");
    Topology::new(nodes, 8, &(p.nvlink)(), &(p.network)()).expect("valid topology")
}

/// GPU 0 -> GPU 1 inside a node, with GPU 0's NVLink up link set to 100 GB/s (the
/// down link keeps 369 GB/s, so 100 GB/s is the bottleneck).
fn hundred_gb_s() -> (Topology, Network) {
    let topo = h100(1);
    let mut net = Network::new(&topo);
    net.set_link_capacity(topo.nvlink_up(0), 100e9);
    (topo, net)
}

#[test]
fn a_link_slowed_to_half_mid_flow_moves_its_finish() {
    let (topo, mut net) = hundred_gb_s();
    // 100 MB at 100 GB/s: 50 MB leave in the first 0.5 ms. Halved to 50 GB/s then, the
    // other 50 MB take 1 ms: drained at 1.5 ms, done 2 µs (NVLink α) later.
    let id = net.start_flow(topo.route(0, 1), 100e6, 1);
    assert!(net.advance_until(SimTime::from_us(500)).is_empty());
    assert_eq!(net.flow_rate(id), 100e9);
    net.set_link_capacity(topo.nvlink_up(0), 50e9);
    assert_eq!(net.next_event_time(), Some(SimTime::from_us(1500)));
    assert_eq!(net.flow_rate(id), 50e9);
    let done = net.advance_until(SimTime::from_ms(5));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].finish, SimTime::from_us(1502));
}

#[test]
fn a_failed_link_stalls_its_flow_until_restored() {
    let (topo, mut net) = hundred_gb_s();
    // 100 MB at 100 GB/s; the link fails at 0.5 ms with 50 MB left: the flow stalls
    // (rate 0, nothing pending). Restored at 2 ms to 100 GB/s, the 50 MB take 0.5 ms:
    // drained at 2.5 ms, done at 2.502 ms.
    let id = net.start_flow(topo.route(0, 1), 100e6, 1);
    assert!(net.advance_until(SimTime::from_us(500)).is_empty());
    net.set_link_capacity(topo.nvlink_up(0), 0.0);
    assert_eq!(net.next_event_time(), None);
    assert_eq!(net.flow_rate(id), 0.0);
    assert!(net.is_draining(id));
    net.advance_clock(SimTime::from_ms(2));
    net.set_link_capacity(topo.nvlink_up(0), 100e9);
    let done = net.advance_until(SimTime::from_ms(5));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].finish, SimTime::from_us(2502));
}

#[test]
fn a_failed_link_shared_by_two_flows_frees_the_other_links_for_the_rest() {
    let topo = h100(2);
    let mut net = Network::new(&topo);
    // GPU 3 -> 11 (NIC 3 up, NIC 11 down) and GPU 4 -> 11 (NIC 4 up, NIC 11 down) share
    // NIC 11's down link: 23.75 GB/s each. NIC 3's up link fails at 1 ms: the first
    // flow stalls and the second gets all 47.5 GB/s. 95 MB each: by 1 ms each sent
    // 23.75 MB; the second's 71.25 MB left take 1.5 ms: drained at 2.5 ms, done 5 µs later.
    let a = net.start_flow(topo.route(3, 11), 95e6, 1);
    let b = net.start_flow(topo.route(4, 11), 95e6, 2);
    assert!(net.advance_until(SimTime::from_ms(1)).is_empty());
    assert_eq!(net.flow_rate(a), B_NIC / 2.0);
    net.set_link_capacity(topo.nic_up(3), 0.0);
    net.next_event_time();
    assert_eq!(net.flow_rate(a), 0.0);
    assert_eq!(net.flow_rate(b), B_NIC);
    let done = net.advance_until(SimTime::from_ms(10));
    assert_eq!(done.len(), 1, "the stalled flow never completes while its link is down");
    assert_eq!(done[0].tag, 2);
    assert_eq!(done[0].finish, SimTime::from_us(2505));
    assert!(net.is_draining(a));
}

#[test]
fn rerouting_moves_the_bytes_left_onto_the_new_route() {
    let topo = h100(2);
    let mut net = Network::new(&topo);
    // 95 MB from GPU 3 to GPU 11 over NIC 3: by 1 ms 47.5 MB left. NIC 3's up link
    // fails; the caller moves the flow onto the route GPU 4 -> 12 (NIC 4, idle), where
    // the 47.5 MB take 1 ms more: drained at 2 ms, done at 2.005 ms. NIC 3 carries
    // nothing after the move.
    let id = net.start_flow(topo.route(3, 11), 95e6, 7);
    assert!(net.advance_until(SimTime::from_ms(1)).is_empty());
    net.set_link_capacity(topo.nic_up(3), 0.0);
    assert_eq!(net.flows_on_link(topo.nic_up(3)), vec![id]);
    assert!(net.reroute_flow(id, topo.route(4, 12)));
    assert_eq!(net.link_flow_count(topo.nic_up(3)), 0);
    assert_eq!(net.flow_route(id), Some(topo.route(4, 12)));
    let done = net.advance_until(SimTime::from_ms(10));
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].tag, done[0].finish), (7, SimTime::from_us(2005)));
    assert!(!net.reroute_flow(id, topo.route(4, 12)), "a completed flow cannot move");
}

#[test]
fn a_send_recv_on_a_failed_nic_resumes_when_it_is_restored() {
    use clustersim::parallel::collective::{AllReduceAlgorithm, CollectiveOp};
    use clustersim::parallel::runner::{CollectiveRequest, CollectiveRunner};
    let topo = h100(2);
    let mut r = CollectiveRunner::new(&topo);
    // 95 MB from GPU 3 to GPU 11 over NIC 3 at 47.5 GB/s: 47.5 MB left at 1 ms, when
    // NIC 3's up link fails. Nothing moves until it is restored at 4 ms; the 47.5 MB
    // then take 1 ms: the last rank finishes at 5 ms + 5 µs (network α).
    let req =
        CollectiveRequest::new(&topo, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[3, 11], 95e6).expect("valid");
    r.admit(req, &[SimTime::ZERO; 2]).expect("admitted");
    assert!(r.run_until(SimTime::from_ms(1)).is_empty());
    r.set_link_capacity(topo.nic_up(3), 0.0);
    assert!(r.run_to_end().is_empty(), "a stalled transfer never finishes by itself");
    assert_eq!(r.active(), 1);
    r.run_until(SimTime::from_ms(4));
    r.set_link_capacity(topo.nic_up(3), B_NIC);
    let done = r.run_to_end();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].rank_finish.iter().max(), Some(&SimTime::from_us(5005)));
}

#[test]
fn a_spine_link_binds_only_while_slowed_below_its_nics() {
    // 2 nodes, rail-optimized: GPU 0 (rail 0) -> GPU 9 (node 1, rail 1) crosses
    // nic_up(0), leaf_up(0), leaf_down(1), nic_down(9). Leaf links carry 2 NICs' worth,
    // 95 GB/s: they never bind, and the 95 MB flow runs at the NIC's 47.5 GB/s.
    let topo = h100(2);
    let mut net = Network::new(&topo);
    let id = net.start_flow(topo.route(0, 9), 95e6, 1);
    assert!(net.advance_until(SimTime::from_us(500)).is_empty());
    assert_eq!(net.flow_rate(id), B_NIC);
    assert_eq!(net.link_load(topo.leaf_up(0)), B_NIC);
    // At 0.5 ms (23.75 MB sent, 71.25 MB left) the spine uplink drops to a quarter,
    // 23.75 GB/s, under the NIC: it binds, and the rest would take 3 ms.
    net.set_link_capacity(topo.leaf_up(0), 23.75e9);
    assert_eq!(net.next_event_time(), Some(SimTime::from_us(3500)));
    assert_eq!(net.flow_rate(id), 23.75e9);
    assert!(net.advance_until(SimTime::from_us(1500)).is_empty());
    assert_eq!(net.link_load(topo.leaf_up(0)), 23.75e9);
    // Restored at 1.5 ms with 47.5 MB left: the NIC binds again, 1 ms more; drained at
    // 2.5 ms, done 5 µs (network α) later.
    net.set_link_capacity(topo.leaf_up(0), 95e9);
    assert_eq!(net.next_event_time(), Some(SimTime::from_us(2500)));
    assert_eq!(net.flow_rate(id), B_NIC);
    let done = net.advance_until(SimTime::from_ms(5));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].finish, SimTime::from_us(2505));
}
