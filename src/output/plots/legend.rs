//! A legend drawn in its own area beside a chart, so it never covers data.

use super::draw::DrawResult;
use super::style;
use plotters::coord::Shift;
use plotters::prelude::*;

/// How an entry's key is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    /// A filled square (bars, areas, spans).
    Box,
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// No key: a note in muted text.
    Note,
}

/// One legend line.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Text.
    pub text: String,
    /// Colour of the key.
    pub color: RGBColor,
    /// Shape of the key.
    pub mark: Mark,
}

impl Entry {
    /// A new entry.
    pub fn new(text: impl Into<String>, color: RGBColor, mark: Mark) -> Entry {
        Entry { text: text.into(), color, mark }
    }
}

/// Row pitch of legend entries, px.
pub const ROW_PX: i32 = 24;

/// Draws `heading` (if not empty) and `entries` top-down in `area`, starting `top` px down.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    top: i32,
    heading: &str,
    entries: &[Entry],
) -> DrawResult<DB> {
    let mut y = top;
    let x = 10;
    if !heading.is_empty() {
        area.draw(&Text::new(heading.to_string(), (x, y), style::label().color(&BLACK)))?;
        y += ROW_PX + 4;
    }
    for e in entries {
        let mid = y + 9;
        match e.mark {
            Mark::Box => area.draw(&Rectangle::new([(x, y + 2), (x + 22, y + 16)], e.color.filled()))?,
            Mark::Line => area.draw(&PathElement::new(vec![(x, mid), (x + 22, mid)], e.color.stroke_width(3)))?,
            Mark::Dashed => {
                for k in 0..3 {
                    let x0 = x + k * 8;
                    area.draw(&PathElement::new(vec![(x0, mid), (x0 + 5, mid)], e.color.stroke_width(3)))?;
                }
            }
            Mark::Note => {}
        }
        let color = if e.mark == Mark::Note { style::MUTED } else { BLACK };
        area.draw(&Text::new(e.text.clone(), (x + 30, y), style::tick().color(&color)))?;
        y += ROW_PX;
    }
    Ok(())
}
