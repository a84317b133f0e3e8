//! `cargo xtask setup [--check]`: checks, and installs where missing, what building and
//! testing zoneprof needs. Every check prints one line; nothing is reinstalled when
//! already present.

use std::fs;
use std::path::Path;

use anyhow::{Result, bail};

use crate::cmd::{Cmd, find_in_path};
use crate::workspace::Workspace;

/// Debian packages: LLVM 22 for building bpf-linker, iproute2 (`ip`) for the tests;
/// qemu, a static busybox and xz for booting other kernels (`cargo xtask vm-test`), and cpio
/// to look inside the initramfs it writes (`zcat …cpio.gz | cpio -t`); Debian's chromium
/// to render the HTML reports in the tests; util-linux for `setpriv` (privilege tests);
/// golang-go for `go tool pprof`, which reads the exported pprof files in the tests;
/// prometheus (with promtool) to scrape `zoneprof serve` and tmux to drive `zoneprof top`
/// in the tests; g++ for libFuzzer, which the fuzz targets' check builds.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "chromium",
    "util-linux",
    "golang-go",
    "prometheus",
    "tmux",
    "g++",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_SERIES: &str = "0.13.";
const TRACEFS: &str = "/sys/kernel/tracing";

/// What is there to do, filled in by the checks.
#[derive(Default)]
struct Plan {
    apt: Vec<&'static str>,
    nightly: Option<NightlyFix>,
    bpf_linker: bool,
    tracefs: bool,
    /// Missing things this tool cannot install (with how to get them).
    manual: Vec<String>,
}

#[derive(Clone, Copy)]
enum NightlyFix {
    Toolchain,
    RustSrc,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.apt.is_empty()
            && self.nightly.is_none()
            && !self.bpf_linker
            && !self.tracefs
            && self.manual.is_empty()
    }

    /// Installs that need root on Debian (everything but the tracefs mount).
    fn needs_install(&self) -> bool {
        !self.apt.is_empty() || self.nightly.is_some() || self.bpf_linker
    }

    /// Everything missing, each with the exact command that provides it.
    fn missing(&self) -> Vec<String> {
        let mut out = self.manual.clone();
        if !self.apt.is_empty() {
            out.push(format!(
                "Debian packages {0} (apt-get install -y {0})",
                self.apt.join(" ")
            ));
        }
        match self.nightly {
            Some(NightlyFix::Toolchain) => out.push(
                "Rust nightly with rust-src (rustup toolchain install nightly --component rust-src)"
                    .into(),
            ),
            Some(NightlyFix::RustSrc) => out.push(
                "nightly rust-src (rustup component add rust-src --toolchain nightly)".into(),
            ),
            None => {}
        }
        if self.bpf_linker {
            out.push(format!(
                "bpf-linker {BPF_LINKER_VERSION} (LLVM_PREFIX={LLVM_PREFIX} \
                 LLVM_SYS_221_PREFIX={LLVM_PREFIX} cargo install bpf-linker --version \
                 {BPF_LINKER_VERSION} --no-default-features --features llvm-22)"
            ));
        }
        if self.tracefs {
            out.push(format!(
                "tracefs at {TRACEFS} (mount -t tracefs nodev {TRACEFS})"
            ));
        }
        out
    }
}

struct Host {
    root: bool,
    /// `Some(version)` when /etc/debian_version exists and apt-get + dpkg-query are on PATH.
    debian: Option<String>,
}

impl Host {
    fn detect() -> Self {
        let root = effective_uid() == Some(0);
        let debian = fs::read_to_string("/etc/debian_version")
            .ok()
            .filter(|_| find_in_path("apt-get").is_some() && find_in_path("dpkg-query").is_some())
            .map(|v| v.trim().to_owned());
        Self { root, debian }
    }
}

fn report(tag: &str, what: impl AsRef<str>) {
    println!("  {tag:<8}{}", what.as_ref());
}

