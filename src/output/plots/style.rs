//! Shared look of every chart: the embedded font, text sizes, colours, units and
//! GPU labels.
//!
//! The font is DejaVu Sans from the `dejavu` crate (font licence: the Bitstream Vera
//! licence with DejaVu changes in the public domain), registered with plotters'
//! `ab_glyph` backend under the family name [`FONT`]; no system font is looked up.

use crate::output::records::GpuRow;
use plotters::style::{FontStyle, RGBColor, TextStyle};
use std::collections::BTreeMap;
use std::sync::Once;

/// Font family every chart uses.
pub const FONT: &str = "sans-serif";
/// Title text size, px.
pub const TITLE_PX: f64 = 26.0;
/// Axis description text size, px.
pub const LABEL_PX: f64 = 18.0;
/// Tick label and legend text size, px.
pub const TICK_PX: f64 = 15.0;
/// Default chart width, px.
pub const WIDTH: u32 = 1600;
/// Width of the legend column at the right of a chart, px.
pub const LEGEND_W: u32 = 300;

static FONTS: Once = Once::new();

/// Registers the embedded font with plotters (once per process).
pub fn ensure_fonts() {
    FONTS.call_once(|| {
        // The bytes are a valid TrueType font shipped by the `dejavu` crate; if they
        // were not, text would be missing and the chart tests would catch it.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Title style.
pub fn title() -> TextStyle<'static> {
    (FONT, TITLE_PX, FontStyle::Bold).into()
}

/// Axis description style.
pub fn label() -> TextStyle<'static> {
    (FONT, LABEL_PX).into()
}

/// Tick label and legend style.
pub fn tick() -> TextStyle<'static> {
    (FONT, TICK_PX).into()
}

/// Light grey for grid lines.
pub const GRID: RGBColor = RGBColor(225, 225, 225);
/// Dark grey for secondary text.
pub const MUTED: RGBColor = RGBColor(90, 90, 90);

/// Distinct colours for up to ten series (colour-blind friendly order).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4C, 0x72, 0xB0),
    RGBColor(0xDD, 0x84, 0x52),
    RGBColor(0x55, 0xA8, 0x68),
    RGBColor(0xC4, 0x4E, 0x52),
    RGBColor(0x81, 0x72, 0xB2),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xDA, 0x8B, 0xC3),
    RGBColor(0x8C, 0x8C, 0x8C),
    RGBColor(0xCC, 0xB9, 0x74),
    RGBColor(0x64, 0xB5, 0xCD),
];

/// Colours of the four GPU states: computing, communicating, waiting, idle.
pub const STATE_COLORS: [RGBColor; 4] =
    [RGBColor(0x4C, 0x72, 0xB0), RGBColor(0xDD, 0x84, 0x52), RGBColor(0xE6, 0xC2, 0x29), RGBColor(0xD9, 0xD9, 0xD9)];

/// Viridis-like colour of `v` in [0, 1] (dark purple at 0, yellow at 1), by linear
/// interpolation between nine anchor colours of the viridis scale.
pub fn viridis(v: f64) -> RGBColor {
    const ANCHORS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let pos = v * (ANCHORS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(ANCHORS.len() - 2);
    let f = pos - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A time unit chosen so axis numbers stay readable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeUnit {
    /// Multiply seconds by this to get the unit.
    pub per_s: f64,
    /// Unit symbol: `s`, `ms` or `µs`.
    pub symbol: &'static str,
}

impl TimeUnit {
    /// Seconds if `span_s` >= 1 s, milliseconds if >= 1 ms, else microseconds.
    pub fn for_span(span_s: f64) -> TimeUnit {
        if span_s.is_nan() || span_s >= 1.0 {
            TimeUnit { per_s: 1.0, symbol: "s" }
        } else if span_s >= 1e-3 {
            TimeUnit { per_s: 1e3, symbol: "ms" }
        } else {
            TimeUnit { per_s: 1e6, symbol: "µs" }
        }
    }
}

/// Formats `v` with at most 3 significant decimals, no trailing zeros.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One label per GPU, in the order of `gpus`: `n<node> g<index within node> s<stage>`
/// (the stage part left out for GPUs the plan does not use).
pub fn gpu_labels(gpus: &[GpuRow]) -> Vec<String> {
    let mut per_node: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for g in gpus {
        per_node.entry(g.node).or_default().push(g.gpu);
    }
    for v in per_node.values_mut() {
        v.sort_unstable();
    }
    gpus.iter()
        .map(|g| {
            let local = per_node.get(&g.node).and_then(|v| v.iter().position(|&x| x == g.gpu)).unwrap_or(0);
            if g.stage >= 0 {
                format!("n{} g{} s{}", g.node, local, g.stage)
            } else {
                format!("n{} g{}", g.node, local)
            }
        })
        .collect()
}

/// GPUs sorted by global index, with any duplicate index dropped (first row kept).
pub fn sorted_gpus(gpus: &[GpuRow]) -> Vec<GpuRow> {
    let mut v = gpus.to_vec();
    v.sort_by_key(|g| g.gpu);
    v.dedup_by_key(|g| g.gpu);
    v
}

/// Every `stride`-th index of `0..n` so that at most `max_labels` are shown.
pub fn label_stride(n: usize, max_labels: usize) -> usize {
    n.div_ceil(max_labels.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_and_units() {
        assert_eq!(short(6.0), "6");
        assert_eq!(short(0.0125), "0.013");
        assert_eq!(short(12.34), "12.3");
        assert_eq!(TimeUnit::for_span(600.0).symbol, "s");
        assert_eq!(TimeUnit::for_span(0.05).symbol, "ms");
        assert_eq!(TimeUnit::for_span(0.0002).symbol, "µs");
        assert_eq!(label_stride(128, 32), 4);
        assert_eq!(label_stride(8, 32), 1);
    }
}
