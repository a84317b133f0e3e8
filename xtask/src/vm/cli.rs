//! The `vm-*` subcommands: `vm-test` (the scenario table per kernel), `vm-numa` (the NUMA
//! scenarios in a two-node guest), `vm-run` (one ad hoc
//! boot) and `vm-fetch` (fetch/cache kernels only).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use super::scenarios::{self, Backend, GUEST_ZONEPROF, KernelInfo, Run, Scenario};
use super::{Boot, BootOpts, Dirs, End, GuestFile, Kernel, Payload, StepEnd, kernel};
use crate::workspace::Workspace;

/// `--kernel all` must stay under this (the project's time budget); exceeded = warned.
const BUDGET: Duration = Duration::from_secs(20 * 60);

/// A kernel asked for on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelSel {
    /// Debian cloud kernel series ("6.1", "6.12").
    Debian(String),
    /// A kernel of `../shared/kernels` by its short name ("6.12-noinline").
    Shared(String),
    BzImage(PathBuf),
}

/// Kernels of `../shared/kernels` that `--kernel` names: (name, file).
pub const SHARED_KERNELS: &[(&str, &str)] = &[
    // rmqueue_bulk and __rmqueue_pcplist out of line: the PCP batch hooks, for real.
    ("6.12-noinline", "bzImage-6.12.117-pcp-noinline"),
];

impl KernelSel {
    fn label(&self) -> String {
        match self {
            KernelSel::Debian(s) | KernelSel::Shared(s) => s.clone(),
            KernelSel::BzImage(p) => p.display().to_string(),
        }
    }

    fn resolve(&self, ws: &Workspace, dirs: &Dirs) -> Result<Kernel> {
        match self {
            KernelSel::Debian(series) => kernel::debian(series, &dirs.kernels()),
            KernelSel::Shared(name) => {
                let file = SHARED_KERNELS
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| *f)
                    .ok_or_else(|| anyhow!("no shared kernel named {name}"))?;
                let path = super::compare::shared_dir(ws).join(file);
                let k = kernel::bzimage(&path)?;
                // A shared kernel is only trusted as published.
                if !k.origin.contains("SHA-256 verified") {
                    bail!("{} is not verified: {}", path.display(), k.origin);
                }
                Ok(k)
            }
            KernelSel::BzImage(p) => kernel::bzimage(p),
        }
    }
}

/// `--kernel` values (`6.1`, `6.12`, `all`; repeatable) plus `--bzimage` paths. With
/// neither, `default` series are used.
pub fn select(
    kernels: &[String],
    bzimages: &[PathBuf],
    default: &[&str],
) -> Result<Vec<KernelSel>> {
    let mut out: Vec<KernelSel> = Vec::new();
    let mut add = |k: KernelSel| {
        if !out.contains(&k) {
            out.push(k);
        }
    };
    let requested: Vec<String> = if kernels.is_empty() && bzimages.is_empty() {
        default.iter().map(|s| (*s).to_owned()).collect()
    } else {
        kernels.to_vec()
    };
    for k in requested {
        for part in k.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let shared = |n: &str| SHARED_KERNELS.iter().any(|(s, _)| *s == n);
            if part == "all" {
                for s in kernel::DEBIAN_SERIES {
                    add(KernelSel::Debian((*s).to_owned()));
                }
                for (s, _) in SHARED_KERNELS {
                    add(KernelSel::Shared((*s).to_owned()));
                }
            } else if kernel::DEBIAN_SERIES.contains(&part) {
                add(KernelSel::Debian(part.to_owned()));
            } else if shared(part) {
                add(KernelSel::Shared(part.to_owned()));
            } else {
                let names: Vec<&str> = kernel::DEBIAN_SERIES
                    .iter()
                    .copied()
                    .chain(SHARED_KERNELS.iter().map(|(n, _)| *n))
                    .collect();
                bail!(
                    "unknown --kernel {part:?}: use {} or all (or --bzimage PATH)",
                    names.join(", ")
                );
            }
        }
    }
    for b in bzimages {
        add(KernelSel::BzImage(b.clone()));
    }
    Ok(out)
}

