//! Proptest strategies that build fuzz cases: a seed scenario (shipped files and
//! the test scenario), a list of mutations of its keys taken from the schema in
//! src/scenario/types.rs, and optionally a mutated trace cut from a shipped one.

use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Kinds of value a schema key holds, so mutations try both sensible and hostile values.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// f64 rates, sizes, latencies, fractions.
    Real,
    /// u32 counts.
    Count,
    /// u64 counts.
    Big,
    /// bool.
    Flag,
    /// A string choice.
    Word(&'static [&'static str]),
}

/// Every scalar key of the schema (src/scenario/types.rs) with its kind.
pub const KEYS: &[(&str, Kind)] = &[
    ("scenario.seed", Kind::Big),
    ("hardware.gpu", Kind::Word(&["h100-sxm", "a100-sxm-80g", "seed-400tf", "h200-sxm", "b200", "z100"])),
    ("hardware.nodes", Kind::Count),
    ("hardware.gpus_per_node", Kind::Count),
    ("hardware.gpu_spec.peak_tflops", Kind::Real),
    ("hardware.gpu_spec.peak_fp8_tflops", Kind::Real),
    ("hardware.gpu_spec.compute_efficiency", Kind::Real),
    ("hardware.gpu_spec.gemm_efficiency_short", Kind::Real),
    ("hardware.gpu_spec.gemm_efficiency_long", Kind::Real),
    ("hardware.gpu_spec.gemm_boost_window_us", Kind::Real),
    ("hardware.gpu_spec.memory_gib", Kind::Real),
    ("hardware.gpu_spec.memory_bandwidth_tb_s", Kind::Real),
    ("hardware.gpu_spec.memory_efficiency", Kind::Real),
    ("hardware.gpu_spec.launch_overhead_us", Kind::Real),
    ("hardware.nvlink.bandwidth_gb_s", Kind::Real),
    ("hardware.nvlink.efficiency", Kind::Real),
    ("hardware.nvlink.latency_us", Kind::Real),
    ("hardware.nvlink.bandwidth_scale", Kind::Real),
    ("hardware.network.nic_bandwidth_gb_s", Kind::Real),
    ("hardware.network.efficiency", Kind::Real),
    ("hardware.network.nics_per_node", Kind::Count),
    ("hardware.network.latency_us", Kind::Real),
    ("hardware.network.topology", Kind::Word(&["rail_optimized", "fat_tree", "torus"])),
    ("hardware.network.oversubscription", Kind::Real),
    ("hardware.network.bandwidth_scale", Kind::Real),
    (
        "model.preset",
        Kind::Word(&[
            "llama-3-8b",
            "llama-2-70b",
            "mixtral-8x7b",
            "seed-moe",
            "deepseek-v3",
            "qwen3-235b-a22b",
            "gpt-9",
        ]),
    ),
    ("model.dtype", Kind::Word(&["bf16", "fp8", "fp16", "int3"])),
    ("model.layers", Kind::Count),
    ("model.hidden", Kind::Count),
    ("model.heads", Kind::Count),
    ("model.kv_heads", Kind::Count),
    ("model.head_dim", Kind::Count),
    ("model.ffn", Kind::Count),
    ("model.gated_mlp", Kind::Flag),
    ("model.experts", Kind::Count),
    ("model.top_k", Kind::Count),
    ("model.shared_experts", Kind::Count),
    ("model.expert_ffn", Kind::Count),
    ("model.dense_layers", Kind::Count),
    ("model.vocab", Kind::Count),
    ("model.mla.q_lora_rank", Kind::Count),
    ("model.mla.kv_lora_rank", Kind::Count),
    ("model.mla.qk_nope_head_dim", Kind::Count),
    ("model.mla.qk_rope_head_dim", Kind::Count),
    ("model.mla.v_head_dim", Kind::Count),
    ("model.sliding_window.window_tokens", Kind::Count),
    ("model.sliding_window.full_every", Kind::Count),
    ("model.mtp_layers", Kind::Count),
    ("model.speculative.draft_tokens", Kind::Count),
    ("model.speculative.acceptance_rate", Kind::Real),
    ("parallel.dp", Kind::Count),
    ("parallel.pp", Kind::Count),
    ("parallel.tp", Kind::Count),
    ("parallel.ep", Kind::Count),
    ("parallel.all_reduce", Kind::Word(&["auto", "ring", "halving_doubling", "hierarchical", "tree"])),
    ("parallel.overlap_comm", Kind::Flag),
    ("parallel.collective_overhead_us", Kind::Real),
    ("serving.max_batch_tokens", Kind::Count),
    ("serving.max_seqs", Kind::Count),
    ("serving.framework", Kind::Word(&["optimized", "vllm-2023", "vllm", "sglang", "trtllm", "x"])),
    ("serving.chunked_prefill", Kind::Flag),
    ("serving.chunk_tokens", Kind::Count),
    ("serving.kv_block_tokens", Kind::Count),
    ("serving.gpu_memory_utilization", Kind::Real),
    ("serving.router", Kind::Word(&["round_robin", "random", "least_outstanding", "cache_aware", "sticky"])),
    ("serving.max_inflight_batches", Kind::Count),
    ("serving.prefix_caching", Kind::Flag),
    ("serving.prefix_block_tokens", Kind::Count),
    ("serving.kv_offload.host_memory_gib", Kind::Real),
    ("serving.kv_offload.pcie_bandwidth_gb_s", Kind::Real),
    ("disaggregation.kv_transfer", Kind::Word(&["layerwise", "whole", "rdma"])),
    ("disaggregation.router", Kind::Word(&["round_robin", "least_loaded", "kv_aware", "random"])),
    ("pools.0.replicas", Kind::Count),
    ("pools.1.replicas", Kind::Count),
    ("pools.0.nodes", Kind::Count),
    ("pools.1.gpu", Kind::Word(&["h100-sxm", "a100-80g", "h200-sxm", "z100"])),
    ("pools.1.parallel.tp", Kind::Count),
    ("pools.0.role", Kind::Word(&["prefill", "decode", "mixed", "both"])),
    ("workload.requests", Kind::Big),
    ("workload.time_scale", Kind::Real),
    ("workload.limit", Kind::Big),
    ("workload.trace_format", Kind::Word(&["azure", "csv", "mooncake", "parquet"])),
    ("workload.system_prompt_tokens", Kind::Count),
    ("workload.sessions.think_time_s", Kind::Real),
];

