//! No GPU preset exceeds a measured ceiling it has a row for in
//! data/validation/kernels_and_links.csv: best-shape GEMM rate per dtype (MAMF), NVLink
//! copy bandwidth, NCCL bus bandwidth in a node and per NIC across nodes, and the best
//! published flash-attention rate.

use clustersim::hardware::spec::{gpu_preset, GpuPreset};
use clustersim::hardware::topology::Topology;
use clustersim::parallel::collective::{closed_form_affine, CollectiveOp};
use clustersim::scenario::types::AllReduceAlgorithm;
use std::path::Path;

/// One row: (gpu, dtype, what, metric, upper bound of the value).
struct Row {
    gpu: String,
    dtype: String,
    what: String,
    metric: String,
    value: f64,
}

fn rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/validation/kernels_and_links.csv");
    let mut r = csv::Reader::from_path(&path).expect("kernels_and_links.csv is shipped");
    r.records()
        .map(|rec| {
            let rec = rec.expect("well-formed CSV");
            // "46-48": a range in the source; the ceiling is its upper end.
            let v = rec[5].rsplit('-').next().expect("value").trim();
            Row {
                what: rec[1].to_string(),
                gpu: rec[2].to_string(),
                dtype: rec[3].to_string(),
                metric: rec[4].to_string(),
                value: v.parse().unwrap_or_else(|_| panic!("value {:?} is a number", &rec[5])),
            }
        })
        .collect()
}

/// The presets a CSV GPU name bounds.
fn presets_for(gpu: &str) -> Vec<&'static GpuPreset> {
    let names: &[&str] = match gpu {
        "H100-SXM-80GB" => &["h100-sxm"],
        "H200-SXM-141GB" => &["h200-sxm"],
        "GH200-SXM-141GB-900W" => &["h200-sxm-1000w"],
        "A100-SXM-80GB" => &["a100-80g"],
        "B200" => &["b200"],
        _ => &[],
    };
    names.iter().map(|n| gpu_preset(n).expect("preset exists")).collect()
}

fn dtype_bytes(dtype: &str) -> f64 {
    match dtype {
        "bf16" | "fp16" => 2.0,
        "fp8" => 1.0,
        "fp4" => 0.5,
        other => panic!("unknown dtype {other}"),
    }
}

/// Large-message bandwidth, GB/s (bytes per ns), of `op` over `ranks` of `topo`.
fn bandwidth_gb_s(topo: &Topology, op: CollectiveOp, alg: AllReduceAlgorithm, ranks: &[u32]) -> f64 {
    1.0 / closed_form_affine(topo, op, alg, ranks).per_byte_ns
}

#[test]
fn no_preset_exceeds_a_measured_ceiling() {
    let mut checked = 0;
    for row in rows() {
        for p in presets_for(&row.gpu) {
            let gpu = (p.spec)();
            let one_node = Topology::new(1, 8, &(p.nvlink)(), &(p.network)()).expect("valid");
            let eight: Vec<u32> = (0..8).collect();
            let (what, sim) = if row.what == "best-shape matmul" {
                ("GEMM TFLOP/s", gpu.gemm_boost_flops(dtype_bytes(&row.dtype)) / 1e12)
            } else if row.metric == "maximum attention TFLOP/s" {
                ("attention TFLOP/s", gpu.sustained_flops(dtype_bytes(&row.dtype)) / 1e12)
            } else if row.metric == "maximum fraction of peak" {
                ("attention fraction of peak", gpu.compute_efficiency)
            } else if row.what.starts_with("pairwise device-to-device copy") {
                ("NVLink GB/s", bandwidth_gb_s(&one_node, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[0, 1]))
            } else if row.what.contains("NCCL_ALGO=RING") {
                // busbw = algbw x 2(n-1)/n for all-reduce.
                let alg = bandwidth_gb_s(&one_node, CollectiveOp::AllReduce, AllReduceAlgorithm::Ring, &eight);
                ("ring all-reduce busbw GB/s", alg * 2.0 * 7.0 / 8.0)
            } else if row.what.contains("NVLS") {
                let alg = bandwidth_gb_s(&one_node, CollectiveOp::AllReduce, AllReduceAlgorithm::Auto, &eight);
                ("default all-reduce busbw GB/s", alg * 2.0 * 7.0 / 8.0)
            } else if row.metric == "busbw per NIC" {
                let two = Topology::new(2, 8, &(p.nvlink)(), &(p.network)()).expect("valid");
                ("NIC GB/s", bandwidth_gb_s(&two, CollectiveOp::SendRecv, AllReduceAlgorithm::Auto, &[0, 8]))
            } else {
                continue;
            };
            assert!(
                sim <= row.value + 1e-9,
                "{}: {what} {sim:.1} exceeds the measured {} ({})",
                p.name,
                row.value,
                row.what
            );
            checked += 1;
        }
    }
    // 9 GEMM rows, 2 attention, 1 NVLink, 2 NCCL in-node, 1 per NIC.
    assert_eq!(checked, 15, "every ceiling row must reach a preset");
}

#[test]
fn gemm_rates_sit_at_the_measured_ceilings_where_the_datasheet_would_exceed_them() {
    // H100: 0.803 x 989 = 794.5 BF16 (the ceiling itself); FP8 0.803 x 1979 = 1589.8 is
    // above the FP8 MAMF, so the rate is the ceiling, 1402.6.
    let h100 = (gpu_preset("h100-sxm").expect("preset").spec)();
    assert!((h100.gemm_boost_flops(2.0) - 794.5e12).abs() < 1e3);
    assert!((h100.gemm_boost_flops(1.0) - 1402.6e12).abs() < 1e3);
    // B200 FP4: 9000 x 1745 / 2250 = 6980 TFLOP/s (no FP4 ceiling measured).
    let b200 = (gpu_preset("b200").expect("preset").spec)();
    assert!((b200.gemm_boost_flops(0.5) - 6980e12).abs() < 1e3);
    // A GPU without FP4 tensor cores runs FP4 at its FP8 rate.
    assert_eq!(h100.gemm_boost_flops(0.5), h100.gemm_boost_flops(1.0));
}
