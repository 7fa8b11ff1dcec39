//! Hardware descriptions: what a GPU, its NVLink and its network can do, and the presets.
//!
//! Units are in the names. GB and TB are decimal (10^9, 10^12 bytes); GiB is 2^30 bytes.
//! Preset figures come from vendor datasheets (see `shared/data/reference/hardware_specs.csv`
//! and `node_layouts.csv`); the achievable fractions come from published measurements,
//! cited beside each preset.

use serde::{Deserialize, Serialize};

/// One GPU: roofline parameters, memory and per-kernel overhead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuSpec {
    /// Preset or user-given name, for reports.
    pub name: String,
    /// Dense BF16/FP16 peak, TFLOP/s (10^12 FLOP/s).
    pub peak_tflops: f64,
    /// Dense FP8 peak, TFLOP/s; GPUs without FP8 run FP8 models at the BF16 rate.
    pub peak_fp8_tflops: f64,
    /// Fraction of peak that compute-bound kernels other than GEMMs (attention) sustain
    /// (0-1]; also the GEMM rate of presets without a boost window (short = long).
    pub compute_efficiency: f64,
    /// Fraction of peak a GEMM sustains while the GPU holds its boost clock, when its
    /// output tiles fill every wave of SMs (0-1]; partly filled waves cost more
    /// (`model::cost::wave_utilization`).
    pub gemm_efficiency_short: f64,
    /// Fraction of peak a GEMM sustains once the power cap has pulled the clock down
    /// (0-1], at most `gemm_efficiency_short`. See [`GpuSpec::gemm_compute_s`].
    pub gemm_efficiency_long: f64,
    /// How long, µs, a GEMM runs at the boost clock before the power cap lowers it to
    /// the sustained clock (>= 0; irrelevant when short = long).
    pub gemm_boost_window_us: f64,
    /// HBM capacity, GiB (2^30 bytes).
    pub memory_gib: f64,
    /// HBM bandwidth, TB/s (10^12 bytes/s).
    pub memory_bandwidth_tb_s: f64,
    /// Fraction of HBM bandwidth that streaming kernels sustain (0-1].
    pub memory_efficiency: f64,
    /// Fixed cost of launching one kernel, µs.
    pub launch_overhead_us: f64,
    /// Streaming multiprocessors: the slots GEMM output tiles are spread over (wave
    /// quantization, `model::cost`). Datasheet counts; 132 when not given.
    #[serde(default = "default_sm_count")]
    pub sm_count: u32,
}

/// SM count assumed when a GPU description gives none: H100 SXM's 132.
pub fn default_sm_count() -> u32 {
    132
}

impl GpuSpec {
    /// Sustained compute rate in FLOP/s for a datatype of `dtype_bytes` bytes.
    pub fn sustained_flops(&self, dtype_bytes: f64) -> f64 {
        self.peak_flops(dtype_bytes) * self.compute_efficiency
    }
    /// Dense peak in FLOP/s for a datatype of `dtype_bytes` bytes.
    pub fn peak_flops(&self, dtype_bytes: f64) -> f64 {
        let peak = if dtype_bytes <= 1.0 { self.peak_fp8_tflops } else { self.peak_tflops };
        peak * 1e12
    }
    /// The highest fraction of peak any kernel reaches: an upper bound on MFU.
    pub fn max_compute_efficiency(&self) -> f64 {
        self.compute_efficiency.max(self.gemm_efficiency_short).max(self.gemm_efficiency_long)
    }
    /// Seconds of the compute-bound part of a GEMM that would take `boost_s` seconds at
    /// the boost rate (`gemm_efficiency_short`): [`power_capped_s`] with this GPU's
    /// window and clock ratio.
    pub fn gemm_compute_s(&self, boost_s: f64) -> f64 {
        power_capped_s(boost_s, self.gemm_boost_window_us * 1e-6, self.gemm_power_slowdown())
    }
    /// `gemm_efficiency_short / gemm_efficiency_long` (at least 1): how much slower a
    /// GEMM runs past the boost window.
    pub fn gemm_power_slowdown(&self) -> f64 {
        (self.gemm_efficiency_short / self.gemm_efficiency_long).max(1.0)
    }
    /// Rate, FLOP/s, of a GEMM at the boost clock for a datatype of `dtype_bytes` bytes.
    pub fn gemm_boost_flops(&self, dtype_bytes: f64) -> f64 {
        self.peak_flops(dtype_bytes) * self.gemm_efficiency_short
    }
    /// Sustained HBM bandwidth in bytes/s.
    pub fn sustained_bytes_per_s(&self) -> f64 {
        self.memory_bandwidth_tb_s * 1e12 * self.memory_efficiency
    }
    /// Capacity in bytes.
    pub fn memory_bytes(&self) -> f64 {
        self.memory_gib * GIB
    }
}

