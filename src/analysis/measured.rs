//! Serving measurements and how to simulate one: the rows of a measurements CSV (the
//! validation set's format) or of the JSON vLLM's `benchmark_serving.py --save-result`
//! writes, each turned into a small scenario built in code and run under a given
//! engine profile. Shared by `clustersim validation` and `clustersim calibrate`.
//!
//! CSV columns (header required, any order after it is not allowed: this order):
//! `source, model, dtype, engine, gpu, gpus, tp, input_tokens, output_tokens, mode,
//! metric, value, unit, requests, notes`. `source` `same` repeats the row above's.
//! `mode`: `offline` (all requests at once), `rate=R` (Poisson, R requests/s) or
//! `concurrency=N` (closed loop). `input_tokens` and `output_tokens`: N, or MIN-MAX for
//! lengths the source spreads uniformly over a range (simulated so). `metric`: one of
//! [`METRICS`]. A MoE row whose `notes` contain [`ATTENTION_DP_NOTE`] ran with attention
//! data-parallel and the experts expert-parallel over its `tp` GPUs (TensorRT-LLM's
//! `enable_attention_dp` with `--ep`), and is simulated so; the notes must cite where the
//! source says it.

use crate::error::{Error, InputError, Result};
use crate::metrics::summary::Summary;
use crate::model::framework::FrameworkProfile;
use crate::serving::{simulate, RunOptions};
use std::path::Path;

/// Metrics a measurement may hold: (name, what it reads from a run's summary).
pub const METRICS: &[&str] = &[
    "output_tokens_per_s",
    "total_tokens_per_s",
    "request_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "mean_e2el_ms",
    "median_e2el_ms",
];

/// The phrase in a MoE row's `notes` that says the source ran attention data-parallel
/// with the experts expert-parallel over the row's `tp` GPUs.
pub const ATTENTION_DP_NOTE: &str = "simulated as attention DP x EP";

/// The phrase in a row's `notes` that says the source ran all its requests' prompts as
/// one prefill batch and then decoded them together (Splitwise's operator profiles: a
/// batch of `requests` prompts prefilled at once): the scenario's token budget is raised
/// to hold every prompt in one iteration, so no prompt is split over iterations.
pub const ONE_BATCH_NOTE: &str = "all prompts in one batch";

/// The phrase in a row's `notes` that pins the tensor-parallel all-reduce to a flat ring
/// (the scenario's `all_reduce = "ring"`) instead of the NCCL-like tuner (`auto`): for a
/// profile whose collective costs were fitted per ring step. The notes must say why.
pub const RING_NOTE: &str = "ring all-reduce";

/// The batch limits of the validation scenarios, per engine scheduler: sequences and
/// tokens in one iteration. Under attention DP an engine runs one scheduler per GPU
/// (TensorRT-LLM: `--max_batch_size` is the "Max batch size in each rank",
/// docs/source/blogs/Best_perf_practice_on_DeepSeek-R1_in_TensorRT-LLM.md), so a
/// replica of `n` attention groups gets `n` times these.
const MAX_SEQS: u32 = 1024;
const MAX_BATCH_TOKENS: u32 = 8192;

/// How requests arrive in a measurement.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// All at once (offline, max load).
    Offline,
    /// Poisson arrivals at this rate, requests/s.
    Rate(f64),
    /// A closed loop of this many requests in flight.
    Concurrency(u32),
}