/// One change to a scenario document.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Set a dotted key to a TOML value text.
    Set(String, String),
    /// Remove a dotted key.
    Remove(String),
}

/// A whole fuzz case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Index into [`seeds`].
    pub seed: usize,
    /// Changes to the scenario.
    pub mutations: Vec<Mutation>,
    /// A trace to write beside the scenario (and point `workload.trace` at), if any.
    pub trace: Option<TraceCase>,
    /// Byte-level damage to the scenario text: (position per mille, replacement).
    pub text_damage: Option<(u16, String)>,
    /// A Hugging Face config.json to write beside the scenario and point `model.hf_config` at.
    pub hf: Option<HfCase>,
    /// Which command to run: 0..=5 run --no-plots, 6 run with plots, 7 assess, 8 dag, 9 validate.
    pub command: u8,
}

/// A trace cut from a shipped one and damaged.
#[derive(Clone, Debug)]
pub struct TraceCase {
    /// Index into [`trace_seeds`].
    pub seed: usize,
    /// Rows kept from the top.
    pub rows: usize,
    /// Line edits: (line per mille, what to do).
    pub edits: Vec<(u16, LineEdit)>,
}

/// A config.json copied from a test one (tests/data/hf/) and damaged.
#[derive(Clone, Debug)]
pub struct HfCase {
    /// Index into [`hf_seeds`].
    pub seed: usize,
    /// Field edits: (index into [`HF_FIELDS`], new JSON value text, or None to remove it).
    pub edits: Vec<(usize, Option<String>)>,
}

/// The config.json fields clustersim reads (src/model/hf_config.rs).
pub const HF_FIELDS: &[&str] = &[
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "n_routed_experts",
    "num_local_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "n_shared_experts",
    "shared_expert_intermediate_size",
    "first_k_dense_replace",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "num_nextn_predict_layers",
    "sliding_window",
    "use_sliding_window",
    "layer_types",
    "sliding_window_pattern",
    "quantization_config",
    "torch_dtype",
    "text_config",
];

