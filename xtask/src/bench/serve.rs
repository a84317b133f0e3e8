//! What `zoneprof serve` costs (issue 12): the time of a scrape and the exporter's memory on
//! a 640-CPU host, and its own userspace CPU on this host, idle and under the cross-CPU
//! reproducer, scraped every 15 s as Prometheus would.
//!
//! There is no 640-CPU host here, so the first part replays one: `zoneprof-synth` writes a
//! synthetic 640-CPU recording and `serve --replay` serves it at its own rates (every count
//! grows with time), so each scrape builds a snapshot of that size, renders and sends it as
//! a live one does. What it leaves out is reading 640 CPUs' eBPF maps back. The second part
//! is the real thing: `serve` with its probes attached, `utime + stime` of its process from
//! `/proc/PID/stat` over each window.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::overhead::Repro;
use super::stats::quantile;
use super::template::block;
use super::{MB, Target, child, host, userspace};

/// How often Prometheus scrapes in the CPU windows (a common `scrape_interval`).
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// The length of the `/profile` window taken on the replay.
const PROFILE_SECS: u32 = 5;

/// The targets of issue 12.
const SCRAPE_P99_MS: f64 = 100.0;
const RSS_MB: f64 = 100.0;
const CPU_PCT: f64 = 1.0;

/// `--only-serve` and the serve phase of the whole bench.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Scrapes of the replayed host (after one unmeasured).
    pub scrapes: u32,
    /// Seconds of each CPU window (idle, under the reproducer).
    pub window_secs: u32,
    /// CPUs of the replayed host.
    pub cpus: u32,
}

pub struct Tools<'a> {
    pub zoneprof: &'a Path,
    pub synth: &'a Path,
    pub fixtures: &'a Path,
    pub scratch: &'a Path,
}

/// The scrapes of the replayed host.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub cpus: u32,
    pub stacks: u32,
    /// What `zoneprof-synth` said it wrote.
    pub synth_said: String,
    pub recording_bytes: u64,
    /// Each scrape's wall time at the client (connect to last byte), ms.
    pub scrape_ms: Vec<f64>,
    /// `zoneprof_scrape_duration_seconds` of each scrape (snapshot and rendering), ms.
    pub render_ms: Vec<f64>,
    /// serve's main thread during each scrape (`/proc/PID/schedstat`): on a CPU, and
    /// runnable but waiting for one, ms. The loop and every handler run on that thread.
    pub on_cpu_ms: Vec<f64>,
    pub queued_ms: Vec<f64>,
    /// Size and sample lines of the last exposition.
    pub body_bytes: usize,
    pub series: usize,
    /// serve's utime + stime over the measured scrapes, s.
    pub cpu_s: f64,
    pub profile: ProfileRun,
    /// VmRSS after the scrapes and the `/profile`, and VmHWM (the peak), MB.
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
}

/// One `GET /profile` of the replayed host.
#[derive(Debug, Clone)]
pub struct ProfileRun {
    pub window_s: u32,
    pub wall_s: f64,
    pub bytes: usize,
}

/// One CPU window of the live `serve`.
#[derive(Debug, Clone)]
pub struct Window {
    pub label: &'static str,
    pub command: String,
    pub wall_s: f64,
    /// serve's utime + stime over the window.
    pub cpu_s: f64,
    /// Its main thread's time on a CPU over the window (`/proc/PID/schedstat`, in ns where
    /// utime + stime count 10 ms ticks).
    pub on_cpu_s: f64,
    pub scrape_ms: Vec<f64>,
}

impl Window {
    /// serve's CPU in % of one CPU.
    pub fn pct(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.cpu_s / self.wall_s * 100.0
        } else {
            0.0
        }
    }
}

/// Everything the serve phase measured.
#[derive(Debug, Clone)]
pub struct Serve {
    pub opts: Opts,
    pub date_utc: String,
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    /// Other people's compilers, linkers and VMs running at the start and at the end.
    pub busy: (usize, usize),
    pub replayed: Replayed,
    /// What the live serve said when it attached.
    pub live_said: String,
    pub windows: Vec<Window>,
    pub live_peak_rss_mb: f64,
    pub targets: Vec<Target>,
    pub elapsed_s: f64,
}

