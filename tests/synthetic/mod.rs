//! A synthetic measurement row shared by the tests that run the simulator on rows of the
//! validation format (calibrate, CUDA graphs): Llama-3-8B FP8 on one H100 under vLLM,
//! 64 prompt and 16 output tokens, a closed loop of `concurrency` requests in flight.

use clustersim::analysis::measured::{Measurement, Mode};

/// The row named `source`, `requests` in all, reading `metric` (value 1: a placeholder
/// the test replaces or never reads).
pub fn vllm_row(source: &str, concurrency: u32, requests: u32, metric: &str) -> Measurement {
    Measurement {
        source: source.into(),
        engine: "vLLM".into(),
        model: "llama-3-8b".into(),
        dtype: "fp8".into(),
        gpu: "h100-sxm".into(),
        tp: 1,
        input: 64,
        output: 16,
        requests: Some(requests),
        mode: Mode::Concurrency(concurrency),
        metric: metric.into(),
        value: 1.0,
        attention_dp: false,
        one_batch: false,
        ring_all_reduce: false,
        spread: None,
    }
}
