//! A recording session: attach, run until the duration ends / a signal arrives / the
//! command exits, show progress, then read everything back and write it atomically.
use std::{
    io::IsTerminal,
    os::fd::OwnedFd,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use profiler_common::counter;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    capture::{calibrate, readback},
    kernel::attach,
    kernel::host,
    kernel::symbolize::Kallsyms,
    model::recording::{
        CgroupInfo, CommandInfo, Counters, CpuPages, DispatchCost, FORMAT_NAME, FORMAT_VERSION,
        ObserverStats, PageCell, PageTracking, ProgramRunStats, Recording, TaskInfo,
    },
    model::{observer, units},
};

pub struct RecordOpts {
    /// Stop after this long (None: until the command exits or a signal).
    pub duration: Option<Duration>,
    pub output: PathBuf,
    /// Record only these CPUs.
    pub cpus: Option<Vec<u32>>,
    /// Command to run while recording (empty: none).
    pub command: Vec<String>,
    /// Live progress on stderr (only when it is a terminal).
    pub progress: bool,
    /// Optional probes and their settings.
    pub plan: attach::PlanOpts,
}

pub struct RecordOutcome {
    pub recording: Recording,
    pub command_status: Option<std::process::ExitStatus>,
    /// The signal that ended the recording, when the command was still running 5 s after
    /// it was passed on (it ignores or handles it): its status is unknown.
    pub command_outlived: Option<i32>,
}

