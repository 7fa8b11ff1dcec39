//! Expert load in summary.json (issue 11): the per-step figures of an MoE run worked
//! out by hand, and their absence for a dense model (so dense summaries keep their
//! bytes).

use clustersim::scenario::Setup;
use clustersim::serving::{simulate, RunOptions};
use std::path::Path;

fn setup(text: &str) -> Setup {
    let path = Path::new("test.toml");
    let scenario = clustersim::scenario::parse(text, path, &[]).unwrap_or_else(|e| panic!("parse: {e}\n{text}"));
    clustersim::scenario::validate(&scenario, path).unwrap_or_else(|e| panic!("validate: {e}\n{text}"))
}

fn scenario(model: &str, dtype: &str) -> String {
    format!(
        r#"
[scenario]
name = "expert-load"
seed = 3
[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 1
[model]
preset = "{model}"
dtype = "{dtype}"
[workload]
requests = 1
arrival = {{ process = "all_at_once" }}
prompt_tokens = {{ dist = "fixed", value = 1 }}
output_tokens = {{ dist = "fixed", value = 3 }}
"#
    )
}

#[test]
fn one_token_steps_of_mixtral_by_hand() {
    // One request of a 1-token prompt and 3 output tokens: the prefill step emits the
    // first token and two decode steps the others (the last token needs no forward
    // pass), so 3 iterations of one token each through Mixtral's 32 MoE layers: 96
    // layer steps. Each step routes one token to 2 distinct experts of 8: the busiest
    // expert has 1 token, the mean is 2 / 8 = 0.25, imbalance 1 / 0.25 = 4. Over the
    // run 192 choices; the hottest expert takes at least 192 / 8 = 24 of them and,
    // one token picking it at most once per layer step, at most 96.
    let out = simulate(&setup(&scenario("mixtral-8x7b", "fp8")), RunOptions::default()).expect("run");
    let sum = &out.report.summary;
    assert_eq!(sum.sim.iterations, 3);
    let e = sum.expert_load.as_ref().expect("MoE runs report expert load");
    assert_eq!(e.experts, 8);
    assert_eq!(e.layer_steps, 96);
    assert_eq!(e.mean_tokens_per_expert_per_step, 0.25);
    assert_eq!(e.max_tokens_per_expert_per_step, 1.0);
    assert_eq!(e.imbalance, 4.0);
    assert!(e.hottest_expert_share >= 24.0 / 192.0 && e.hottest_expert_share <= 96.0 / 192.0, "{e:?}");
    let json = serde_json::to_string(sum).expect("json");
    assert!(json.contains("\"expert_load\":{\"experts\":8,\"layer_steps\":96,"), "{json}");
}

#[test]
fn dense_summaries_have_no_expert_load() {
    let out = simulate(&setup(&scenario("llama-3-8b", "bf16")), RunOptions::default()).expect("run");
    assert_eq!(out.report.summary.expert_load, None);
    let json = serde_json::to_string(&out.report.summary).expect("json");
    assert!(!json.contains("expert_load"), "{json}");
}
