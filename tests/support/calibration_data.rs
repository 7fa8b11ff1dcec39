//! Calibration data (tests/data/calibration) and the simulated value of each point.
//! Shared by tests/calibration.rs and examples/calibration.rs.

use clustersim::hardware::spec::gpu_preset;
use clustersim::model::cost::{CostModel, OpKind};
use clustersim::model::framework::framework_profile;
use clustersim::model::spec::{model_preset, Dtype, ModelSpec};
use clustersim::serving::calibration::{single_node_step, Step};
use std::collections::BTreeMap;
use std::path::Path;

/// Where the copied calibration files live.
pub fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/calibration"))
}

/// Llama-2-70B in fp16, as Splitwise ran it.
pub fn llama2_70b_fp16() -> ModelSpec {
    let mut m = (model_preset("llama-2-70b").expect("preset").spec)();
    m.dtype = Dtype::Fp16;
    m
}

/// The median of `v` (mean of the middle two for even lengths); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One end-to-end point: its label, measured median and simulated value, ms.
pub struct Point {
    /// e.g. "H100 TP8 prefill 2048".
    pub label: String,
    /// Median of the repeats, ms.
    pub measured_ms: f64,
    /// The cost model's value, ms.
    pub simulated_ms: f64,
}

impl Point {
    /// Signed relative error, %.
    pub fn error_pct(&self) -> f64 {
        (self.simulated_ms / self.measured_ms - 1.0) * 100.0
    }
}

/// (hardware, tp, prompt tokens, batch) of a Splitwise measurement.
type SplitwiseKey = (String, u32, u32, u32);

/// Splitwise Llama-2-70B points at TP `tp` (2, 4 or 8): prefill 512/2048/8192 at batch
/// 1 (`prompt_time`), decode steps at batch 1/8/32 after a 512-token prompt
/// (`token_time`, averaged over 128 output tokens, so at context 512 + 64 on average),
/// on A100 and H100, priced with the framework profile `framework`.
pub fn splitwise_points(framework: &str, tp: u32) -> Vec<Point> {
    let path = data_dir().join("splitwise_llama2-70b.csv");
    let mut rdr = csv::Reader::from_path(&path).expect("splitwise csv");
    let mut rows: BTreeMap<SplitwiseKey, Vec<(f64, f64)>> = BTreeMap::new();
    for rec in rdr.records() {
        let r = rec.expect("row");
        let num = |i: usize| r[i].parse::<f64>().expect("number");
        let key = (r[1].to_string(), num(2) as u32, num(3) as u32, num(4) as u32);
        rows.entry(key).or_default().push((num(6), num(7)));
    }
    let fw = framework_profile(framework).expect("framework");
    let model = llama2_70b_fp16();
    let mut out = Vec::new();
    for (hw, preset, name) in [("a100-80gb", "a100-80g", "A100"), ("h100-80gb", "h100-sxm", "H100")] {
        let gpu = gpu_preset(preset).expect("gpu preset");
        let mut add = |label: String, step: Step, key: (u32, u32), decode: bool| {
            // (prompt_time, token_time) of every repeat.
            let reps = &rows[&(hw.to_string(), tp, key.0, key.1)];
            let measured = median(reps.iter().map(|r| if decode { r.1 } else { r.0 }).collect());
            let sim = single_node_step(&model, gpu, &fw, tp, step).expect("preset node").time.as_secs_f64() * 1e3;
            out.push(Point { label, measured_ms: measured, simulated_ms: sim });
        };
        for t in [512, 2048, 8192] {
            add(format!("{name} TP{tp} prefill {t}"), Step::Prefill { tokens: t }, (t, 1), false);
        }
        for b in [1, 8, 32] {
            add(format!("{name} TP{tp} decode batch {b}"), Step::Decode { batch: b, context: 576 }, (512, b), true);
        }
    }
    out
}

/// Vidur H100 Llama-2-70B GEMM points at 1, 512 and 4096 tokens and TP 1/2/4/8
/// (median over duplicate rows), against single GEMMs on the bare H100 preset
/// (`optimized` profile: no framework factor or extra launch cost). Shapes per rank:
/// QKV h x (a+2k)/tp·d, out proj a/tp·d x h, gate+up h x 2f/tp (fused, as
/// `n_expanded_embd` = f), down f/tp x h.
pub fn vidur_points() -> Vec<Point> {
    let path = data_dir().join("vidur_h100_llama2-70b_proj_mlp.csv");
    let mut rdr = csv::Reader::from_path(&path).expect("vidur csv");
    let mut rows: BTreeMap<(u32, u32), Vec<[f64; 4]>> = BTreeMap::new();
    for rec in rdr.records() {
        let r = rec.expect("row");
        let num = |i: usize| r[i].parse::<f64>().expect("number");
        rows.entry((num(0) as u32, num(1) as u32)).or_default().push([num(6), num(7), num(8), num(9)]);
    }
    let model = llama2_70b_fp16();
    let gpu = (gpu_preset("h100-sxm").expect("h100").spec)();
    let fw = framework_profile("optimized").expect("optimized");
    let (h, d, f) = (model.hidden, model.head_dim, model.ffn);
    let mut out = Vec::new();
    for (&(tp, t), reps) in &rows {
        let cost = CostModel::new(&model, &gpu, &fw, tp);
        let (a, k) = (model.heads / tp, model.kv_heads.div_ceil(tp));
        let gemms = [
            ("qkv", cost.gemm(OpKind::Qkv, t, h, (a + 2 * k) * d)),
            ("out_proj", cost.gemm(OpKind::OutProj, t, a * d, h)),
            ("gate_up", cost.gemm(OpKind::Mlp, t, h, 2 * f / tp)),
            ("down", cost.gemm(OpKind::Mlp, t, f / tp, h)),
        ];
        for (i, (name, op)) in gemms.iter().enumerate() {
            out.push(Point {
                label: format!("H100 TP{tp} {name} {t} tok"),
                measured_ms: median(reps.iter().map(|r| r[i]).collect()),
                simulated_ms: op.time.as_secs_f64() * 1e3,
            });
        }
    }
    out
}

/// A markdown table of `points`.
pub fn markdown(points: &[Point]) -> String {
    let mut s = String::from("| point | measured (ms) | simulated (ms) | error % |\n|---|---:|---:|---:|\n");
    for p in points {
        s += &format!("| {} | {:.3} | {:.3} | {:+.1} |\n", p.label, p.measured_ms, p.simulated_ms, p.error_pct());
    }
    s
}
