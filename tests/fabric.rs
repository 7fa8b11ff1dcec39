//! Contention on the fabric: collectives of different groups that start together and
//! share NICs or spine links slow each other down by what the flow model says, and a
//! plan whose groups share nothing keeps the closed forms (issue 10).

use clustersim::engine::SimTime;
use clustersim::hardware::spec::{gpu_preset, FabricTopology, NetworkSpec};
use clustersim::hardware::topology::Topology;
use clustersim::model::framework::framework_profile;
use clustersim::parallel::collective::{AllReduceAlgorithm, CollectiveOp};
use clustersim::parallel::fabric::{serving_all_to_all, Member};
use clustersim::parallel::plan::Plan;
use clustersim::parallel::runner::{CollectiveRequest, CollectiveRunner};
use clustersim::serving::pricing::Pricer;

fn h100_nodes(nodes: u32, network: impl FnOnce(&mut NetworkSpec)) -> Topology {
    let p = gpu_preset("h100-sxm").expect("preset");
    let mut net = (p.network)();
    network(&mut net);
    Topology::new(nodes, 8, &(p.nvlink)(), &net).expect("topology")
}

/// Mixtral-8x7B's plan in scenarios/mixtral_ep_2nodes.toml: TP4 x EP4 on 2 nodes.
fn mixtral_plan() -> Plan {
    Plan { dp: 1, pp: 1, ep: 4, tp: 4, gpus_per_node: 8, layers: 32 }
}

/// The four EP all-to-alls of the stage (one per TP rank) run together through the
/// flow model, each rank sending `volume` bytes to other ranks; their durations, ns.
fn flow_all_to_alls(topo: &Topology, plan: &Plan, volume: f64) -> Vec<u64> {
    let mut runner = CollectiveRunner::new(topo);
    for t in 0..plan.tp {
        let ranks = plan.ep_group(0, 0, t);
        // nccl-tests size S: what one rank sends in all, S/n to each rank including
        // itself, so `volume` to the others is (n-1)/n of it.
        let n = ranks.len() as f64;
        // Posted as serving posts it: DeepEP-style (same-rail RDMA, NVLink forward) across nodes.
        let member = Member {
            a2a: serving_all_to_all(topo, &ranks),
            ..Member::new(CollectiveOp::AllToAll, AllReduceAlgorithm::Auto, ranks.clone())
        };
        let bytes = volume * n / (n - 1.0);
        let req = CollectiveRequest {
            op: CollectiveOp::AllToAll,
            bytes,
            schedule: member.schedule(topo, bytes).expect("steps"),
        };
        runner.admit(req, &vec![SimTime::ZERO; ranks.len()]).expect("admitted");
    }
    runner.run_to_end().iter().map(|d| d.duration().as_ns()).collect()
}

#[test]
fn mixtral_ep_all_to_all_with_two_nics_per_node_matches_the_flow_model() {
    // A prefill-sized dispatch: 2,048 tokens per EP group x top-2 x 4,096 x 2 B spread over
    // 4 groups, 3/4 of it to the others, over tp = 4 ranks: 3 MiB per rank.
    let volume = 3.0 * 1_048_576.0;
    let plan = mixtral_plan();
    let fw = framework_profile("optimized").expect("profile");
    let two_nics = h100_nodes(2, |n| n.nics_per_node = 2);
    let priced = Pricer::on(two_nics.clone(), AllReduceAlgorithm::Auto, fw.clone(), 0.0).stage_comm(&plan, 0, 0);
    let flows = flow_all_to_alls(&two_nics, &plan, volume);
    for (t, flow_ns) in flows.iter().enumerate() {
        let ns = priced.ep_alltoall[t].ns(volume) as f64;
        let err = (ns - *flow_ns as f64).abs() / *flow_ns as f64;
        assert!(err < 0.05, "TP rank {t}: priced {ns} ns vs flow model {flow_ns} ns ({:.1} %)", err * 100.0);
    }
    // Against one NIC per GPU: 4 GPUs now share each NIC, so the cross-node bandwidth
    // part is 4x; the per-step latency is not, so the whole is a little under 4x.
    let eight_nics = h100_nodes(2, |_| {});
    let private = Pricer::on(eight_nics, AllReduceAlgorithm::Auto, fw, 0.0).stage_comm(&plan, 0, 0);
    let ratio = priced.ep_alltoall[0].ns(volume) as f64 / private.ep_alltoall[0].ns(volume) as f64;
    eprintln!("2 NICs vs 8 NICs per node: {ratio:.3}x");
    assert!((3.3..4.0).contains(&ratio), "2 NICs vs 8 NICs per node: {ratio:.2}x");
}

