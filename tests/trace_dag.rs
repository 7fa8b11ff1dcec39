//! The Perfetto trace and the deployment DAG (issue 5 acceptance points).

use clustersim::output::dag;
use clustersim::scenario::{load_setup, Override};
use clustersim::serving::{assemble::Assembly, simulate, RunOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn seed_corrected(overrides: &[&str]) -> clustersim::scenario::Setup {
    let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
    load_setup(Path::new("scenarios/seed_corrected.toml"), &o).unwrap()
}

#[test]
fn trace_json_is_trace_event_format_with_monotone_threads() {
    let setup = seed_corrected(&["workload.requests=120"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.json");
    let out = simulate(&setup, RunOptions::default()).unwrap();
    clustersim::output::chrome::write_trace(&path, &out.spans, &out.batch_requests, &out.plan, &out.link_spans)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = v["traceEvents"].as_array().expect("traceEvents array");
    let mut last_end: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    let (mut complete, mut named_threads) = (0, BTreeSet::new());
    for e in events {
        let ph = e["ph"].as_str().unwrap();
        let pid = e["pid"].as_u64().unwrap();
        match ph {
            "M" => {
                if e["name"] == "thread_name" {
                    named_threads.insert((pid, e["tid"].as_u64().unwrap()));
                }
            }
            "X" => {
                complete += 1;
                let tid = e["tid"].as_u64().unwrap();
                let ts = e["ts"].as_f64().unwrap();
                let dur = e["dur"].as_f64().unwrap();
                assert!(dur > 0.0, "empty event {e}");
                // Per thread, events are sorted and never overlap: a begin never
                // precedes the previous end, so every begin has its end before the next.
                let prev = last_end.insert((pid, tid), ts + dur).unwrap_or(0.0);
                assert!(ts + 1e-6 >= prev, "overlap on pid {pid} tid {tid}: {ts} < {prev}");
                assert!(named_threads.contains(&(pid, tid)), "event on an unnamed thread: {e}");
                assert!(e["args"]["batch"].is_u64());
            }
            other => panic!("unexpected phase {other}"),
        }
    }
    assert!(complete > 100, "only {complete} events in the window");
    // 24 GPUs, each with a compute and a communication thread, all seen in the window
    // (the "shared links" process, pid 2^30, comes on top: stage 0's pipeline sends and
    // stage 1's collectives share stage 1's NVLink ports).
    assert_eq!(named_threads.iter().filter(|(pid, _)| *pid < 1 << 30).count(), 48);
    assert!(named_threads.iter().any(|(pid, _)| *pid == 1 << 30));
}

#[test]
fn dag_of_seed_corrected_lists_gpus_and_groups() {
    let setup = seed_corrected(&[]);
    let asm = Assembly::build(&setup).unwrap();
    let d = dag::build(&setup.name, &asm);
    // 24 GPUs: DP=3 groups of 8; PP groups: one per (replica, ep, tp) = 3 x 2 x 2 = 12,
    // each of 2 stages; TP groups: per (replica, stage, ep) = 12 of 2; EP groups: per
    // (replica, stage, tp) = 12 of 2.
    assert_eq!(d.gpus.len(), 24);
    assert_eq!(d.groups.dp.len(), 3);
    assert!(d.groups.dp.iter().all(|g| g.len() == 8));
    for groups in [&d.groups.pp, &d.groups.tp, &d.groups.ep] {
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g.len() == 2));
    }
    assert_eq!(d.groups.tp[0], vec![0, 1]);
    assert_eq!(d.groups.ep[0], vec![0, 2]);
    assert_eq!(d.groups.pp[0], vec![0, 4]);
    // Every GPU appears in some operator, and every edge joins declared nodes.
    let ids: BTreeSet<&str> = d.nodes.iter().map(|n| n.id.as_str()).collect();
    for (a, b) in &d.edges {
        assert!(ids.contains(a.as_str()) && ids.contains(b.as_str()), "dangling edge {a} -> {b}");
    }
    let used: BTreeSet<u32> = d.nodes.iter().flat_map(|n| n.gpus.iter().copied()).collect();
    assert_eq!(used, (0..24).collect());
    // Each stage of seed-moe (16 layers / 2 stages) is 8 MoE layers, with EP all-to-alls.
    assert!(d.nodes.iter().any(|n| n.op == "ep_dispatch" && n.layers == 8));
    assert!(d.nodes.iter().any(|n| n.op == "pp_send"));
    assert_eq!(d.nodes.iter().filter(|n| n.op == "lm_head").count(), 3);
}

#[test]
fn dag_dot_parses() {
    let setup = seed_corrected(&[]);
    let asm = Assembly::build(&setup).unwrap();
    let dot = dag::to_dot(&dag::build(&setup.name, &asm));
    // Braces balance and every edge line names two identifiers.
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    assert!(dot.lines().filter(|l| l.contains("->")).all(|l| l.trim().ends_with(';')));
    // With graphviz installed, `dot` itself must accept it.
    if let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "dot rejected the graph: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    } else {
        eprintln!("graphviz `dot` not installed: checked DOT structure only");
    }
}
