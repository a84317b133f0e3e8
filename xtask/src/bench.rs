//! `cargo xtask bench`: what zoneprof costs. Throughput of the reproducers bare and under
//! zoneprof, perf and bpftrace (round-robin); in-kernel ns per event of each eBPF program;
//! time and memory of report/compare/flamegraph on a synthetic 640-CPU recording; kernel
//! memory of the maps at 640 possible CPUs; `zoneprof serve`'s scrapes and CPU (`serve`).
//! Writes `target/bench/bench.json` and `docs/benchmarks.md`, and judges each target of
//! issues 6 and 12.

mod child;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
mod doc;
mod host;
mod memory;
mod observer;
mod overhead;
pub(crate) mod parse;
mod progcost;
mod serve;
mod stacks;
mod stats;
mod template;
mod userspace;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

pub use observer::Opts as ObserverOpts;
pub use serve::Opts as ServeOpts;

use crate::cmd::find_in_path;
use crate::setup;
use crate::workspace::{SYNTH_BUILD, Workspace};

/// `cargo xtask bench` options.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Runs of each (reproducer, variant).
    pub rounds: u32,
    /// Seconds of each reproducer run.
    pub secs: u32,
    /// Seconds of each in-kernel cost run.
    pub cost_secs: u32,
    /// Runs of each userspace command.
    pub reps: u32,
    /// CPUs of the synthetic host.
    pub synth_cpus: u32,
    pub synth_stacks: u32,
    /// Folded-stack fixtures for the synthetic recording (default: shared/fixtures/contention).
    pub fixtures: Option<PathBuf>,
    /// Leave out the throughput runs (the longest part).
    pub skip_overhead: bool,
    /// Do not run setup and the release build first.
    pub no_build: bool,
    /// The Markdown report (default docs/benchmarks.md).
    pub doc: Option<PathBuf>,
    /// Run only the observer-effect phase and replace only its section of the doc.
    pub only_observer: bool,
    pub observer: observer::Opts,
    /// Run only the serve phase and replace only its section of the doc.
    pub only_serve: bool,
    pub serve: serve::Opts,
}

/// Everything measured, for the JSON and the doc.
pub struct Results {
    pub host: host::HostFacts,
    pub opts: Opts,
    pub zoneprof: PathBuf,
    pub tool_versions: Vec<(String, String)>,
    pub skipped_tools: Vec<String>,
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
    /// Per overhead run: other people's busy processes seen when it started.
    pub busy_samples: Vec<usize>,
    /// Per overhead run: BPF tracepoint programs of other processes loaded when it started.
    pub foreign_bpf_samples: Vec<usize>,
    pub runs: Vec<overhead::Run>,
    /// Each variant's fixed CPU cost around `true`.
    pub fixed_cpu: Vec<(overhead::Variant, f64)>,
    pub cells: Vec<overhead::Cell>,
    pub costs: Vec<progcost::CostRun>,
    pub memory: Memory,
    pub userspace: Option<userspace::Userspace>,
    /// The observer-effect phase (None: perf is missing).
    pub observer: Option<observer::Observer>,
    /// The serve phase (None: left out with the throughput runs).
    pub serve: Option<serve::Serve>,
    pub targets: Vec<Target>,
    pub elapsed_s: f64,
    pub phase_s: Vec<(String, f64)>,
}

pub struct Memory {
    pub cpus: u32,
    /// Each map as a default run creates it, and its bytes.
    pub rows: Vec<(memory::MapDef, u64)>,
    /// What `--page-flows` adds: its maps at full size instead of one entry.
    pub page_flows_extra: u64,
    pub callchain_bytes: u64,
    /// Live cross-check at this host's possible CPUs (None when no cost run happened).
    pub checked: Vec<memory::Checked>,
    pub unmatched_live: Vec<parse::MapInfo>,
    pub prog_memlock: u64,
}