#[test]
fn private_links_keep_every_price_of_the_plan_as_if_alone() {
    // One NIC per GPU, non-blocking: the EP groups share no link, so each all-to-all is
    // priced as if it ran alone, to the bit.
    let plan = mixtral_plan();
    let topo = h100_nodes(2, |_| {});
    let pr = Pricer::on(topo, AllReduceAlgorithm::Auto, framework_profile("optimized").expect("p"), 0.0);
    let comm = pr.stage_comm(&plan, 0, 0);
    for t in 0..plan.tp {
        assert_eq!(comm.ep_alltoall[t as usize], pr.all_to_all(&plan.ep_group(0, 0, t)));
    }
    assert!(pr.contention(&plan).is_empty());
}

#[test]
fn pipeline_sends_of_eight_ranks_through_one_nic_share_it() {
    // Llama TP8 x PP2 on 2 nodes, one NIC per node: the 8 TP ranks of stage 0 each send
    // their slice to stage 1 at once, all through the one NIC: each gets 1/8 of it, so
    // at a large payload the price is close to 8x the private one.
    let plan = Plan { dp: 1, pp: 2, ep: 1, tp: 8, gpus_per_node: 8, layers: 80 };
    let fw = framework_profile("optimized").expect("profile");
    let one = Pricer::on(h100_nodes(2, |n| n.nics_per_node = 1), AllReduceAlgorithm::Auto, fw.clone(), 0.0);
    let eight = Pricer::on(h100_nodes(2, |_| {}), AllReduceAlgorithm::Auto, fw, 0.0);
    let bytes = 64.0 * 1_048_576.0;
    let shared = one.stage_comm(&plan, 0, 0).pp_send[0].ns(bytes) as f64;
    let private = eight.stage_comm(&plan, 0, 0).pp_send[0].ns(bytes) as f64;
    assert!((7.5..8.0).contains(&(shared / private)), "{}", shared / private);
    let sharing = one.contention(&plan);
    assert_eq!(sharing.len(), 1);
    assert!(sharing[0].links.iter().any(|l| l.contains("NIC 0 up")), "{:?}", sharing[0].links);
}

#[test]
fn a_four_to_one_spine_quarters_cross_node_bandwidth_when_all_nodes_send() {
    // Fat tree, 4 nodes, one leaf per node, 4:1 oversubscribed: a leaf's uplink carries
    // a quarter of its NICs' bandwidth. Every GPU sends 256 MiB to its peer on the next
    // node at once: 8 flows leave each leaf and share its uplink, so each gets 1/4 of
    // what it gets on a non-blocking fabric (where the NIC is the bottleneck).
    let send_all = |oversub: f64| {
        let topo = h100_nodes(4, |n| {
            n.topology = FabricTopology::FatTree;
            n.oversubscription = oversub;
        });
        let mut r = CollectiveRunner::new(&topo);
        for g in 0..32u32 {
            let req = CollectiveRequest::new(
                &topo,
                CollectiveOp::SendRecv,
                AllReduceAlgorithm::Auto,
                &[g, (g + 8) % 32],
                268_435_456.0,
            )
            .expect("send");
            r.admit(req, &[SimTime::ZERO, SimTime::ZERO]).expect("admitted");
        }
        r.run_to_end().iter().map(|d| d.duration().as_secs_f64()).fold(0.0, f64::max)
    };
    let ratio = send_all(4.0) / send_all(1.0);
    assert!((3.9..4.1).contains(&ratio), "4:1 spine vs non-blocking: {ratio:.3}x");
}

