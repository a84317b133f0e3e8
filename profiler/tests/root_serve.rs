//! Root integration tests of `zoneprof serve`: the real probes attached, the cross-CPU
//! reproducer run, /metrics scraped and checked by `promtool check metrics`, and Debian's
//! `prometheus` server scraping it and answering a `rate()` query; `GET /profile` of the
//! reproducer read by `go tool pprof`; SIGTERM detaches with exit 0. Bad addresses fail
//! with one line before anything is loaded. `/profile`'s answers to bad queries, its bound
//! on concurrent requests and its window are checked on `serve --replay` of a small
//! recording, which needs neither root nor probes.
//!
//! They skip, saying why, when not root, with fewer than 2 CPUs, or without prometheus /
//! promtool / go (`cargo xtask setup` installs them); ZONEPROF_REQUIRE_ROOT_TESTS=1 (and
//! ZONEPROF_REQUIRE_GO=1 for go) turns a skip into a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use prost::Message as _;
use zoneprof::output::export::pprof::proto::Profile;

mod root;
use root::{BIN, lock, root_reason, skip_because};

/// Why a tool is unusable: not on PATH or not runnable.
fn tool_reason(tool: &str) -> Option<String> {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("{tool} --version failed: {}", o.status)),
        Err(e) => Some(format!(
            "{tool} not runnable ({e}); Debian package prometheus, installed by cargo xtask setup"
        )),
    }
}

/// A running `zoneprof serve`; SIGKILLed if a test ends without stopping it.
struct Serve {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting zoneprof serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split_once("serving http://").map(|(_, r)| r) {
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    tx.send(addr).ok();
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(a) => a,
            Err(_) => {
                child.kill().ok();
                let status = child.wait().ok();
                panic!(
                    "zoneprof serve did not start ({status:?}):\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Serve {
            child,
            addr,
            stderr,
        }
    }

