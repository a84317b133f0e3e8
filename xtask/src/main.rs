//! `cargo xtask`: developer tasks for zoneprof (setup, build, test, demo).

mod cmd;
mod setup;
mod tasks;
#[allow(dead_code)] // wired up to the vm-* subcommands in the next commit
mod vm;
mod workspace;

use std::ffi::OsString;
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
    /// Setup, then build the release binary (target/release/zoneprof).
    Build,
    /// Setup, build release, run all host tests with ZONEPROF_BIN set, print a summary.
    Test {
        /// Extra arguments for `cargo test`, after `--`
        /// (e.g. `cargo xtask test -- --lib -- --nocapture`).
        #[arg(last = true)]
        cargo_test_args: Vec<OsString>,
    },
    /// Setup, build release, then run `zoneprof demo -o DIR`.
    Demo {
        /// Output directory for the demo.
        #[arg(short = 'o', long = "out", default_value = "zoneprof-demo")]
        out: PathBuf,
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
        Task::Build => tasks::build(&ws),
        Task::Test { cargo_test_args } => tasks::test(&ws, &cargo_test_args),
        Task::Demo { out } => tasks::demo(&ws, &out),
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
    use std::path::Path;

    fn parse(args: &[&str]) -> Option<Task> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .ok()
            .map(|c| c.task)
    }

    #[test]
    fn test_passes_everything_after_dashes_to_cargo_test() {
        let Some(Task::Test { cargo_test_args }) =
            parse(&["test", "--", "-p", "profiler", "--", "--nocapture"])
        else {
            panic!("test did not parse");
        };
        assert_eq!(cargo_test_args, ["-p", "profiler", "--", "--nocapture"]);
        assert!(
            matches!(parse(&["test"]), Some(Task::Test { cargo_test_args }) if cargo_test_args.is_empty())
        );
    }

    #[test]
    fn demo_and_setup_flags() {
        assert!(
            matches!(parse(&["demo"]), Some(Task::Demo { out }) if out == Path::new("zoneprof-demo"))
        );
        assert!(
            matches!(parse(&["demo", "-o", "/tmp/d"]), Some(Task::Demo { out }) if out == Path::new("/tmp/d"))
        );
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
