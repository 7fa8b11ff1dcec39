//! The scenario file's schema, exactly as written in TOML.
//!
//! Every table rejects unknown keys. Optional keys have documented defaults;
//! values are checked for sense by [`super::validate()`], not here.

use crate::hardware::spec::FabricTopology;
use crate::model::spec::Dtype;
pub use crate::parallel::collective::AllReduceAlgorithm;
pub use crate::workload::config::{ArrivalConfig, LengthDist, TraceFormat, WorkloadConfig};
use serde::{Deserialize, Serialize};

/// A whole scenario file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name and seed.
    pub scenario: ScenarioMeta,
    /// GPUs, nodes, links.
    pub hardware: HardwareConfig,
    /// The model served.
    pub model: ModelConfig,
    /// The parallel plan (all degrees default to 1).
    #[serde(default)]
    pub parallel: ParallelConfig,
    /// Batching limits and software stack.
    #[serde(default)]
    pub serving: ServingConfig,
    /// The request stream.
    pub workload: WorkloadConfig,
    /// Targets for `clustersim assess` (optional).
    #[serde(default)]
    pub requirements: Option<Requirements>,
    /// What-if events during the run.
    #[serde(default)]
    pub events: Vec<WhatIfEvent>,
    /// Overrides of the GPU's list price and power model (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub economics: Option<crate::hardware::economics::EconomicsConfig>,
    /// The search space of `clustersim plan` (optional; ignored by other commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<super::search::SearchConfig>,
    /// Pools of prefill / decode / mixed instances (optional; without them the run is
    /// co-located: every replica prefills and decodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<super::pools::PoolConfig>,
    /// KV handoff and routing of a pooled run (optional; only with `[[pools]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaggregation: Option<super::pools::DisaggConfig>,
}

/// `[scenario]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioMeta {
    /// Used for the default results folder `results/<name>/`.
    pub name: String,
    /// The one seed every random stream derives from.
    pub seed: u64,
    /// Free text shown in reports.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[hardware]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareConfig {
    /// GPU preset name; `gpu_spec` may override single fields or, without a preset, give all.
    #[serde(default)]
    pub gpu: Option<String>,
    /// Per-field GPU overrides.
    #[serde(default)]
    pub gpu_spec: Option<GpuSpecConfig>,
    /// Number of nodes.
    pub nodes: u32,
    /// GPUs per node (default 8).
    #[serde(default = "default_gpus_per_node")]
    pub gpus_per_node: u32,
    /// NVLink overrides (default: the GPU preset's node).
    #[serde(default)]
    pub nvlink: Option<NvlinkConfig>,
    /// Network overrides (default: the GPU preset's node).
    #[serde(default)]
    pub network: Option<NetworkConfig>,
}

fn default_gpus_per_node() -> u32 {
    8
}

/// `[hardware.gpu_spec]`: every field optional, overriding the preset.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpecConfig {
    /// Dense BF16 peak, TFLOP/s.
    pub peak_tflops: Option<f64>,
    /// Dense FP8 peak, TFLOP/s (default: same as `peak_tflops`).
    pub peak_fp8_tflops: Option<f64>,
    /// Achievable fraction of peak for non-GEMM compute (attention), (0, 1]; given
    /// alone, also the GEMM rate at every kernel length (short = long).
    pub compute_efficiency: Option<f64>,
    /// GEMM fraction of peak at the boost clock, (0, 1] (default: `compute_efficiency`).
    pub gemm_efficiency_short: Option<f64>,
    /// GEMM fraction of peak once power-capped, (0, `gemm_efficiency_short`]
    /// (default: `gemm_efficiency_short`).
    pub gemm_efficiency_long: Option<f64>,
    /// How long a GEMM holds the boost clock, µs (default: the preset's, 0 for custom).
    pub gemm_boost_window_us: Option<f64>,
    /// HBM capacity, GiB.
    pub memory_gib: Option<f64>,
    /// HBM bandwidth, TB/s.
    pub memory_bandwidth_tb_s: Option<f64>,
    /// Achievable fraction of HBM bandwidth, (0, 1].
    pub memory_efficiency: Option<f64>,
    /// Per-kernel launch overhead, µs.
    pub launch_overhead_us: Option<f64>,
}

