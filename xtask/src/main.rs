//! `cargo xtask`: developer tasks for zoneprof.

mod cmd;
mod setup;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::workspace::Workspace;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "zoneprof developer tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check, and install where missing, the toolchain and tools zoneprof needs
    /// (nightly + rust-src, LLVM 22 packages, bpf-linker 0.13, iproute2, tracefs).
    Setup {
        /// Only report; exit 1 if anything is missing.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    // Tools installed by `cargo install` (bpf-linker) must be found on PATH, both by our
    // checks and by the eBPF build; this runs before any thread is started.
    if let Some(home) = cargo_home() {
        cmd::prepend_to_path(&home.join("bin"));
    }
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    let ws = Workspace::locate()?;
    match task {
        Task::Setup { check } => setup::run(&ws, check),
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_flags() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
                .ok()
                .map(|c| c.task)
        };
        assert!(matches!(
            parse(&["setup", "--check"]),
            Some(Task::Setup { check: true })
        ));
        assert!(matches!(
            parse(&["setup"]),
            Some(Task::Setup { check: false })
        ));
        assert!(parse(&["bench"]).is_none());
    }
}
