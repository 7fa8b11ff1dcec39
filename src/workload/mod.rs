//! Request streams: generated arrivals and lengths, and trace replay.
//!
//! A [`Workload`] hands out [`RequestSpec`]s with ids 0, 1, 2, ... in
//! nondecreasing arrival order. Where times and lengths come from:
//!
//! | `[workload]` has | arrival times | lengths |
//! |---|---|---|
//! | `arrival` + `prompt_tokens` + `output_tokens` | the process ([`arrivals`]) | the distributions ([`lengths`]) |
//! | `trace` | the trace's timestamps | the trace |
//! | `trace` + `arrival` | the process (trace times ignored, noted in [`Workload::warnings`]) | the trace, in order |
//!
//! Generated workloads are drawn lazily (memory does not grow with `requests`);
//! arrivals, prompt lengths and output lengths draw from three separate seeded
//! streams, so changing a length distribution never moves an arrival. A trace is
//! read and validated in full up front (up to the request limit) and kept as
//! 16-byte rows.
//!
//! `time_scale` multiplies every inter-arrival gap (traces and generated
//! processes alike); [`Workload::set_rate_factor`] divides the gaps that follow
//! it. Neither affects `all_at_once` or `closed_loop`.

pub mod arrivals;
pub mod config;
pub mod lengths;
pub mod pacer;
pub mod prefix;
pub mod sessions;
pub mod timestamp;
pub mod trace;

use crate::engine::rng::{stream, SimRng, Stream};
use crate::engine::SimTime;
use crate::error::{Error, InputError};
use arrivals::ArrivalProcess;
use config::{ArrivalConfig, TraceFormat, WorkloadConfig};
use lengths::LengthSampler;
use pacer::Pacer;
use prefix::PrefixKey;
use std::path::Path;
use trace::{load_trace, Trace};

/// One request as the workload issues it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    /// 0, 1, 2, ... in issue order.
    pub id: u64,
    /// When it arrives.
    pub arrival: SimTime,
    /// Prompt tokens, >= 1.
    pub prompt_tokens: u32,
    /// Output tokens to generate, >= 1.
    pub output_tokens: u32,
    /// Where its prefix-hash chain comes from ([`Workload::chain`]).
    pub prefix: PrefixKey,
}

/// A stream of requests: generated or replayed from a trace.
#[derive(Clone, Debug)]
pub struct Workload {
    total: u64,
    next_id: u64,
    timing: Timing,
    lengths: Lengths,
    pacer: Pacer,
    trace_format: Option<TraceFormat>,
    warnings: Vec<String>,
}

#[derive(Clone, Debug)]
enum Timing {
    Process(Box<ArrivalProcess>),
    Trace,
    ClosedLoop(u32),
}

#[derive(Clone, Debug)]
enum Lengths {
    Generated(Box<Generated>),
    Trace(Box<Trace>),
}

#[derive(Clone, Debug)]
struct Generated {
    prompt: LengthSampler,
    output: LengthSampler,
    prompt_rng: SimRng,
    output_rng: SimRng,
    /// Tokens of the shared system prompt (0: none).
    system_tokens: u32,
    /// Multi-turn sessions, with the next session's start drawn ahead.
    sessions: Option<(sessions::Sessions, Option<SimTime>)>,
}

impl Workload {
    /// The workload for `config` with random streams from `seed`. `trace_path`
    /// is the resolved trace file (when `None`, `config.trace` is resolved against
    /// the folder of `file`, the scenario file named in messages).
    pub fn from_config(
        config: &WorkloadConfig,
        trace_path: Option<&Path>,
        seed: u64,
        file: &Path,
    ) -> Result<Workload, Error> {
        let time_scale = config.time_scale.unwrap_or(1.0);
        if !(time_scale.is_finite() && time_scale > 0.0) {
            return Err(
                InputError::key(file, "workload.time_scale", format!("is {time_scale}; must be a number > 0")).into()
            );
        }
        let arrival_rng = stream(seed, Stream::Arrivals, 0);
        match &config.trace {
            Some(name) => {
                let path = match trace_path {
                    Some(p) => p.to_path_buf(),
                    None => file.parent().unwrap_or(Path::new(".")).join(name),
                };
                Self::replay(config, &path, Pacer::new(time_scale), arrival_rng, file)
            }
            None => Self::generate(config, Pacer::new(time_scale), arrival_rng, seed, file),
        }
    }