pub struct TestOpts {
    pub kernels: Vec<String>,
    pub bzimages: Vec<PathBuf>,
    pub backends: Vec<Backend>,
    /// A prebuilt static zoneprof instead of building one.
    pub zoneprof: Option<PathBuf>,
    /// Per boot.
    pub timeout: Duration,
    pub verbose: bool,
    /// `vm-numa`: the NUMA scenarios in a guest of [`scenarios::NUMA_NODES`] nodes
    /// (default kernel 6.12) instead of the scenario table.
    pub numa: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

struct Row {
    kernel: String,
    scenario: String,
    verdict: Verdict,
    log: Option<PathBuf>,
}

struct KernelRun {
    label: String,
    origin: String,
    booted_after: Option<Duration>,
    guest_boot_s: Option<f64>,
    elapsed: Option<Duration>,
    info: Option<KernelInfo>,
    /// `zoneprof doctor --methods` in the guest.
    methods: Option<scenarios::MethodTable>,
}

/// `cargo xtask vm-test --list`: the scenario table for `backends` (default: default).
pub fn list_scenarios(backends: &[Backend]) {
    let backends = if backends.is_empty() {
        &[Backend::Default][..]
    } else {
        backends
    };
    for s in scenarios::table(backends) {
        println!(
            "{:<28} backend {:<10} modules {:<6} {}",
            s.name,
            s.backend.map_or("-", Backend::name),
            if s.modules.is_empty() {
                "-".to_owned()
            } else {
                s.modules.join(",")
            },
            s.about
        );
        if let Some(r) = &s.requires {
            println!("{:<28} requires: {r}", "");
        }
        for line in s
            .script
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .take(3)
        {
            println!("{:<28} | {line}", "");
        }
    }
}

/// `cargo xtask vm-test`, or `vm-numa` with `opts.numa`.
pub fn vm_test(ws: &Workspace, opts: &TestOpts) -> Result<()> {
    let started = Instant::now();
    super::check_tools()?;
    let (task, default_kernels, numa_nodes) = if opts.numa {
        ("vm-numa", &["6.12"][..], scenarios::NUMA_NODES)
    } else {
        ("vm-test", &["all"][..], 0)
    };
    let sels = select(&opts.kernels, &opts.bzimages, default_kernels)?;
    let dirs = Dirs::new(ws)?;
    let bin = zoneprof_binary(ws, opts.zoneprof.as_deref())?;
    let mut backends = opts.backends.clone();
    if backends.is_empty() {
        backends.push(Backend::Default);
    }
    backends.sort();
    backends.dedup();
    let table = if opts.numa {
        scenarios::numa_table()
    } else {
        scenarios::table(&backends)
    };
    let mut files = vec![GuestFile::from_host(&bin, GUEST_ZONEPROF, 0o755)?];
    // The tap scenarios need iproute2's ip (netns); without it they fail naming it.
    match super::hostbin::iproute2() {
        Ok(ip) => files.extend(ip),
        Err(e) => println!("==> {task}: note: {e:#}; the tap scenarios will fail"),
    }
    let payload = Payload {
        steps: table.iter().map(Scenario::step).collect(),
        files,
        modules: {
            let mut m: Vec<String> = table
                .iter()
                .flat_map(|s| s.modules.iter().map(|m| (*m).to_owned()))
                .collect();
            m.sort();
            m.dedup();
            m
        },
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut runs: Vec<KernelRun> = Vec::new();
    for sel in &sels {
        let kernel = match sel.resolve(ws, &dirs) {
            Ok(k) => k,
            Err(e) => {
                println!("==> {task}: kernel {} unavailable: {e:#}", sel.label());
                rows.push(Row {
                    kernel: sel.label(),
                    scenario: "(kernel)".into(),
                    verdict: Verdict::Fail(format!("unavailable: {e:#}")),
                    log: None,
                });
                continue;
            }
        };
        println!("==> {task}: booting {} ({})", kernel.label, kernel.origin);
        let boot_opts = BootOpts {
            timeout: opts.timeout,
            echo: opts.verbose,
            tag: task.into(),
            numa_nodes,
            ..BootOpts::default()
        };
        let boot = match super::boot(&dirs, &kernel, &payload, &boot_opts) {
            Ok(b) => b,
            Err(e) => {
                println!("==> {task}: {}: {e:#}", kernel.label);
                rows.push(Row {
                    kernel: kernel.label.clone(),
                    scenario: "(boot)".into(),
                    verdict: Verdict::Fail(format!("{e:#}")),
                    log: None,
                });
                continue;
            }
        };
        if boot.end == End::HungAfterExit {
            println!(
                "    note: {}: the payload finished but poweroff hung",
                boot.kernel
            );
        }
        println!(
            "    {}: {} in {:.1} s (booted after {}); console log {}",
            boot.kernel,
            boot.end_text,
            boot.elapsed.as_secs_f64(),
            boot.booted_after
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "never".into()),
            boot.console_log.display()
        );
        // vm-numa's files beside vm-test's, not over them.
        let saved = if opts.numa {
            save_files(&dirs, &format!("numa-{}", kernel.label), &boot)?
        } else {
            save_files(&dirs, &kernel.label, &boot)?
        };
        if let Some(dir) = saved {
            println!("    files from the guest: {}", dir.display());
        }
        let kernel_rows = evaluate(&kernel, &boot, &table);
        for r in &kernel_rows {
            print_row(r);
        }
        rows.extend(kernel_rows);
        runs.push(KernelRun {
            label: kernel.label.clone(),
            origin: kernel.origin.clone(),
            booted_after: boot.booted_after,
            guest_boot_s: boot.transcript.booted_uptime,
            elapsed: Some(boot.elapsed),
            info: boot
                .transcript
                .step("kernel-info")
                .filter(|s| matches!(s.end, StepEnd::Exited { status: 0, .. }))
                .map(|s| KernelInfo::parse(&s.output)),
            methods: boot
                .received
                .files
                .get("probe-methods/methods.json")
                .and_then(|j| scenarios::MethodTable::parse(j).ok())
                .map(|mut m| {
                    m.kernel = kernel.label.clone();
                    m
                }),
        });
    }

    let tables: Vec<scenarios::MethodTable> =
        runs.iter().filter_map(|k| k.methods.clone()).collect();
    if !tables.is_empty() {
        print_method_table(&tables);
        println!("==> vm-test: the card's probes (kprobe and fentry)");
        let verdict = match scenarios::card_proof(&tables) {
            Ok(lines) => {
                for l in &lines {
                    println!("  {l}");
                }
                Verdict::Pass(format!("{} probe × method lines", lines.len()))
            }
            Err(e) => {
                println!("  FAIL {e:#}");
                Verdict::Fail(format!("{e:#}"))
            }
        };
        rows.push(Row {
            kernel: "(all)".into(),
            scenario: "card-probes".into(),
            verdict,
            log: None,
        });
    }
    print_summary(&runs, &rows, started.elapsed());
    let failed = rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .count();
    if failed > 0 {
        bail!(
            "{task}: {failed} of {} kernel × scenario checks failed",
            rows.len()
        );
    }
    println!(
        "==> {task}: all {} checks passed or were skipped",
        rows.len()
    );
    Ok(())
}

fn zoneprof_binary(ws: &Workspace, given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => {
            super::check_static(p)?;
            Ok(p.to_path_buf())
        }
        None => super::build_static_zoneprof(ws),
    }
}

