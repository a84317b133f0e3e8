//! Throughput of the two reproducers bare and under each profiler, run round-robin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::child::{self, Outcome};
use super::parse;
use super::stats::{Summary, cost_pct, ratios};

/// The bpftrace script: the same tracepoints as zoneprof's default probes, aggregated in
/// the kernel the idiomatic bpftrace way (kernel stacks as map keys, a log2 histogram).
pub const BPFTRACE_SCRIPT: &str = r#"tracepoint:lock:contention_begin { @start[tid, args->lock_addr] = nsecs; }
tracepoint:lock:contention_end /@start[tid, args->lock_addr]/ {
  $d = nsecs - @start[tid, args->lock_addr];
  @wait_ns[kstack] = sum($d);
  @wait_hist = hist($d);
  delete(@start[tid, args->lock_addr]);
}
tracepoint:kmem:mm_page_alloc_zone_locked { @refill[cpu] = count(); }
tracepoint:kmem:mm_page_pcpu_drain { @drain[cpu] = count(); }
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repro {
    CrossCpuPages,
    Tap,
}

impl Repro {
    pub const ALL: [Repro; 2] = [Repro::CrossCpuPages, Repro::Tap];

    pub fn name(self) -> &'static str {
        match self {
            Repro::CrossCpuPages => "cross-cpu-pages",
            Repro::Tap => "tap",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Repro::CrossCpuPages => "GB/s",
            Repro::Tap => "Gbit/s",
        }
    }

    pub fn argv(self, zoneprof: &Path, cpus: (u32, u32), secs: u32) -> Vec<String> {
        let z = zoneprof.display().to_string();
        let d = format!("{secs}s");
        let (a, b) = (cpus.0.to_string(), cpus.1.to_string());
        let v: Vec<&str> = match self {
            Repro::CrossCpuPages => vec![
                &z,
                "workload",
                "cross-cpu-pages",
                "--alloc-cpus",
                &a,
                "--free-cpus",
                &b,
                "-d",
                &d,
            ],
            Repro::Tap => vec![
                &z,
                "workload",
                "tap",
                "--sender-cpus",
                &a,
                "--reader-cpus",
                &b,
                "-d",
                &d,
            ],
        };
        v.into_iter().map(String::from).collect()
    }

    /// Throughput (and, for tap, packets/s) printed by the reproducer.
    pub fn parse(self, stdout: &str) -> Option<(f64, Option<f64>)> {
        match self {
            Repro::CrossCpuPages => parse::cross_cpu_gbs(stdout).map(|v| (v, None)),
            Repro::Tap => parse::tap_rate(stdout).map(|r| (r.gbit_s, Some(r.packets_s))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Bare,
    Zoneprof,
    /// Default probes keyed by thread and cgroup too (`record --tasks`).
    Tasks,
    /// Lock probes only: what perf lock record observes.
    LockProbes,
    PageFlows,
    PageFlowsAll,
    PerfLock,
    Bpftrace,
}

impl Variant {
    pub const ALL: [Variant; 8] = [
        Variant::Bare,
        Variant::Zoneprof,
        Variant::Tasks,
        Variant::LockProbes,
        Variant::PageFlows,
        Variant::PageFlowsAll,
        Variant::PerfLock,
        Variant::Bpftrace,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::Zoneprof => "zoneprof",
            Variant::Tasks => "zoneprof_tasks",
            Variant::LockProbes => "zoneprof_lock_probes",
            Variant::PageFlows => "zoneprof_page_flows",
            Variant::PageFlowsAll => "zoneprof_page_flows_unsampled",
            Variant::PerfLock => "perf_lock_record",
            Variant::Bpftrace => "bpftrace",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::Zoneprof => "zoneprof record (default probes)",
            Variant::Tasks => "zoneprof record --tasks",
            Variant::LockProbes => "zoneprof record --probes contention_begin,contention_end",
            Variant::PageFlows => "zoneprof record --page-flows (1 in 64)",
            Variant::PageFlowsAll => "zoneprof record --page-flows --page-sample 1",
            Variant::PerfLock => "perf lock record -a",
            Variant::Bpftrace => "bpftrace script",
        }
    }
}

/// Where the tools are and where their output goes.
pub struct Tools {
    pub zoneprof: PathBuf,
    /// None: not installed (the variant is skipped, and the doc says so).
    pub perf: Option<PathBuf>,
    pub bpftrace: Option<PathBuf>,
    pub scratch: PathBuf,
}

impl Tools {
    fn available(&self, v: Variant) -> bool {
        match v {
            Variant::PerfLock => self.perf.is_some(),
            Variant::Bpftrace => self.bpftrace.is_some(),
            _ => true,
        }
    }

    /// The command line of `repro` under `v`, and the file its tool writes (if any).
    fn argv(&self, v: Variant, repro: &[String]) -> Result<(Vec<String>, Option<PathBuf>)> {
        let zp = self.zoneprof.display().to_string();
        let out = self.scratch.join(format!("run.{}", v.key()));
        let outs = out.display().to_string();
        let record = |extra: &[&str]| -> Vec<String> {
            let mut a = vec![zp.clone(), "record".into(), "--no-progress".into()];
            a.extend(["-o".to_string(), outs.clone()]);
            a.extend(extra.iter().map(|s| s.to_string()));
            a.push("--".into());
            a.extend(repro.iter().cloned());
            a
        };
        Ok(match v {
            Variant::Bare => (repro.to_vec(), None),
            Variant::Zoneprof => (record(&[]), Some(out)),
            Variant::Tasks => (record(&["--tasks"]), Some(out)),
            Variant::LockProbes => (
                record(&["--probes", "contention_begin,contention_end"]),
                Some(out),
            ),
            Variant::PageFlows => (record(&["--page-flows"]), Some(out)),
            Variant::PageFlowsAll => (record(&["--page-flows", "--page-sample", "1"]), Some(out)),
            Variant::PerfLock => {
                let perf = self.perf.as_ref().context("perf is not installed")?;
                let mut a = vec![
                    perf.display().to_string(),
                    "lock".into(),
                    "record".into(),
                    "-a".into(),
                    "-o".into(),
                    outs,
                    "--".into(),
                ];
                a.extend(repro.iter().cloned());
                (a, Some(out))
            }
            Variant::Bpftrace => {
                let bt = self
                    .bpftrace
                    .as_ref()
                    .context("bpftrace is not installed")?;
                let script = self.scratch.join("zoneprof-compare.bt");
                std::fs::write(&script, BPFTRACE_SCRIPT)
                    .with_context(|| format!("writing {}", script.display()))?;
                if repro.iter().any(|a| a.contains(' ')) {
                    bail!("bpftrace -c cannot pass arguments with spaces: {repro:?}");
                }
                (
                    vec![
                        bt.display().to_string(),
                        "-o".into(),
                        outs,
                        "-c".into(),
                        repro.join(" "),
                        script.display().to_string(),
                    ],
                    Some(out),
                )
            }
        })
    }
}

/// One run.
#[derive(Debug, Clone)]
pub struct Run {
    pub repro: Repro,
    pub variant: Variant,
    pub round: u32,
    pub throughput: f64,
    pub packets_s: Option<f64>,
    pub wall_s: f64,
    /// CPU seconds of the whole process tree (tool + reproducer), from `wait4`.
    pub cpu_s: f64,
    /// Size of what the tool wrote (recording, perf.data, bpftrace output).
    pub output_bytes: Option<u64>,
}

impl Run {
    /// Units of work (GB moved, Gbit read) per CPU second the tree used beyond the tool's
    /// fixed start/stop cost (`fixed_cpu_s`): a measure that other people's load on the
    /// machine moves far less than wall-clock throughput, since time they take is not
    /// charged to our processes.
    pub fn work_per_cpu_s(&self, secs: f64, fixed_cpu_s: f64) -> Option<f64> {
        let cpu = self.cpu_s - fixed_cpu_s;
        (cpu > 0.05).then(|| self.throughput * secs / cpu)
    }
}

fn true_bin() -> String {
    crate::cmd::find_in_path("true")
        .map_or_else(|| "/bin/true".to_string(), |p| p.display().to_string())
}

/// Median CPU seconds each variant's tool costs around a command that does nothing
/// (`true`): start-up (BTF, kallsyms, loading), tear-down (reading maps, writing).
pub fn fixed_costs(tools: &Tools, reps: u32) -> Result<Vec<(Variant, f64)>> {
    let mut out = Vec::new();
    for v in Variant::ALL.into_iter().filter(|v| tools.available(*v)) {
        if v == Variant::Bare {
            out.push((v, 0.0));
            continue;
        }
        let mut cpu = Vec::new();
        for _ in 0..reps {
            // An absolute path: bpftrace -c refuses a name that PATH resolves twice
            // (/bin and /usr/bin on merged-/usr systems).
            let (cmd, file) = tools.argv(v, &[true_bin()])?;
            let o = child::run_ok(&cmd, Duration::from_secs(60))?;
            cpu.push(o.cpu_s);
            if let Some(f) = file {
                std::fs::remove_file(f).ok();
            }
        }
        let Some(s) = Summary::of(&cpu) else {
            bail!("no fixed-cost runs of {}", v.label());
        };
        out.push((v, s.median));
    }
    Ok(out)
}

/// Every run of one (reproducer, variant), summarised as ratios to the bare median.
#[derive(Debug, Clone)]
pub struct Cell {
    pub repro: Repro,
    pub variant: Variant,
    pub throughput: Summary,
    /// Ratios of each run to the bare median of the same reproducer.
    pub ratio: Summary,
    /// Ratios of each run's work per marginal CPU second to the bare median of it.
    pub cpu_ratio: Option<Summary>,
    /// The tool's fixed CPU cost subtracted.
    pub fixed_cpu_s: f64,
    pub output_bytes: Option<u64>,
}

impl Cell {
    pub fn cost_pct(&self) -> f64 {
        cost_pct(self.ratio.median)
    }

    /// Extra CPU per unit of work, in percent of the bare runs' (1/ratio - 1).
    pub fn cpu_cost_pct(&self) -> Option<f64> {
        self.cpu_ratio
            .filter(|r| r.median > 0.0)
            .map(|r| (1.0 / r.median - 1.0) * 100.0)
    }
}

/// Runs every reproducer under every available variant, `rounds` times, round-robin: each
/// round runs each variant once per reproducer, starting at a different variant each round,
/// so slow drifts in the machine's load spread over all variants.
pub fn run_all(
    tools: &Tools,
    cpus: (u32, u32),
    secs: u32,
    rounds: u32,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Run>> {
    let variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| tools.available(*v))
        .collect();
    let timeout = Duration::from_secs(u64::from(secs) + 60);
    // Warm-up (page cache, tap module, first netns): not counted.
    for repro in Repro::ALL {
        let argv = repro.argv(&tools.zoneprof, cpus, 1);
        child::run_ok(&argv, timeout).context("warm-up run")?;
    }
    let mut runs = Vec::new();
    let total = rounds as usize * Repro::ALL.len() * variants.len();
    for round in 0..rounds {
        for repro in Repro::ALL {
            let argv = repro.argv(&tools.zoneprof, cpus, secs);
            for i in 0..variants.len() {
                let v = variants[(i + round as usize) % variants.len()];
                let (cmd, out) = tools.argv(v, &argv)?;
                if let Some(o) = &out {
                    std::fs::remove_file(o).ok();
                }
                let o = child::run_ok(&cmd, timeout)?;
                let (throughput, packets_s) = repro.parse(&o.stdout).with_context(|| {
                    format!(
                        "no throughput line in the output of `{}`: {}",
                        child::shown(&cmd),
                        o.stdout.trim()
                    )
                })?;
                let output_bytes = out
                    .as_ref()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len());
                if let Some(o) = &out {
                    std::fs::remove_file(o).ok();
                }
                log(&format!(
                    "  [{}/{total}] round {} {:<16} {:<46} {:>7.2} {}",
                    runs.len() + 1,
                    round + 1,
                    repro.name(),
                    v.label(),
                    throughput,
                    repro.unit()
                ));
                runs.push(Run {
                    repro,
                    variant: v,
                    round,
                    throughput,
                    packets_s,
                    wall_s: wall(&o),
                    cpu_s: o.cpu_s,
                    output_bytes,
                });
            }
        }
    }
    Ok(runs)
}