enum Stop {
    Duration,
    Signal(&'static str),
    CommandExited(std::process::ExitStatus),
}

/// Everything set up before the recording window opens (`record`'s and a live session's).
pub(crate) struct Prepared {
    pub(crate) host: crate::kernel::host::HostInfo,
    pub(crate) cpus: Vec<u32>,
    pub(crate) settings: crate::kernel::host::Settings,
    pub(crate) ksyms: Option<Kallsyms>,
    pub(crate) plan: attach::Plan,
    pub(crate) attached: attach::Attached,
}

impl Prepared {
    /// Stacks are captured in contention_begin; its raw tracepoint form sees its own frames.
    pub(crate) fn raw_stacks(&self) -> bool {
        self.attached.probes.iter().any(|p| {
            p.name == crate::kernel::probes::name::CONTENTION_BEGIN
                && p.attached
                && p.method == "raw_tracepoint"
        })
    }
}

/// How the window closed, what the command did, and what was read before detaching.
struct Window {
    stop: Stop,
    start_wall_ms: u64,
    elapsed: Duration,
    command_status: Option<std::process::ExitStatus>,
    command_outlived: Option<i32>,
    observer: ObserverStats,
    pcp: Vec<CpuPages>,
}

pub async fn record(opts: RecordOpts) -> Result<RecordOutcome> {
    let (mut prep, run_stats) = prepare(opts.cpus.as_deref(), &opts.plan)?;
    let window = run_window(&opts, &mut prep, run_stats).await?;
    let (command_status, command_outlived) = (window.command_status, window.command_outlived);
    let recording = read_back(&opts, prep, window)?;
    recording
        .write_atomic(&opts.output)
        .with_context(|| format!("writing {}", opts.output.display()))?;
    Ok(RecordOutcome {
        recording,
        command_status,
        command_outlived,
    })
}

/// Host facts, the probe plan, run-time stats on, dispatch measured, probes attached:
/// on `cpus` only when given.
pub(crate) fn prepare(
    cpus: Option<&[u32]>,
    plan_opts: &attach::PlanOpts,
) -> Result<(Prepared, RunStats)> {
    // First, so an unprivileged user gets one clear line and nothing else.
    attach::check_privileges()?;
    let host = host::host_info().context("reading host facts")?;
    let only_cpus = cpus;
    let cpus = match only_cpus {
        Some(c) => {
            if let Some(bad) = c.iter().find(|c| !host.online_cpus.contains(c)) {
                anyhow::bail!("--cpus names CPU {bad}, which is not online");
            }
            c.to_vec()
        }
        None => host.online_cpus.clone(),
    };
    // Read /proc/zoneinfo once, before recording: it takes every zone lock with IRQs off.
    let mut settings = host::read_settings();
    settings.map_entries = plan_opts
        .map_entries
        .effective(plan_opts.page_flows, plan_opts.tasks);
    settings.tasks = plan_opts.tasks;

    // kallsyms is read once: for probe targets now and for symbolizing at the end.
    let ksyms = match Kallsyms::load() {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("zoneprof: stacks stay unsymbolized: {e}");
            None
        }
    };
    let plan = attach::plan(plan_opts, ksyms.as_ref()).context("preparing probes")?;
    if plan.tracefs_mounted_by_us {
        eprintln!("zoneprof: mounted tracefs at /sys/kernel/tracing");
    }
    let mut run_stats = RunStats::enable();
    let mut ebpf = attach::load(&plan, only_cpus, &host.cpu_node, &host.online_cpus)
        .context("loading the eBPF object")?;
    run_stats.calibrate(&mut ebpf, &plan);
    let attached = attach::attach(ebpf, &plan).context("attaching probes")?;
    let off = |p: &&crate::model::recording::ProbeStatus| {
        p.attempts.iter().any(|a| a.method == attach::OFF)
    };
    for p in attached.probes.iter().filter(|p| !p.attached && !off(p)) {
        eprintln!(
            "zoneprof: probe {} not attached ({}): {}",
            p.name,
            p.target,
            p.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    if let Some(why) = &plan.zone_label_unavailable {
        eprintln!("zoneprof: zone locks will not be labelled by node/zone: {why}");
    }
    if let Some(why) = &plan.skb_alloc_cpu_unavailable {
        eprintln!("zoneprof: SKB frees cannot be attributed to their allocating CPU: {why}");
    }
    let prep = Prepared {
        host,
        cpus,
        settings,
        ksyms,
        plan,
        attached,
    };
    Ok((prep, run_stats))
}

/// The recording window: runs the command, shows progress, and waits for the duration, a
/// signal or the command's exit; then reads what must be read while the probes are still
/// attached, detaches them, and lets the command end the way it was asked to.
async fn run_window(opts: &RecordOpts, prep: &mut Prepared, run_stats: RunStats) -> Result<Window> {
    let start_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let start = Instant::now();

    let mut child = if opts.command.is_empty() {
        None
    } else {
        Some(
            tokio::process::Command::new(&opts.command[0])
                .args(&opts.command[1..])
                .kill_on_drop(false)
                .spawn()
                .with_context(|| format!("starting command {:?}", opts.command[0]))?,
        )
    };

    let duration = match (&child, opts.duration) {
        (_, Some(d)) => Some(d),
        (None, None) => Some(Duration::from_secs(10)),
        (Some(_), None) => None,
    };
    let show_progress = opts.progress && std::io::stderr().is_terminal();

    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    // A closed terminal or ssh session: end like Ctrl-C, with the recording written.
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);

    let stop = loop {
        tokio::select! {
            _ = &mut deadline => break Stop::Duration,
            _ = sigint.recv() => break Stop::Signal("SIGINT"),
            _ = sigterm.recv() => break Stop::Signal("SIGTERM"),
            _ = sighup.recv() => break Stop::Signal("SIGHUP"),
            status = async {
                match child.as_mut() {
                    Some(c) => c.wait().await,
                    None => std::future::pending().await,
                }
            } => {
                let status = status.context("waiting for the command")?;
                break Stop::CommandExited(status);
            }
            _ = tick.tick() => {
                if show_progress {
                    progress(&prep.attached, start.elapsed());
                }
            }
        }
    };
    let elapsed = start.elapsed();
    let observer = run_stats.finish(&prep.attached);
    // PCP pages are read before detaching: programs detach one after another (fentry
    // detaches are slow), and pages freed meanwhile, e.g. as the command's processes
    // exit, would reach the per-page counters but not the batch ones already detached
    // (the qemu twins saw 1-4 % apart). Now both stop where the run-time stats stop.
    let pcp_method = crate::model::recording::PcpMethod::of(&prep.attached.probes);
    let pcp = readback::read_pages(&prep.attached.ebpf, &prep.cpus, pcp_method)?;
    prep.attached.detach();
    if show_progress {
        eprint!("\r\x1b[K");
    }

    let (command_status, command_outlived) = end_command(&stop, child.as_mut()).await;

    Ok(Window {
        stop,
        start_wall_ms: start_wall,
        elapsed,
        command_status,
        command_outlived,
        observer,
        pcp,
    })
}

/// How long a command has to end after a passed-on signal before zoneprof leaves it.
const SIGNAL_GRACE: Duration = Duration::from_secs(5);

/// The command's exit status: it ended the recording, or it outlived it and is asked to end
/// the way the recording was (a signal is passed on; after the duration it keeps running).
/// The second value is the passed-on signal when the command did not end within
/// [`SIGNAL_GRACE`]: it ignores or handles that signal, and is left running.
async fn end_command(
    stop: &Stop,
    child: Option<&mut tokio::process::Child>,
) -> (Option<std::process::ExitStatus>, Option<i32>) {
    let c = match (stop, child) {
        (Stop::CommandExited(s), _) => return (Some(*s), None),
        (_, None) => return (None, None),
        (_, Some(c)) => c,
    };
    match stop {
        Stop::Signal(sig) => {
            let signo = match *sig {
                "SIGINT" => libc::SIGINT,
                "SIGHUP" => libc::SIGHUP,
                _ => libc::SIGTERM,
            };
            let pid = c.id();
            if let Some(pid) = pid {
                // SAFETY: kill(2) on our own child's pid; no memory is involved.
                unsafe { libc::kill(pid as i32, signo) };
            }
            match tokio::time::timeout(SIGNAL_GRACE, c.wait()).await {
                Ok(r) => (r.ok(), None),
                Err(_) => {
                    eprintln!(
                        "zoneprof: the command{} did not end within {} s of {sig}; it keeps running, its status unknown",
                        pid.map_or_else(String::new, |p| format!(" (pid {p})")),
                        SIGNAL_GRACE.as_secs()
                    );
                    (None, Some(signo))
                }
            }
        }
        _ => {
            eprintln!("zoneprof: duration reached; the command keeps running");
            (c.try_wait().ok().flatten(), None)
        }
    }
}

/// The maps read back into a recording, stacks symbolized.
fn read_back(opts: &RecordOpts, prep: Prepared, window: Window) -> Result<Recording> {
    let Window {
        stop,
        start_wall_ms: start_wall,
        elapsed,
        command_status,
        observer,
        pcp,
        ..
    } = window;
    let mut resolver = readback::StackResolver::default();
    let Tables {
        counters,
        mut lock,
        skb,
        page_matrix,
        page_tracking,
        tasks,
        cgroups,
    } = read_tables(&prep, &mut resolver, &mut Default::default())?;
    (lock.frames, lock.stacks) = resolver.finish();
    let tables = lock;
    let Prepared {
        host,
        cpus,
        settings,
        attached,
        ..
    } = prep;

    let end_reason = match &stop {
        Stop::Duration => "duration".to_string(),
        Stop::Signal(s) => format!("signal {s}"),
        Stop::CommandExited(_) => "command exited".to_string(),
    };
    let command = (!opts.command.is_empty()).then(|| {
        use std::os::unix::process::ExitStatusExt;
        CommandInfo {
            argv: opts.command.clone(),
            exit_code: command_status.and_then(|s| s.code()),
            signal: command_status.and_then(|s| s.signal()),
        }
    });
    let recording = Recording {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        zoneprof_version: env!("CARGO_PKG_VERSION").into(),
        host,
        settings,
        start_unix_ms: start_wall,
        duration_ns: elapsed.as_nanos() as u64,
        cpus,
        end_reason,
        command,
        probes: attached.probes.clone(),
        frames: tables.frames,
        stacks: tables.stacks,
        lock_waits: tables.lock_waits,
        wait_hist: tables.wait_hist,
        zones: tables.zones,
        pcp,
        counters,
        skb_matrix: skb.matrix,
        skb_sites: skb.sites,
        skb_defer: skb.defer,
        page_matrix,
        page_tracking,
        observer: Some(observer),
        tasks,
        cgroups,
    };
    Ok(recording)
}

/// What the maps hold, as recording rows: all but the PCP pages and the programs' run-time
/// stats (which `record` reads before detaching). Stacks go through `resolver`; the lock
/// tables' `frames` and `stacks` are left for the caller to take from it.
pub(crate) struct Tables {
    pub(crate) counters: Counters,
    pub(crate) lock: readback::LockTables,
    pub(crate) skb: readback::SkbTables,
    pub(crate) page_matrix: Vec<PageCell>,
    pub(crate) page_tracking: Option<PageTracking>,
    pub(crate) tasks: Vec<TaskInfo>,
    pub(crate) cgroups: Vec<CgroupInfo>,
}

pub(crate) fn read_tables(
    prep: &Prepared,
    resolver: &mut readback::StackResolver,
    cgroup_paths: &mut crate::kernel::cgroup::PathCache,
) -> Result<Tables, readback::AggregateError> {
    let ebpf = &prep.attached.ebpf;
    let raw = readback::read_counters(ebpf)?;
    let mut counters = readback::counters_from(&raw);
    let lock = readback::read_lock_rows(ebpf, prep.ksyms.as_ref(), prep.raw_stacks(), resolver)?;
    counters.unsymbolized_frames = lock.unsymbolized_frames;
    let skb = readback::read_skb_tables(ebpf, prep.ksyms.as_ref())?;
    let page_flows_on = crate::model::recording::attached(
        &prep.attached.probes,
        crate::kernel::probes::name::PAGE_FREE,
    );
    let (page_matrix, page_tracking) = if page_flows_on {
        let (m, t) =
            readback::read_page_flows(ebpf, prep.plan.opts.page_sample, counters.page_track_full)?;
        (m, Some(t))
    } else {
        (Vec::new(), None)
    };
    let (tasks, cgroups) = if prep.plan.opts.tasks {
        readback::read_tasks(ebpf, cgroup_paths)?
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Tables {
        counters,
        lock,
        skb,
        page_matrix,
        page_tracking,
        tasks,
        cgroups,
    })
}

/// Run counts and run time of the attached programs, from the kernel's BPF run-time stats.
/// They are on only while the `BPF_ENABLE_STATS` descriptor is open (or when
/// `kernel.bpf_stats_enabled` is 1), and they cost every BPF program on the host a couple of
/// clock reads per run: so enabled for the recording alone.
///
/// Enabled before the programs are loaded, so their counts cover attach to detach: the
/// window of every other counter in the recording. Measured from a snapshot taken after the
/// last attach, they missed the PCP events of the page allocations made while the later
/// probes loaded (0.4 % of the events of a 2 s recording here).
pub(crate) struct RunStats {
    /// Keeps the stats on; the kernel turns them off when the last such descriptor closes.
    enabled: Result<OwnedFd, String>,
    /// What the kernel adds around each run, per attach method (`calibrate`).
    dispatch: Vec<DispatchCost>,
    dispatch_error: Option<String>,
}

impl RunStats {
    fn enable() -> RunStats {
        let enabled = aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
            // Not fatal: the recording only lacks what its own probes cost.
            let why = format!("BPF run-time stats could not be enabled (BPF_ENABLE_STATS): {e}");
            eprintln!("zoneprof: {why}");
            why
        });
        RunStats {
            enabled,
            dispatch: Vec::new(),
            dispatch_error: None,
        }
    }

    /// Measures the dispatch cost of the methods the in-lock probes will attach by, with the
    /// stats on (their clock reads are part of it) and before any probe attaches.
    fn calibrate(&mut self, ebpf: &mut aya::Ebpf, plan: &attach::Plan) {
        if self.enabled.is_err() {
            // Without the programs' own times there is nothing to add the dispatch to.
            return;
        }
        let methods = plan.first_methods(&observer::IN_LOCK_PROBES);
        let (costs, errors) = calibrate::dispatch_costs(ebpf, &methods);
        if !errors.is_empty() {
            let why = errors
                .iter()
                .map(|(m, e)| format!("{m}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            eprintln!("zoneprof: dispatch cost not measured: {why}");
            self.dispatch_error = Some(format!("dispatch cost not measured: {why}"));
        }
        self.dispatch = costs;
    }

    /// Each attached program's runs and run time since it was loaded (with the stats on);
    /// call before the programs are detached. The stats go off.
    fn finish(self, attached: &attach::Attached) -> ObserverStats {
        let stats = self.read(attached);
        drop(self.enabled);
        stats
    }

    /// Each attached program's runs and run time since it was loaded, so far; the stats
    /// stay on.
    pub(crate) fn read(&self, attached: &attach::Attached) -> ObserverStats {
        if let Err(why) = &self.enabled {
            return ObserverStats {
                programs: Vec::new(),
                stats_error: Some(why.clone()),
                dispatch: Vec::new(),
                dispatch_error: None,
            };
        }
        let mut programs = Vec::new();
        let mut errors = Vec::new();
        for &(probe, program) in attached.programs() {
            let info = match attached.ebpf.program(program) {
                Some(p) => p.info().map_err(|e| e.to_string()),
                None => Err("not in the eBPF object".to_string()),
            };
            match info {
                Ok(i) => programs.push(ProgramRunStats {
                    probe: probe.into(),
                    program: program.into(),
                    runs: i.run_count(),
                    run_ns: u64::try_from(i.run_time().as_nanos()).unwrap_or(u64::MAX),
                }),
                Err(e) => errors.push(format!(
                    "run-time stats of program {program} unreadable: {e}"
                )),
            }
        }
        ObserverStats {
            programs,
            stats_error: (!errors.is_empty()).then(|| errors.join("; ")),
            dispatch: self.dispatch.clone(),
            dispatch_error: self.dispatch_error.clone(),
        }
    }
}

fn progress(attached: &attach::Attached, elapsed: Duration) {
    let Ok(raw) = readback::read_counters(&attached.ebpf) else {
        return;
    };
    let secs = elapsed.as_secs_f64().max(1e-3);
    let events = raw[counter::CONTENTION_END as usize];
    let zone_ns = raw[counter::ZONE_WAIT_NS as usize];
    eprint!(
        "\r\x1b[K{:6.1}s  {} contentions  zone-lock wait {}/s",
        secs,
        units::fmt_count(events),
        units::fmt_ns((zone_ns as f64 / secs) as u64),
    );
}
