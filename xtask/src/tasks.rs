//! `build`, `test` and `demo`: each runs setup first, then cargo from the workspace root.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;
use crate::setup;
use crate::vm;
use crate::workspace::Workspace;

/// The eBPF crate builds only for bpfel-unknown-none (through profiler's build.rs), so it
/// is left out of host-side `cargo test --workspace`.
const EBPF_CRATE: &str = "profiler-ebpf";

fn build_release(ws: &Workspace) -> Cmd {
    ws.cargo().args(["build", "--release", "-p", "profiler"])
}

pub fn build(ws: &Workspace) -> Result<()> {
    setup::run(ws, false)?;
    println!("==> build: release zoneprof");
    build_release(ws).run()?;
    println!("==> build: {}", ws.release_bin()?.display());
    Ok(())
}

/// A named step of `cargo xtask test`.
struct Step {
    name: String,
    cmd: Cmd,
    /// Not run, for this printed reason (counts as not passed).
    skip: Option<String>,
}

impl Step {
    fn new(name: impl Into<String>, cmd: Cmd) -> Self {
        Self {
            name: name.into(),
            cmd,
            skip: None,
        }
    }
}

/// This xtask binary (so a step runs the same build), else `cargo xtask`.
fn xtask(ws: &Workspace) -> Cmd {
    match env::current_exe() {
        Ok(exe) => Cmd::new(exe).current_dir(&ws.root),
        Err(_) => ws.cargo().arg("xtask"),
    }
}

/// Why the VM steps cannot run here, if they cannot: only when not root (as root, setup
/// installed qemu and busybox, and vm-compare builds missing kernels, so a failure there
/// is a failure, not a skip).
fn vm_skip_reason(root: bool, tools: Result<()>, kernels: Option<String>) -> [Option<String>; 2] {
    if root {
        return [None, None];
    }
    match tools {
        Err(e) => {
            let why = format!("{e:#} (not root: nothing installed)");
            [Some(why.clone()), Some(why)]
        }
        Ok(()) => [
            None,
            kernels.map(|k| format!("{k} (not root: not built, run `cargo xtask vm-kernel`)")),
        ],
    }
}

/// Steps run after `cargo test`: every kernel vm-test knows (Debian 6.1 and 6.12, the
/// shared 6.12 with the PCP refill functions out of line) with every backend: every probe
/// method loaded for real, cross-CPU pages, the tap workload, per-batch vs per-page PCP
/// counts; the NUMA scenarios in a two-node guest (6.12); then the tun patch before/after.
fn extra_steps(ws: &Workspace, _bin: &Path) -> Vec<Step> {
    let [test_skip, compare_skip] = vm_skip_reason(
        setup::effective_uid() == Some(0),
        vm::check_tools(),
        vm::compare::kernels_unavailable(ws),
    );
    let mut vm_test = Step::new(
        "vm-test --kernel all --backend all",
        xtask(ws).args(["vm-test", "--kernel", "all", "--backend", "all"]),
    );
    let mut vm_numa = Step::new("vm-numa (two-node guest, 6.12)", xtask(ws).arg("vm-numa"));
    vm_numa.skip = test_skip.clone();
    vm_test.skip = test_skip;
    let mut vm_compare = Step::new(
        "vm-compare (tun patch before/after)",
        xtask(ws).arg("vm-compare"),
    );
    vm_compare.skip = compare_skip;
    vec![vm_test, vm_numa, vm_compare]
}

enum Outcome {
    Passed(Duration),
    Failed(Duration, String),
    Skipped(String),
}