/// Runs the checks; installs what is missing unless `check_only`.
pub fn run(ws: &Workspace, check_only: bool) -> Result<()> {
    println!(
        "==> setup: checking{}",
        if check_only {
            " (--check: report only)"
        } else {
            ""
        }
    );
    let host = Host::detect();
    report(
        "info",
        format!(
            "host: {}, {}",
            if host.root { "root" } else { "not root" },
            match &host.debian {
                Some(v) => format!("Debian {v} with apt-get/dpkg-query"),
                None => "not Debian/apt".to_owned(),
            }
        ),
    );
    let mut plan = check_all(&host)?;
    if plan.tracefs && !host.root && !check_only {
        // Not fatal for building; the tests that need tracefs say so themselves.
        report(
            "warn",
            format!(
                "not root, so not mounting tracefs; as root run: mount -t tracefs nodev {TRACEFS}"
            ),
        );
        plan.tracefs = false;
    }

    if plan.is_empty() {
        println!("==> setup: everything is in place, nothing to do");
        return Ok(());
    }
    let missing = plan.missing().join("; ");
    if check_only {
        bail!("setup --check: missing: {missing}");
    }
    if !plan.manual.is_empty() {
        bail!("setup cannot install everything itself; missing: {missing}");
    }
    if plan.needs_install() && !(host.root && host.debian.is_some()) {
        bail!(
            "setup must install, and can only do so as root on Debian with apt; \
             install these yourself (or rerun as root): {missing}"
        );
    }

    install(ws, &plan)?;

    println!("==> setup: verifying");
    let mut after = check_all(&host)?;
    if !host.root {
        after.tracefs = false; // already warned about above
    }
    if !after.is_empty() {
        bail!(
            "setup: still missing after installing: {}",
            after.missing().join("; ")
        );
    }
    println!("==> setup: done");
    Ok(())
}

fn check_all(host: &Host) -> Result<Plan> {
    let mut plan = Plan::default();
    check_nightly(&mut plan)?;
    check_packages(host, &mut plan)?;
    check_bpf_linker(&mut plan)?;
    check_tracefs(&mut plan);
    Ok(plan)
}

fn check_nightly(plan: &mut Plan) -> Result<()> {
    let Some(listed) = Cmd::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .capture()?
    else {
        report("MISSING", "rustup");
        plan.manual
            .push("rustup (install it from https://rustup.rs)".into());
        return Ok(());
    };
    if !listed.status.success() {
        report("MISSING", "rustup toolchain nightly");
        plan.nightly = Some(NightlyFix::Toolchain);
        return Ok(());
    }
    let version = Cmd::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .capture()?
        .filter(|c| c.status.success())
        .map(|c| c.stdout.trim().to_owned())
        .unwrap_or_else(|| "version unknown".to_owned());
    report("ok", format!("rustup toolchain nightly ({version})"));
    if has_rust_src(&listed.stdout) {
        report("ok", "nightly component rust-src");
    } else {
        report("MISSING", "nightly component rust-src");
        plan.nightly = Some(NightlyFix::RustSrc);
    }
    Ok(())
}

fn has_rust_src(installed_components: &str) -> bool {
    installed_components
        .lines()
        .any(|l| l.split_whitespace().next() == Some("rust-src"))
}

fn check_packages(host: &Host, plan: &mut Plan) -> Result<()> {
    if host.debian.is_none() {
        // No dpkg to ask: the LLVM packages only matter for building bpf-linker (checked
        // below); `ip` can be looked for directly.
        report("info", "not Debian: Debian package checks skipped");
        match find_in_path("ip") {
            Some(p) => report("ok", format!("ip ({})", p.display())),
            None => {
                report("MISSING", "ip");
                plan.manual.push("the `ip` tool (iproute2)".into());
            }
        }
        return Ok(());
    }
    for &pkg in APT_PACKAGES {
        let out = Cmd::new("dpkg-query")
            .args(["-W", "-f=${Status}\t${Version}", pkg])
            .capture()?;
        let installed = out
            .as_ref()
            .filter(|o| o.status.success())
            .and_then(|o| installed_version(&o.stdout));
        match installed {
            Some(v) => report("ok", format!("package {pkg} {v}")),
            None => {
                report("MISSING", format!("package {pkg}"));
                plan.apt.push(pkg);
            }
        }
    }
    Ok(())
}