/// `[hardware.nvlink]`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvlinkConfig {
    /// Per GPU, per direction, GB/s.
    pub bandwidth_gb_s: Option<f64>,
    /// Achievable fraction, (0, 1].
    pub efficiency: Option<f64>,
    /// Per-step latency, µs.
    pub latency_us: Option<f64>,
    /// What-if multiplier on bandwidth (default 1).
    pub bandwidth_scale: Option<f64>,
}

/// `[hardware.network]`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Per NIC, per direction, GB/s.
    pub nic_bandwidth_gb_s: Option<f64>,
    /// Achievable fraction, (0, 1].
    pub efficiency: Option<f64>,
    /// NICs per node (default one per GPU).
    pub nics_per_node: Option<u32>,
    /// Per-step latency, µs.
    pub latency_us: Option<f64>,
    /// `rail_optimized` (default) or `fat_tree`.
    pub topology: Option<FabricTopology>,
    /// Spine oversubscription ratio, >= 1 (default 1).
    pub oversubscription: Option<f64>,
    /// What-if multiplier on NIC bandwidth (default 1).
    pub bandwidth_scale: Option<f64>,
}

/// `[model]`: a preset or a Hugging Face config.json, optionally with fields
/// overridden, or every field given.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Preset name.
    pub preset: Option<String>,
    /// A Hugging Face `config.json` to read the model from (relative to the scenario
    /// file's folder); not together with `preset`.
    pub hf_config: Option<String>,
    /// Element type (default bf16).
    pub dtype: Option<Dtype>,
    /// Transformer layers.
    pub layers: Option<u32>,
    /// Hidden size.
    pub hidden: Option<u32>,
    /// Query heads.
    pub heads: Option<u32>,
    /// Key/value heads (default = heads).
    pub kv_heads: Option<u32>,
    /// Head dimension (default hidden / heads).
    pub head_dim: Option<u32>,
    /// Dense FFN size.
    pub ffn: Option<u32>,
    /// Gated (SwiGLU) MLP (default true).
    pub gated_mlp: Option<bool>,
    /// Routed experts (default 0: dense).
    pub experts: Option<u32>,
    /// Experts per token.
    pub top_k: Option<u32>,
    /// Shared experts (default 0).
    pub shared_experts: Option<u32>,
    /// Expert FFN size (default = ffn).
    pub expert_ffn: Option<u32>,
    /// Leading dense layers in an MoE model (default 0).
    pub dense_layers: Option<u32>,
    /// Vocabulary size.
    pub vocab: Option<u32>,
    /// `[model.mla]`: multi-head latent attention widths (`q_lora_rank` optional).
    pub mla: Option<crate::model::mla::Mla>,
    /// `[model.sliding_window]`: `window_tokens`, and `full_every` (default 0: every
    /// layer windowed).
    pub sliding_window: Option<crate::model::window::SlidingWindow>,
    /// Multi-token-prediction modules the model ships (the draft of speculative decoding).
    pub mtp_layers: Option<u32>,
    /// `[model.speculative]`: `draft_tokens` (0: off) and `acceptance_rate` (default: off).
    pub speculative: Option<crate::model::speculative::Speculative>,
}