/// One measured figure and the configuration it was measured on.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Where it comes from (repository, path, commit; paper; file).
    pub source: String,
    /// The engine as the source names it ("TensorRT-LLM", "vLLM", "SGLang").
    pub engine: String,
    /// The model as the source names it, or a clustersim preset name.
    pub model: String,
    /// Weights dtype ("fp8", "fp16", "bf16").
    pub dtype: String,
    /// The GPU as the source names it, or a clustersim preset name.
    pub gpu: String,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Prompt tokens per request.
    pub input: u32,
    /// Output tokens per request.
    pub output: u32,
    /// Requests in the run (None: not given; the caller's cap is used).
    pub requests: Option<u32>,
    /// How requests arrive.
    pub mode: Mode,
    /// One of [`METRICS`].
    pub metric: String,
    /// The measured value, in the metric's unit.
    pub value: f64,
    /// MoE only: attention data-parallel over the `tp` GPUs with the experts
    /// expert-parallel over them (the notes say so: [`ATTENTION_DP_NOTE`]); false: the
    /// `tp` GPUs shard attention and experts alike.
    pub attention_dp: bool,
    /// Lengths that vary in the source (uniformly over a stated range; `input` and
    /// `output` then hold the ranges' midpoints); None: every request as long as stated.
    pub spread: Option<Spread>,
    /// All prompts prefilled in one iteration (the notes say so: [`ONE_BATCH_NOTE`]).
    pub one_batch: bool,
    /// All-reduce pinned to a flat ring (the notes say so: [`RING_NOTE`]).
    pub ring_all_reduce: bool,
}

/// Prompt and output lengths drawn uniformly from `(min, max)` tokens, both inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Prompt tokens: (min, max).
    pub input: (u32, u32),
    /// Output tokens: (min, max).
    pub output: (u32, u32),
}

/// A workload length: fixed, or uniform over `lo..=hi`.
fn length_dist((lo, hi): (u32, u32)) -> String {
    if lo == hi {
        format!("{{ dist = \"fixed\", value = {lo} }}")
    } else {
        format!("{{ dist = \"uniform\", min = {lo}, max = {hi} }}")
    }
}

/// The clustersim GPU preset a source's GPU name maps to (preset names map to themselves).
pub fn gpu_preset_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "H100-SXM-80GB" | "h100-sxm" => "h100-sxm",
        "H200-SXM-141GB" | "h200-sxm" => "h200-sxm",
        "A100-SXM-80GB" | "a100-80g" => "a100-80g",
        "B200" | "b200" => "b200",
        _ => return None,
    })
}

/// The clustersim model preset a source's model name maps to, and whether it is MoE.
pub fn model_preset_name(name: &str) -> Option<(&'static str, bool)> {
    // Llama 3.1 8B and 3.3 70B share Llama 3's shapes.
    Some(match name {
        "Llama-3.1-8B" | "llama-3-8b" => ("llama-3-8b", false),
        "Llama-2-70B" | "llama-2-70b" => ("llama-2-70b", false),
        "Llama-3.3-70B" | "Llama-3.1-70B" | "llama-3-70b" => ("llama-3-70b", false),
        "Llama-3.1-405B" | "llama-3.1-405b" => ("llama-3.1-405b", false),
        "Mixtral-8x7B" | "mixtral-8x7b" => ("mixtral-8x7b", true),
        "Qwen3-235B-A22B" | "qwen3-235b-a22b" => ("qwen3-235b-a22b", true),
        _ => return None,
    })
}

impl Measurement {
    /// A short description: model, dtype, GPU, TP, lengths, and the mode when not offline.
    pub fn configuration(&self) -> String {
        let mode = match &self.mode {
            Mode::Offline => String::new(),
            Mode::Rate(r) => format!(" rate {r}/s"),
            Mode::Concurrency(n) => format!(" concurrency {n}"),
        };
        let layout = if self.attention_dp_ep() { format!(" (attention DP x EP{})", self.tp) } else { String::new() };
        let lengths = match self.spread {
            Some(Spread { input: (a, b), output: (c, d) }) => format!("{a}-{b}/{c}-{d}"),
            None => format!("{}/{}", self.input, self.output),
        };
        // One-batch rows differ only in their batch (Splitwise's decode points).
        let batch = match (self.one_batch, self.requests) {
            (true, Some(n)) => format!(" batch {n}"),
            _ => String::new(),
        };
        format!("{} {} {} TP{}{layout} {lengths}{batch}{mode}", self.model, self.dtype, self.gpu, self.tp)
    }

    /// True when the row is simulated with attention data-parallel and expert-parallel
    /// experts over its `tp` GPUs: a MoE row whose notes say so.
    pub fn attention_dp_ep(&self) -> bool {
        self.attention_dp && self.is_moe()
    }

