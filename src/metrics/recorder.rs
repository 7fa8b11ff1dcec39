//! The recorder: everything a run measures, kept as bounded aggregates.
//!
//! Per-request rows stream to `requests.csv` as requests finish; per-request figures
//! needed for exact percentiles are kept as one `f64` each (bounded by the request
//! count, not by simulated time); per-token gaps go to a log-histogram; GPU time goes
//! to the [`Ledger`] and bucketed series; timeline spans are kept only inside the
//! timeline window.

pub use super::rows::RequestRow;
use super::series::Buckets;
use super::stats::LogHistogram;
use crate::engine::SimTime;
use crate::error::Result;
use crate::parallel::ledger::{CommKind, GpuState, Ledger};

/// Where per-request rows stream as requests finish (output/ writes them as CSV), so
/// memory does not grow with the run.
pub trait RequestSink {
    /// Writes one row.
    fn write(&mut self, row: &RequestRow) -> Result<()>;
    /// Finishes the stream (the file appears whole, or not at all).
    fn close(self: Box<Self>) -> Result<()>;
}

/// What the recorder needs of a finished request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequestTimes {
    /// Id in arrival order.
    pub id: u64,
    /// Arrival.
    pub arrival: SimTime,
    /// First scheduled.
    pub scheduled_at: Option<SimTime>,
    /// First token produced.
    pub first_token_at: Option<SimTime>,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Times preempted.
    pub preemptions: u32,
    /// Re-routed after a GPU failure.
    pub rerouted: bool,
}

/// What a timeline span shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    /// QKV, attention, output projection.
    Attention,
    /// Dense MLP.
    Mlp,
    /// MoE router and experts.
    Experts,
    /// LM head.
    LmHead,
    /// A TP all-reduce (or waiting for one).
    TpAllReduce,
    /// A PP send/recv (or waiting for one).
    PpSendRecv,
    /// An EP all-to-all (or waiting for one).
    EpAllToAll,
    /// Nothing.
    Idle,
}

impl Activity {
    /// Name used in timeline.csv.
    pub fn name(self) -> &'static str {
        match self {
            Activity::Attention => "attention",
            Activity::Mlp => "mlp",
            Activity::Experts => "experts",
            Activity::LmHead => "lm_head",
            Activity::TpAllReduce => "tp_allreduce",
            Activity::PpSendRecv => "pp_sendrecv",
            Activity::EpAllToAll => "ep_alltoall",
            Activity::Idle => "",
        }
    }
    /// The collective kind of a communication activity.
    pub fn comm_kind(self) -> Option<CommKind> {
        match self {
            Activity::TpAllReduce => Some(CommKind::Tp),
            Activity::PpSendRecv => Some(CommKind::Pp),
            Activity::EpAllToAll => Some(CommKind::Ep),
            _ => None,
        }
    }
}

/// One span of one GPU's state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// Global GPU index.
    pub gpu: u32,
    /// Start.
    pub start: SimTime,
    /// End.
    pub end: SimTime,
    /// State.
    pub state: GpuState,
    /// What ran.
    pub what: Activity,
    /// Batch id.
    pub batch: u64,
    /// FLOPs (compute spans).
    pub flops: f64,
    /// Bytes moved per GPU (communication spans).
    pub bytes: f64,
}

/// Most spans kept, so a huge window cannot exhaust memory.
pub const MAX_SPANS: usize = 2_000_000;