/// Rows for one boot: the module step (when there was one), then each scenario.
fn evaluate(kernel: &Kernel, boot: &Boot, table: &[Scenario]) -> Vec<Row> {
    let log = Some(boot.console_log.clone());
    let whole = boot.problems();
    let row = |scenario: &str, verdict| Row {
        kernel: kernel.label.clone(),
        scenario: scenario.to_owned(),
        verdict,
        log: log.clone(),
    };
    let mut rows = Vec::new();
    if let Some(step) = boot.transcript.step("modules") {
        rows.push(row(
            "modules",
            step_verdict(step, |_| Ok("loaded".into()), &boot.received.files),
        ));
    }
    for s in table {
        let verdict = match boot.transcript.step(&s.name) {
            None if whole.is_empty() => Verdict::Fail("the step never started".into()),
            None => Verdict::Fail(format!("never ran: {}", whole.join("; "))),
            Some(step) => match step_verdict(step, s.check, &boot.received.files) {
                Verdict::Fail(why) if step.end == StepEnd::Unfinished && !whole.is_empty() => {
                    Verdict::Fail(format!("{why}; {}", whole.join("; ")))
                }
                v => v,
            },
        };
        rows.push(row(&s.name, verdict));
    }
    // Whole-boot problems not already explained by a failed scenario.
    if !whole.is_empty() && rows.iter().all(|r| !matches!(r.verdict, Verdict::Fail(_))) {
        rows.push(row("(boot)", Verdict::Fail(whole.join("; "))));
    }
    rows
}