/// Seed config.json files: every test one.
pub fn hf_seeds() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf");
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path().join("config.json"))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn hf_case(n_seeds: usize) -> impl Strategy<Value = HfCase> {
    let value = prop::sample::select(vec![
        "0",
        "1",
        "-1",
        "2",
        "7",
        "64",
        "4096",
        "1.5",
        "4294967296",
        "1e300",
        "null",
        "true",
        "\"x\"",
        "\"bf16\"",
        "\"float8\"",
        "[]",
        "[\"full_attention\", \"sliding_attention\"]",
        "[1, 2]",
        "{}",
        "{ \"quant_method\": \"fp8\" }",
        "{ \"quant_method\": \"awq\" }",
    ]);
    let edit = (0..HF_FIELDS.len(), prop::option::weighted(0.8, value.prop_map(str::to_string)));
    (0..n_seeds, prop::collection::vec(edit, 0..4)).prop_map(|(seed, edits)| HfCase { seed, edits })
}

/// What to do to one trace line.
#[derive(Clone, Debug)]
pub enum LineEdit {
    /// Replace one comma-separated field (or JSON value) with this text.
    Field(usize, String),
    /// Insert raw bytes at the start of the line.
    Bytes(Vec<u8>),
    /// Delete the line.
    Delete,
    /// Swap with the next line (time going backwards).
    Swap,
}

/// Seed scenarios: the shipped ones and the test scenario. The 128-GPU wide-EP
/// scenario is left out: each of its iterations prices 64 EP groups over 61 layers, so
/// a mutation with long outputs cannot finish within a case's time bound on 2 cores
/// (it is run whole by README's figures and its own shape is covered by the others).
pub fn seeds() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| !p.ends_with("deepseek_v3_wide_ep.toml"))
        .collect();
    v.sort();
    v.push(root.join("tests/data/scenarios/tiny.toml"));
    v
}

/// Seed traces: the shipped ones and the good test traces.
pub fn trace_seeds() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<PathBuf> =
        ["AzureLLMInferenceTrace_conv.csv", "AzureLLMInferenceTrace_code.csv", "mooncake_conversation_sample.jsonl"]
            .iter()
            .map(|n| root.join("scenarios/traces").join(n))
            .collect();
    v.push(root.join("tests/data/traces/good_plain.csv"));
    v
}

fn real() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0.0", "-1.0", "1e-300", "1e-12", "1e-3", "0.01", "0.5", "0.9", "1.0", "1.5", "2.0", "10.0",
            "100.0", "1e3", "1e5", "1e15", "1e300", "nan", "inf", "-inf", "\"x\"",
        ]).prop_map(str::to_string),
        2 => (-3.0f64..6.0).prop_map(|e| format!("{:e}", 10f64.powf(e))),
    ]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0", "1", "2", "3", "4", "7", "8", "16", "64", "128", "4096", "65536", "4294967295", "-1",
            "4294967296", "1.5", "\"two\"",
        ]).prop_map(str::to_string),
        2 => (1u32..300).prop_map(|v| v.to_string()),
    ]
}

fn big() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "0",
        "1",
        "2",
        "5",
        "40",
        "100",
        "300",
        "9223372036854775807",
        "18446744073709551615",
        "-1",
        "1e3",
    ])
    .prop_map(str::to_string)
}

fn value(kind: Kind) -> BoxedStrategy<String> {
    match kind {
        Kind::Real => real().boxed(),
        Kind::Count => count().boxed(),
        Kind::Big => big().boxed(),
        Kind::Flag => prop::sample::select(vec!["true", "false", "1"]).prop_map(str::to_string).boxed(),
        Kind::Word(w) => prop::sample::select(w.to_vec()).prop_map(|s| format!("{s:?}")).boxed(),
    }
}

fn length_dist() -> impl Strategy<Value = String> {
    let n = || prop_oneof![3 => 1u32..4096, 1 => Just(0u32), 1 => Just(u32::MAX), 1 => 4096u32..50_000];
    prop_oneof![
        n().prop_map(|v| format!("{{ dist = \"fixed\", value = {v} }}")),
        (n(), n()).prop_map(|(a, b)| format!("{{ dist = \"uniform\", min = {a}, max = {b} }}")),
        (real(), real(), n(), n())
            .prop_map(|(m, s, a, b)| format!("{{ dist = \"normal\", mean = {m}, std = {s}, min = {a}, max = {b} }}")),
        (real(), real(), n())
            .prop_map(|(m, s, b)| format!("{{ dist = \"lognormal\", median = {m}, sigma = {s}, max = {b} }}")),
        (real(), n(), n()).prop_map(|(s, a, b)| format!("{{ dist = \"zipf\", s = {s}, min = {a}, max = {b} }}")),
    ]
}

