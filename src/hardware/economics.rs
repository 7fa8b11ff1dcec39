//! What a GPU costs to rent and how much power it draws: the figures behind
//! `$ per million tokens`, `joules per token` and `plan --objective cost|energy`.
//!
//! Prices are published **on-demand list prices** of one cloud (AWS EC2, us-east-1),
//! per instance-hour divided by the instance's 8 GPUs, with the date they were
//! published. They are not what a negotiated, reserved or spot contract costs; give
//! your own with `[economics] price_per_gpu_hour` in the scenario.
//!
//! Power: a GPU draws `idle_w` doing nothing and `busy_w` (its board TDP from the
//! datasheet) while computing, linearly in between:
//!
//! ```text
//! energy per GPU = (idle_w + (busy_w - idle_w) x compute utilization) x window_s
//! ```
//!
//! Vendors publish no idle figure for these parts; `idle_w` is 15 % of TDP, the
//! figure the nemulai.com table of idle draw per GPU uses (June 2026), stated here as an
//! assumption a user can override (`[economics] idle_w`). Only the GPUs' own draw is
//! counted (no CPUs, NICs, cooling).

use serde::{Deserialize, Serialize};

/// One preset's list price and power model; `None` where no source gives a figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EconomicsPreset {
    /// GPU preset name (as in [`super::spec::gpu_preset`]).
    pub gpu: &'static str,
    /// On-demand list price, US$ per GPU-hour.
    pub price_per_gpu_hour: Option<f64>,
    /// Board power while computing (datasheet TDP), W.
    pub busy_w: Option<f64>,
    /// Where the figures come from.
    pub source: &'static str,
}

/// Idle draw as a fraction of TDP (see the module docs: an assumption, overridable).
pub const IDLE_FRACTION_OF_TDP: f64 = 0.15;

/// Every preset's figures.
pub const PRESETS: [EconomicsPreset; 6] = [
    EconomicsPreset {
        gpu: "a100-80g",
        // AWS p4de.24xlarge (8x A100 80 GB) on-demand $40.96/h, us-east-1, list price as
        // published at its launch (2022-05): 40.96 / 8 = 5.12.
        price_per_gpu_hour: Some(5.12),
        // NVIDIA A100 datasheet: SXM4 max TDP 400 W.
        busy_w: Some(400.0),
        source: "AWS EC2 p4de.24xlarge on-demand list price $40.96/h (us-east-1, 2022) / 8 GPUs; NVIDIA A100 datasheet TDP 400 W",
    },
    EconomicsPreset {
        gpu: "h100-sxm",
        // AWS p5.48xlarge (8x H100 SXM) on-demand $98.32/h, us-east-1, list price at launch
        // (2023-07): 98.32 / 8 = 12.29.
        price_per_gpu_hour: Some(12.29),
        // NVIDIA H100 datasheet: SXM5 max TDP 700 W.
        busy_w: Some(700.0),
        source: "AWS EC2 p5.48xlarge on-demand list price $98.32/h (us-east-1, 2023-07) / 8 GPUs; NVIDIA H100 datasheet TDP 700 W",
    },
    EconomicsPreset {
        gpu: "h200-sxm",
        // No list price we can cite: give one with [economics] price_per_gpu_hour.
        price_per_gpu_hour: None,
        // NVIDIA H200 datasheet: SXM max TDP 700 W.
        busy_w: Some(700.0),
        source: "NVIDIA H200 datasheet TDP 700 W; no cited list price",
    },
    EconomicsPreset {
        gpu: "h200-sxm-1000w",
        price_per_gpu_hour: None,
        // The spec preset's 1000 W power limit (custom HGX boards) is its busy draw.
        busy_w: Some(1000.0),
        source: "H200 at the 1000 W power limit the spec preset models; no cited list price",
    },
    EconomicsPreset {
        gpu: "b200",
        price_per_gpu_hour: None,
        // NVIDIA HGX B200 (the 1000 W configuration the spec preset models).
        busy_w: Some(1000.0),
        source: "NVIDIA HGX B200 datasheet, 1000 W per GPU; no cited list price",
    },
    EconomicsPreset {
        gpu: "seed-400tf",
        // The deployment report's hypothetical card: no price, no power figure.
        price_per_gpu_hour: None,
        busy_w: None,
        source: "hypothetical card of the deployment report: no price or power figure exists",
    },
];

/// `[economics]` in a scenario: overrides of the preset's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EconomicsConfig {
    /// US$ per GPU-hour.
    pub price_per_gpu_hour: Option<f64>,
    /// Idle draw, W.
    pub idle_w: Option<f64>,
    /// Draw while computing, W.
    pub busy_w: Option<f64>,
}

/// The resolved figures of a run's GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Economics {
    /// US$ per GPU-hour, if known.
    pub price_per_gpu_hour: Option<f64>,
    /// Idle draw, W, if known.
    pub idle_w: Option<f64>,
    /// Draw while computing, W, if known.
    pub busy_w: Option<f64>,
}

impl Economics {
    /// The preset's figures for GPU `gpu_name` with `config`'s overrides on top.
    /// An unknown name (a custom `gpu_spec`) has only what `config` gives.
    pub fn resolve(gpu_name: &str, config: Option<&EconomicsConfig>) -> Economics {
        let preset = PRESETS.iter().find(|p| p.gpu == gpu_name);
        let busy = config.and_then(|c| c.busy_w).or(preset.and_then(|p| p.busy_w));
        let idle_default = preset.and_then(|p| p.busy_w).map(|tdp| tdp * IDLE_FRACTION_OF_TDP);
        Economics {
            price_per_gpu_hour: config.and_then(|c| c.price_per_gpu_hour).or(preset.and_then(|p| p.price_per_gpu_hour)),
            idle_w: config.and_then(|c| c.idle_w).or(idle_default),
            busy_w: busy,
        }
    }