/// `[parallel]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelConfig {
    /// Data-parallel replicas, each an independent serving instance.
    #[serde(default = "one")]
    pub dp: u32,
    /// Pipeline stages per replica.
    #[serde(default = "one")]
    pub pp: u32,
    /// Tensor-parallel ranks per stage.
    #[serde(default = "one")]
    pub tp: u32,
    /// Expert-parallel groups per stage (each stage has tp x ep GPUs).
    #[serde(default = "one")]
    pub ep: u32,
    /// How tokens pick experts (default uniform).
    #[serde(default)]
    pub expert_routing: ExpertRouting,
    /// All-reduce algorithm (default `auto`: ring in a node, hierarchical across nodes).
    #[serde(default)]
    pub all_reduce: AllReduceAlgorithm,
    /// Overlap communication with computation where the workload allows (default false).
    #[serde(default)]
    pub overlap_comm: bool,
    /// Fixed launch overhead added to every collective, µs (default 0).
    #[serde(default)]
    pub collective_overhead_us: f64,
}

fn one() -> u32 {
    1
}

impl Default for ParallelConfig {
    fn default() -> Self {
        ParallelConfig {
            dp: 1,
            pp: 1,
            tp: 1,
            ep: 1,
            expert_routing: ExpertRouting::default(),
            all_reduce: AllReduceAlgorithm::default(),
            overlap_comm: false,
            collective_overhead_us: 0.0,
        }
    }
}

/// Distribution of expert choices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExpertRouting {
    /// Every expert equally likely.
    #[default]
    Uniform,
    /// Expert of popularity rank r chosen with weight 1/r^s.
    Zipf {
        /// Skew exponent, > 0.
        s: f64,
    },
}

/// `[serving]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// Most tokens (prefill + decode) in one iteration (default 8192).
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: u32,
    /// Most sequences in one iteration (default 256).
    #[serde(default = "default_max_seqs")]
    pub max_seqs: u32,
    /// Engine profile: a shipped name (`optimized`, the default; `trtllm`, `vllm`,
    /// `sglang`, `vllm-2023`) or a profile TOML file relative to the scenario.
    #[serde(default = "default_framework")]
    pub framework: String,
    /// Split long prompts into chunks mixed with decodes (default: the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunked_prefill: Option<bool>,
    /// Admission policy, `preempt` or `no_evict` (default: the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<crate::model::framework::Admission>,
    /// Prefill chunk size in tokens (default = max_batch_tokens).
    #[serde(default)]
    pub chunk_tokens: Option<u32>,
    /// Tokens per paged-KV block (default 16).
    #[serde(default = "default_block_tokens")]
    pub kv_block_tokens: u32,
    /// Fraction of GPU memory the server may use for weights + KV + workspace (default 0.9).
    #[serde(default = "default_mem_util")]
    pub gpu_memory_utilization: f64,
    /// How requests are spread over DP replicas (default round_robin).
    #[serde(default)]
    pub router: RouterKind,
    /// Batches in flight through the pipeline (default = pp).
    #[serde(default)]
    pub max_inflight_batches: Option<u32>,
    /// Reuse cached KV of shared prompt prefixes (default false; see `serving::prefix`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix_caching: bool,
    /// Tokens per prefix-cache hash block (default 512 on a Mooncake trace, else kv_block_tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_block_tokens: Option<u32>,
    /// `[serving.kv_offload]`: host-memory tier for evicted prefix blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_offload: Option<KvOffloadConfig>,
}

fn default_max_batch_tokens() -> u32 {
    8192
}
fn default_max_seqs() -> u32 {
    256
}
fn default_framework() -> String {
    "optimized".to_string()
}
fn default_block_tokens() -> u32 {
    16
}
fn default_mem_util() -> f64 {
    0.9
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            max_batch_tokens: default_max_batch_tokens(),
            max_seqs: default_max_seqs(),
            framework: default_framework(),
            chunked_prefill: None,
            admission: None,
            chunk_tokens: None,
            kv_block_tokens: default_block_tokens(),
            gpu_memory_utilization: default_mem_util(),
            router: RouterKind::default(),
            max_inflight_batches: None,
            prefix_caching: false,
            prefix_block_tokens: None,
            kv_offload: None,
        }
    }
}