    /// Replays the trace at `path`: its lengths, and its times unless `config`
    /// gives an arrival process.
    fn replay(
        config: &WorkloadConfig,
        path: &Path,
        pacer: Pacer,
        arrival_rng: SimRng,
        file: &Path,
    ) -> Result<Workload, Error> {
        let mut warnings = Vec::new();
        let limit = match (config.limit, config.requests) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let trace = load_trace(path, config.trace_format, limit)?;
        if trace.zero_output_rows > 0 {
            warnings.push(format!(
                "{}: {} rows have 0 output tokens; they are replayed with 1 output token",
                path.display(),
                trace.zero_output_rows
            ));
        }
        let timing = match &config.arrival {
            None => Timing::Trace,
            Some(a) => {
                warnings.push(format!(
                    "{}: arrival times come from workload.arrival; the trace's timestamps are ignored",
                    path.display()
                ));
                timing_for(a, arrival_rng, file)?
            }
        };
        Ok(Workload {
            total: trace.rows.len() as u64,
            next_id: 0,
            timing,
            trace_format: Some(trace.format),
            lengths: Lengths::Trace(Box::new(trace)),
            pacer,
            warnings,
        })
    }

    /// Draws `config.requests` requests from its arrival process and length
    /// distributions, each from its own stream of `seed`.
    fn generate(
        config: &WorkloadConfig,
        pacer: Pacer,
        arrival_rng: SimRng,
        seed: u64,
        file: &Path,
    ) -> Result<Workload, Error> {
        let missing = |key: &str, example: &str| InputError::key(file, key, format!("is missing; e.g. {example}"));
        let total = config
            .requests
            .ok_or_else(|| missing("workload.requests", "requests = 1000 (or give a trace to replay)"))?;
        let arrival = config
            .arrival
            .as_ref()
            .ok_or_else(|| missing("workload.arrival", "arrival = { process = \"poisson\", rate_per_s = 10.0 }"))?;
        let prompt = config
            .prompt_tokens
            .as_ref()
            .ok_or_else(|| missing("workload.prompt_tokens", "prompt_tokens = { dist = \"fixed\", value = 512 }"))?;
        let output = config
            .output_tokens
            .as_ref()
            .ok_or_else(|| missing("workload.output_tokens", "output_tokens = { dist = \"fixed\", value = 256 }"))?;
        let sessions = match &config.sessions {
            None => None,
            Some(_) if matches!(arrival, ArrivalConfig::ClosedLoop { .. }) => {
                return Err(InputError::key(
                    file,
                    "workload.sessions",
                    "needs an open-loop arrival process (poisson, gamma, constant or all_at_once), not closed_loop",
                )
                .into())
            }
            Some(s) => Some((sessions::Sessions::new(s, seed, file)?, None)),
        };
        Ok(Workload {
            total,
            next_id: 0,
            timing: timing_for(arrival, arrival_rng, file)?,
            lengths: Lengths::Generated(Box::new(Generated {
                prompt: LengthSampler::new(prompt, "workload.prompt_tokens", file)?,
                output: LengthSampler::new(output, "workload.output_tokens", file)?,
                prompt_rng: stream(seed, Stream::PromptLengths, 0),
                output_rng: stream(seed, Stream::OutputLengths, 0),
                system_tokens: config.system_prompt_tokens.unwrap_or(0),
                sessions,
            })),
            pacer,
            trace_format: None,
            warnings: Vec::new(),
        })
    }

    /// Requests this workload issues in all.
    pub fn total_requests(&self) -> u64 {
        self.total
    }

    /// Requests not yet issued.
    pub fn remaining(&self) -> u64 {
        self.total - self.next_id
    }

    /// `Some(concurrency)` for a closed loop, `None` for open-loop arrivals.
    pub fn closed_loop_concurrency(&self) -> Option<u32> {
        match self.timing {
            Timing::ClosedLoop(c) => Some(c),
            _ => None,
        }
    }

    /// The trace's format when replaying one.
    pub fn trace_format(&self) -> Option<TraceFormat> {
        self.trace_format
    }

