//! Booting other kernels under qemu (TCG: no KVM here) to test zoneprof's probes for real.
//!
//! One boot = one kernel + one initramfs (busybox, an `/init`, the payload's files and the
//! kernel modules it needs) + a payload of named shell steps. `/init` prints marker lines
//! on the console around each step and sends requested files back base64'd over a second
//! serial port, which qemu writes to a host file. Both channels exist on every x86 kernel
//! with the 8250 UART built in (Debian cloud kernels lack 9p/virtio-fs, the shared 6.12.117
//! kernels have them; serial works for all).
//!
//! - [`boot`] is the library entry point (used by `vm-test`, `vm-run`, and later
//!   `vm-compare`): boot a [`Kernel`] with a [`Payload`], get back a [`Boot`] with the
//!   parsed transcript and the named files.
//! - [`kernel`] fetches Debian cloud kernels (cached under `<target>/vm/kernels`) or takes a
//!   local bzImage (SHA256SUMS-checked).
//! - [`scenarios`] is the data-driven table `vm-test` runs; [`cli`] has the `vm-*` commands.

pub mod build;
pub mod cli;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
pub mod compare;
mod console;
mod cpio;
pub mod hostbin;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
mod initramfs;
pub mod kernel;
mod qemu;
pub mod scenarios;

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

pub use console::{Received, StepEnd, Transcript};
pub use kernel::Kernel;
pub use qemu::End;

use crate::cmd::find_in_path;
use crate::workspace::Workspace;

/// Static busybox from Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";
/// Rust target used for the static zoneprof.
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// A file placed into the guest's initramfs.
#[derive(Debug, Clone)]
pub struct GuestFile {
    /// Absolute or relative guest path (`/usr/bin/zoneprof`).
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

impl GuestFile {
    pub fn from_host(host: &Path, guest: &str, mode: u32) -> Result<Self> {
        let data = fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        Ok(Self {
            path: guest.to_owned(),
            mode,
            data,
        })
    }
}

/// One named shell step run inside the guest.
#[derive(Debug, Clone)]
pub struct Step {
    /// Letters, digits, `._-`; also names the step's files on the host.
    pub name: String,
    /// Shell text, run with `sh -ex` in /tmp (stops at the first failing command).
    pub script: String,
    /// A shell test; when it fails inside the guest the step is skipped (not failed).
    pub requires: Option<String>,
    /// Killed (SIGKILL) after this many seconds inside the guest.
    pub timeout_s: u32,
    /// Files to send back after the step, also when it failed: (name, guest path). They
    /// arrive as `<step>/<name>` in [`Boot::files`].
    pub collect: Vec<(String, String)>,
}

/// What to run in one boot.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    pub steps: Vec<Step>,
    pub files: Vec<GuestFile>,
    /// Kernel modules to load first (with their dependencies); ignored for modules built
    /// in. A bzImage without a module tree must have them built in.
    pub modules: Vec<String>,
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOpts {
    pub memory_mib: u32,
    pub cpus: u32,
    /// NUMA nodes the guest sees (0: none, qemu's default single node).
    pub numa_nodes: u32,
    /// Hard limit for the whole boot; qemu is killed after it.
    pub timeout: Duration,
    /// Extra kernel command line words.
    pub append: String,
    /// Stream the console to stdout.
    pub echo: bool,
    /// Prefix of the log file names (`<tag>-<kernel>.console.log`).
    pub tag: String,
}

impl Default for BootOpts {
    fn default() -> Self {
        Self {
            memory_mib: 2048,
            cpus: 2,
            numa_nodes: 0,
            timeout: Duration::from_secs(300),
            append: String::new(),
            echo: false,
            tag: "vm".into(),
        }
    }
}

/// The result of one boot.
#[derive(Debug)]
pub struct Boot {
    pub kernel: String,
    pub transcript: Transcript,
    pub received: Received,
    pub end: End,
    /// "qemu exited (exit status 0)", "killed after the 300 s timeout", …
    pub end_text: String,
    /// Host time from starting qemu to `/init` reporting itself.
    pub booted_after: Option<Duration>,
    pub elapsed: Duration,
    pub console_log: PathBuf,
    pub channel_log: PathBuf,
}

impl Boot {
    /// ": <first console line containing one of `needles`>", or "".
    fn console_hint(&self, needles: &[&str]) -> String {
        fs::read_to_string(&self.console_log)
            .ok()
            .and_then(|log| {
                log.lines()
                    .find(|l| needles.iter().any(|n| l.contains(n)))
                    .map(|l| format!(": {}", l.trim()))
            })
            .unwrap_or_default()
    }