impl Memory {
    pub fn maps_total(&self) -> u64 {
        self.rows.iter().map(|(_, b)| b).sum::<u64>()
            + self.unmatched_live.iter().map(|m| m.memlock).sum::<u64>()
    }

    pub fn total(&self) -> u64 {
        self.maps_total() + self.callchain_bytes + self.prog_memlock
    }

    pub fn page_flows_only(&self) -> u64 {
        self.rows
            .iter()
            .filter(|(d, _)| d.page_flows_only)
            .map(|(_, b)| b)
            .sum()
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub limit: String,
    pub measured: String,
    /// None: not measured in this run.
    pub met: Option<bool>,
    /// The difference is within the run-to-run noise of the bare runs: the verdict is the
    /// median's, but another run could turn it.
    pub noisy: bool,
}

impl Target {
    pub fn verdict(&self) -> &'static str {
        match (self.met, self.noisy) {
            (Some(true), false) => "met",
            (Some(false), false) => "MISSED",
            (Some(true), true) => "met (within noise)",
            (Some(false), true) => "MISSED (within noise)",
            (None, _) => "not measured",
        }
    }
}

pub const MB: f64 = 1e6;

fn which(name: &str) -> Option<PathBuf> {
    find_in_path(name)
}

fn version(argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    match child::run(&argv, std::time::Duration::from_secs(20)) {
        Ok(o) => format!("{}{}", o.stdout, o.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("unknown ({e:#})"),
    }
}

fn log(s: &str) {
    println!("{s}");
}

pub fn run(ws: &Workspace, opts: &Opts) -> Result<()> {
    let started = Instant::now();
    if setup::effective_uid() != Some(0) {
        bail!("the bench attaches eBPF programs and sets kernel.bpf_stats_enabled: run it as root");
    }
    if !opts.no_build {
        setup::run(ws, false)?;
        setup::ensure_bench_packages()?;
        println!("==> bench: building release zoneprof");
        ws.cargo()
            .args(["build", "--release", "-p", "profiler"])
            .run()?;
        if !opts.only_observer {
            println!("==> bench: building release zoneprof-synth (feature synth)");
            ws.cargo().args(SYNTH_BUILD).run()?;
        }
    }
    let zoneprof = ws.release_bin()?;
    if !zoneprof.is_file() {
        bail!(
            "{} does not exist: build it (cargo xtask build) or drop --no-build",
            zoneprof.display()
        );
    }
    let synth = ws.release_synth_bin()?;
    if !opts.only_observer && !synth.is_file() {
        bail!(
            "{} does not exist: build it (cargo {}) or drop --no-build",
            synth.display(),
            SYNTH_BUILD.join(" ")
        );
    }
    let bench_dir = ws.target_dir()?.join("bench");
    let scratch = bench_dir.join("scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    if opts.only_observer {
        return run_observer_only(ws, opts, &zoneprof, &bench_dir, &scratch);
    }
    if opts.only_serve {
        let tools = serve::Tools {
            zoneprof: &zoneprof,
            synth: &synth,
            fixtures: &fixtures_dir(ws, opts)?,
            scratch: &scratch,
        };
        return run_serve_only(ws, opts, &tools, &bench_dir);
    }
    // The doc's prose and span markers are the template: check it before measuring.
    let template_path = match &opts.doc {
        Some(d) if d.is_file() => d.clone(),
        _ => ws.root.join("docs/benchmarks.md"),
    };
    let spans = [doc::SPANS, doc::OBSERVER_SPANS, serve::SERVE_SPANS].concat();
    read_template(&template_path, &spans)?;
    let host = host::facts();
    if host.online_cpus < 2 {
        bail!("the reproducers need two online CPUs");
    }
    let cpus = (0, 1);
    let fixtures = fixtures_dir(ws, opts)?;

    let perf = which("perf");
    let bpftrace = which("bpftrace");
    let mut skipped_tools = Vec::new();
    let mut tool_versions = vec![(
        "zoneprof".to_string(),
        version(&[&zoneprof.display().to_string(), "--version"]),
    )];
    match &perf {
        Some(_) => tool_versions.push(("perf".into(), version(&["perf", "version"]))),
        None => skipped_tools.push("perf (linux-perf) not installed".to_string()),
    }
    match &bpftrace {
        Some(_) => tool_versions.push(("bpftrace".into(), version(&["bpftrace", "--version"]))),
        None => skipped_tools.push("bpftrace not installed".to_string()),
    }
    let tools = overhead::Tools {
        zoneprof: zoneprof.clone(),
        perf,
        bpftrace,
        scratch: scratch.clone(),
    };
    let load_before = host::loadavg();
    let mut phase_s = Vec::new();

    // 1. Throughput.
    let mut busy_samples = Vec::new();
    let mut foreign_bpf_samples = Vec::new();
    let mut fixed_cpu = Vec::new();
    let runs = if opts.skip_overhead {
        Vec::new()
    } else {
        println!("==> bench: each tool's fixed CPU cost around `true` (3 runs each)");
        fixed_cpu = overhead::fixed_costs(&tools, 3)?;
        for (v, c) in &fixed_cpu {
            log(&format!("  {:<46} {c:.3} CPU s", v.label()));
        }
        println!(
            "==> bench: throughput, {} rounds x 2 reproducers x {} variants, {} s each",
            opts.rounds,
            overhead::Variant::ALL.len(),
            opts.secs
        );
        let t = Instant::now();
        let mut logf = |s: &str| {
            busy_samples.push(host::others_busy());
            foreign_bpf_samples.push(host::foreign_bpf_tracepoint_progs());
            log(s);
        };
        let r = overhead::run_all(&tools, cpus, opts.secs, opts.rounds, &mut logf)?;
        phase_s.push(("throughput".to_string(), t.elapsed().as_secs_f64()));
        r
    };
    let cells = overhead::summarize(&runs, f64::from(opts.secs), &fixed_cpu);

    // 2. In-kernel cost per event.
    println!("==> bench: in-kernel cost per event (kernel.bpf_stats_enabled=1 while measuring)");
    let t = Instant::now();
    let mut costs = Vec::new();
    {
        let _stats = progcost::StatsEnabled::enable()?;
        let cross = overhead::Repro::CrossCpuPages.argv(&zoneprof, cpus, opts.cost_secs);
        let tap = overhead::Repro::Tap.argv(&zoneprof, cpus, opts.cost_secs);
        let out = scratch.join("cost.out");
        let zp = |extra: &[&str], repro: &[String]| {
            progcost::zoneprof_argv(&zoneprof, extra, repro, &out)
        };
        let mut plan: Vec<(&str, Vec<String>)> = vec![
            ("cross-cpu-pages, default probes", zp(&[], &cross)),
            ("tap, default probes", zp(&[], &tap)),
            ("cross-cpu-pages, --tasks", zp(&["--tasks"], &cross)),
            ("tap, --tasks", zp(&["--tasks"], &tap)),
            (
                "cross-cpu-pages, --page-flows (1 in 64)",
                zp(&["--page-flows"], &cross),
            ),
            (
                "cross-cpu-pages, --page-flows --page-sample 1",
                zp(&["--page-flows", "--page-sample", "1"], &cross),
            ),
        ];
        // The bpftrace script's programs, for comparison (kstack in contention_end).
        if let Some(bt) = &tools.bpftrace {
            let script = scratch.join("zoneprof-compare.bt");
            std::fs::write(&script, overhead::BPFTRACE_SCRIPT)
                .with_context(|| format!("writing {}", script.display()))?;
            plan.push((
                "cross-cpu-pages, bpftrace script",
                vec![
                    bt.display().to_string(),
                    "-o".into(),
                    out.display().to_string(),
                    "-c".into(),
                    cross.join(" "),
                    script.display().to_string(),
                ],
            ));
        }
        for (label, argv) in plan {
            let c = progcost::measure(&argv, opts.cost_secs, label)?;
            std::fs::remove_file(&out).ok();
            for p in &c.progs {
                log(&format!(
                    "  {label:<46} {:<24} {:>10} events/s {:>8}",
                    p.name,
                    format!("{:.0}", p.events_per_s()),
                    p.ns_per_event()
                        .map_or_else(|| "-".to_string(), |v| format!("{v:.0} ns")),
                ));
            }
            costs.push(c);
        }
    }
    phase_s.push(("in-kernel cost".to_string(), t.elapsed().as_secs_f64()));

    // 2b. Observer effect: perf sampling of the refill and drain paths.
    // Left out with the throughput runs: it is the same kind of long, load-sensitive run.
    let observer = match &tools.perf {
        Some(perf) if !opts.skip_overhead => {
            println!("==> bench: observer effect (perf record -a -g over cross-cpu-pages)");
            let t = Instant::now();
            let o = observer::run(
                &observer::Tools {
                    zoneprof: &zoneprof,
                    perf,
                    scratch: &scratch,
                },
                &opts.observer,
                version(&["perf", "version"]),
                &mut |s| log(s),
            )?;
            phase_s.push(("observer effect".to_string(), t.elapsed().as_secs_f64()));
            Some(o)
        }
        _ => None,
    };

    // 2c. serve: scrapes of a replayed 640-CPU host, CPU idle and under the reproducer.
    // Left out with the throughput runs: its CPU windows are minutes long.
    let serve = if opts.skip_overhead {
        None
    } else {
        println!(
            "==> bench: zoneprof serve (scrapes at {} CPUs, CPU at a 15 s scrape interval)",
            opts.serve.cpus
        );
        let t = Instant::now();
        let s = serve::run(
            &serve::Tools {
                zoneprof: &zoneprof,
                synth: &synth,
                fixtures: &fixtures,
                scratch: &scratch,
            },
            &opts.serve,
            &mut |s| log(s),
        )?;
        phase_s.push(("serve".to_string(), t.elapsed().as_secs_f64()));
        Some(s)
    };

    // 3. Map memory.
    let all_defs = memory::maps();
    let defs: Vec<memory::MapDef> = all_defs
        .iter()
        .map(memory::MapDef::as_created_by_default)
        .collect();
    let big = opts.synth_cpus;
    let live = costs.first().map(|c| c.last.clone()).unwrap_or_default();
    let (checked, unmatched_live) = memory::cross_check(&defs, &live.maps, host.possible_cpus);
    let mem = Memory {
        cpus: big,
        rows: defs
            .iter()
            .map(|d| (*d, memory::map_bytes(d, big)))
            .collect(),
        page_flows_extra: all_defs
            .iter()
            .map(|d| memory::map_bytes(d, big) - memory::map_bytes(&d.as_created_by_default(), big))
            .sum(),
        callchain_bytes: memory::callchain_bytes(big, host.perf_max_stack),
        checked,
        unmatched_live,
        prog_memlock: live.progs.iter().map(|p| p.memlock).sum(),
    };
    for c in &mem.checked {
        match &c.live {
            Some(l) if l.memlock != c.model_here => log(&format!(
                "  warning: {} model {} B at {} CPUs, kernel says {} B",
                c.def.name, c.model_here, host.possible_cpus, l.memlock
            )),
            None => log(&format!(
                "  warning: {} not found in the running zoneprof: the memory model is out of date",
                c.def.name
            )),
            _ => {}
        }
    }
    log(&format!(
        "==> bench: map memory at {big} possible CPUs: {:.1} MB (+ {:.1} MB perf callchain buffers, {:.2} MB programs)",
        mem.maps_total() as f64 / MB,
        mem.callchain_bytes as f64 / MB,
        mem.prog_memlock as f64 / MB
    ));

    // 4. Userspace.
    println!(
        "==> bench: report/compare/flamegraph on a synthetic {}-CPU recording with {} stacks",
        opts.synth_cpus, opts.synth_stacks
    );
    let t = Instant::now();
    let userspace = userspace::run(
        &zoneprof,
        &synth,
        userspace::SynthSpec {
            cpus: opts.synth_cpus,
            // One node per 80 CPUs, as on the seed's 640-CPU host (8 nodes).
            nodes: (opts.synth_cpus / 80).max(1),
            stacks: opts.synth_stacks,
            skb_cells: 3_000,
        },
        &fixtures,
        &scratch,
        opts.reps,
        &mut |s| log(s),
    )?;
    phase_s.push(("userspace".to_string(), t.elapsed().as_secs_f64()));

    let mut res = Results {
        host,
        opts: opts.clone(),
        zoneprof,
        tool_versions,
        skipped_tools,
        load_before,
        load_after: host::loadavg(),
        busy_samples,
        foreign_bpf_samples,
        runs,
        fixed_cpu,
        cells,
        costs,
        memory: mem,
        userspace: Some(userspace),
        observer,
        serve,
        targets: Vec::new(),
        elapsed_s: 0.0,
        phase_s,
    };
    res.targets = doc::targets(&res);
    res.elapsed_s = started.elapsed().as_secs_f64();

    // A partial run (no throughput) must not replace the full results.
    let partial = opts.skip_overhead;
    let json_path = bench_dir.join(if partial {
        "bench-partial.json"
    } else {
        "bench.json"
    });
    let json = serde_json::to_string_pretty(&doc::to_json(&res))
        .context("serializing the bench results")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let doc_path = opts.doc.clone().unwrap_or_else(|| {
        if partial {
            bench_dir.join("benchmarks-partial.md")
        } else {
            ws.root.join("docs/benchmarks.md")
        }
    });
    // Read again: the prose may have been edited while the bench ran.
    let template = read_template(&template_path, &spans)?;
    let filled = template::fill(&template, &doc::values(&res))
        .with_context(|| format!("filling {}", template_path.display()))?;
    std::fs::write(&doc_path, filled).with_context(|| format!("writing {}", doc_path.display()))?;
    std::fs::remove_dir_all(&scratch).ok();

    println!("==> bench: targets");
    for t in &res.targets {
        println!(
            "  {:<22} {} ({}): {}",
            t.verdict(),
            t.what,
            t.limit,
            t.measured
        );
    }
    if let Some(o) = &res.observer {
        print_observer_targets(o);
    }
    if let Some(s) = &res.serve {
        serve::print_targets(s);
    }
    println!(
        "==> bench: done in {:.0} s; wrote {} and {}",
        res.elapsed_s,
        json_path.display(),
        doc_path.display()
    );
    Ok(())
}

fn print_observer_targets(o: &observer::Observer) {
    println!("==> bench: observer-effect targets");
    for t in &o.targets {
        println!(
            "  {:<26} {} ({}): {}",
            t.verdict_text().replace("**", ""),
            t.what,
            t.limit,
            t.measured
        );
    }
}

/// `--only-observer`: the observer phase alone. Its JSON goes to target/bench/observer.json
/// (bench.json keeps the last whole run), and only its section of the doc is replaced, so
/// the other sections keep the figures of the run that wrote them.
fn run_observer_only(
    ws: &Workspace,
    opts: &Opts,
    zoneprof: &std::path::Path,
    bench_dir: &std::path::Path,
    scratch: &std::path::Path,
) -> Result<()> {
    let perf = which("perf").context(
        "perf (linux-perf) is not installed: cargo xtask setup, or apt-get install linux-perf",
    )?;
    let doc_path = opts
        .doc
        .clone()
        .unwrap_or_else(|| ws.root.join("docs/benchmarks.md"));
    read_template(&doc_path, doc::OBSERVER_SPANS)?;
    println!("==> bench: observer effect only (perf record -a -g over cross-cpu-pages)");
    let o = observer::run(
        &observer::Tools {
            zoneprof,
            perf: &perf,
            scratch,
        },
        &opts.observer,
        version(&["perf", "version"]),
        &mut |s| log(s),
    )?;
    let json_path = bench_dir.join("observer.json");
    let json = serde_json::to_string_pretty(&observer::to_json(&o))
        .context("serializing the observer results")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    // Read again: the prose may have been edited while the bench ran.
    let old_doc = read_template(&doc_path, doc::OBSERVER_SPANS)?;
    let filled = template::fill(&old_doc, &doc::observer_values(&o))
        .with_context(|| format!("filling {}", doc_path.display()))?;
    std::fs::write(&doc_path, filled).with_context(|| format!("writing {}", doc_path.display()))?;
    std::fs::remove_dir_all(scratch).ok();
    print_observer_targets(&o);
    println!(
        "==> bench: observer effect done in {:.0} s; wrote {} and the observer section of {}",
        o.elapsed_s,
        json_path.display(),
        doc_path.display()
    );
    Ok(())
}

/// `--fixtures`, or `shared/fixtures/contention` inside or beside the workspace.
fn fixtures_dir(ws: &Workspace, opts: &Opts) -> Result<PathBuf> {
    match &opts.fixtures {
        Some(f) => Ok(f.clone()),
        None => host::first_existing(&[
            ws.root.join("shared/fixtures/contention"),
            ws.root.join("../shared/fixtures/contention"),
        ])
        .context(
            "no shared/fixtures/contention beside or inside the workspace: pass --fixtures DIR",
        ),
    }
}

/// `--only-serve`: the serve phase alone. Its JSON goes to target/bench/serve.json, and only
/// its section of the doc is replaced.
fn run_serve_only(
    ws: &Workspace,
    opts: &Opts,
    tools: &serve::Tools<'_>,
    bench_dir: &std::path::Path,
) -> Result<()> {
    let doc_path = opts
        .doc
        .clone()
        .unwrap_or_else(|| ws.root.join("docs/benchmarks.md"));
    read_template(&doc_path, serve::SERVE_SPANS)?;
    if host::facts().online_cpus < 2 {
        bail!("the reproducer needs two online CPUs");
    }
    println!(
        "==> bench: zoneprof serve only ({} scrapes at {} CPUs; {} s idle and {} s under cross-cpu-pages, scraped every 15 s)",
        opts.serve.scrapes, opts.serve.cpus, opts.serve.window_secs, opts.serve.window_secs
    );
    let s = serve::run(tools, &opts.serve, &mut |s| log(s))?;
    let json_path = bench_dir.join("serve.json");
    let json = serde_json::to_string_pretty(&serve::to_json(&s))
        .context("serializing the serve results")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    // Read again: the prose may have been edited while the bench ran.
    let old_doc = read_template(&doc_path, serve::SERVE_SPANS)?;
    let filled = template::fill(&old_doc, &serve::values(&s))
        .with_context(|| format!("filling {}", doc_path.display()))?;
    std::fs::write(&doc_path, filled).with_context(|| format!("writing {}", doc_path.display()))?;
    std::fs::remove_dir_all(tools.scratch).ok();
    serve::print_targets(&s);
    println!(
        "==> bench: serve done in {:.0} s; wrote {} and the serve section of {}",
        s.elapsed_s,
        json_path.display(),
        doc_path.display()
    );
    Ok(())
}

/// The doc at `path`, whose hand-written text the bench keeps: it must hold a span for each
/// of `spans`, or the run would lose figures.
fn read_template(path: &std::path::Path, spans: &[&str]) -> Result<String> {
    let doc = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (the bench fills its spans)", path.display()))?;
    let missing =
        template::missing(&doc, spans).with_context(|| format!("in {}", path.display()))?;
    if !missing.is_empty() {
        bail!(
            "{} lacks the spans {} (`<!-- bench:NAME -->…<!-- /bench:NAME -->`): add them where \
             the figures belong",
            path.display(),
            missing.join(", ")
        );
    }
    Ok(doc)
}
