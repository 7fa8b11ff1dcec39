//! Which experts the tokens of a batch pick, layer by layer.
//!
//! Each of the `tokens x top_k` choices of a layer lands on expert x with probability
//! w_x (uniform, or Zipf: w_x proportional to 1/(x+1)^s, expert 0 the most popular).
//!
//! Small batches (decode steps with few tokens) are drawn token by token, each token
//! picking `top_k` distinct experts as a router's top-k does, so the experts a step
//! touches (whose weights it must read) follow the real law: E(1 - (1 - k/E)^T)
//! expected under uniform routing. Large batches are one multinomial draw, taken as a
//! chain of binomials, so the cost is O(experts) per layer however many tokens the batch
//! has; there nearly every expert is busy and a token's repeated pick (which the
//! multinomial allows) changes the counts by a fraction of their spread. Under uniform
//! routing both paths give every expert the same share; under Zipf the distinct picks of
//! the small path move a little of the hottest experts' share to colder ones (second
//! order in the weights: a hot expert cannot take more than one of a token's k picks).

use crate::engine::rng::{stream, SimRng, Stream};
use crate::scenario::types::ExpertRouting;
use rand::Rng;
use rand_distr::{Binomial, Distribution, StandardNormal};

/// Draws per-expert token counts.
pub struct ExpertSampler {
    weights: Vec<f64>,
    cdf: Vec<f64>,
    rng: SimRng,
}

impl ExpertSampler {
    /// A sampler over `experts` experts with the given routing skew.
    pub fn new(experts: u32, routing: &ExpertRouting, seed: u64, index: u64) -> Self {
        let raw: Vec<f64> = (0..experts)
            .map(|x| match routing {
                ExpertRouting::Uniform => 1.0,
                ExpertRouting::Zipf { s } => 1.0 / ((x + 1) as f64).powf(*s),
            })
            .collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let cdf = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        ExpertSampler { weights, cdf, rng: stream(seed, Stream::ExpertRouting, index) }
    }

    /// Fills `counts` (one per expert) with the experts `tokens` tokens pick, `top_k`
    /// each.
    pub fn draw(&mut self, tokens: u64, top_k: u32, counts: &mut [u32]) {
        let choices = tokens * top_k as u64;
        // Few picks (small decode batches): token by token, k distinct experts each,
        // O(picks x log E). Many: one binomial per expert, O(E) however many picks.
        if choices < counts.len() as u64 * 4 {
            counts.iter_mut().for_each(|c| *c = 0);
            let k = (top_k as usize).min(counts.len());
            let mut picked = Vec::with_capacity(k);
            for _ in 0..tokens {
                picked.clear();
                for _ in 0..k {
                    let x = self.distinct_pick(&picked);
                    picked.push(x);
                    counts[x] += 1;
                }
            }
            return;
        }
        let mut left = choices;
        let mut mass = 1.0;
        let last = counts.len().saturating_sub(1);
        for (x, c) in counts.iter_mut().enumerate() {
            if left == 0 {
                *c = 0;
                continue;
            }
            if x == last || mass <= 0.0 {
                *c = left as u32;
                left = 0;
                continue;
            }
            let p = (self.weights[x] / mass).clamp(0.0, 1.0);
            let k = self.binomial(left, p);
            *c = k as u32;
            left -= k;
            mass -= self.weights[x];
        }
    }
}

impl ExpertSampler {
    /// One expert drawn by weight among those not in `picked` (a token's earlier
    /// picks): redraw on a repeat, which keeps the law exact (sampling without
    /// replacement by weight). After 64 repeats (only when the picked experts hold
    /// nearly all the weight) the heaviest expert not yet picked is taken.
    fn distinct_pick(&mut self, picked: &[usize]) -> usize {
        let last = self.cdf.len() - 1;
        for _ in 0..64 {
            let u: f64 = self.rng.random();
            let x = self.cdf.partition_point(|c| *c <= u).min(last);
            if !picked.contains(&x) {
                return x;
            }
        }
        (0..=last)
            .filter(|x| !picked.contains(x))
            .max_by(|a, b| self.weights[*a].total_cmp(&self.weights[*b]).then(b.cmp(a)))
            .unwrap_or(0)
    }