    /// A file the payload sent back (`<step>/<name>`).
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.received.files.get(name).map(Vec::as_slice)
    }

    /// Whole-boot problems: no boot marker (with what qemu said), no exit marker (with a
    /// kernel panic line if there is one), damaged transfers.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.transcript.booted_uptime.is_none() {
            p.push(format!(
                "the guest never reached /init ({}){}",
                self.end_text,
                self.console_hint(&[qemu::STDERR_TAG, "Kernel panic"])
            ));
        } else if self.transcript.exit.is_none() {
            p.push(format!(
                "the payload did not finish ({}){}",
                self.end_text,
                self.console_hint(&["Kernel panic", "Oops", "BUG:"])
            ));
        }
        // A guest that oopsed but finished anyway is not a pass: the oops may be ours.
        if let Some(oops) = self.kernel_oops() {
            p.push(format!("the guest kernel reported: {oops}"));
        }
        p.extend(
            self.received
                .damaged
                .iter()
                .map(|d| format!("file transfer: {d}")),
        );
        p
    }

    /// The first line of a kernel oops, panic or BUG report on the console, with the next
    /// few lines (where the faulting function is named).
    pub fn kernel_oops(&self) -> Option<String> {
        let log = fs::read_to_string(&self.console_log).ok()?;
        oops_excerpt(&log)
    }
}

