//! The JSON vLLM's `benchmarks/benchmark_serving.py --save-result` (and `vllm bench
//! serve`) writes, as measurements.
//!
//! Fields read (vllm-project/vllm `benchmarks/benchmark_serving.py`, `result_json`):
//! `num_prompts`, `request_rate` (a number or `"inf"`), `burstiness`, `max_concurrency`
//! (null or a number), `completed`, `total_input_tokens`, `total_output_tokens`, and
//! every metric of [`METRICS`] present (`request_throughput`, `output_throughput`,
//! `mean_ttft_ms`, `median_tpot_ms`, ...). The file does not say on what it ran, so the
//! configuration comes from keys the user adds with `--metadata` (merged into the top
//! level by the script): `gpu`, `tp`, `dtype`, `model` (clustersim preset names or the
//! validation CSV's names), optionally `engine` (default `vLLM`). Prompt and output
//! lengths are the run's means (total tokens / completed): exact for fixed-length
//! datasets (`--dataset-name random --random-range-ratio 0`).

use crate::analysis::measured::{Measurement, Mode, METRICS};
use crate::error::{Error, InputError, Result};
use serde_json::Value;
use std::path::Path;

fn err(file: &Path, key: &str, msg: String) -> Error {
    Error::Input(InputError::key(file, key, msg))
}

/// The measurements in one result file's `text` (read from `file`).
pub fn parse(text: &str, file: &Path) -> Result<Vec<Measurement>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::Input(InputError::line(file, e.line(), format!("not JSON: {e}"))))?;
    let obj =
        v.as_object().ok_or_else(|| Error::Input(InputError::file(file, "expected a JSON object".to_string())))?;
    let hint =
        "add it with benchmark_serving.py --metadata gpu=h100-sxm tp=1 dtype=fp8 model=llama-3-8b, or edit the JSON";
    let text_key = |k: &str| -> Result<String> {
        match obj.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(err(file, k, format!("missing: the configuration key `{k}` is needed; {hint}"))),
        }
    };
    let number = |k: &str| -> Result<f64> {
        let v = match obj.get(k) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        v.filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| err(file, k, format!("is {:?}; expected a number > 0", obj.get(k))))
    };
    let tp = text_key("tp")?.parse::<u32>().ok().filter(|t| *t > 0);
    let tp = tp.ok_or_else(|| err(file, "tp", "must be a whole number > 0".into()))?;
    let completed = number("completed")?;
    let mode = load_mode(obj, file, &number)?;
    let engine = text_key("engine").unwrap_or_else(|_| "vLLM".into());
    let base = Measurement {
        source: file.display().to_string(),
        engine,
        model: text_key("model")?,
        dtype: text_key("dtype")?,
        gpu: text_key("gpu")?,
        tp,
        input: (number("total_input_tokens")? / completed).round().max(1.0) as u32,
        output: (number("total_output_tokens")? / completed).round().max(1.0) as u32,
        requests: Some(number("num_prompts")?.round() as u32),
        mode,
        metric: String::new(),
        value: 0.0,
        attention_dp: false,
        one_batch: false,
        ring_all_reduce: false,
        spread: None,
    };
    // The script's name for output tokens/s differs from the CSV's.
    let mut out = Vec::new();
    for metric in METRICS {
        let key = match *metric {
            "output_tokens_per_s" => "output_throughput",
            "total_tokens_per_s" => "total_token_throughput",
            k => k,
        };
        if let Some(value) = obj.get(key).and_then(Value::as_f64).filter(|v| v.is_finite() && *v > 0.0) {
            out.push(Measurement { metric: metric.to_string(), value, ..base.clone() });
        }
    }
    if out.is_empty() {
        return Err(Error::Input(InputError::file(
            file,
            "holds none of the metrics ".to_string() + &METRICS.join(", "),
        )));
    }
    Ok(out)
}

/// How the benchmark sent its requests: all at once, at a fixed concurrency, or at a
/// Poisson rate (`burstiness` 1.0 only).
fn load_mode(obj: &serde_json::Map<String, Value>, file: &Path, number: &dyn Fn(&str) -> Result<f64>) -> Result<Mode> {
    Ok(match (obj.get("request_rate"), obj.get("max_concurrency")) {
        (Some(Value::String(s)), Some(Value::Number(n))) if s == "inf" => {
            let n = n.as_u64().filter(|n| *n > 0 && *n <= u32::MAX as u64);
            Mode::Concurrency(n.ok_or_else(|| err(file, "max_concurrency", "must be a whole number > 0".into()))? as u32)
        }
        (Some(Value::String(s)), _) if s == "inf" => Mode::Offline,
        (Some(Value::Number(_)), None | Some(Value::Null)) => {
            if obj.get("burstiness").and_then(Value::as_f64).is_some_and(|b| b != 1.0) {
                return Err(err(file, "burstiness", "only 1.0 (Poisson) is supported".into()));
            }
            Mode::Rate(number("request_rate")?)
        }
        _ => {
            return Err(err(
                file,
                "request_rate",
                "expected \"inf\" (with or without max_concurrency) or a rate without max_concurrency".into(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_file_becomes_one_measurement_per_metric() {
        // 100 requests, 12,800 prompt and 6,400 output tokens: 128 in / 64 out each.
        let text = r#"{"num_prompts": 100, "request_rate": "inf", "burstiness": 1.0, "max_concurrency": 8,
            "completed": 100, "total_input_tokens": 12800, "total_output_tokens": 6400,
            "request_throughput": 2.5, "output_throughput": 160.0, "median_tpot_ms": 9.5,
            "gpu": "h100-sxm", "tp": "1", "dtype": "fp8", "model": "llama-3-8b"}"#;
        let rows = parse(text, Path::new("r.json")).unwrap();
        let metrics: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(metrics, vec!["output_tokens_per_s", "request_throughput", "median_tpot_ms"]);
        assert_eq!((rows[0].input, rows[0].output, rows[0].mode.clone()), (128, 64, Mode::Concurrency(8)));
        assert_eq!(rows[0].engine_profile(), "vllm");
    }

    #[test]
    fn a_missing_configuration_key_is_named() {
        let text = r#"{"num_prompts": 1, "request_rate": "inf", "completed": 1, "total_input_tokens": 1,
            "total_output_tokens": 1, "output_throughput": 1.0, "tp": 1, "dtype": "fp8", "model": "llama-3-8b"}"#;
        let e = parse(text, Path::new("r.json")).unwrap_err().to_string();
        assert!(e.contains("`gpu`") && e.contains("--metadata"), "{e}");
    }
}