pub fn test(ws: &Workspace, cargo_test_args: &[OsString]) -> Result<()> {
    setup::run(ws, false)?;
    let bin = ws.release_bin()?;
    let as_root = if setup::effective_uid() == Some(0) {
        "1"
    } else {
        "0"
    };

    let mut results: Vec<(String, Outcome)> = Vec::new();
    let build = Step::new("build release zoneprof", build_release(ws));
    let cargo_test = Step::new(
        "cargo test (unit + integration)",
        ws.cargo()
            .args([
                "test",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--release",
                "--no-fail-fast",
                // The synthetic-recording generator and its golden test (off in zoneprof).
                "--features",
                "profiler/synth",
            ])
            .args(cargo_test_args)
            .env("ZONEPROF_BIN", &bin)
            // As root, a root integration test that would skip fails instead: CI must
            // really attach probes. Likewise the pprof test without `go`: as root, setup
            // installed golang-go.
            .env("ZONEPROF_REQUIRE_ROOT_TESTS", as_root)
            .env("ZONEPROF_REQUIRE_GO", as_root),
    );
    // The fuzz crate is its own workspace (cargo-fuzz builds it with sanitizer flags), so
    // `cargo test` does not see it: a change to a shared type would break the fuzz targets
    // unnoticed until someone fuzzes. Checking it (stable, no sanitizer) catches that.
    let fuzz_check = Step::new(
        "fuzz targets compile (cargo check, fuzz/)",
        ws.cargo().args([
            "check",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
            "--locked",
        ]),
    );
    let steps = [build, cargo_test, fuzz_check]
        .into_iter()
        .chain(extra_steps(ws, &bin));

    let mut build_failed = false;
    for (i, step) in steps.enumerate() {
        if build_failed {
            results.push((step.name, Outcome::Skipped("release build failed".into())));
            continue;
        }
        if let Some(why) = step.skip {
            println!("==> {}: SKIPPED: {why}", step.name);
            results.push((step.name, Outcome::Skipped(why)));
            continue;
        }
        println!("==> {}", step.name);
        let started = Instant::now();
        let outcome = match step.cmd.run() {
            Ok(()) => Outcome::Passed(started.elapsed()),
            Err(e) => {
                build_failed = i == 0;
                Outcome::Failed(started.elapsed(), format!("{e:#}"))
            }
        };
        results.push((step.name, outcome));
    }

    println!("==> summary");
    let mut failed = 0;
    for (name, outcome) in &results {
        match outcome {
            Outcome::Passed(t) => println!("  PASS  {name} ({})", secs(*t)),
            Outcome::Failed(t, why) => {
                failed += 1;
                println!("  FAIL  {name} ({}): {why}", secs(*t));
            }
            Outcome::Skipped(why) => {
                failed += 1;
                println!("  SKIP  {name}: {why}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} test steps did not pass", results.len());
    }
    println!("==> all {} test steps passed", results.len());
    Ok(())
}

fn secs(t: Duration) -> String {
    format!("{:.1}s", t.as_secs_f64())
}

/// Builds, then replaces this process with `zoneprof demo -o DIR`, so its exit status is
/// ours. A relative DIR is taken relative to where `cargo xtask` was started.
pub fn demo(ws: &Workspace, out: &Path) -> Result<()> {
    setup::run(ws, false)?;
    println!("==> build: release zoneprof");
    build_release(ws).run()?;
    let out: PathBuf = if out.is_absolute() {
        out.to_path_buf()
    } else {
        env::current_dir()
            .context("cannot read the current directory")?
            .join(out)
    };
    let bin = ws.release_bin()?;
    println!("==> demo: writing to {}", out.display());
    Err(Cmd::new(&bin)
        .arg("demo")
        .arg("-o")
        .arg(&out)
        .current_dir(&ws.root)
        .exec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_steps_skip_only_when_not_root_and_something_is_missing() {
        let missing = || {
            Err(anyhow::anyhow!(
                "missing for booting VMs: qemu-system-x86_64"
            ))
        };
        let none = || Some("no test kernels".to_owned());
        assert_eq!(vm_skip_reason(true, missing(), none()), [None, None]);
        assert_eq!(vm_skip_reason(false, Ok(()), None), [None, None]);
        let [t, c] = vm_skip_reason(false, missing(), None);
        assert_eq!(
            t.as_deref(),
            Some("missing for booting VMs: qemu-system-x86_64 (not root: nothing installed)")
        );
        assert_eq!(t, c);
        let [t, c] = vm_skip_reason(false, Ok(()), none());
        assert_eq!(t, None);
        assert!(c.is_some_and(|c| c.starts_with("no test kernels (not root")));
    }
}