/// The first oops/panic/BUG line of a console log and the three lines after it.
pub fn oops_excerpt(log: &str) -> Option<String> {
    const NEEDLES: [&str; 4] = ["Oops:", "Kernel panic", "BUG:", "general protection fault"];
    let lines: Vec<&str> = log.lines().collect();
    let i = lines
        .iter()
        .position(|l| NEEDLES.iter().any(|n| l.contains(n)))?;
    Some(
        lines[i..lines.len().min(i + 4)]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

/// Directories under `<target>/vm`.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub root: PathBuf,
}

impl Dirs {
    pub fn new(ws: &Workspace) -> Result<Self> {
        let root = ws.target_dir()?.join("vm");
        let d = Self { root };
        for sub in [d.kernels(), d.logs(), d.work(), d.results()] {
            fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        }
        Ok(d)
    }
    pub fn kernels(&self) -> PathBuf {
        self.root.join("kernels")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
}

/// Checks the host tools a boot needs, naming the package for each missing one.
pub fn check_tools() -> Result<()> {
    let mut missing = Vec::new();
    for (tool, pkg) in [
        (qemu::QEMU, "qemu-system-x86"),
        ("xz", "xz-utils"),
        ("sha256sum", "coreutils"),
        ("dpkg-deb", "dpkg"),
        ("apt-get", "apt"),
    ] {
        if find_in_path(tool).is_none() {
            missing.push(format!("{tool} ({pkg})"));
        }
    }
    match fs::read(BUSYBOX) {
        Ok(b) if is_static_elf(&b)? => {}
        Ok(_) => missing.push(format!("a static {BUSYBOX} (busybox-static)")),
        Err(_) => missing.push(format!("{BUSYBOX} (busybox-static)")),
    }
    if !missing.is_empty() {
        bail!(
            "missing for booting VMs: {}; run `cargo xtask setup`",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Boots `kernel` with `payload`, waits (at most `opts.timeout`) and parses what came back.
/// Errors are for the host side (cannot build the initramfs, cannot start qemu); what went
/// wrong inside the guest is in the returned [`Boot`].
pub fn boot(dirs: &Dirs, kernel: &Kernel, payload: &Payload, opts: &BootOpts) -> Result<Boot> {
    let nonce = nonce();
    let modules = match (&kernel.modules, payload.modules.is_empty()) {
        (_, true) | (None, _) => Vec::new(),
        (Some(tree), false) => kernel::modules(tree, &payload.modules)
            .with_context(|| format!("kernel {}: modules {:?}", kernel.label, payload.modules))?,
    };
    let stem = format!("{}-{}", opts.tag, file_safe(&kernel.label));
    let initrd = dirs.work().join(format!("{stem}.cpio.gz"));
    initramfs::build(&initrd, Path::new(BUSYBOX), &nonce, payload, &modules)
        .with_context(|| format!("building {}", initrd.display()))?;
    let prefix = console::prefix(&nonce);
    let cfg = qemu::Config {
        kernel: kernel.image.clone(),
        initrd,
        append: format!("console=ttyS0 quiet panic=-1 {}", opts.append)
            .trim()
            .to_owned(),
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        numa_nodes: opts.numa_nodes,
        timeout: opts.timeout,
        console_log: dirs.logs().join(format!("{stem}.console.log")),
        channel_log: dirs.logs().join(format!("{stem}.files.log")),
        booted_marker: format!("{prefix}{}:", console::BOOTED),
        exit_marker: format!("{prefix}{}:", console::EXIT),
        echo: opts.echo.then(|| format!("[{}] ", kernel.label)),
    };
    let out = qemu::run(&cfg)?;
    let mut transcript = console::parse_console(&out.console, &nonce);
    let mut received = console::parse_files(&out.channel, &nonce);
    // Without a second UART the guest falls back to the console for files.
    if received == Received::default() {
        received = console::parse_files(&out.console, &nonce);
    }
    // File-channel lines on the console must not count as step output.
    for s in &mut transcript.steps {
        if s.output.contains(&prefix) {
            s.output = s
                .output
                .lines()
                .filter(|l| !l.contains(&prefix))
                .map(|l| format!("{l}\n"))
                .collect();
        }
    }
    Ok(Boot {
        kernel: kernel.label.clone(),
        transcript,
        received,
        end: out.end,
        end_text: out.describe_end(opts.timeout),
        booted_after: out.booted_after,
        elapsed: out.elapsed,
        console_log: cfg.console_log,
        channel_log: cfg.channel_log,
    })
}

/// A script's boot and the files it brought back.
#[derive(Debug)]
pub struct ScriptRun {
    pub boot: Boot,
    /// Collect name -> contents.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
}

/// The strict one-call form, e.g. for `vm-compare`: boots `kernel` (a Debian kernel or
/// [`kernel::bzimage`]) with `files`, runs `script` as one step named `run` (`sh -ex`, at
/// most `opts.timeout` inside the guest), and returns every `collect` file (name, guest
/// path). Fails, naming the kernel and the console log, when the script fails or a file
/// does not come back.
pub fn run_script(
    dirs: &Dirs,
    kernel: &Kernel,
    script: &str,
    files: Vec<GuestFile>,
    modules: &[String],
    collect: &[(String, String)],
    opts: &BootOpts,
) -> Result<ScriptRun> {
    let payload = Payload {
        steps: vec![Step {
            name: "run".into(),
            script: script.to_owned(),
            requires: None,
            timeout_s: opts.timeout.as_secs().clamp(1, u32::MAX as u64) as u32,
            collect: collect.to_vec(),
        }],
        files,
        modules: modules.to_vec(),
    };
    // The boot gets time for booting and sending files on top of the script's limit.
    let boot_opts = BootOpts {
        timeout: opts.timeout + Duration::from_secs(120),
        ..opts.clone()
    };
    let boot = boot(dirs, kernel, &payload, &boot_opts)?;
    let log = boot.console_log.display().to_string();
    let mut problems = boot.problems();
    match boot.transcript.step("run").map(|s| &s.end) {
        Some(StepEnd::Exited { status: 0, .. }) => {}
        Some(StepEnd::Exited { status, .. }) => {
            problems.push(format!("the script exited with status {status}"))
        }
        Some(StepEnd::Unfinished) => problems.push("the script did not finish".into()),
        Some(StepEnd::Skipped(why)) => problems.push(format!("the script was skipped: {why}")),
        None if problems.is_empty() => problems.push("the script never started".into()),
        None => {}
    }
    if let Some(m) = boot.transcript.step("modules")
        && !matches!(m.end, StepEnd::Exited { status: 0, .. })
    {
        problems.push(format!("loading modules {modules:?} failed"));
    }
    let mut got = std::collections::BTreeMap::new();
    for (name, guest) in collect {
        match boot.file(&format!("run/{name}")) {
            Some(data) => {
                got.insert(name.clone(), data.to_vec());
            }
            None => problems.push(format!("{name} ({guest}) did not come back")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "kernel {}: {} (console log {log}, file channel {})",
            kernel.label,
            problems.join("; "),
            boot.channel_log.display()
        );
    }
    Ok(ScriptRun { boot, files: got })
}

/// Builds `zoneprof` statically (glibc, `+crt-static`; eBPF object embedded) and returns
/// its path, after checking it has no ELF interpreter.
pub fn build_static_zoneprof(ws: &Workspace) -> Result<PathBuf> {
    println!("==> vm: building a static zoneprof");
    ws.cargo()
        .args([
            "build",
            "--release",
            "--target",
            STATIC_TARGET,
            "-p",
            "profiler",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .run()?;
    let bin = ws
        .target_dir()?
        .join(STATIC_TARGET)
        .join("release")
        .join("zoneprof");
    check_static(&bin)?;
    Ok(bin)
}

/// Fails unless `bin` is a statically linked x86-64 ELF executable.
pub fn check_static(bin: &Path) -> Result<()> {
    let mut head = Vec::new();
    fs::File::open(bin)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .with_context(|| format!("reading {}", bin.display()))?;
    if !is_static_elf(&head).with_context(|| format!("{} is not an x86-64 ELF", bin.display()))? {
        bail!(
            "{} is dynamically linked (has an ELF interpreter); build it with \
             RUSTFLAGS='-C target-feature=+crt-static' --target {STATIC_TARGET}",
            bin.display()
        );
    }
    Ok(())
}

/// Whether an ELF64 little-endian image (its first bytes, program headers included) has
/// no `PT_INTERP` program header.
pub fn is_static_elf(b: &[u8]) -> Result<bool> {
    const PT_INTERP: u32 = 3;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    if phentsize < 4 {
        bail!("bad ELF program header size {phentsize}");
    }
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(p) = b.get(at..at + 4) else {
            bail!("ELF program headers beyond the bytes read");
        };
        if u32::from_le_bytes([p[0], p[1], p[2], p[3]]) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// 16 hex digits from /dev/urandom (time and pid if that fails).
fn nonce() -> String {
    let mut b = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return b.iter().map(|x| format!("{x:02x}")).collect();
    }
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", t, std::process::id())
}

pub(crate) fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn oops_is_found_with_its_context() {
        let log = "[ 1.0] ok\n[ 9.1] Oops: int3: 0000 [#1] PREEMPT SMP\n[ 9.1] CPU: 1 PID: 15 Comm: rcu_preempt\n[ 9.1] RIP: 0010:__schedule+0x1/0x9\n[ 9.1] Code: 00\n[ 9.2] more\n";
        assert_eq!(
            super::oops_excerpt(log).unwrap(),
            "[ 9.1] Oops: int3: 0000 [#1] PREEMPT SMP | [ 9.1] CPU: 1 PID: 15 Comm: rcu_preempt | \
             [ 9.1] RIP: 0010:__schedule+0x1/0x9 | [ 9.1] Code: 00"
        );
        assert_eq!(super::oops_excerpt("[ 1.0] all fine\n"), None);
    }

    use super::*;

    fn elf(phdr_types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * phdr_types.len()];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(phdr_types.len() as u16).to_le_bytes());
        for (i, t) in phdr_types.iter().enumerate() {
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn static_elf_detection() {
        assert!(is_static_elf(&elf(&[6, 1, 1, 4])).unwrap());
        assert!(!is_static_elf(&elf(&[6, 3, 1])).unwrap());
        assert!(is_static_elf(b"#!/bin/sh\n").is_err());
        let mut cut = elf(&[1, 1, 3]);
        cut.truncate(64 + 56);
        assert!(is_static_elf(&cut).is_err());
    }

    #[test]
    fn nonce_is_hex_and_varies() {
        let (a, b) = (nonce(), nonce());
        assert!(a.len() >= 16 && a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(file_safe("6.12.117+deb12/x"), "6.12.117_deb12_x");
    }
}