/// Runs the phase; `log` gets progress lines.
pub fn run(t: &Tools<'_>, opts: &Opts, log: &mut dyn FnMut(&str)) -> Result<Serve> {
    let started = Instant::now();
    let load_before = host::loadavg();
    let busy_before = host::others_busy();
    let date_utc = host::utc_now();
    let replayed = replay(t, opts, log)?;
    let (live_said, windows, live_peak_rss_mb) = live(t, opts, log)?;
    let mut s = Serve {
        opts: opts.clone(),
        date_utc,
        load_before,
        load_after: host::loadavg(),
        busy: (busy_before, host::others_busy()),
        replayed,
        live_said,
        windows,
        live_peak_rss_mb,
        targets: Vec::new(),
        elapsed_s: 0.0,
    };
    s.targets = targets(&s);
    s.elapsed_s = started.elapsed().as_secs_f64();
    Ok(s)
}

fn replay(t: &Tools<'_>, opts: &Opts, log: &mut dyn FnMut(&str)) -> Result<Replayed> {
    let stacks = profiler_common::STACK_ENTRIES;
    let rec = t.scratch.join(format!("serve-{}.zprof", opts.cpus));
    let mut argv = vec![
        t.synth.display().to_string(),
        "-o".into(),
        rec.display().to_string(),
        "--cpus".into(),
        opts.cpus.to_string(),
        "--stacks".into(),
        stacks.to_string(),
    ];
    for f in userspace::folded_files(t.fixtures)? {
        argv.push("--folded".into());
        argv.push(f.display().to_string());
    }
    let synth_said = child::run_ok(&argv, Duration::from_secs(300))?
        .stderr
        .trim()
        .to_string();
    log(&format!("  {synth_said}"));
    let recording_bytes = std::fs::metadata(&rec)
        .with_context(|| format!("stat {}", rec.display()))?
        .len();
    let server = Server::start(&[
        t.zoneprof.display().to_string(),
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--replay".into(),
        rec.display().to_string(),
    ])?;
    // One unmeasured scrape: the first one sets up what the later ones reuse.
    get(&server.addr, "/metrics")?;
    let ticks_before = cpu_ticks(server.pid)?;
    let (mut scrape_ms, mut render_ms) = (Vec::new(), Vec::new());
    let (mut on_cpu_ms, mut queued_ms) = (Vec::new(), Vec::new());
    let mut last = Vec::new();
    for _ in 0..opts.scrapes {
        let before = sched_ns(server.pid)?;
        let t0 = Instant::now();
        last = get(&server.addr, "/metrics")?;
        scrape_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        let after = sched_ns(server.pid)?;
        on_cpu_ms.push(after.0.saturating_sub(before.0) as f64 / 1e6);
        queued_ms.push(after.1.saturating_sub(before.1) as f64 / 1e6);
        if let Some(s) = scrape_duration_s(&String::from_utf8_lossy(&last)) {
            render_ms.push(s * 1e3);
        }
    }
    let cpu_s = (cpu_ticks(server.pid)? - ticks_before) as f64 / clk_tck();
    let text = String::from_utf8_lossy(&last);
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let t0 = Instant::now();
    let body = get(
        &server.addr,
        &format!("/profile?seconds={PROFILE_SECS}&view=locks"),
    )?;
    let profile = ProfileRun {
        window_s: PROFILE_SECS,
        wall_s: t0.elapsed().as_secs_f64(),
        bytes: body.len(),
    };
    let (rss_mb, peak_rss_mb) = rss_mb(server.pid)?;
    server.stop()?;
    std::fs::remove_file(&rec).ok();
    let r = Replayed {
        cpus: opts.cpus,
        stacks,
        synth_said,
        recording_bytes,
        scrape_ms,
        render_ms,
        on_cpu_ms,
        queued_ms,
        body_bytes: last.len(),
        series,
        cpu_s,
        profile,
        rss_mb,
        peak_rss_mb,
    };
    let (p50, p99) = p50_p99(&r.scrape_ms);
    log(&format!(
        "  {} scrapes of {} series ({:.0} KB): p50 {p50:.1} ms, p99 {p99:.1} ms; {:.1} ms CPU per scrape; RSS {:.0} MB, peak {:.0} MB",
        r.scrape_ms.len(),
        r.series,
        r.body_bytes as f64 / 1e3,
        r.cpu_s * 1e3 / f64::from(opts.scrapes.max(1)),
        r.rss_mb,
        r.peak_rss_mb
    ));
    Ok(r)
}