    /// [`Economics::resolve`] after checking `config`: every figure finite and >= 0,
    /// idle at most busy. An error is `(key, message)`.
    pub fn checked(gpu_name: &str, config: Option<&EconomicsConfig>) -> Result<Economics, (&'static str, String)> {
        if let Some(c) = config {
            for (key, v) in [("price_per_gpu_hour", c.price_per_gpu_hour), ("idle_w", c.idle_w), ("busy_w", c.busy_w)] {
                if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                    return Err((key, format!("is {v}; must be a number >= 0")));
                }
            }
        }
        let r = Economics::resolve(gpu_name, config);
        if let (Some(i), Some(b)) = (r.idle_w, r.busy_w) {
            if i > b {
                return Err(("idle_w", format!("is {i} W, above busy_w {b} W; idle draw must be at most busy draw")));
            }
        }
        Ok(r)
    }

    /// US$ per hour for `gpus` GPUs, if the price is known.
    pub fn usd_per_hour(&self, gpus: u32) -> Option<f64> {
        self.price_per_gpu_hour.map(|p| p * gpus as f64)
    }

    /// Mean draw of one GPU at compute `utilization` (0..1), W, if known.
    pub fn power_w(&self, utilization: f64) -> Option<f64> {
        match (self.idle_w, self.busy_w) {
            (Some(i), Some(b)) => Some(i + (b - i) * utilization.clamp(0.0, 1.0)),
            _ => None,
        }
    }

    /// The cost figures of a run of `gpus` GPUs that moved `tokens` (prompt + output)
    /// tokens in `window_s` seconds at mean compute `utilization`. Unknown figures are 0.
    pub fn cost_summary(&self, gpus: u32, tokens: f64, window_s: f64, utilization: f64) -> CostSummary {
        let usd_per_hour = self.usd_per_hour(gpus);
        let power_w = self.power_w(utilization).map(|w| w * gpus as f64);
        let energy_j = power_w.map(|w| w * window_s);
        let per = |x: Option<f64>, scale: f64| match x {
            Some(v) if tokens > 0.0 => v * scale / tokens,
            _ => 0.0,
        };
        CostSummary {
            price_per_gpu_hour: self.price_per_gpu_hour.unwrap_or(0.0),
            usd_per_hour: usd_per_hour.unwrap_or(0.0),
            // US$/h x window_s / 3600 is what the run cost; per million tokens.
            usd_per_million_tokens: per(usd_per_hour.map(|u| u * window_s / 3600.0), 1e6),
            power_w: power_w.unwrap_or(0.0),
            energy_j: energy_j.unwrap_or(0.0),
            joules_per_token: per(energy_j, 1.0),
        }
    }
}

/// Cost and energy of a run (`summary.json` → `cost`). 0 where the GPU has no price
/// or power figure (see [`PRESETS`]); the GPUs counted are those the plan uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// List price used, US$ per GPU-hour.
    pub price_per_gpu_hour: f64,
    /// The plan's GPUs at that price, US$ per hour.
    pub usd_per_hour: f64,
    /// US$ per million (prompt + output) tokens over the measurement window.
    pub usd_per_million_tokens: f64,
    /// Mean draw of the plan's GPUs over the window, W.
    pub power_w: f64,
    /// Energy over the window, J.
    pub energy_j: f64,
    /// Joules per (prompt + output) token.
    pub joules_per_token: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_has_an_economics_row() {
        for name in crate::hardware::spec::gpu_preset_names() {
            assert!(PRESETS.iter().any(|p| p.gpu == name), "{name} has no economics row");
        }
    }

    #[test]
    fn cost_of_one_h100_hour() {
        // 8 H100 at $12.29 = $98.32/h. A run of 3600 s moving 36e6 tokens costs $98.32,
        // i.e. 98.32 / 36 = $2.7311 per million tokens. At 50 % utilization each GPU draws
        // 105 + (700 - 105) x 0.5 = 402.5 W (idle 15 % of 700 = 105 W), 8 GPUs 3220 W,
        // 3220 x 3600 J over 36e6 tokens = 0.322 J/token.
        let e = Economics::resolve("h100-sxm", None);
        let c = e.cost_summary(8, 36e6, 3600.0, 0.5);
        assert!((c.usd_per_hour - 98.32).abs() < 1e-9);
        assert!((c.usd_per_million_tokens - 98.32 / 36.0).abs() < 1e-9);
        assert!((c.power_w - 3220.0).abs() < 1e-9);
        assert!((c.joules_per_token - 0.322).abs() < 1e-12);
    }

    #[test]
    fn overrides_win_and_unknown_figures_are_zero() {
        let seed = Economics::resolve("seed-400tf", None);
        assert_eq!(seed.cost_summary(24, 1e6, 10.0, 0.5), CostSummary::default());
        let cfg = EconomicsConfig { price_per_gpu_hour: Some(2.0), idle_w: Some(50.0), busy_w: Some(450.0) };
        let e = Economics::resolve("seed-400tf", Some(&cfg));
        // 50 + 400 x 0.25 = 150 W.
        assert_eq!(e.power_w(0.25), Some(150.0));
        assert_eq!(e.usd_per_hour(24), Some(48.0));
    }
}
