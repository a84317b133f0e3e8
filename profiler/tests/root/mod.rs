//! What every root integration test binary shares: the zoneprof under test, one session at
//! a time on the host, and the skip rule (a skip says why; `ZONEPROF_REQUIRE_ROOT_TESTS=1`,
//! set by `cargo xtask test` as root, turns it into a failure so CI cannot pass by skipping).
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

pub const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");

/// The probes see the whole host: one recording or live session at a time in a binary.
static HOST: Mutex<()> = Mutex::new(());

pub fn lock() -> MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why this host cannot run a root test that needs root to `what`: not root, or one CPU.
pub fn root_reason_to(what: &str) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(format!("needs root to {what}"));
    }
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    (online.trim() == "0").then(|| "needs at least 2 online CPUs".into())
}

pub fn root_reason() -> Option<String> {
    root_reason_to("load eBPF programs")
}

/// Why the tap reproducer cannot run: no /dev/net/tun.
pub fn tun_reason() -> Option<String> {
    (!Path::new("/dev/net/tun").exists()).then(|| "/dev/net/tun is missing (modprobe tun)".into())
}

/// Skips (true) when `why` is Some, saying why, or fails under ZONEPROF_REQUIRE_ROOT_TESTS=1.
pub fn skip_because(test: &str, why: Option<String>) -> bool {
    let Some(why) = why else { return false };
    if std::env::var("ZONEPROF_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("{test}: root test would be skipped ({why}) but ZONEPROF_REQUIRE_ROOT_TESTS=1");
    }
    eprintln!("SKIPPED {test}: {why}");
    true
}

/// The usual skip: not root, or fewer than 2 CPUs.
pub fn skip(test: &str) -> bool {
    skip_because(test, root_reason())
}

/// Runs zoneprof and wants it to succeed; its output.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"));
    assert!(
        out.status.success(),
        "zoneprof {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A cgroup v2 of the test's own, so a workload's threads are told from every other
/// thread of the host (which, on a test VM, all sit in the root cgroup). Removed on drop.
pub struct TestCgroup {
    dir: std::path::PathBuf,
    /// Its path as zoneprof names cgroups: from the cgroup2 mount, `/name`.
    pub path: String,
}

impl TestCgroup {
    /// Creates `<cgroup2 mount>/zoneprof-test-<name>-<pid>`; Err says why it cannot.
    pub fn create(name: &str) -> Result<TestCgroup, String> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .map_err(|e| format!("reading /proc/self/mounts: {e}"))?;
        let mount = mounts
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(2) == Some(&"cgroup2"))
            .and_then(|f| f.get(1).map(|m| m.to_string()))
            .ok_or("no cgroup2 filesystem mounted")?;
        let leaf = format!("zoneprof-test-{name}-{}", std::process::id());
        let dir = Path::new(&mount).join(&leaf);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(TestCgroup {
            dir,
            path: format!("/{leaf}"),
        })
    }

    /// As [`TestCgroup::create`], or None after [`skip_because`] said why (a failure under
    /// ZONEPROF_REQUIRE_ROOT_TESTS=1).
    pub fn create_or_skip(test: &str, name: &str) -> Option<TestCgroup> {
        match TestCgroup::create(name) {
            Ok(c) => Some(c),
            Err(why) => {
                skip_because(test, Some(why));
                None
            }
        }
    }

    /// The tap reproducer (sender on CPU 0, reader on CPU 1, for `duration`) in this
    /// cgroup, as an argv.
    pub fn tap_reproducer(&self, duration: &str) -> Vec<String> {
        self.wrap(&[
            BIN,
            "workload",
            "tap",
            "--sender-cpus",
            "0",
            "--reader-cpus",
            "1",
            "-d",
            duration,
        ])
    }

    /// `argv` run inside this cgroup: a shell moves itself in, then execs it.
    pub fn wrap(&self, argv: &[&str]) -> Vec<String> {
        let procs = self.dir.join("cgroup.procs");
        let mut v = vec![
            "sh".to_string(),
            "-c".into(),
            format!("echo $$ > '{}' && exec \"$@\"", procs.display()),
            "sh".into(),
        ];
        v.extend(argv.iter().map(|s| s.to_string()));
        v
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The workload has exited; its last threads may take a moment to leave.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("could not remove test cgroup {}", self.dir.display());
    }
}