/// The live serve: an idle window, then one under the cross-CPU reproducer.
fn live(
    t: &Tools<'_>,
    opts: &Opts,
    log: &mut dyn FnMut(&str),
) -> Result<(String, Vec<Window>, f64)> {
    let server = Server::start(&[
        t.zoneprof.display().to_string(),
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ])?;
    let live_said = server
        .said()
        .lines()
        .find(|l| l.contains("serving http://"))
        .and_then(|l| l.split_once(" ("))
        .and_then(|(_, r)| r.split_once(')'))
        .map_or_else(String::new, |(probes, _)| probes.to_string());
    // Unmeasured: the first scrape symbolizes every stack seen since attach.
    get(&server.addr, "/metrics")?;
    let secs = opts.window_secs;
    let plan: [(&'static str, Vec<String>); 2] = [
        ("idle", vec!["sleep".into(), secs.to_string()]),
        (
            "cross-cpu-pages",
            Repro::CrossCpuPages.argv(t.zoneprof, (0, 1), secs),
        ),
    ];
    let mut windows = Vec::new();
    for (label, argv) in plan {
        log(&format!(
            "  live serve, {label}: {secs} s, scraped every {} s",
            SCRAPE_INTERVAL.as_secs()
        ));
        let window = Duration::from_secs(u64::from(secs));
        let mut next = Duration::ZERO;
        let mut scrape_ms = Vec::new();
        let mut failed = None;
        let ticks_before = cpu_ticks(server.pid)?;
        let sched_before = sched_ns(server.pid)?;
        let t0 = Instant::now();
        let out = child::run_with(&argv, window + Duration::from_secs(120), |_, elapsed| {
            // Scrapes at 0, 15, 30 … s, all inside the window.
            if elapsed >= next && next < window && failed.is_none() {
                let s = Instant::now();
                match get(&server.addr, "/metrics") {
                    Ok(_) => scrape_ms.push(s.elapsed().as_secs_f64() * 1e3),
                    Err(e) => failed = Some(e),
                }
                next += SCRAPE_INTERVAL;
            }
        })?;
        let wall_s = t0.elapsed().as_secs_f64();
        let cpu_s = (cpu_ticks(server.pid)? - ticks_before) as f64 / clk_tck();
        let on_cpu_s = sched_ns(server.pid)?.0.saturating_sub(sched_before.0) as f64 / 1e9;
        if let Some(e) = failed {
            return Err(e.context(format!("scraping the live serve ({label})")));
        }
        if !out.success() {
            bail!(
                "`{}` failed ({}): {}",
                child::shown(&argv),
                out.describe(),
                out.stderr_tail(5)
            );
        }
        let w = Window {
            label,
            command: child::shown(&argv).replace(&t.zoneprof.display().to_string(), "zoneprof"),
            wall_s,
            cpu_s,
            on_cpu_s,
            scrape_ms,
        };
        log(&format!(
            "    {:.2} CPU s in {:.0} s: {:.3} % of one CPU ({} scrapes)",
            w.cpu_s,
            w.wall_s,
            w.pct(),
            w.scrape_ms.len()
        ));
        windows.push(w);
    }
    let (_, peak) = rss_mb(server.pid)?;
    server.stop()?;
    Ok((live_said, windows, peak))
}

/// p50 and p99 of `v` (0 when empty).
pub fn p50_p99(v: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return (0.0, 0.0);
    }
    s.sort_by(f64::total_cmp);
    (quantile(&s, 0.5), quantile(&s, 0.99))
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

pub fn targets(s: &Serve) -> Vec<Target> {
    let r = &s.replayed;
    let (p50, p99) = p50_p99(&r.scrape_ms);
    let mut t = vec![
        Target {
            what: format!("{}-CPU host (replayed): scrape time, p99", r.cpus),
            limit: format!("< {SCRAPE_P99_MS:.0} ms"),
            measured: format!(
                "{p99:.1} ms (p50 {p50:.1} ms, max {:.1} ms; {} scrapes)",
                max(&r.scrape_ms),
                r.scrape_ms.len()
            ),
            met: Some(p99 < SCRAPE_P99_MS),
            noisy: false,
        },
        Target {
            what: format!("{}-CPU host (replayed): exporter RSS", r.cpus),
            limit: format!("< {RSS_MB:.0} MB"),
            measured: format!(
                "peak {:.1} MB ({:.1} MB after the scrapes and a /profile)",
                r.peak_rss_mb, r.rss_mb
            ),
            met: Some(r.peak_rss_mb < RSS_MB),
            noisy: false,
        },
    ];
    for w in &s.windows {
        t.push(Target {
            what: format!(
                "serve userspace CPU, {}, scraped every {} s",
                w.label,
                SCRAPE_INTERVAL.as_secs()
            ),
            limit: format!("< {CPU_PCT:.0} % of one CPU"),
            measured: format!(
                "{:.3} % ({:.2} CPU s in {:.0} s, {} scrapes)",
                w.pct(),
                w.cpu_s,
                w.wall_s,
                w.scrape_ms.len()
            ),
            met: Some(w.pct() < CPU_PCT),
            noisy: false,
        });
    }
    t
}

/// PASS / FAIL of a target, as printed and in the doc.
pub fn pass_fail(t: &Target) -> &'static str {
    match t.met {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "not measured",
    }
}