/// Everything measured during a run.
pub struct Recorder {
    /// GPU state totals.
    pub ledger: Ledger,
    /// Compute ns per GPU per time bucket.
    pub util: Buckets,
    /// Lanes: output tokens, prompt tokens, queued (max), running (max).
    pub series: Buckets,
    /// TTFT of finished requests, s.
    pub ttft: Vec<f64>,
    /// TPOT of finished requests with more than one output token, s.
    pub tpot: Vec<f64>,
    /// End-to-end latency, s.
    pub e2e: Vec<f64>,
    /// Queueing delay, s.
    pub queue: Vec<f64>,
    /// Gaps between tokens.
    pub itl: LogHistogram,
    /// Requests arrived.
    pub arrived: u64,
    /// Requests finished.
    pub completed: u64,
    /// Preemptions.
    pub preemptions: u64,
    /// Requests re-routed.
    pub rerouted: u64,
    /// Dropped requests, with reasons (first few kept verbatim).
    pub dropped: u64,
    /// Reasons for drops (deduplicated, at most 10).
    pub dropped_reasons: Vec<String>,
    /// First arrival.
    pub first_arrival: Option<SimTime>,
    /// Last completion.
    pub last_completion: SimTime,
    /// Output tokens produced.
    pub output_tokens: u64,
    /// Prompt tokens of finished requests.
    pub prompt_tokens: u64,
    /// Tokens routed to each expert, in total and per step.
    pub expert_load: super::experts::ExpertLoad,
    /// Timeline window; spans are kept for stage runs overlapping it.
    pub window: Option<(SimTime, SimTime)>,
    /// Spans inside the window.
    pub spans: Vec<Span>,
    /// Spans not kept because of [`MAX_SPANS`].
    pub spans_dropped: u64,
    /// Request ids of each batch with spans in the window, by batch id.
    pub batch_requests: std::collections::BTreeMap<u64, Vec<u64>>,
    /// Sum over stages of stage busy time inside pipeline spans, ns.
    pub pipeline_stage_busy_ns: u128,
    /// Sum over replicas of (pp x length of periods with a batch in flight), ns.
    pub pipeline_capacity_ns: u128,
    /// Stage iterations executed.
    pub iterations: u64,
    requests: Option<Box<dyn RequestSink>>,
}

impl Recorder {
    /// A recorder for `gpus` GPUs and `experts` experts; streams request rows to
    /// `requests` when given.
    /// Utilization series are kept for the first `plan_gpus` GPUs only (the plan's: a
    /// cluster may declare far more), so memory follows the plan.
    pub fn new(gpus: usize, plan_gpus: usize, experts: usize, requests: Option<Box<dyn RequestSink>>) -> Result<Self> {
        Ok(Recorder {
            ledger: Ledger::new(gpus),
            util: Buckets::new(plan_gpus.min(gpus)),
            series: Buckets::new(4),
            ttft: Vec::new(),
            tpot: Vec::new(),
            e2e: Vec::new(),
            queue: Vec::new(),
            itl: LogHistogram::default(),
            arrived: 0,
            completed: 0,
            preemptions: 0,
            rerouted: 0,
            dropped: 0,
            dropped_reasons: Vec::new(),
            first_arrival: None,
            last_completion: SimTime::ZERO,
            output_tokens: 0,
            prompt_tokens: 0,
            expert_load: super::experts::ExpertLoad::new(experts),
            window: None,
            spans: Vec::new(),
            spans_dropped: 0,
            batch_requests: std::collections::BTreeMap::new(),
            pipeline_stage_busy_ns: 0,
            pipeline_capacity_ns: 0,
            iterations: 0,
            requests,
        })
    }

    /// A request arrived.
    pub fn arrival(&mut self, t: SimTime) {
        self.arrived += 1;
        self.first_arrival.get_or_insert(t);
    }

    /// A request was dropped.
    pub fn drop_request(&mut self, reason: String) {
        self.dropped += 1;
        if self.dropped_reasons.len() < 10 && !self.dropped_reasons.contains(&reason) {
            self.dropped_reasons.push(reason);
        }
    }

    /// A token was produced at `t`; the sequence's previous one at `prev_token_at`.
    /// The throughput series is fed once per batch by [`Recorder::batch_progress`].
    pub fn token(&mut self, prev_token_at: Option<SimTime>, t: SimTime) {
        self.output_tokens += 1;
        if let Some(prev) = prev_token_at {
            self.itl.add((t - prev).as_secs_f64());
        }
    }