/// Request routing across replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// Replicas in turn.
    #[default]
    RoundRobin,
    /// Uniformly at random (seeded).
    Random,
    /// The replica with the fewest outstanding tokens (prompt + output not yet produced).
    LeastOutstanding,
    /// The replica where the request's cached prefix and the load balance best
    /// (needs prefix caching; see `serving::router`).
    CacheAware,
}

/// `[requirements]`: targets for `clustersim assess`; each optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Minimum total (prompt + output) tokens per ms per GPU.
    pub throughput_tokens_per_ms_per_gpu: Option<f64>,
    /// Maximum median TTFT, s.
    pub ttft_p50_s: Option<f64>,
    /// Maximum p99 TTFT, s.
    pub ttft_p99_s: Option<f64>,
    /// Maximum p99 TPOT, s.
    pub tpot_p99_s: Option<f64>,
    /// Maximum peak memory as a fraction of capacity.
    pub memory_fraction_max: Option<f64>,
    /// Maximum (communicating + waiting) / busy fraction.
    pub overhead_fraction_max: Option<f64>,
    /// Maximum coefficient of variation of per-GPU busy time.
    pub load_imbalance_cv_max: Option<f64>,
    /// Minimum mean GPU compute utilization.
    pub gpu_utilization_min: Option<f64>,
    /// Maximum GPUs used.
    pub gpus_max: Option<u32>,
}

/// `[[events]]`: what-if changes during a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WhatIfEvent {
    /// A link class (or one node's NICs) runs at `fraction` of its bandwidth.
    LinkSlowdown {
        /// Start, s.
        at_s: f64,
        /// End, s (default: end of run).
        until_s: Option<f64>,
        /// `nvlink` or `nic`.
        link: LinkClass,
        /// Only this node (default: all nodes).
        node: Option<u32>,
        /// Remaining bandwidth fraction, (0, 1].
        fraction: f64,
    },
    /// A link fails: NIC `index` of `node` (link = "nic"), or the NVLink of GPU `index`
    /// of `node` (link = "nvlink"). Routes are fixed (no PXN or multipath), so traffic
    /// that crosses it cannot be re-routed: every replica whose collectives cross it
    /// stalls, is drained, and its requests go to the others until the link is repaired.
    LinkFailure {
        /// When, s.
        at_s: f64,
        /// Repaired at, s (default: never).
        until_s: Option<f64>,
        /// `nvlink` or `nic`.
        link: LinkClass,
        /// Node.
        node: u32,
        /// NIC index within the node, or GPU index within the node for NVLink.
        index: u32,
    },
    /// One GPU computes at `fraction` of its speed (a straggler).
    GpuSlowdown {
        /// Start, s.
        at_s: f64,
        /// End, s (default: end of run).
        until_s: Option<f64>,
        /// Global GPU index.
        gpu: u32,
        /// Remaining speed fraction, (0, 1].
        fraction: f64,
    },
    /// A GPU fails: its replica is drained and its requests re-routed.
    GpuFailure {
        /// When, s.
        at_s: f64,
        /// Repaired at, s (default: never).
        until_s: Option<f64>,
        /// Global GPU index.
        gpu: u32,
    },
    /// The arrival rate is multiplied by `factor`.
    LoadChange {
        /// Start, s.
        at_s: f64,
        /// End, s (default: end of run).
        until_s: Option<f64>,
        /// Rate multiplier, > 0.
        factor: f64,
    },
}

/// Link classes a what-if can slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkClass {
    /// NVLink inside nodes.
    Nvlink,
    /// NICs into the network.
    Nic,
}

/// `[serving.kv_offload]`: a host-memory tier for KV blocks evicted from HBM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvOffloadConfig {
    /// Host memory per replica for evicted prefix blocks, GiB.
    pub host_memory_gib: f64,
    /// Host-to-GPU bandwidth per GPU, GB/s (default: PCIe Gen5 x16, 63.0).
    #[serde(default)]
    pub pcie_bandwidth_gb_s: Option<f64>,
}
