//! Test helpers shared by the integration tests: the contention fixtures, and synthetic
//! recordings built from them.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};

use zoneprof::{
    kernel::host::{HostInfo, Settings},
    model::classify::parse_folded_line,
    model::recording::{Counters, LockWait, ProbeStatus, Recording, StackInterner},
};

/// `shared/fixtures/contention` beside the repository (the worktree's or CI's `../shared`).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/contention"
    ))
}

/// Committed golden files of the output tests.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

/// Compares `actual` with the golden file `file` (a path under tests/golden), or rewrites it
/// under ZONEPROF_BLESS=1.
pub fn check_golden(file: &str, actual: &str) {
    let path = golden_dir().join(file);
    if std::env::var("ZONEPROF_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("golden file in a directory"))
            .expect("mkdir golden");
        std::fs::write(&path, actual).expect("write golden");
        eprintln!("blessed {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with ZONEPROF_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first_diff = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        // HTML lines can be long: show the start of each.
        let at = |t: &str| {
            t.lines()
                .nth(first_diff)
                .map(|l| l.chars().take(400).collect::<String>())
        };
        panic!(
            "{file} differs from the golden file at line {} (expected {} lines, got {}):\n  \
             expected: {:?}\n  actual:   {:?}\nrerun with ZONEPROF_BLESS=1 if the change is intended",
            first_diff + 1,
            expected.lines().count(),
            actual.lines().count(),
            at(&expected),
            at(actual),
        );
    }
}

/// With this set to 1 (CI sets it in .ci/run), a missing fixture fails the test instead of
/// skipping it, so CI cannot pass by skipping.
pub const REQUIRE_FIXTURES: &str = "ZONEPROF_REQUIRE_FIXTURES";

/// The fixture's text, or None after printing why the test is skipped; a panic instead
/// under ZONEPROF_REQUIRE_FIXTURES=1.
pub fn fixture(test: &str, name: &str) -> Option<String> {
    let p = fixture_dir().join(name);
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(t),
        Err(e) => {
            let why = format!("fixture {} unavailable: {e}", p.display());
            if std::env::var(REQUIRE_FIXTURES).as_deref() == Ok("1") {
                panic!("{test}: {why}, and {REQUIRE_FIXTURES}=1 forbids skipping");
            }
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

pub fn probe(name: &str, target: &str, attached: bool) -> ProbeStatus {
    ProbeStatus {
        name: name.into(),
        method: "tracepoint".into(),
        target: target.into(),
        attached,
        reason: (!attached).then(|| "not in this synthetic recording".into()),
        attempts: vec![],
    }
}

/// A recording whose lock waits are the folded lines of `text` (one stack and one wait per
/// line, `count` 1), as if recorded on `host` for `duration_s` seconds with `ncpus` CPUs.
/// The PCP probes are marked not attached (the fixtures have no page counts).
pub fn recording_from_folded(text: &str, host: &str, duration_s: f64, ncpus: u32) -> Recording {
    let mut interner = StackInterner::default();
    let mut lock_waits = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f = parse_folded_line(line).expect("fixture line parses");
        let frames: Vec<u32> = f
            .frames_root_first
            .iter()
            .rev()
            .map(|fr| interner.frame(fr.clone()))
            .collect();
        let stack = interner.stack(frames);
        lock_waits.push(LockWait {
            stack: Some(stack),
            stack_error: None,
            cpu: f.cpu.unwrap_or(0),
            lock_addr: 0xffff_0000_0000_1000,
            lock_flags: 1,
            count: 1,
            total_ns: f.value,
            max_ns: f.value,
            tid: None,
        });
    }
    let (frames, stacks) = interner.finish();
    let cpus: Vec<u32> = (0..ncpus).collect();
    Recording {
        format: "zoneprof-recording".into(),
        version: 1,
        zoneprof_version: "test".into(),
        host: HostInfo {
            hostname: host.into(),
            kernel_release: "6.18.44".into(),
            kernel_version: "#1 SMP".into(),
            arch: "x86_64".into(),
            online_cpus: cpus.clone(),
            possible_cpus: ncpus,
            cpu_node: cpus.iter().map(|&c| (c, 0)).collect(),
            numa_nodes: vec![0],
        },
        settings: Settings::default(),
        start_unix_ms: 1_764_140_000_000,
        duration_ns: (duration_s * 1e9) as u64,
        cpus,
        end_reason: "command exited".into(),
        command: None,
        probes: vec![
            probe("contention_begin", "lock:contention_begin", true),
            probe("contention_end", "lock:contention_end", true),
            probe("pcp_refill", "kmem:mm_page_alloc_zone_locked", false),
            probe("pcp_drain", "kmem:mm_page_pcpu_drain", false),
        ],
        frames,
        stacks,
        lock_waits,
        wait_hist: vec![],
        zones: vec![],
        pcp: vec![],
        counters: Counters::default(),
        skb_matrix: vec![],
        skb_sites: vec![],
        skb_defer: vec![],
        page_matrix: vec![],
        page_tracking: None,
        observer: None,
        tasks: Vec::new(),
        cgroups: Vec::new(),
    }
}

/// Writes `rec` as a recording file in `dir`.
pub fn write_recording(dir: &Path, name: &str, rec: &Recording) -> PathBuf {
    let p = dir.join(name);
    rec.write_atomic(&p).expect("write recording");
    p
}

/// Every kernel address a text can hold: `0x` + more than 8 hex digits, a bare
/// `ffff` + 12 hex digits, or one written in decimal (2^64 - 2^48 and up: "18446...").
pub fn kernel_addresses(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let run = |from: usize, ok: fn(&u8) -> bool| b[from..].iter().take_while(|c| ok(c)).count();
    let hex: fn(&u8) -> bool = u8::is_ascii_hexdigit;
    let mut found = Vec::new();
    for i in 0..b.len() {
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = &b[i..];
        let n = if rest.starts_with(b"0x") && run(i + 2, hex) > 8 {
            2 + run(i + 2, hex)
        } else if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(b"ffff") && run(i, hex) == 16 {
            16
        } else if rest.starts_with(b"18446") && run(i, u8::is_ascii_digit) >= 20 {
            20
        } else {
            continue;
        };
        found.push(String::from_utf8_lossy(&rest[..n]).into_owned());
    }
    found
}

/// `go` on PATH (Debian golang-go, installed by `cargo xtask setup`), or None after saying
/// `test` is skipped; under ZONEPROF_REQUIRE_GO=1 (`cargo xtask test` as root) a missing
/// `go` fails the test instead.
pub fn go_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("go"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let why = "`go` is not on PATH (Debian golang-go; `cargo xtask setup` installs it)";
        if std::env::var("ZONEPROF_REQUIRE_GO").as_deref() == Ok("1") {
            panic!("{test}: {why}, and ZONEPROF_REQUIRE_GO=1");
        }
        eprintln!("SKIPPED {test}: {why}");
    }
    found
}

/// `go tool pprof` with a private cache and config under `home` (nothing written to $HOME);
/// its stdout, after checking it succeeded.
pub fn go_pprof(go: &Path, home: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(go)
        .args(["tool", "pprof", "-symbolize=none"])
        .args(args)
        .env("HOME", home)
        .env("GOCACHE", home.join("gocache"))
        .env("PPROF_TMPDIR", home)
        .output()
        .unwrap_or_else(|e| panic!("running go tool pprof: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
