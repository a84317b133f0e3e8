//! `cargo xtask`: developer tasks for zoneprof (setup, build, test, demo).

mod bench;
mod cmd;
mod fuzz;
mod setup;
mod soak;
mod tasks;
mod vm;
mod workspace;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::workspace::Workspace;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "zoneprof developer tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check, and install where missing, the toolchain and tools zoneprof needs
    /// (nightly + rust-src, LLVM 22 packages, bpf-linker 0.13, iproute2, tracefs, and
    /// qemu-system-x86, busybox-static, cpio, xz-utils for the VM tasks).
    Setup {
        /// Only report; exit 1 if anything is missing.
        #[arg(long)]
        check: bool,
    },
    /// Setup, then build the release binary (target/release/zoneprof).
    Build,
    /// Setup, build release, run all host tests with ZONEPROF_BIN set, print a summary.
    Test {
        /// Extra arguments for `cargo test`, after `--`
        /// (e.g. `cargo xtask test -- --lib -- --nocapture`).
        #[arg(last = true)]
        cargo_test_args: Vec<OsString>,
    },
    /// Setup, build release, then run `zoneprof demo -o DIR`.
    Demo {
        /// Output directory for the demo.
        #[arg(short = 'o', long = "out", default_value = "zoneprof-demo")]
        out: PathBuf,
    },
    /// Boot Debian cloud kernels (and/or local bzImages) under qemu (TCG) and run the
    /// zoneprof scenarios inside each; print a kernel × scenario pass/fail table.
    VmTest {
        #[command(flatten)]
        kernels: KernelArgs,
        /// Recording backends to test (default, tracepoint, kprobe, fentry, all); repeatable.
        /// Scenarios for a backend zoneprof does not offer yet are skipped in the guest.
        #[arg(long, value_name = "BACKEND", value_parser = parse_backends)]
        backend: Vec<Vec<vm::scenarios::Backend>>,
        /// Use this static zoneprof instead of building one.
        #[arg(long, value_name = "PATH")]
        zoneprof: Option<PathBuf>,
        /// Hard limit per boot, seconds (qemu is killed after it).
        #[arg(long, default_value_t = 400)]
        timeout: u64,
        /// Stream each guest console.
        #[arg(short, long)]
        verbose: bool,
        /// Only print the scenario table for the selected backends.
        #[arg(long)]
        list: bool,
    },
    /// Boot a guest of two NUMA nodes (CPU 0 + half the memory on node 0, CPU 1 + the other
    /// half on node 1) and check that pages and SKBs allocated on node 0 and freed on node 1
    /// show as cross-node flows, with per-node zone-lock totals (default kernel: 6.12).
    VmNuma {
        #[command(flatten)]
        kernels: KernelArgs,
        /// Use this static zoneprof instead of building one.
        #[arg(long, value_name = "PATH")]
        zoneprof: Option<PathBuf>,
        /// Hard limit per boot, seconds (qemu is killed after it).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Stream the guest console.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Boot kernels under qemu and run one shell script inside (console streamed).
    VmRun {
        #[command(flatten)]
        kernels: KernelArgs,
        /// Shell text run with `sh -ex` in the guest's /tmp.
        #[arg(long)]
        script: String,
        /// HOST_PATH[:/GUEST_PATH] to add to the initramfs (default /root/NAME); repeatable.
        #[arg(long, value_name = "SPEC")]
        file: Vec<String>,
        /// Kernel module to load first (packaged kernels); repeatable.
        #[arg(long)]
        module: Vec<String>,
        /// NAME=/GUEST_PATH to bring back into target/vm/results/run-KERNEL/run/; repeatable.
        #[arg(long, value_name = "SPEC")]
        collect: Vec<String>,
        /// Build a static zoneprof and put it at /usr/bin/zoneprof.
        #[arg(long)]
        with_zoneprof: bool,
        /// Put this static zoneprof at /usr/bin/zoneprof.
        #[arg(long, value_name = "PATH")]
        zoneprof: Option<PathBuf>,
        /// Add the host's iproute2 `ip` (with its libraries) at /usr/sbin/ip, for
        /// `ip netns` and the tap workload; implied by --with-zoneprof and --zoneprof.
        #[arg(long)]
        with_ip: bool,
        /// Script limit, seconds (the boot gets 120 s more).
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// NUMA nodes of the guest (CPUs and memory split evenly; 0: qemu's single node).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=2))]
        numa_nodes: u32,
        /// Do not stream the console.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Boot the 6.12.117 kernels without and with the tun patch (2 vCPUs), record the tap
    /// workload in each, compare the recordings on the host (text, JSON, HTML,
    /// flamegraphs) and check that the SKB frees of tun_do_read moved to the allocating CPU.
    VmCompare {
        /// Kernel without the patch (default: ../shared/kernels, else `vm-kernel`'s build).
        #[arg(long, value_name = "BZIMAGE", requires = "after")]
        before: Option<PathBuf>,
        /// Kernel with the patch.
        #[arg(long, value_name = "BZIMAGE", requires = "before")]
        after: Option<PathBuf>,
        /// Output directory (default: target/vm-compare).
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: Option<PathBuf>,
        /// Use this static zoneprof instead of building one.
        #[arg(long, value_name = "PATH")]
        zoneprof: Option<PathBuf>,
        /// Workload seconds.
        #[arg(short, long, default_value_t = 3)]
        duration: u32,
        /// Limit for the script in each guest, seconds (the boot gets 120 s more).
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// Stream each guest console.
        #[arg(short, long)]
        verbose: bool,
        /// Print the checks but do not fail on them (testing another patch).
        #[arg(long)]
        no_check: bool,
    },
    /// Build the 6.12.117 test kernels (unpatched, tun-defer) from Debian's linux-source-6.12
    /// into target/vm/kernels/built-6.12.117 (about 15 min on 2 cores).
    VmKernel {
        /// Only unpack, apply the config (make olddefconfig), check it and `patch --dry-run`.
        #[arg(long)]
        prepare_only: bool,
        /// make -j (default: the CPUs available).
        #[arg(short, long)]
        jobs: Option<usize>,
    },
    /// Fetch and cache Debian cloud kernels for the VM tasks (under target/vm/kernels).
    VmFetch {
        #[command(flatten)]
        kernels: KernelArgs,
    },
    /// Measure zoneprof's cost (root): reproducer throughput bare / under zoneprof / perf lock
    /// / bpftrace, in-kernel ns per event, report/compare/flamegraph on a synthetic 640-CPU
    /// recording, map memory at 640 CPUs, serve's scrapes at 640 CPUs and its CPU. Writes
    /// docs/benchmarks.md and target/bench/bench.json.
    Bench(BenchArgs),
    /// Soak (root; a benchmark, not CI): the cross-CPU page and tap reproducers alternately
    /// for MINUTES under `zoneprof record -d` and/or `zoneprof serve` (scraped every 15 s),
    /// side by side; each zoneprof's RSS every 10 s must stay flat within 5 % after the
    /// warm-up, and every kernel loss counter must be reported, equal, in the recording, its
    /// report and /metrics. Writes target/soak/results.json (docs/soak.md).
    Soak {
        /// Minutes of load.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(3..=1440))]
        minutes: u32,
        /// Which zoneprof to soak.
        #[arg(long, value_enum, default_value = "both")]
        what: soak::What,
        /// Passed on to zoneprof (e.g. lock-stats=2,stacks=4 to force map-full losses).
        #[arg(long, value_name = "MAP=N,...")]
        map_entries: Option<String>,
        /// Use target/release/zoneprof as it is: no setup, no build.
        #[arg(long)]
        no_build: bool,
    },
    /// Fuzz every parser of untrusted input (recordings, kallsyms, tracefs formats, BTF, CPU
    /// lists, durations, folded stacks, zoneinfo) with cargo-fuzz on nightly, from the seed
    /// corpora in fuzz/corpus; prints executions and crashes per target, fails on any crash.
    /// Not part of `test` (docs/fuzzing.md).
    Fuzz {
        /// Seconds per target (`--seconds 10` is a quick smoke run).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
        /// Fuzz only this target; repeatable (default: all).
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<String>,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Runs of each (reproducer, variant), round-robin.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Seconds of each reproducer run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=60))]
    secs: u32,
    /// Seconds of each in-kernel cost run (measured over all but the first and last second).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(3..=60))]
    cost_secs: u32,
    /// Runs of each userspace command.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    reps: u32,
    /// Possible CPUs of the synthetic host and of the map-memory figure.
    #[arg(long, default_value_t = 640)]
    cpus: u32,
    /// Distinct stacks of the synthetic recording.
    #[arg(long, default_value_t = 50_000)]
    stacks: u32,
    /// Folded-stack files for the synthetic recording (default: shared/fixtures/contention).
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// Leave out the throughput runs (the long part); results then go to
    /// target/bench/bench-partial.json and benchmarks-partial.md unless --doc is given.
    #[arg(long)]
    skip_overhead: bool,
    /// Use the release binary as it is: no setup, no build.
    #[arg(long)]
    no_build: bool,
    /// Markdown report to write (default docs/benchmarks.md).
    #[arg(long, value_name = "FILE")]
    doc: Option<PathBuf>,
    /// Run only the observer-effect phase (perf sampling of the refill and drain paths) and
    /// replace only its section of the doc; results in target/bench/observer.json.
    #[arg(long, conflicts_with = "only_serve")]
    only_observer: bool,
    /// Run only the serve phase (scrape time and RSS at --cpus replayed CPUs, serve's CPU
    /// idle and under cross-cpu-pages at a 15 s scrape interval) and replace only its
    /// section of the doc; results in target/bench/serve.json.
    #[arg(long)]
    only_serve: bool,
    /// Scrapes of the replayed --cpus host (serve phase).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(10..=10_000))]
    serve_scrapes: u32,
    /// Seconds of each serve CPU window, idle and under cross-cpu-pages (scraped every 15 s).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(15..=3600))]
    serve_secs: u32,
    /// Runs of each observer-effect variant, round-robin.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    observer_rounds: u32,
    /// Seconds of each observer-effect workload run (perf samples all but 1.5 s of it).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(3..=60))]
    observer_secs: u32,
    /// perf sampling frequency of the observer-effect runs, Hz per CPU.
    #[arg(long, default_value_t = 2999, value_parser = clap::value_parser!(u32).range(100..=20_000))]
    perf_freq: u32,
    /// vm-test results to tabulate (default: the workspace's target/vm/results).
    #[arg(long, value_name = "DIR")]
    vm_results: Option<PathBuf>,
    /// Longest wait, in seconds, for other people's qemu VMs and compilers to finish before
    /// each observer-effect run (then it runs anyway, marked disturbed).
    #[arg(long, default_value_t = 600)]
    quiet_wait: u64,
}

