//! The model and its cost: architecture, FLOPs and bytes per operator (GEMMs, attention,
//! MoE kernels), memory per GPU, the software-stack overhead profiles, and the
//! attention variants of served models (latent, sliding-window) and their drafts.

pub mod attention;
pub mod cost;
pub mod framework;
pub mod gemm;
pub mod hf_config;
pub mod memory;
pub mod mla;
pub mod moe;
pub mod spec;
pub mod speculative;
pub mod window;