    /// Whether the model is a mixture of experts (unknown models count as dense).
    pub fn is_moe(&self) -> bool {
        model_preset_name(&self.model).is_some_and(|(_, moe)| moe)
    }

    /// The shipped profile of this measurement's engine: `trtllm`, `vllm`, `sglang`, or
    /// `optimized` for an engine without one.
    pub fn engine_profile(&self) -> &'static str {
        let e = self.engine.to_lowercase();
        if e.starts_with("tensorrt-llm") || e.starts_with("trtllm") {
            "trtllm"
        } else if e.starts_with("vllm") {
            "vllm"
        } else if e.starts_with("sglang") {
            "sglang"
        } else {
            "optimized"
        }
    }

    fn scenario_toml(&self, gpu: &str, model: &str, requests: u32) -> String {
        let arrival = match &self.mode {
            Mode::Offline => "{ process = \"all_at_once\" }".to_string(),
            Mode::Rate(r) => format!("{{ process = \"poisson\", rate_per_s = {r} }}"),
            Mode::Concurrency(n) => format!("{{ process = \"closed_loop\", concurrency = {n} }}"),
        };
        // Attention DP: one attention group (and engine scheduler) per GPU, experts
        // spread over all of them; otherwise one TP group.
        let (parallel, groups) = if self.attention_dp_ep() {
            (format!("tp = 1\nep = {}", self.tp), self.tp)
        } else {
            let ring = if self.ring_all_reduce { "\nall_reduce = \"ring\"" } else { "" };
            (format!("tp = {}{ring}", self.tp), 1)
        };
        // One batch: room for every prompt at once (never below the usual budget).
        let prompts = requests.saturating_mul(self.spread.map_or(self.input, |s| s.input.1));
        let batch_tokens = if self.one_batch { prompts.max(MAX_BATCH_TOKENS) } else { MAX_BATCH_TOKENS };
        format!(
            "[scenario]\nname = \"measured\"\nseed = 1\n\n[hardware]\ngpu = \"{gpu}\"\nnodes = 1\ngpus_per_node = 8\n\n\
             [model]\npreset = \"{model}\"\ndtype = \"{}\"\n\n[parallel]\n{parallel}\n\n[serving]\nmax_batch_tokens = {}\n\
             max_seqs = {}\ngpu_memory_utilization = 0.9\n\n[workload]\nrequests = {requests}\narrival = {arrival}\n\
             prompt_tokens = {}\noutput_tokens = {}\n",
            self.dtype,
            batch_tokens * groups,
            MAX_SEQS * groups,
            length_dist(self.spread.map_or((self.input, self.input), |s| s.input)),
            length_dist(self.spread.map_or((self.output, self.output), |s| s.output)),
        )
    }

    /// Simulates this measurement under `profile` with at most `max_requests` requests
    /// (the source's count when smaller); the simulated value, or why there is none.
    pub fn simulate(&self, profile: &FrameworkProfile, max_requests: u32) -> std::result::Result<f64, String> {
        let gpu = gpu_preset_name(&self.gpu).ok_or_else(|| format!("no preset for GPU {}", self.gpu))?;
        let (model, _) = model_preset_name(&self.model).ok_or_else(|| format!("no preset for model {}", self.model))?;
        let requests = self.requests.unwrap_or(max_requests).min(max_requests).max(1);
        let text = self.scenario_toml(gpu, model, requests);
        let path = Path::new("measured.toml");
        let run = || -> Result<Summary> {
            let scenario = crate::scenario::parse(&text, path, &[])?;
            let mut setup = crate::scenario::validate(&scenario, path)?;
            setup.framework = profile.clone();
            Ok(simulate(&setup, RunOptions::default())?.report.summary)
        };
        let s = run().map_err(|e| e.to_string())?;
        metric_value(&s, &self.metric).ok_or_else(|| format!("unknown metric {}", self.metric))
    }
}

