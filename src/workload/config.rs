//! The workload as a scenario's `[workload]` table states it: generated requests
//! (arrival process, length distributions) or a trace replay. These are the
//! workload's own domain types; the scenario schema embeds them.

use serde::{Deserialize, Serialize};

/// `[workload]`: generated requests, or a trace replay.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Requests to generate (required without a trace; with a trace, same as `limit`).
    pub requests: Option<u64>,
    /// Arrival process (required without a trace).
    pub arrival: Option<ArrivalConfig>,
    /// Prompt length distribution (required without a trace).
    pub prompt_tokens: Option<LengthDist>,
    /// Output length distribution (required without a trace).
    pub output_tokens: Option<LengthDist>,
    /// Trace file to replay, relative to the scenario file.
    pub trace: Option<String>,
    /// Trace format: `azure`, `csv` (arrival_s,prompt_tokens,output_tokens) or
    /// `mooncake` (JSONL); default: from the header / extension.
    pub trace_format: Option<TraceFormat>,
    /// Multiplies trace inter-arrival times (0.5 = replay twice as fast; default 1).
    pub time_scale: Option<f64>,
    /// Replay at most this many trace requests.
    pub limit: Option<u64>,
    /// Tokens of a system prompt every generated request starts with (default 0):
    /// shared prefix blocks for prefix caching.
    pub system_prompt_tokens: Option<u32>,
    /// `[workload.sessions]`: multi-turn sessions (generated workloads, open loop).
    pub sessions: Option<SessionConfig>,
}

/// `[workload.sessions]`: each arrival opens a conversation of `turns` turns; a later
/// turn resends the previous prompt and reply plus `follow_up_tokens` new tokens, a
/// think/tool gap (exponential, mean `think_time_s`) after the previous turn arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Turns per session (at least 1 is used).
    pub turns: LengthDist,
    /// New tokens a later turn adds.
    pub follow_up_tokens: LengthDist,
    /// Mean gap from a turn's arrival to the next turn's, s (include the reply's time).
    pub think_time_s: f64,
}

/// Supported trace formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// Azure LLM inference trace: TIMESTAMP,ContextTokens,GeneratedTokens.
    Azure,
    /// Plain CSV: arrival_s,prompt_tokens,output_tokens.
    Csv,
    /// Mooncake JSONL: timestamp (ms), input_length, output_length.
    Mooncake,
}

/// Arrival processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "process", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArrivalConfig {
    /// Exponential inter-arrivals.
    Poisson {
        /// Mean requests per second.
        rate_per_s: f64,
    },
    /// Gamma inter-arrivals with coefficient of variation `cv` (> 1 is burstier than Poisson).
    Gamma {
        /// Mean requests per second.
        rate_per_s: f64,
        /// Coefficient of variation of inter-arrival times.
        cv: f64,
    },
    /// Evenly spaced.
    Constant {
        /// Requests per second.
        rate_per_s: f64,
    },
    /// Every request at time zero (offline batch).
    AllAtOnce,
    /// A fixed number of requests outstanding: a new one arrives when one finishes.
    ClosedLoop {
        /// Requests in flight.
        concurrency: u32,
    },
}

/// Token-length distributions; every draw is clamped to `[min, max]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthDist {
    /// Always `value`.
    Fixed {
        /// Tokens.
        value: u32,
    },
    /// Uniform integers in [min, max].
    Uniform {
        /// Smallest, tokens.
        min: u32,
        /// Largest, tokens.
        max: u32,
    },
    /// Normal, rounded and clamped.
    Normal {
        /// Mean, tokens.
        mean: f64,
        /// Standard deviation, tokens.
        std: f64,
        /// Lower bound (default 1).
        #[serde(default = "default_len_min")]
        min: u32,
        /// Upper bound (default 131072).
        #[serde(default = "default_len_max")]
        max: u32,
    },
    /// Log-normal with the given median and log-space sigma, rounded and clamped.
    Lognormal {
        /// Median, tokens.
        median: f64,
        /// Standard deviation of ln(length).
        sigma: f64,
        /// Lower bound (default 1).
        #[serde(default = "default_len_min")]
        min: u32,
        /// Upper bound (default 131072).
        #[serde(default = "default_len_max")]
        max: u32,
    },
    /// min + (k - 1) where rank k in 1..=(max-min+1) has weight 1/k^s.
    Zipf {
        /// Skew exponent, > 0.
        s: f64,
        /// Smallest, tokens.
        min: u32,
        /// Largest, tokens.
        max: u32,
    },
}

fn default_len_min() -> u32 {
    1
}
fn default_len_max() -> u32 {
    131_072
}
