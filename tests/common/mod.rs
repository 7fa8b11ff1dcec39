//! Helpers shared by the integration tests that drive the `clustersim` binary.

use std::process::Command;

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
pub fn clustersim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clustersim")).args(args).output().expect("clustersim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
