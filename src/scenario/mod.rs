//! Scenario files: the TOML schema, loading with `--set` overrides, and validation.
//!
//! A scenario says everything about a run: hardware, model, parallel plan,
//! serving limits, workload, requirements and what-if events. [`load_setup`]
//! reads, overrides, parses and validates in one call.

pub mod bounds;
pub mod load;
pub mod pools;
pub mod search;
pub mod types;
pub mod validate;

pub use load::{load, parse, Override};
pub use types::Scenario;
pub use validate::{validate, Setup};

use crate::error::Error;
use std::path::Path;

/// Reads, overrides, parses and validates a scenario file.
pub fn load_setup(path: &Path, overrides: &[Override]) -> Result<Setup, Error> {
    let scenario = load(path, overrides)?;
    Ok(validate(&scenario, path)?)
}
