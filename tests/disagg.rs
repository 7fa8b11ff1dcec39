//! Disaggregated prefill/decode serving end to end (issue 12): the KV handoff's time
//! worked out by hand, its sharing of a NIC, layer-wise streaming, TTFT including the
//! handoff, conservation under KV pressure, and the pools' input errors.

use clustersim::metrics::pools::DisaggSummary;
use clustersim::output::records::RequestRow;
use clustersim::scenario::Setup;
use clustersim::serving::{simulate, Outcome, RunOptions};
use std::path::Path;

/// Writes `rows` (arrival_s, prompt, output) as a CSV trace next to a scenario whose
/// `[workload]` replays it; returns the folder (keep it alive) and the setup.
fn trace_setup(rows: &[(f64, u32, u32)], scenario: &str) -> (tempfile::TempDir, Setup) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("arrival_s,prompt_tokens,output_tokens\n");
    for (t, p, o) in rows {
        csv.push_str(&format!("{t},{p},{o}\n"));
    }
    std::fs::write(dir.path().join("trace.csv"), csv).expect("write trace");
    let file = dir.path().join("scenario.toml");
    std::fs::write(&file, format!("{scenario}\n[workload]\ntrace = \"trace.csv\"\n")).expect("write scenario");
    let s = clustersim::scenario::load_setup(&file, &[]).unwrap_or_else(|e| panic!("load: {e}"));
    (dir, s)
}

/// Runs `s`; returns the outcome and its requests.csv rows.
fn run(s: &Setup) -> (Outcome, Vec<RequestRow>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("requests.csv");
    let requests = Some(clustersim::output::records::CsvRequestSink::create(&path).expect("sink"));
    let out = simulate(s, RunOptions { requests, ..Default::default() }).unwrap_or_else(|e| panic!("simulate: {e}"));
    let mut rdr = csv::Reader::from_path(&path).expect("requests.csv");
    let rows = rdr.deserialize().map(|r| r.expect("row")).collect();
    (out, rows)
}

fn disagg(out: &Outcome) -> &DisaggSummary {
    out.report.summary.disaggregation.as_ref().expect("a pooled run reports its pools")
}

/// Llama-3-70B on one prefill and one decode node of 8 H100s (TP = 8), each node with
/// ONE 400 Gb/s NIC (50 GB/s, efficiency 1, latency 5 µs), so every handoff crosses
/// exactly one NIC on each side.
fn one_nic(mode: &str) -> String {
    with_prefill_nodes(mode, 1)
}

/// [`one_nic`] with `n` prefill nodes, one instance each.
fn with_prefill_nodes(mode: &str, n: u32) -> String {
    format!(
        r#"
[scenario]
name = "handoff"
seed = 1
[hardware]
gpu = "h100-sxm"
nodes = {nodes}
gpus_per_node = 8
[hardware.network]
nics_per_node = 1
nic_bandwidth_gb_s = 50.0
efficiency = 1.0
latency_us = 5.0
[model]
preset = "llama-3-70b"
dtype = "bf16"
[parallel]
tp = 8
[[pools]]
role = "prefill"
replicas = {n}
nodes = {n}
[[pools]]
role = "decode"
replicas = 1
nodes = 1
[disaggregation]
kv_transfer = "{mode}"
"#,
        nodes = n + 1
    )
}

/// KV bytes of a 4,096-token prompt of Llama-3-70B in bf16: 2 (K and V) x 80 layers x
/// 8 KV heads x 128 head dim x 2 B = 327,680 B per token; x 4,096 = 1,342,177,280 B.
const KV_BYTES: f64 = 1_342_177_280.0;

