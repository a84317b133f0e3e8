//! `zoneprof` command line. Exit status: 0 success, 1 runtime error (one line on stderr),
//! 2 usage error.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use zoneprof::{
    capture::session::{self, RecordOpts},
    kernel::cpulist::parse_cpu_list,
    model::recording::Recording,
    model::units::{self, parse_duration},
    output::report,
    workload,
};

#[derive(Parser)]
#[command(
    name = "zoneprof",
    version,
    about = "Who spins on the page allocator's zone->lock, on which CPU, and why",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record the whole host (needs root) until the duration ends, Ctrl-C, or COMMAND exits.
    Record(RecordArgs),
    /// Check what this host offers: privileges, tracefs, BTF, kprobes, fentry, every probe.
    /// Exit status 0 when a useful recording is possible, 1 otherwise.
    Doctor {
        #[arg(long, value_enum, default_value = "text")]
        format: DoctorFormat,
        /// Instead: load and attach every method of every probe on its own (kprobe, fentry,
        /// tracepoint, raw tracepoint; each target), then detach; exit 1 if the verifier
        /// rejects any program.
        #[arg(long)]
        methods: bool,
    },
    /// Report a recording: zone-lock wait per CPU split alloc/free, stacks, PCP traffic.
    Report(ReportArgs),
    /// Built-in reproducers.
    Workload {
        #[command(subcommand)]
        w: WorkloadCmd,
    },
    /// Record the built-in cross-CPU reproducer and print its report.
    Demo(DemoArgs),
    /// Flamegraph (SVG, or folded stacks) of a recording's lock waits, SKB frees or PCP pages.
    Flamegraph(FlamegraphArgs),
    /// Compare two recordings (before/after a fix): every headline per second, a verdict,
    /// differential flamegraphs.
    Compare(CompareArgs),
    /// Copy a recording with its kernel addresses replaced and its hostname hashed, fit to
    /// share (every view works on it).
    Redact(RedactArgs),
    /// Export a recording for other tools: pprof (go tool pprof, Pyroscope, Parca),
    /// speedscope, folded stacks, or CSV tables.
    Export(ExportArgs),
    /// Stay attached (needs root) and serve the live aggregates as Prometheus metrics on
    /// GET /metrics, and a pprof of the next N seconds on GET /profile?seconds=N, until
    /// SIGINT or SIGTERM detaches the probes.
    Serve(ServeArgs),
    /// Watch zone-lock wait, PCP pages and remote SKB frees live, full screen (needs root);
    /// keys: s sort, p pause, q quit. Not a terminal, or --once: one plain snapshot.
    Top(TopArgs),
}

#[derive(Args)]
struct RecordArgs {
    /// How long to record ("10s", "500ms", "2m"). Default: 10s, or until COMMAND exits.
    #[arg(short, long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Recording file to write (atomically).
    #[arg(short, long, default_value = "zoneprof.zprof")]
    output: PathBuf,
    /// Record only these CPUs, e.g. "0-3,8".
    #[arg(long, value_parser = parse_cpus)]
    cpus: Option<Cpus>,
    /// No live progress line.
    #[arg(long)]
    no_progress: bool,
    /// Also follow sampled pages from allocation to free (page alloc-CPU x free-CPU
    /// matrix, lifetimes, orders). Costs a program run on every page alloc and free.
    #[arg(long)]
    page_flows: bool,
    /// Also key lock waits and SKB frees by thread, and name each thread's process and
    /// cgroup: for `report --by task|cgroup` and `flamegraph --per-task|--per-cgroup`.
    #[arg(long)]
    tasks: bool,
    /// Attach with this method only (auto: each probe's preferred method that works, e.g.
    /// raw tracepoint, then tracepoint for kernel events; tracepoint, then fentry, then
    /// kprobe for SKB frees). tracepoint means classic tracepoints only.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Attach only these probes (comma-separated names, as `zoneprof doctor` lists them),
    /// e.g. `contention_begin,contention_end` for lock waits alone. Opt-in probes still
    /// need their option.
    #[arg(long, value_delimiter = ',', value_parser = parse_probe)]
    probes: Option<Vec<String>>,
    /// How PCP refills and drains are counted: auto (per batch, outside zone->lock, where
    /// the kernel has a hook for it; else per page), batch (per batch only), page (per
    /// page, with the `kmem:` tracepoints that fire under zone->lock), off (not counted:
    /// no PCP program runs under zone->lock).
    #[arg(long, value_enum, default_value = "auto")]
    pcp: PcpArg,
    /// Track one page in N (by a hash of its pfn or struct page address) with --page-flows.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    page_sample: u32,
    #[command(flatten)]
    maps: MapEntriesArg,
    /// Command to run while recording; its output passes through unchanged.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, IP:PORT (port 0: any free port, printed at start). Loopback
    /// unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:9466")]
    listen: std::net::SocketAddr,
    /// Allow --listen on a non-loopback address: the metrics name kernel functions and
    /// the host's activity; put a firewall or a proxy in front.
    #[arg(long)]
    allow_remote: bool,
    /// One series per CPU (on), or summed over CPUs (off: bounds the series on large hosts).
    #[arg(long, value_enum, default_value = "on")]
    per_cpu: OnOff,
    /// SKB free sites with series of their own (the first seen, largest first); the rest
    /// are summed as caller="other".
    #[arg(long, default_value_t = 20)]
    skb_sites: usize,
    /// Record only these CPUs, e.g. "0-3,8".
    #[arg(long, value_parser = parse_cpus)]
    cpus: Option<Cpus>,
    /// Also write each interval of this length as a recording in --dir (for `compare`).
    #[arg(long, value_parser = parse_duration, requires = "dir")]
    rotate: Option<Duration>,
    /// Rolling recordings kept (the oldest are removed).
    #[arg(long, default_value_t = 144, value_parser = clap::value_parser!(u32).range(1..), requires = "rotate")]
    keep: u32,
    /// Directory of the rolling recordings (created if missing).
    #[arg(long, requires = "rotate")]
    dir: Option<PathBuf>,
    /// Also key lock waits and SKB frees by thread, as `record --tasks`: /metrics gains
    /// per-cgroup series (never per thread), and the rolling recordings and /profile's
    /// windows can be read with `report --by task|cgroup`.
    #[arg(long)]
    tasks: bool,
    #[command(flatten)]
    maps: MapEntriesArg,
    /// Benchmark aid (`cargo xtask bench`): serve this recording, e.g. a synthetic 640-CPU
    /// one from zoneprof-synth, at its own rates (counts grow with time) instead of
    /// attaching probes.
    #[arg(long, hide = true, value_name = "REC", conflicts_with = "cpus")]
    replay: Option<PathBuf>,
}

