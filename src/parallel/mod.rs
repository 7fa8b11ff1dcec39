//! Parallel plans (rank -> GPU mapping, TP/PP/EP/DP groups) and collective algorithms
//! expanded into point-to-point steps, run as flows or priced in closed form.

pub mod collective;
pub mod fabric;
pub mod ledger;
pub mod microbench;
pub mod plan;
pub mod price;
pub mod runner;
