//! Speculative decoding with multi-token prediction (MTP) drafts.
//!
//! Each decode step a draft proposes `d` tokens; the target model verifies the
//! sequence's last token and the d drafts in one pass (d + 1 query tokens per
//! sequence), keeps the drafts up to the first rejected one, and adds one token of its
//! own. With each draft token accepted with probability a given the ones before it
//! were, a step yields 1 + a + a^2 + ... + a^d tokens on average (Leviathan et al.,
//! "Fast Inference from Transformers via Speculative Decoding", ICML 2023, eq. 1 with
//! i.i.d. acceptance; d = 1, a = 0.8: 1.8). DeepSeek-V3 drafts with its own MTP module
//! (one extra transformer layer sharing the embedding and output head, technical report
//! arXiv:2412.19437 Section 2.2) and reports 85-90 % acceptance of the second token and
//! 1.8x decode throughput (Section 5.4.3).
//!
//! The accepted count of every sequence at every step is drawn from the replica's own
//! seeded stream (`engine::rng::Stream::Speculation`), so TPOT varies from step to step
//! as it does on a server, and a run stays byte-for-byte reproducible.

use crate::model::cost::{BatchShape, CostModel, OpCost, OpKind};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// `[model.speculative]`: draft length and acceptance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speculative {
    /// Tokens drafted per decode step (d).
    pub draft_tokens: u32,
    /// Probability that a draft token is accepted given the earlier ones were (a).
    pub acceptance_rate: f64,
}

impl Speculative {
    /// Mean tokens a decode step yields: 1 + a + ... + a^d.
    pub fn expected_tokens_per_step(&self) -> f64 {
        (1..=self.draft_tokens)
            .fold((1.0, 1.0), |(sum, p), _| (sum + p * self.acceptance_rate, p * self.acceptance_rate))
            .0
    }

    /// Draft tokens accepted at one step: each in turn with probability a, stopping at
    /// the first rejection (0..=d).
    pub fn draw_accepted(&self, rng: &mut impl Rng) -> u32 {
        let mut k = 0;
        while k < self.draft_tokens && rng.random::<f64>() < self.acceptance_rate {
            k += 1;
        }
        k
    }
}

impl CostModel {
    /// The MTP draft of one iteration on the last stage, beside the LM head it shares:
    /// one pass of the draft layer over the prompt chunks (building its own KV), then
    /// `shape.draft_tokens` passes over the decoding sequences, each the 2h x h
    /// projection of [embedding; hidden state], the layer (attention, then its MLP, or
    /// for an MoE model router, shared and routed experts with the tokens spread
    /// evenly over `local_experts`) and the LM head. Empty when nothing is drafted.
    /// The draft layer's EP all-to-all is not priced (one layer of the model's 62 for
    /// DeepSeek-V3), nor the few extra keys each later draft step sees.
    pub fn draft_block(&self, shape: &BatchShape, local_experts: u32) -> Vec<OpCost> {
        let mut ops = Vec::new();
        if shape.draft_tokens == 0 {
            return ops;
        }
        if !shape.prefill.is_empty() {
            let prompt = BatchShape { prefill: shape.prefill.clone(), ..Default::default() };
            ops.extend(self.draft_layer(&prompt, local_experts));
        }
        if shape.decode_seqs > 0 {
            let step = BatchShape {
                decode_seqs: shape.decode_seqs,
                decode_context_sum: shape.decode_context_sum,
                ..Default::default()
            };
            let mut one = self.draft_layer(&step, local_experts);
            one.push(self.lm_head(shape.decode_seqs));
            for _ in 0..shape.draft_tokens {
                ops.extend_from_slice(&one);
            }
        }
        ops
    }

    /// The draft layer over `shape`: projection, attention block, MLP or MoE.
    fn draft_layer(&self, shape: &BatchShape, local_experts: u32) -> Vec<OpCost> {
        let t = shape.tokens();
        let h = self.hidden as u32;
        let mut ops = vec![self.gemm(OpKind::Qkv, t, 2 * h, h)];
        ops.extend(self.attention_block(shape));
        if self.experts > 0.0 && local_experts > 0 {
            let per_expert = (t as f64 * self.top_k / self.experts).ceil() as u32;
            ops.extend(self.moe_block(t, &vec![per_expert; local_experts as usize]));
        } else {
            ops.push(self.dense_mlp(t));
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::{stream, Stream};

    #[test]
    fn one_draft_at_0_8_yields_1_8_tokens_per_step() {
        // 1 + 0.8 = 1.8; three drafts: 1 + 0.8 + 0.64 + 0.512 = 2.952.
        let one = Speculative { draft_tokens: 1, acceptance_rate: 0.8 };
        assert!((one.expected_tokens_per_step() - 1.8).abs() < 1e-12);
        let three = Speculative { draft_tokens: 3, acceptance_rate: 0.8 };
        assert!((three.expected_tokens_per_step() - 2.952).abs() < 1e-12);
    }

    #[test]
    fn drawn_steps_average_to_the_expectation() {
        // 200,000 steps of d = 1, a = 0.8: the mean of 1 + k has standard error
        // 0.4 / sqrt(200,000) = 0.0009; within 0.005 (5.6 sigma) of 1.8.
        let s = Speculative { draft_tokens: 1, acceptance_rate: 0.8 };
        let mut rng = stream(7, Stream::Test, 0);
        let n = 200_000;
        let total: u64 = (0..n).map(|_| 1 + s.draw_accepted(&mut rng) as u64).sum();
        let mean = total as f64 / n as f64;
        assert!((mean - 1.8).abs() < 0.005, "{mean}");
        // Never more than d accepted; a = 1 accepts all, a = 0 none.
        let all = Speculative { draft_tokens: 4, acceptance_rate: 1.0 };
        let none = Speculative { draft_tokens: 4, acceptance_rate: 0.0 };
        assert_eq!((all.draw_accepted(&mut rng), none.draw_accepted(&mut rng)), (4, 0));
    }
}
