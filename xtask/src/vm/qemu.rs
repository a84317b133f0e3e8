//! Running qemu-system-x86_64 (TCG, no network) with a hard timeout, the console streamed
//! to a log file as it arrives.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::cmd::describe;

pub const QEMU: &str = "qemu-system-x86_64";
/// Prefix of qemu's own stderr lines in the console log.
pub const STDERR_TAG: &str = "qemu stderr: ";

/// After the exit marker, how long qemu gets to power off before it is killed.
const POWEROFF_GRACE: Duration = Duration::from_secs(15);

pub struct Config {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub memory_mib: u32,
    pub cpus: u32,
    /// NUMA nodes of the guest (0 or 1: none); CPUs and memory are split evenly.
    pub numa_nodes: u32,
    pub timeout: Duration,
    /// Console (ttyS0) log, written as lines arrive.
    pub console_log: PathBuf,
    /// File channel (ttyS1), written by qemu itself.
    pub channel_log: PathBuf,
    /// Marker substrings: "booted" (timestamped) and "payload finished".
    pub booted_marker: String,
    pub exit_marker: String,
    /// Echo console lines to stdout with this prefix.
    pub echo: Option<String>,
}

/// How the qemu process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// qemu exited by itself (guest powered off or rebooted with -no-reboot).
    Exited,
    /// Killed after the timeout.
    TimedOut,
    /// The payload finished but the guest did not power off in time; killed.
    HungAfterExit,
}

pub struct Outcome {
    pub console: String,
    pub channel: String,
    pub end: End,
    pub status: Option<ExitStatus>,
    /// From starting qemu to the "booted" marker.
    pub booted_after: Option<Duration>,
    pub elapsed: Duration,
}

impl Outcome {
    /// "exited (exit status 0)" / "killed after the 300 s timeout" …
    pub fn describe_end(&self, timeout: Duration) -> String {
        match self.end {
            End::Exited => format!(
                "qemu exited ({})",
                self.status.map(describe).unwrap_or_else(|| "?".into())
            ),
            End::TimedOut => format!("killed after the {} s timeout", timeout.as_secs()),
            End::HungAfterExit => "payload finished but the guest did not power off; killed".into(),
        }
    }
}

pub fn args(c: &Config) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    // Single-threaded TCG: under multi-threaded TCG a guest oopsed ("Oops: int3" in
    // __schedule) right after zoneprof detached. Attaching and detaching flips static keys,
    // which the guest patches with int3 breakpoints across CPUs (text_poke_bp); a vCPU on
    // another host thread could still run a stale translation of the patched code and trap
    // on an int3 the guest had already retired. One thread runs the vCPUs in turn, so
    // every vCPU sees a patch at once. The vCPUs still interleave (the workloads' CPU
    // pinning keeps its meaning); the guest gets about half the host CPU time.
    // ZONEPROF_VM_TCG=multi brings multi-threaded TCG back, only to measure what single
    // costs (README, "Deterministic VMs"); never for a pass.
    let accel = match std::env::var("ZONEPROF_VM_TCG").as_deref() {
        Ok("multi") => "tcg,thread=multi",
        _ => "tcg,thread=single",
    };
    for s in ["-machine", "q35", "-accel", accel, "-cpu", "max"] {
        push(s);
    }
    push("-smp");
    push(&c.cpus.to_string());
    push("-m");
    push(&c.memory_mib.to_string());
    for s in numa_args(c.numa_nodes, c.cpus, c.memory_mib) {
        push(&s);
    }
    // No default devices (VGA, NIC, floppy …), no display, no network at all.
    for s in [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        // ttyS0: the console, on our stdout; ttyS1: the file channel, into a file.
        "-chardev",
        "stdio,id=con,signal=off",
        "-serial",
        "chardev:con",
    ] {
        push(s);
    }
    push("-chardev");
    a.push(chardev_file(&c.channel_log));
    a.push("-serial".into());
    a.push("chardev:chan".into());
    a.push("-kernel".into());
    a.push(c.kernel.clone().into_os_string());
    a.push("-initrd".into());
    a.push(c.initrd.clone().into_os_string());
    a.push("-append".into());
    a.push(c.append.clone().into());
    a
}

