//! `summary.json`: the figures of one run, every one measured from the events that ran.
//!
//! Field names are the keys users and tools read; keep them stable. Times in
//! seconds, memory in GiB (2^30 bytes), fractions in [0, 1].

use serde::{Deserialize, Serialize};

/// Mean, percentiles and maximum of a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// Number of values.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// Request counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests that produced all their output tokens.
    pub completed: u64,
    /// Preemptions (a request may be preempted more than once).
    pub preempted: u64,
    /// Requests re-routed after a GPU failure.
    pub rerouted: u64,
    /// Requests that could not be served (e.g. longer than the KV cache), with why.
    pub dropped: u64,
    /// Why requests were dropped, if any were.
    pub dropped_reasons: Vec<String>,
}

/// Token throughput over the measurement window (first arrival to last completion).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Window length, s.
    pub window_s: f64,
    /// Output tokens per second, whole cluster.
    pub output_tokens_per_s: f64,
    /// Prompt + output tokens per second, whole cluster.
    pub total_tokens_per_s: f64,
    /// Prompt + output tokens per millisecond per GPU (the unit deployment plans quote).
    pub tokens_per_ms_per_gpu: f64,
    /// Output tokens per millisecond per GPU.
    pub output_tokens_per_ms_per_gpu: f64,
}

/// GPU utilization.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSummary {
    /// GPUs the plan uses.
    pub count: u32,
    /// Mean compute-busy fraction of wall time.
    pub utilization_mean: f64,
    /// Lowest per-GPU compute-busy fraction.
    pub utilization_min: f64,
    /// Highest per-GPU compute-busy fraction.
    pub utilization_max: f64,
    /// Model FLOPs done / (GPUs x peak x time).
    pub mfu: f64,
}

/// Memory per GPU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySummary {
    /// GPU capacity, GiB.
    pub capacity_gib: f64,
    /// Largest weight shard, GiB.
    pub weights_gib_per_gpu: f64,
    /// KV cache reserved per GPU, GiB.
    pub kv_gib_per_gpu: f64,
    /// Peak KV cache actually used on the fullest GPU, GiB.
    pub kv_peak_used_gib: f64,
    /// Activation workspace, GiB.
    pub activations_gib_per_gpu: f64,
    /// Peak (weights + used KV + activations) / capacity, worst GPU.
    pub peak_fraction_max: f64,
}

/// Communication and synchronization overhead of one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindOverhead {
    /// Exposed communication / busy time (busy = computing + communicating + waiting).
    pub communication_fraction: f64,
    /// Synchronization wait / busy time.
    pub wait_fraction: f64,
    /// Sum of the two.
    pub fraction: f64,
}

/// Overhead split by parallelism kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OverheadByKind {
    /// Tensor parallel all-reduces.
    pub tp: KindOverhead,
    /// Pipeline send/recv.
    pub pp: KindOverhead,
    /// Expert parallel all-to-alls.
    pub ep: KindOverhead,
    /// Data parallel (replicas are independent in serving: zero unless modelled).
    pub dp: KindOverhead,
}

/// Cluster-wide overhead.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// (communicating + waiting) / (computing + communicating + waiting), all GPUs.
    pub fraction: f64,
    /// Exposed communication part.
    pub communication_fraction: f64,
    /// Synchronization wait part.
    pub wait_fraction: f64,
    /// By kind.
    pub by_kind: OverheadByKind,
}

/// Pipeline figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// (waiting + idle) share of stage time inside batches' pipeline spans.
    pub bubble_fraction: f64,
}

/// Load imbalance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadImbalance {
    /// Coefficient of variation of per-GPU compute-busy time.
    pub cv: f64,
    /// Coefficient of variation of tokens per expert (0 for dense models).
    pub expert_cv: f64,
}

/// Engine figures (deterministic ones only; wall-clock goes to run_info.json).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SimFigures {
    /// Events popped from the queue.
    pub events: u64,
    /// Stage iterations executed.
    pub iterations: u64,
    /// Simulated time at the end, s.
    pub simulated_s: f64,
}

/// Everything in summary.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Scenario seed.
    pub seed: u64,
    /// Request counts.
    pub requests: RequestCounts,
    /// Time to first token, s.
    pub ttft_s: Dist,
    /// Time per output token after the first, s.
    pub tpot_s: Dist,
    /// Inter-token latency, s.
    pub itl_s: Dist,
    /// End-to-end latency, s.
    pub e2e_s: Dist,
    /// Arrival to first scheduling, s.
    pub queue_s: Dist,
    /// Throughput.
    pub throughput: Throughput,
    /// GPU utilization.
    pub gpu: GpuSummary,
    /// Memory.
    pub memory: MemorySummary,
    /// Overhead.
    pub overhead: Overhead,
    /// Pipeline.
    pub pipeline: Pipeline,
    /// Load imbalance.
    pub load_imbalance: LoadImbalance,
    /// Tokens per expert per step (MoE models only; absent for dense ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_load: Option<super::experts::ExpertLoadSummary>,
    /// Engine figures.
    pub sim: SimFigures,
    /// Cost and energy at the GPU's list price and power model (0 where unknown).
    #[serde(default)]
    pub cost: crate::hardware::economics::CostSummary,
    /// Link traffic, utilization and contention.
    #[serde(default)]
    pub network: super::network::NetworkSummary,
    /// Prefix caching: hit rates, TTFT with and without a hit, tiers (only when on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache: Option<super::prefix::PrefixCacheSummary>,
    /// Pools and KV handoffs of a disaggregated run (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaggregation: Option<super::pools::DisaggSummary>,
}
