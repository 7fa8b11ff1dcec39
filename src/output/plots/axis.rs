//! Category labels drawn beside an axis by hand: one per GPU lane or bar, thinned
//! to a stride so they never overlap, placed at the pixel the chart maps them to.

use super::draw::DrawResult;
use super::style;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Draws `labels[i]` left of the pixel `at(i)` (right-aligned, vertically centred),
/// for every `stride`-th `i`. `root` must be the whole canvas (absolute pixels).
pub fn left<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: &[String],
    stride: usize,
    at: impl Fn(usize) -> (i32, i32),
) -> DrawResult<DB> {
    let st = style::tick().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
    for i in (0..labels.len()).step_by(stride.max(1)) {
        let (x, y) = at(i);
        root.draw(&Text::new(labels[i].clone(), (x - 8, y), st.clone()))?;
    }
    Ok(())
}

/// Draws `labels[i]` below the pixel `at(i)` (centred), for every `stride`-th `i`.
pub fn below<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: &[String],
    stride: usize,
    at: impl Fn(usize) -> (i32, i32),
) -> DrawResult<DB> {
    let st = style::tick().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
    for i in (0..labels.len()).step_by(stride.max(1)) {
        let (x, y) = at(i);
        root.draw(&Text::new(labels[i].clone(), (x, y + 6), st.clone()))?;
    }
    Ok(())
}
