//! The simulated hardware: GPU specs and presets, NVLink and network links, topology and
//! the flow-level network model.

pub mod network;
pub mod spec;
pub mod topology;
