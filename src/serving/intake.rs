//! The request stream's side of a serving run, one for the co-located loop
//! ([`super::sim`]) and the pooled one ([`super::disagg::sim`]): when the next request
//! is pulled from the workload (an open stream at each arrival, a closed loop when a
//! request finishes or is dropped), and what an arrival is before a router sees it
//! (counted, and the default timeline window opened once half the requests are in).

use super::request::Request;
use super::RunOptions;
use crate::engine::{EventQueue, SimTime};
use crate::metrics::recorder::Recorder;
use crate::workload::{RequestSpec, Workload};

/// The workload and what the run has taken from it.
pub struct Intake {
    /// The request stream.
    pub workload: Workload,
    arrivals_seen: u64,
    /// No window was asked for: open one on a few steady iterations.
    default_window: bool,
}

impl Intake {
    /// The intake of `workload` for a run with `opts` (its window only).
    pub fn new(workload: Workload, opts: &RunOptions) -> Self {
        Intake { workload, arrivals_seen: 0, default_window: opts.window_s.is_none() }
    }

    /// Schedules the first arrivals: one per closed-loop slot, or an open stream's first.
    pub fn start<E>(&mut self, queue: &mut EventQueue<E>, arrival: impl Fn(RequestSpec) -> E) {
        for _ in 0..self.workload.closed_loop_concurrency().unwrap_or(1) {
            self.pull(queue, SimTime::ZERO, &arrival);
        }
    }

    /// Schedules the next request's arrival, if the workload has one.
    fn pull<E>(&mut self, queue: &mut EventQueue<E>, now: SimTime, arrival: impl Fn(RequestSpec) -> E) {
        if let Some(spec) = self.workload.next_request(now) {
            queue.schedule(spec.arrival, arrival(spec));
        }
    }

    /// A request arrives at `now`: counted, the default window opened at half the
    /// requests (`span`: a typical iteration's length), and made a request.
    pub fn arrive(
        &mut self,
        spec: &RequestSpec,
        rec: &mut Recorder,
        now: SimTime,
        span: impl FnOnce() -> SimTime,
    ) -> Request {
        rec.arrival(now);
        self.arrivals_seen += 1;
        if self.default_window {
            rec.open_window_at_half(now, self.arrivals_seen, self.workload.total_requests(), span);
        }
        Request::new(spec.id, spec.arrival, spec.prompt_tokens, spec.output_tokens.max(1))
    }

    /// The arrival at `now` was admitted or dropped: an open stream pulls its next.
    pub fn arrived<E>(&mut self, queue: &mut EventQueue<E>, now: SimTime, arrival: impl Fn(RequestSpec) -> E) {
        if self.workload.closed_loop_concurrency().is_none() {
            self.pull(queue, now, arrival);
        }
    }

    /// A request finished or was dropped at `now`: a closed loop pulls the next.
    pub fn finished<E>(&mut self, queue: &mut EventQueue<E>, now: SimTime, arrival: impl Fn(RequestSpec) -> E) {
        if self.workload.closed_loop_concurrency().is_some() {
            self.pull(queue, now, arrival);
        }
    }
}