/// Llama-3-8B, TP8 x PP2, two replicas on four H100 nodes: replica 0 on nodes 0-1,
/// replica 1 on nodes 2-3; each replica's pipeline sends cross the NICs between its nodes.
fn two_replicas(events: &str) -> clustersim::scenario::Setup {
    let text = format!(
        "[scenario]\nname = \"linkfail\"\nseed = 3\n[hardware]\ngpu = \"h100-sxm\"\nnodes = 4\n\
         [model]\npreset = \"llama-3-8b\"\n[parallel]\ndp = 2\npp = 2\ntp = 8\n[serving]\n\
         [workload]\nrequests = 200\narrival = {{ process = \"poisson\", rate_per_s = 40.0 }}\n\
         prompt_tokens = {{ dist = \"fixed\", value = 512 }}\noutput_tokens = {{ dist = \"fixed\", value = 32 }}\n{events}"
    );
    let path = std::path::Path::new("linkfail.toml");
    clustersim::scenario::validate(&clustersim::scenario::parse(&text, path, &[]).expect("parse"), path).expect("valid")
}

#[test]
fn a_failed_nic_stalls_the_replica_whose_traffic_crosses_it_and_loses_no_request() {
    // NIC 0 of node 0 fails at 1 s and is never repaired. Only replica 0's pipeline sends
    // (GPU 0 -> GPU 8) cross it; routes are fixed, so replica 0 stops, its requests go to
    // replica 1, and every request still completes. Without the failure nothing is re-routed.
    let event = "[[events]]\nkind = \"link_failure\"\nat_s = 1.0\nlink = \"nic\"\nnode = 0\nindex = 0\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("requests.csv");
    let requests = Some(clustersim::output::records::CsvRequestSink::create(&csv).expect("sink"));
    let out = clustersim::serving::simulate(
        &two_replicas(event),
        clustersim::serving::RunOptions { requests, ..Default::default() },
    )
    .expect("runs");
    let r = &out.report.summary.requests;
    assert_eq!((r.arrived, r.completed, r.dropped), (200, 200, 0));
    assert!(r.rerouted > 0);
    let rows: Vec<clustersim::output::records::RequestRow> =
        csv::Reader::from_path(&csv).expect("csv").deserialize().map(|x| x.expect("row")).collect();
    assert!(
        rows.iter().filter(|x| x.finish_s > 1.0 + 1e-9).all(|x| x.replica == 1),
        "replica 0 worked after its NIC failed"
    );
    let calm = clustersim::serving::simulate(&two_replicas(""), Default::default()).expect("runs");
    assert_eq!(calm.report.summary.requests.rerouted, 0);
}

#[test]
fn a_nic_index_past_the_nodes_nics_is_refused_with_the_key_named() {
    // H100 nodes have 8 NICs: index 8 does not exist.
    let text = "[scenario]\nname = \"x\"\nseed = 1\n[hardware]\ngpu = \"h100-sxm\"\nnodes = 1\n[model]\npreset = \"llama-3-8b\"\n\
                [workload]\nrequests = 1\narrival = { process = \"all_at_once\" }\nprompt_tokens = { dist = \"fixed\", value = 8 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n[[events]]\nkind = \"link_failure\"\nat_s = 1.0\nlink = \"nic\"\nnode = 0\nindex = 8\n";
    let path = std::path::Path::new("bad.toml");
    let err = clustersim::scenario::validate(&clustersim::scenario::parse(text, path, &[]).expect("parse"), path)
        .expect_err("index 8 of 8 NICs");
    let msg = err.to_string();
    assert!(msg.contains("events.0.index") && msg.contains("0..7"), "{msg}");
}