    /// One Binomial(n, p) draw. With variance n·p·(1-p) of 25 or more the normal
    /// approximation is used (its error is far below the draw's own spread, and it
    /// costs one normal draw instead of BTPE's rejection loop); below, the exact law.
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let mean = n as f64 * p;
        let var = mean * (1.0 - p);
        if var >= 25.0 {
            let z: f64 = StandardNormal.sample(&mut self.rng);
            return (mean + z * var.sqrt()).round().clamp(0.0, n as f64) as u64;
        }
        Binomial::new(n, p).map_or(0, |b| b.sample(&mut self.rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_to_choices_and_zipf_skews() {
        let mut u = ExpertSampler::new(8, &ExpertRouting::Uniform, 7, 0);
        let mut z = ExpertSampler::new(8, &ExpertRouting::Zipf { s: 1.5 }, 7, 0);
        let (mut cu, mut cz) = (vec![0u32; 8], vec![0u32; 8]);
        let (mut su, mut sz) = (vec![0u64; 8], vec![0u64; 8]);
        for _ in 0..200 {
            u.draw(500, 2, &mut cu);
            z.draw(500, 2, &mut cz);
            assert_eq!(cu.iter().map(|c| *c as u64).sum::<u64>(), 1000);
            assert_eq!(cz.iter().map(|c| *c as u64).sum::<u64>(), 1000);
            for x in 0..8 {
                su[x] += cu[x] as u64;
                sz[x] += cz[x] as u64;
            }
        }
        // Uniform: each expert expects 200,000 / 8 = 25,000 (std ~ 148): within 2 %.
        for s in &su {
            assert!((*s as f64 / 25_000.0 - 1.0).abs() < 0.02, "{su:?}");
        }
        // Zipf s = 1.5 over 8: w_0 = 1 / H where H = sum 1/k^1.5 (k = 1..8) = 1 + .35355
        // + .19245 + .125 + .08944 + .06804 + .05399 + .04419 = 1.92667,
        // so expert 0 expects 200,000 x 0.51903 = 103,806.
        assert!((sz[0] as f64 / 103_806.0 - 1.0).abs() < 0.02, "{sz:?}");
    }

    #[test]
    fn few_picks_follow_the_same_law() {
        // 20,000 draws of 6 top-1 tokens over 8 experts (6 < 4 x 8: the per-token path),
        // Zipf s = 1.5: expert 0 expects 120,000 x 0.51903 = 62,284 picks (std ~ 173).
        let mut z = ExpertSampler::new(8, &ExpertRouting::Zipf { s: 1.5 }, 11, 0);
        let mut c = vec![0u32; 8];
        let mut sum = vec![0u64; 8];
        for _ in 0..20_000 {
            z.draw(6, 1, &mut c);
            assert_eq!(c.iter().sum::<u32>(), 6);
            for x in 0..8 {
                sum[x] += c[x] as u64;
            }
        }
        assert!((sum[0] as f64 / 62_284.0 - 1.0).abs() < 0.01, "{sum:?}");
        // Expert 7: weight (1/8^1.5) / 1.92667 = 0.022936 -> 2,752 picks (std ~ 52).
        assert!((sum[7] as f64 / 2_752.0 - 1.0).abs() < 0.08, "{sum:?}");
    }

    #[test]
    fn small_batches_pick_distinct_experts_per_token() {
        // One token, top-2 of 8: always two different experts, each with one token.
        let mut u = ExpertSampler::new(8, &ExpertRouting::Uniform, 3, 0);
        let mut c = vec![0u32; 8];
        for _ in 0..1000 {
            u.draw(1, 2, &mut c);
            assert_eq!(c.iter().filter(|n| **n == 1).count(), 2, "{c:?}");
        }
        // Three tokens, top-2 of 8, uniform: an expert escapes one token with
        // probability 1 - 2/8, so a step touches 8 (1 - 0.75^3) = 4.625 experts on
        // average (std of one step ~0.9; of the mean of 20,000 steps ~0.007).
        let mut busy = 0u64;
        for _ in 0..20_000 {
            u.draw(3, 2, &mut c);
            assert_eq!(c.iter().sum::<u32>(), 6);
            assert!(c.iter().all(|n| *n <= 3), "{c:?}");
            busy += c.iter().filter(|n| **n > 0).count() as u64;
        }
        let mean = busy as f64 / 20_000.0;
        assert!((mean / 4.625 - 1.0).abs() < 0.01, "{mean}");
        // Top-k as large as the expert count: every expert once, however skewed.
        let mut z = ExpertSampler::new(4, &ExpertRouting::Zipf { s: 3.0 }, 5, 0);
        let mut c4 = vec![0u32; 4];
        z.draw(2, 4, &mut c4);
        assert_eq!(c4, vec![2, 2, 2, 2]);
    }
}
