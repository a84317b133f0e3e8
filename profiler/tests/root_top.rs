//! Root integration tests of `zoneprof top` with the real probes and the cross-CPU
//! reproducer: `--once` prints one plain snapshot that names the allocating and freeing
//! CPUs; in tmux (80x24) the full-screen view shows per-CPU rows, refreshes, and obeys
//! `s`, `p` and `q`.
//!
//! They skip, saying why, when not root, with fewer than 2 CPUs, or (tmux test) without a
//! working tmux (`cargo xtask setup` installs it); ZONEPROF_REQUIRE_ROOT_TESTS=1 turns a
//! skip into a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
use std::{
    os::unix::fs::FileTypeExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod root;
use root::{BIN, lock, root_reason, skip_because};

fn tmux_reason() -> Option<String> {
    if let Err(e) = Command::new("tmux").arg("-V").output() {
        return Some(format!(
            "tmux not runnable ({e}); Debian package tmux, installed by cargo xtask setup"
        ));
    }
    // tmux's server daemonizes onto /dev/null and refuses anything but the device.
    match std::fs::metadata("/dev/null") {
        Ok(m) if m.file_type().is_char_device() => None,
        _ => Some(
            "tmux cannot start its server: /dev/null is not a character device (mknod -m 666 /dev/null c 1 3)"
                .into(),
        ),
    }
}

/// The reproducer in the background for `seconds`: pages allocated on CPU 0, freed on 1.
fn reproducer(seconds: u32) -> Child {
    Command::new(BIN)
        .args(["workload", "cross-cpu-pages", "--alloc-cpus", "0"])
        .args(["--free-cpus", "1", "-d", &format!("{seconds}s")])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting the reproducer")
}

/// The value of column `col` (counted from the end: 1 = drain/s, 2 = refill/s) of CPU
/// `cpu`'s row.
fn cpu_column(text: &str, cpu: u32, from_end: usize) -> Option<u64> {
    let row = text.lines().find(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some(&cpu.to_string()) && w.next().is_some_and(|x| x.contains('.'))
    })?;
    let words: Vec<&str> = row.split_whitespace().collect();
    words
        .get(words.len().checked_sub(from_end)?)
        .and_then(|w| w.replace(',', "").parse().ok())
}

/// `zoneprof top --once --interval 2s [extra]`: its snapshot, the run wanted to succeed.
fn top_once(extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["top", "--once", "--interval", "2s"])
        .args(extra)
        .output()
        .expect("zoneprof top");
    assert!(
        out.status.success(),
        "top exited {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn top_once_names_the_refilling_and_draining_cpus() {
    let test = "top_once_names_the_refilling_and_draining_cpus";
    if skip_because(test, root_reason()) {
        return;
    }
    let _g = lock();
    let mut work = reproducer(20);
    let text = top_once(&[]);
    work.kill().ok();
    work.wait().ok();
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l}");
    }
    assert!(text.contains("  CPU alloc%  free% other%"), "{text}");
    // Hundreds of thousands of pages per second each way here; 1,000 is far below.
    let refill0 = cpu_column(&text, 0, 2).unwrap_or_else(|| panic!("no CPU 0 row:\n{text}"));
    let drain1 = cpu_column(&text, 1, 1).unwrap_or_else(|| panic!("no CPU 1 row:\n{text}"));
    assert!(refill0 > 1_000, "refill/s on CPU 0: {refill0}\n{text}");
    assert!(drain1 > 1_000, "drain/s on CPU 1: {drain1}\n{text}");
    assert!(text.contains("Top zone-lock stacks"), "{text}");
    assert!(text.contains("Probes: "), "{text}");
}

/// `top --once --tasks` over the tap reproducer (in a cgroup of the test's own): the top
/// threads name the reader, `vhost-<pid>-<tid>`, with its remote frees and that cgroup.
#[test]
fn top_once_tasks_names_the_vhost_reader_and_its_cgroup() {
    let test = "top_once_tasks_names_the_vhost_reader_and_its_cgroup";
    if skip_because(test, root_reason().or_else(root::tun_reason)) {
        return;
    }
    let Some(cgroup) = root::TestCgroup::create_or_skip(test, "top-tasks") else {
        return;
    };
    let _g = lock();
    let argv = cgroup.tap_reproducer("20s");
    let mut work = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        // It says it was interrupted, which is how this test ends it.
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the tap reproducer");
    // The reproducer sets up its namespace and taps first.
    std::thread::sleep(Duration::from_secs(2));
    let text = top_once(&["--tasks"]);
    // SAFETY: kill(2) on our own child (sh exec'd into the reproducer), which ends it
    // early and tears its namespace down.
    unsafe { libc::kill(work.id() as i32, libc::SIGINT) };
    work.wait().ok();
    assert!(text.contains("Top threads (--tasks)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("vhost-"))
        .unwrap_or_else(|| panic!("no vhost- thread row:\n{text}"));
    assert!(row.ends_with(&cgroup.path), "{row}\n{text}");
    let remote: u64 = row
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no remote/s column: {row}"));
    assert!(
        remote > 1_000,
        "remote frees/s of the reader: {remote}\n{text}"
    );
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l}");
    }
}

/// A tmux server of this test's own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn running(&self) -> bool {
        self.cmd(&["has-session", "-t", "top"]).status.success()
    }

    /// Waits for a screen that `ok` accepts; the last one seen otherwise.
    fn wait_screen(&self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "no screen with {what} within {limit:?}; the last one:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

#[test]
fn top_in_tmux_shows_cpu_rows_refreshes_and_obeys_keys() {
    let test = "top_in_tmux_shows_cpu_rows_refreshes_and_obeys_keys";
    if skip_because(test, root_reason().or_else(tmux_reason)) {
        return;
    }
    let _g = lock();
    let mut work = reproducer(30);
    let tmux = Tmux {
        socket: format!("zoneprof-test-{}", std::process::id()),
    };
    let started = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "24",
        &format!("{BIN} top 2>/dev/null"),
    ]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let rows = |s: &str| {
        s.contains("  CPU alloc%")
            && s.lines().any(|l| l.starts_with("    0 "))
            && s.lines().any(|l| l.starts_with("    1 "))
    };
    let first = tmux.wait_screen("per-CPU rows", Duration::from_secs(60), rows);
    assert!(first.lines().count() <= 24, "{first}");
    assert!(first.lines().all(|l| l.chars().count() <= 80), "{first}");
    assert!(first.contains("sort:wait"), "{first}");
    // A refresh: the header's "up N s" moves, and the rows are still there.
    let header = first.lines().next().unwrap_or_default().to_string();
    tmux.wait_screen("a refresh", Duration::from_secs(10), |s| {
        rows(s) && s.lines().next() != Some(header.as_str())
    });
    tmux.cmd(&["send-keys", "-t", "top", "s"]);
    tmux.wait_screen("sort:cpu", Duration::from_secs(5), |s| {
        s.contains("sort:cpu")
    });
    tmux.cmd(&["send-keys", "-t", "top", "p"]);
    tmux.wait_screen("PAUSED", Duration::from_secs(5), |s| s.contains("PAUSED"));
    tmux.cmd(&["send-keys", "-t", "top", "q"]);
    let start = Instant::now();
    while tmux.running() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "top still running 15 s after q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    work.kill().ok();
    work.wait().ok();
}
