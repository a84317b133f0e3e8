//! Root integration tests of full maps: `record` and `serve` with aggregation maps shrunk by
//! `--map-entries` while the cross-CPU page and tap reproducers spread waits over many
//! (lock, stack, CPU) keys, stacks, histogram buckets and SKB free sites. Whatever did not
//! fit must be counted (the report's losses, /metrics `zoneprof_losses_total`) and add up
//! with what did fit to the kernel's own totals; the same workload with the default sizes
//! must have none of those losses, so the checks can fail.
//!
//! They skip, saying why, when not root or with fewer than 2 CPUs;
//! ZONEPROF_REQUIRE_ROOT_TESTS=1 (set by `cargo xtask test` as root) turns a skip into a
//! failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use zoneprof::model::recording::Recording;

mod root;
use root::{BIN, lock, run, skip};

/// Small enough that the reproducers overflow every one of them within a second.
/// (`tasks` is sized only with `--tasks`, which the tiny recording uses.)
const TINY: &str = "lock-stats=2,stacks=4,hist=2,skb-matrix=1,skb-sites=1,tasks=1";

/// The page reproducer (many lock waits), then the tap reproducer (SKB frees at many
/// sites), as one shell command for `record --`.
fn workloads() -> String {
    format!(
        "{BIN} workload cross-cpu-pages --alloc-cpus 0 --free-cpus 1 -d 2s && \
         {BIN} workload tap --sender-cpus 0 --reader-cpus 1 -d 2s"
    )
}