fn arrival() -> impl Strategy<Value = String> {
    prop_oneof![
        real().prop_map(|r| format!("{{ process = \"poisson\", rate_per_s = {r} }}")),
        (real(), real()).prop_map(|(r, c)| format!("{{ process = \"gamma\", rate_per_s = {r}, cv = {c} }}")),
        real().prop_map(|r| format!("{{ process = \"constant\", rate_per_s = {r} }}")),
        Just("{ process = \"all_at_once\" }".to_string()),
        count().prop_map(|c| format!("{{ process = \"closed_loop\", concurrency = {c} }}")),
    ]
}

fn event() -> impl Strategy<Value = String> {
    let t = || prop_oneof![3 => (0.0f64..5.0).prop_map(|v| format!("{v:.3}")), 1 => real()];
    prop_oneof![
        (t(), count(), real())
            .prop_map(|(a, g, f)| format!("{{ kind = \"gpu_slowdown\", at_s = {a}, gpu = {g}, fraction = {f} }}")),
        (t(), count()).prop_map(|(a, g)| format!("{{ kind = \"gpu_failure\", at_s = {a}, gpu = {g} }}")),
        (t(), t(), count())
            .prop_map(|(a, u, g)| format!("{{ kind = \"gpu_failure\", at_s = {a}, until_s = {u}, gpu = {g} }}")),
        (t(), real())
            .prop_map(|(a, f)| format!("{{ kind = \"link_slowdown\", at_s = {a}, link = \"nic\", fraction = {f} }}")),
        (t(), real()).prop_map(|(a, f)| format!("{{ kind = \"load_change\", at_s = {a}, factor = {f} }}")),
    ]
}

fn pool() -> impl Strategy<Value = String> {
    let role = prop_oneof![4 => Just("prefill"), 4 => Just("decode"), 1 => Just("mixed"), 1 => Just("both")];
    let small = || prop_oneof![4 => (1u32..4).prop_map(|v| v.to_string()), 1 => count()];
    let extra = prop_oneof![
        4 => Just(String::new()),
        1 => small().prop_map(|n| format!(", nodes = {n}")),
        1 => small().prop_map(|t| format!(", parallel = {{ tp = {t} }}")),
        1 => prop::sample::select(vec!["h100-sxm", "a100-80g", "h200-sxm", "z100"]).prop_map(|g| format!(", gpu = {g:?}")),
    ];
    (role, small(), extra).prop_map(|(r, n, e)| format!("{{ role = {r:?}, replicas = {n}{e} }}"))
}