pub fn print_targets(s: &Serve) {
    println!("==> bench: serve targets");
    for t in &s.targets {
        println!(
            "  {:<5} {} ({}): {}",
            pass_fail(t),
            t.what,
            t.limit,
            t.measured
        );
    }
}

// ---- the running serve, HTTP and /proc ----

/// A `zoneprof serve` child; SIGKILLed when dropped without [`Server::stop`].
struct Server {
    child: Child,
    pid: u32,
    addr: String,
    said: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `argv` and waits (90 s at most) for the address it serves on.
    fn start(argv: &[String]) -> Result<Server> {
        let Some((program, args)) = argv.split_first() else {
            bail!("empty command");
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`", child::shown(argv)))?;
        let pid = child.id();
        let pipe = child.stderr.take().context("serve's stderr")?;
        let said = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log = said.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                // Kept before the address is sent: whoever gets it may read what serve said.
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some((_, rest)) = line.split_once("serving http://") {
                    tx.send(rest.split('/').next().unwrap_or_default().to_string())
                        .ok();
                }
            }
        });
        let mut s = Server {
            child,
            pid,
            addr: String::new(),
            said,
        };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(addr) => s.addr = addr,
            Err(_) => bail!(
                "`{}` did not start serving within 90 s: {}",
                child::shown(argv),
                s.said().trim()
            ),
        }
        Ok(s)
    }

    fn said(&self) -> String {
        self.said.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// SIGTERM, and a clean exit within 30 s.
    fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) of our own child's pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for serve")? {
                if !status.success() {
                    bail!("serve exited with {status}: {}", self.said().trim());
                }
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("serve did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// The body of `GET path` (HTTP/1.1, `Connection: close`); fails unless 200.
fn get(addr: &str, path: &str) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("sending GET {path}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path}"))?;
    let (status, body) = split_response(&raw).with_context(|| format!("GET {path}"))?;
    if status != 200 {
        bail!(
            "GET {path}: HTTP {status}: {}",
            String::from_utf8_lossy(body).trim()
        );
    }
    Ok(body.to_vec())
}

/// (status, body) of a raw HTTP/1.1 response without chunked encoding.
pub fn split_response(raw: &[u8]) -> Result<(u16, &[u8])> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("not an HTTP response ({} bytes)", raw.len());
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {:?}", head.lines().next()))?;
    Ok((status, &raw[end + 4..]))
}

/// `zoneprof_scrape_duration_seconds` of an exposition.
pub fn scrape_duration_s(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("zoneprof_scrape_duration_seconds "))
        .and_then(|v| v.trim().parse().ok())
}

/// utime + stime, in clock ticks, of a `/proc/PID/stat` line.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `/proc/PID/status` value in kB (`VmRSS`, `VmHWM`).
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// (on a CPU, waiting in a run queue), ns, of a `/proc/PID/schedstat` line.
pub fn schedstat(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

fn sched_ns(pid: u32) -> Result<(u64, u64)> {
    let p = format!("/proc/{pid}/schedstat");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?;
    schedstat(&text).with_context(|| format!("no run times in {p}"))
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let p = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?;
    stat_ticks(&text).with_context(|| format!("no utime/stime in {p}"))
}

/// (VmRSS, VmHWM) in MB.
fn rss_mb(pid: u32) -> Result<(f64, f64)> {
    let p = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {p}"))?;
    let kib = |k: &str| {
        status_kib(&text, k)
            .map(|v| v as f64 * 1024.0 / MB)
            .with_context(|| format!("no {k} in {p}"))
    };
    Ok((kib("VmRSS")?, kib("VmHWM")?))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

// ---- the doc and the JSON ----

/// The spans of docs/benchmarks.md that [`values`] fills (and `--only-serve` alone).
pub const SERVE_SPANS: &[&str] = &[
    "serve-run",
    "serve-targets",
    "serve-cpus",
    "serve-stacks",
    "serve-synth-said",
    "serve-scrapes",
    "serve-replay",
    "serve-window-secs",
    "serve-live-probes",
    "serve-cpu",
];

fn la(l: Option<[f64; 3]>) -> String {
    l.map_or_else(
        || "unknown".into(),
        |[a, b, c]| format!("{a:.2} / {b:.2} / {c:.2}"),
    )
}

pub fn values(s: &Serve) -> Vec<(&'static str, String)> {
    let r = &s.replayed;
    let busy = match s.busy {
        (0, 0) => "no compiler, linker or VM of anyone else was running at its start or end".into(),
        (a, b) => format!(
            "other people's compilers, linkers or VMs were running ({a} at its start, {b} at its end)"
        ),
    };
    let run = format!(
        "Run {} ({:.0} s in all); load average before {}, after {}; {busy}.",
        s.date_utc,
        s.elapsed_s,
        la(s.load_before),
        la(s.load_after)
    );
    let mut targets = String::from("| target | limit | measured | |\n| --- | --- | --- | --- |\n");
    for t in &s.targets {
        let v = match pass_fail(t) {
            "FAIL" => "**FAIL**",
            other => other,
        };
        targets += &format!("| {} | {} | {} | {v} |\n", t.what, t.limit, t.measured);
    }
    let (p50, p99) = p50_p99(&r.scrape_ms);
    let (r50, r99) = p50_p99(&r.render_ms);
    let (c50, c99) = p50_p99(&r.on_cpu_ms);
    let (q50, q99) = p50_p99(&r.queued_ms);
    let slow = r.scrape_ms.iter().filter(|&&v| v > SCRAPE_P99_MS).count();
    let per_scrape_ms = r.cpu_s * 1e3 / r.scrape_ms.len().max(1) as f64;
    let replay = format!(
        "| | |\n| --- | --- |\n\
         | recording replayed | {:.2} MB |\n\
         | exposition | {} sample lines, {:.0} KB |\n\
         | scrape, client wall (connect to last byte) | p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms |\n\
         | of which snapshot and rendering (`zoneprof_scrape_duration_seconds`) | p50 {r50:.1} ms, p99 {r99:.1} ms |\n\
         | serve's thread on a CPU during a scrape (`/proc/PID/schedstat`) | p50 {c50:.1} ms, p99 {c99:.1} ms |\n\
         | serve's thread runnable but waiting for a CPU during a scrape | p50 {q50:.1} ms, p99 {q99:.1} ms, max {:.1} ms |\n\
         | scrapes over {SCRAPE_P99_MS:.0} ms | {slow} of {} |\n\
         | serve's CPU per scrape (utime + stime) | {per_scrape_ms:.1} ms, i.e. {:.3} % of one CPU at one scrape per {} s |\n\
         | `GET /profile?seconds={}&view=locks` | answered after {:.2} s, {:.0} KB |\n\
         | RSS after the scrapes and the /profile | {:.1} MB (peak {:.1} MB) |\n",
        r.recording_bytes as f64 / MB,
        r.series,
        r.body_bytes as f64 / 1e3,
        max(&r.scrape_ms),
        max(&r.queued_ms),
        r.scrape_ms.len(),
        per_scrape_ms / 10.0 / SCRAPE_INTERVAL.as_secs_f64(),
        SCRAPE_INTERVAL.as_secs(),
        r.profile.window_s,
        r.profile.wall_s,
        r.profile.bytes as f64 / 1e3,
        r.rss_mb,
        r.peak_rss_mb,
    );
    let mut cpu = String::from(
        "| window | command | wall | serve CPU (utime + stime) | % of one CPU | main thread on a CPU (schedstat) | scrapes | scrape p50 |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for w in &s.windows {
        cpu += &format!(
            "| {} | `{}` | {:.0} s | {:.2} s | {:.3} % | {:.1} ms ({:.4} %) | {} | {:.1} ms |\n",
            w.label,
            w.command,
            w.wall_s,
            w.cpu_s,
            w.pct(),
            w.on_cpu_s * 1e3,
            w.on_cpu_s / w.wall_s.max(1e-9) * 100.0,
            w.scrape_ms.len(),
            p50_p99(&w.scrape_ms).0
        );
    }
    cpu += &format!(
        "\nPeak RSS of the live serve: {:.1} MB.\n",
        s.live_peak_rss_mb
    );
    vec![
        ("serve-run", run),
        ("serve-targets", block(&targets)),
        ("serve-cpus", r.cpus.to_string()),
        ("serve-stacks", r.stacks.to_string()),
        ("serve-synth-said", format!("`{}`", r.synth_said)),
        ("serve-scrapes", r.scrape_ms.len().to_string()),
        ("serve-replay", block(&replay)),
        ("serve-window-secs", s.opts.window_secs.to_string()),
        (
            "serve-live-probes",
            if s.live_said.is_empty() {
                "unknown".into()
            } else {
                s.live_said.clone()
            },
        ),
        ("serve-cpu", block(&cpu)),
    ]
}

pub fn to_json(s: &Serve) -> Value {
    let r = &s.replayed;
    let (p50, p99) = p50_p99(&r.scrape_ms);
    json!({
        "date_utc": s.date_utc,
        "elapsed_s": s.elapsed_s,
        "load_before": s.load_before,
        "load_after": s.load_after,
        "others_busy": [s.busy.0, s.busy.1],
        "replayed": {
            "cpus": r.cpus, "stacks": r.stacks, "synth_said": r.synth_said,
            "recording_bytes": r.recording_bytes,
            "scrapes": r.scrape_ms.len(), "scrape_ms": r.scrape_ms,
            "scrape_p50_ms": p50, "scrape_p99_ms": p99,
            "render_ms": r.render_ms, "on_cpu_ms": r.on_cpu_ms, "queued_ms": r.queued_ms,
            "body_bytes": r.body_bytes, "series": r.series,
            "cpu_s": r.cpu_s,
            "profile": {"window_s": r.profile.window_s, "wall_s": r.profile.wall_s,
                        "bytes": r.profile.bytes},
            "rss_mb": r.rss_mb, "peak_rss_mb": r.peak_rss_mb,
        },
        "live": {
            "probes": s.live_said,
            "scrape_interval_s": SCRAPE_INTERVAL.as_secs(),
            "peak_rss_mb": s.live_peak_rss_mb,
            "windows": s.windows.iter().map(|w| json!({
                "label": w.label, "command": w.command, "wall_s": w.wall_s,
                "cpu_s": w.cpu_s, "cpu_pct": w.pct(), "on_cpu_s": w.on_cpu_s,
                "scrape_ms": w.scrape_ms,
            })).collect::<Vec<_>>(),
        },
        "targets": s.targets.iter().map(|t| json!({
            "what": t.what, "limit": t.limit, "measured": t.measured,
            "verdict": pass_fail(t),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn serve() -> Serve {
        let mut s = Serve {
            opts: Opts {
                scrapes: 4,
                window_secs: 120,
                cpus: 640,
            },
            date_utc: "today".into(),
            load_before: Some([1.0, 2.0, 3.0]),
            load_after: None,
            busy: (0, 1),
            replayed: Replayed {
                cpus: 640,
                stacks: 16384,
                synth_said: "wrote synthetic x.zprof (640 CPUs)".into(),
                recording_bytes: 1_300_000,
                scrape_ms: vec![40.0, 50.0, 60.0, 200.0],
                render_ms: vec![30.0, 35.0, 40.0, 45.0],
                on_cpu_ms: vec![15.0, 16.0, 17.0, 18.0],
                queued_ms: vec![1.0, 2.0, 3.0, 150.0],
                body_bytes: 420_000,
                series: 5713,
                cpu_s: 0.2,
                profile: ProfileRun {
                    window_s: 5,
                    wall_s: 5.3,
                    bytes: 600_000,
                },
                rss_mb: 30.0,
                peak_rss_mb: 40.0,
            },
            live_said: "7/12 probes attached".into(),
            windows: vec![
                Window {
                    label: "idle",
                    command: "sleep 120".into(),
                    wall_s: 120.0,
                    cpu_s: 0.06,
                    on_cpu_s: 0.0552,
                    scrape_ms: vec![5.0; 8],
                },
                Window {
                    label: "cross-cpu-pages",
                    command: "zoneprof workload cross-cpu-pages".into(),
                    wall_s: 120.0,
                    cpu_s: 1.8,
                    on_cpu_s: 1.7,
                    scrape_ms: vec![9.0; 8],
                },
            ],
            live_peak_rss_mb: 48.0,
            targets: Vec::new(),
            elapsed_s: 300.0,
        };
        s.targets = targets(&s);
        s
    }

    #[test]
    fn targets_judge_p99_peak_rss_and_each_window() {
        let s = serve();
        let v: Vec<&str> = s.targets.iter().map(pass_fail).collect();
        // p99 of [40, 50, 60, 200] is 195.8 ms; the loaded window used 1.5 %.
        assert_eq!(v, ["FAIL", "PASS", "PASS", "FAIL"]);
        assert!(
            s.targets[0].measured.starts_with("195.8 ms (p50 55.0 ms"),
            "{}",
            s.targets[0].measured
        );
        assert!(
            s.targets[2]
                .measured
                .starts_with("0.050 % (0.06 CPU s in 120 s, 8 scrapes)")
        );
    }

    #[test]
    fn proc_and_http_parsing() {
        let stat = "4242 (zoneprof (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 37 5 0 0 20 0 2 0";
        assert_eq!(stat_ticks(stat), Some(42));
        assert_eq!(stat_ticks("4242 (x) S 1"), None);
        let status = "Name:\tzoneprof\nVmHWM:\t   37300 kB\nVmRSS:\t   30100 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(37_300));
        assert_eq!(status_kib(status, "VmRSS"), Some(30_100));
        assert_eq!(status_kib(status, "VmSwap"), None);
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let (status, body) = split_response(raw).expect("response");
        assert_eq!((status, body), (200, &b"hello"[..]));
        assert!(split_response(b"garbage").is_err());
        let text = "# HELP x\nzoneprof_scrape_duration_seconds 0.056768605\n";
        assert_eq!(scrape_duration_s(text), Some(0.056768605));
        assert_eq!(schedstat("16542117 86618 12\n"), Some((16_542_117, 86_618)));
        assert_eq!(schedstat("x 1 2"), None);
        assert_eq!(p50_p99(&[]), (0.0, 0.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let (p50, p99) = p50_p99(&v);
        assert!((p50 - 50.5).abs() < 1e-9 && (p99 - 99.01).abs() < 1e-9);
    }

    /// The committed doc, the template every run fills.
    const DOC: &str = include_str!("../../../docs/benchmarks.md");

    #[test]
    fn values_fill_exactly_the_serve_spans_and_keep_the_rest() {
        let v = values(&serve());
        let mut got: Vec<&str> = v.iter().map(|(n, _)| *n).collect();
        got.sort_unstable();
        let mut want = SERVE_SPANS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(
            super::super::template::missing(DOC, SERVE_SPANS).expect("well-formed"),
            Vec::<&str>::new(),
            "docs/benchmarks.md lacks serve spans"
        );
        let doc = super::super::template::fill(DOC, &v).expect("fill");
        for want in [
            "| 640-CPU host (replayed): scrape time, p99 | < 100 ms | 195.8 ms",
            "| **FAIL** |",
            "load average before 1.00 / 2.00 / 3.00, after unknown",
            "(0 at its start, 1 at its end)",
            "| idle | `sleep 120` | 120 s | 0.06 s | 0.050 % | 55.2 ms (0.0460 %) | 8 | 5.0 ms |",
            "50.0 ms, i.e. 0.333 % of one CPU at one scrape per 15 s",
            "| scrapes over 100 ms | 1 of 4 |",
            "p50 2.5 ms, p99 145.6 ms, max 150.0 ms |",
        ] {
            assert!(doc.contains(want), "{want:?} missing");
        }
        // Only the serve spans changed.
        let others: Vec<&str> =
            [super::super::doc::SPANS, super::super::doc::OBSERVER_SPANS].concat();
        assert_eq!(super::super::template::fill(&doc, &[]).expect("same"), doc);
        for name in others {
            let open = format!("<!-- bench:{name} -->");
            let span = |d: &str| {
                let i = d.find(&open).map(|i| i + open.len());
                i.map(|i| {
                    d[i..]
                        .split("<!-- /bench:")
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
            };
            assert_eq!(span(&doc), span(DOC), "{name}");
        }
        assert!(
            to_json(&serve())["replayed"]["scrape_p99_ms"]
                .as_f64()
                .is_some()
        );
    }
}