/// Two replicas of two GPUs each (TP2, one stage), both crossing link 5 (1 GB/s =
/// 1 byte/ns), each GPU's payload putting half its bytes on it; links 0-4 unused.
fn two_replicas_on_one_link(extra: &[u32]) -> clustersim::serving::paced::SharedFabric {
    use clustersim::metrics::network::{GroupFact, NetworkFacts};
    let plan = Plan { dp: 2, pp: 1, ep: 1, tp: 2, gpus_per_node: 2, layers: 1 };
    let units = vec![[5u32].into_iter().collect(), [5u32].into_iter().collect()];
    let group = GroupFact { link_bytes_per_payload: vec![(5, 0.5)], contention_ns_per_byte: 0.0 };
    let facts = NetworkFacts {
        links: Vec::new(),
        groups: vec![group.clone(), group],
        gpu_groups: vec![
            [Some(0), None, None, None],
            [Some(0), None, None, None],
            [Some(1), None, None, None],
            [Some(1), None, None, None],
        ],
    };
    let capacity = [1e9; 6];
    clustersim::serving::paced::SharedFabric::build(&plan, &units, extra, &facts, &capacity).expect("link 5 is shared")
}

/// A stage run of 3,000 ns on two GPUs: 2,000 ns computing, then 1,000 ns of TP
/// all-reduce of 1,000 payload bytes each (so 2 x 1,000 x 0.5 = 1,000 bytes on link 5
/// in 1,000 ns: the whole link).
fn tp_run() -> clustersim::serving::stage::StageRun {
    let gpu = clustersim::parallel::ledger::GpuTotals {
        compute_ns: 2_000,
        comm_ns: [1_000, 0, 0, 0],
        comm_bytes: [1_000.0, 0.0, 0.0, 0.0],
        ..Default::default()
    };
    clustersim::serving::stage::StageRun { duration_ns: 3_000, gpus: vec![gpu.clone(), gpu] }
}

fn recorder() -> clustersim::metrics::recorder::Recorder {
    clustersim::metrics::recorder::Recorder::new(4, 4, 0, None).expect("recorder")
}

#[test]
fn two_replicas_through_one_nic_each_get_half_of_it_for_their_overlap() {
    // Replica 0's batch runs from 0: its all-reduce is on the link from 2,000 to 3,000
    // alone. Replica 1's batch starts at 500: its all-reduce would be on from 2,500 to
    // 3,500. From 2,500 they overlap and each gets half the link (max-min): replica 0
    // still had 500 ns of its transfer to do, which now takes 1,000 ns: it ends at
    // 3,500 (500 late). By then replica 1 has done 500 ns worth at half speed, i.e.
    // 500 of its 1,000 bytes, and does the rest alone at full speed in 500 ns: ends at
    // 4,000 (500 late). Each lost 500 ns; for the overlap [2,500, 3,500) each had half.
    use clustersim::engine::SimTime;
    let mut fabric = two_replicas_on_one_link(&[]);
    let mut rec = recorder();
    let run = tp_run();
    let end0 = fabric.book_stage(1, 0, 0, &run, SimTime(3_000), SimTime(0), &mut rec);
    assert_eq!(end0, SimTime(3_000), "alone, the closed form holds to the ns");
    assert!(fabric.take_moves().is_empty());
    let end1 = fabric.book_stage(2, 1, 0, &run, SimTime(3_500), SimTime(500), &mut rec);
    assert_eq!(end1, SimTime(4_000));
    let moves = fabric.take_moves();
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].owner.batch, moves[0].delta_ns, moves[0].from_ns), (1, 500, 3_000));
    // Once both finished, each GPU's lost 500 ns are booked as TP communication lost to
    // contention (each GPU moves bytes on the link, so none of them merely waits).
    fabric.settle(SimTime(10_000), &mut rec);
    for g in 0..4 {
        let t = rec.ledger.gpu(g);
        assert_eq!((t.comm_ns[0], t.contention_ns, t.wait_ns[0]), (500, 500, 0), "GPU {g}");
    }
}

