//! Multi-turn sessions of a generated workload: each arrival of the process opens a
//! conversation whose later turns resend everything so far.
//!
//! Turn 1's prompt is `system_prompt_tokens + prompt_tokens` (drawn); turn `k + 1`'s is
//! turn `k`'s prompt + turn `k`'s reply (its output tokens) + `follow_up_tokens`
//! (drawn), so its hash chain extends turn `k`'s ([`super::prefix`]). Turn `k + 1`
//! arrives an exponential think/tool gap (mean `think_time_s`) after turn `k`
//! arrived: the workload is open loop, so the gap must include the time the reply is
//! expected to take. `turns` (at least 1) is drawn per session; `requests` counts
//! turns, so the last sessions may be cut short.
//!
//! Draws come from their own streams (sub-index 1 of the arrival and prompt-length
//! streams), so turning sessions on does not move the process's arrivals.

use super::config::SessionConfig;
use super::lengths::LengthSampler;
use crate::engine::rng::{stream, SimRng, Stream};
use crate::engine::SimTime;
use crate::error::InputError;
use rand::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

/// A turn to come: (arrival, session, its context so far, turns left after it).
type Pending = Reverse<(SimTime, u64, u32, u32)>;

/// Sessions in progress.
#[derive(Clone, Debug)]
pub struct Sessions {
    turns: LengthSampler,
    follow_up: LengthSampler,
    think_mean_ns: f64,
    rng: SimRng,
    gaps: SimRng,
    pending: BinaryHeap<Pending>,
    next_session: u64,
}

/// One turn to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Its session.
    pub session: u64,
    /// Tokens before its new ones (0 for a first turn).
    pub context: u32,
    /// Turns of the session after this one.
    pub left: u32,
}

impl Sessions {
    /// Checks `config` (`file` names it in messages) and seeds the streams from `seed`.
    pub fn new(config: &SessionConfig, seed: u64, file: &Path) -> Result<Sessions, InputError> {
        let t = config.think_time_s;
        if !(t.is_finite() && t >= 0.0) {
            return Err(InputError::key(
                file,
                "workload.sessions.think_time_s",
                format!("is {t}; must be seconds >= 0"),
            ));
        }
        Ok(Sessions {
            turns: LengthSampler::new(&config.turns, "workload.sessions.turns", file)?,
            follow_up: LengthSampler::new(&config.follow_up_tokens, "workload.sessions.follow_up_tokens", file)?,
            think_mean_ns: t * 1e9,
            rng: stream(seed, Stream::PromptLengths, 1),
            gaps: stream(seed, Stream::Arrivals, 1),
            pending: BinaryHeap::new(),
            next_session: 0,
        })
    }

    /// The arrival of the next later turn, if one is pending.
    pub fn next_pending(&self) -> Option<SimTime> {
        self.pending.peek().map(|Reverse((at, ..))| *at)
    }

    /// Takes the next later turn: (arrival, turn).
    pub fn pop_pending(&mut self) -> Option<(SimTime, Turn)> {
        let Reverse((at, session, context, left)) = self.pending.pop()?;
        Some((at, Turn { session, context, left }))
    }

    /// Opens a new session: its first turn.
    pub fn open(&mut self) -> Turn {
        let session = self.next_session;
        self.next_session += 1;
        Turn { session, context: 0, left: self.turns.sample(&mut self.rng).max(1) - 1 }
    }

    /// New tokens of a later turn.
    pub fn follow_up_tokens(&mut self) -> u32 {
        self.follow_up.sample(&mut self.rng)
    }

    /// `turn`, arriving at `at`, ends with `context` tokens (prompt + reply): schedules
    /// the session's next turn a think/tool gap later, if it has one.
    pub fn after(&mut self, turn: &Turn, at: SimTime, context: u32) {
        if turn.left == 0 {
            return;
        }
        // Exponential gap by inversion: -mean x ln(1 - u), u in [0, 1).
        let u: f64 = self.gaps.random();
        let gap = SimTime::from_ns_f64(-self.think_mean_ns * (1.0 - u).ln());
        self.pending.push(Reverse((at + gap, turn.session, context, turn.left - 1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::config::LengthDist;

    #[test]
    fn a_session_runs_its_turns_in_order_with_growing_context() {
        let cfg = SessionConfig {
            turns: LengthDist::Fixed { value: 3 },
            follow_up_tokens: LengthDist::Fixed { value: 50 },
            think_time_s: 2.0,
        };
        let mut s = Sessions::new(&cfg, 1, Path::new("t.toml")).expect("valid");
        let first = s.open();
        assert_eq!((first.session, first.context, first.left), (0, 0, 2));
        // Turn 1: prompt 100, reply 20 -> the next turn's context is 120.
        s.after(&first, SimTime::ZERO, 120);
        let (at, second) = s.pop_pending().expect("a second turn");
        assert!(at > SimTime::ZERO);
        assert_eq!((second.session, second.context, second.left), (0, 120, 1));
        s.after(&second, at, 120 + 50 + 30);
        let (at3, third) = s.pop_pending().expect("a third turn");
        assert!(at3 > at);
        assert_eq!((third.context, third.left), (200, 0));
        s.after(&third, at3, 300);
        assert!(s.pop_pending().is_none(), "three turns in all");
    }
}