/// Seconds of a compute-bound GEMM that would take `boost_s` seconds at the boost clock,
/// on a GPU that holds boost for `window_s` seconds and then runs `slowdown` times
/// slower (`gemm_efficiency_short / gemm_efficiency_long`).
///
/// Power capping: a dense tensor-core GEMM at boost clock draws more than an H100
/// SXM's 700 W cap. The power controller lets a kernel run at boost for about a
/// window, then holds the clock where power fits the cap. A kernel shorter than the
/// window runs entirely at boost; a longer one runs its first window at boost and the
/// rest at the sustained rate, so its average rate falls from the short-kernel rate
/// toward the long-kernel one as it lengthens (one time constant: the window).
/// Attention and memory-bound kernels are not charged this way.
pub fn power_capped_s(boost_s: f64, window_s: f64, slowdown: f64) -> f64 {
    if boost_s <= window_s {
        return boost_s;
    }
    window_s + (boost_s - window_s) * slowdown.max(1.0)
}

/// Bytes in a GiB.
pub const GIB: f64 = 1_073_741_824.0;
/// Bytes in a GB.
pub const GB: f64 = 1e9;

/// NVLink through NVSwitch inside a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NvlinkSpec {
    /// Per GPU, per direction, GB/s.
    pub bandwidth_gb_s: f64,
    /// Fraction of `bandwidth_gb_s` a long transfer sustains (protocol overhead).
    pub efficiency: f64,
    /// Per-step latency α of a collective step over NVLink, µs.
    pub latency_us: f64,
    /// NVLink SHARP (NVLS): the NVSwitch reduces and multicasts. When present, the
    /// rate per GPU and direction, GB/s, at which NVLS collectives move data through
    /// the switch (absent: no NVLS on this node).
    #[serde(default)]
    pub nvls_bandwidth_gb_s: Option<f64>,
}

/// How the NICs of all nodes are joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FabricTopology {
    /// NIC i of every node on leaf switch i (rail); rails joined by a spine.
    RailOptimized,
    /// Every node's NICs on one leaf per node; leaves joined by a spine.
    FatTree,
}

/// The scale-out network between nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Per NIC, per direction, GB/s (NDR 400 Gb/s = 50 GB/s).
    pub nic_bandwidth_gb_s: f64,
    /// Fraction of `nic_bandwidth_gb_s` a long transfer sustains.
    pub efficiency: f64,
    /// NICs per node (one per GPU on DGX nodes).
    pub nics_per_node: u32,
    /// Per-step latency α of a collective step across nodes, µs.
    pub latency_us: f64,
    /// How nodes are joined.
    pub topology: FabricTopology,
    /// Spine oversubscription: leaf downlink capacity / uplink capacity (1 = non-blocking).
    pub oversubscription: f64,
}

