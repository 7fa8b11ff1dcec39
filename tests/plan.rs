//! `clustersim plan` end to end: the search finds the brute-force optimum of a
//! small space while simulating fewer plans; impossible requirements and bad
//! spaces get clear verdicts and exit codes; the winner runs as is.

mod common;
use clustersim::analysis::plan::{self, search::RunResult, space, Objective, PlanOptions};
use clustersim::scenario::load_setup;
use common::clustersim;
use std::path::{Path, PathBuf};

/// Llama-3-8B on 1-8 H100s: every DP/PP/TP split of at most 8 GPUs and 3 batch
/// limits (max_seqs 16, 64, 256). 400 requests at 100/s of 500-1500 prompt tokens
/// and 64 output tokens: about 100 x (1000 + 64) = 106 tokens/ms offered, so the
/// 20 tokens/ms/GPU requirement rules out plans of 6 or more GPUs (106 / 6 = 17.7),
/// and one GPU cannot keep TTFT p99 under 0.3 s at that load.
const SMALL: &str = r#"
[scenario]
name = "plan-small"
seed = 7

[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 8

[model]
preset = "llama-3-8b"

[workload]
requests = 400
arrival = { process = "poisson", rate_per_s = 100.0 }
prompt_tokens = { dist = "uniform", min = 500, max = 1500 }
output_tokens = { dist = "fixed", value = 64 }

[requirements]
throughput_tokens_per_ms_per_gpu = 20.0
ttft_p99_s = 0.3

[search]
max_gpus = 8
dp = [1, 2, 3, 4, 5, 6, 7, 8]
pp = [1, 2, 4, 8]
tp = [1, 2, 4, 8]
max_seqs = [16, 64, 256]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_corrected.toml")
}

#[test]
fn plan_finds_the_brute_force_optimum_with_fewer_simulations() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.toml", SMALL);
    let base = load_setup(&file, &[]).unwrap();
    let cfg = plan::search_config(&file, &[], None).unwrap();
    let cands = space::enumerate(&space::resolve(&cfg, &base).unwrap()).unwrap();
    // dp x pp x tp <= 8 with pp, tp in {1, 2, 4, 8}: (pp, tp) pairs with product 1, 2, 4, 8
    // number 1, 2, 3, 4, allowing dp <= 8, 4, 2, 1 respectively: 8 + 2x4 + 3x2 + 4x1 = 26
    // splits, x 3 batch limits = 78 plans.
    assert_eq!(cands.len(), 78);

    // Brute force: simulate every plan that validates and fits, to the end, no pruning.
    let mut best: Option<(u32, f64, usize)> = None;
    let mut brute_runs = 0;
    for (i, c) in cands.iter().enumerate() {
        let Ok(setup) = load_setup(&file, &c.overrides()) else { continue };
        let Ok(outcome) = clustersim::analysis::simulate_priced(&setup, Default::default()) else { continue };
        brute_runs += 1;
        let a = clustersim::analysis::assess::assess(&setup, &outcome.report.summary).unwrap();
        if a.passed() {
            // Fewest GPUs, then (one GPU type, so $/h follows GPUs) lowest TTFT p99, then index.
            let key = (c.gpus(), outcome.report.summary.ttft_s.p99, i);
            if best.is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                best = Some(key);
            }
        }
    }
    let best = best.expect("some plan of the small space passes");

    let opts = PlanOptions {
        objective: Objective::Gpus,
        jobs: 2,
        early_stop: true,
        exhaustive: false,
        space_file: None,
        shard: None,
    };
    let found = plan::search(&file, &[], &opts).unwrap();
    let w = found.winner.expect("plan finds a winner");
    assert_eq!(w, best.2, "plan's winner {} differs from the brute-force optimum", found.rows[w].candidate.label());
    let simulated = found.rows.iter().filter(|r| r.pruned.is_none() && r.result.is_some()).count();
    let to_end = found.rows.iter().filter(|r| matches!(r.result, Some(RunResult::Finished { .. }))).count();
    eprintln!(
        "brute force: {brute_runs} simulations; plan: {simulated} simulated ({to_end} to the end), {}",
        plan::report::counts_line(&found)
    );
    assert!(simulated < brute_runs, "pruning saved nothing: {simulated} vs {brute_runs}");
    // Load pruning alone drops every plan of 6, 7 or 8 GPUs (see SMALL).
    assert!(found.rows.iter().filter(|r| r.candidate.gpus() >= 6).all(|r| r.pruned.is_some()));
}