/// The value of `metric` (one of [`METRICS`]) in a run's summary, in the metric's unit.
pub fn metric_value(s: &Summary, metric: &str) -> Option<f64> {
    let ms = 1e3;
    Some(match metric {
        "output_tokens_per_s" => s.throughput.output_tokens_per_s,
        "total_tokens_per_s" => s.throughput.total_tokens_per_s,
        "request_throughput" => s.requests.completed as f64 / s.throughput.window_s,
        "mean_ttft_ms" => s.ttft_s.mean * ms,
        "median_ttft_ms" => s.ttft_s.p50 * ms,
        "p99_ttft_ms" => s.ttft_s.p99 * ms,
        "mean_tpot_ms" => s.tpot_s.mean * ms,
        "median_tpot_ms" => s.tpot_s.p50 * ms,
        "p99_tpot_ms" => s.tpot_s.p99 * ms,
        "mean_itl_ms" => s.itl_s.mean * ms,
        "median_itl_ms" => s.itl_s.p50 * ms,
        "mean_e2el_ms" => s.e2e_s.mean * ms,
        "median_e2el_ms" => s.e2e_s.p50 * ms,
        _ => return None,
    })
}

fn bad(file: &Path, line: usize, msg: String) -> Error {
    Error::Input(InputError::line(file, line, msg))
}

/// The CSV's columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "source",
    "model",
    "dtype",
    "engine",
    "gpu",
    "gpus",
    "tp",
    "input_tokens",
    "output_tokens",
    "mode",
    "metric",
    "value",
    "unit",
    "requests",
    "notes",
];

fn mode(text: &str) -> Option<Mode> {
    if text == "offline" {
        return Some(Mode::Offline);
    }
    if let Some(r) = text.strip_prefix("rate=").and_then(|r| r.parse::<f64>().ok()) {
        return (r.is_finite() && r > 0.0).then_some(Mode::Rate(r));
    }
    let n = text.strip_prefix("concurrency=")?.parse::<u32>().ok()?;
    (n > 0).then_some(Mode::Concurrency(n))
}