/// A named GPU preset with its source.
pub struct GpuPreset {
    /// Name used in scenarios (`hardware.gpu`).
    pub name: &'static str,
    /// Builds the spec.
    pub spec: fn() -> GpuSpec,
    /// Default NVLink for nodes of this GPU.
    pub nvlink: fn() -> NvlinkSpec,
    /// Default network for nodes of this GPU.
    pub network: fn() -> NetworkSpec,
    /// Where the figures come from.
    pub source: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn gpu(name: &str, peak: f64, fp8: f64, eff: f64, mem_gib: f64, bw: f64, mem_eff: f64, sms: u32) -> GpuSpec {
    GpuSpec {
        name: name.to_string(),
        peak_tflops: peak,
        peak_fp8_tflops: fp8,
        compute_efficiency: eff,
        gemm_efficiency_short: eff,
        gemm_efficiency_long: eff,
        gemm_boost_window_us: 0.0,
        memory_gib: mem_gib,
        memory_bandwidth_tb_s: bw,
        memory_efficiency: mem_eff,
        launch_overhead_us: 4.0,
        sm_count: sms,
    }
}

fn nvlink(bw: f64) -> NvlinkSpec {
    // 0.85: a 1 GiB ring all-reduce on DGX H100 reaches ~370 GB/s bus bandwidth
    // over a 450 GB/s link in nccl-tests (370/450 = 0.82; long messages do slightly better).
    NvlinkSpec { bandwidth_gb_s: bw, efficiency: 0.85, latency_us: 2.0, nvls_bandwidth_gb_s: None }
}

/// NVLink4 through third-generation NVSwitch, with NVLink SHARP.
fn nvlink4_nvls() -> NvlinkSpec {
    // NVLS all-reduce on 8 H100 reaches ~480 GB/s busbw at 1 GiB in nccl-tests (NCCL
    // >= 2.17 with NVLS, as quoted in issue 10; ring: ~370). An NVLS all-reduce moves
    // (1 + 1/g) S through each GPU's switch port per direction (S up for the reduce,
    // S/g back; S/g up for the multicast, S back), so busbw = 2(g-1)/g x S/t gives the
    // port rate 480 x (g+1) / (2(g-1)) = 480 x 9/14 = 308.6 GB/s at g = 8.
    NvlinkSpec { nvls_bandwidth_gb_s: Some(308.6), ..nvlink(450.0) }
}

fn ib(nic_gb_s: f64) -> NetworkSpec {
    // 0.95: nccl-tests reach 46-48 GB/s bus bandwidth per NDR 400 Gb/s (50 GB/s) NIC.
    NetworkSpec {
        nic_bandwidth_gb_s: nic_gb_s,
        efficiency: 0.95,
        nics_per_node: 8,
        latency_us: 5.0,
        topology: FabricTopology::RailOptimized,
        oversubscription: 1.0,
    }
}

/// Every GPU preset. Memory in GiB: the "80 GB" parts expose 80 GiB to CUDA.
pub const GPU_PRESETS: &[GpuPreset] = &[
    GpuPreset {
        name: "a100-80g",
        // 0.82: the full-wave GEMM rate that, with `model::cost`'s wave quantization,
        // puts Vidur's A100 Llama-3-8B GEMMs (QKV, out, up, down, TP 1-8, 512-4096
        // tokens: 200-240 TFLOP/s) at +4 % on average; that model fits these small
        // shapes on A100 less well (10 of 64 beyond 15 %, worst +33 %) than a plain
        // 0.74 did (3 of 64). Batch-1 gate/up GEMMs at
        // TP1 and TP4 (235 and 59 MB in 142 and 41 µs) give 1.74 TB/s (0.85 of 2.039)
        // plus a 7 µs intercept: the launch overhead. 108 SMs (A100 datasheet).
        // No A100 per-GEMM data in tests/data/calibration to fit a power-cap window on:
        // GEMMs run at 0.82 whatever their length (short = long).
        spec: || GpuSpec { launch_overhead_us: 7.0, ..gpu("a100-80g", 312.0, 312.0, 0.82, 80.0, 2.039, 0.85, 108) },
        nvlink: || nvlink(300.0),
        network: || ib(25.0),
        source: "NVIDIA A100 datasheet (312 TFLOP/s BF16 dense, 80 GB HBM2e 2.039 TB/s, NVLink3 600 GB/s bidir); DGX A100: 8x HDR 200 Gb/s NICs",
    },
    GpuPreset {
        name: "h100-sxm",
        // GEMMs: 0.825 of peak at the boost clock for their first 305 µs, 0.745 after
        // (`power_capped_s`: the 700 W cap pulls long tensor-core kernels from boost to
        // ~90 % of it). Fitted with the wave model (`model::cost`) to Vidur's 48 H100
        // Llama-2-70B GEMM medians (QKV, out, gate+up, down x TP 1-8 x 1/512/4096
        // tokens), which run at 0.58-0.92 of 989 TFLOP/s: all 48 within 15 % (worst
        // 14.7 %: the 269 µs down projection at 512 tokens on TP1 runs at 0.92 and the
        // 5.7 ms gate+up at 4096 tokens at 0.68). A single efficiency for all lengths
        // (0.805) left the TP1 down projection at 512 tokens at +17.5 %; a clock that
        // decays exponentially from boost (one time constant) fits no better than
        // 15.5 %: the data want full boost up to ~0.3 ms, then the sustained clock.
        // 0.805, that earlier single fit, stays the rate of attention.
        // Batch-1 GEMMs (16.8 MB to 940 MB) fit
        // 3.07 TB/s (0.92 of 3.35) plus a 4.5 µs intercept, the launch overhead (the
        // TP8 out projection streams 16.8 MB in 9.0 µs: the intercept is below 5 µs).
        // 132 SMs: H100 SXM5 datasheet.
        spec: || GpuSpec {
            launch_overhead_us: 4.5,
            gemm_efficiency_short: 0.825,
            gemm_efficiency_long: 0.745,
            gemm_boost_window_us: 305.0,
            ..gpu("h100-sxm", 989.0, 1979.0, 0.805, 80.0, 3.35, 0.92, 132)
        },
        nvlink: nvlink4_nvls,
        network: || ib(50.0),
        source: "NVIDIA H100 SXM datasheet (989 TFLOP/s BF16 dense, 1979 FP8, 80 GB HBM3 3.35 TB/s, NVLink4 900 GB/s bidir); DGX H100: 8x NDR 400 Gb/s NICs",
    },
    GpuPreset {
        name: "h200-sxm",
        // Same GH100 die as H100 SXM: 132 SMs.
        spec: || gpu("h200-sxm", 989.0, 1979.0, 0.80, 141.0 * GB / GIB, 4.8, 0.85, 132),
        nvlink: nvlink4_nvls,
        network: || ib(50.0),
        source: "NVIDIA H200 datasheet (989 TFLOP/s BF16 dense, 141 GB HBM3e 4.8 TB/s, NVLink4 900 GB/s bidir); DGX H200: 8x NDR 400 Gb/s NICs",
    },
    GpuPreset {
        name: "b200",
        // ~1745 of 2250 TFLOP/s measured for BF16 GEMM (78 %). 148 SMs (B200 datasheet).
        spec: || gpu("b200", 2250.0, 4500.0, 0.78, 180.0 * GB / GIB, 8.0, 0.85, 148),
        nvlink: || nvlink(900.0),
        network: || ib(50.0),
        source: "NVIDIA HGX B200 1000 W (2250 TFLOP/s BF16 dense, 4500 FP8, 180 GB HBM3e 8 TB/s, NVLink5 1800 GB/s bidir); DGX B200: 8x 400 Gb/s NICs",
    },
    GpuPreset {
        name: "seed-400tf",
        // The card of the deployment report this project started from: 400 TFLOP/s
        // of which 60 % achievable, 64 GB (decimal, as the report states), 1.8 TB/s at 80 %.
        // Interconnect assumed H100-class (NVLink 450 GB/s, NDR 400 Gb/s NICs); the
        // report gives no SM count: 132 assumed (H100-class die).
        spec: || gpu("seed-400tf", 400.0, 400.0, 0.60, 64.0 * GB / GIB, 1.8, 0.80, 132),
        nvlink: || nvlink(450.0),
        network: || ib(50.0),
        source: "deployment report (400 TFLOP/s, 60 % achievable, 64 GB, 1.8 TB/s at 80 %); interconnect assumed DGX H100-like",
    },
];

/// Looks up a GPU preset by name.
pub fn gpu_preset(name: &str) -> Option<&'static GpuPreset> {
    GPU_PRESETS.iter().find(|p| p.name == name)
}

/// The preset names, for error messages.
pub fn gpu_preset_names() -> Vec<&'static str> {
    GPU_PRESETS.iter().map(|p| p.name).collect()
}