#[test]
fn batches_that_do_not_overlap_on_the_link_keep_their_closed_forms() {
    // Replica 1 starts at 1,000: its all-reduce is on [3,000, 4,000), right after
    // replica 0's [2,000, 3,000): no overlap, no move, nothing lost.
    use clustersim::engine::SimTime;
    let mut fabric = two_replicas_on_one_link(&[]);
    let mut rec = recorder();
    let run = tp_run();
    assert_eq!(fabric.book_stage(1, 0, 0, &run, SimTime(3_000), SimTime(0), &mut rec), SimTime(3_000));
    assert_eq!(fabric.book_stage(2, 1, 0, &run, SimTime(4_000), SimTime(1_000), &mut rec), SimTime(4_000));
    assert!(fabric.take_moves().is_empty());
    fabric.settle(SimTime(10_000), &mut rec);
    assert!((0..4).all(|g| rec.ledger.gpu(g).contention_ns == 0));
}

#[test]
fn a_link_slowdown_reaches_a_transfer_in_flight() {
    // Replica 0's all-reduce is on the link from 2,000 to 3,000. At 2,400 the link drops
    // to half its bandwidth: the 600 ns of transfer left take 1,200 ns, so it ends at
    // 3,600, not 3,000 (before, a slowdown only reached the next batch).
    use clustersim::engine::SimTime;
    let mut fabric = two_replicas_on_one_link(&[5]);
    let mut rec = recorder();
    assert_eq!(fabric.book_stage(1, 0, 0, &tp_run(), SimTime(3_000), SimTime(0), &mut rec), SimTime(3_000));
    let mut capacity = [1e9; 6];
    capacity[5] = 0.5e9;
    fabric.capacities_changed(SimTime(2_400), &capacity, &mut rec);
    let moves = fabric.take_moves();
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].delta_ns, moves[0].from_ns), (600, 3_000));
    fabric.settle(SimTime(10_000), &mut rec);
    assert_eq!(rec.ledger.gpu(0).contention_ns, 600);
}

/// Llama-3-8B with TP16 (ring all-reduce) over two H100 nodes per replica, `dp`
/// replicas, behind a rail-optimized spine oversubscribed `oversubscription`:1. The
/// ring's two cross-rail
/// hops (GPU 7 -> 8 and 15 -> 0 of each replica) go rail 7 up the spine and down to
/// rail 0: every replica crosses the same two spine links. 24 requests arrive at once.
fn tp16_replicas(dp: u32, oversubscription: f64) -> clustersim::scenario::Setup {
    let text = format!(
        "[scenario]\nname = \"spine\"\nseed = 5\n[hardware]\ngpu = \"h100-sxm\"\nnodes = {}\n\
         network.oversubscription = {oversubscription}\n[model]\npreset = \"llama-3-8b\"\n\
         [parallel]\ndp = {dp}\ntp = 16\nall_reduce = \"ring\"\n[serving]\n[workload]\nrequests = 24\n\
         arrival = {{ process = \"all_at_once\" }}\nprompt_tokens = {{ dist = \"fixed\", value = 2048 }}\n\
         output_tokens = {{ dist = \"fixed\", value = 8 }}\n",
        2 * dp
    );
    let path = std::path::Path::new("spine.toml");
    clustersim::scenario::validate(&clustersim::scenario::parse(&text, path, &[]).expect("parse"), path).expect("valid")
}

fn contention_s(out: &clustersim::serving::Outcome) -> f64 {
    out.report.gpus.iter().map(|g| g.contention_s).sum()
}