/// Parses measurements CSV `text` (read from `file`, named in errors with the line).
pub fn parse_csv(text: &str, file: &Path) -> Result<Vec<Measurement>> {
    let mut rd = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let header = rd.headers().map_err(|e| bad(file, 1, format!("not CSV: {e}")))?.clone();
    if header.iter().collect::<Vec<_>>() != CSV_COLUMNS {
        return Err(bad(file, 1, format!("header must be exactly: {}", CSV_COLUMNS.join(","))));
    }
    let mut out: Vec<Measurement> = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| bad(file, line, format!("not CSV: {e}")))?;
        let num = |c: usize| -> Result<f64> {
            let v = rec[c].parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
            v.ok_or_else(|| bad(file, line, format!("{} is {:?}; must be a number > 0", CSV_COLUMNS[c], &rec[c])))
        };
        let count = |c: usize| -> Result<u32> {
            let v = rec[c].parse::<u32>().ok().filter(|v| *v > 0);
            v.ok_or_else(|| bad(file, line, format!("{} is {:?}; must be a whole number > 0", CSV_COLUMNS[c], &rec[c])))
        };
        // A length is N tokens, or MIN-MAX for lengths spread uniformly over that range.
        let tokens = |c: usize| -> Result<(u32, u32)> {
            let t = &rec[c];
            let (lo, hi) = t.split_once('-').unwrap_or((t, t));
            match (lo.trim().parse::<u32>(), hi.trim().parse::<u32>()) {
                (Ok(a), Ok(b)) if a > 0 && a <= b => Ok((a, b)),
                _ => Err(bad(
                    file,
                    line,
                    format!("{} is {t:?}; must be a whole number > 0, or MIN-MAX with 0 < MIN <= MAX", CSV_COLUMNS[c]),
                )),
            }
        };
        let (input, output) = (tokens(7)?, tokens(8)?);
        let source = match (&rec[0], out.last()) {
            ("same", Some(prev)) => prev.source.clone(),
            ("same", None) => return Err(bad(file, line, "source is `same` on the first row".into())),
            (s, _) => s.to_string(),
        };
        if !METRICS.contains(&&rec[10]) {
            return Err(bad(file, line, format!("metric {:?} unknown; known: {}", &rec[10], METRICS.join(", "))));
        }
        let m = mode(&rec[9]).ok_or_else(|| {
            bad(file, line, format!("mode {:?}; must be offline, rate=<requests/s> or concurrency=<n>", &rec[9]))
        })?;
        out.push(Measurement {
            source,
            engine: rec[3].to_string(),
            model: rec[1].to_string(),
            dtype: rec[2].to_string(),
            gpu: rec[4].to_string(),
            tp: count(6)?,
            input: (input.0 + input.1) / 2,
            output: (output.0 + output.1) / 2,
            requests: if rec[13].is_empty() { None } else { Some(count(13)?) },
            mode: m,
            metric: rec[10].to_string(),
            value: num(11)?,
            attention_dp: rec[14].contains(ATTENTION_DP_NOTE),
            one_batch: rec[14].contains(ONE_BATCH_NOTE),
            ring_all_reduce: rec[14].contains(RING_NOTE),
            spread: (input.0 < input.1 || output.0 < output.1).then_some(Spread { input, output }),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "source,model,dtype,engine,gpu,gpus,tp,input_tokens,output_tokens,mode,metric,value,unit,requests,notes\n";

    #[test]
    fn a_row_parses_and_same_repeats_the_source() {
        let text = format!(
            "{HEAD}paper,Llama-3.1-8B,fp8,vLLM,H100-SXM-80GB,1,1,128,64,offline,output_tokens_per_s,1000,tok/s,50,\n\
             same,Llama-3.1-8B,fp8,vLLM,H100-SXM-80GB,1,1,128,64,concurrency=8,median_tpot_ms,9.5,ms,,\n"
        );
        let rows = parse_csv(&text, Path::new("m.csv")).unwrap();
        assert_eq!(rows[1].source, "paper");
        assert_eq!(rows[1].mode, Mode::Concurrency(8));
        assert_eq!((rows[0].requests, rows[1].requests), (Some(50), None));
        assert_eq!(rows[0].engine_profile(), "vllm");
    }

    #[test]
    fn a_length_range_is_simulated_as_uniform_lengths_around_its_midpoint() {
        // 17000-23000 in, 1700-2300 out: midpoints (17000 + 23000) / 2 = 20000 and 2000;
        // the scenario draws each request's lengths uniformly over the ranges.
        let text = format!(
            "{HEAD}p,Llama-3.1-8B,bf16,vLLM,H100-SXM-80GB,1,1,17000-23000,1700-2300,concurrency=8,median_itl_ms,15,ms,150,\n"
        );
        let row = &parse_csv(&text, Path::new("m.csv")).unwrap()[0];
        assert_eq!((row.input, row.output), (20000, 2000));
        assert_eq!(row.spread, Some(Spread { input: (17000, 23000), output: (1700, 2300) }));
        assert!(row.configuration().contains("TP1 17000-23000/1700-2300 concurrency 8"), "{}", row.configuration());
        let toml = row.scenario_toml("h100-sxm", "llama-3-8b", 150);
        assert!(toml.contains("prompt_tokens = { dist = \"uniform\", min = 17000, max = 23000 }"), "{toml}");
        assert!(toml.contains("output_tokens = { dist = \"uniform\", min = 1700, max = 2300 }"), "{toml}");
        // A backwards range is an error naming the line and the column.
        let text = format!("{HEAD}p,Llama-3.1-8B,bf16,vLLM,H100-SXM-80GB,1,1,9-3,5,offline,median_itl_ms,15,ms,,\n");
        let e = parse_csv(&text, Path::new("m.csv")).unwrap_err().to_string();
        assert!(e.contains("m.csv:2") && e.contains("input_tokens is \"9-3\""), "{e}");
    }

    #[test]
    fn a_moe_row_noted_attention_dp_runs_one_attention_group_per_gpu() {
        // The note puts the 8 GPUs' attention in 8 data-parallel groups with the experts
        // over all 8 (tp = 1, ep = 8); the batch limits are per group (1024 sequences and
        // 8192 tokens each: 8192 and 65,536 for the replica). A dense row with the same
        // note, and a MoE row without it, keep one TP group of 8.
        let note = format!("\"source says so; {ATTENTION_DP_NOTE}8\"");
        let text = format!(
            "{HEAD}p,Qwen3-235B-A22B,fp8,TensorRT-LLM,H200-SXM-141GB,8,8,128,2048,offline,output_tokens_per_s,1,x,,{note}\n\
             p,Llama-3.1-405B,fp8,TensorRT-LLM,H200-SXM-141GB,8,8,128,2048,offline,output_tokens_per_s,1,x,,{note}\n\
             p,Qwen3-235B-A22B,fp8,TensorRT-LLM,H200-SXM-141GB,8,8,128,2048,offline,output_tokens_per_s,1,x,,TP8\n"
        );
        let rows = parse_csv(&text, Path::new("m.csv")).unwrap();
        assert!(rows[0].attention_dp_ep() && rows[0].configuration().contains("TP8 (attention DP x EP8) 128/2048"));
        let toml = rows[0].scenario_toml("h200-sxm", "qwen3-235b-a22b", 10);
        assert!(toml.contains("[parallel]\ntp = 1\nep = 8\n"), "{toml}");
        assert!(toml.contains("max_batch_tokens = 65536\nmax_seqs = 8192\n"), "{toml}");
        for row in &rows[1..] {
            assert!(!row.attention_dp_ep());
            let toml = row.scenario_toml("h200-sxm", "x", 10);
            assert!(
                toml.contains("[parallel]\ntp = 8\n") && toml.contains("max_batch_tokens = 8192\nmax_seqs = 1024\n")
            );
        }
    }

    #[test]
    fn a_one_batch_ring_row_holds_every_prompt_in_one_iteration() {
        // 32 prompts of 512 tokens in one batch: 32 x 512 = 16,384 tokens > the usual
        // 8192; one prompt of 512 keeps the usual 8192. Each row's batch is in its label.
        let note = format!("\"{ONE_BATCH_NOTE}; {RING_NOTE}: why\"");
        let text = format!(
            "{HEAD}p,Llama-2-70B,fp16,vLLM,A100-SXM-80GB,8,8,512,128,offline,mean_tpot_ms,53,ms,32,{note}\n\
             p,Llama-2-70B,fp16,vLLM,A100-SXM-80GB,8,8,512,128,offline,mean_ttft_ms,94,ms,1,{note}\n"
        );
        let rows = parse_csv(&text, Path::new("m.csv")).unwrap();
        assert_eq!(rows[0].configuration(), "Llama-2-70B fp16 A100-SXM-80GB TP8 512/128 batch 32");
        let toml = rows[0].scenario_toml("a100-80g", "llama-2-70b", 32);
        assert!(
            toml.contains("tp = 8\nall_reduce = \"ring\"\n") && toml.contains("max_batch_tokens = 16384\n"),
            "{toml}"
        );
        assert!(rows[1].scenario_toml("a100-80g", "llama-2-70b", 1).contains("max_batch_tokens = 8192\n"));
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        let text =
            format!("{HEAD}p,Llama-3.1-8B,fp8,vLLM,H100-SXM-80GB,1,0,128,64,offline,output_tokens_per_s,1,x,,\n");
        let e = parse_csv(&text, Path::new("m.csv")).unwrap_err().to_string();
        assert!(e.contains("m.csv:2") && e.contains("tp is \"0\""), "{e}");
        let text = format!("{HEAD}p,Llama-3.1-8B,fp8,vLLM,H100-SXM-80GB,1,1,128,64,offline,tokens,1,x,,\n");
        assert!(parse_csv(&text, Path::new("m.csv")).unwrap_err().to_string().contains("median_tpot_ms"));
    }
}
