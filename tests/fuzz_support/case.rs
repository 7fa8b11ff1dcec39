//! Turning a generated [`Case`] into files, running the binary on them with a
//! wall-clock limit, and judging the outcome.

use super::gen::{Case, HfCase, LineEdit, Mutation, TraceCase, HF_FIELDS};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use toml_edit::{DocumentMut, Item, Table, Value};

/// Requests a seed keeps (its own count is cut to this) so each case runs in well under a second.
const SEED_REQUESTS: i64 = 60;

/// How a case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Exit 0 with sane figures.
    Ok,
    /// Exit 2 with an error message.
    Refused,
    /// Exit 0, but requests were lost (arrived != completed + dropped): a serving
    /// liveness problem, known and owned by the serving rework (issue 14 item 1).
    Lost(String),
    /// Anything else: a panic, a hang, an abort, a wrong exit code or nonsense figures.
    Bad(String),
}

/// Writes the case's scenario (and trace) into `dir`; returns the scenario path.
pub fn materialize(case: &Case, seeds: &[PathBuf], traces: &[PathBuf], hfs: &[PathBuf], dir: &Path) -> PathBuf {
    let seed = &seeds[case.seed];
    let text = std::fs::read_to_string(seed).unwrap();
    let mut doc: DocumentMut = text.parse().unwrap();
    let w = doc["workload"].as_table_like_mut().unwrap();
    if let Some(n) = w.get("requests").and_then(|v| v.as_integer()) {
        w.insert("requests", toml_edit::value(n.min(SEED_REQUESTS)));
    }
    if let Some(t) = w.get("trace").and_then(|v| v.as_str()).map(str::to_string) {
        // Trace paths are relative to the seed's folder: make them absolute.
        let abs = seed.parent().unwrap().join(t);
        w.insert("trace", toml_edit::value(abs.to_string_lossy().into_owned()));
        w.insert("limit", toml_edit::value(SEED_REQUESTS));
    }
    if let Some(tc) = &case.trace {
        let name = write_trace(tc, traces, dir);
        for k in ["requests", "arrival", "prompt_tokens", "output_tokens", "limit", "trace_format"] {
            w.remove(k);
        }
        w.insert("trace", toml_edit::value(name));
    }
    if let Some(hf) = &case.hf {
        write_hf(hf, hfs, dir);
        if let Some(m) = doc["model"].as_table_like_mut() {
            m.remove("preset");
            m.insert("hf_config", toml_edit::value("config.json"));
        }
    }
    for m in &case.mutations {
        match m {
            Mutation::Set(k, v) => set(&mut doc, k, v),
            Mutation::Remove(k) => remove(&mut doc, k),
        }
    }
    let mut bytes = doc.to_string().into_bytes();
    if let Some((at, s)) = &case.text_damage {
        let i = (bytes.len() * *at as usize / 1000).min(bytes.len());
        bytes.splice(i..i, s.bytes());
    }
    let p = dir.join("scenario.toml");
    std::fs::write(&p, bytes).unwrap();
    p
}

fn set(doc: &mut DocumentMut, key: &str, v: &str) {
    let parts: Vec<&str> = key.split('.').collect();
    let value = v.parse::<Value>().unwrap_or_else(|_| Value::from(v));
    let mut t: &mut Table = doc.as_table_mut();
    let mut i = 0;
    while i + 1 < parts.len() {
        let e = t.entry(parts[i]).or_insert(Item::Table(Table::new()));
        if let Item::Value(Value::InlineTable(it)) = e {
            *e = Item::Table(it.clone().into_table());
        }
        // `pools.1.replicas`: the second table of an array of tables (left alone if absent).
        if let Item::ArrayOfTables(a) = e {
            match parts[i + 1].parse::<usize>().ok().and_then(|n| a.get_mut(n)) {
                Some(sub) => t = sub,
                None => return,
            }
            i += 2;
            continue;
        }
        match e.as_table_mut() {
            Some(sub) => t = sub,
            None => return,
        }
        i += 1;
    }
    if i < parts.len() {
        t.insert(parts[i], Item::Value(value));
    }
}

fn remove(doc: &mut DocumentMut, key: &str) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut t: &mut Table = doc.as_table_mut();
    for p in &parts[..parts.len() - 1] {
        match t.get_mut(p).and_then(Item::as_table_mut) {
            Some(sub) => t = sub,
            None => return,
        }
    }
    t.remove(parts[parts.len() - 1]);
}

/// Writes the damaged config.json as `dir/config.json`.
fn write_hf(hf: &HfCase, hfs: &[PathBuf], dir: &Path) {
    let text = std::fs::read_to_string(&hfs[hf.seed]).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(o) = doc.as_object_mut() {
        for (f, v) in &hf.edits {
            match v {
                Some(v) => o.insert(HF_FIELDS[*f].into(), serde_json::from_str(v).unwrap_or(serde_json::Value::Null)),
                None => o.remove(HF_FIELDS[*f]),
            };
        }
    }
    std::fs::write(dir.join("config.json"), doc.to_string()).unwrap();
}

