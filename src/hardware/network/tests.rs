//! Unit tests of the flow-level network.

use super::*;
use crate::hardware::spec::gpu_preset;

#[test]
fn a_lone_flow_takes_alpha_plus_s_over_b() {
    let p = gpu_preset("h100-sxm").expect("preset");
    let topo = Topology::new(1, 8, &(p.nvlink)(), &(p.network)()).expect("valid");
    let mut net = Network::new(&topo);
    net.start_flow(topo.route(0, 1), 369e6, 7);
    // 369 MB at 450 GB/s x 0.82 = 369 GB/s: 1 ms, + α 2 µs.
    let (t, done) = net.step().expect("drain");
    assert_eq!(t, SimTime::from_ms(1));
    assert!(done.is_empty());
    let (t, done) = net.step().expect("done");
    assert_eq!(t, SimTime::from_us(1002));
    assert_eq!(done[0].tag, 7);
    assert!(net.step().is_none());
}

#[test]
fn a_drain_moves_the_rest_of_its_group_at_once() {
    let p = gpu_preset("h100-sxm").expect("preset");
    let topo = Topology::new(1, 8, &(p.nvlink)(), &(p.network)()).expect("valid");
    let mut net = Network::new(&topo);
    // Three flows from GPU 0 (to GPUs 1, 2, 3) share its NVLink port, 369 GB/s: 123 GB/s
    // each, all in the port's group. The 123 MB one drains at 1 ms; the two others
    // (246 and 369 MB) then have 123 and 246 MB left and 184.5 GB/s each: the 246 MB one
    // drains 123/184.5 ms = 0.666667 ms later, at 1.666667 ms, leaving the 369 MB one
    // 123 MB at the full 369 GB/s: 0.333333 ms more, drained at 2 ms. Each completes
    // α = 2 µs after its last byte.
    let sizes = [123e6, 246e6, 369e6];
    for (k, &b) in sizes.iter().enumerate() {
        net.start_flow(topo.route(0, k as u32 + 1), b, k as u64);
    }
    let done = net.advance_until(SimTime::from_ms(3));
    let finishes: Vec<(u64, u64)> = done.iter().map(|d| (d.tag, d.finish.as_ns())).collect();
    assert_eq!(finishes, vec![(0, 1_002_000), (1, 1_668_667), (2, 2_002_000)]);
    assert_eq!(net.draining_flows(), 0);
}