    /// Things the run should tell the user (e.g. trace rows with 0 output tokens).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The next request, or `None` when all are issued.
    ///
    /// Open loop: the next in arrival order; `now` is ignored (call it ahead of
    /// time to schedule the arrival). Closed loop: call once per slot at the start
    /// and once per completion; the request arrives at `now`.
    pub fn next_request(&mut self, now: SimTime) -> Option<RequestSpec> {
        if self.next_id >= self.total {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        if let (Lengths::Generated(g), Timing::Process(p)) = (&mut self.lengths, &mut self.timing) {
            if g.sessions.is_some() {
                return Some(next_turn(g, &mut self.pacer, p, id));
            }
        }
        let (prompt_tokens, output_tokens, row_offset, prefix) = match &mut self.lengths {
            Lengths::Generated(g) => {
                let g = &mut **g;
                let p = g.prompt.sample(&mut g.prompt_rng).saturating_add(g.system_tokens);
                (p, g.output.sample(&mut g.output_rng), 0, PrefixKey::Session(id))
            }
            Lengths::Trace(t) => {
                let r = t.rows[id as usize];
                let key = if t.hash_starts.is_empty() { PrefixKey::None } else { PrefixKey::TraceRow(id as u32) };
                (r.prompt_tokens, r.output_tokens, r.offset_ns, key)
            }
        };
        let arrival = match &mut self.timing {
            Timing::Process(p) => self.pacer.arrival(p.next_offset()),
            Timing::Trace => self.pacer.arrival(row_offset),
            Timing::ClosedLoop(_) => now,
        };
        Some(RequestSpec { id, arrival, prompt_tokens, output_tokens, prefix })
    }

    /// The prefix-hash chain of `spec` in blocks of `block_tokens` tokens (a trace's
    /// hash ids are in the trace's own block size, which the caller must pass): the
    /// prompt's full blocks for a trace row (replies have no hash ids), the prompt's
    /// and the reply's for a generated request.
    pub fn chain(&self, spec: &RequestSpec, block_tokens: u32) -> Box<[u64]> {
        match (spec.prefix, &self.lengths) {
            (PrefixKey::TraceRow(i), Lengths::Trace(t)) => {
                prefix::trace_chain(t.row_hashes(i as usize), spec.prompt_tokens, block_tokens)
            }
            // A generated chain runs on through the reply: a session's next turn resends
            // it, and its blocks are cached as decoding fills them.
            (PrefixKey::Session(s), Lengths::Generated(g)) => {
                let tokens = spec.prompt_tokens.saturating_add(spec.output_tokens);
                prefix::generated_chain(s, tokens, g.system_tokens, block_tokens)
            }
            _ => Box::default(),
        }
    }

    /// True when requests carry a prefix identity (generated, or a trace with hash ids).
    pub fn has_prefixes(&self) -> bool {
        match &self.lengths {
            Lengths::Trace(t) => !t.hash_starts.is_empty(),
            Lengths::Generated(_) => true,
        }
    }

    /// What-if `load_change`: gaps between requests issued after this call are
    /// divided by `factor` (2 = twice the rate), until the next call (1 restores
    /// the original rate). A request already issued keeps its time. Ignored unless
    /// `factor` is finite and > 0, and for `all_at_once` and `closed_loop`.
    pub fn set_rate_factor(&mut self, factor: f64) {
        self.pacer.set_rate_factor(factor);
    }
}

/// The next request of a workload with sessions: a pending later turn if it comes
/// before the next session opens, else the next session's first turn.
fn next_turn(g: &mut Generated, pacer: &mut Pacer, process: &mut ArrivalProcess, id: u64) -> RequestSpec {
    let Some((sessions, ahead)) = g.sessions.as_mut() else { unreachable!("called with sessions") };
    let start = *ahead.get_or_insert_with(|| pacer.arrival(process.next_offset()));
    let (arrival, turn, prompt_tokens) = match sessions.next_pending() {
        Some(at) if at < start => {
            let (at, turn) = sessions.pop_pending().expect("a pending turn");
            (at, turn, turn.context.saturating_add(sessions.follow_up_tokens()))
        }
        _ => {
            *ahead = None;
            let prompt = g.prompt.sample(&mut g.prompt_rng).saturating_add(g.system_tokens);
            (start, sessions.open(), prompt)
        }
    };
    let output_tokens = g.output.sample(&mut g.output_rng);
    sessions.after(&turn, arrival, prompt_tokens.saturating_add(output_tokens));
    RequestSpec { id, arrival, prompt_tokens, output_tokens, prefix: PrefixKey::Session(turn.session) }
}

fn timing_for(arrival: &ArrivalConfig, rng: SimRng, file: &Path) -> Result<Timing, InputError> {
    if let ArrivalConfig::ClosedLoop { concurrency } = *arrival {
        if concurrency == 0 {
            return Err(InputError::key(file, "workload.arrival.concurrency", "is 0; must be at least 1"));
        }
        return Ok(Timing::ClosedLoop(concurrency));
    }
    match ArrivalProcess::new(arrival, rng, file)? {
        Some(p) => Ok(Timing::Process(Box::new(p))),
        None => Err(InputError::key(file, "workload.arrival", "has no arrival times")),
    }
}