/// Writes the damaged trace; returns its file name.
fn write_trace(tc: &TraceCase, traces: &[PathBuf], dir: &Path) -> String {
    let src = &traces[tc.seed];
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines: Vec<Vec<u8>> = text.lines().take(tc.rows + 1).map(|l| l.as_bytes().to_vec()).collect();
    let json = src.extension().is_some_and(|e| e == "jsonl");
    for (at, edit) in &tc.edits {
        if lines.is_empty() {
            break;
        }
        let i = (lines.len() * *at as usize / 1000).min(lines.len() - 1);
        match edit {
            LineEdit::Field(f, v) => {
                let s = String::from_utf8_lossy(&lines[i]).into_owned();
                lines[i] = if json {
                    let key = ["timestamp", "input_length", "output_length"][*f];
                    let mut obj: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
                    if let Some(o) = obj.as_object_mut() {
                        o.insert(key.into(), serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.clone())));
                    }
                    obj.to_string().into_bytes()
                } else {
                    let mut cols: Vec<String> = s.split(',').map(str::to_string).collect();
                    let c = (*f).min(cols.len() - 1);
                    cols[c] = v.clone();
                    cols.join(",").into_bytes()
                };
            }
            LineEdit::Bytes(b) => lines[i].splice(0..0, b.iter().copied()).for_each(drop),
            LineEdit::Delete => {
                lines.remove(i);
            }
            LineEdit::Swap if i + 1 < lines.len() => lines.swap(i, i + 1),
            LineEdit::Swap => {}
        }
    }
    let name = if json { "trace.jsonl" } else { "trace.csv" };
    std::fs::write(dir.join(name), lines.join(&b"\n"[..])).unwrap();
    name.to_string()
}

/// The command line for the case.
pub fn args(case: &Case, scenario: &Path, out: &Path) -> Vec<String> {
    let s = scenario.to_string_lossy().into_owned();
    let o = out.to_string_lossy().into_owned();
    let v: Vec<&str> = match case.command {
        0..=5 => vec!["run", &s, "--out", &o, "--quiet", "--no-plots"],
        6 => vec!["run", &s, "--out", &o, "--quiet"],
        7 => vec!["assess", &s],
        8 => vec!["dag", &s, "--format", "json"],
        _ => vec!["validate", &s],
    };
    v.into_iter().map(str::to_string).collect()
}

/// Runs the binary with `args` and a wall-clock `limit`; judges the outcome.
pub fn run(args: &[String], out: &Path, limit: Duration) -> (Outcome, String) {
    // A long local run may point at a copy of the binary so rebuilding meanwhile is safe.
    let bin = std::env::var("CLUSTERSIM_FUZZ_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_clustersim").to_string());
    let mut child =
        Command::new(bin).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return (Outcome::Bad(format!("hang: still running after {:?}", limit)), err);
    };
    let outcome = match status.code() {
        _ if err.contains("panicked") => Outcome::Bad("panic".into()),
        None => Outcome::Bad(format!("killed by a signal: {status:?}")),
        Some(2) if err.contains("error:") => Outcome::Refused,
        Some(2) => Outcome::Bad("exit 2 without an error message".into()),
        Some(0) if args[0] == "run" => check_summary(out),
        Some(0) => Outcome::Ok,
        // assess exits 1 when a requirement is missed: that is an answer, not a failure.
        Some(1) if args[0] == "assess" && !err.contains("error:") => Outcome::Ok,
        Some(c) => Outcome::Bad(format!("exit {c}")),
    };
    (outcome, err)
}

/// Sanity of a finished run's summary.json.
fn check_summary(out: &Path) -> Outcome {
    let Ok(text) = std::fs::read_to_string(out.join("summary.json")) else {
        return Outcome::Bad("exit 0 without summary.json".into());
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Outcome::Bad("summary.json is not JSON".into());
    };
    let mut bad = Vec::new();
    walk(&v, "", &mut bad);
    if let Some(b) = bad.first() {
        return Outcome::Bad(format!("nonsense figure: {b}"));
    }
    let n = |k: &str| v["requests"][k].as_u64().unwrap_or(u64::MAX);
    let (arrived, completed, dropped) = (n("arrived"), n("completed"), n("dropped"));
    if completed.checked_add(dropped) != Some(arrived) {
        return Outcome::Lost(format!("{arrived} arrived, {completed} completed, {dropped} dropped"));
    }
    Outcome::Ok
}

/// Collects nulls (NaN/inf written by serde_json), negatives and fractions above 1.
fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
    match v {
        serde_json::Value::Null => bad.push(format!("{path} is null (NaN or infinite)")),
        serde_json::Value::Number(x) => {
            let x = x.as_f64().unwrap_or(f64::NAN);
            let fraction = ["utilization", "mfu", "fraction", "overhead."].iter().any(|k| path.contains(k));
            if !x.is_finite() || x < 0.0 {
                bad.push(format!("{path} = {x}"));
            } else if fraction && x > 1.0 + 1e-9 {
                bad.push(format!("{path} = {x}, a fraction above 1"));
            }
        }
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| walk(x, &format!("{path}.{k}"), bad)),
        serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), bad)),
        _ => {}
    }
}
