//! Helpers of the fuzz harness (tests/fuzz.rs): case generation and judging.

pub mod case;
pub mod gen;
