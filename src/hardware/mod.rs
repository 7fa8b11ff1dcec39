//! The simulated hardware: GPU specs and presets, NVLink and network links, topology and
//! the flow-level network model; list prices and power ([`economics`]).

pub mod economics;
pub mod network;
pub mod spec;
pub mod topology;
