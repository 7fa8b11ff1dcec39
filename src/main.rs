//! The `clustersim` binary: all logic lives in the library.

fn main() {
    std::process::exit(clustersim::cli::main_with_args(std::env::args_os()));
}
