//! Parallel plans (rank -> GPU mapping, TP/PP/EP/DP groups) and collective algorithms
//! expanded into point-to-point steps.

pub mod plan;