/// Whole sections of the new serving features (issue 12), set together so a case can
/// reach a pooled, prefix-cached, multi-turn or speculative run and not only refusals.
fn feature() -> impl Strategy<Value = Vec<Mutation>> {
    let set = |k: &str, v: String| Mutation::Set(k.to_string(), v);
    let pools = prop_oneof![
        4 => (pool(), pool()).prop_map(|(a, b)| format!("[{a}, {b}]")),
        1 => prop::collection::vec(pool(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => Just("[{ role = \"prefill\", replicas = 1 }, { role = \"decode\" }]".to_string()),
    ];
    let disagg = (
        prop::sample::select(vec!["layerwise", "whole", "x"]),
        prop::sample::select(vec!["round_robin", "least_loaded", "kv_aware", "x"]),
    )
        .prop_map(|(t, r)| format!("{{ kv_transfer = {t:?}, router = {r:?} }}"));
    let sessions = (length_dist(), length_dist(), real())
        .prop_map(|(t, f, s)| format!("{{ turns = {t}, follow_up_tokens = {f}, think_time_s = {s} }}"));
    let spec = (count(), real()).prop_map(|(d, a)| format!("{{ draft_tokens = {d}, acceptance_rate = {a} }}"));
    let mla = (count(), count(), count()).prop_map(|(r, n, v)| {
        format!("{{ kv_lora_rank = {r}, qk_nope_head_dim = {n}, qk_rope_head_dim = 64, v_head_dim = {v} }}")
    });
    let window = (count(), count()).prop_map(|(w, f)| format!("{{ window_tokens = {w}, full_every = {f} }}"));
    let offload = (real(), real()).prop_map(|(h, b)| format!("{{ host_memory_gib = {h}, pcie_bandwidth_gb_s = {b} }}"));
    prop_oneof![
        3 => (pools, prop::option::of(disagg), 1u32..5).prop_map(move |(p, d, nodes)| {
            // A pooled run takes its instances from `replicas` and its routing from
            // [disaggregation]: clear what the seed sets that pools refuse.
            let clear = ["parallel.dp", "serving.router", "events"].map(|k| Mutation::Remove(k.to_string()));
            // Each pool takes whole nodes: most seeds have one, so give the pools a few.
            let mut v: Vec<Mutation> = clear.into_iter().chain([set("pools", p)]).collect();
            v.push(set("hardware.nodes", nodes.to_string()));
            v.extend(d.map(|d| set("disaggregation", d)));
            v
        }),
        3 => (prop::option::of(offload), prop::option::of(count()), any::<bool>()).prop_map(move |(o, sys, router)| {
            let mut v = vec![set("serving.prefix_caching", "true".into())];
            v.extend(o.map(|o| set("serving.kv_offload", o)));
            v.extend(sys.map(|n| set("workload.system_prompt_tokens", n)));
            v.extend(router.then(|| set("serving.router", "\"cache_aware\"".into())));
            v
        }),
        2 => (sessions, any::<bool>()).prop_map(move |(s, cache)| {
            let mut v = vec![set("workload.sessions", s)];
            v.extend(cache.then(|| set("serving.prefix_caching", "true".into())));
            v
        }),
        2 => (spec, prop::option::of(count())).prop_map(move |(s, m)| {
            let mut v = vec![set("model.speculative", s)];
            v.extend(m.map(|m| set("model.mtp_layers", m)));
            v
        }),
        1 => mla.prop_map(move |m| vec![set("model.mla", m)]),
        1 => window.prop_map(move |w| vec![set("model.sliding_window", w)]),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let keyed = prop::sample::select(KEYS.to_vec())
        .prop_flat_map(|(k, kind)| value(kind).prop_map(move |v| Mutation::Set(k.to_string(), v)));
    prop_oneof![
        8 => keyed,
        1 => prop::sample::select(KEYS.to_vec()).prop_map(|(k, _)| Mutation::Remove(k.to_string())),
        2 => length_dist().prop_map(|v| Mutation::Set("workload.prompt_tokens".into(), v)),
        2 => length_dist().prop_map(|v| Mutation::Set("workload.output_tokens".into(), v)),
        2 => arrival().prop_map(|v| Mutation::Set("workload.arrival".into(), v)),
        2 => prop::collection::vec(event(), 1..3).prop_map(|e| Mutation::Set("events".into(), format!("[{}]", e.join(", ")))),
        1 => Just(Mutation::Set("parallel.expert_routing".into(), "{ dist = \"zipf\", s = 1.2 }".into())),
        1 => Just(Mutation::Set("colour".into(), "1".into())),
    ]
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        3 => (0usize..3, prop::sample::select(vec!["0", "-1", "1e9", "4294967296", "x", "", "1.5", "nan", "99999999999"]))
            .prop_map(|(i, v)| LineEdit::Field(i, v.to_string())),
        1 => prop::sample::select(vec![vec![0xffu8], vec![0u8, 1, 2], vec![0xc3u8], b"\x7fELF".to_vec(), b"{".to_vec()])
            .prop_map(LineEdit::Bytes),
        1 => Just(LineEdit::Delete),
        1 => Just(LineEdit::Swap),
    ]
}

fn trace_case() -> impl Strategy<Value = TraceCase> {
    (0usize..4, 0usize..60, prop::collection::vec((0u16..1000, line_edit()), 0..3))
        .prop_map(|(seed, rows, edits)| TraceCase { seed, rows, edits })
}

/// The strategy of whole cases.
pub fn case(n_seeds: usize, n_hf: usize) -> impl Strategy<Value = Case> {
    let damage = prop_oneof![
        20 => Just(None),
        1 => (0u16..1000, prop::sample::select(vec!["", "\u{0}", "[", "= =", "\"", "\u{fffd}", "\n[scenario]\n"]))
            .prop_map(|(p, s)| Some((p, s.to_string()))),
    ];
    (
        0..n_seeds,
        prop::option::weighted(0.6, feature()),
        prop_oneof![2 => prop::collection::vec(mutation(), 0..2), 1 => prop::collection::vec(mutation(), 0..5)],
        prop_oneof![4 => Just(None), 1 => trace_case().prop_map(Some)],
        prop_oneof![5 => Just(None), 1 => hf_case(n_hf).prop_map(Some)],
        damage,
        0u8..10,
    )
        .prop_map(|(seed, feature, more, trace, hf, text_damage, command)| {
            // The feature's sections first, so the random mutations may then damage them.
            let mutations = feature.unwrap_or_default().into_iter().chain(more).collect();
            Case { seed, mutations, trace, hf, text_damage, command }
        })
}
