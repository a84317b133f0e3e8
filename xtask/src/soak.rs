//! `cargo xtask soak`: zoneprof under long reproducer load (a benchmark, not CI). The
//! cross-CPU page and tap reproducers run alternately for `--minutes` under `zoneprof
//! record -d` and/or `zoneprof serve` (scraped every 15 s), side by side; every 10 s each
//! zoneprof's RSS is sampled. Passes when each RSS is flat within 5 % after the warm-up
//! ([`checks::flatness`]) and every loss counter the kernel kept is reported, equal to the
//! kernel's (read from the process's own `COUNTERS` map, held open past its exit), in the
//! recording, the JSON report and /metrics, with what fitted plus what was lost adding up
//! to the kernel's totals. Writes `target/soak/results.json` (docs/soak.md).

mod bpf;
pub mod checks;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::tasks;
use crate::workspace::Workspace;
use checks::{Flatness, LossRow};

/// RSS sampling and /metrics scraping periods.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SCRAPE_EVERY: Duration = Duration::from_secs(15);
/// Each reproducer run before the other one takes over.
const CHUNK: Duration = Duration::from_secs(30);
/// RSS may grow this much after the warm-up.
const RSS_LIMIT_PCT: f64 = 5.0;
/// How long a zoneprof may take to load its probes, and to exit once asked.
const ATTACH_LIMIT: Duration = Duration::from_secs(180);
const EXIT_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum What {
    Record,
    Serve,
    /// `record` and `serve` side by side under the same load.
    Both,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub minutes: u32,
    pub what: What,
    /// Passed to every zoneprof as `--map-entries` (small maps force map-full losses).
    pub map_entries: Option<String>,
    pub no_build: bool,
}

/// One zoneprof under test.
struct Session {
    name: &'static str,
    child: Owned,
    pid: u32,
    counters: bpf::CountersMap,
    ready: Instant,
    /// (seconds since `ready`, KiB)
    rss: Vec<(f64, u64)>,
    log: PathBuf,
}

/// A child started in its own process group, killed with its group if it is still running
/// when dropped (a soak that failed half-way leaves nothing behind: a SIGKILLed zoneprof
/// leaves no probe attached).
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // SAFETY: killpg(2) on the process group of a child we started with its own
            // group; no memory is involved.
            unsafe { libc::killpg(self.0.id() as libc::pid_t, libc::SIGKILL) };
            self.0.wait().ok();
        }
    }
}

