//! Measuring a run: GPU state accounting, request statistics, the summary.

pub mod summary;