    /// A batch finished at `t` having produced `tokens` output tokens and processed
    /// `prompt_tokens` prompt tokens: one series update per batch, not per token
    /// (the sums are of whole numbers, so grouping them changes nothing).
    pub fn batch_progress(&mut self, t: SimTime, tokens: u64, prompt_tokens: u64) {
        if tokens > 0 {
            self.series.add_at(t, 0, tokens as f64);
        }
        if prompt_tokens > 0 {
            self.series.add_at(t, 1, prompt_tokens as f64);
        }
    }

    /// Queue levels at `t`.
    pub fn levels(&mut self, t: SimTime, queued: usize, running: usize) {
        self.series.max_at(t, 2, queued as f64);
        self.series.max_at(t, 3, running as f64);
    }

    /// A request finished on `replica` at `t`.
    pub fn finish(&mut self, r: &RequestTimes, replica: u32, t: SimTime) -> Result<()> {
        self.completed += 1;
        self.last_completion = self.last_completion.max(t);
        self.prompt_tokens += r.prompt_tokens as u64;
        let first = r.first_token_at.unwrap_or(t);
        let scheduled = r.scheduled_at.unwrap_or(r.arrival);
        let ttft = (first - r.arrival).as_secs_f64();
        let e2e = (t - r.arrival).as_secs_f64();
        let tpot = if r.output_tokens > 1 { (e2e - ttft) / (r.output_tokens - 1) as f64 } else { 0.0 };
        let queue = (scheduled - r.arrival).as_secs_f64();
        self.ttft.push(ttft);
        self.e2e.push(e2e);
        self.queue.push(queue);
        if r.output_tokens > 1 {
            self.tpot.push(tpot);
        }
        if let Some(w) = &mut self.requests {
            let row = RequestRow {
                id: r.id,
                replica,
                arrival_s: r.arrival.as_secs_f64(),
                prompt_tokens: r.prompt_tokens,
                output_tokens: r.output_tokens,
                scheduled_s: scheduled.as_secs_f64(),
                first_token_s: first.as_secs_f64(),
                finish_s: t.as_secs_f64(),
                ttft_s: ttft,
                tpot_s: tpot,
                e2e_s: e2e,
                queue_s: queue,
                preemptions: r.preemptions,
                rerouted: r.rerouted,
            };
            w.write(&row)?;
        }
        Ok(())
    }

    /// At the `seen`-th arrival of a run of `total` requests: opens the default
    /// timeline window ([`Recorder::open_steady_window`] on `span()`) once half of
    /// them have arrived, if it is not open yet. The one rule of both serving loops.
    pub fn open_window_at_half(&mut self, now: SimTime, seen: u64, total: u64, span: impl FnOnce() -> SimTime) {
        if self.window.is_none() && seen * 2 >= total {
            self.open_steady_window(now, span());
        }
    }

    /// Opens the timeline window on a few iterations in steady state: from 1.5 to 5.5
    /// typical batch spans (`span`, at least 1 ms) after `now`.
    pub fn open_steady_window(&mut self, now: SimTime, span: SimTime) {
        let span = span.max(SimTime::from_ms(1)).as_ns();
        let start = now + SimTime::from_ns(span * 3 / 2);
        self.window = Some((start, start + SimTime::from_ns(span * 4)));
    }

    /// True when a stage run over [start, end) should keep spans.
    pub fn wants_spans(&self, start: SimTime, end: SimTime) -> bool {
        match self.window {
            Some((a, b)) => start < b && end > a && self.spans.len() < MAX_SPANS,
            None => false,
        }
    }

    /// Keeps a span (clipped to the window).
    pub fn span(&mut self, s: Span) {
        let Some((a, b)) = self.window else { return };
        if s.end <= a || s.start >= b || s.end <= s.start {
            return;
        }
        if self.spans.len() >= MAX_SPANS {
            self.spans_dropped += 1;
            return;
        }
        self.spans.push(Span { start: s.start.max(a), end: s.end.min(b), ..s });
    }

    /// Finishes the streamed requests.csv.
    pub fn close(&mut self) -> Result<()> {
        match self.requests.take() {
            Some(w) => w.close(),
            None => Ok(()),
        }
    }
}