fn wall(o: &Outcome) -> f64 {
    o.wall.as_secs_f64()
}

/// Groups runs per (reproducer, variant) with ratios to that reproducer's bare median.
pub fn summarize(runs: &[Run], secs: f64, fixed: &[(Variant, f64)]) -> Vec<Cell> {
    let fixed_of = |v: Variant| fixed.iter().find(|(f, _)| *f == v).map_or(0.0, |(_, c)| *c);
    let mut cells = Vec::new();
    for repro in Repro::ALL {
        let eff = |v: Variant| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.repro == repro && r.variant == v)
                .filter_map(|r| r.work_per_cpu_s(secs, fixed_of(v)))
                .collect()
        };
        let bare_eff = Summary::of(&eff(Variant::Bare));
        let of = |v: Variant| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.repro == repro && r.variant == v)
                .map(|r| r.throughput)
                .collect()
        };
        let Some(bare) = Summary::of(&of(Variant::Bare)) else {
            continue;
        };
        for v in Variant::ALL {
            let values = of(v);
            let (Some(throughput), Some(ratio)) = (
                Summary::of(&values),
                Summary::of(&ratios(&values, bare.median)),
            ) else {
                continue;
            };
            let sizes: Vec<f64> = runs
                .iter()
                .filter(|r| r.repro == repro && r.variant == v)
                .filter_map(|r| r.output_bytes.map(|b| b as f64))
                .collect();
            let cpu_ratio = bare_eff.and_then(|b| Summary::of(&ratios(&eff(v), b.median)));
            cells.push(Cell {
                repro,
                variant: v,
                throughput,
                ratio,
                cpu_ratio,
                fixed_cpu_s: fixed_of(v),
                output_bytes: Summary::of(&sizes).map(|s| s.median as u64),
            });
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(repro: Repro, variant: Variant, throughput: f64) -> Run {
        Run {
            repro,
            variant,
            round: 0,
            throughput,
            packets_s: None,
            wall_s: 3.0,
            cpu_s: throughput,
            output_bytes: None,
        }
    }

    #[test]
    fn ratios_are_to_the_bare_median_of_the_same_reproducer() {
        let runs = vec![
            run(Repro::CrossCpuPages, Variant::Bare, 1.0),
            run(Repro::CrossCpuPages, Variant::Bare, 1.2),
            run(Repro::CrossCpuPages, Variant::Bare, 0.8),
            run(Repro::CrossCpuPages, Variant::Zoneprof, 0.9),
            run(Repro::CrossCpuPages, Variant::Zoneprof, 1.1),
            run(Repro::Tap, Variant::Bare, 10.0),
            run(Repro::Tap, Variant::Bpftrace, 5.0),
        ];
        let cells = summarize(&runs, 3.0, &[]);
        let zp = cells
            .iter()
            .find(|c| c.variant == Variant::Zoneprof)
            .expect("zoneprof cell");
        assert!((zp.ratio.median - 1.0).abs() < 1e-9);
        assert!((zp.ratio.min - 0.9).abs() < 1e-9);
        let bt = cells
            .iter()
            .find(|c| c.variant == Variant::Bpftrace)
            .expect("bpftrace cell");
        assert!((bt.ratio.median - 0.5).abs() < 1e-9);
        assert!((bt.cost_pct() - 50.0).abs() < 1e-9);
        assert_eq!(cells.len(), 4);
        // cpu_s == throughput in these runs: the same work per CPU second everywhere.
        assert!((zp.cpu_cost_pct().expect("cpu cost")).abs() < 1e-9);
    }

    #[test]
    fn work_per_cpu_second_subtracts_the_fixed_cost() {
        let mut r = run(Repro::CrossCpuPages, Variant::Zoneprof, 1.0);
        r.cpu_s = 2.5;
        assert_eq!(r.work_per_cpu_s(3.0, 0.5), Some(1.5));
        assert_eq!(r.work_per_cpu_s(3.0, 2.5), None);
        let cells = summarize(
            &[
                Run {
                    cpu_s: 2.0,
                    ..run(Repro::Tap, Variant::Bare, 1.0)
                },
                Run {
                    cpu_s: 2.7,
                    ..run(Repro::Tap, Variant::Zoneprof, 1.0)
                },
            ],
            3.0,
            &[(Variant::Zoneprof, 0.5)],
        );
        let zp = cells
            .iter()
            .find(|c| c.variant == Variant::Zoneprof)
            .expect("cell");
        assert!((zp.cpu_cost_pct().expect("cpu") - 10.0).abs() < 1e-9);
    }

    #[test]
    fn command_lines() {
        let tools = Tools {
            zoneprof: "/z".into(),
            perf: Some("/usr/bin/perf".into()),
            bpftrace: None,
            scratch: "/tmp/s".into(),
        };
        let repro = Repro::CrossCpuPages.argv(Path::new("/z"), (0, 1), 3);
        assert_eq!(
            repro.join(" "),
            "/z workload cross-cpu-pages --alloc-cpus 0 --free-cpus 1 -d 3s"
        );
        let (a, out) = tools.argv(Variant::PageFlowsAll, &repro).expect("argv");
        assert_eq!(
            a[..9].join(" "),
            "/z record --no-progress -o /tmp/s/run.zoneprof_page_flows_unsampled --page-flows --page-sample 1 --"
        );
        assert!(out.is_some());
        let (p, _) = tools.argv(Variant::PerfLock, &repro).expect("argv");
        assert_eq!(
            p[..7].join(" "),
            "/usr/bin/perf lock record -a -o /tmp/s/run.perf_lock_record --"
        );
        assert!(!tools.available(Variant::Bpftrace));
        assert!(tools.argv(Variant::Bpftrace, &repro).is_err());
        let tap = Repro::Tap.argv(Path::new("/z"), (2, 3), 5);
        assert_eq!(
            tap.join(" "),
            "/z workload tap --sender-cpus 2 --reader-cpus 3 -d 5s"
        );
    }
}