#[derive(Serialize)]
struct SessionResult {
    name: &'static str,
    rss_kib: Vec<(f64, u64)>,
    peak_rss_kib: Option<u64>,
    warmup_s: f64,
    samples_after_warmup: usize,
    baseline_kib: u64,
    end_max_kib: u64,
    growth_pct: f64,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct Results {
    minutes: u32,
    what: What,
    map_entries: Option<String>,
    zoneprof: PathBuf,
    rule: String,
    load: Vec<(String, u32)>,
    scrapes: usize,
    sessions: Vec<SessionResult>,
    losses: Vec<LossRow>,
    user_losses: BTreeMap<String, (Option<u64>, Option<u64>)>,
    /// What the recording holds: events seen and rows kept.
    record_seen: Vec<(String, u64)>,
    problems: Vec<String>,
    pass: bool,
}

pub fn run(ws: &Workspace, opts: &Opts) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("soak loads eBPF programs and runs the tap reproducer: run it as root");
    }
    if !opts.no_build {
        tasks::build(ws)?;
    }
    let bin = ws.release_bin()?;
    if !bin.is_file() {
        bail!("{} is missing: build it, or drop --no-build", bin.display());
    }
    let out = ws.target_dir()?.join("soak");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let run_s = f64::from(opts.minutes) * 60.0;
    let warmup = checks::warmup_s(run_s);
    println!(
        "==> soak: {} min under {}, RSS sampled every {} s (flat within {RSS_LIMIT_PCT} % after a {warmup:.0} s warm-up){}",
        opts.minutes,
        match opts.what {
            What::Record => "record",
            What::Serve => "serve",
            What::Both => "record and serve side by side",
        },
        SAMPLE_EVERY.as_secs(),
        opts.map_entries
            .as_deref()
            .map_or(String::new(), |m| format!(", --map-entries {m}"))
    );

    let mut problems = Vec::new();
    let record_path = out.join("record.zprof");
    let mut record = None;
    let mut serve = None;
    if matches!(opts.what, What::Record | What::Both) {
        let mut args = vec![
            "record".to_string(),
            "--no-progress".into(),
            "-d".into(),
            format!("{}m", opts.minutes),
            "-o".into(),
            record_path.to_string_lossy().into_owned(),
        ];
        args.extend(map_args(opts));
        let log = out.join("record.log");
        let child = spawn_logged(&bin, &args, &log)?;
        record = Some((child, log));
    }
    let mut serve_addr = None;
    if matches!(opts.what, What::Serve | What::Both) {
        let mut args = vec!["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(map_args(opts));
        let log = out.join("serve.log");
        let (child, addr) = spawn_serve(&bin, &args, &log)?;
        serve = Some((child, log));
        serve_addr = Some(addr);
    }
    let mut record = record
        .map(|(c, log)| attach("record", c, log))
        .transpose()?;
    let mut serve = serve.map(|(c, log)| attach("serve", c, log)).transpose()?;
    let addr = match serve_addr {
        Some(rx) => Some(
            rx.recv_timeout(ATTACH_LIMIT)
                .context("zoneprof serve did not say where it serves")?,
        ),
        None => None,
    };

    // The load, sampling and scraping, until `record`'s window closes (it opened after
    // its map appeared) or `--minutes` after serve was ready.
    let t0 = Instant::now();
    let run = Duration::from_secs(u64::from(opts.minutes) * 60);
    let deadline = t0 + run;
    let workload_log = out.join("workload.log");
    let mut load = Load::new(&bin, &workload_log)?;
    let mut next_sample = t0;
    let mut next_scrape = t0;
    let mut last_scrape: Option<BTreeMap<String, u64>> = None;
    let mut scrapes = 0;
    while Instant::now() < deadline {
        let now = Instant::now();
        load.step(deadline, &mut problems)?;
        if now >= next_sample {
            for s in record.iter_mut().chain(serve.iter_mut()) {
                // Inside record's window (it opens after `ready`), never in its read-back.
                if s.ready.elapsed() + Duration::from_secs(1) < run {
                    sample_rss(s);
                }
            }
            next_sample += SAMPLE_EVERY;
        }
        if let Some(addr) = &addr
            && now >= next_scrape
        {
            match scrape(addr) {
                Ok(text) => {
                    let m = checks::metrics_losses(&text);
                    if let Some(prev) = &last_scrape {
                        problems.extend(
                            checks::decreases(prev, &m)
                                .into_iter()
                                .map(|p| format!("serve: /metrics {p}")),
                        );
                    }
                    last_scrape = Some(m);
                    scrapes += 1;
                }
                Err(e) => problems.push(format!("serve: scrape failed: {e:#}")),
            }
            next_scrape += SCRAPE_EVERY;
        }
        for s in record.iter_mut().chain(serve.iter_mut()) {
            if let Some(st) = s.child.0.try_wait().context("waiting for zoneprof")? {
                bail!(
                    "zoneprof {} exited during the load ({}): see {}",
                    s.name,
                    crate::cmd::describe(st),
                    s.log.display()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    load.finish(&mut problems)?;
    println!("==> soak: load done ({})", load.summary());

    let mut losses: BTreeMap<&str, LossRow> = checks::LOSS_COUNTERS
        .iter()
        .map(|&(_, k)| {
            (
                k,
                LossRow {
                    key: k.into(),
                    ..LossRow::default()
                },
            )
        })
        .collect();
    let mut user_losses: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
    let mut sessions = Vec::new();
    let mut record_seen = Vec::new();

    if let (Some(s), Some(addr)) = (serve.as_mut(), addr.as_deref()) {
        // The last scrape, between two reads of the kernel's counters.
        let before = s.counters.read()?;
        let text = scrape(addr).context("the final scrape")?;
        let after = s.counters.read()?;
        std::fs::write(out.join("serve-final.metrics"), &text).context("saving the scrape")?;
        let m = checks::metrics_losses(&text);
        for &(i, k) in checks::LOSS_COUNTERS {
            if let Some(row) = losses.get_mut(k) {
                row.serve_kernel_before = Some(before[i as usize]);
                row.serve_kernel_after = Some(after[i as usize]);
                row.metrics = m.get(k).copied();
            }
        }
        for &k in checks::USER_LOSSES {
            user_losses.entry(k.into()).or_default().1 = m.get(k).copied();
            if !m.contains_key(k) {
                problems.push(format!("serve: {k} missing from /metrics"));
            }
        }
        let peak = stop_serve(s, &mut problems)?;
        sessions.push(session_result(s, Some(peak), warmup));
    }
    if let Some(s) = record.as_mut() {
        let (st, peak) = reap(&mut s.child, EXIT_LIMIT)?;
        if !st.success() {
            problems.push(format!(
                "record: exited with {}: see {}",
                crate::cmd::describe(st),
                s.log.display()
            ));
        }
        // Its programs are gone: the counters are final.
        let kernel = s.counters.read()?;
        record_seen = check_recording(
            &bin,
            &record_path,
            &kernel,
            &mut losses,
            &mut user_losses,
            &mut problems,
        )?;
        sessions.insert(0, session_result(s, Some(peak), warmup));
    }
    for row in losses.values() {
        problems.extend(row.problems());
    }
    for s in &sessions {
        problems.extend(s.problems.iter().map(|p| format!("{}: {p}", s.name)));
    }

    let results = Results {
        minutes: opts.minutes,
        what: opts.what,
        map_entries: opts.map_entries.clone(),
        zoneprof: bin.clone(),
        rule: format!(
            "RSS sampled every {} s; after a warm-up of max(60 s, 10 % of the run), the largest sample of the last half must be at most {RSS_LIMIT_PCT} % above the median of the first 3 samples after the warm-up",
            SAMPLE_EVERY.as_secs()
        ),
        load: load.runs.clone(),
        scrapes,
        sessions,
        losses: losses.into_values().collect(),
        user_losses,
        record_seen,
        pass: problems.is_empty(),
        problems,
    };
    let json = out.join("results.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&results).context("serializing the results")?,
    )
    .with_context(|| format!("writing {}", json.display()))?;
    print!("{}", summary(&results));
    println!("==> soak: results in {}", json.display());
    if !results.pass {
        bail!("soak FAILED: {}", results.problems.join("; "));
    }
    Ok(())
}

fn map_args(opts: &Opts) -> Vec<String> {
    opts.map_entries
        .iter()
        .flat_map(|m| ["--map-entries".to_string(), m.clone()])
        .collect()
}

/// Starts `bin args` in its own process group, stdout and stderr to `log`.
fn spawn_logged(bin: &Path, args: &[String], log: &Path) -> Result<Owned> {
    let f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let e = f.try_clone().context("duplicating the log descriptor")?;
    println!(
        "    $ {} {} > {}",
        bin.display(),
        args.join(" "),
        log.display()
    );
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(e)
        .process_group(0)
        .spawn()
        .map(Owned)
        .with_context(|| format!("starting {}", bin.display()))
}

/// Starts `zoneprof serve`; its stderr goes to `log` through a thread that also sends the
/// address it prints (`serving http://ADDR/metrics`).
fn spawn_serve(bin: &Path, args: &[String], log: &Path) -> Result<(Owned, mpsc::Receiver<String>)> {
    let mut f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    println!(
        "    $ {} {} 2> {}",
        bin.display(),
        args.join(" "),
        log.display()
    );
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map(Owned)
        .with_context(|| format!("starting {}", bin.display()))?;
    let pipe = child.0.stderr.take().context("serve's stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            writeln!(f, "{line}").ok();
            if let Some((_, rest)) = line.split_once("serving http://") {
                tx.send(rest.split('/').next().unwrap_or_default().to_string())
                    .ok();
            }
        }
    });
    Ok((child, rx))
}

/// Waits until the process has loaded its maps (its `COUNTERS` map is open), holding that.
fn attach(name: &'static str, mut child: Owned, log: PathBuf) -> Result<Session> {
    let pid = child.0.id();
    let start = Instant::now();
    loop {
        if let Some(counters) = bpf::CountersMap::find(pid)? {
            println!(
                "    {name}: pid {pid}, COUNTERS map id {} after {:.1} s",
                counters.id,
                start.elapsed().as_secs_f64()
            );
            return Ok(Session {
                name,
                child,
                pid,
                counters,
                ready: Instant::now(),
                rss: Vec::new(),
                log,
            });
        }
        if let Some(st) = child.0.try_wait().context("waiting for zoneprof")? {
            bail!(
                "zoneprof {name} exited before loading its probes ({}): see {}",
                crate::cmd::describe(st),
                log.display()
            );
        }
        if start.elapsed() > ATTACH_LIMIT {
            bail!(
                "zoneprof {name} loaded nothing in {} s",
                ATTACH_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    checks::status_kib(&s, field)
}

fn sample_rss(s: &mut Session) {
    if let Some(kib) = status_kib(s.pid, "VmRSS") {
        s.rss.push((s.ready.elapsed().as_secs_f64(), kib));
    }
}

fn session_result(s: &Session, peak: Option<u64>, warmup: f64) -> SessionResult {
    let f: Flatness = checks::flatness(&s.rss, warmup, RSS_LIMIT_PCT);
    SessionResult {
        name: s.name,
        rss_kib: s.rss.clone(),
        peak_rss_kib: peak,
        warmup_s: f.warmup_s,
        samples_after_warmup: f.samples,
        baseline_kib: f.baseline_kib,
        end_max_kib: f.end_max_kib,
        growth_pct: f.growth_pct,
        problems: f.failure.into_iter().collect(),
    }
}

/// One GET /metrics (HTTP/1.1, `Connection: close`): the body.
fn scrape(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .context("sending the request")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).context("reading the response")?;
    let Some((head, body)) = raw.split_once("\r\n\r\n") else {
        bail!("not an HTTP response");
    };
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}

fn wait_exit(child: &mut Child, limit: Duration) -> Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().context("waiting for zoneprof")? {
            return Ok(st);
        }
        if start.elapsed() > limit {
            bail!("zoneprof did not exit within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to `limit`) for a zoneprof to exit: how, and its peak RSS over its life in
/// KiB (`ru_maxrss`: start-up and read-back included), which /proc no longer has.
fn reap(child: &mut Owned, limit: Duration) -> Result<(ExitStatus, u64)> {
    use std::os::unix::process::ExitStatusExt as _;
    let pid = child.0.id() as libc::pid_t;
    let start = Instant::now();
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting on our own child's pid with valid out-pointers. Reaped here,
        // the `Child` no longer finds it (ECHILD), so `Owned` kills nothing later.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            return Ok((
                ExitStatus::from_raw(status),
                u64::try_from(usage.ru_maxrss).unwrap_or(0),
            ));
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("waiting for zoneprof");
            }
        }
        if start.elapsed() > limit {
            bail!("zoneprof did not exit within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, as an operator stops it: exit 0 within 30 s. Its peak RSS.
fn stop_serve(s: &mut Session, problems: &mut Vec<String>) -> Result<u64> {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(s.pid as libc::pid_t, libc::SIGTERM) };
    let (st, peak) = reap(&mut s.child, Duration::from_secs(30))?;
    if !st.success() {
        problems.push(format!(
            "serve: SIGTERM ended it with {}, not 0: see {}",
            crate::cmd::describe(st),
            s.log.display()
        ));
    }
    Ok(peak)
}

/// The recording against the kernel's final counters; its reports; what fitted plus what
/// was lost against the kernel's totals. Returns what it saw and kept.
fn check_recording(
    bin: &Path,
    path: &Path,
    kernel: &[u64],
    losses: &mut BTreeMap<&str, LossRow>,
    user_losses: &mut BTreeMap<String, (Option<u64>, Option<u64>)>,
    problems: &mut Vec<String>,
) -> Result<Vec<(String, u64)>> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    )
    .read_to_end(&mut raw)
    .with_context(|| format!("decompressing {}", path.display()))?;
    let rec: Value =
        serde_json::from_slice(&raw).with_context(|| format!("parsing {}", path.display()))?;
    let report = zoneprof_out(bin, &["report", "--format", "json"], path)?;
    let report: Value = serde_json::from_str(&report).context("parsing the JSON report")?;
    let text = zoneprof_out(bin, &["report"], path)?;
    let counters = &rec["counters"];
    for &(i, k) in checks::LOSS_COUNTERS {
        if let Some(row) = losses.get_mut(k) {
            row.record_kernel = Some(kernel[i as usize]);
            row.recording = counters[k].as_u64();
            row.report = report["losses"][k].as_u64();
        }
    }
    for &(i, k) in checks::EVENT_COUNTERS {
        let Some(k) = k else { continue };
        let (kv, rv) = (kernel[i as usize], counters[k].as_u64());
        if rv != Some(kv) {
            problems.push(format!(
                "record: {k} is {rv:?} in the recording, {kv} in the kernel"
            ));
        }
    }
    for &k in checks::USER_LOSSES {
        user_losses.entry(k.into()).or_default().0 = counters[k].as_u64();
    }
    // The text report lists every non-zero loss, one line each.
    let nonzero = checks::nonzero_losses(&report["losses"]);
    let listed = checks::text_losses(&text);
    if listed != nonzero {
        problems.push(format!(
            "record: the text report lists {listed} losses, the JSON has {nonzero} non-zero"
        ));
    }
    problems.extend(checks::conservation(&rec));
    let rows = |t: &str| rec[t].as_array().map_or(0, |a| a.len() as u64);
    Ok(vec![
        (
            "contentions".into(),
            counters["contention_end"].as_u64().unwrap_or(0),
        ),
        (
            "SKB frees".into(),
            counters["skb_frees"].as_u64().unwrap_or(0),
        ),
        ("(lock, stack, CPU) rows".into(), rows("lock_waits")),
        ("stacks".into(), rows("stacks")),
        ("histogram rows".into(), rows("wait_hist")),
        ("SKB site rows".into(), rows("skb_sites")),
    ])
}

fn zoneprof_out(bin: &Path, args: &[&str], path: &Path) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .arg(path)
        .output()
        .with_context(|| format!("running zoneprof {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "zoneprof {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The reproducers, alternately, in bounded runs.
struct Load<'a> {
    bin: &'a Path,
    log: File,
    current: Option<(Owned, &'static str)>,
    next_is_tap: bool,
    tap_broken: bool,
    /// Runs per reproducer that ended well.
    runs: Vec<(String, u32)>,
}

impl<'a> Load<'a> {
    fn new(bin: &'a Path, log: &Path) -> Result<Load<'a>> {
        Ok(Load {
            bin,
            log: File::create(log).with_context(|| format!("creating {}", log.display()))?,
            current: None,
            next_is_tap: false,
            tap_broken: false,
            runs: Vec::new(),
        })
    }

    /// Starts the next run when none is running and there is time left.
    fn step(&mut self, deadline: Instant, problems: &mut Vec<String>) -> Result<()> {
        if let Some((c, what)) = &mut self.current {
            let Some(st) = c.0.try_wait().context("waiting for the reproducer")? else {
                return Ok(());
            };
            let what = *what;
            self.current = None;
            self.ended(what, st, problems);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(2) {
            return Ok(());
        }
        let secs = left.min(CHUNK).as_secs().max(1);
        let tap = self.next_is_tap && !self.tap_broken;
        self.next_is_tap = !self.next_is_tap;
        let (what, args): (&'static str, Vec<String>) = if tap {
            (
                "tap",
                vec![
                    "workload".into(),
                    "tap".into(),
                    "--sender-cpus".into(),
                    "0".into(),
                    "--reader-cpus".into(),
                    "1".into(),
                ],
            )
        } else {
            (
                "cross-cpu-pages",
                vec![
                    "workload".into(),
                    "cross-cpu-pages".into(),
                    "--alloc-cpus".into(),
                    "0".into(),
                    "--free-cpus".into(),
                    "1".into(),
                ],
            )
        };
        let out = self
            .log
            .try_clone()
            .context("duplicating the log descriptor")?;
        let err = self
            .log
            .try_clone()
            .context("duplicating the log descriptor")?;
        let child = Command::new(self.bin)
            .args(&args)
            .args(["-d", &format!("{secs}s")])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .context("starting a reproducer")?;
        self.current = Some((Owned(child), what));
        Ok(())
    }

    fn ended(&mut self, what: &'static str, st: ExitStatus, problems: &mut Vec<String>) {
        if st.success() {
            match self.runs.iter_mut().find(|(w, _)| w == what) {
                Some((_, n)) => *n += 1,
                None => self.runs.push((what.into(), 1)),
            }
        } else if what == "tap" {
            // Loud, not fatal: the page reproducer carries on alone.
            self.tap_broken = true;
            problems.push(format!(
                "tap reproducer failed ({}): the rest of the load is pages only (target/soak/workload.log)",
                crate::cmd::describe(st)
            ));
        } else {
            problems.push(format!(
                "{what} reproducer failed ({}): see target/soak/workload.log",
                crate::cmd::describe(st)
            ));
        }
    }

    /// Waits for the last run (it ends by its own duration), then stops.
    fn finish(&mut self, problems: &mut Vec<String>) -> Result<()> {
        if let Some((mut c, what)) = self.current.take() {
            // Dropping `c` kills an overrun.
            let st = wait_exit(&mut c.0, CHUNK + Duration::from_secs(60))
                .with_context(|| format!("the {what} reproducer overran"))?;
            self.ended(what, st, problems);
        }
        Ok(())
    }

    fn summary(&self) -> String {
        self.runs
            .iter()
            .map(|(w, n)| format!("{n} × {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The summary table: RSS per session, every loss counter in every view, the verdict.
fn summary(r: &Results) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    writeln!(
        s,
        "\nRSS ({}; peak: ru_maxrss over the whole life, start-up and read-back included)",
        r.rule
    )
    .ok();
    writeln!(
        s,
        "  {:<7} {:>8} {:>11} {:>11} {:>8} {:>11} {:>11} {:>11}",
        "session", "samples", "after warm", "last half", "growth", "min", "max", "peak"
    )
    .ok();
    for x in &r.sessions {
        let min = x.rss_kib.iter().map(|s| s.1).min().unwrap_or(0);
        let max = x.rss_kib.iter().map(|s| s.1).max().unwrap_or(0);
        writeln!(
            s,
            "  {:<7} {:>8} {:>11} {:>11} {:>7.1}% {:>11} {:>11} {:>11}",
            x.name,
            x.rss_kib.len(),
            mib(x.baseline_kib),
            mib(x.end_max_kib),
            x.growth_pct,
            mib(min),
            mib(max),
            x.peak_rss_kib.map_or_else(|| "-".into(), mib)
        )
        .ok();
    }
    writeln!(
        s,
        "\nLosses (record: kernel after detach = recording = JSON report; serve: kernel before ≤ /metrics ≤ kernel after)"
    )
    .ok();
    writeln!(
        s,
        "  {:<20} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "loss", "rec kernel", "recording", "report", "srv before", "metrics", "srv after"
    )
    .ok();
    for l in &r.losses {
        writeln!(
            s,
            "  {:<20} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            l.key,
            opt(l.record_kernel),
            opt(l.recording),
            opt(l.report),
            opt(l.serve_kernel_before),
            opt(l.metrics),
            opt(l.serve_kernel_after)
        )
        .ok();
    }
    for (k, (rec, met)) in &r.user_losses {
        writeln!(
            s,
            "  {:<20} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            k,
            "(userspace)",
            opt(*rec),
            "",
            "",
            opt(*met),
            ""
        )
        .ok();
    }
    if !r.record_seen.is_empty() {
        let seen: Vec<String> = r
            .record_seen
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(s, "\nThe recording: {}", seen.join(", ")).ok();
    }
    writeln!(
        s,
        "\nLoad: {}; {} scrapes",
        r.load
            .iter()
            .map(|(w, n)| format!("{n} × {w}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.scrapes
    )
    .ok();
    for p in &r.problems {
        writeln!(s, "  FAIL: {p}").ok();
    }
    writeln!(s, "{}", if r.pass { "PASS" } else { "FAIL" }).ok();
    s
}
