//! The model and its cost: architecture, FLOPs and bytes per operator (GEMMs, attention,
//! MoE kernels), memory per GPU, and the software-stack overhead profiles.

pub mod attention;
pub mod cost;
pub mod framework;
pub mod gemm;
pub mod memory;
pub mod moe;
pub mod spec;
