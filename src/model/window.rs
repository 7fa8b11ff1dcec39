//! Sliding-window attention: a window layer's query sees only the last W tokens, so the
//! layer keeps at most W tokens of KV per sequence and its attention work stops growing
//! with the context once the context passes W (Mistral-7B: every layer, W = 4,096;
//! Gemma-2: every other layer; Gemma-3: five window layers to one full; gpt-oss: every
//! other layer, W = 128). Hybrid models interleave window and full layers; here layer l
//! (0-based) is full when `full_every > 0` and `(l + 1) % full_every == 0`, which is
//! how those configs lay them out (Hugging Face `layer_types` / `sliding_window_pattern`).

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Which layers attend through a window, and how wide it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    /// Tokens a window layer's query sees (W).
    pub window_tokens: u32,
    /// Every `full_every`-th layer attends to the whole context (0: no full layer).
    #[serde(default)]
    pub full_every: u32,
}

impl SlidingWindow {
    /// True when layer `l` (0-based) attends through the window.
    pub fn is_window_layer(&self, l: u32) -> bool {
        self.full_every == 0 || (l + 1) % self.full_every != 0
    }
    /// Window layers among `layers`.
    pub fn window_layers_in(&self, layers: Range<u32>) -> u32 {
        layers.filter(|l| self.is_window_layer(*l)).count() as u32
    }
}

/// Keys summed over the queries of a causal prefill chunk of `tokens` queries after
/// `context` cached tokens, query i seeing `context + i` keys (continuous form, as the
/// full-attention cost model counts them: tokens·(context + tokens/2)), capped at
/// `window` keys each when `window > 0`.
pub fn causal_key_sum(tokens: f64, context: f64, window: u32) -> f64 {
    let w = window as f64;
    if window == 0 || context + tokens <= w {
        return tokens * (context + tokens / 2.0);
    }
    if context >= w {
        return tokens * w;
    }
    // The first w - context queries are still filling the window; the rest see w keys.
    let filling = w - context;
    filling * (context + filling / 2.0) + (tokens - filling) * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_layers_follow_the_pattern() {
        // gpt-oss: sliding, full, sliding, full...; full_every 2 -> layers 1, 3 full.
        let w = SlidingWindow { window_tokens: 128, full_every: 2 };
        assert_eq!((0..4).map(|l| w.is_window_layer(l)).collect::<Vec<_>>(), vec![true, false, true, false]);
        // Gemma-3: five window layers then one full: 62 layers hold 10 full (5, 11, ..., 59).
        let g = SlidingWindow { window_tokens: 1024, full_every: 6 };
        assert_eq!(g.window_layers_in(0..62), 52);
        // Mistral: every layer windowed.
        assert_eq!(SlidingWindow { window_tokens: 4096, full_every: 0 }.window_layers_in(0..32), 32);
    }

    #[test]
    fn key_sums_by_hand() {
        // Full: 100 queries after 50 cached: 100 x (50 + 50) = 10,000.
        assert_eq!(causal_key_sum(100.0, 50.0, 0), 10_000.0);
        // Window 1,000 never reached: the same.
        assert_eq!(causal_key_sum(100.0, 50.0, 1000), 10_000.0);
        // Context already past a window of 64: every query sees 64.
        assert_eq!(causal_key_sum(100.0, 500.0, 64), 6_400.0);
        // Window 100 filled part-way: 50 queries see 50..100 (mean 75: 3,750), the other
        // 50 see 100 each (5,000): 8,750.
        assert_eq!(causal_key_sum(100.0, 50.0, 100), 8_750.0);
    }
}
