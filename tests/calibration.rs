//! The cost model against measurements: Splitwise end-to-end step times with the
//! `vllm-2023` profile (20 %), Vidur per-GEMM times with the bare H100 preset (15 %).
//! Each test checks every point and reports all misses at once.

mod support {
    pub mod calibration_data;
}

use support::calibration_data::{markdown, splitwise_points, vidur_points, Point};

fn misses<'a>(points: &'a [Point], tolerance_pct: f64, allowed: &[&str]) -> Vec<&'a Point> {
    points.iter().filter(|p| p.error_pct().abs() > tolerance_pct && !allowed.contains(&p.label.as_str())).collect()
}

#[test]
fn vllm_2023_matches_splitwise_tp8_within_20_percent_on_every_point() {
    // 12 points: A100 and H100, TP8, prefill 512/2048/8192, decode batch 1/8/32.
    let points = splitwise_points("vllm-2023", 8);
    assert_eq!(points.len(), 12);
    let bad = misses(&points, 20.0, SPLITWISE_TP8_MISSES);
    assert!(bad.is_empty(), "points off by more than 20 %:\n{}", markdown(&points));
    let wide = misses(&points, 25.0, &[]);
    assert!(wide.is_empty(), "points off by more than 25 %:\n{}", markdown(&points));
}

/// TP8 points allowed beyond 20 % (still within 25 %). With GEMMs at the measured
/// ceiling (794.5 TFLOP/s MAMF on H100), H100 prefill 2048 is slower than measured under
/// any one profile that also fits the other 35 points: the hand fit left it at +20.3 %,
/// the calibrate fit (least squared log error over all 36) at +23.0 %.
const SPLITWISE_TP8_MISSES: &[&str] = &["H100 TP8 prefill 2048"];

#[test]
fn the_same_profile_holds_at_tp4_and_tp2_within_25_percent() {
    // The profile was fitted to TP 2, 4 and 8 together: a profile fitted to TP8 alone
    // mistook TP-dependent collective cost for slow HBM and put TP2 decode 100 % high.
    // Worst point here with the profile `clustersim calibrate` writes (README): A100 TP2
    // prefill 8192, +21.3 % (the hand fit before it: +24 %).
    for tp in [4, 2] {
        let points = splitwise_points("vllm-2023", tp);
        let bad = misses(&points, 25.0, &[]);
        assert!(bad.is_empty(), "TP{tp} points off by more than 25 %:\n{}", markdown(&points));
    }
}

#[test]
fn optimized_is_faster_than_the_2023_stack_on_every_point() {
    // Same hardware, better stack: every step must get faster, but never below the
    // physics (batch-1 H100 decode cannot beat streaming 17.1 GB of weights per GPU
    // at 3.35 TB/s: 5.1 ms).
    let old = splitwise_points("vllm-2023", 8);
    let new = splitwise_points("optimized", 8);
    for (o, n) in old.iter().zip(&new) {
        assert!(n.simulated_ms < o.simulated_ms, "{}: {} !< {}", n.label, n.simulated_ms, o.simulated_ms);
    }
    let h100_decode1 = new.iter().find(|p| p.label == "H100 TP8 decode batch 1").expect("point");
    assert!(h100_decode1.simulated_ms > 5.1, "{}", h100_decode1.simulated_ms);
}

/// Points allowed beyond 15 % (still within 20 %). Vidur's TP1 down projection at 512
/// tokens runs at 0.90 of H100 peak (894 TFLOP/s in 269 µs) and TP4's at 4096 tokens at
/// 0.87 (856 TFLOP/s in 562 µs): faster than the best-shape matmul rate measured on H100 (794.5 TFLOP/s,
/// MAMF), which the preset may not exceed. The 305 µs window and 0.745 sustained rate
/// were fitted to these same 48 points with a 0.825 boost rate (in-sample); at the
/// 0.803 ceiling those two land at +17.9 % and +16.3 %.
const KNOWN_GEMM_MISSES: &[&str] = &["H100 TP1 down 512 tok", "H100 TP4 down 4096 tok"];

#[test]
fn h100_preset_matches_vidur_gemms_within_15_percent() {
    // 48 points: QKV, out proj, gate+up, down x TP 1/2/4/8 x 1/512/4096 tokens.
    let points = vidur_points();
    assert_eq!(points.len(), 48);
    let bad = misses(&points, 15.0, KNOWN_GEMM_MISSES);
    assert!(bad.is_empty(), "unexpected misses over 15 %:\n{}", markdown(&points));
    let wide = misses(&points, 20.0, &[]);
    assert!(wide.is_empty(), "points off by more than 20 %:\n{}", markdown(&points));
}
