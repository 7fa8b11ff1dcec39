//! # clustersim
//!
//! A discrete-event simulator of GPU clusters serving large language models.
//!
//! A run flows one way:
//!
//! ```text
//! scenario.toml --load + validate--> scenario::Setup
//!   Setup --build--> hardware (GPUs, links, routes) + parallel (rank -> GPU, groups)
//!                  + model (cost per operator, memory) + workload (request stream)
//!   engine loop: pop event -> handler -> new events
//!     serving decides batches; model prices them; parallel expands them into
//!     compute and collectives; hardware runs collectives over links;
//!     metrics records every state change
//!   metrics --> output: summary.json, requests.csv, gpus.csv, charts
//! ```
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
