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
    /// Fraction of the BF16 peak that flash attention sustains on long sequences (its
    /// asymptote; shorter ones run slower: [`KernelRates::attention_half_rate_keys`]) and
    /// that other compute-bound non-GEMM kernels sustain (0-1].
    pub compute_efficiency: f64,
    /// Fraction of peak a GEMM sustains while the GPU holds its boost clock, when its
    /// output tiles fill every wave of SMs (0-1]; partly filled waves cost more
    /// (`model::gemm::wave_utilization`). Never above the measured best-shape rate:
    /// [`GpuSpec::gemm_boost_flops`] caps it at [`KernelRates`]' ceiling per dtype.
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
    /// FP4 peak, measured GEMM ceilings per dtype and the attention ramp.
    #[serde(default)]
    pub kernels: KernelRates,
}

/// What a GPU's kernels measurably reach, beyond the datasheet peaks of [`GpuSpec`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelRates {
    /// Dense FP4 peak, TFLOP/s; 0 when the GPU has no FP4 tensor cores (FP4 weights then
    /// run at the FP8 rate).
    #[serde(default)]
    pub peak_fp4_tflops: f64,
    /// Best-shape BF16 GEMM rate measured on this GPU, TFLOP/s (None: not measured).
    #[serde(default)]
    pub gemm_bf16_tflops: Option<f64>,
    /// Best-shape FP8 GEMM rate measured on this GPU, TFLOP/s (None: not measured).
    #[serde(default)]
    pub gemm_fp8_tflops: Option<f64>,
    /// Best-shape FP4 GEMM rate measured on this GPU, TFLOP/s (None: not measured).
    #[serde(default)]
    pub gemm_fp4_tflops: Option<f64>,
    /// Keys per query (context + chunk) at which flash attention runs at half its
    /// long-sequence rate, tokens; 0 = always at the long-sequence rate. The rate at L
    /// keys is `asymptote x L / (L + half)` (`model::attention::flash_rate`).
    #[serde(default)]
    pub attention_half_rate_keys: f64,
}

impl KernelRates {
    /// The measured GEMM ceiling, FLOP/s, for a datatype of `dtype_bytes` bytes, if any
    /// (FP4 on a GPU without FP4 tensor cores runs at, and is bounded by, the FP8 rate).
    pub fn gemm_ceiling_flops(&self, dtype_bytes: f64) -> Option<f64> {
        let t = match dtype_class(dtype_bytes) {
            DtypeClass::Fp4 if self.peak_fp4_tflops > 0.0 => self.gemm_fp4_tflops,
            DtypeClass::Fp4 | DtypeClass::Fp8 => self.gemm_fp8_tflops,
            DtypeClass::Wide => self.gemm_bf16_tflops,
        };
        t.map(|t| t * 1e12)
    }
}

/// Which tensor-core rate a datatype of a given width uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DtypeClass {
    Fp4,
    Fp8,
    Wide,
}

