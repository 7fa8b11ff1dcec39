//! The crate's error type and its mapping to exit codes.
//!
//! Bad input (scenario, trace, command line) is exit code 2; a failed run
//! (e.g. cannot write results) is 1. Messages name the file, the line or key,
//! what was wrong and what is allowed.

use std::fmt;
use std::path::PathBuf;

/// Where in an input file a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column.
    LineCol(usize, usize),
    /// A dotted key path such as `parallel.tp`.
    Key(String),
    /// 1-based line of a data file (trace).
    Line(usize),
    /// The file as a whole.
    File,
}

/// A problem with a user's input file: scenario or trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The file.
    pub file: PathBuf,
    /// Where in it.
    pub location: Location,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl InputError {
    /// An error at a key path.
    pub fn key(file: impl Into<PathBuf>, key: impl Into<String>, message: impl Into<String>) -> Self {
        InputError { file: file.into(), location: Location::Key(key.into()), message: message.into() }
    }
    /// An error at a line of a data file.
    pub fn line(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        InputError { file: file.into(), location: Location::Line(line), message: message.into() }
    }
    /// An error about the file as a whole.
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        InputError { file: file.into(), location: Location::File, message: message.into() }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.location {
            Location::LineCol(l, c) => write!(f, "{file}:{l}:{c}: {}", self.message),
            Location::Key(k) => write!(f, "{file}: `{k}`: {}", self.message),
            Location::Line(l) => write!(f, "{file}:{l}: {}", self.message),
            Location::File => write!(f, "{file}: {}", self.message),
        }
    }
}

impl std::error::Error for InputError {}

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad scenario or trace.
    #[error("{0}")]
    Input(#[from] InputError),
    /// Bad command-line usage not caught by the argument parser.
    #[error("{0}")]
    Usage(String),
    /// The plan does not fit the hardware (e.g. weights exceed GPU memory).
    #[error("{0}")]
    Infeasible(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else that stops a run.
    #[error("{0}")]
    Run(String),
}

impl Error {
    /// Process exit code: 2 for bad input, 1 for a failed run.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Usage(_) | Error::Infeasible(_) => 2,
            Error::Io { .. } | Error::Run(_) => 1,
        }
    }
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
