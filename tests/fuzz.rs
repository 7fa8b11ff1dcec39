//! Fuzzing the binary with generated and mutated scenarios and traces (issue 14).
//!
//! Each case starts from a shipped scenario (or the test scenario), changes a few
//! keys of the schema to sensible or hostile values, sometimes replays a trace cut
//! from a shipped one and damaged, sometimes damages the TOML text, and runs one
//! command (`run`, `assess`, `dag`, `validate`) with a wall-clock limit. Cases also
//! set whole sections of the serving features of issue 12 (`[[pools]]` and
//! `[disaggregation]`, prefix caching with `[serving.kv_offload]` and
//! `system_prompt_tokens`, `[workload.sessions]`, speculative decoding / MTP, MLA,
//! sliding windows) and point `model.hf_config` at a damaged copy of a test
//! config.json (fields removed or given odd types). Every case
//! must end in time with exit 0 and sane figures (finite, non-negative, fractions
//! in [0, 1], completed + dropped = arrived) or exit 2 with a message: never a
//! panic, hang, abort or nonsense.
//!
//! `CLUSTERSIM_FUZZ_CASES` (default 300) sets the number of cases,
//! `CLUSTERSIM_FUZZ_SEED` the generator seed, `CLUSTERSIM_FUZZ_TIMEOUT_S` the limit
//! per case (default 30 s), `CLUSTERSIM_FUZZ_JOBS` the parallel cases (default 2),
//! `CLUSTERSIM_FUZZ_BIN` a copy of the binary to run instead of the one cargo built,
//! `CLUSTERSIM_FUZZ_REFUSALS=1` lists each refused case's error line.
//! Failing cases are kept under `target/fuzz-failures/case-N/` with the command.
//! A lost request (completed + dropped != arrived) fails the test: none was seen in
//! 9,000 cases after the serving rework; `CLUSTERSIM_FUZZ_STRICT=0` only lists them.

mod fuzz_support;

use fuzz_support::case::{self, Outcome};
use fuzz_support::gen;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One finished case: index, outcome, command line, stderr.
type Finished = (usize, Outcome, Vec<String>, String);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn fuzz_scenarios_and_traces() {
    let cases_n = env_num("CLUSTERSIM_FUZZ_CASES", 300) as usize;
    let seed = env_num("CLUSTERSIM_FUZZ_SEED", 14);
    let limit = Duration::from_secs(env_num("CLUSTERSIM_FUZZ_TIMEOUT_S", 30));
    let jobs = env_num("CLUSTERSIM_FUZZ_JOBS", 2).max(1) as usize;
    let strict = std::env::var("CLUSTERSIM_FUZZ_STRICT").map_or(true, |v| v != "0");
    let seeds = gen::seeds();
    let traces = gen::trace_seeds();
    let hfs = gen::hf_seeds();
    // Deterministic generation: the same seed gives the same cases on every machine.
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let n_seeds = seeds.len();
    let n_hf = hfs.len();
    // The strategy nests deeply (a case of optional sections of distributions): built
    // and drawn on a thread with a large stack, as an unoptimized build overflows 2 MiB.
    let cases: Vec<gen::Case> = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let mut runner = TestRunner::new_with_rng(Config::default(), rng);
            let strategy = gen::case(n_seeds, n_hf);
            (0..cases_n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
        })
        .unwrap()
        .join()
        .unwrap();

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Finished>> = Mutex::new(Vec::new());
    let keep = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                let dir = tempfile::tempdir().unwrap();
                let scenario = case::materialize(c, &seeds, &traces, &hfs, dir.path());
                let out = dir.path().join("out");
                let args = case::args(c, &scenario, &out);
                let (outcome, err) = case::run(&args, &out, limit);
                if outcome != Outcome::Ok && outcome != Outcome::Refused {
                    let k = keep.join(format!("case-{i}"));
                    let _ = std::fs::create_dir_all(&k);
                    for f in ["scenario.toml", "trace.csv", "trace.jsonl", "config.json"] {
                        let _ = std::fs::copy(dir.path().join(f), k.join(f));
                    }
                    let _ = std::fs::write(k.join("what.txt"), format!("{outcome:?}\n{args:?}\n{c:#?}\n{err}"));
                }
                results.lock().unwrap().push((i, outcome, args, err));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    let count = |f: &dyn Fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.1)).count();
    let ok = count(&|o| *o == Outcome::Ok);
    let refused = count(&|o| *o == Outcome::Refused);
    let lost: Vec<_> = results.iter().filter(|r| matches!(r.1, Outcome::Lost(_))).collect();
    let bad: Vec<_> = results.iter().filter(|r| matches!(r.1, Outcome::Bad(_))).collect();
    eprintln!(
        "fuzz: {} cases in {:.1} s: {ok} ok, {refused} refused (exit 2), {} lost requests, {} bad",
        results.len(),
        started.elapsed().as_secs_f64(),
        lost.len(),
        bad.len()
    );
    if std::env::var("CLUSTERSIM_FUZZ_REFUSALS").is_ok_and(|v| v == "1") {
        // What the refusals say, to see which surface the cases reach beyond the checks.
        for (i, _, _, err) in results.iter().filter(|r| r.1 == Outcome::Refused) {
            eprintln!("  refused {i}: {}", err.lines().find(|l| l.contains("error:")).unwrap_or(""));
        }
    }
    for (i, o, args, err) in lost.iter().chain(bad.iter()) {
        let first = err.lines().find(|l| l.contains("panicked") || l.contains("error")).unwrap_or("");
        eprintln!("  case {i}: {o:?}: {} | {first}", args.join(" "));
    }
    assert!(bad.is_empty(), "{} fuzz cases failed; see target/fuzz-failures/", bad.len());
    assert!(!strict || lost.is_empty(), "{} cases lost requests", lost.len());
}
