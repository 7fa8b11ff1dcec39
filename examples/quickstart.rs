//! Using clustersim as a library: describe a deployment in TOML, simulate it, read
//! the measured figures, and check them against what physics allows.
//!
//! `cargo run --release --example quickstart`

use clustersim::scenario::{parse, validate};
use clustersim::serving::{simulate, RunOptions};
use std::path::Path;

const SCENARIO: &str = r#"
[scenario]
name = "quickstart"
seed = 7

[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 8

[model]
preset = "llama-3-8b"

[parallel]
dp = 4
tp = 2

[workload]
requests = 400
arrival = { process = "poisson", rate_per_s = 20.0 }
prompt_tokens = { dist = "uniform", min = 256, max = 2048 }
output_tokens = { dist = "fixed", value = 128 }
"#;

fn main() -> Result<(), clustersim::Error> {
    let scenario = parse(SCENARIO, Path::new("quickstart.toml"), &[])?;
    let setup = validate(&scenario, Path::new("quickstart.toml"))?;
    let outcome = simulate(&setup, RunOptions::default())?;
    let s = &outcome.report.summary;
    println!("{}", clustersim::output::table::summary_table(s));

    // Every request that arrived finished, and 400 x 128 output tokens came out.
    assert_eq!(s.requests.completed, 400);
    let produced = s.throughput.output_tokens_per_s * s.throughput.window_s;
    assert!((produced - 51_200.0).abs() < 1.0, "output tokens {produced}");
    // No GPU computes for longer than the run lasted, and MFU stays under the GEMM ceiling.
    assert!(s.gpu.utilization_max <= 1.0);
    assert!(s.gpu.mfu <= setup.gpu.max_compute_efficiency());
    // The four GPU states add up to simulated time on every GPU.
    for g in outcome.report.gpus.iter().filter(|g| g.replica >= 0) {
        let sum = g.compute_s + g.communicate_s + g.wait_s + g.idle_s;
        assert!((sum - s.sim.simulated_s).abs() < 1e-6, "GPU {}: {sum} vs {}", g.gpu, s.sim.simulated_s);
    }
    println!("quickstart: all checks passed");
    Ok(())
}