#[test]
fn a_4096_token_handoff_takes_bytes_over_the_nic_plus_latency_and_two_share_it() {
    // Whole cache, one request: 1,342,177,280 B / 50 B/ns = 26,843,545.6 ns, rounded
    // up to whole ns (8 shards of 167,772,160 B at 6.25 B/ns each end together):
    // 26,843,546 ns, + 5 µs latency = 26,848,546 ns.
    let (_d, s) = trace_setup(&[(0.0, 4096, 4)], &one_nic("whole"));
    let (out, rows) = run(&s);
    let d = disagg(&out);
    assert_eq!(d.handoffs, 1);
    assert_eq!((d.kv_transfer_s.max * 1e9).round() as u64, 26_848_546);
    assert!((d.kv_gb - KV_BYTES / 1e9).abs() < 1e-9);
    // TTFT includes it: the first token is delivered when the KV has landed.
    let one = (rows[0].ttft_s * 1e9).round() as u64;

    // Two at once (prefilled side by side on two prefill nodes, handed off together to
    // the one decode node): each gets half of its NIC, 2 x 26,843,545.6 =
    // 53,687,091.2 ns -> 53,687,092 + 5,000 = 53,692,092 ns.
    let (_d, s) = trace_setup(&[(0.0, 4096, 4), (0.0, 4096, 4)], &with_prefill_nodes("whole", 2));
    let (out, _) = run(&s);
    let d = disagg(&out);
    assert_eq!(d.handoffs, 2);
    assert_eq!((d.kv_transfer_s.p50 * 1e9).round() as u64, 53_692_092);
    assert_eq!((d.kv_transfer_s.max * 1e9).round() as u64, 53_692_092);
    assert!(one > 26_848_546, "TTFT {one} ns must include the 26.8 ms handoff");
}

#[test]
fn layerwise_streaming_leaves_only_the_last_layers_share_after_a_long_prefill() {
    // The prefill of 4,096 tokens on 8 H100s takes longer than the 26.8 ms the NIC
    // needs, so everything but the last of 80 layers has streamed by the time it
    // ends: 1,342,177,280 / 80 = 16,777,216 B; per shard 2,097,152 B at 6.25 B/ns =
    // 335,544.32 -> 335,545 ns, + 5,000 ns latency = 340,545 ns.
    let (_d, s) = trace_setup(&[(0.0, 4096, 4)], &one_nic("layerwise"));
    let (out, rows) = run(&s);
    let d = disagg(&out);
    assert_eq!((d.kv_transfer_s.max * 1e9).round() as u64, 340_545);
    let prefill_ns = ((rows[0].first_token_s - rows[0].scheduled_s) * 1e9).round() as u64 - 340_545;
    assert!(prefill_ns > 26_843_546, "the prefill ({prefill_ns} ns) outlasts the link time");
    // Same prefill in both modes: TTFT differs by the handoff times alone,
    // 26,848,546 - 340,545 = 26,508,001 ns.
    let (_d, s) = trace_setup(&[(0.0, 4096, 4)], &one_nic("whole"));
    let (_, whole) = run(&s);
    let diff = ((whole[0].ttft_s - rows[0].ttft_s) * 1e9).round() as i64;
    assert!((diff - 26_508_001).abs() <= 1, "TTFT difference {diff} ns");
}

#[test]
fn requests_are_conserved_and_handoffs_wait_for_decode_blocks() {
    // A decode instance whose KV pool is small (gpu_memory_utilization leaves ~1.3 GiB
    // of KV per GPU: a few 4k-token contexts), 60 long requests at once: handoffs must
    // wait for room, decodes are preempted, and still every request finishes once.
    let text = one_nic("layerwise").replace("[parallel]", "[serving]\ngpu_memory_utilization = 0.24\n[parallel]");
    let rows: Vec<(f64, u32, u32)> = (0..60).map(|i| (i as f64 * 0.001, 3000 + 17 * i, 200 + i)).collect();
    let (_d, s) = trace_setup(&rows, &text);
    let (out, reqs) = run(&s);
    let r = &out.report.summary.requests;
    assert_eq!(r.arrived, 60);
    assert_eq!(r.completed + r.dropped, r.arrived);
    assert_eq!(reqs.len() as u64, r.completed);
    let d = disagg(&out);
    assert!(d.kv_wait_s.max > 0.0, "the decode side ran out of room at least once");
    assert_eq!(d.handoffs, r.completed);
    // TPOT is measured after the handoff: every request's tokens after the first come
    // from decode iterations that start no earlier than its KV landed.
    for row in &reqs {
        assert!(row.finish_s > row.first_token_s && row.first_token_s > row.scheduled_s);
    }
}

#[test]
fn same_seed_same_bytes() {
    let rows: Vec<(f64, u32, u32)> = (0..30).map(|i| (i as f64 * 0.01, 1000 + 31 * i, 20 + i)).collect();
    let (_d, s) =
        trace_setup(&rows, &one_nic("layerwise").replace("kv_transfer", "router = \"kv_aware\"\nkv_transfer"));
    let a = serde_json::to_string(&run(&s).0.report.summary).expect("json");
    let b = serde_json::to_string(&run(&s).0.report.summary).expect("json");
    assert_eq!(a, b);
}