#[derive(clap::Args)]
struct KernelArgs {
    /// Kernels to boot: Debian cloud series 6.1, 6.12, the shared 6.12-noinline (PCP refill
    /// functions out of line), or all; repeatable or comma-separated.
    #[arg(long, value_name = "SERIES")]
    kernel: Vec<String>,
    /// A local bzImage to boot (modules must be built in); repeatable. Checked against
    /// SHA256SUMS in its directory when that lists it.
    #[arg(long, value_name = "PATH")]
    bzimage: Vec<PathBuf>,
}

fn parse_backends(s: &str) -> Result<Vec<vm::scenarios::Backend>, String> {
    vm::scenarios::Backend::parse(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Tools installed by `cargo install` (bpf-linker) must be found on PATH, both by our
    // checks and by the eBPF build; this runs before any thread is started.
    if let Some(home) = cargo_home() {
        cmd::prepend_to_path(&home.join("bin"));
    }
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    let ws = Workspace::locate()?;
    match task {
        Task::Setup { check } => setup::run(&ws, check),
        Task::Build => tasks::build(&ws),
        Task::Test { cargo_test_args } => tasks::test(&ws, &cargo_test_args),
        Task::Demo { out } => tasks::demo(&ws, &out),
        Task::VmTest {
            backend,
            list: true,
            ..
        } => {
            vm::cli::list_scenarios(&backend.into_iter().flatten().collect::<Vec<_>>());
            Ok(())
        }
        Task::VmTest {
            kernels,
            backend,
            zoneprof,
            timeout,
            verbose,
            list: false,
        } => vm::cli::vm_test(
            &ws,
            &vm::cli::TestOpts {
                kernels: kernels.kernel,
                bzimages: kernels.bzimage,
                backends: backend.into_iter().flatten().collect(),
                zoneprof,
                timeout: Duration::from_secs(timeout),
                verbose,
                numa: false,
            },
        ),
        Task::VmNuma {
            kernels,
            zoneprof,
            timeout,
            verbose,
        } => vm::cli::vm_test(
            &ws,
            &vm::cli::TestOpts {
                kernels: kernels.kernel,
                bzimages: kernels.bzimage,
                backends: Vec::new(),
                zoneprof,
                timeout: Duration::from_secs(timeout),
                verbose,
                numa: true,
            },
        ),
        Task::VmRun {
            kernels,
            script,
            file,
            module,
            collect,
            with_zoneprof,
            zoneprof,
            with_ip,
            timeout,
            numa_nodes,
            quiet,
        } => vm::cli::vm_run(
            &ws,
            &vm::cli::RunOpts {
                kernels: kernels.kernel,
                bzimages: kernels.bzimage,
                script,
                files: file,
                modules: module,
                collect,
                with_zoneprof,
                zoneprof,
                with_ip,
                timeout: Duration::from_secs(timeout),
                numa_nodes,
                quiet,
            },
        ),
        Task::VmCompare {
            before,
            after,
            out,
            zoneprof,
            duration,
            timeout,
            verbose,
            no_check,
        } => vm::compare::vm_compare(
            &ws,
            &vm::compare::Opts {
                before,
                after,
                out,
                zoneprof,
                duration_s: duration,
                timeout: Duration::from_secs(timeout),
                verbose,
                no_check,
            },
        ),
        Task::VmKernel { prepare_only, jobs } => vm::build::vm_kernel(
            &vm::Dirs::new(&ws)?,
            &vm::build::Opts { prepare_only, jobs },
        )
        .map(|_| ()),
        Task::VmFetch { kernels } => vm::cli::vm_fetch(&ws, &kernels.kernel, &kernels.bzimage),
        Task::Soak {
            minutes,
            what,
            map_entries,
            no_build,
        } => soak::run(
            &ws,
            &soak::Opts {
                minutes,
                what,
                map_entries,
                no_build,
            },
        ),
        Task::Fuzz { seconds, targets } => fuzz::run(&ws, &fuzz::Opts { seconds, targets }),
        Task::Bench(a) => bench::run(
            &ws,
            &bench::Opts {
                only_observer: a.only_observer,
                only_serve: a.only_serve,
                serve: bench::ServeOpts {
                    scrapes: a.serve_scrapes,
                    window_secs: a.serve_secs,
                    cpus: a.cpus,
                },
                observer: bench::ObserverOpts {
                    rounds: a.observer_rounds,
                    secs: a.observer_secs,
                    freq: a.perf_freq,
                    vm_results: match a.vm_results {
                        Some(d) => d,
                        None => ws.target_dir()?.join("vm/results"),
                    },
                    quiet_wait: Duration::from_secs(a.quiet_wait),
                },
                rounds: a.rounds,
                secs: a.secs,
                cost_secs: a.cost_secs,
                reps: a.reps,
                synth_cpus: a.cpus,
                synth_stacks: a.stacks,
                fixtures: a.fixtures,
                skip_overhead: a.skip_overhead,
                no_build: a.no_build,
                doc: a.doc,
            },
        ),
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(args: &[&str]) -> Option<Task> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .ok()
            .map(|c| c.task)
    }

    #[test]
    fn vm_run_takes_a_numa_guest_of_at_most_two_nodes() {
        let nodes = |args: &[&str]| match parse(args) {
            Some(Task::VmRun { numa_nodes, .. }) => Some(numa_nodes),
            _ => None,
        };
        assert_eq!(nodes(&["vm-run", "--script", "true"]), Some(0));
        assert_eq!(
            nodes(&["vm-run", "--script", "true", "--numa-nodes", "2"]),
            Some(2)
        );
        // The guest has two vCPUs: a third node would have none.
        assert_eq!(
            nodes(&["vm-run", "--script", "true", "--numa-nodes", "3"]),
            None
        );
    }

    #[test]
    fn test_passes_everything_after_dashes_to_cargo_test() {
        let Some(Task::Test { cargo_test_args }) =
            parse(&["test", "--", "-p", "profiler", "--", "--nocapture"])
        else {
            panic!("test did not parse");
        };
        assert_eq!(cargo_test_args, ["-p", "profiler", "--", "--nocapture"]);
        assert!(
            matches!(parse(&["test"]), Some(Task::Test { cargo_test_args }) if cargo_test_args.is_empty())
        );
    }

    #[test]
    fn demo_and_setup_flags() {
        assert!(
            matches!(parse(&["demo"]), Some(Task::Demo { out }) if out == Path::new("zoneprof-demo"))
        );
        assert!(
            matches!(parse(&["demo", "-o", "/tmp/d"]), Some(Task::Demo { out }) if out == Path::new("/tmp/d"))
        );
        assert!(matches!(
            parse(&["setup", "--check"]),
            Some(Task::Setup { check: true })
        ));
        assert!(matches!(
            parse(&["setup"]),
            Some(Task::Setup { check: false })
        ));
        assert!(matches!(
            parse(&["bench"]),
            Some(Task::Bench(BenchArgs {
                rounds: 7,
                secs: 3,
                cpus: 640,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["bench", "--only-observer", "--vm-results", "/r"]),
            Some(Task::Bench(BenchArgs {
                only_observer: true,
                observer_rounds: 5,
                vm_results: Some(d),
                ..
            })) if d == Path::new("/r")
        ));
        assert!(matches!(
            parse(&["fuzz"]),
            Some(Task::Fuzz { seconds: 600, targets }) if targets.is_empty()
        ));
        assert!(matches!(
            parse(&["fuzz", "--seconds", "10", "--target", "btf", "--target", "units"]),
            Some(Task::Fuzz { seconds: 10, targets }) if targets == ["btf", "units"]
        ));
        assert!(parse(&["fuzz", "--seconds", "0"]).is_none());
        assert!(matches!(
            parse(&["soak"]),
            Some(Task::Soak {
                minutes: 30,
                what: soak::What::Both,
                map_entries: None,
                no_build: false
            })
        ));
        assert!(matches!(
            parse(&["soak", "--minutes", "3", "--what", "serve", "--map-entries", "stacks=4"]),
            Some(Task::Soak { minutes: 3, what: soak::What::Serve, map_entries: Some(m), .. }) if m == "stacks=4"
        ));
        assert!(parse(&["soak", "--minutes", "2"]).is_none());
        assert!(parse(&["soak", "--what", "top"]).is_none());
        assert!(matches!(
            parse(&["bench", "--only-serve", "--serve-secs", "30"]),
            Some(Task::Bench(BenchArgs {
                only_serve: true,
                serve_scrapes: 200,
                serve_secs: 30,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["bench"]),
            Some(Task::Bench(BenchArgs {
                only_serve: false,
                serve_secs: 120,
                ..
            }))
        ));
        assert!(parse(&["bench", "--only-serve", "--only-observer"]).is_none());
        assert!(parse(&["bench", "--serve-secs", "5"]).is_none());
        assert!(parse(&["bench", "--observer-secs", "2"]).is_none());
        assert!(parse(&["bench", "--rounds", "0"]).is_none());
        assert!(parse(&["bench", "--cost-secs", "2"]).is_none());
    }
}
