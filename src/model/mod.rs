//! The model and its cost: architecture, FLOPs and bytes per operator, memory per
//! GPU, and the software-stack overhead profiles.

pub mod cost;
pub mod framework;
pub mod memory;
pub mod spec;
