//! The `clustersim` binary: all logic lives in the library.

fn main() {
    restore_default_sigpipe();
    clustersim::output::staging::install_interrupt_cleanup();
    std::process::exit(clustersim::cli::main_with_args(std::env::args_os()));
}

/// Lets a closed stdout end the process quietly, like every Unix filter.
///
/// The Rust runtime ignores SIGPIPE, so writing to a pipe whose reader has gone
/// (`clustersim dag ... | head -1`) returns an error and `print!` panics (exit 101).
/// With the default action the process ends by the signal at that write (the shell
/// reports 141); every results folder is complete or absent by then, since output
/// is printed only after the files are renamed into place.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; `signal` with
    // SIG_DFL installs no handler code, it only resets the disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