#[test]
fn replicas_sharing_an_oversubscribed_spine_slow_each_other_only_when_they_overlap() {
    // One replica alone: its TP group is the only user of the spine links, so it keeps
    // its closed form and loses nothing. Two replicas behind a 4:1 spine (a rail's
    // uplink carries one NIC's worth for the 4 NICs of its rail) run their batches at the
    // same instants (requests arrive together, the router alternates): their all-reduces
    // overlap on the two spine links and each loses time there; the GPUs' four states
    // still add up to the wall time. With a non-blocking spine (4 NICs' worth per rail
    // uplink) the two rings' hops fit side by side: nothing is lost.
    let alone = clustersim::serving::simulate(&tp16_replicas(1, 4.0), Default::default()).expect("runs");
    assert_eq!(contention_s(&alone), 0.0);
    let shared = clustersim::serving::simulate(&tp16_replicas(2, 4.0), Default::default()).expect("runs");
    assert_eq!(shared.report.summary.requests.completed, 24);
    assert!(contention_s(&shared) > 0.0, "two replicas on one 4:1 spine lose nothing");
    for g in &shared.report.gpus {
        let sum = g.compute_s + g.communicate_s + g.wait_s + g.idle_s;
        let wall = shared.report.gpus[0].compute_s
            + shared.report.gpus[0].communicate_s
            + shared.report.gpus[0].wait_s
            + shared.report.gpus[0].idle_s;
        assert!((sum - wall).abs() < 1e-9, "GPU {}: states add to {sum}, wall {wall}", g.gpu);
    }
    let roomy = clustersim::serving::simulate(&tp16_replicas(2, 1.0), Default::default()).expect("runs");
    assert_eq!(contention_s(&roomy), 0.0);
}

#[test]
fn validate_names_links_shared_between_replicas() {
    // The two TP16 rings cross the same two spine links (rail 7's uplink, rail 0's
    // downlink); one replica alone shares nothing with anyone.
    let asm = clustersim::serving::assemble::Assembly::build(&tp16_replicas(2, 4.0)).expect("assembles");
    let w = asm.cross_sharing().expect("two replicas share the spine");
    assert!(w.starts_with("2 link(s)"), "{w}");
    assert!(w.contains("spine uplink of leaf 7: replica 0 stage 0, replica 1 stage 0"), "{w}");
    let alone = clustersim::serving::assemble::Assembly::build(&tp16_replicas(1, 4.0)).expect("assembles");
    assert_eq!(alone.cross_sharing(), None);
}

#[test]
fn the_trace_shows_transfers_on_shared_links_and_a_failure_drops_them() {
    // With the timeline window over the whole run, every transfer the two replicas put
    // on the shared spine links is kept for the trace's "shared links" process, and some
    // of them lost time to sharing.
    let opts = clustersim::serving::RunOptions { window_s: Some((0.0, 1e3)), ..Default::default() };
    let out = clustersim::serving::simulate(&tp16_replicas(2, 4.0), opts).expect("runs");
    assert!(!out.link_spans.is_empty());
    assert!(out.link_spans.iter().all(|(name, _)| name.starts_with("spine")), "only spine links are shared");
    assert!(out.link_spans.iter().any(|(_, s)| s.end > s.alone_end));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trace.json");
    clustersim::output::chrome::write_trace(&path, &out.spans, &out.batch_requests, &out.plan, &out.link_spans)
        .expect("writes");
    let text = std::fs::read_to_string(&path).expect("reads");
    assert!(text.contains("\"shared links\"") && text.contains("spine uplink of leaf 7"));
    // A GPU of replica 0 fails mid-run: its batches in flight are dropped with their
    // transfers on the shared links, its requests go to replica 1, and all complete.
    let mut setup = tp16_replicas(2, 4.0);
    setup.events.push(clustersim::scenario::types::WhatIfEvent::GpuFailure { at_s: 0.2, until_s: None, gpu: 3 });
    let failed = clustersim::serving::simulate(&setup, Default::default()).expect("runs");
    assert_eq!(failed.report.summary.requests.completed, 24);
    assert!(failed.report.summary.requests.rerouted > 0, "the failure came after the run");
}
