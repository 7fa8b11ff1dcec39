//! # clustersim
//!
//! A discrete-event simulator of GPU clusters serving large language models.
//!
//! A run flows one way:
//!
//! ```text
//! scenario.toml --load + validate--> scenario::Setup
//!   Setup --assemble--> plan (rank -> GPU, groups) + cost model + collective prices
//!   serving::sim dispatches events: arrival -> router -> serving::replica (queues,
//!     one KV pool per attention group) -> serving::pipeline prices each stage with
//!     the one stage pricer (serving::stage) and books GPU states into the ledger
//!     (parallel::ledger); what-ifs compose (serving::whatif)
//!   metrics::recorder --RequestSink--> output: summary.json, requests.csv, charts
//! ```
//!
//! Modules depend one way, lowest first (tests/structure.rs checks it):
//! [`engine`] <- [`hardware`] <- [`parallel`] <- [`model`] <- [`workload`] <-
//! [`scenario`] <- [`metrics`] <- [`serving`] <- [`output`] <- [`analysis`] <- [`cli`].
//! The scenario sits above the domain types it resolves into, so nothing below it
//! reads the TOML schema; metrics is an instrument that serving drives, so it knows
//! nothing of serving or of files.
//!
//! Time is integer nanoseconds ([`engine::SimTime`]); every random draw comes from a
//! seeded stream ([`engine::rng`]); same scenario and seed give byte-identical outputs.

#![warn(missing_docs)]

pub mod analysis;
pub mod cli;
pub mod engine;
pub mod error;
pub mod hardware;
pub mod metrics;
pub mod model;
pub mod output;
pub mod parallel;
pub mod scenario;
pub mod serving;
pub mod textfile;
pub mod workload;

pub use error::{Error, Result};