/// `-object memory-backend-ram … -numa node,…` for `nodes` nodes: node i gets its share of
/// the CPUs (consecutive, as a real host numbers them) and of the memory, from its own RAM
/// backend, so the guest sees that many nodes with CPUs and memory each (ACPI SRAT).
/// Nothing for 0 or 1 node. CPUs beyond an even split go to the last node.
pub fn numa_args(nodes: u32, cpus: u32, memory_mib: u32) -> Vec<String> {
    if nodes < 2 {
        return Vec::new();
    }
    let per_cpu = (cpus / nodes).max(1);
    let per_mem = memory_mib / nodes;
    let mut a = Vec::new();
    for n in 0..nodes {
        let first = (n * per_cpu).min(cpus.saturating_sub(1));
        let last = if n + 1 == nodes {
            cpus.saturating_sub(1)
        } else {
            (first + per_cpu - 1).min(cpus.saturating_sub(1))
        };
        let mem = if n + 1 == nodes {
            memory_mib - per_mem * (nodes - 1)
        } else {
            per_mem
        };
        a.push("-object".to_string());
        a.push(format!("memory-backend-ram,id=mem{n},size={mem}M"));
        a.push("-numa".to_string());
        let cpus = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        a.push(format!("node,nodeid={n},cpus={cpus},memdev=mem{n}"));
    }
    a
}

fn chardev_file(path: &std::path::Path) -> OsString {
    // qemu option values escape ',' by doubling it.
    let p = path.to_string_lossy().replace(',', ",,");
    format!("file,id=chan,path={p}").into()
}

enum Event {
    Line(String),
    Eof,
}

/// Boots and waits. Errors only when qemu cannot be started or the logs not written; a
/// timeout or crash is reported in the [`Outcome`].
pub fn run(c: &Config) -> Result<Outcome> {
    let args = args(c);
    let shown = std::iter::once(QEMU.to_owned())
        .chain(args.iter().map(|a| {
            let s = a.to_string_lossy();
            if s.contains(' ') {
                format!("'{s}'")
            } else {
                s.into_owned()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    let mut log = fs::File::create(&c.console_log)
        .with_context(|| format!("creating {}", c.console_log.display()))?;
    writeln!(log, "$ {shown}").with_context(|| format!("writing {}", c.console_log.display()))?;
    fs::remove_file(&c.channel_log).ok();

    let started = Instant::now();
    let mut child = Command::new(QEMU)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("could not start `{QEMU}` (cargo xtask setup installs qemu-system-x86)")
        })?;

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let reader =
        |src: Option<Box<dyn std::io::Read + Send>>, tx: mpsc::Sender<Event>, tag: &'static str| {
            thread::spawn(move || {
                if let Some(src) = src {
                    let mut r = BufReader::new(src);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match r.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let line = String::from_utf8_lossy(&buf).into_owned();
                                tx.send(Event::Line(format!("{tag}{line}"))).ok();
                            }
                        }
                    }
                }
                tx.send(Event::Eof).ok();
            })
        };
    let t_out = reader(stdout.map(|s| Box::new(s) as _), tx.clone(), "");
    let t_err = reader(stderr.map(|s| Box::new(s) as _), tx, STDERR_TAG);

    let mut console = String::new();
    let mut booted_after = None;
    let mut exit_seen: Option<Instant> = None;
    let mut eofs = 0;
    let mut end = End::Exited;
    let mut log_error: Option<std::io::Error> = None;
    let deadline = started + c.timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            end = End::TimedOut;
            kill(&mut child);
            break;
        }
        if exit_seen.is_some_and(|t| now >= t + POWEROFF_GRACE) {
            end = End::HungAfterExit;
            kill(&mut child);
            break;
        }
        if eofs == 2 {
            // Both pipes closed: qemu is exiting; wait for it below.
            break;
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Line(line)) => {
                // Not fatal here (qemu must still be stopped); reported once it has.
                if let Err(e) = log.write_all(line.as_bytes()) {
                    log_error.get_or_insert(e);
                }
                if let Some(prefix) = &c.echo {
                    print!("{prefix}{line}");
                    if !line.ends_with('\n') {
                        println!();
                    }
                }
                if booted_after.is_none() && line.contains(&c.booted_marker) {
                    booted_after = Some(started.elapsed());
                }
                if exit_seen.is_none() && line.contains(&c.exit_marker) {
                    exit_seen = Some(Instant::now());
                }
                console.push_str(&line);
            }
            Ok(Event::Eof) => eofs += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = wait_bounded(
        &mut child,
        deadline.max(Instant::now()) + Duration::from_secs(5),
    );
    if status.is_none() {
        end = End::TimedOut;
    }
    // The readers end once qemu is gone and its pipes close.
    t_out.join().ok();
    t_err.join().ok();
    for e in rx.try_iter() {
        if let Event::Line(l) = e {
            log.write_all(l.as_bytes()).ok();
            console.push_str(&l);
        }
    }
    if let Some(e) = log_error {
        return Err(anyhow::Error::new(e).context(format!("writing {}", c.console_log.display())));
    }
    let elapsed = started.elapsed();
    let channel = match fs::read(&c.channel_log) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    Ok(Outcome {
        console,
        channel,
        end,
        status,
        booted_after,
        elapsed,
    })
}