/// Parses `dpkg-query -W -f='${Status}\t${Version}'`: the version when the third word of
/// the status is `installed` (e.g. `install ok installed`).
fn installed_version(status_line: &str) -> Option<&str> {
    let (status, version) = status_line.trim().split_once('\t')?;
    (status.split_whitespace().nth(2) == Some("installed")).then_some(version)
}

fn check_bpf_linker(plan: &mut Plan) -> Result<()> {
    let out = Cmd::new("bpf-linker").arg("--version").capture()?;
    let version = out
        .as_ref()
        .filter(|o| o.status.success())
        .and_then(|o| o.stdout.split_whitespace().nth(1).map(str::to_owned));
    match version {
        Some(v) if v.starts_with(BPF_LINKER_SERIES) => {
            let at = find_in_path("bpf-linker")
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default();
            report("ok", format!("bpf-linker {v}{at}"));
        }
        Some(v) => {
            report(
                "MISSING",
                format!("bpf-linker {BPF_LINKER_SERIES}x (found {v})"),
            );
            plan.bpf_linker = true;
        }
        None => {
            report("MISSING", "bpf-linker (not on PATH or not runnable)");
            plan.bpf_linker = true;
        }
    }
    Ok(())
}

fn check_tracefs(plan: &mut Plan) {
    if Path::new(TRACEFS).join("events").is_dir() {
        report("ok", format!("tracefs mounted at {TRACEFS}"));
    } else {
        report(
            "MISSING",
            format!("tracefs at {TRACEFS} ({TRACEFS}/events not found)"),
        );
        plan.tracefs = true;
    }
}

fn install(ws: &Workspace, plan: &Plan) -> Result<()> {
    if !plan.apt.is_empty() {
        println!(
            "==> setup: installing Debian packages {}",
            plan.apt.join(" ")
        );
        Cmd::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()?;
        Cmd::new("apt-get")
            .args(["install", "-y"])
            .args(&plan.apt)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()?;
    }
    match plan.nightly {
        Some(NightlyFix::Toolchain) => {
            println!("==> setup: installing Rust nightly with rust-src");
            Cmd::new("rustup")
                .args(["toolchain", "install", "nightly", "--profile", "minimal"])
                .args(["--component", "rust-src"])
                .run()?;
        }
        Some(NightlyFix::RustSrc) => {
            println!("==> setup: adding rust-src to nightly");
            Cmd::new("rustup")
                .args(["component", "add", "rust-src", "--toolchain", "nightly"])
                .run()?;
        }
        None => {}
    }
    if plan.bpf_linker {
        println!(
            "==> setup: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (takes a few minutes)"
        );
        let install = |locked: bool| {
            ws.cargo()
                .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
                .args(if locked { &["--locked"][..] } else { &[][..] })
                .args(["--no-default-features", "--features", "llvm-22"])
                .env("LLVM_PREFIX", LLVM_PREFIX)
                .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
                .run()
        };
        if let Err(e) = install(true) {
            println!("    {e:#}; retrying without --locked");
            install(false)?;
        }
    }
    if plan.tracefs {
        println!("==> setup: mounting tracefs at {TRACEFS}");
        Cmd::new("mount")
            .args(["-t", "tracefs", "nodev", TRACEFS])
            .run()?;
    }
    Ok(())
}

/// Debian packages `cargo xtask bench` compares zoneprof against: `perf lock record`
/// (linux-perf) and a bpftrace script; bpftool names the programs it measures.
pub const BENCH_PACKAGES: &[&str] = &["linux-perf", "bpftrace", "bpftool"];

