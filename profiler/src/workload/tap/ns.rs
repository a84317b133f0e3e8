//! The run's own network namespace: created with `ip netns add`, entered per thread with
//! `setns`, deleted on drop; plus removal of namespaces left behind by killed runs.
//!
//! Names are `zoneprof-tap-<pid>-<seq>`: the pid tells a later run whether the owner is
//! still alive, the sequence number keeps runs inside one process (tests) apart.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use super::TapError;

/// Every namespace this workload creates starts with this.
pub const NS_PREFIX: &str = "zoneprof-tap-";
/// Where `ip netns` keeps its bind mounts.
pub const NETNS_DIR: &str = "/run/netns";

static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

pub fn ns_name(pid: u32, seq: u32) -> String {
    format!("{NS_PREFIX}{pid}-{seq}")
}

/// The owner pid of a namespace name made by [`ns_name`] (also accepts the bare
/// `zoneprof-tap-<pid>`); `None` for any other name, which is then never touched.
pub fn parse_ns_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NS_PREFIX)?;
    let (pid, seq) = match rest.split_once('-') {
        Some((p, s)) => (p, Some(s)),
        None => (rest, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(pid) || seq.is_some_and(|s| !all_digits(s)) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// Whether a process with this pid exists. EPERM means it exists but is not ours to
/// signal; only ESRCH counts as dead, so an unsure answer keeps the namespace.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let rc = unsafe { libc::kill(p, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Runs `ip ARGS…` (stdin from `input` when given) and turns a failure into one line.
pub fn ip(args: &[&str], input: Option<&str>) -> Result<(), TapError> {
    let cmd = args.join(" ");
    // Own process group: a terminal's Ctrl-C reaches only us, so it cannot kill an `ip`
    // halfway through setup or, worse, the `ip netns delete` of the cleanup.
    let mut child = Command::new("ip")
        .args(args)
        .process_group(0)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => TapError::IpMissing,
            _ => TapError::Ip {
                cmd: cmd.clone(),
                detail: e.to_string(),
            },
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error shows up as ip's own failure below; dropping stdin ends the batch.
        stdin.write_all(text.as_bytes()).ok();
    }
    let out = child.wait_with_output().map_err(|e| TapError::Ip {
        cmd: cmd.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(TapError::Ip {
        cmd,
        detail: if detail.is_empty() {
            out.status.to_string()
        } else {
            detail
        },
    })
}

/// Deletes every `zoneprof-tap-<pid>-…` namespace whose pid is dead; returns their names.
/// Other names, and namespaces of live processes, are left alone.
pub fn cleanup_stale() -> Result<Vec<String>, TapError> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(TapError::Io {
                what: format!("listing {NETNS_DIR}"),
                source: e,
            });
        }
    };
    let own = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match parse_ns_pid(&name) {
            Some(pid) if pid != own && !pid_alive(pid) => {
                ip(&["netns", "delete", &name], None)?;
                removed.push(name);
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// A network namespace owned by this run; deleted on drop (error and unwind paths too).
#[derive(Debug)]
pub struct Netns {
    name: String,
    deleted: bool,
}

impl Netns {
    /// Creates a fresh, uniquely named namespace.
    pub fn create() -> Result<Netns, TapError> {
        let name = ns_name(std::process::id(), NEXT_SEQ.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name], None)?;
        Ok(Netns {
            name,
            deleted: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME -batch -` with one command per line.
    pub fn ip_batch(&self, commands: &str) -> Result<(), TapError> {
        ip(&["-n", &self.name, "-batch", "-"], Some(commands))
    }

    /// Runs `f` on a new thread that has joined this namespace. Sockets and tap devices
    /// belong to the namespace of the thread that creates them, and /proc/sys/net shows the
    /// calling thread's namespace, so setup happens there; the fds it returns can then be
    /// used from any thread. The thread ends with `f`, so no thread stays in the namespace.
    pub fn run_inside<T, F>(&self, f: F) -> Result<T, TapError>
    where
        T: Send,
        F: FnOnce() -> Result<T, TapError> + Send,
    {
        let path = self.path();
        thread::scope(|s| {
            let handle = thread::Builder::new()
                .name("zoneprof-tap-setup".into())
                .spawn_scoped(s, || {
                    enter(&path, &self.name)?;
                    f()
                })
                .map_err(|e| {
                    TapError::from(crate::workload::WorkloadError::Thread {
                        role: "setup",
                        source: e,
                    })
                })?;
            handle.join().map_err(|_| {
                TapError::from(crate::workload::WorkloadError::ThreadPanicked("setup"))
            })?
        })
    }

    /// Deletes the namespace now, reporting a failure (drop only tries).
    pub fn delete(mut self) -> Result<(), TapError> {
        self.deleted = true;
        ip(&["netns", "delete", &self.name], None)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.deleted {
            // Error or unwind path: best effort; a leftover is removed by the next run.
            ip(&["netns", "delete", &self.name], None).ok();
        }
    }
}

/// Moves the calling thread into the namespace bound at `path`.
fn enter(path: &std::path::Path, name: &str) -> Result<(), TapError> {
    let err = |source| TapError::Netns {
        name: name.to_string(),
        source,
    };
    let f = File::open(path).map_err(err)?;
    // SAFETY: `f` is an open nsfs file for the whole call; CLONE_NEWNET makes the kernel
    // check it is a network namespace. Only this thread's namespace changes.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// Writes a sysctl of the calling thread's namespace; absent files are skipped when
/// `optional` (e.g. IPv6 compiled out).
pub fn write_sysctl(path: &str, value: &str, optional: bool) -> Result<(), TapError> {
    match fs::write(path, value) {
        Ok(()) => Ok(()),
        Err(e) if optional && e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TapError::Io {
            what: format!("writing {value} to {path}"),
            source: e,
        }),
    }
}