fn step_verdict(
    step: &super::console::Step,
    check: fn(&Run<'_>) -> Result<String>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Verdict {
    match &step.end {
        StepEnd::Skipped(why) => Verdict::Skip(why.clone()),
        StepEnd::Unfinished => Verdict::Fail(format!(
            "did not finish (the guest died or was killed){}",
            tail(&step.output)
        )),
        StepEnd::Exited { status, .. } if *status != 0 => Verdict::Fail(format!(
            "exited with status {status}{}{}",
            if *status == 137 {
                " (killed: step timeout?)"
            } else {
                ""
            },
            tail(&step.output)
        )),
        StepEnd::Exited { .. } => {
            let prefix = format!("{}/", step.name);
            let files = files
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n, v.as_slice())))
                .collect();
            match check(&Run {
                output: &step.output,
                files,
            }) {
                Ok(summary) => Verdict::Pass(summary),
                Err(e) => Verdict::Fail(format!("{e:#}")),
            }
        }
    }
}

/// The last few output lines, for failure messages.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(4);
    format!("; last output: {}", lines[from..].join(" | "))
}

/// Writes the guest's files to `results/<tag>-<kernel>/<step>/<name>`; returns the dir.
fn save_files(dirs: &Dirs, label: &str, boot: &Boot) -> Result<Option<PathBuf>> {
    if boot.received.files.is_empty() {
        return Ok(None);
    }
    let dir = dirs.results().join(super::file_safe(label));
    for (name, data) in &boot.received.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Some(dir))
}

fn print_row(r: &Row) {
    match &r.verdict {
        Verdict::Pass(s) => println!("    PASS  {:<28} {s}", r.scenario),
        Verdict::Skip(s) => println!("    SKIP  {:<28} {s}", r.scenario),
        Verdict::Fail(s) => println!(
            "    FAIL  {:<28} {s}{}",
            r.scenario,
            r.log
                .as_ref()
                .map(|l| format!(" (log: {})", l.display()))
                .unwrap_or_default()
        ),
    }
}

/// Program × method rows, one column per kernel: attached, rejected (with the verifier's
/// line), refused or target absent.
fn print_method_table(tables: &[scenarios::MethodTable]) {
    println!(
        "==> vm-test: probe methods (program × kernel × method), from zoneprof doctor --methods"
    );
    let mut keys: Vec<String> = Vec::new();
    for t in tables {
        for tr in &t.trials {
            if !keys.contains(&tr.key()) {
                keys.push(tr.key());
            }
        }
    }
    for key in &keys {
        println!("  {key}");
        for t in tables {
            let cells: Vec<String> = t
                .trials
                .iter()
                .filter(|tr| &tr.key() == key)
                .map(scenarios::Trial::cell)
                .collect();
            let cell = if cells.is_empty() {
                "-".to_owned()
            } else {
                cells.join("; ")
            };
            println!("    {:<22} {cell}", t.kernel);
        }
    }
}