/// Records the reproducers with `flags`; the recording, its JSON report and text report.
fn record(dir: &Path, name: &str, flags: &[&str]) -> (Recording, Value, String) {
    let path = dir.join(format!("{name}.zprof"));
    let p = path.to_string_lossy().into_owned();
    let sh = workloads();
    let mut args = vec!["record", "--no-progress", "-o", &p];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", &sh]);
    let out = run(&args);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let json = run(&["report", "--format", "json", &p]);
    let text = run(&["report", &p]);
    (
        Recording::read(&path).expect("the recording reads"),
        serde_json::from_slice(&json.stdout).expect("report JSON parses"),
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

fn loss(report: &Value, key: &str) -> u64 {
    report["losses"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("losses.{key} missing: {}", report["losses"]))
}

/// What fitted plus what was counted lost adds up to the kernel's own totals, read in the
/// same instant (after detach): no wait, contention or SKB free vanished unaccounted.
fn check_conservation(name: &str, rec: &Recording) {
    let c = &rec.counters;
    let stored_ns: u64 = rec.lock_waits.iter().map(|w| w.total_ns).sum();
    assert_eq!(
        stored_ns + c.lost_wait_ns,
        c.total_wait_ns,
        "{name}: wait stored per stack + lost_wait_ns = every wait"
    );
    let stored: u64 = rec.lock_waits.iter().map(|w| w.count).sum();
    let hist: u64 = rec.wait_hist.iter().map(|h| h.count).sum();
    assert_eq!(
        stored + c.lock_map_full,
        hist + c.hist_map_full,
        "{name}: each wait went to the lock table or its loss, and to the histogram or its loss"
    );
    // Every wait measured ended in one of the two (a begin that never ended is counted
    // on its own, not as a wait).
    assert!(
        stored + c.lock_map_full <= c.contention_end,
        "{name}: waits {} + lost {} > ends {}",
        stored,
        c.lock_map_full,
        c.contention_end
    );
    // Each SKB free goes to a site or counts a site-map loss (skb_map_full also counts
    // the matrix's losses, so it can only be larger).
    let sites: u64 = rec.skb_sites.iter().map(|s| s.count).sum();
    assert!(
        sites <= c.skb_frees && c.skb_frees - sites <= c.skb_map_full,
        "{name}: SKB frees {} = sites {sites} + lost ≤ {}",
        c.skb_frees,
        c.skb_map_full
    );
}

fn collision_ratio(rec: &Recording) -> f64 {
    rec.counters.stack_collisions as f64 / rec.counters.contention_begin.max(1) as f64
}

#[test]
fn tiny_maps_fill_and_every_loss_is_counted_and_named() {
    if skip("tiny_maps_fill_and_every_loss_is_counted_and_named") {
        return;
    }
    let _host = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let (tiny, tiny_json, tiny_text) =
        record(dir.path(), "tiny", &["--map-entries", TINY, "--tasks"]);
    let (normal, normal_json, normal_text) = record(dir.path(), "normal", &[]);

    // Both runs did the work, so a zero below is not an idle host.
    for (name, rec) in [("tiny", &tiny), ("normal", &normal)] {
        assert!(
            rec.counters.contention_end >= 20,
            "{name}: only {} contentions",
            rec.counters.contention_end
        );
        assert!(
            rec.counters.skb_frees >= 1000,
            "{name}: only {} SKB frees",
            rec.counters.skb_frees
        );
        check_conservation(name, rec);
    }

    // The sizes asked for are the ones loaded, and the recording says so.
    let sizes = |r: &Value| -> Vec<(String, u64)> {
        r["map_entries"]
            .as_array()
            .expect("map_entries in the report")
            .iter()
            .map(|m| {
                (
                    m["map"].as_str().unwrap().to_string(),
                    m["max_entries"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let tiny_sizes = sizes(&tiny_json);
    for pair in TINY.split(',') {
        let (m, n) = pair.split_once('=').unwrap();
        assert!(
            tiny_sizes.contains(&(m.to_string(), n.parse().unwrap())),
            "{m}={n} in {tiny_sizes:?}"
        );
    }
    assert!(
        sizes(&normal_json).contains(&("lock-stats".into(), 16384)),
        "{:?}",
        sizes(&normal_json)
    );

    // Tiny maps: each overflow counted, in the JSON and named in the text with its map.
    for (key, label, map) in [
        ("lock_map_full", "lock-wait map full", "lock-stats 2"),
        ("hist_map_full", "histogram map full", "hist 2"),
        (
            "skb_map_full",
            "SKB frees missing from the matrix or site table",
            "skb-matrix 1, skb-sites 1",
        ),
        ("stack_collisions", "stack-id collisions", "stacks 4"),
        ("task_info_full", "threads left unnamed", "tasks 1"),
    ] {
        let n = loss(&tiny_json, key);
        assert!(n > 0, "tiny maps: {key} is 0");
        let line = tiny_text
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("text report lacks {label:?}:\n{tiny_text}"));
        assert!(
            line.contains(&format!("[{map}: raise with --map-entries")),
            "{line}"
        );
        let shown: String = line.split_whitespace().next().unwrap().replace(',', "");
        assert_eq!(shown.parse::<u64>().ok(), Some(n), "{line}");
    }
    assert!(loss(&tiny_json, "lost_wait_ns") > 0);
    // One thread named; the others' rows keep their thread ids, shown as unnamed.
    assert_eq!(tiny.tasks.len(), 1, "{:?}", tiny.tasks);
    assert!(
        tiny.lock_waits.iter().all(|w| w.tid.is_some())
            && tiny.skb_sites.iter().all(|s| s.tid.is_some()),
        "with --tasks every row has a thread id"
    );
    assert!(tiny_text.contains("wait not attributed to a stack (map full)"));
    // Most stacks share 4 buckets: most waits have no stack of their own.
    assert!(
        collision_ratio(&tiny) > 0.2,
        "tiny stack map: only {:.1} % of waits collided",
        collision_ratio(&tiny) * 100.0
    );

    // Default sizes: none of the map-full losses; stack ids collide rarely (16,384
    // buckets, hashed).
    for key in [
        "lock_map_full",
        "lost_wait_ns",
        "hist_map_full",
        "skb_map_full",
        "task_map_full",
        "zone_cache_full",
        "task_info_full",
    ] {
        assert_eq!(loss(&normal_json, key), 0, "default maps: {key}");
    }
    assert!(
        collision_ratio(&normal) < 0.05,
        "default stack map: {:.1} % of waits collided",
        collision_ratio(&normal) * 100.0
    );
    for label in ["map full", "histogram map full"] {
        assert!(
            !normal_text.lines().any(|l| l.contains(label)),
            "default maps report {label}:\n{normal_text}"
        );
    }
}

/// One GET /metrics over HTTP/1.1 with `Connection: close`.
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series}:\n{metrics}"))
}

#[test]
fn serve_exports_map_full_losses() {
    if skip("serve_exports_map_full_losses") {
        return;
    }
    let _host = lock();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--map-entries", TINY])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting zoneprof serve");
    let pipe = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            if let Some((_, rest)) = line.split_once("serving http://") {
                tx.send(rest.split('/').next().unwrap_or_default().to_string())
                    .ok();
            }
        }
    });
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(90)) else {
        child.kill().ok();
        panic!("serve did not start: {:?}", child.wait());
    };
    let sh = workloads();
    let w = Command::new("sh")
        .args(["-c", &sh])
        .output()
        .expect("workloads");
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let m = scrape(&addr);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited {status}");
    for key in [
        "lock_map_full",
        "hist_map_full",
        "skb_map_full",
        "stack_collisions",
    ] {
        let v = sample(&m, &format!("zoneprof_losses_total{{loss=\"{key}\"}}"));
        assert!(v > 0.0, "{key} = {v}");
    }
    assert!(sample(&m, "zoneprof_lost_seconds_total{loss=\"lost_wait\"}") > 0.0);
}

/// Bad sizes are usage errors (exit 2, one line) before anything is loaded: no root needed.
#[test]
fn bad_map_entries_are_usage_errors() {
    for (cmd, arg, says) in [
        (
            "record",
            "lock-stats=0",
            "lock-stats takes 1 to 16777216 entries, not 0",
        ),
        (
            "serve",
            "stacks=16777217",
            "stacks takes 1 to 16777216 entries, not 16777217",
        ),
        ("top", "locks=4", "unknown map \"locks\""),
        ("record", "hist=4k", "\"4k\" is not a number of entries"),
        ("record", "hist", "expected MAP=N"),
        ("serve", "hist=4,hist=8", "map hist given twice"),
    ] {
        let out = Command::new(BIN)
            .args([cmd, "--map-entries", arg])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{cmd} --map-entries {arg}: {err}"
        );
        assert!(err.contains(says), "{cmd} --map-entries {arg}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(says), "the first line says it: {err}");
    }
}
