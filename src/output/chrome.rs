//! `trace.json` in the Trace Event Format that Perfetto and chrome://tracing open.
//!
//! A process per node, two threads per GPU (its compute stream and its communication
//! stream), one complete (`"ph": "X"`) event per operator, collective or wait inside
//! the timeline window, with its FLOPs or bytes, batch id and the batch's request ids.
//! Timestamps are microseconds with nanosecond decimals, sorted per thread. Links
//! shared between replicas or stages get a process of their own, one thread per link,
//! one event per transfer on it (how long it took, and how much of that it lost to
//! sharing).

use crate::error::{Error, Result};
use crate::metrics::recorder::Span;
use crate::output::files::AtomicFile;
use crate::parallel::ledger::GpuState;
use crate::parallel::plan::Plan;
use crate::serving::paced::LinkSpan;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Most request ids listed in one event's args.
const MAX_IDS: usize = 64;

fn thread_of(s: &Span) -> u32 {
    match s.state {
        GpuState::Compute => s.gpu * 2,
        _ => s.gpu * 2 + 1,
    }
}

/// The process id of the shared-links tracks (after every node's).
const LINKS_PID: u32 = 1 << 30;

/// Writes the spans (and the transfers on shared links, with their links' names) as a
/// trace file.
pub fn write_trace(
    path: &Path,
    spans: &[Span],
    batch_requests: &BTreeMap<u64, Vec<u64>>,
    plan: &Plan,
    links: &[(String, LinkSpan)],
) -> Result<()> {
    let err = |e: std::io::Error| Error::io(path, e);
    let mut f = AtomicFile::create(path)?;
    let mut sorted: Vec<&Span> = spans.iter().filter(|s| s.state != GpuState::Idle && s.end > s.start).collect();
    sorted.sort_by_key(|s| (thread_of(s), s.start, s.end));
    writeln!(f, "{{\"displayTimeUnit\":\"ns\",\"traceEvents\":[").map_err(err)?;
    let mut first = true;
    let mut emit = |f: &mut AtomicFile, v: serde_json::Value| -> std::io::Result<()> {
        if !first {
            writeln!(f, ",")?;
        }
        first = false;
        write!(f, "{v}")
    };
    let gpus: Vec<u32> = {
        let mut g: Vec<u32> = sorted.iter().map(|s| s.gpu).collect();
        g.dedup();
        g
    };
    let mut nodes: Vec<u32> = gpus.iter().map(|g| plan.node_of(*g)).collect();
    nodes.dedup();
    for n in &nodes {
        emit(&mut f, json!({"name": "process_name", "ph": "M", "pid": n, "args": {"name": format!("node {n}")}}))
            .map_err(err)?;
    }
    for g in &gpus {
        let pid = plan.node_of(*g);
        let role = match plan.rank_of(*g) {
            Some(r) => format!(" (replica {} stage {} ep {} tp {})", r.replica, r.stage, r.ep_rank, r.tp_rank),
            None => String::new(),
        };
        for (tid, stream) in [(g * 2, "compute"), (g * 2 + 1, "comm")] {
            emit(
                &mut f,
                json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"name": format!("GPU {g} {stream}{role}")}}),
            )
            .map_err(err)?;
        }
    }
    for s in sorted {
        let name = match s.state {
            GpuState::Wait => format!("wait: {}", s.what.name()),
            _ => s.what.name().to_string(),
        };
        let mut args = serde_json::Map::new();
        args.insert("batch".into(), json!(s.batch));
        match s.state {
            GpuState::Compute => {
                args.insert("flops".into(), json!(s.flops));
            }
            GpuState::Communicate => {
                args.insert("bytes".into(), json!(s.bytes));
            }
            _ => {}
        }
        if let Some(ids) = batch_requests.get(&s.batch) {
            args.insert("requests".into(), json!(ids.len()));
            args.insert("request_ids".into(), json!(&ids[..ids.len().min(MAX_IDS)]));
        }
        let ts = s.start.as_ns() as f64 / 1e3;
        let dur = (s.end.as_ns() - s.start.as_ns()) as f64 / 1e3;
        emit(
            &mut f,
            json!({"name": name, "cat": s.state.name(), "ph": "X", "ts": ts, "dur": dur,
                   "pid": plan.node_of(s.gpu), "tid": thread_of(s), "args": args}),
        )
        .map_err(err)?;
    }
    link_tracks(links, &mut |v| emit(&mut f, v)).map_err(err)?;
    writeln!(f, "\n]}}").map_err(err)?;
    f.commit()
}

/// Most lanes one link's track is split into (transfers overlapping deeper share the last).
const MAX_LANES: u32 = 16;

/// The shared links' process: per link, lanes of non-overlapping transfers (sharing
/// means transfers on one link overlap, and one trace thread must not), each lane a
/// named thread, one event per transfer.
fn link_tracks(
    links: &[(String, LinkSpan)],
    emit: &mut dyn FnMut(serde_json::Value) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    emit(json!({"name": "process_name", "ph": "M", "pid": LINKS_PID, "args": {"name": "shared links"}}))?;
    let mut sorted: Vec<&(String, LinkSpan)> = links.iter().collect();
    sorted.sort_by_key(|(_, s)| (s.link, s.start, s.end));
    // Per link, the end of each lane's last transfer.
    let mut lanes: BTreeMap<u32, Vec<crate::engine::SimTime>> = BTreeMap::new();
    let mut events = Vec::with_capacity(sorted.len());
    for (name, s) in sorted {
        let ends = lanes.entry(s.link).or_default();
        let lane = match ends.iter().position(|e| *e <= s.start) {
            Some(l) => l,
            None if (ends.len() as u32) < MAX_LANES => {
                ends.push(s.start);
                let lane = ends.len() - 1;
                let tid = s.link * MAX_LANES + lane as u32;
                let label = if lane == 0 { name.clone() } else { format!("{name} ({})", lane + 1) };
                emit(json!({"name": "thread_name", "ph": "M", "pid": LINKS_PID, "tid": tid, "args": {"name": label}}))?;
                lane
            }
            None => ends.len() - 1,
        };
        ends[lane] = ends[lane].max(s.end);
        events.push((s.link * MAX_LANES + lane as u32, s));
    }
    // Per thread in start order (each lane's transfers were placed in start order).
    events.sort_by_key(|(tid, s)| (*tid, s.start));
    for (tid, s) in events {
        let us = |t: crate::engine::SimTime| t.as_ns() as f64 / 1e3;
        let lost_us = us(s.end) - us(s.alone_end);
        let mut args = json!({"bytes": s.bytes, "lost_to_sharing_us": lost_us});
        let name = if s.handoff {
            "KV handoff".to_string()
        } else {
            args["batch"] = json!(s.batch);
            format!("batch {}", s.batch)
        };
        emit(json!({"name": name, "cat": "link", "ph": "X", "ts": us(s.start),
                    "dur": us(s.end) - us(s.start), "pid": LINKS_PID, "tid": tid, "args": args}))?;
    }
    Ok(())
}