fn invalid(text: &str) -> String {
    let path = Path::new("bad.toml");
    let sc = clustersim::scenario::parse(text, path, &[]).expect("parses");
    match clustersim::scenario::validate(&sc, path) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

#[test]
fn pools_are_checked_with_their_keys_named() {
    let base = one_nic("whole")
        + "[workload]\nrequests = 4\narrival = { process = \"all_at_once\" }\n"
        + "prompt_tokens = { dist = \"fixed\", value = 100 }\noutput_tokens = { dist = \"fixed\", value = 10 }\n";
    let no_decode = base.replace("role = \"decode\"", "role = \"prefill\"");
    assert!(invalid(&no_decode).contains("pools") && invalid(&no_decode).contains("no decode pool"));
    let nodes = base.replacen("nodes = 2\n", "nodes = 1\n", 1);
    assert!(invalid(&nodes).contains("hardware.nodes"), "{}", invalid(&nodes));
    let too_many = base.replacen("replicas = 1", "replicas = 2", 1);
    let msg = invalid(&too_many);
    assert!(msg.contains("pools.0") && msg.contains("prefill pool"), "{msg}");
    let lonely = "[disaggregation]\nkv_transfer = \"whole\"\n".to_string()
        + &base[base.find("[scenario]").expect("has")..base.find("[[pools]]").expect("has")]
        + &base[base.find("[workload]").expect("has")..];
    assert!(invalid(&lonely).contains("no [[pools]]"), "{}", invalid(&lonely));
    // A decode plan that does not fit: Llama-3-70B (141 GB of bf16 weights) on one H100.
    let tp1 = base.replace("nodes = 1\n[disaggregation]", "nodes = 1\n[pools.parallel]\ntp = 1\n[disaggregation]");
    let path = Path::new("bad.toml");
    let s = clustersim::scenario::validate(&clustersim::scenario::parse(&tp1, path, &[]).expect("parses"), path)
        .expect("memory is checked when the run is built");
    assert!(s.without_pools("assess").expect_err("one-plan commands refuse pools").to_string().contains("`assess`"));
    let err = simulate(&s, RunOptions::default()).err().expect("does not fit").to_string();
    assert!(err.contains("pools.1") && err.contains("memory"), "{err}");
}

#[test]
fn one_mixed_pool_serves_exactly_as_the_co_located_run() {
    // The same two Llama-3-8B replicas (TP = 1 on 2 H100s), round robin, once as a
    // plain scenario and once as one mixed pool: the pooled loop reuses the same
    // scheduler, pipeline and router, so every request's times must agree to the ns.
    let common = r#"
[scenario]
name = "mixed"
seed = 5
[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 2
[model]
preset = "llama-3-8b"
[workload]
requests = 200
arrival = { process = "poisson", rate_per_s = 40.0 }
prompt_tokens = { dist = "uniform", min = 100, max = 3000 }
output_tokens = { dist = "uniform", min = 1, max = 300 }
"#;
    let path = Path::new("mixed.toml");
    let load = |text: &str| {
        clustersim::scenario::validate(&clustersim::scenario::parse(text, path, &[]).expect("parses"), path)
            .expect("valid")
    };
    let plain = load(&format!("{common}[parallel]\ndp = 2\n"));
    let pooled = load(&format!("{common}[[pools]]\nrole = \"mixed\"\nreplicas = 2\n"));
    let (a, ra) = run(&plain);
    let (b, rb) = run(&pooled);
    let times =
        |rows: &[RequestRow]| rows.iter().map(|r| (r.id, r.replica, r.first_token_s, r.finish_s)).collect::<Vec<_>>();
    assert_eq!(times(&ra), times(&rb));
    let (sa, sb) = (&a.report.summary, &b.report.summary);
    assert_eq!((&sa.ttft_s, &sa.tpot_s, &sa.gpu), (&sb.ttft_s, &sb.tpot_s, &sb.gpu));
    assert_eq!(a.report.gpus, b.report.gpus);
    assert_eq!(disagg(&b).pools[0].role, "mixed");
}

#[test]
fn pools_of_different_gpus_and_plans_are_reported_each_with_its_own() {
    // Prefill: one H100 node, one TP8 instance. Decode: one H200 node as two TP4
    // instances. GPU rows: 0-7 replica 0 with H100 capacity; 8-11 replica 1 and 12-15
    // replica 2 (instances numbered over the run), with H200 capacity.
    let text = one_nic("whole")
        .replace("role = \"decode\"\nreplicas = 1", "role = \"decode\"\nreplicas = 2\ngpu = \"h200-sxm\"")
        .replace("nodes = 1\n[disaggregation]", "nodes = 1\n[pools.parallel]\ntp = 4\n[disaggregation]");
    let rows: Vec<(f64, u32, u32)> = (0..20).map(|i| (i as f64 * 0.05, 2000, 50)).collect();
    let (_d, s) = trace_setup(&rows, &text);
    let (out, reqs) = run(&s);
    assert_eq!(out.report.summary.requests.completed, 20);
    let d = disagg(&out);
    assert_eq!((d.pools[0].gpu.as_str(), d.pools[1].gpu.as_str()), ("h100-sxm", "h200-sxm"));
    assert_eq!((d.pools[1].replicas, d.pools[1].tp), (2, 4));
    let g = &out.report.gpus;
    let (h100, h200) = (s.pools[0].setup.gpu.memory_gib, s.pools[1].setup.gpu.memory_gib);
    assert!(h200 > h100);
    assert!(g[..8].iter().all(|r| r.replica == 0 && r.capacity_gib == h100));
    assert!(g[8..12].iter().all(|r| r.replica == 1 && r.capacity_gib == h200 && r.node == 1));
    assert!(g[12..].iter().all(|r| r.replica == 2 && r.tp_rank < 4));
    // Round robin over the two decode instances: requests.csv names the decode one.
    let mut by_replica = [0; 3];
    reqs.iter().for_each(|r| by_replica[r.replica as usize] += 1);
    assert_eq!(by_replica, [0, 10, 10]);
}

#[test]
fn a_handoff_shares_the_prefill_nics_with_the_next_prefills_all_reduces() {
    // Both pools: one TP16 instance over two nodes of one 50 GB/s NIC each, so the
    // instances' all-reduces cross their NICs. Request 0 (4,096 tokens) is prefilled,
    // then hands 1,342,177,280 B off, half out of each prefill NIC and half into each
    // decode NIC: 671,088,640 B / 50 B/ns = 13,421,772.8 -> 13,421,773 ns + 5 µs alone.
    // Request 1 (512 tokens) arrives during request 0's prefill and is prefilled next,
    // a few ms, while request 0's KV leaves: its all-reduces want the prefill NICs too,
    // so both slow while they overlap (max-min), and the prefill GPUs book what their
    // all-reduces lost as contention.
    let text = with_prefill_nodes("whole", 3)
        .replace("replicas = 3\nnodes = 3", "replicas = 1\nnodes = 2\n[pools.parallel]\ntp = 16")
        .replace("replicas = 1\nnodes = 1", "replicas = 1\nnodes = 2\n[pools.parallel]\ntp = 16");
    let (_d, s) = trace_setup(&[(0.0, 4096, 4), (0.001, 512, 4)], &text);
    let (out, _) = run(&s);
    let d = disagg(&out);
    assert_eq!(d.handoffs, 2);
    let alone_ns = 13_426_773;
    assert!((d.kv_transfer_s.max * 1e9).round() as u64 > alone_ns, "{:?}", d.kv_transfer_s);
    let lost: f64 = out.report.gpus[..16].iter().map(|g| g.contention_s).sum();
    assert!(lost > 0.0, "the prefill's all-reduces lost time to the handoff");
    // The trace shows each handoff on the four NICs it crosses (out of pool 0's two
    // nodes' NICs, into pool 1's), beside the all-reduces' tails on pool 0's.
    let window = RunOptions { window_s: Some((0.0, 10.0)), ..Default::default() };
    let traced = simulate(&s, window).unwrap_or_else(|e| panic!("simulate: {e}"));
    let mut kv: Vec<&str> = traced.link_spans.iter().filter(|(_, l)| l.handoff).map(|(n, _)| n.as_str()).collect();
    kv.sort_unstable();
    kv.dedup();
    assert_eq!(kv, ["pool 0 NIC 0 up", "pool 0 NIC 1 up", "pool 1 NIC 0 down", "pool 1 NIC 1 down"]);
    assert!(traced.link_spans.iter().any(|(n, l)| !l.handoff && n.starts_with("pool 0 NIC")));
    // Without request 1 nothing else crosses the NICs while the KV leaves: the handoff
    // takes its price and no GPU loses time.
    let (_d, s) = trace_setup(&[(0.0, 4096, 4)], &text);
    let (out, _) = run(&s);
    assert_eq!((disagg(&out).kv_transfer_s.max * 1e9).round() as u64, alone_ns);
    assert!(out.report.gpus.iter().all(|g| g.contention_s == 0.0));
}
