//! Expert load of MoE runs: how many tokens each expert takes per step, and how far the
//! busiest expert is above the mean.
//!
//! The grouped GEMM of a layer and its EP all-to-all wait for the busiest expert (and
//! its group), so the figure that sets their time is the per-step maximum, not the run's
//! totals: a run whose experts are balanced over an hour can still be skewed in every
//! single step. [`ExpertLoad`] therefore keeps, beside the per-expert totals, the sum
//! over every (iteration, MoE layer) of the busiest expert's tokens and of the choices.

use serde::{Deserialize, Serialize};

/// Running expert-load counters of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExpertLoad {
    /// Tokens routed to each expert, summed over layers and iterations.
    pub tokens: Vec<u64>,
    /// (iteration, MoE layer) draws that routed at least one token.
    pub layer_steps: u64,
    /// Sum over those draws of the busiest expert's tokens.
    pub sum_max: u64,
    /// Sum over those draws of the (token, expert) choices: tokens x top_k.
    pub sum_choices: u64,
}

/// Expert load in summary.json (MoE models only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpertLoadSummary {
    /// Routed experts per MoE layer.
    pub experts: u32,
    /// (iteration, MoE layer) steps that routed at least one token.
    pub layer_steps: u64,
    /// Mean over steps of the tokens an expert takes: choices / experts.
    pub mean_tokens_per_expert_per_step: f64,
    /// Mean over steps of the busiest expert's tokens.
    pub max_tokens_per_expert_per_step: f64,
    /// max / mean of the two figures above (1 = perfectly balanced steps).
    pub imbalance: f64,
    /// The most-loaded expert's share of all tokens routed in the run (1 / experts =
    /// balanced over the run).
    pub hottest_expert_share: f64,
}

impl ExpertLoad {
    /// Counters for `experts` experts.
    pub fn new(experts: usize) -> Self {
        ExpertLoad { tokens: vec![0; experts], ..Default::default() }
    }

    /// Records one layer's routing: `counts[x]` tokens went to expert x.
    pub fn record(&mut self, counts: &[u32]) {
        if self.tokens.len() < counts.len() {
            self.tokens.resize(counts.len(), 0);
        }
        let mut choices = 0u64;
        let mut max = 0u64;
        for (total, &c) in self.tokens.iter_mut().zip(counts) {
            *total += c as u64;
            choices += c as u64;
            max = max.max(c as u64);
        }
        if choices > 0 {
            self.layer_steps += 1;
            self.sum_max += max;
            self.sum_choices += choices;
        }
    }

    /// The summary.json figures; `None` for a dense model (no experts).
    pub fn summary(&self) -> Option<ExpertLoadSummary> {
        let experts = self.tokens.len();
        if experts == 0 {
            return None;
        }
        let steps = self.layer_steps as f64;
        let per_step = |x: u64| if steps > 0.0 { x as f64 / steps } else { 0.0 };
        let mean = per_step(self.sum_choices) / experts as f64;
        let max = per_step(self.sum_max);
        let total: u64 = self.tokens.iter().sum();
        let hottest = self.tokens.iter().copied().max().unwrap_or(0);
        Some(ExpertLoadSummary {
            experts: experts as u32,
            layer_steps: self.layer_steps,
            mean_tokens_per_expert_per_step: mean,
            max_tokens_per_expert_per_step: max,
            imbalance: if mean > 0.0 { max / mean } else { 0.0 },
            hottest_expert_share: if total > 0 { hottest as f64 / total as f64 } else { 0.0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_figures_by_hand() {
        // Two layer steps over 4 experts: [3, 1, 0, 0] (4 choices, busiest 3) and
        // [2, 2, 2, 2] (8 choices, busiest 2); an empty step is not counted.
        // Mean per expert per step: (4 + 8) / (2 x 4) = 1.5; busiest per step:
        // (3 + 2) / 2 = 2.5; imbalance 2.5 / 1.5 = 5/3. Totals [5, 3, 2, 2]: the
        // hottest expert took 5 of 12.
        let mut l = ExpertLoad::new(4);
        l.record(&[3, 1, 0, 0]);
        l.record(&[0, 0, 0, 0]);
        l.record(&[2, 2, 2, 2]);
        let s = l.summary().unwrap();
        assert_eq!(s.experts, 4);
        assert_eq!(s.layer_steps, 2);
        assert_eq!(s.mean_tokens_per_expert_per_step, 1.5);
        assert_eq!(s.max_tokens_per_expert_per_step, 2.5);
        assert!((s.imbalance - 5.0 / 3.0).abs() < 1e-15);
        assert!((s.hottest_expert_share - 5.0 / 12.0).abs() < 1e-15);
        assert_eq!(l.tokens, vec![5, 3, 2, 2]);
    }

    #[test]
    fn dense_and_idle_runs() {
        // No experts: no figures. Experts that never saw a token: zeros, not NaN.
        assert_eq!(ExpertLoad::new(0).summary(), None);
        let s = ExpertLoad::new(8).summary().unwrap();
        assert_eq!((s.imbalance, s.hottest_expert_share, s.layer_steps), (0.0, 0.0, 0));
    }
}