fn print_summary(runs: &[KernelRun], rows: &[Row], total: Duration) {
    println!("==> vm-test: kernels");
    for k in runs {
        println!(
            "  {:<22} boot {} (guest clock {}), whole run {}; {}",
            k.label,
            k.booted_after
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            k.guest_boot_s
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "-".into()),
            k.elapsed
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            k.origin
        );
        if let Some(info) = &k.info {
            println!("  {:<22} {}", "", info.summary());
        }
    }
    println!("==> vm-test: results (kernel × scenario)");
    let kw = rows
        .iter()
        .map(|r| r.kernel.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let sw = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!("  {:<kw$}  {:<sw$}  result", "kernel", "scenario");
    for r in rows {
        let (tag, text) = match &r.verdict {
            Verdict::Pass(s) => ("PASS", s.clone()),
            Verdict::Skip(s) => ("SKIP", s.clone()),
            Verdict::Fail(s) => (
                "FAIL",
                format!(
                    "{s}{}",
                    r.log
                        .as_ref()
                        .map(|l| format!(" (log: {})", l.display()))
                        .unwrap_or_default()
                ),
            ),
        };
        println!("  {:<kw$}  {:<sw$}  {tag}  {text}", r.kernel, r.scenario);
    }
    println!(
        "==> vm-test: {:.1} s in all{}",
        total.as_secs_f64(),
        if total > BUDGET {
            format!(" (over the {} min budget)", BUDGET.as_secs() / 60)
        } else {
            String::new()
        }
    );
}

pub struct RunOpts {
    pub kernels: Vec<String>,
    pub bzimages: Vec<PathBuf>,
    pub script: String,
    /// HOST[:GUEST] files to add (guest path defaults to /root/<file name>).
    pub files: Vec<String>,
    pub modules: Vec<String>,
    /// NAME=/GUEST_PATH files to bring back.
    pub collect: Vec<String>,
    pub with_zoneprof: bool,
    pub zoneprof: Option<PathBuf>,
    /// iproute2's `ip` and its libraries (implied by a zoneprof).
    pub with_ip: bool,
    pub timeout: Duration,
    /// NUMA nodes of the guest (0: none).
    pub numa_nodes: u32,
    pub quiet: bool,
}

