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
