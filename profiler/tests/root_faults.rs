//! Root integration tests of faults: signals mid-recording, SIGKILL, two recordings at once,
//! a full or read-only filesystem, a command that fails or is killed, and what runs with
//! which capabilities (`setpriv`, util-linux).
//!
//! What a process held is read from `/proc/PID/fdinfo` (the `prog_id:`/`link_id:` of every
//! BPF descriptor) and checked against the kernel's own lists of loaded programs and links
//! (what `bpftool prog show` / `bpftool link show` list), so other BPF users on the host do
//! not disturb the counts.
//!
//! They skip, saying why, when not root or with fewer than 2 CPUs;
//! ZONEPROF_REQUIRE_ROOT_TESTS=1 turns a skip into a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
use std::{
    collections::BTreeSet,
    ffi::CString,
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;
// One recording at a time in this binary (two_recordings_at_once runs its own two).
mod root;
use root::{BIN, lock};

fn skip(test: &str) -> bool {
    root::skip_because(
        test,
        root::root_reason_to("load eBPF programs, mount filesystems and drop privileges"),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// BPF programs and links a process holds descriptors to.
#[derive(Debug, Default, Clone)]
struct Held {
    progs: BTreeSet<u32>,
    links: BTreeSet<u32>,
}

fn held_by(pid: u32) -> Held {
    let mut h = Held::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return h;
    };
    for e in dir.flatten() {
        let info = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in info.lines() {
            let id = |key: &str| {
                line.strip_prefix(key)
                    .and_then(|v| v.trim().parse::<u32>().ok())
            };
            if let Some(id) = id("prog_id:") {
                h.progs.insert(id);
            }
            if let Some(id) = id("link_id:") {
                h.links.insert(id);
            }
        }
    }
    h
}

/// Every program and link loaded on the host now, by id.
fn loaded() -> Held {
    Held {
        progs: aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .collect(),
        links: aya::programs::loaded_links()
            .filter_map(Result::ok)
            .map(|l| l.id())
            .collect(),
    }
}

/// Waits until none of `h`'s programs and links is loaded (the kernel frees them shortly
/// after the last descriptor closes); panics with what is left after 10 s.
fn assert_released(what: &str, h: &Held) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = loaded();
        let progs: Vec<_> = h.progs.intersection(&now.progs).collect();
        let links: Vec<_> = h.links.intersection(&now.links).collect();
        if progs.is_empty() && links.is_empty() {
            eprintln!(
                "{what}: all {} programs and {} links released ({} programs, {} links loaded on the host now)",
                h.progs.len(),
                h.links.len(),
                now.progs.len(),
                now.links.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still loaded after 10 s: programs {progs:?}, links {links:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sig_caught(pid: u32, sig: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

/// Waits until `child` records: its probes attached (it holds BPF links) and its signal
/// handlers installed (SIGHUP is the last); returns what it holds.
fn wait_recording(child: &mut Child) -> Held {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("zoneprof exited before recording: {st}");
        }
        let h = held_by(pid);
        if !h.links.is_empty() && sig_caught(pid, libc::SIGHUP) {
            // Every link is attached before the handlers are installed.
            return held_by(pid);
        }
        assert!(
            Instant::now() < deadline,
            "zoneprof did not start recording in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until process `pid` has a child (its `record -- COMMAND` started).
fn wait_for_a_child(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let has_child = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path().join("stat")).is_ok_and(|st| {
                    // Field 4 (ppid) follows the parenthesised command name.
                    st.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                        .and_then(|p| p.parse::<u32>().ok())
                        == Some(pid)
                })
            })
    };
    while !has_child() {
        assert!(
            Instant::now() < deadline,
            "zoneprof started no command in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn_record(out: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["record", "--no-progress", "-o", s(out)])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zoneprof record")
}

fn kill(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Waits for `child` with a deadline, so a hang fails the test instead of blocking it.
fn finish(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("zoneprof did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn report_json(path: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["report", "--format", "json", s(path)])
        .output()
        .expect("run report");
    assert!(
        out.status.success(),
        "report {}: {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report JSON parses")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn sigint_sigterm_sighup_mid_recording_write_a_recording_and_detach() {
    let _g = lock();
    if skip("sigint_sigterm_sighup_mid_recording_write_a_recording_and_detach") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (sig, name) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        for with_command in [false, true] {
            let path = dir.path().join(format!("{name}-{with_command}.zprof"));
            let mut extra = vec!["-d", "120s"];
            if with_command {
                extra.extend(["--", "sleep", "600"]);
            }
            let mut child = spawn_record(&path, &extra);
            let held = wait_recording(&mut child);
            if with_command {
                // Mid-recording: the command runs (zoneprof starts it after attaching).
                wait_for_a_child(child.id());
            }
            kill(&child, sig);
            let out = finish(child, Duration::from_secs(30));
            let err = text(&out.stderr);
            // Without a command, a signal is how a recording is meant to end: exit 0. With
            // one, the signal is passed on and the command's end is zoneprof's status.
            let want = if with_command { 128 + sig } else { 0 };
            assert_eq!(
                out.status.code(),
                Some(want),
                "{name} {with_command}: {err}"
            );
            let r = report_json(&path);
            assert_eq!(r["end_reason"], format!("signal {name}"), "{r}");
            assert!(r["duration_s"].as_f64().expect("duration") < 60.0);
            if with_command {
                assert_eq!(r["command"]["signal"], sig, "{r}");
                assert!(
                    err.contains(&format!("command killed by signal {sig} ({name})")),
                    "{err}"
                );
            }
            assert_eq!(mode(&path), 0o600);
            assert_released(&format!("{name} (command: {with_command})"), &held);
        }
    }
    // Nothing but the recordings: no temporary files.
    assert_eq!(names_in(dir.path()).len(), 6, "{:?}", names_in(dir.path()));
}

/// A command that ignores the passed-on signal is left running after a grace period: the
/// recording is written, zoneprof says so, and exits 128 + the signal (its status is unknown).
#[test]
fn a_command_that_ignores_the_signal_is_left_running_and_the_exit_says_so() {
    let _g = lock();
    if skip("a_command_that_ignores_the_signal_is_left_running_and_the_exit_says_so") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ignored.zprof");
    let pidfile = dir.path().join("command.pid");
    // exec keeps one process, which inherits SIGINT ignored; its output goes elsewhere so it
    // does not hold zoneprof's pipes open.
    let script = format!(
        "echo $$ > {}; trap '' INT; exec sleep 120 >/dev/null 2>&1",
        s(&pidfile)
    );
    let mut child = spawn_record(&path, &["-d", "120s", "--", "sh", "-c", &script]);
    let held = wait_recording(&mut child);
    wait_for_a_child(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let command_pid = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the command wrote no pid in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Its handler state settles once sh has run `trap` and exec'd sleep.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(format!("/proc/{command_pid}/comm"))
        .is_ok_and(|c| c.trim() == "sleep")
    {
        assert!(
            Instant::now() < deadline,
            "the command did not exec sleep in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(&child, libc::SIGINT);
    let out = finish(child, Duration::from_secs(30));
    // SAFETY: kill(2) on the pid the command wrote; it is still running (checked below).
    let alive = unsafe { libc::kill(command_pid, 0) } == 0;
    // SAFETY: as above; ends the leftover command whatever the assertions say.
    unsafe { libc::kill(command_pid, libc::SIGKILL) };
    let err = text(&out.stderr);
    assert!(alive, "the command should still run after zoneprof left it");
    assert_eq!(out.status.code(), Some(128 + libc::SIGINT), "{err}");
    assert!(
        err.contains(&format!(
            "the command (pid {command_pid}) did not end within 5 s of SIGINT; it keeps running, its status unknown"
        )),
        "{err}"
    );
    let r = report_json(&path);
    assert_eq!(r["end_reason"], "signal SIGINT", "{r}");
    assert!(
        r["command"]["exit_code"].is_null() && r["command"]["signal"].is_null(),
        "{r}"
    );
    assert_eq!(mode(&path), 0o600);
    assert_released("SIGINT (command ignores it)", &held);
}

#[test]
fn sigkill_leaves_no_file_and_no_program_or_link() {
    let _g = lock();
    if skip("sigkill_leaves_no_file_and_no_program_or_link") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k.zprof");
    // A previous recording at that path must survive.
    std::fs::write(&path, b"previous").expect("write");
    let before = loaded();
    let mut child = spawn_record(&path, &["-d", "120s"]);
    let held = wait_recording(&mut child);
    assert!(
        held.progs.len() >= 2 && held.links.len() >= 2,
        "zoneprof holds its programs and links: {held:?}"
    );
    // The ids are the kernel's: every one is in its list while zoneprof runs.
    let during = loaded();
    assert!(held.progs.is_subset(&during.progs) && held.links.is_subset(&during.links));
    kill(&child, libc::SIGKILL);
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL)
    );
    assert_released("SIGKILL", &held);
    let after = loaded();
    eprintln!(
        "SIGKILL: host programs {} before, {} while recording, {} after; links {} / {} / {}",
        before.progs.len(),
        during.progs.len(),
        after.progs.len(),
        before.links.len(),
        during.links.len(),
        after.links.len()
    );
    assert_eq!(names_in(dir.path()), ["k.zprof"]);
    assert_eq!(std::fs::read(&path).expect("read"), b"previous");
}

#[test]
fn two_recordings_at_once_are_independent() {
    let _g = lock();
    if skip("two_recordings_at_once_are_independent") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.zprof"), dir.path().join("b.zprof"));
    let mut long = spawn_record(&a, &["-d", "120s"]);
    let held_a = wait_recording(&mut long);
    // B records a workload to its end, while A goes on.
    let out = Command::new(BIN)
        .args(["record", "--no-progress", "-o", s(&b), "--", BIN])
        .args([
            "workload",
            "cross-cpu-pages",
            "--alloc-cpus",
            "0",
            "--free-cpus",
            "1",
            "-d",
            "2s",
        ])
        .output()
        .expect("run B");
    assert!(out.status.success(), "B: {}", text(&out.stderr));
    // B's exit took nothing of A's: all of A's programs and links are still loaded.
    let now = loaded();
    assert!(
        held_a.progs.is_subset(&now.progs) && held_a.links.is_subset(&now.links),
        "A lost probes when B ended: {held_a:?}"
    );
    assert_eq!(held_by(long.id()).links, held_a.links);
    kill(&long, libc::SIGINT);
    let out_a = finish(long, Duration::from_secs(30));
    assert!(out_a.status.success(), "A: {}", text(&out_a.stderr));
    assert_released("recording A", &held_a);
    let (ra, rb) = (report_json(&a), report_json(&b));
    assert_eq!(ra["end_reason"], "signal SIGINT");
    assert_eq!(rb["end_reason"], "command exited");
    let refill = |r: &Value| r["totals"]["pcp_refill_pages"].as_u64().unwrap_or(0);
    let duration = |r: &Value| r["duration_s"].as_f64().expect("duration");
    // Both saw the workload's page traffic; A for longer.
    assert!(refill(&ra) > 0 && refill(&rb) > 0, "a {ra}\nb {rb}");
    assert!(duration(&ra) > duration(&rb), "a {ra}\nb {rb}");
}

/// A small tmpfs mounted for one test, lazily unmounted on drop (also when it fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = CString::new(dir.path().as_os_str().as_bytes()).expect("path");
        let data = CString::new(format!("size={size},mode=0700")).expect("opts");
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"zoneprof-test".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let target = CString::new(self.path().as_os_str().as_bytes()).expect("path");
        // SAFETY: as in mount.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "remount ro: {}", std::io::Error::last_os_error());
    }

    /// Fills the filesystem until a write fails.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).expect("filler");
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        f.sync_all().ok();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.path().as_os_str().as_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// One line on stderr, `zoneprof: error: ...` containing `want`, and exit 1.
fn assert_one_line_error(what: &str, out: &Output, want: &str) {
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line: {err}");
    assert_error_line(what, out, want);
}

/// Exit 1 and the error on one line, `zoneprof: error: ...` containing `want`, last; the
/// notes before it (what the run would have lacked) are lines of their own.
fn assert_error_line(what: &str, out: &Output, want: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("zoneprof: ")),
        "{what}: {err}"
    );
    let errors = lines
        .iter()
        .filter(|l| l.starts_with("zoneprof: error: "))
        .count();
    assert_eq!(errors, 1, "{what}: {err}");
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("zoneprof: error: ") && last.contains(want),
        "{what}: {err}"
    );
}

#[test]
fn full_or_read_only_filesystem_fails_in_one_line_and_keeps_the_previous_file() {
    let _g = lock();
    if skip("full_or_read_only_filesystem_fails_in_one_line_and_keeps_the_previous_file") {
        return;
    }
    // A real recording to draw from. The page workload fills the pages view whatever else the
    // host does; a quiet host may have no lock contention at all in an idle second.
    let src_dir = tempfile::tempdir().expect("tempdir");
    let src = src_dir.path().join("src.zprof");
    let out = Command::new(BIN)
        .args(["record", "--no-progress", "-o", s(&src), "--", BIN])
        .args(["workload", "cross-cpu-pages", "--alloc-cpus", "0"])
        .args(["--free-cpus", "1", "-d", "1s"])
        .output()
        .expect("record");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let fs = Tmpfs::mount("64k");
    let outputs = ["r.zprof", "r.html", "r.svg", "r.folded", "r.txt"];
    for name in outputs {
        std::fs::write(fs.path().join(name), b"previous").expect("write previous");
    }
    fs.fill();
    let run = |args: &[&str]| Command::new(BIN).args(args).output().expect("run");
    let p = |name: &str| fs.path().join(name).to_string_lossy().into_owned();
    let cases = |want: &str| {
        let rec = run(&[
            "record",
            "--no-progress",
            "-d",
            "1s",
            "--probes",
            "contention_begin,contention_end",
            "-o",
            &p("r.zprof"),
        ]);
        assert_one_line_error("record", &rec, want);
        assert_one_line_error(
            "report html",
            &run(&["report", s(&src), "--format", "html", "-o", &p("r.html")]),
            want,
        );
        assert_one_line_error(
            "report text",
            &run(&["report", s(&src), "-o", &p("r.txt")]),
            want,
        );
        assert_one_line_error(
            "flamegraph svg",
            &run(&["flamegraph", s(&src), "--view", "pages", "-o", &p("r.svg")]),
            want,
        );
        assert_one_line_error(
            "flamegraph folded",
            &run(&[
                "flamegraph",
                s(&src),
                "--view",
                "pages",
                "--folded",
                "-o",
                &p("r.folded"),
            ]),
            want,
        );
        assert_one_line_error(
            "redact",
            &run(&["redact", s(&src), "-o", &p("r.zprof")]),
            want,
        );
        // Every previous file as it was, nothing added.
        for name in outputs {
            assert_eq!(
                std::fs::read(fs.path().join(name)).expect("read"),
                b"previous",
                "{name}"
            );
        }
        let mut want_names: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        want_names.push("filler".into());
        want_names.sort();
        assert_eq!(names_in(fs.path()), want_names);
    };
    cases("No space left on device");
    fs.remount_read_only();
    cases("Read-only file system");
}

#[test]
fn a_failing_or_killed_command_still_gets_its_recording_and_its_status_passed_on() {
    let _g = lock();
    if skip("a_failing_or_killed_command_still_gets_its_recording_and_its_status_passed_on") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let record = |name: &str, cmd: &[&str]| {
        let path = dir.path().join(name);
        let out = Command::new(BIN)
            .args(["record", "--no-progress", "-o", s(&path), "--"])
            .args(cmd)
            .output()
            .expect("run");
        (path, out)
    };
    // Fails: exit status 3, passed on.
    let (p, out) = record("fail.zprof", &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("command exited with status 3"));
    let r = report_json(&p);
    assert_eq!(
        (r["command"]["exit_code"].as_i64(), r["end_reason"].as_str()),
        (Some(3), Some("command exited"))
    );
    // Killed: 128 + 9.
    let (p, out) = record("killed.zprof", &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("command killed by signal 9 (SIGKILL)"));
    let r = report_json(&p);
    assert_eq!(r["command"]["signal"], 9, "{r}");
    assert!(r["command"]["exit_code"].is_null());
    // Succeeds: 0.
    let (_, out) = record("ok.zprof", &["true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Cannot start: refused before anything is loaded, one line, exit 1, no recording.
    let not_exec = dir.path().join("not-exec");
    std::fs::write(&not_exec, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for (cmd, why) in [
        (
            "/nonexistent/command",
            "No such file or directory (os error 2)",
        ),
        (s(&not_exec), "not an executable file"),
        ("zoneprof-no-such-command", "not found in PATH"),
    ] {
        let (p, out) = record("nostart.zprof", &[cmd]);
        assert_one_line_error(cmd, &out, &format!("cannot run command {cmd:?}: {why}"));
        assert!(!p.exists());
    }
    assert_eq!(
        names_in(dir.path()),
        ["fail.zprof", "killed.zprof", "not-exec", "ok.zprof"]
    );
}

#[test]
fn missing_input_file_says_its_os_error_once() {
    // No root needed.
    let out = Command::new(BIN)
        .args(["report", "/nonexistent/zoneprof.zprof"])
        .output()
        .expect("run");
    assert_one_line_error(
        "report",
        &out,
        "cannot read recording /nonexistent/zoneprof.zprof: No such file or directory (os error 2)",
    );
    assert_eq!(text(&out.stderr).matches("os error 2").count(), 1);
}

#[test]
fn a_real_recording_redacted_shows_no_address_or_hostname_in_any_view() {
    let _g = lock();
    if skip("a_real_recording_redacted_shows_no_address_or_hostname_in_any_view") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (rec, red) = (dir.path().join("real.zprof"), dir.path().join("red.zprof"));
    // Page traffic on two CPUs, so zone locks are proven and stacks recorded.
    let out = Command::new(BIN)
        .args(["record", "--no-progress", "-o", s(&rec), "--", BIN])
        .args([
            "workload",
            "cross-cpu-pages",
            "--alloc-cpus",
            "0",
            "--free-cpus",
            "1",
            "-d",
            "2s",
        ])
        .output()
        .expect("record");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plain = report_json(&rec);
    let host = plain["host"]["hostname"]
        .as_str()
        .expect("hostname")
        .to_string();
    let out = Command::new(BIN)
        .args(["redact", s(&rec), "-o", s(&red)])
        .output()
        .expect("redact");
    assert!(out.status.success(), "{}", text(&out.stderr));
    eprintln!("{}", text(&out.stderr).trim());
    assert_eq!(mode(&red), 0o600);
    // The hostname as a word of its own (a short one like "vm" is also part of
    // `vm.percpu_pagelist_high_fraction`, which is no leak).
    let word = |t: &str| {
        t.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .any(|w| w == host)
    };
    let mut views = Vec::new();
    for fmt in ["text", "json"] {
        let o = Command::new(BIN)
            .args(["report", s(&red), "--format", fmt])
            .output()
            .expect("report");
        assert!(o.status.success(), "{}", text(&o.stderr));
        views.push((format!("report {fmt}"), text(&o.stdout)));
    }
    let html = dir.path().join("red.html");
    let o = Command::new(BIN)
        .args(["report", s(&red), "--format", "html", "-o", s(&html)])
        .output()
        .expect("html");
    assert!(o.status.success(), "{}", text(&o.stderr));
    views.push((
        "report html".into(),
        std::fs::read_to_string(&html).expect("html"),
    ));
    for view in ["zone-wait", "locks", "pages"] {
        let o = Command::new(BIN)
            .args(["flamegraph", s(&red), "--view", view, "--folded"])
            .output()
            .expect("flamegraph");
        // A view with nothing recorded is refused; the others must work.
        if o.status.success() {
            views.push((format!("flamegraph {view}"), text(&o.stdout)));
        }
    }
    let o = Command::new(BIN)
        .args(["compare", s(&rec), s(&rec), "--redact"])
        .output()
        .expect("compare");
    assert!(o.status.success(), "{}", text(&o.stderr));
    views.push(("compare --redact".into(), text(&o.stdout)));
    for (what, t) in &views {
        let a = common::kernel_addresses(t);
        assert!(a.is_empty(), "{what}: kernel addresses {a:?}");
        assert!(!word(t), "{what} names the host {host}");
    }
    // The same views of the original do show them, so the check could fail.
    let r = report_json(&red);
    assert_eq!(
        r["host"]["hostname"],
        zoneprof::model::redact::hashed_host(&host)
    );
    assert!(
        !common::kernel_addresses(&plain.to_string()).is_empty(),
        "{plain}"
    );
    assert_eq!(r["totals"]["contentions"], plain["totals"]["contentions"]);
    assert_eq!(
        r["totals"]["pcp_refill_pages"],
        plain["totals"]["pcp_refill_pages"]
    );
}

// ---- privileges ----------------------------------------------------------------------

/// Runs `zoneprof args` as nobody with only `caps` (setpriv names: "bpf,perfmon"), inside
/// a private mount namespace after running `ns_setup` there (as root).
fn as_nobody(caps: &str, ns_setup: &str, args: &[&str]) -> Output {
    let caps_arg = if caps.is_empty() {
        "-all".to_string()
    } else {
        caps.split(',')
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut cmd = vec![
        "setpriv".to_string(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps={caps_arg}"),
    ];
    if !caps.is_empty() {
        cmd.push(format!("--ambient-caps={caps_arg}"));
    }
    cmd.push(BIN.into());
    cmd.extend(args.iter().map(|s| s.to_string()));
    // unshare(1) makes the namespace's mounts private: nothing done there is seen outside.
    let script = format!("{ns_setup}\nexec \"$@\"");
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(&cmd)
        .output()
        .expect("unshare and setpriv (util-linux) run")
}

/// A directory nobody can write to, for recordings made as nobody.
fn nobody_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown");
    dir
}

fn tracefs_closed_to_others() -> bool {
    std::fs::metadata("/sys/kernel/tracing").is_ok_and(|m| m.permissions().mode() & 0o005 == 0)
}

#[test]
fn privileges_missing_capabilities_are_named_in_one_line() {
    let _g = lock();
    if skip("privileges_missing_capabilities_are_named_in_one_line") {
        return;
    }
    let dir = nobody_dir();
    let out_file = dir.path().join("np.zprof");
    let o = s(&out_file);
    for (caps, missing) in [
        ("", "lacks CAP_BPF and CAP_PERFMON"),
        ("bpf", "lacks CAP_PERFMON"),
        ("perfmon", "lacks CAP_BPF"),
    ] {
        let out = as_nobody(caps, "", &["record", "-d", "1s", "-o", o]);
        assert_one_line_error(&format!("caps [{caps}]"), &out, missing);
    }
    assert!(!out_file.exists());
    assert_eq!(names_in(dir.path()).len(), 0);
}

#[test]
fn privileges_what_records_with_cap_bpf_and_cap_perfmon() {
    let _g = lock();
    if skip("privileges_what_records_with_cap_bpf_and_cap_perfmon") {
        return;
    }
    let dir = nobody_dir();
    let path = dir.path().join("caps.zprof");
    let o = s(&path);
    let rec = ["record", "--no-progress", "-d", "1s", "-o", o];

    // CAP_BPF + CAP_PERFMON alone: enough to load and attach, but tracefs (where the
    // tracepoints' ids and formats are) is mode 0700 root by default.
    let out = as_nobody("bpf,perfmon", "", &rec);
    if tracefs_closed_to_others() {
        assert_error_line("bpf,perfmon", &out, "CAP_DAC_READ_SEARCH");
        assert!(
            text(&out.stderr).contains(
                "tracefs is mounted at /sys/kernel/tracing but this process cannot read it"
            )
        );
        assert!(!path.exists());
    } else {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // + CAP_DAC_READ_SEARCH to read tracefs: records; stacks unsymbolized without
    // CAP_SYSLOG (kallsyms shows zeros) unless perf_event_paranoid <= 1.
    let out = as_nobody("bpf,perfmon,dac_read_search", "", &rec);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = std::fs::metadata(&path).expect("written");
    assert_eq!(
        (std::os::unix::fs::MetadataExt::uid(&meta), mode(&path)),
        (65534, 0o600)
    );
    let r = report_json(&path);
    let attached = |r: &Value, name: &str| {
        r["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .any(|p| p["name"] == name && p["attached"] == true)
    };
    for p in ["contention_begin", "contention_end"] {
        assert!(attached(&r, p), "{p} not attached: {}", r["probes"]);
    }
    let paranoid: i32 = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(2);
    if paranoid > 1 {
        assert!(
            text(&out.stderr).contains("CAP_SYSLOG"),
            "{}",
            text(&out.stderr)
        );
    }
    // Without CAP_SYS_ADMIN, no BPF run-time stats: said, not fatal.
    assert!(
        text(&out.stderr).contains("BPF_ENABLE_STATS"),
        "{}",
        text(&out.stderr)
    );

    let attached_set = |r: &Value| -> BTreeSet<String> {
        r["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .filter(|p| p["attached"] == true)
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect()
    };
    let dac_only = attached_set(&r);

    // + CAP_SYSLOG: symbolized stacks, and every probe root attaches.
    let out = as_nobody("bpf,perfmon,dac_read_search,syslog", "", &rec);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("unsymbolized"),
        "{}",
        text(&out.stderr)
    );
    let with_syslog = attached_set(&report_json(&path));
    let root_path = dir.path().join("root.zprof");
    let root = Command::new(BIN)
        .args(["record", "--no-progress", "-d", "1s", "-o", s(&root_path)])
        .output()
        .expect("record as root");
    assert!(root.status.success(), "{}", text(&root.stderr));
    let as_root = attached_set(&report_json(&root_path));
    assert_eq!(with_syslog, as_root, "CAP_SYSLOG set vs root");
    if paranoid > 1 && as_root.contains("skb_defer_ipi") {
        // It attaches only where kallsyms names its target's address.
        assert!(!dac_only.contains("skb_defer_ipi"), "{dac_only:?}");
    }
    eprintln!(
        "attached as root: {as_root:?}; without CAP_SYSLOG not: {:?}",
        as_root.difference(&dac_only).collect::<Vec<_>>()
    );

    // tracefs not mounted (in a private mount namespace): mounting it needs CAP_SYS_ADMIN,
    // and that is all CAP_SYS_ADMIN is needed for.
    let unmount =
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; true";
    let out = as_nobody("bpf,perfmon,dac_read_search,syslog", unmount, &rec);
    assert_error_line("no tracefs", &out, "mounting needs root (CAP_SYS_ADMIN)");
    let out = as_nobody(
        "bpf,perfmon,dac_read_search,syslog,sys_admin",
        unmount,
        &rec,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("mounted tracefs at /sys/kernel/tracing"),
        "{}",
        text(&out.stderr)
    );
}