/// Installs the bench's packages where missing (root on Debian), or says what to install.
pub fn ensure_bench_packages() -> Result<()> {
    println!("==> setup: bench tools");
    let host = Host::detect();
    let mut missing = Vec::new();
    if host.debian.is_some() {
        for &pkg in BENCH_PACKAGES {
            let out = Cmd::new("dpkg-query")
                .args(["-W", "-f=${Status}\t${Version}", pkg])
                .capture()?;
            match out
                .as_ref()
                .filter(|o| o.status.success())
                .and_then(|o| installed_version(&o.stdout))
            {
                Some(v) => report("ok", format!("package {pkg} {v}")),
                None => {
                    report("MISSING", format!("package {pkg}"));
                    missing.push(pkg);
                }
            }
        }
    } else {
        for tool in ["perf", "bpftrace"] {
            match find_in_path(tool) {
                Some(p) => report("ok", format!("{tool} ({})", p.display())),
                None => report(
                    "warn",
                    format!("{tool} not found: the bench leaves out its comparison"),
                ),
            }
        }
        return Ok(());
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !host.root {
        bail!(
            "the bench needs Debian packages {0}: apt-get install -y {0}",
            missing.join(" ")
        );
    }
    Cmd::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Cmd::new("apt-get")
        .args(["install", "-y"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
}

/// What `cargo xtask fuzz` needs: Rust nightly and cargo-fuzz. cargo-fuzz goes into
/// ~/.cargo/bin like bpf-linker (no root needed); nightly comes with `cargo xtask setup`.
pub fn ensure_cargo_fuzz() -> Result<()> {
    println!("==> setup: fuzzing tools");
    let nightly = Cmd::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .capture()?
        .filter(|c| c.status.success());
    match nightly {
        Some(c) => report(
            "ok",
            format!("rustup toolchain nightly ({})", c.stdout.trim()),
        ),
        None => bail!(
            "cargo fuzz needs Rust nightly: run `cargo xtask setup` (or rustup toolchain install nightly)"
        ),
    }
    let version = |c: crate::cmd::Captured| c.stdout.trim().to_owned();
    let found = Cmd::new("cargo-fuzz")
        .arg("--version")
        .capture()?
        .filter(|c| c.status.success())
        .map(version);
    if let Some(v) = found {
        report("ok", v);
        return Ok(());
    }
    report("MISSING", "cargo-fuzz");
    println!("==> setup: installing cargo-fuzz (takes a few minutes)");
    Cmd::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .run()?;
    Ok(())
}

/// Effective uid from /proc/self/status (`Uid: real effective saved fs`).
pub fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

fn parse_effective_uid(proc_status: &str) -> Option<u32> {
    proc_status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_parsing() {
        assert_eq!(
            installed_version("install ok installed\t1:22.1.0-1"),
            Some("1:22.1.0-1")
        );
        assert_eq!(installed_version("deinstall ok config-files\t1.0"), None);
        assert_eq!(installed_version("unknown ok not-installed\t"), None);
        assert_eq!(installed_version(""), None);
    }

    #[test]
    fn rust_src_detection() {
        assert!(has_rust_src(
            "cargo-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64\n"
        ));
        assert!(!has_rust_src(
            "rust-std-x86_64-unknown-linux-gnu\nrust-src-extra\n"
        ));
    }

    #[test]
    fn uid_parsing() {
        let status = "Name:\tcat\nUid:\t1000\t0\t1000\t1000\nGid:\t1\t1\t1\t1\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name:\tcat\n"), None);
    }

    #[test]
    fn missing_lists_exact_commands() {
        let plan = Plan {
            apt: vec!["llvm-22-dev", "iproute2"],
            nightly: Some(NightlyFix::RustSrc),
            bpf_linker: true,
            ..Plan::default()
        };
        let m = plan.missing();
        assert_eq!(
            m[0],
            "Debian packages llvm-22-dev iproute2 (apt-get install -y llvm-22-dev iproute2)"
        );
        assert!(m[1].contains("rustup component add rust-src --toolchain nightly"));
        assert!(m[2].contains("LLVM_PREFIX=/usr/lib/llvm-22"));
        assert!(plan.needs_install());
        assert!(Plan::default().is_empty());
    }
}