fn kill(child: &mut Child) {
    // Only our own qemu process, by its handle.
    child.kill().ok();
}

/// Waits for the child until `until`, killing it at that point.
fn wait_bounded(child: &mut Child, until: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                kill(child);
                return child.wait().ok();
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_tcg_without_network() {
        let c = Config {
            kernel: "/k/vmlinuz".into(),
            initrd: "/t/initrd.cpio.gz".into(),
            append: "console=ttyS0 quiet".into(),
            memory_mib: 2048,
            cpus: 2,
            numa_nodes: 0,
            timeout: Duration::from_secs(60),
            console_log: "/t/console.log".into(),
            channel_log: "/t/a,b/files.log".into(),
            booted_marker: "B".into(),
            exit_marker: "E".into(),
            echo: None,
        };
        let a: Vec<String> = args(&c)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let joined = a.join(" ");
        assert!(joined.starts_with(
            "-machine q35 -accel tcg,thread=single -cpu max -smp 2 -m 2048 -nodefaults"
        ));
        assert!(joined.contains("-nic none"));
        assert!(joined.contains("-no-reboot"));
        assert!(
            joined.contains("-chardev file,id=chan,path=/t/a,,b/files.log -serial chardev:chan")
        );
        assert_eq!(a[a.len() - 2..], ["-append", "console=ttyS0 quiet"]);
        assert!(!joined.contains("-enable-kvm"));
        assert!(!joined.contains("-numa"));
    }

    #[test]
    fn numa_nodes_split_cpus_and_memory() {
        assert_eq!(
            numa_args(2, 2, 2048),
            [
                "-object",
                "memory-backend-ram,id=mem0,size=1024M",
                "-numa",
                "node,nodeid=0,cpus=0,memdev=mem0",
                "-object",
                "memory-backend-ram,id=mem1,size=1024M",
                "-numa",
                "node,nodeid=1,cpus=1,memdev=mem1",
            ]
        );
        let four = numa_args(2, 5, 1000).join(" ");
        assert!(four.contains("size=500M -numa node,nodeid=0,cpus=0-1,memdev=mem0"));
        assert!(four.contains("node,nodeid=1,cpus=2-4,memdev=mem1"));
        assert!(numa_args(1, 2, 2048).is_empty());
    }
}
