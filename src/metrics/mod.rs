//! Measuring a run: GPU state accounting, statistics, time series, the summary.

pub mod experts;
pub mod network;
pub mod pools;
pub mod prefix;
pub mod recorder;
pub mod report;
pub mod rows;
pub mod series;
pub mod stats;
pub mod summary;