fn dtype_class(dtype_bytes: f64) -> DtypeClass {
    if dtype_bytes <= 0.5 {
        DtypeClass::Fp4
    } else if dtype_bytes <= 1.0 {
        DtypeClass::Fp8
    } else {
        DtypeClass::Wide
    }
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
    /// Dense peak in FLOP/s for a datatype of `dtype_bytes` bytes (0.5: FP4, at the FP8
    /// peak on GPUs without FP4 tensor cores; 1: FP8; 2: BF16/FP16).
    pub fn peak_flops(&self, dtype_bytes: f64) -> f64 {
        let peak = match dtype_class(dtype_bytes) {
            DtypeClass::Fp4 if self.kernels.peak_fp4_tflops > 0.0 => self.kernels.peak_fp4_tflops,
            DtypeClass::Fp4 | DtypeClass::Fp8 => self.peak_fp8_tflops,
            DtypeClass::Wide => self.peak_tflops,
        };
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
    /// Rate, FLOP/s, of a GEMM at the boost clock for a datatype of `dtype_bytes` bytes:
    /// `peak x gemm_efficiency_short`, never above the measured best-shape rate.
    pub fn gemm_boost_flops(&self, dtype_bytes: f64) -> f64 {
        let rate = self.peak_flops(dtype_bytes) * self.gemm_efficiency_short;
        self.kernels.gemm_ceiling_flops(dtype_bytes).map_or(rate, |c| rate.min(c))
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
        kernels: KernelRates::default(),
    }
}

fn nvlink(bw: f64) -> NvlinkSpec {
    // 0.82: an 8-GPU ring all-reduce on DGX H100 reaches 370 GB/s bus bandwidth at large
    // sizes over 450 GB/s links (nccl-tests issue 212, maintainer): 370 / 450 = 0.822,
    // rounded down so no preset beats the measured busbw.
    NvlinkSpec { bandwidth_gb_s: bw, efficiency: 0.82, latency_us: 2.0, nvls_bandwidth_gb_s: None }
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
///
/// GEMM ceilings are the best-shape `torch.matmul` rates of the MAMF table (stas00/ml-engineering
/// compute/accelerator/README.md, "Maximum Achievable Matmul FLOPS comparison table", commit
/// 744d01e1; data/validation/kernels_and_links.csv): no preset runs a GEMM faster. Attention
/// follows FlashAttention-3's measured forward rate on H100 (head dim 128: 430, 517, 566, 590,
/// 614, 621 TFLOP/s at 512 ... 16k tokens; pytorch/benchmark commit ff65cb67), which
/// `asymptote x L / (L + half)` fits within 1.3 % with 630 TFLOP/s (0.637 of 989) and
/// half = 239 keys.
pub const GPU_PRESETS: &[GpuPreset] = &[
    GpuPreset {
        name: "a100-80g",
        // GEMMs 0.82 of 312 (255.8 TFLOP/s, below the 271.2 MAMF ceiling): the full-wave
        // rate that, with `model::gemm`'s wave quantization, puts Vidur's A100 Llama-3-8B
        // GEMMs (QKV, out, up, down, TP 1-8, 512-4096 tokens: 200-240 TFLOP/s) at +4 % on
        // average. No A100 GEMM long enough in the data to fit a power-cap window on:
        // short = long. Batch-1 gate/up GEMMs at TP1 and TP4 (235 and 59 MB in 142 and
        // 41 µs) give 1.74 TB/s (0.85 of 2.039) plus a 7 µs intercept: the launch
        // overhead. Attention: FlashAttention-2 reaches 50-73 % of peak on A100 (FA2 paper,
        // arXiv:2307.08691, abstract): 0.73 at long sequences, with H100's FA3 ramp (239
        // keys to half rate; no A100 per-length figures in the data). 108 SMs (datasheet).
        spec: || GpuSpec {
            launch_overhead_us: 7.0,
            gemm_efficiency_short: 0.82,
            gemm_efficiency_long: 0.82,
            kernels: KernelRates {
                gemm_bf16_tflops: Some(271.2),
                attention_half_rate_keys: 239.0,
                ..KernelRates::default()
            },
            ..gpu("a100-80g", 312.0, 312.0, 0.73, 80.0, 2.039, 0.85, 108)
        },
        nvlink: || nvlink(300.0),
        network: || ib(25.0),
        source: "NVIDIA A100 datasheet (312 TFLOP/s BF16 dense, 80 GB HBM2e 2.039 TB/s, NVLink3 600 GB/s bidir); DGX A100: 8x HDR 200 Gb/s NICs; MAMF 271.2 TFLOP/s BF16",
    },
    GpuPreset {
        name: "h100-sxm",
        spec: || h100_class("h100-sxm", 80.0, 3.35, 0.92),
        nvlink: nvlink4_nvls,
        network: || ib(50.0),
        source: "NVIDIA H100 SXM datasheet (989 TFLOP/s BF16 dense, 1979 FP8, 80 GB HBM3 3.35 TB/s, NVLink4 900 GB/s bidir, 700 W); DGX H100: 8x NDR 400 Gb/s NICs; MAMF 794.5 BF16, 1402.6 FP8",
    },
    GpuPreset {
        name: "h200-sxm",
        // The common 700 W part: same GH100 die (132 SMs) and power limit as H100 SXM, so
        // the same GEMM clocks (the MAMF table lists H200 BF16 as "the same" as H100's
        // 794.5); its FP8 MAMF is 1453.4. HBM3e streaming at 0.85 of 4.8 TB/s (no H200
        // streaming measurement in the data; H100's fitted 0.92 would give 4.4 TB/s).
        spec: || GpuSpec {
            kernels: KernelRates { gemm_fp8_tflops: Some(1453.4), ..h100_kernels() },
            ..h100_class("h200-sxm", 141.0 * GB / GIB, 4.8, 0.85)
        },
        nvlink: nvlink4_nvls,
        network: || ib(50.0),
        source: "NVIDIA H200 datasheet (989 TFLOP/s BF16 dense, 1979 FP8, 141 GB HBM3e 4.8 TB/s, NVLink4 900 GB/s bidir, up to 700 W SXM); DGX H200: 8x NDR 400 Gb/s NICs; MAMF 794.5 BF16 (as H100), 1453.4 FP8",
    },
    GpuPreset {
        name: "h200-sxm-1000w",
        // H200 with a 1000 W power limit (custom HGX boards): the GEMM clock no longer
        // drops under the cap (no boost window: short = long). No 1000 W H200 MAMF is
        // published; the nearest measured part is GH200 (same GH100 die, 141 GiB HBM3e,
        // 900 W): 828.6 TFLOP/s BF16 and 1535.0 FP8, used as the ceilings.
        spec: || GpuSpec {
            gemm_efficiency_short: 828.6 / 989.0,
            gemm_efficiency_long: 828.6 / 989.0,
            gemm_boost_window_us: 0.0,
            kernels: KernelRates {
                gemm_bf16_tflops: Some(828.6),
                gemm_fp8_tflops: Some(1535.0),
                ..h100_kernels()
            },
            ..h100_class("h200-sxm-1000w", 141.0 * GB / GIB, 4.8, 0.85)
        },
        nvlink: nvlink4_nvls,
        network: || ib(50.0),
        source: "NVIDIA H200 datasheet (as h200-sxm) at a 1000 W limit; ceilings from the GH200 900 W MAMF rows (828.6 BF16, 1535.0 FP8)",
    },
    GpuPreset {
        name: "b200",
        // GEMMs at the MAMF ceilings: 1745 of 2250 TFLOP/s BF16 (0.7756), 3432.5 of 4500
        // FP8. FP4: no first-hand FP4 MAMF in the data, so 0.7756 of the 9000 dense FP4 peak
        // (6980). 1000 W part; no per-GEMM length data to fit a power-cap window on (short =
        // long). Attention: no measured Blackwell attention in the data: H100's FA3 fraction
        // (0.637) and ramp. 148 SMs (B200 datasheet).
        spec: || GpuSpec {
            gemm_efficiency_short: 1745.0 / 2250.0,
            gemm_efficiency_long: 1745.0 / 2250.0,
            kernels: KernelRates {
                peak_fp4_tflops: 9000.0,
                gemm_bf16_tflops: Some(1745.0),
                gemm_fp8_tflops: Some(3432.5),
                gemm_fp4_tflops: None,
                attention_half_rate_keys: 239.0,
            },
            ..gpu("b200", 2250.0, 4500.0, 0.637, 180.0 * GB / GIB, 8.0, 0.85, 148)
        },
        nvlink: || nvlink(900.0),
        network: || ib(50.0),
        source: "NVIDIA HGX B200 1000 W (2250 TFLOP/s BF16 dense, 4500 FP8, 9000 FP4, 180 GB HBM3e 8 TB/s, NVLink5 1800 GB/s bidir); DGX B200: 8x 400 Gb/s NICs; MAMF 1745 BF16, 3432.5 FP8",
    },
    GpuPreset {
        name: "seed-400tf",
        // The card of the deployment report this project started from: 400 TFLOP/s
        // of which 60 % achievable, 64 GB (decimal, as the report states), 1.8 TB/s at 80 %.
        // Interconnect assumed H100-class (NVLink 450 GB/s, NDR 400 Gb/s NICs); the
        // report gives no SM count: 132 assumed (H100-class die). No measured ceilings.
        spec: || gpu("seed-400tf", 400.0, 400.0, 0.60, 64.0 * GB / GIB, 1.8, 0.80, 132),
        nvlink: || nvlink(450.0),
        network: || ib(50.0),
        source: "deployment report (400 TFLOP/s, 60 % achievable, 64 GB, 1.8 TB/s at 80 %); interconnect assumed DGX H100-like",
    },
];

/// H100 SXM's measured kernel rates: MAMF 794.5 BF16 and 1402.6 FP8 TFLOP/s; FA3's
/// 239-key attention ramp.
fn h100_kernels() -> KernelRates {
    KernelRates {
        gemm_bf16_tflops: Some(794.5),
        gemm_fp8_tflops: Some(1402.6),
        attention_half_rate_keys: 239.0,
        ..KernelRates::default()
    }
}

/// A GH100 part at 700 W (H100 SXM, H200 SXM) with its memory.
///
/// GEMMs: at the boost clock for their first 305 µs, at the MAMF ceiling (794.5 / 989 =
/// 0.803 of peak BF16; FP8 capped at its own ceiling), and 0.803 / 0.745 = 1.078x slower
/// after (`power_capped_s`: the 700 W cap pulls long tensor-core kernels below boost).
/// 0.745 and the 305 µs window were fitted with the wave model to Vidur's 48 H100
/// Llama-2-70B GEMM medians (QKV, out, gate+up, down x TP 1-8 x 1/512/4096 tokens), which
/// run at 0.58-0.92 of 989: the 5.7 ms gate+up at 4096 tokens runs at 0.68. (The fit's
/// boost rate, 0.825, was above the MAMF ceiling; the ceiling wins.) Batch-1 GEMMs (16.8
/// MB to 940 MB) fit 3.07 TB/s (0.92 of 3.35) plus a 4.5 µs intercept, the launch
/// overhead. Attention: FA3's 0.637 of peak with a 239-key ramp. 132 SMs (datasheet).
fn h100_class(name: &str, mem_gib: f64, bw_tb_s: f64, mem_eff: f64) -> GpuSpec {
    GpuSpec {
        launch_overhead_us: 4.5,
        gemm_efficiency_short: 794.5 / 989.0,
        gemm_efficiency_long: 0.745,
        gemm_boost_window_us: 305.0,
        kernels: h100_kernels(),
        ..gpu(name, 989.0, 1979.0, 0.637, mem_gib, bw_tb_s, mem_eff, 132)
    }
}

/// Looks up a GPU preset by name.
pub fn gpu_preset(name: &str) -> Option<&'static GpuPreset> {
    GPU_PRESETS.iter().find(|p| p.name == name)
}

/// The preset names, for error messages.
pub fn gpu_preset_names() -> Vec<&'static str> {
    GPU_PRESETS.iter().map(|p| p.name).collect()
}