    fn metrics(&self) -> String {
        let (status, body) = http_get(&self.addr, "/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }

    /// SIGTERM, and how it exited (within 30 s) with everything it said.
    fn stop(mut self) -> (ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread ends with the pipe.
        std::thread::sleep(Duration::from_millis(100));
        let said = self.stderr.lock().unwrap().clone();
        (status, said)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// One GET over HTTP/1.1 with `Connection: close`: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let r = request(addr, "GET", path);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// An HTTP response: status, headers (names lowercased), body bytes.
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// One request over HTTP/1.1 with `Connection: close`.
fn request(addr: &str, method: &str, path: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("sending the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("reading the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Series -> value of every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, v) = l.rsplit_once(' ').expect("sample line");
            (series.to_string(), v.parse().expect("sample value"))
        })
        .collect()
}

fn cross_cpu_pages(seconds: u32) {
    let out = Command::new(BIN)
        .args(["workload", "cross-cpu-pages", "--alloc-cpus", "0"])
        .args(["--free-cpus", "1", "-d", &format!("{seconds}s")])
        .output()
        .expect("running the reproducer");
    assert!(
        out.status.success(),
        "reproducer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feeding promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}): {said}",
        out.status
    );
}

#[test]
fn serve_exposes_the_reproducer_and_promtool_accepts_it() {
    let test = "serve_exposes_the_reproducer_and_promtool_accepts_it";
    if skip_because(test, root_reason().or_else(|| tool_reason("promtool"))) {
        return;
    }
    let _g = lock();
    let serve = Serve::start(&[]);
    let before = samples(&serve.metrics());
    cross_cpu_pages(3);
    let text = serve.metrics();
    promtool_check(&text);
    let after = samples(&text);
    let v = |m: &BTreeMap<String, f64>, s: &str| m.get(s).copied().unwrap_or(0.0);
    let refill0 = v(&after, r#"zoneprof_pcp_refill_pages_total{cpu="0"}"#)
        - v(&before, r#"zoneprof_pcp_refill_pages_total{cpu="0"}"#);
    let drain1 = v(&after, r#"zoneprof_pcp_drain_pages_total{cpu="1"}"#)
        - v(&before, r#"zoneprof_pcp_drain_pages_total{cpu="1"}"#);
    // 3 s of 4 MiB chunks faulted in on CPU 0 and unmapped on CPU 1: hundreds of
    // thousands of pages each way; 10,000 is far below what any run here moves.
    assert!(refill0 > 10_000.0, "refill pages on CPU 0: {refill0}");
    assert!(drain1 > 10_000.0, "drain pages on CPU 1: {drain1}");
    // Everything is a counter since attach: nothing went down between the scrapes.
    for (series, b) in &before {
        if series.starts_with("zoneprof_scrape_duration") {
            continue;
        }
        let a = after.get(series).unwrap_or_else(|| panic!("{series} gone"));
        assert!(a >= b, "{series} went from {b} to {a}");
    }
    for probe in ["contention_begin", "pcp_refill", "pcp_drain"] {
        assert!(
            after.iter().any(|(s, v)| s
                .starts_with(&format!("zoneprof_probe_attached{{probe=\"{probe}\""))
                && *v == 1.0),
            "{probe} not attached"
        );
    }
    assert!(
        after
            .keys()
            .any(|s| s.starts_with("zoneprof_bpf_program_runs_total{"))
    );
    assert!(
        !text.contains("zoneprof_cgroup_"),
        "cgroup series without --tasks"
    );
    let (status, _) = http_get(&serve.addr, "/nothing");
    assert_eq!(status, 404);
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
    assert!(said.contains("SIGTERM: probes detached"), "{said}");
}

/// `serve --tasks` on the tap reproducer: per-cgroup series that promtool accepts, and the
/// cgroup the test made for the reproducer holds the reader thread's remote SKB frees. Without --tasks there is no cgroup series (checked in the test above's
/// serve, which has none).
#[test]
fn serve_tasks_exports_per_cgroup_series_with_the_tap_readers_remote_frees() {
    let test = "serve_tasks_exports_per_cgroup_series_with_the_tap_readers_remote_frees";
    let why = root_reason()
        .or_else(|| tool_reason("promtool"))
        .or_else(root::tun_reason);
    if skip_because(test, why) {
        return;
    }
    let Some(cgroup) = root::TestCgroup::create_or_skip(test, "serve-tasks") else {
        return;
    };
    let _g = lock();
    let serve = Serve::start(&["--tasks"]);
    let argv = cgroup.tap_reproducer("2s");
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .expect("running the tap reproducer");
    assert!(
        out.status.success(),
        "tap reproducer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = serve.metrics();
    promtool_check(&text);
    let m = samples(&text);
    let cg = &cgroup.path;
    let frees = |remote: &str| {
        m.get(&format!(
            "zoneprof_cgroup_skb_frees_total{{cgroup=\"{cg}\",remote=\"{remote}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    let (remote, local) = (frees("true"), frees("false"));
    eprintln!("{test}: cgroup {cg}: {remote} remote SKB frees, {local} local");
    // Two seconds of the reader on CPU 1 freeing what CPU 0 allocated: tens of thousands.
    assert!(
        remote > 1_000.0 && remote > local,
        "{remote} remote, {local} local:\n{text}"
    );
    assert!(
        m.keys()
            .any(|s| s.starts_with("zoneprof_cgroup_zone_lock_wait_seconds_total{")),
        "{text}"
    );
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
}

#[test]
fn serve_per_cpu_off_has_no_cpu_label() {
    let test = "serve_per_cpu_off_has_no_cpu_label";
    if skip_because(test, root_reason().or_else(|| tool_reason("promtool"))) {
        return;
    }
    let _g = lock();
    let serve = Serve::start(&["--per-cpu", "off"]);
    cross_cpu_pages(1);
    let text = serve.metrics();
    promtool_check(&text);
    assert!(!text.contains("cpu=\""), "{text}");
    let refill = samples(&text)
        .get("zoneprof_pcp_refill_pages_total")
        .copied();
    assert!(refill.is_some_and(|r| r > 0.0), "{refill:?}");
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
}

#[test]
fn serve_refuses_a_busy_port_and_a_remote_address_in_one_line() {
    let test = "serve_refuses_a_busy_port_and_a_remote_address_in_one_line";
    // A non-loopback address is refused before anything else: no root needed.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:9466"])
        .output()
        .expect("zoneprof serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--allow-remote"), "{err}");
    if skip_because(test, root_reason()) {
        return;
    }
    let _g = lock();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr])
        .output()
        .expect("zoneprof serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!("zoneprof: error: cannot listen on {addr}: address already in use")
    );
}

/// A running `prometheus`; killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Prometheus {
    /// Scrapes `target` every second; storage in a temporary directory.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: zoneprof\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("writing the config");
        // A free port: bound, read and released (nothing else here takes ports meanwhile).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        p.wait_for("ready", Duration::from_secs(60), || {
            TcpStream::connect(&p.addr).is_ok() && http_get(&p.addr, "/-/ready").0 == 200
        });
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < limit,
                "prometheus: not {what} within {limit:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The values of an instant query's vector result.
    fn query(&self, promql: &str) -> Vec<f64> {
        let (status, body) = http_get(&self.addr, &format!("/api/v1/query?query={}", url(promql)));
        assert_eq!(status, 200, "query {promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"]
            .as_array()
            .expect("vector result")
            .iter()
            .map(|r| {
                r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("sample value")
            })
            .collect()
    }
}

/// Percent-encodes a query parameter.
fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_serve_and_sees_refills_on_the_allocating_cpu() {
    let test = "prometheus_scrapes_serve_and_sees_refills_on_the_allocating_cpu";
    if skip_because(test, root_reason().or_else(|| tool_reason("prometheus"))) {
        return;
    }
    let _g = lock();
    let serve = Serve::start(&[]);
    let prom = Prometheus::start(&serve.addr);
    prom.wait_for("scraping zoneprof", Duration::from_secs(30), || {
        prom.query("up{job=\"zoneprof\"}") == vec![1.0]
    });
    cross_cpu_pages(3);
    let promql = r#"rate(zoneprof_pcp_refill_pages_total{cpu="0"}[10s])"#;
    let mut last = Vec::new();
    prom.wait_for("seeing a refill rate", Duration::from_secs(15), || {
        last = prom.query(promql);
        last.first().is_some_and(|r| *r > 0.0)
    });
    eprintln!("{promql} = {last:?}");
    // Scraped cleanly throughout: no scrape failed.
    assert_eq!(prom.query("up{job=\"zoneprof\"}"), vec![1.0]);
    assert_eq!(
        prom.query("sum(scrape_samples_scraped{job=\"zoneprof\"}) > 0")
            .len(),
        1
    );
    drop(prom);
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
}

#[test]
fn serve_rotate_writes_rolling_recordings_that_report_and_compare_read() {
    let test = "serve_rotate_writes_rolling_recordings_that_report_and_compare_read";
    if skip_because(test, root_reason()) {
        return;
    }
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("rot");
    let serve = Serve::start(&[
        "--rotate",
        "1s",
        "--keep",
        "3",
        "--dir",
        d.to_str().expect("utf-8"),
    ]);
    cross_cpu_pages(4);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
    assert!(!said.contains("rotation failed"), "{said}");
    let mut files: Vec<_> = std::fs::read_dir(&d)
        .expect("rotation dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    // At least 5 intervals were written; only the newest 3 are kept.
    assert_eq!(files.len(), 3, "{files:?}\n{said}");
    let mut refills = 0.0;
    for f in &files {
        let out = Command::new(BIN)
            .args(["report", "--format", "json", f.to_str().expect("utf-8")])
            .output()
            .expect("report");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
        let secs = r["duration_s"].as_f64().unwrap_or(0.0);
        assert!(secs <= 1.5, "{f:?} covers {secs} s");
        refills += r["per_cpu"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["cpu"] == 0)
            .map(|c| c["pcp_refill_pages"].as_f64().unwrap_or(0.0))
            .sum::<f64>();
    }
    assert!(refills > 0.0, "no refills on CPU 0 in the kept intervals");
    let out = Command::new(BIN)
        .args(["compare"])
        .args([&files[0], &files[2]])
        .output()
        .expect("compare");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn decode_pprof(gz: &[u8]) -> Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("the profile is gzip");
    Profile::decode(raw.as_slice()).expect("profile.proto")
}

/// (contentions, delay ns) summed over the samples.
fn pprof_totals(p: &Profile) -> (i64, i64) {
    p.sample
        .iter()
        .fold((0, 0), |(c, d), s| (c + s.value[0], d + s.value[1]))
}

/// A recording to replay: zone-lock waits on both sides and an rq-lock wait, 2 s long.
fn replay_recording(dir: &Path) -> std::path::PathBuf {
    let folded = "cpu1;do_idle+0x1;free_unref_folios+0x346;free_frozen_page_commit+0x19d;free_pcppages_bulk+0x37;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 4000000\n\
                  cpu0;handle_mm_fault+0x10;get_page_from_freelist+0x2fe;__rmqueue_pcplist+0x233;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 6000000\n\
                  cpu1;schedule+0x1;sched_tick+0x43;_raw_spin_lock+0x3b;__pv_queued_spin_lock_slowpath+0x15b 300000\n";
    let rec = common::recording_from_folded(folded, "replayhost", 2.0, 2);
    common::write_recording(dir, "replay.zprof", &rec)
}

#[test]
fn serve_profile_refuses_bad_queries_in_one_line_and_bounds_concurrent_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = replay_recording(dir.path());
    let serve = Serve::start(&["--replay", rec.to_str().expect("utf-8")]);
    for (query, says) in [
        ("/profile", "seconds is missing"),
        (
            "/profile?seconds=0",
            "seconds=\"0\" is not a whole number from 1 to 300",
        ),
        ("/profile?seconds=301", "from 1 to 300"),
        ("/profile?seconds=abc", "not a whole number"),
        (
            "/profile?seconds=2&view=pages",
            "view=\"pages\" is not a lock view",
        ),
        ("/profile?seconds=2&view=nope", "not a lock view"),
        ("/profile?seconds=2&sec=3", "unknown parameter \"sec\""),
        ("/profile?seconds=2&seconds=3", "more than once"),
    ] {
        let r = request(&serve.addr, "GET", query);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 400, "{query}: {body}");
        assert_eq!(body.lines().count(), 1, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    for path in ["/nothing", "/profile/x", "/debug/pprof/profile?seconds=1"] {
        assert_eq!(request(&serve.addr, "GET", path).status, 404, "{path}");
    }
    let post = request(&serve.addr, "POST", "/profile?seconds=1");
    assert_eq!(post.status, 405);
    assert_eq!(post.headers.get("allow").map(String::as_str), Some("GET"));

    // Two windows at once are served; a third is turned away while they wait, and
    // /metrics answers at once meanwhile: the windows wait without blocking the loop.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let addr = serve.addr.clone();
            std::thread::spawn(move || request(&addr, "GET", "/profile?seconds=3"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let third = request(&serve.addr, "GET", "/profile?seconds=1");
    assert_eq!(
        third.status,
        429,
        "{}",
        String::from_utf8_lossy(&third.body)
    );
    assert_eq!(
        third.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    let t = Instant::now();
    let _ = serve.metrics();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "/metrics waited {:?} behind the windows",
        t.elapsed()
    );
    for w in waiting {
        let r = w.join().expect("request thread");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    // Their places are free again.
    assert_eq!(
        request(&serve.addr, "GET", "/profile?seconds=1").status,
        200
    );
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
    assert!(said.contains("SIGTERM: replay stopped"), "{said}");
}

#[test]
fn serve_profile_of_a_replay_is_a_pprof_of_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = replay_recording(dir.path());
    let serve = Serve::start(&["--replay", rec.to_str().expect("utf-8")]);
    let t = Instant::now();
    let r = request(&serve.addr, "GET", "/profile?seconds=2&view=zone-free");
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(took >= Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/octet-stream")
    );
    let disposition = r.headers.get("content-disposition").expect("a file name");
    assert!(
        disposition.starts_with("attachment; filename=\"zoneprof-zone-free-")
            && disposition.ends_with(".pb.gz\""),
        "{disposition}"
    );
    let p = decode_pprof(&r.body);
    let secs = p.duration_nanos as f64 / 1e9;
    assert!((2.0..3.0).contains(&secs), "window of {secs} s");
    // The replay waits 4 ms per 2 s on the free side: 2 s of it is about 4 ms, and the
    // alloc side (6 ms) and the rq lock are not in this view.
    let (_, delay) = pprof_totals(&p);
    let want = 4_000_000.0 * secs / 2.0;
    assert!(
        (delay as f64 - want).abs() < want * 0.1,
        "delay {delay} ns, expected about {want}"
    );
    let names: Vec<&str> = p
        .function
        .iter()
        .map(|f| p.string_table[f.name as usize].as_str())
        .collect();
    assert!(names.contains(&"free_pcppages_bulk"), "{names:?}");
    assert!(!names.contains(&"__rmqueue_pcplist"), "{names:?}");
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
}

#[test]
fn serve_profile_of_the_reproducer_lists_the_zone_lock_takers_in_go_tool_pprof() {
    let test = "serve_profile_of_the_reproducer_lists_the_zone_lock_takers_in_go_tool_pprof";
    if skip_because(test, root_reason()) {
        return;
    }
    let Some(go) = common::go_or_skip(test) else {
        return;
    };
    let _g = lock();
    let serve = Serve::start(&[]);
    let repro = std::thread::spawn(|| cross_cpu_pages(8));
    std::thread::sleep(Duration::from_millis(700));
    // Whether the two CPUs meet in the lock within 2 s is up to this shared host: up to
    // three windows are taken while the reproducer runs, the first with zone-lock wait kept.
    let mut tries = Vec::new();
    let r = loop {
        let r = request(&serve.addr, "GET", "/profile?seconds=2");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let (contentions, delay) = pprof_totals(&decode_pprof(&r.body));
        tries.push((contentions, delay));
        if delay > 0 || tries.len() == 3 {
            break r;
        }
    };
    repro.join().expect("reproducer thread");
    eprintln!("windows (contentions, delay ns): {tries:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("window.pb.gz");
    std::fs::write(&file, &r.body).expect("write the profile");
    let f = file.to_str().expect("utf-8");

    let top = common::go_pprof(&go, dir.path(), &["-top", "-cum", "-nodecount=60", f]);
    assert!(top.contains("Type: delay"), "{top}");
    let takers: Vec<&str> = ["__rmqueue_pcplist", "free_pcppages_bulk"]
        .into_iter()
        .filter(|t| top.lines().any(|l| l.split_whitespace().last() == Some(*t)))
        .collect();
    assert!(
        !takers.is_empty(),
        "no zone-lock taker in go tool pprof -top:\n{top}"
    );
    // pprof's own total, in ns, is above zero and is the profile's delay total.
    let (_, delay) = pprof_totals(&decode_pprof(&r.body));
    assert!(delay > 0, "no zone-lock wait in the window");
    let top_ns = common::go_pprof(&go, dir.path(), &["-top", "-unit=ns", "-nodecount=1", f]);
    assert!(
        top_ns.contains(&format!("of {delay}ns total")),
        "expected a total of {delay}ns:\n{top_ns}"
    );
    eprintln!("window: takers {takers:?}, {delay} ns of zone-lock wait");
    let (status, said) = serve.stop();
    assert!(status.success(), "serve exited {status}:\n{said}");
}