/// `cargo xtask vm-run`: one boot per kernel with an ad hoc script; console streamed.
pub fn vm_run(ws: &Workspace, opts: &RunOpts) -> Result<()> {
    super::check_tools()?;
    let sels = select(&opts.kernels, &opts.bzimages, &["6.12"])?;
    let dirs = Dirs::new(ws)?;
    let mut files = Vec::new();
    if opts.with_zoneprof || opts.zoneprof.is_some() {
        let bin = zoneprof_binary(ws, opts.zoneprof.as_deref())?;
        files.push(GuestFile::from_host(&bin, GUEST_ZONEPROF, 0o755)?);
    }
    if opts.with_ip || opts.with_zoneprof || opts.zoneprof.is_some() {
        files.extend(super::hostbin::iproute2()?);
    }
    for spec in &opts.files {
        let (host, guest) = parse_file_spec(spec)?;
        files.push(GuestFile::from_host(Path::new(&host), &guest, 0o755)?);
    }
    let collect = opts
        .collect
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(n, p)| (n.to_owned(), p.to_owned()))
                .ok_or_else(|| anyhow!("--collect {c:?}: use NAME=GUEST_PATH"))
        })
        .collect::<Result<Vec<_>>>()?;
    let boot_opts = BootOpts {
        timeout: opts.timeout,
        echo: !opts.quiet,
        tag: "vm-run".into(),
        numa_nodes: opts.numa_nodes,
        ..BootOpts::default()
    };
    let mut failed = Vec::new();
    for sel in &sels {
        let kernel = sel.resolve(ws, &dirs)?;
        println!("==> vm-run: booting {} ({})", kernel.label, kernel.origin);
        match super::run_script(
            &dirs,
            &kernel,
            &opts.script,
            files.clone(),
            &opts.modules,
            &collect,
            &boot_opts,
        ) {
            Ok(run) => {
                let dir = save_files(&dirs, &format!("run-{}", kernel.label), &run.boot)?;
                println!(
                    "==> vm-run: {}: script passed; {}; booted after {}; console log {}",
                    kernel.label,
                    run.boot.end_text,
                    run.boot
                        .booted_after
                        .map(|d| format!("{:.1} s", d.as_secs_f64()))
                        .unwrap_or_else(|| "?".into()),
                    run.boot.console_log.display()
                );
                for (name, data) in &run.files {
                    println!("    collected {name}: {} bytes", data.len());
                }
                if let Some(dir) = dir {
                    println!("    files in {}", dir.display());
                }
            }
            Err(e) => {
                println!("==> vm-run: {e:#}");
                failed.push(kernel.label.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("vm-run: the script failed on {}", failed.join(", "));
    }
    Ok(())
}

/// `HOST[:GUEST]`; the guest path defaults to `/root/<file name>`.
fn parse_file_spec(spec: &str) -> Result<(String, String)> {
    match spec.split_once(':') {
        Some((h, g)) if !h.is_empty() && g.starts_with('/') => Ok((h.to_owned(), g.to_owned())),
        Some(_) => bail!("--file {spec:?}: use HOST_PATH[:/GUEST_PATH]"),
        None => {
            let name = Path::new(spec)
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("--file {spec:?} has no file name"))?;
            Ok((spec.to_owned(), format!("/root/{name}")))
        }
    }
}

/// `cargo xtask vm-fetch`: fetch/cache kernels and print where they are.
pub fn vm_fetch(ws: &Workspace, kernels: &[String], bzimages: &[PathBuf]) -> Result<()> {
    let sels = select(kernels, bzimages, &["all"])?;
    let dirs = Dirs::new(ws)?;
    for sel in &sels {
        let k = sel.resolve(ws, &dirs)?;
        println!(
            "{:<22} {} (modules: {}) — {}",
            k.label,
            k.image.display(),
            k.modules
                .as_ref()
                .map(|m| m.display().to_string())
                .unwrap_or_else(|| "built in only".into()),
            k.origin
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kernel_selection() {
        let deb = |x: &str| KernelSel::Debian(x.into());
        let noinline = KernelSel::Shared("6.12-noinline".into());
        assert_eq!(
            select(&[], &[], &["all"]).unwrap(),
            [deb("6.1"), deb("6.12"), noinline.clone()]
        );
        assert_eq!(
            select(&s(&["6.12-noinline"]), &[], &["all"]).unwrap(),
            std::slice::from_ref(&noinline)
        );
        assert_eq!(select(&s(&["6.12"]), &[], &["all"]).unwrap(), [deb("6.12")]);
        assert_eq!(
            select(&s(&["6.12,all"]), &[], &["all"]).unwrap(),
            [deb("6.12"), deb("6.1"), noinline]
        );
        let bz = PathBuf::from("/k/bzImage-x");
        assert_eq!(
            select(&[], std::slice::from_ref(&bz), &["all"]).unwrap(),
            [KernelSel::BzImage(bz)]
        );
        let e = select(&s(&["5.10"]), &[], &["all"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown --kernel \"5.10\": use 6.1, 6.12, 6.12-noinline or all (or --bzimage PATH)"
        );
    }

    #[test]
    fn file_specs() {
        assert_eq!(
            parse_file_spec("/h/tool").unwrap(),
            ("/h/tool".to_owned(), "/root/tool".to_owned())
        );
        assert_eq!(
            parse_file_spec("/h/t:/usr/bin/t").unwrap(),
            ("/h/t".to_owned(), "/usr/bin/t".to_owned())
        );
        assert!(parse_file_spec("/h/t:rel").is_err());
    }

    #[test]
    fn verdicts_from_steps() {
        use super::super::console::Step as S;
        let files = BTreeMap::from([
            ("x/a".to_owned(), b"A".to_vec()),
            ("y/a".to_owned(), b"B".to_vec()),
        ]);
        let ok = |r: &Run<'_>| Ok(format!("{} files, a={:?}", r.files.len(), r.files.get("a")));
        let step = |end| S {
            name: "x".into(),
            output: "one\ntwo\n".into(),
            end,
        };
        assert_eq!(
            step_verdict(
                &step(StepEnd::Exited {
                    status: 0,
                    secs: None
                }),
                ok,
                &files
            ),
            Verdict::Pass("1 files, a=Some([65])".into())
        );
        assert_eq!(
            step_verdict(
                &step(StepEnd::Exited {
                    status: 137,
                    secs: None
                }),
                ok,
                &files
            ),
            Verdict::Fail(
                "exited with status 137 (killed: step timeout?); last output: one | two".into()
            )
        );
        assert_eq!(
            step_verdict(&step(StepEnd::Skipped("no PMU".into())), ok, &files),
            Verdict::Skip("no PMU".into())
        );
        assert!(matches!(
            step_verdict(&step(StepEnd::Unfinished), ok, &files),
            Verdict::Fail(m) if m.starts_with("did not finish")
        ));
    }
}
