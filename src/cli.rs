//! The command line: a thin layer that parses arguments and calls the library.

use crate::error::{Error, Result};
use crate::scenario::{self, Override};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// clustersim: simulate LLM serving on a GPU cluster.
#[derive(Parser, Debug)]
#[command(name = "clustersim", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a scenario and write its results.
    Run(RunArgs),
    /// Check a scenario file without running it.
    Validate(ScenarioArgs),
}

/// A scenario file and overrides.
#[derive(Args, Debug, Clone)]
pub struct ScenarioArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Override a key: --set parallel.tp=4 (repeatable; value in TOML syntax, bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
}

/// `clustersim run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Results folder (default results/<scenario name>/, suffixed -2, -3, ... if taken).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite results in an existing folder.
    #[arg(long)]
    pub force: bool,
}

/// Parses `args` (including the program name) and runs the command. Returns the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Validate(a) => {
            let setup = scenario::load_setup(&a.scenario, &a.set)?;
            println!(
                "{}: ok: {} GPUs ({} nodes x {} {}), plan dp={} pp={} tp={} ep={} uses {}, model {}",
                a.scenario.display(),
                setup.total_gpus(),
                setup.nodes,
                setup.gpus_per_node,
                setup.gpu.name,
                setup.parallel.dp,
                setup.parallel.pp,
                setup.parallel.tp,
                setup.parallel.ep,
                setup.plan_gpus(),
                setup.model.name
            );
            Ok(0)
        }
        Command::Run(a) => {
            let _setup = scenario::load_setup(&a.scenario.scenario, &a.scenario.set)?;
            Err(Error::Run("the serving simulation is not built yet".into()))
        }
    }
}