#[derive(Args)]
struct TopArgs {
    /// Time between refreshes ("1s", "500ms").
    #[arg(short, long, value_parser = parse_duration, default_value = "1s")]
    interval: Duration,
    /// Print one plain-text snapshot after one interval and exit (also when stdout is not
    /// a terminal).
    #[arg(long)]
    once: bool,
    /// Watch only these CPUs, e.g. "0-3,8".
    #[arg(long, value_parser = parse_cpus)]
    cpus: Option<Cpus>,
    /// Also key lock waits and SKB frees by thread (as `record --tasks`) and show the top
    /// threads, with their cgroups.
    #[arg(long)]
    tasks: bool,
    #[command(flatten)]
    maps: MapEntriesArg,
}

/// `--map-entries`, shared by the commands that load the probes.
#[derive(Args)]
struct MapEntriesArg {
    /// Entries of the in-kernel aggregation maps, MAP=N (1 to 16777216), comma-separated
    /// or repeated; maps: lock-stats, stacks, hist, task-wait, zone-cache, skb-matrix,
    /// skb-sites, page-track, page-matrix, tasks. Raise them when a report shows a map-full loss
    /// (large hosts); the others keep their defaults (README).
    #[arg(long, value_name = "MAP=N", value_delimiter = ',', value_parser = parse_map_entry)]
    map_entries: Vec<(&'static str, u32)>,
}

impl MapEntriesArg {
    /// The sizes, or the one-line usage error of a map named twice (exit 2).
    fn sizes(&self) -> Result<zoneprof::kernel::map_entries::MapEntries, ExitCode> {
        zoneprof::kernel::map_entries::MapEntries::new(&self.map_entries).map_err(|e| {
            eprintln!("zoneprof: error: --map-entries: {e}");
            ExitCode::from(2)
        })
    }
}

fn parse_map_entry(s: &str) -> Result<(&'static str, u32), String> {
    zoneprof::kernel::map_entries::parse_one(s).map_err(|e| e.to_string())
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum DoctorFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum PcpArg {
    Auto,
    Batch,
    Page,
    Off,
}

impl From<PcpArg> for zoneprof::kernel::probes::PcpMode {
    fn from(p: PcpArg) -> Self {
        match p {
            PcpArg::Auto => Self::Auto,
            PcpArg::Batch => Self::Batch,
            PcpArg::Page => Self::Page,
            PcpArg::Off => Self::Off,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
    RawTracepoint,
}

impl From<BackendArg> for zoneprof::kernel::probes::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => Self::Auto,
            BackendArg::Fentry => Self::Fentry,
            BackendArg::Kprobe => Self::Kprobe,
            BackendArg::Tracepoint => Self::Tracepoint,
            BackendArg::RawTracepoint => Self::RawTracepoint,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    /// One self-contained HTML file (needs no network).
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum ByArg {
    Cpu,
    Task,
    Cgroup,
}

impl From<ByArg> for zoneprof::model::tasks::By {
    fn from(b: ByArg) -> Self {
        use zoneprof::model::tasks::By;
        match b {
            ByArg::Cpu => By::Cpu,
            ByArg::Task => By::Task,
            ByArg::Cgroup => By::Cgroup,
        }
    }
}

#[derive(Args)]
struct ReportArgs {
    /// Recording written by `zoneprof record`.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: ReportFormat,
    /// Rows in the top-stacks and top-locks tables.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Break lock wait down by CPU, by thread (with its SKB frees) or by cgroup; task and
    /// cgroup need a recording made with `record --tasks`. JSON always holds all three.
    #[arg(long, value_enum, default_value = "cpu")]
    by: ByArg,
    /// Output file. Default: stdout; for html, <recording stem>.html beside the recording.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Report a redacted copy (as `zoneprof redact` writes): no kernel addresses, hostname
    /// hashed, recording named by its file name only.
    #[arg(long)]
    redact: bool,
}

#[derive(Args)]
struct RedactArgs {
    /// Recording written by `zoneprof record`.
    file: PathBuf,
    /// Redacted recording to write. Default: <recording stem>.redacted.zprof beside it.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum WorkloadCmd {
    /// Pages allocated on the alloc CPUs and freed on the free CPUs (one process per pair).
    CrossCpuPages(CrossCpuArgs),
    /// One alloc/free pair (internal: run by cross-cpu-pages in a child process).
    #[command(name = "__pair", hide = true)]
    Pair(PairArgs),
    /// SKBs built on the sender CPUs, freed on the reader CPUs in tun_do_read (needs root).
    Tap(TapArgs),
}

#[derive(Args)]
struct CrossCpuArgs {
    #[arg(long, value_parser = parse_cpus, default_value = "0")]
    alloc_cpus: Cpus,
    #[arg(long, value_parser = parse_cpus, default_value = "1")]
    free_cpus: Cpus,
    /// Free each chunk on the CPU that allocated it (the "after" case).
    #[arg(long)]
    same_cpu: bool,
    #[arg(short, long, value_parser = parse_duration, default_value = "5s")]
    duration: Duration,
    /// Size of each mapped chunk in KiB.
    #[arg(long, default_value_t = 4096)]
    chunk_kib: u32,
}

#[derive(Args)]
struct PairArgs {
    #[arg(long)]
    alloc_cpu: u32,
    /// Equal to --alloc-cpu for a same-CPU pair.
    #[arg(long)]
    free_cpu: u32,
    #[arg(long)]
    duration_ms: u64,
    #[arg(long)]
    chunk_kib: u32,
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for the recordings and reports.
    #[arg(short, long, default_value = "zoneprof-demo")]
    output: PathBuf,
    /// Length of each recorded workload.
    #[arg(short, long, value_parser = parse_duration, default_value = "4s")]
    duration: Duration,
}

/// A CPU list argument ("0-3,8"). A newtype, because clap treats a `Vec<u32>` field as
/// repeated values rather than one parsed list.
#[derive(Clone, Debug)]
struct Cpus(Vec<u32>);

fn parse_cpus(s: &str) -> Result<Cpus, String> {
    parse_cpu_list(s).map(Cpus).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zoneprof: error: {}", error_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but a cause already quoted by the
/// message above it (errors that print their `source`, as most here do) is not repeated:
/// `cannot read recording x: No such file or directory (os error 2)`, once.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Record(a) => cmd_record(a),
        Cmd::Doctor {
            format,
            methods: true,
        } => {
            let m = zoneprof::kernel::doctor::methods()?;
            match format {
                DoctorFormat::Text => print!("{}", zoneprof::kernel::doctor::methods_text(&m)),
                DoctorFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&m).context("serializing the method trials")?
                ),
            }
            Ok(if m.rejected().next().is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Doctor { format, .. } => {
            let d = zoneprof::kernel::doctor::run();
            match format {
                DoctorFormat::Text => print!("{}", zoneprof::kernel::doctor::to_text(&d)),
                DoctorFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&d).context("serializing the doctor report")?
                ),
            }
            Ok(if d.recording_useful {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Report(a) => cmd_report(a),
        Cmd::Workload { w } => cmd_workload(w),
        Cmd::Demo(a) => cmd_demo(a),
        Cmd::Flamegraph(a) => cmd_flamegraph(a),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Redact(a) => cmd_redact(a),
        Cmd::Export(a) => cmd_export(a),
        Cmd::Serve(a) => cmd_serve(a),
        Cmd::Top(a) => cmd_top(a),
    }
}

fn parse_probe(s: &str) -> Result<String, String> {
    let names = zoneprof::kernel::probes::probe_names();
    if names.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown probe {s:?} (probes: {})",
            names.join(", ")
        ))
    }
}

fn cmd_record(a: RecordArgs) -> Result<ExitCode> {
    let map_entries = match a.maps.sizes() {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    // A read-only or missing output directory fails now, not after the recording (a
    // missing privilege first: it is what the user must fix first).
    zoneprof::kernel::attach::check_privileges()?;
    zoneprof::output::atomic::check_writable(&a.output)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    // And a command that cannot run, before a single probe is loaded.
    if let Some(cmd) = a.command.first() {
        check_command(cmd).with_context(|| format!("cannot run command {cmd:?}"))?;
    }
    let opts = RecordOpts {
        duration: a.duration,
        output: a.output.clone(),
        cpus: a.cpus.map(|c| c.0),
        command: a.command,
        progress: !a.no_progress,
        plan: zoneprof::kernel::attach::PlanOpts {
            page_flows: a.page_flows,
            page_sample: a.page_sample,
            backend: a.backend.into(),
            only: a.probes,
            pcp: a.pcp.into(),
            map_entries,
            tasks: a.tasks,
        },
    };
    let out = runtime()?.block_on(session::record(opts))?;
    print_record_summary(&a.output, &out);
    Ok(command_exit_code(out.command_status, out.command_outlived))
}

fn cmd_serve(a: ServeArgs) -> Result<ExitCode> {
    let map_entries = match a.maps.sizes() {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    if !a.listen.ip().is_loopback() && !a.allow_remote {
        eprintln!(
            "zoneprof: error: --listen {} is not a loopback address; add --allow-remote to serve the metrics beyond this host",
            a.listen
        );
        return Ok(ExitCode::from(2));
    }
    let opts = zoneprof::serve::ServeOpts {
        listen: a.listen,
        metrics: zoneprof::output::prometheus::MetricsOpts {
            per_cpu: a.per_cpu == OnOff::On,
            skb_sites: a.skb_sites,
        },
        live: zoneprof::capture::live::LiveOpts {
            cpus: a.cpus.map(|c| c.0),
            plan: zoneprof::kernel::attach::PlanOpts {
                map_entries,
                tasks: a.tasks,
                ..Default::default()
            },
        },
        rotate: match (a.rotate, a.dir) {
            (Some(every), Some(dir)) if !every.is_zero() => Some(zoneprof::serve::rotate::Rotate {
                every,
                keep: a.keep as usize,
                dir,
            }),
            (Some(_), _) => {
                eprintln!("zoneprof: error: --rotate needs a duration longer than 0 and --dir");
                return Ok(ExitCode::from(2));
            }
            (None, _) => None,
        },
        replay: a.replay,
    };
    runtime()?.block_on(zoneprof::serve::serve(opts))?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_top(a: TopArgs) -> Result<ExitCode> {
    let map_entries = match a.maps.sizes() {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    if a.interval.is_zero() {
        eprintln!("zoneprof: error: --interval must be longer than 0");
        return Ok(ExitCode::from(2));
    }
    let opts = zoneprof::top::TopOpts {
        interval: a.interval,
        once: a.once,
        live: zoneprof::capture::live::LiveOpts {
            cpus: a.cpus.map(|c| c.0),
            plan: zoneprof::kernel::attach::PlanOpts {
                map_entries,
                tasks: a.tasks,
                ..Default::default()
            },
        },
    };
    runtime()?.block_on(zoneprof::top::top(opts))?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `cmd` names an executable: a path, or a name found in PATH (as the spawn will
/// look it up).
fn check_command(cmd: &str) -> Result<()> {
    let executable = |p: &std::path::Path| -> std::io::Result<bool> {
        use std::os::unix::ffi::OsStrExt;
        let m = std::fs::metadata(p)?;
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return Ok(false);
        };
        // SAFETY: a valid NUL-terminated path that outlives the call.
        let x = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
        Ok(m.is_file() && x)
    };
    if cmd.contains('/') {
        if !executable(std::path::Path::new(cmd))? {
            bail!("not an executable file");
        }
        return Ok(());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| executable(&d.join(cmd)).unwrap_or(false)) {
        Ok(())
    } else {
        bail!("not found in PATH")
    }
}

/// With a COMMAND, zoneprof exits as it did (128 + N when signal N ended it), after the
/// recording is written: `zoneprof record -- make test` fails when the tests do. A command
/// that outlived the signal which ended the recording has no status: zoneprof exits
/// 128 + that signal, as the shell reports a job the signal stopped.
fn command_exit_code(status: Option<std::process::ExitStatus>, outlived: Option<i32>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let Some(s) = status else {
        return match outlived {
            Some(sig) => ExitCode::from(128u8.wrapping_add(sig as u8)),
            None => ExitCode::SUCCESS,
        };
    };
    match (s.code(), s.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        (None, None) => ExitCode::from(1),
    }
}

fn print_record_summary(path: &std::path::Path, out: &session::RecordOutcome) {
    let r = &out.recording;
    let attached = r.probes.iter().filter(|p| p.attached).count();
    eprintln!(
        "zoneprof: wrote {} ({:.2} s, {}/{} probes attached, {} contentions, {} PCP refill pages, {} drain pages)",
        path.display(),
        r.duration_s(),
        attached,
        r.probes.len(),
        units::fmt_count(r.counters.contention_end),
        units::fmt_count(r.pcp.iter().map(|p| p.refill_pages).sum()),
        units::fmt_count(r.pcp.iter().map(|p| p.drain_pages).sum()),
    );
    if let Some(s) = out.command_status {
        use std::os::unix::process::ExitStatusExt;
        match s.code() {
            Some(c) => eprintln!("zoneprof: command exited with status {c}"),
            // std says "signal: 9 (SIGKILL)"
            None => eprintln!(
                "zoneprof: command killed by signal {}{}",
                s.signal().map_or(String::new(), |n| n.to_string()),
                s.to_string()
                    .split_once('(')
                    .map_or(String::new(), |(_, name)| format!(" ({name}"))
            ),
        }
    }
}

/// Reads a recording, redacted when asked; and how the views name it: its path, or under
/// --redact its file name alone (directories can name users and hosts).
fn load(path: &std::path::Path, redact: bool) -> Result<(Recording, String)> {
    let rec = Recording::read(path)?;
    if !redact {
        return Ok((rec, path.display().to_string()));
    }
    let (rec, _) = zoneprof::model::redact::redact(&rec)?;
    let name = path
        .file_name()
        .map_or_else(|| "recording".into(), |n| n.to_string_lossy().into_owned());
    Ok((rec, name))
}

fn cmd_redact(a: RedactArgs) -> Result<ExitCode> {
    let rec = Recording::read(&a.file)?;
    let (red, sum) = zoneprof::model::redact::redact(&rec)?;
    let out = a.output.unwrap_or_else(|| {
        let stem = a
            .file
            .file_stem()
            .map_or_else(|| "zoneprof".into(), |s| s.to_string_lossy().into_owned());
        a.file.with_file_name(format!("{stem}.redacted.zprof"))
    });
    red.write_atomic(&out)?;
    eprintln!(
        "zoneprof: wrote {} ({} kernel address(es) replaced, hostname {}, {} cgroup path(s) hashed)",
        out.display(),
        sum.addresses,
        if sum.hostname_hashed {
            "hashed"
        } else {
            "already hashed"
        },
        sum.cgroups
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_report(a: ReportArgs) -> Result<ExitCode> {
    let (rec, source) = load(&a.file, a.redact)?;
    let by = a.by.into();
    if let Err(e) = zoneprof::model::tasks::check(&rec, by) {
        eprintln!("zoneprof: error: {}: {e}", a.file.display());
        return Ok(ExitCode::from(2));
    }
    let doc = match a.format {
        ReportFormat::Text => report::to_text_by(&report::build(&rec, a.top), a.top, by),
        ReportFormat::Json => report::to_json(&report::build(&rec, a.top)) + "\n",
        ReportFormat::Html => zoneprof::output::html::report_html_by(&rec, a.top, &source, by)?,
    };
    let output = match a.format {
        ReportFormat::Html => Some(a.output.unwrap_or_else(|| a.file.with_extension("html"))),
        _ => a.output,
    };
    write_doc(output.as_deref(), &doc)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_workload(w: WorkloadCmd) -> Result<ExitCode> {
    match w {
        WorkloadCmd::CrossCpuPages(a) => {
            let opts = workload::CrossCpuPagesOpts {
                alloc_cpus: a.alloc_cpus.0,
                free_cpus: a.free_cpus.0,
                same_cpu: a.same_cpu,
                duration: a.duration,
                chunk_kib: a.chunk_kib,
            };
            let r = workload::run_cross_cpu_pages(&opts, &["workload", "__pair"])?;
            println!(
                "cross-cpu-pages: {} pair(s), {} mode, {} in {:.2} s: {}",
                r.pairs,
                if opts.same_cpu {
                    "same-CPU"
                } else {
                    "cross-CPU"
                },
                units::fmt_bytes(r.bytes),
                r.elapsed.as_secs_f64(),
                units::fmt_rate_gbs(r.bytes, r.elapsed.as_secs_f64())
            );
            Ok(ExitCode::SUCCESS)
        }
        WorkloadCmd::Tap(a) => cmd_tap(a),
        WorkloadCmd::Pair(a) => {
            // run_pair prints the machine-readable result line the parent reads.
            workload::run_pair(&workload::PairOpts {
                alloc_cpu: a.alloc_cpu,
                free_cpu: a.free_cpu,
                same_cpu: a.alloc_cpu == a.free_cpu,
                duration: Duration::from_millis(a.duration_ms),
                chunk_kib: a.chunk_kib,
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TapModeArg {
    /// UDP from the namespace's stack out of a tap, read from the tap fd.
    Udp,
    /// Frames written into tap A, forwarded by the namespace, read from tap B.
    Forward,
}

#[derive(Args)]
struct TapArgs {
    #[arg(long, value_parser = parse_cpus, default_value = "0")]
    sender_cpus: Cpus,
    #[arg(long, value_parser = parse_cpus, default_value = "1")]
    reader_cpus: Cpus,
    #[arg(short, long, value_parser = parse_duration, default_value = "5s")]
    duration: Duration,
    /// UDP payload bytes per frame; over 8 KiB the SKB data comes from the page allocator.
    #[arg(long, default_value_t = workload::tap::DEFAULT_FRAME_SIZE)]
    frame_size: u32,
    #[arg(long, value_enum, default_value = "udp")]
    mode: TapModeArg,
    /// Number of (sender, reader) tap pairs; default: the longer CPU list.
    #[arg(long)]
    taps: Option<usize>,
}

fn cmd_tap(a: TapArgs) -> Result<ExitCode> {
    use workload::tap::{TapMode, TapOpts, run_tap};
    let opts = TapOpts {
        duration: a.duration,
        frame_size: a.frame_size,
        mode: match a.mode {
            TapModeArg::Udp => TapMode::Udp,
            TapModeArg::Forward => TapMode::Forward,
        },
        taps: a.taps,
        ..TapOpts::new(a.sender_cpus.0, a.reader_cpus.0)
    };
    let r = run_tap(&opts)?;
    for ns in &r.stale_removed {
        eprintln!("tap: removed stale namespace {ns}");
    }
    let secs = r.elapsed.as_secs_f64();
    println!(
        "tap ({}): {} tap(s), {}-byte payloads, sender CPUs {}, reader CPUs {}, {:.2} s",
        r.mode.name(),
        r.taps,
        r.frame_size,
        zoneprof::kernel::cpulist::format_cpu_list(&opts.sender_cpus),
        zoneprof::kernel::cpulist::format_cpu_list(&opts.reader_cpus),
        secs
    );
    println!(
        "  frames sent {}, read {} ({}); lost {}, send errors {}",
        units::fmt_count(r.frames_sent),
        units::fmt_count(r.frames_read),
        units::fmt_bytes(r.bytes_read),
        units::fmt_count(r.frames_lost),
        units::fmt_count(r.send_errors)
    );
    println!(
        "  read side: {} packets/s, {:.2} Gbit/s",
        units::fmt_count(r.packets_per_s().round() as u64),
        r.gbit_per_s()
    );
    for (cpu, frames) in &r.per_reader {
        let pps = if secs > 0.0 {
            *frames as f64 / secs
        } else {
            0.0
        };
        println!(
            "  reader CPU {cpu}: {} frames, {} packets/s",
            units::fmt_count(*frames),
            units::fmt_count(pps.round() as u64)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_demo(a: DemoArgs) -> Result<ExitCode> {
    use zoneprof::output::compare;
    let dir = &a.output;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let plan = DemoPlan::new(&a)?;
    let paths = plan.record_both(dir)?;
    let before = Recording::read(&paths[0])?;
    let after = Recording::read(&paths[1])?;
    let (bs, as_) = (
        paths[0].display().to_string(),
        paths[1].display().to_string(),
    );
    let recs = compare::Pair::new(&before, &after);
    let mut c = compare::compare(recs, compare::Pair::new(bs.as_str(), as_.as_str()), 10);
    c.flamegraphs = compare::write_flamegraphs(recs, dir)?;
    let mut written = write_demo_reports(dir, &c, (&before, &bs), (&after, &as_))?;
    written.extend(write_demo_flamegraphs(
        dir,
        [(&before, &bs, "before"), (&after, &as_, "after")],
    )?);
    print_demo_summary(dir, &c, paths.iter().chain(&written));
    Ok(ExitCode::SUCCESS)
}

/// What the demo runs: the page reproducer between the first two online CPUs, and the tap
/// reproducer too when /dev/net/tun exists.
struct DemoPlan {
    exe: String,
    c0: u32,
    c1: u32,
    /// Length of each workload, as its `-d` argument.
    duration: String,
    tap: bool,
}

impl DemoPlan {
    fn new(a: &DemoArgs) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the zoneprof binary")?;
        let host = zoneprof::kernel::host::host_info()?;
        if host.online_cpus.len() < 2 {
            bail!("the demo needs two online CPUs (allocate on one, free on the other)");
        }
        let tap = std::path::Path::new("/dev/net/tun").exists();
        if !tap {
            eprintln!(
                "zoneprof demo: /dev/net/tun is missing (modprobe tun): recording the page reproducer only"
            );
        }
        Ok(Self {
            exe: exe.to_string_lossy().into_owned(),
            c0: host.online_cpus[0],
            c1: host.online_cpus[1],
            duration: format!("{}ms", a.duration.as_millis()),
            tap,
        })
    }

    /// The shell command of one run: the tap reader sits on `free_cpu`; `same` is
    /// `--same-cpu` or empty.
    fn script(&self, free_cpu: u32, same: &str) -> String {
        let (exe, c0, c1, d) = (&self.exe, self.c0, self.c1, &self.duration);
        let mut s = format!(
            "{exe} workload cross-cpu-pages --alloc-cpus {c0} --free-cpus {c1} {same} -d {d}"
        );
        if self.tap {
            s += &format!(
                " && {exe} workload tap --sender-cpus {c0} --reader-cpus {free_cpu} -d {d}"
            );
        }
        s
    }

    /// Records "before" (allocation and free on different CPUs) and "after" (on one CPU, the
    /// userspace analogue of freeing SKBs on their allocating CPU) into `dir`.
    fn record_both(&self, dir: &std::path::Path) -> Result<Vec<PathBuf>> {
        let (c0, c1) = (self.c0, self.c1);
        let rt = runtime()?;
        let mut paths = Vec::new();
        for (name, what, sh) in [
            (
                "before",
                format!("alloc CPU {c0}, free CPU {c1}"),
                self.script(c1, ""),
            ),
            (
                "after",
                format!("alloc and free on CPU {c0}"),
                self.script(c0, "--same-cpu"),
            ),
        ] {
            let path = dir.join(format!("{name}.zprof"));
            eprintln!("zoneprof demo: recording \"{name}\" ({what})");
            let out = rt.block_on(session::record(RecordOpts {
                duration: None,
                output: path.clone(),
                cpus: None,
                command: vec!["sh".into(), "-c".into(), sh],
                progress: true,
                plan: Default::default(),
            }))?;
            print_record_summary(&path, &out);
            if out.command_status.is_some_and(|s| !s.success()) {
                bail!("the {name} workload failed; see its output above");
            }
            paths.push(path);
        }
        Ok(paths)
    }
}

/// The comparison (text, JSON, HTML) and each recording's HTML report.
fn write_demo_reports(
    dir: &std::path::Path,
    c: &zoneprof::output::compare::Comparison,
    (before, bs): (&Recording, &str),
    (after, as_): (&Recording, &str),
) -> Result<Vec<PathBuf>> {
    use zoneprof::{output::compare, output::flamegraph as fg, output::html};
    let mut written = vec![];
    for (file, doc) in [
        ("compare.txt", compare::to_text(c)),
        ("compare.json", compare::to_json(c) + "\n"),
        ("compare.html", html::compare_html(c, before, after)?),
        ("before.html", html::report_html(before, 10, bs)?),
        ("after.html", html::report_html(after, 10, as_)?),
    ] {
        let p = dir.join(file);
        fg::write_atomic(&p, doc.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

/// Zone-wait and SKB-free flamegraphs of each recording; a view without data (no
/// zone-lock contention) is skipped, not drawn empty.
fn write_demo_flamegraphs(
    dir: &std::path::Path,
    recs: [(&Recording, &String, &str); 2],
) -> Result<Vec<PathBuf>> {
    use zoneprof::output::flamegraph as fg;
    let mut written = vec![];
    for (rec, src, name) in recs {
        for view in [fg::View::ZoneWait, fg::View::SkbFree] {
            let opts = fg::FoldOptions::default();
            if let Ok(f) = fg::build(rec, view, &opts, src)
                && let Ok(svg) = fg::render_svg(&f.folded, view, &f.title, &f.subtitle)
            {
                let p = dir.join(format!("{name}.{}.svg", view.name()));
                fg::write_atomic(&p, &svg)?;
                written.push(p);
            }
        }
    }
    Ok(written)
}

fn print_demo_summary<'a>(
    dir: &std::path::Path,
    c: &zoneprof::output::compare::Comparison,
    files: impl Iterator<Item = &'a PathBuf>,
) {
    println!("\nzoneprof demo: before = cross-CPU frees, after = same-CPU frees");
    for v in &c.verdict {
        println!("  - {v}");
    }
    println!("\nWho and why: zone-lock wait by (alloc CPU → free CPU)");
    for (side, b) in c.blame.sides.sides() {
        println!("  {:<6}: {}", side.label(), b.headline);
    }
    println!("\nFiles in {}:", dir.display());
    for p in files {
        println!("  {}", p.display());
    }
    for f in &c.flamegraphs {
        println!("  {f}");
    }
    println!(
        "\nOpen {} in a browser for the before/after report.",
        dir.join("compare.html").display()
    );
}

// ---- flamegraph / compare / html wiring (thin: the work is in the library modules) ----

#[derive(Args)]
struct FlamegraphArgs {
    /// Recording written by `zoneprof record`.
    file: PathBuf,
    /// Output file. Default: <recording stem>.<view>.svg beside the recording; with
    /// --folded, stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "zone-wait")]
    view: zoneprof::output::flamegraph::View,
    /// Only these CPUs, e.g. "0-3,8".
    #[arg(long, value_parser = parse_cpus)]
    cpu: Option<Cpus>,
    /// One root frame per CPU (`cpuN`).
    #[arg(long)]
    per_cpu: bool,
    /// One root frame per thread (`comm-tid`); needs a recording made with `record --tasks`.
    #[arg(long, conflicts_with = "per_cgroup")]
    per_task: bool,
    /// One root frame per cgroup (its path); needs a recording made with `record --tasks`.
    #[arg(long)]
    per_cgroup: bool,
    /// Write folded stacks (`frame;frame;... count`, root first) instead of SVG.
    #[arg(long)]
    folded: bool,
    /// Draw a redacted copy (as `zoneprof redact` writes): no kernel addresses, hostname
    /// hashed, recording named by its file name only.
    #[arg(long)]
    redact: bool,
}

/// The root frames `--per-task` / `--per-cgroup` ask for (None: none asked); exit 2 with
/// one line when the recording was made without `--tasks`.
fn task_roots(
    rec: &Recording,
    per_task: bool,
    per_cgroup: bool,
    file: &std::path::Path,
) -> Result<Option<zoneprof::output::flamegraph::TaskRoots>, ExitCode> {
    use zoneprof::model::tasks::{self, By};
    use zoneprof::output::flamegraph::TaskRoots;
    let by = match (per_task, per_cgroup) {
        (true, _) => By::Task,
        (_, true) => By::Cgroup,
        _ => return Ok(None),
    };
    if let Err(e) = tasks::check(rec, by) {
        eprintln!("zoneprof: error: {}: {e}", file.display());
        return Err(ExitCode::from(2));
    }
    Ok(Some(match by {
        By::Cgroup => TaskRoots::per_cgroup(rec),
        _ => TaskRoots::per_task(rec),
    }))
}

fn cmd_flamegraph(a: FlamegraphArgs) -> Result<ExitCode> {
    use zoneprof::output::flamegraph as fg;
    let (rec, source) = load(&a.file, a.redact)?;
    let roots = match task_roots(&rec, a.per_task, a.per_cgroup, &a.file) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let opts = fg::FoldOptions {
        per_cpu: a.per_cpu,
        cpus: a.cpu.map(|c| c.0),
        roots,
    };
    let flame = fg::build(&rec, a.view, &opts, &source)?;
    let bytes = if a.folded {
        let text = flame.folded.to_text();
        if a.output.is_none() {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        text.into_bytes()
    } else {
        fg::render_svg(&flame.folded, a.view, &flame.title, &flame.subtitle)?
    };
    let path = a
        .output
        .unwrap_or_else(|| fg::default_output(&a.file, a.view));
    fg::write_atomic(&path, &bytes)?;
    eprintln!("zoneprof: wrote {} ({})", path.display(), flame.title);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
struct ExportArgs {
    /// Recording written by `zoneprof record`.
    file: PathBuf,
    #[arg(long, value_enum)]
    format: zoneprof::output::export::Format,
    /// Output file, written atomically. For csv, a directory (made when missing) that
    /// receives per-cpu.csv, skb-matrix.csv, page-matrix.csv and skb-free-sites.csv.
    #[arg(short, long)]
    output: PathBuf,
    /// pprof and folded: the view to export (default zone-wait; pprof takes the lock
    /// views only). speedscope: that view alone (default: one profile per view).
    #[arg(long, value_enum)]
    view: Option<zoneprof::output::flamegraph::View>,
    /// folded and speedscope: one root frame per CPU (`cpuN`). pprof samples carry a `cpu`
    /// label instead (`go tool pprof -tagroot=cpu`).
    #[arg(long)]
    per_cpu: bool,
    /// folded and speedscope: one root frame per thread (`comm-tid`); needs a recording
    /// made with `record --tasks`. pprof samples of such a recording carry `thread` and
    /// `cgroup` labels instead.
    #[arg(long, conflicts_with = "per_cgroup")]
    per_task: bool,
    /// folded and speedscope: one root frame per cgroup (its path); needs a recording made
    /// with `record --tasks`.
    #[arg(long)]
    per_cgroup: bool,
    /// pprof, folded and speedscope: only these CPUs, e.g. "0-3,8".
    #[arg(long, value_parser = parse_cpus)]
    cpu: Option<Cpus>,
    /// Export a redacted copy (as `zoneprof redact` writes): no kernel addresses, hostname
    /// hashed, recording named by its file name only.
    #[arg(long)]
    redact: bool,
}

/// Exits with clap's usage error (status 2, `export`'s usage) for an option the format
/// cannot take.
fn usage_error(msg: String) -> ! {
    use clap::{CommandFactory, error::ErrorKind};
    let mut cli = Cli::command();
    // Builds the bin names, so the usage line reads `zoneprof export …`.
    cli.build();
    match cli.find_subcommand_mut("export") {
        Some(export) => export.error(ErrorKind::ArgumentConflict, msg).exit(),
        None => cli.error(ErrorKind::ArgumentConflict, msg).exit(),
    }
}

fn cmd_export(a: ExportArgs) -> Result<ExitCode> {
    use zoneprof::output::{
        export::{self, Format},
        flamegraph::{self as fg, View},
    };
    let fmt = a.format.name();
    match a.format {
        Format::Csv
            if a.view.is_some() || a.per_cpu || a.per_task || a.per_cgroup || a.cpu.is_some() =>
        {
            usage_error(
                "--view, --per-cpu, --per-task, --per-cgroup and --cpu do not apply to --format csv: it writes every table for every CPU".into(),
            )
        }
        Format::Pprof if a.per_cpu => usage_error(
            "--format pprof has no --per-cpu: every sample has a cpu label (go tool pprof -tagroot=cpu)".into(),
        ),
        Format::Pprof if a.per_task || a.per_cgroup => usage_error(
            "--format pprof has no --per-task or --per-cgroup: a recording made with --tasks gives every sample thread and cgroup labels (go tool pprof -tagroot=cgroup)".into(),
        ),
        Format::Pprof if a.view.is_some_and(|v| !export::pprof::supports(v)) => {
            usage_error(format!(
                "--format pprof exports lock waits: --view zone-wait, zone-alloc, zone-free or locks, not {}",
                a.view.map_or("", View::name)
            ))
        }
        _ => {}
    }
    let (rec, source) = load(&a.file, a.redact)?;
    let out = &a.output;
    let cpus = a.cpu.map(|c| c.0);
    let roots = match task_roots(&rec, a.per_task, a.per_cgroup, &a.file) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let opts = fg::FoldOptions {
        per_cpu: a.per_cpu,
        cpus: cpus.clone(),
        roots,
    };
    let view = a.view.unwrap_or(View::ZoneWait);
    let what = match a.format {
        Format::Pprof => {
            let t = export::pprof::write(&rec, view, cpus.as_deref(), &source, out)?;
            format!(
                "{fmt}, {}: {} contentions, {} delay",
                view.describe(),
                units::fmt_count(t.contentions),
                units::fmt_ns(t.delay_ns)
            )
        }
        Format::Folded => {
            let total = export::folded::write(&rec, view, &opts, &source, out)?;
            format!("{fmt}, {}: {}", view.describe(), view.fmt_total(total))
        }
        Format::Speedscope => {
            let views = match a.view {
                Some(v) => vec![v],
                None => export::speedscope::ALL_VIEWS.to_vec(),
            };
            let e = export::speedscope::build(&rec, &views, &opts, &source)?;
            export::speedscope::write(&e.file, out)?;
            for (v, why) in &e.skipped {
                eprintln!(
                    "zoneprof: speedscope: left out the {} view: {why}",
                    v.name()
                );
            }
            format!("{fmt}, {} profile(s)", e.file.profiles.len())
        }
        Format::Csv => {
            let files = export::csv::write_dir(&rec, out)?;
            let names: Vec<String> = files
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            format!("{fmt}: {}", names.join(", "))
        }
    };
    eprintln!("zoneprof: wrote {} ({what})", out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, ValueEnum)]
enum CompareFormat {
    Text,
    Json,
    /// One self-contained HTML file (default <before>-vs-<after>.html).
    Html,
}

#[derive(Args)]
struct CompareArgs {
    /// Recording before the change.
    before: PathBuf,
    /// Recording after the change.
    after: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: CompareFormat,
    /// Report file; or a directory (existing, or ending in '/') that receives
    /// compare.<txt|json> and the differential flamegraphs. Default: stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write differential flamegraphs (before->after and the negated after->before) to DIR.
    #[arg(long, value_name = "DIR")]
    flamegraphs: Option<PathBuf>,
    /// Rows in the grew/shrank stack lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Compare redacted copies (as `zoneprof redact` writes): no kernel addresses,
    /// hostnames hashed, recordings named by their file names only.
    #[arg(long)]
    redact: bool,
}

fn cmd_compare(a: CompareArgs) -> Result<ExitCode> {
    use zoneprof::output::compare;
    // Decompressing and parsing is a large share of a compare: both files at once.
    let (before, after) =
        zoneprof::par::both(|| load(&a.before, a.redact), || load(&a.after, a.redact));
    let ((before, before_name), (after, after_name)) = (before?, after?);
    let recs = compare::Pair::new(&before, &after);
    let files = compare::Pair::new(before_name.as_str(), after_name.as_str());
    let mut c = compare::compare(recs, files, a.top);
    for w in &c.warnings {
        eprintln!("zoneprof: warning: {w}");
    }
    let ext = match a.format {
        CompareFormat::Text => "txt",
        CompareFormat::Json => "json",
        CompareFormat::Html => "html",
    };
    let plan = compare::OutputPlan::new(a.output.as_deref(), ext);
    if let Some(d) = &plan.dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if let Some(dir) = a.flamegraphs.as_deref().or(plan.dir.as_deref()) {
        c.flamegraphs = compare::write_flamegraphs(recs, dir)?;
    }
    let doc = match a.format {
        CompareFormat::Text => compare::to_text(&c),
        CompareFormat::Json => compare::to_json(&c) + "\n",
        CompareFormat::Html => zoneprof::output::html::compare_html(&c, &before, &after)?,
    };
    let report = match (a.format, plan.report) {
        (CompareFormat::Html, None) => Some(PathBuf::from(format!(
            "{}-vs-{}.html",
            stem(&a.before),
            stem(&a.after)
        ))),
        (_, r) => r,
    };
    write_doc(report.as_deref(), &doc)?;
    Ok(ExitCode::SUCCESS)
}

fn stem(p: &std::path::Path) -> String {
    p.file_stem()
        .map_or_else(|| "zoneprof".into(), |s| s.to_string_lossy().into_owned())
}

/// Writes a report to `path` (atomically), or to stdout when None.
fn write_doc(path: Option<&std::path::Path>, doc: &str) -> Result<()> {
    match path {
        Some(p) => {
            zoneprof::output::flamegraph::write_atomic(p, doc.as_bytes())?;
            eprintln!("zoneprof: wrote {}", p.display());
        }
        None => print!("{doc}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_quoted_by_its_wrapper_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::new(zoneprof::model::recording::RecordingError::Read {
            path: "/x.zprof".into(),
            source: io,
        })
        .context("loading the baseline");
        assert_eq!(
            error_line(&e),
            "loading the baseline: cannot read recording /x.zprof: No such file or directory (os error 2)"
        );
        // Causes that the message does not quote are kept, as `{:#}` would.
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }
}