#[test]
fn the_seed_throughput_requirement_is_impossible() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (code, stdout, stderr) =
        clustersim(&["plan", seed().to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    // The seed's limit at 256 sequences per step is memory-bound: 12.41 tokens/ms/GPU
    // (the figure `assess` prints for the same mix and GPU).
    assert!(stdout.contains("no plan can meet throughput_tokens_per_ms_per_gpu >= 35"), "{stdout}");
    assert!(stdout.contains("highest physical limit of any plan is 12.41"), "{stdout}");
    assert!(stdout.contains("the best any simulated plan reached is"), "{stdout}");
    // Asked again with --force, the search replaces its own folder (it used to refuse
    // it as "not a clustersim results folder", exit 2).
    let (code, stdout, stderr) =
        clustersim(&["plan", seed().to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2", "--force"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
}

#[test]
fn bad_spaces_exit_2_and_unmeetable_requirements_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.toml", SMALL);
    let f = file.to_str().unwrap();
    let space = |name: &str, body: &str| write(dir.path(), name, &format!("[search]\n{body}\n"));
    let cases = [
        ("empty.toml", "tp = []", "search.tp: the list is empty"),
        ("gpu.toml", "gpus = [\"h900\"]", "unknown GPU preset `h900`"),
        ("zero.toml", "dp = [0, 1]", "search.dp: 0 is not allowed"),
        ("none.toml", "max_gpus = 2\ndp = [4]", "the search space has no plan"),
        ("key.toml", "tensor = [1]", "unknown field `tensor`"),
        ("tp3.toml", "tp = [3]", "every one is invalid; the first (h100-sxm dp1 pp1 tp3"),
    ];
    let (code, _, err) = clustersim(&["plan", f, "--space", "/nonexistent/space.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read the search space"), "{err}");
    for (name, body, want) in cases {
        let p = space(name, body);
        let (code, out, err) = clustersim(&["plan", f, "--space", p.to_str().unwrap(), "--out", "/nonexistent/x"]);
        assert_eq!(code, 2, "{name}: {out}\n{err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    // A TTFT bound nobody meets: exit 1 and the closest plan with its shortfall.
    let out = dir.path().join("o");
    let (code, stdout, err) = clustersim(&[
        "plan",
        f,
        "--set",
        "requirements.ttft_p99_s=0.001",
        "--out",
        out.to_str().unwrap(),
        "--space",
        space("few.toml", "max_gpus = 4\ndp = [1, 2]\npp = [1]\ntp = [1, 2]\nmax_seqs = [64]").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    assert!(stdout.contains("no plan meets ttft_p99_s; the closest is"), "{stdout}");
    assert!(stdout.contains("short by"), "{stdout}");
}

#[test]
fn the_winner_runs_as_is_and_reports_cost() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("o");
    let few = write(dir.path(), "few.toml", "[search]\nmax_gpus = 4\ndp = [1, 2, 3, 4]\npp = [1]\ntp = [1]\n");
    let (code, stdout, err) =
        clustersim(&["plan", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--space", few.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let run = dir.path().join("r");
    let winner = out.join("winner.toml");
    let (code, _, err) =
        clustersim(&["run", winner.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots", "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    // H100 at the cited list price of $12.29 per GPU-hour, times the plan's GPUs.
    let gpus = s["gpu"]["count"].as_f64().unwrap();
    assert!((s["cost"]["usd_per_hour"].as_f64().unwrap() - 12.29 * gpus).abs() < 1e-9);
    assert!(s["cost"]["joules_per_token"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(out.join("plan.csv")).unwrap().lines().count() == 5);
}

/// Runs one task of an array of `count` (ids from 0) with `--shard auto`.
fn task(args: &[&str], id: u64, count: u64) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .args(["--shard", "auto", "--jobs", "1"])
        .env("SLURM_ARRAY_TASK_ID", id.to_string())
        .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn shards_merge_into_the_exhaustive_single_machine_result() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.toml", SMALL);
    let space = write(dir.path(), "s.toml", "[search]\nmax_gpus = 4\ndp = [1, 2, 3, 4]\npp = [1, 2]\ntp = [1, 2]\n");
    let (f, sp) = (file.to_str().unwrap(), space.to_str().unwrap());
    let local = dir.path().join("local");
    let (code, out, err) =
        clustersim(&["plan", f, "--space", sp, "--exhaustive", "--jobs", "2", "--out", local.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let shards = dir.path().join("shards");
    let s = shards.to_str().unwrap();
    for id in 0..3 {
        let (code, out, err) = task(&["plan", f, "--space", sp, "--out", s], id, 3);
        assert_eq!(code, 0, "task {id}: {out}\n{err}");
    }
    let (code, out, err) = clustersim(&["merge", s]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("merged     3 shards"), "{out}");
    for name in ["plan.csv", "winner.toml"] {
        let a = std::fs::read(local.join(name)).unwrap();
        let b = std::fs::read(shards.join(name)).unwrap();
        assert!(a == b, "{name} of the merge differs from the single-machine one");
    }
    // A shard of another job (other objective) is refused.
    let other = dir.path().join("other");
    let o = other.to_str().unwrap();
    task(&["plan", f, "--space", sp, "--out", o, "--objective", "cost"], 0, 3);
    let stray = other.join("shard-1-of-3.json");
    let (code, _, err) = clustersim(&[
        "merge",
        stray.to_str().unwrap(),
        shards.join("shard-2-of-3.json").to_str().unwrap(),
        shards.join("shard-3-of-3.json").to_str().unwrap(),
        "--out",
        dir.path().join("m").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("different plans"), "{err}");
}

#[test]
fn a_node_failure_is_reported_over_time() {
    // Two replicas of one GPU each, on two nodes of one GPU: when node 0 fails, the
    // requests it holds go back to the router and are prefilled again on node 1.
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[scenario]
name = "two"
seed = 7
[hardware]
gpu = "h100-sxm"
nodes = 2
gpus_per_node = 1
[model]
preset = "llama-3-8b"
[parallel]
dp = 2
[workload]
requests = 200
arrival = { process = "poisson", rate_per_s = 40.0 }
prompt_tokens = { dist = "uniform", min = 500, max = 1500 }
output_tokens = { dist = "fixed", value = 64 }
[requirements]
ttft_p99_s = 0.5
"#;
    let file = write(dir.path(), "two.toml", text);
    let setup = load_setup(&file, &[]).unwrap();
    let v = plan::survive::survive(&setup).unwrap();
    // 200 requests at 40/s arrive over about 5 s; the peak is inside that span.
    assert!(v.failure_at_s > 0.0 && v.failure_at_s < 6.0, "{}", v.failure_at_s);
    assert_eq!(v.failed_gpus, [0]);
    assert!(v.rerouted > 0, "a failure at peak load finds requests in flight on node 0");
    assert_eq!(v.dropped, 0, "node 1 is alive: nothing is dropped");
    assert_eq!(v.ttft_p99_series.len(), plan::survive::BUCKETS);
    // The window is a whole number of buckets.
    let buckets = v.violation_window_s / v.bucket_s;
    assert!((buckets - buckets.round()).abs() < 1e-9);
    // Run where the chart's default folder (results/two-survive/) lands in the temp dir.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .current_dir(dir.path())
        .args(["assess", file.to_str().unwrap(), "--survive", "node"])
        .output()
        .unwrap();
    let (code, out, err) =
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(code, Some(if v.holds { 0 } else { 1 }), "{out}\n{err}");
    assert!(dir.path().join("results/two-survive/ttft_p99.svg").exists());
    assert!(out.contains(&format!("{} requests re-routed", v.rerouted)), "{out}");
}

#[test]
fn goodput_is_the_highest_rate_that_meets_the_latency_requirements() {
    // One and two H100 replicas; goodput by bisection on the Poisson rate between 0
    // and the rate R at the physical limit. After STEPS halvings, the rate found
    // passes and the rate one bracket width (R / 2^STEPS) above it fails.
    let dir = tempfile::tempdir().unwrap();
    let text = SMALL
        .replace("throughput_tokens_per_ms_per_gpu = 20.0\n", "")
        .replace("requests = 400", "requests = 200")
        .replace("rate_per_s = 100.0", "rate_per_s = 40.0")
        .replace("ttft_p99_s = 0.3", "ttft_p99_s = 0.5")
        .split("[search]")
        .next()
        .unwrap()
        .to_string()
        + "[search]\nmax_gpus = 2\ndp = [1, 2]\npp = [1]\ntp = [1]\nmax_seqs = [256]\ngoodput = true\n";
    let file = write(dir.path(), "g.toml", &text);
    let f = file.to_str().unwrap();
    let out = dir.path().join("o");
    let (code, stdout, err) = clustersim(&["plan", f, "--exhaustive", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let csv = std::fs::read_to_string(out.join("plan.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut checked = 0;
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let Ok(goodput) = cells[col("goodput_req_s")].parse::<f64>() else { continue };
        let gpus: f64 = cells[col("gpus")].parse().unwrap();
        let limit: f64 = cells[col("limit_tokens_per_ms_per_gpu")].parse().unwrap();
        // Mean prompt (500 + 1500) / 2 = 1000 plus 64 output tokens per request.
        let width = limit * gpus * 1e3 / 1064.0 / f64::from(1u32 << plan::goodput::STEPS);
        let assess = |rate: f64| {
            let dp = format!("parallel.dp={}", cells[col("dp")]);
            let r = format!("workload.arrival.rate_per_s={rate}");
            clustersim(&["assess", f, "--set", &dp, "--set", &r]).0
        };
        assert_eq!(assess(goodput), 0, "plan {}: {goodput} req/s should pass", cells[0]);
        assert_eq!(assess(goodput + width), 1, "plan {}: {} req/s should fail", cells[0], goodput + width);
        checked += 1;
    }
    assert_eq!(checked, 2, "both GPU counts have a goodput:\n{csv}");
}

#[test]
fn one_replica_plans_that_differ_only_in_router_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.toml", SMALL);
    let space = write(
        dir.path(),
        "r.toml",
        "[search]\nmax_gpus = 2\ndp = [1, 2]\npp = [1]\ntp = [1]\nmax_seqs = [64]\nrouter = [\"round_robin\", \"least_outstanding\", \"random\"]\n",
    );
    let opts = PlanOptions {
        objective: Objective::Gpus,
        jobs: 2,
        early_stop: true,
        exhaustive: true,
        space_file: Some(space),
        shard: None,
    };
    let found = plan::search(&file, &[], &opts).unwrap();
    // Order: dp 1 with the three routers (sorted as given), then dp 2 with the three.
    let same: Vec<usize> = found
        .rows
        .iter()
        .filter(|r| matches!(r.pruned, Some((plan::prune::PruneKind::Same, _))))
        .map(|r| r.index)
        .collect();
    assert_eq!(same, [1, 2], "dp 1: only the first router runs; dp 2: all three");
    // The pruning is sound: with one replica every router gives the same run.
    let summaries: Vec<String> = found.rows[..3]
        .iter()
        .map(|r| {
            let setup = load_setup(&file, &r.candidate.overrides()).unwrap();
            let s = clustersim::analysis::simulate_priced(&setup, Default::default()).unwrap().report.summary;
            serde_json::to_string(&s).unwrap()
        })
        .collect();
    assert!(summaries.iter().all(|s| *s == summaries[0]));
}

#[test]
fn cost_objective_needs_a_price_and_uses_an_override() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "small.toml", SMALL);
    let space = write(
        dir.path(),
        "h200.toml",
        "[search]\ngpus = [\"h200-sxm\"]\nmax_gpus = 4\ndp = [1, 2, 3, 4]\npp = [1]\ntp = [1]\n",
    );
    let (f, sp) = (file.to_str().unwrap(), space.to_str().unwrap());
    let out = dir.path().join("o");
    let (code, _, err) = clustersim(&["plan", f, "--space", sp, "--objective", "cost", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GPU `h200-sxm` has no cited price_per_gpu_hour"), "{err}");
    let (code, stdout, err) = clustersim(&[
        "plan",
        f,
        "--space",
        sp,
        "--objective",
        "cost",
        "--set",
        "economics.price_per_gpu_hour=3.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    // The winner's price is 3.5 x its GPUs.
    let csv = std::fs::read_to_string(out.join("plan.csv")).unwrap();
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let gpus: f64 = cells[2].parse().unwrap();
        assert_eq!(cells[12].parse::<f64>().unwrap(), 3.5 * gpus, "{line}");
    }
}
