//! The model and its cost: architecture, FLOPs and bytes per operator, memory per
//! GPU, one stage's iteration, and the software-stack overhead profiles.

pub mod calibration;
pub mod cost;
pub mod framework;
pub mod iteration;
pub mod memory;
pub mod spec;
