//! The simulated hardware: GPUs (roofline), NVLink and network links, topology and
//! the flow-level network model.

pub mod gpu;
pub mod network;
pub mod spec;
pub mod topology;
