//! Prefix caching: KV blocks keyed by the hash of their content and prefix, shared by
//! requests whose prompts start alike, kept after use until evicted (LRU), and
//! optionally spilled to host memory.
//!
//! [`cache`] is the per-pool structure; the scheduler calls it through the KV pool
//! ([`super::kv::KvPool`]) when it admits, schedules, preempts and retires requests.

pub mod cache;
pub mod config;
pub mod stats;
