//! The scenarios `vm-test` runs inside each kernel: a data-driven table of name, shell
//! lines run in the guest, requirements, files to bring back and a host-side check.
//!
//! To add a scenario, add a constructor and list it in [`table`]. Recording scenarios are
//! built per [`Backend`] by [`record_cross_cpu`]; a backend other than the default needs
//! `zoneprof record --backend`, and until zoneprof has that flag those scenarios are
//! skipped inside the guest (their `requires` test fails), not failed.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value;

use super::Step;

/// Where the static zoneprof lives in the guest.
pub const GUEST_ZONEPROF: &str = "/usr/bin/zoneprof";

/// How `zoneprof record` attaches its probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// Whatever zoneprof picks (no `--backend` flag).
    Default,
    Tracepoint,
    Kprobe,
    Fentry,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Default,
        Backend::Tracepoint,
        Backend::Kprobe,
        Backend::Fentry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Default => "default",
            Backend::Tracepoint => "tracepoint",
            Backend::Kprobe => "kprobe",
            Backend::Fentry => "fentry",
        }
    }

    pub fn parse(s: &str) -> Result<Vec<Backend>> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .map(|b| vec![b])
            .ok_or_else(|| {
                anyhow!("unknown backend {s:?} (default, tracepoint, kprobe, fentry, all)")
            })
    }

    /// Arguments for `zoneprof record`.
    fn record_flag(self) -> String {
        match self {
            Backend::Default => String::new(),
            b => format!(" --backend {}", b.name()),
        }
    }

    /// Guest shell test for what the backend needs beyond the default.
    fn requires(self) -> Option<String> {
        let flag = format!("{GUEST_ZONEPROF} record --help | grep -q -- --backend");
        match self {
            Backend::Default => None,
            Backend::Tracepoint => Some(flag),
            Backend::Kprobe => Some(format!(
                "{flag} && [ -e /sys/bus/event_source/devices/kprobe/type ]"
            )),
            Backend::Fentry => Some(format!("{flag} && [ -e /sys/kernel/btf/vmlinux ]")),
        }
    }
}

/// What a check sees of its scenario's run.
pub struct Run<'a> {
    /// Console output between the step's markers (commands echoed with `+ `).
    pub output: &'a str,
    /// Files the step brought back, by their collect name.
    pub files: BTreeMap<&'a str, &'a [u8]>,
}

impl Run<'_> {
    fn file(&self, name: &str) -> Result<&[u8]> {
        self.files
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("{name} did not come back from the guest"))
    }
}

/// One row of the table.
pub struct Scenario {
    pub name: String,
    pub about: &'static str,
    /// `None`: not a recording scenario; runs whatever backends are selected.
    pub backend: Option<Backend>,
    /// Shell lines run in the guest (`sh -ex`, in /tmp).
    pub script: String,
    /// Guest shell test; false = skipped.
    pub requires: Option<String>,
    pub timeout_s: u32,
    /// Modules the scenario needs loaded (packaged kernels; built into the bzImages).
    pub modules: &'static [&'static str],
    /// (name, guest path) of files to bring back.
    pub collect: &'static [(&'static str, &'static str)],
    /// Host-side check: `Ok(one-line summary)` or the error that makes it fail.
    pub check: fn(&Run<'_>) -> Result<String>,
}

impl Scenario {
    pub fn step(&self) -> Step {
        Step {
            name: self.name.clone(),
            script: self.script.clone(),
            requires: self.requires.clone(),
            timeout_s: self.timeout_s,
            collect: self
                .collect
                .iter()
                .map(|(n, p)| ((*n).to_owned(), (*p).to_owned()))
                .collect(),
        }
    }
}

/// The scenarios for the selected backends, in run order.
pub fn table(backends: &[Backend]) -> Vec<Scenario> {
    let mut t = vec![kernel_info(), version(), probe_methods()];
    for &b in backends {
        t.push(record_cross_cpu(b));
    }
    for &b in backends {
        if matches!(b, Backend::Kprobe | Backend::Fentry) {
            t.push(record_tap(b));
            t.push(pcp_twin(b));
        }
    }
    t
}

/// Every method of every probe loaded and attached on its own in the guest
/// (`zoneprof doctor --methods`): fails when the verifier rejects a program whose target
/// exists there.
fn probe_methods() -> Scenario {
    Scenario {
        name: "probe-methods".into(),
        about: "every probe method loaded and attached on its own; none rejected by the verifier",
        backend: None,
        // The JSON is judged on the host; doctor's own exit status would hide it.
        script: format!(
            "{GUEST_ZONEPROF} doctor --methods --format json > /tmp/methods.json || true\n\
             {GUEST_ZONEPROF} doctor --methods || true\n"
        ),
        requires: None,
        timeout_s: 240,
        modules: &["tun"],
        collect: &[("methods.json", "/tmp/methods.json")],
        check: |r| {
            let m = MethodTable::parse(r.file("methods.json")?)?;
            m.verdict()
        },
    }
}

/// One row of `zoneprof doctor --methods --format json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Trial {
    pub probe: String,
    pub method: String,
    pub programs: Vec<String>,
    pub target: String,
    pub result: String,
    pub detail: Option<String>,
}

impl Trial {
    /// Row label of the cross-kernel table: probe, method, programs.
    pub fn key(&self) -> String {
        format!(
            "{} {} ({})",
            self.probe,
            self.method,
            self.programs.join("+")
        )
    }

    /// Table cell: the result, with the verifier's line for a rejection.
    pub fn cell(&self) -> String {
        match (self.result.as_str(), &self.detail) {
            ("attached", _) => format!("attached @ {}", self.target),
            ("rejected", Some(d)) => format!("REJECTED @ {}: {d}", self.target),
            ("unavailable", Some(d)) if d.contains("not in") || d.contains("notrace") => {
                "target absent".into()
            }
            (r, Some(d)) => format!("{r}: {d}"),
            (r, None) => r.to_owned(),
        }
    }
}

/// The method trials of one kernel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodTable {
    pub kernel: String,
    pub trials: Vec<Trial>,
}

impl MethodTable {
    pub fn parse(json: &[u8]) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Doc {
            format: String,
            kernel_release: String,
            trials: Vec<Trial>,
        }
        let d: Doc =
            serde_json::from_slice(json).context("methods.json is not the doctor's JSON")?;
        ensure!(
            d.format == "zoneprof-methods",
            "methods.json has format {:?}",
            d.format
        );
        ensure!(!d.trials.is_empty(), "no method was tried");
        Ok(Self {
            kernel: d.kernel_release,
            trials: d.trials,
        })
    }

    /// Ok(summary) unless a program was rejected by the verifier.
    pub fn verdict(&self) -> Result<String> {
        let rejected: Vec<String> = self
            .trials
            .iter()
            .filter(|t| t.result == "rejected")
            .map(|t| {
                format!(
                    "{} on {}: {}",
                    t.key(),
                    t.target,
                    t.detail.as_deref().unwrap_or("?")
                )
            })
            .collect();
        ensure!(
            rejected.is_empty(),
            "rejected by the verifier where the target exists: {}",
            rejected.join("; ")
        );
        let n = |r: &str| self.trials.iter().filter(|t| t.result == r).count();
        Ok(format!(
            "{} attached, 0 rejected, {} refused, {} unavailable",
            n("attached"),
            n("refused"),
            n("unavailable")
        ))
    }

    /// The targets `probe` attached to with `method` here.
    pub fn attached(&self, probe: &str, method: &str) -> Vec<&str> {
        self.trials
            .iter()
            .filter(|t| t.probe == probe && t.method == method && t.result == "attached")
            .map(|t| t.target.as_str())
            .collect()
    }

    /// Whether `probe`'s `method` found its target here (it was tried for real).
    pub fn target_exists(&self, probe: &str, method: &str) -> bool {
        self.trials
            .iter()
            .any(|t| t.probe == probe && t.method == method && t.result != "unavailable")
    }
}

/// The design card's kprobes: each must be proven by kprobe and by fentry on some kernel.
pub const CARD_PROBES: [&str; 3] = ["rmqueue_pcplist", "skb_attempt_defer_free", "consume_skb"];

/// Per card probe and method, the kernels where it attached; Err naming those that never
/// did although some kernel of the run has their target.
pub fn card_proof(tables: &[MethodTable]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut missing = Vec::new();
    for probe in CARD_PROBES {
        for method in ["kprobe", "fentry"] {
            let on: Vec<String> = tables
                .iter()
                .filter_map(|t| {
                    let targets = t.attached(probe, method);
                    (!targets.is_empty()).then(|| format!("{} ({})", t.kernel, targets.join(", ")))
                })
                .collect();
            let has_target = tables.iter().any(|t| t.target_exists(probe, method));
            if on.is_empty() && has_target {
                missing.push(format!("{probe} by {method}"));
            }
            lines.push(format!(
                "{probe} by {method}: {}",
                if on.is_empty() {
                    "not proven (no kernel of this run has its target)".to_owned()
                } else {
                    format!("attached on {}", on.join(", "))
                }
            ));
        }
    }
    ensure!(
        missing.is_empty(),
        "card probes that never attached although their target exists: {}",
        missing.join(", ")
    );
    Ok(lines)
}

/// Per-batch PCP counts (outside zone->lock) against the per-page tracepoints of the same
/// recording (`--pcp page` runs both): must agree within 1 %.
pub fn pcp_twin(backend: Backend) -> Scenario {
    Scenario {
        name: format!("pcp-twin-{}", backend.name()),
        about: "PCP pages per batch (kprobe/fentry) equal the per-page tracepoints' within 1 %",
        backend: Some(backend),
        script: format!(
            "zoneprof record{} --pcp page -d 3s -o /tmp/twin.zprof --no-progress -- \
             zoneprof workload cross-cpu-pages --alloc-cpus 0 --free-cpus 1 -d 2s\n\
             zoneprof report /tmp/twin.zprof --format json > /tmp/twin.json\n",
            backend.record_flag()
        ),
        requires: backend.requires(),
        timeout_s: 240,
        modules: &[],
        collect: &[("report.json", "/tmp/twin.json")],
        check: |r| {
            let report: Value = serde_json::from_slice(r.file("report.json")?)
                .context("report.json is not JSON")?;
            twin_summary(&report)
        },
    }
}

/// Refill: `pcp_refill_batch_pages` vs `pcp_refill_pages`; drain: `pcp_bulk_free_pages`
/// vs `pcp_drain_pages`, summed over CPUs. A side whose batch probe did not attach is
/// reported with the reason, not failed (the kernel may lack the function).
pub fn twin_summary(report: &Value) -> Result<String> {
    let probes = report["probes"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no probes array"))?;
    let probe = |n: &str| probes.iter().find(|p| p["name"] == n);
    let sum = |k: &str| -> u64 {
        report["per_cpu"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c[k].as_u64())
            .sum()
    };
    let mut parts = Vec::new();
    let mut compared = 0;
    for (side, batch, page, bkey, pkey) in [
        (
            "refill",
            "rmqueue_pcplist",
            "pcp_refill",
            "pcp_refill_batch_pages",
            "pcp_refill_pages",
        ),
        (
            "drain",
            "free_pcppages_bulk",
            "pcp_drain",
            "pcp_bulk_free_pages",
            "pcp_drain_pages",
        ),
    ] {
        let p = probe(page).ok_or_else(|| anyhow!("{page} missing from the report"))?;
        ensure!(
            p["attached"] == Value::Bool(true),
            "{page} (per page) not attached with --pcp page: {}",
            p["reason"].as_str().unwrap_or("?")
        );
        let b = probe(batch).ok_or_else(|| anyhow!("{batch} missing from the report"))?;
        if b["attached"] != Value::Bool(true) {
            parts.push(format!(
                "{side}: no batch hook ({})",
                b["reason"].as_str().unwrap_or("?")
            ));
            continue;
        }
        let (bp, pp) = (sum(bkey), sum(pkey));
        ensure!(
            pp >= 1000,
            "{side}: only {pp} pages per page: the workload did not run?"
        );
        let diff = bp.abs_diff(pp) as f64 / pp as f64;
        ensure!(
            diff <= 0.01,
            "{side}: per batch {bp} pages ({} {}) vs per page {pp}: {:.2} % apart (limit 1 %)",
            b["method"].as_str().unwrap_or("?"),
            b["target"].as_str().unwrap_or("?"),
            100.0 * diff
        );
        compared += 1;
        parts.push(format!(
            "{side}: per batch {bp} ({} {}) vs per page {pp}, {:+.2} %",
            b["method"].as_str().unwrap_or("?"),
            b["target"].as_str().unwrap_or("?"),
            100.0 * (bp as f64 - pp as f64) / pp as f64
        ));
    }
    ensure!(
        compared > 0,
        "no side had a batch hook: {}",
        parts.join("; ")
    );
    Ok(parts.join("; "))
}

/// Symbols whose presence in kallsyms is reported per kernel.
pub const SYMBOLS: &[&str] = &[
    "__rmqueue_pcplist",
    "rmqueue_bulk",
    "free_pcppages_bulk",
    "skb_attempt_defer_free",
    "consume_skb",
    "tun_do_read",
];

/// Tracepoints whose presence is reported per kernel.
pub const TRACEPOINTS: &[&str] = &[
    "lock/contention_begin",
    "kmem/mm_page_alloc_zone_locked",
    "kmem/mm_page_pcpu_drain",
    "skb/consume_skb",
];

fn kernel_info() -> Scenario {
    let s = include_str!("kernel-info.sh")
        .replace("@SYMBOLS@", &SYMBOLS.join(" "))
        .replace("@TRACEPOINTS@", &TRACEPOINTS.join(" "));
    Scenario {
        name: "kernel-info".into(),
        about: "what the kernel offers: kprobe PMU, BTF, kallsyms, probe targets",
        backend: None,
        script: s,
        requires: None,
        // Generous: a TCG guest on a host at load average 10 took over 60 s for this
        // (kallsyms awk) once; the timeout is for hangs, not speed.
        timeout_s: 240,
        modules: &["tun"],
        collect: &[],
        check: check_kernel_info,
    }
}

/// Facts printed by the `kernel-info` scenario.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KernelInfo {
    pub values: BTreeMap<String, String>,
}

impl KernelInfo {
    pub fn parse(output: &str) -> Self {
        let values = output
            .lines()
            .filter_map(|l| l.trim().strip_prefix("zpvm."))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        Self { values }
    }

    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("?", String::as_str)
    }

    /// `sym` and its clones as found in kallsyms ("" = absent).
    pub fn symbol(&self, sym: &str) -> &str {
        self.values
            .get(&format!("sym.{sym}"))
            .map_or("", String::as_str)
    }

    /// How `sym` can be probed: "absent", "notrace" (in kallsyms but not ftrace-able, so
    /// neither fentry nor trace_kprobe takes it), or "traceable"; clones and the kprobe
    /// blacklist are named.
    pub fn symbol_status(&self, sym: &str) -> String {
        let found = self.symbol(sym);
        if found.is_empty() {
            return format!("{sym} absent");
        }
        let mut s = sym.to_owned();
        let clones: Vec<&str> = found.split(' ').filter(|f| *f != sym).collect();
        if !found.split(' ').any(|f| f == sym) {
            s.push_str(&format!(" (only as {})", clones.join(" ")));
        } else if !clones.is_empty() {
            s.push_str(&format!(" (+ {})", clones.join(" ")));
        }
        let ftrace = self
            .values
            .get(&format!("ftrace.{sym}"))
            .map_or("", String::as_str);
        s.push_str(if ftrace.is_empty() {
            " notrace"
        } else {
            " traceable"
        });
        if self
            .values
            .get(&format!("kprobe_blacklisted.{sym}"))
            .is_some_and(|v| !v.is_empty())
        {
            s.push_str(" kprobe-blacklisted");
        }
        s
    }

    /// One line: "Linux R: kprobe PMU yes, BTF yes, …; __rmqueue_pcplist notrace, …".
    pub fn summary(&self) -> String {
        let syms: Vec<String> = SYMBOLS.iter().map(|s| self.symbol_status(s)).collect();
        format!(
            "Linux {}: kprobe PMU {}, BTF {}, tracefs {}, {} kallsyms lines, {} ftrace-able \
             functions; {}",
            self.get("release"),
            self.get("kprobe_pmu"),
            self.get("btf"),
            self.get("tracefs"),
            self.get("kallsyms_lines"),
            self.get("ftrace_functions"),
            syms.join(", ")
        )
    }
}

fn check_kernel_info(run: &Run<'_>) -> Result<String> {
    let info = KernelInfo::parse(run.output);
    for key in ["release", "kprobe_pmu", "btf", "kallsyms_lines", "tun"] {
        ensure!(
            info.values.contains_key(key),
            "no {key}= line in the output"
        );
    }
    let lines: u64 = info
        .get("kallsyms_lines")
        .parse()
        .context("kallsyms_lines is not a number")?;
    ensure!(lines > 1000, "only {lines} lines in /proc/kallsyms");
    ensure!(
        info.get("tun") == "yes",
        "tun is neither loaded nor built in"
    );
    Ok(info.summary())
}

fn version() -> Scenario {
    Scenario {
        name: "version".into(),
        about: "the static zoneprof runs",
        backend: None,
        script: "zoneprof --version\n".into(),
        requires: None,
        // As every step: for hangs, not speed (a loaded host slows TCG guests 4x).
        timeout_s: 240,
        modules: &[],
        collect: &[],
        check: |run| {
            run.output
                .lines()
                .find(|l| l.starts_with("zoneprof "))
                .map(|l| l.trim().to_owned())
                .ok_or_else(|| anyhow!("no `zoneprof <version>` line in the output"))
        },
    }
}

/// Records the cross-CPU page workload (alloc on CPU 0, free on CPU 1) with `backend`.
pub fn record_cross_cpu(backend: Backend) -> Scenario {
    let name = match backend {
        Backend::Default => "record-cross-cpu".to_owned(),
        b => format!("record-cross-cpu-{}", b.name()),
    };
    Scenario {
        name,
        about: "record the cross-CPU page workload; probes attach, CPU 0 refills, CPU 1 drains",
        backend: Some(backend),
        script: format!(
            "zoneprof record{} -d 3s -o /tmp/r.zprof --no-progress -- \
             zoneprof workload cross-cpu-pages --alloc-cpus 0 --free-cpus 1 -d 2s\n\
             zoneprof report /tmp/r.zprof --format json > /tmp/report.json\n\
             zoneprof report /tmp/r.zprof\n",
            backend.record_flag()
        ),
        requires: backend.requires(),
        timeout_s: 240,
        modules: &[],
        collect: &[
            ("report.json", "/tmp/report.json"),
            ("r.zprof", "/tmp/r.zprof"),
        ],
        check: match backend {
            Backend::Default => |r| check_cross_cpu_with(r, Backend::Default),
            Backend::Tracepoint => |r| check_cross_cpu_with(r, Backend::Tracepoint),
            Backend::Kprobe => |r| check_cross_cpu_with(r, Backend::Kprobe),
            Backend::Fentry => |r| check_cross_cpu_with(r, Backend::Fentry),
        },
    }
}

/// Figures taken from a report for the cross-CPU check.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossCpuFigures {
    pub probes_attached: usize,
    pub probes: usize,
    /// Per CPU 0/1: PCP refill pages, counted by the recording's PCP method.
    pub refill: [u64; 2],
    /// Per CPU 0/1: PCP drain pages, counted by the recording's PCP method.
    pub drain: [u64; 2],
    pub zone_wait_ns: u64,
    pub duration_s: f64,
    /// How `__rmqueue_pcplist` went: the method, or why it fell back.
    pub rmqueue: String,
    /// `totals.pcp_method`: "batch", "page" or "off" per side.
    pub pcp_method: (String, String),
}

/// Probes that must attach under `backend`, and the method they must use (None: any).
/// PCP pages are judged separately (by the recording's PCP method): by default they are
/// counted per batch where the kernel allows it, per page elsewhere.
pub fn required_probes(backend: Backend) -> (&'static [&'static str], Option<&'static str>) {
    const DEFAULT: &[&str] = &[
        "contention_begin",
        "contention_end",
        "consume_skb",
        "kfree_skb",
    ];
    // No batch hook is a tracepoint: classic tracepoints count per page.
    const TP: &[&str] = &[
        "contention_begin",
        "contention_end",
        "pcp_refill",
        "pcp_drain",
        "consume_skb",
        "kfree_skb",
    ];
    const KFUNC: &[&str] = &[
        "consume_skb",
        "kfree_skb",
        "skb_attempt_defer_free",
        "free_pcppages_bulk",
    ];
    match backend {
        Backend::Default => (DEFAULT, None),
        Backend::Tracepoint => (TP, Some("tracepoint")),
        Backend::Kprobe => (KFUNC, Some("kprobe")),
        Backend::Fentry => (KFUNC, Some("fentry")),
    }
}

fn check_cross_cpu_with(run: &Run<'_>, backend: Backend) -> Result<String> {
    let json = run.file("report.json")?;
    let report: Value = serde_json::from_slice(json).context("report.json is not JSON")?;
    let f = cross_cpu_figures(&report, backend)?;
    Ok(format!(
        "{}/{} probes; refill ({}) CPU0 {} / CPU1 {}; drain ({}) CPU1 {} / CPU0 {}; \
         zone-lock wait {} ns; {:.2} s; __rmqueue_pcplist: {}",
        f.probes_attached,
        f.probes,
        f.pcp_method.0,
        f.refill[0],
        f.refill[1],
        f.pcp_method.1,
        f.drain[1],
        f.drain[0],
        f.zone_wait_ns,
        f.duration_s,
        f.rmqueue
    ))
}

/// Asserts the cross-CPU expectations on a `zoneprof report --format json` document.
/// Probes whose raw tracepoint form every kernel under test accepts.
const RAW_BY_DEFAULT: [&str; 2] = ["contention_begin", "contention_end"];

pub fn cross_cpu_figures(report: &Value, backend: Backend) -> Result<CrossCpuFigures> {
    let probes = report["probes"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no probes array"))?;
    ensure!(!probes.is_empty(), "report lists no probes");
    let (required, method) = required_probes(backend);
    let mut problems = Vec::new();
    for name in required {
        match probes.iter().find(|p| p["name"] == *name) {
            None => problems.push(format!("{name} (missing from the report)")),
            Some(p) if p["attached"] != Value::Bool(true) => problems.push(format!(
                "{name} ({})",
                p["reason"].as_str().unwrap_or("no reason given")
            )),
            Some(p) => {
                // By default the hot kernel events take their raw tracepoint form (every
                // kernel these runs boot has BTF).
                let want = method.or((backend == Backend::Default
                    && RAW_BY_DEFAULT.contains(name))
                .then_some("raw_tracepoint"));
                if let Some(m) = want
                    && p["method"] != m
                {
                    problems.push(format!(
                        "{name} (attached with {} instead of {m})",
                        p["method"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    // Per-page PCP probes that attached as a fallback take the raw form by default too.
    if backend == Backend::Default {
        for p in probes.iter().filter(|p| {
            (p["name"] == "pcp_refill" || p["name"] == "pcp_drain")
                && p["attached"] == Value::Bool(true)
                && p["method"] != "raw_tracepoint"
        }) {
            problems.push(format!(
                "{} (attached with {} instead of raw_tracepoint)",
                p["name"].as_str().unwrap_or("?"),
                p["method"].as_str().unwrap_or("?")
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "probes not attached: {}",
        problems.join("; ")
    );
    let method = |side: &str| {
        report["totals"]["pcp_method"][side]
            .as_str()
            .unwrap_or("off")
            .to_owned()
    };
    let pcp_method = (method("refill"), method("drain"));
    // Either attached, or fell back with its reason shown.
    let rmqueue = match probes.iter().find(|p| p["name"] == "rmqueue_pcplist") {
        Some(p) if p["attached"] == Value::Bool(true) => format!(
            "attached with {} on {}",
            p["method"].as_str().unwrap_or("?"),
            p["target"].as_str().unwrap_or("?")
        ),
        Some(p) => {
            let why = p["reason"].as_str().unwrap_or("");
            ensure!(
                !why.is_empty(),
                "rmqueue_pcplist not attached and no reason shown"
            );
            format!("not attached: {why}")
        }
        None => bail!("rmqueue_pcplist missing from the report"),
    };
    if let Some(code) = report["command"]["exit_code"].as_i64() {
        ensure!(code == 0, "the workload exited with status {code}");
    }
    let per_cpu = report["per_cpu"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no per_cpu array"))?;
    let field = |cpu: u64, key: &str| -> u64 {
        per_cpu
            .iter()
            .find(|c| c["cpu"].as_u64() == Some(cpu))
            .and_then(|c| c[key].as_u64())
            .unwrap_or(0)
    };
    let (rkey, dkey) = ("pcp_refill_pages", "pcp_drain_pages");
    let refill = [field(0, rkey), field(1, rkey)];
    let drain = [field(0, dkey), field(1, dkey)];
    let f = CrossCpuFigures {
        probes_attached: probes
            .iter()
            .filter(|p| p["attached"] == Value::Bool(true))
            .count(),
        probes: probes.len(),
        refill,
        drain,
        zone_wait_ns: ["alloc", "free", "other"]
            .iter()
            .filter_map(|k| report["totals"]["zone_lock_wait_ns"][k].as_u64())
            .sum(),
        duration_s: report["duration_s"].as_f64().unwrap_or(0.0),
        rmqueue,
        pcp_method,
    };
    // The drain side is observable with every backend, on every kernel under test; by
    // default the refill side too (per batch or per page).
    ensure!(
        f.pcp_method.1 != "off",
        "PCP drains not counted (pcp_method.drain off)"
    );
    ensure!(
        backend != Backend::Default || f.pcp_method.0 != "off",
        "PCP refills not counted by default (pcp_method.refill off)"
    );
    ensure!(
        drain[1] > 0 && drain[1] >= 2 * drain[0],
        "drains ({dkey}) not dominated by the free CPU: CPU1 {} vs CPU0 {}",
        drain[1],
        drain[0]
    );
    // Refills: with kprobe/fentry only when __rmqueue_pcplist (or rmqueue_bulk) attached.
    if f.pcp_method.0 != "off" {
        ensure!(
            refill[0] > 0 && refill[0] >= 2 * refill[1],
            "refills ({rkey}) not dominated by the alloc CPU: CPU0 {} vs CPU1 {}",
            refill[0],
            refill[1]
        );
    }
    Ok(f)
}

/// Records the tap workload (UDP from a netns, frames read from the tap fd on CPU 1: the
/// `tun_do_read` free path) with `backend` forced. Checks that the SKB probes attached with
/// that method, that consume_skb frees were counted, and that caller attribution (a short
/// stack walk for the frame after the probed function) names `tun_do_read`.
pub fn record_tap(backend: Backend) -> Scenario {
    Scenario {
        name: format!("record-tap-{}", backend.name()),
        about: "record the tap workload; SKB probes attach with the backend, tun_do_read is attributed",
        backend: Some(backend),
        script: format!(
            "zoneprof record{} --tasks -o /tmp/tap.zprof --no-progress -- \
             zoneprof workload tap --sender-cpus 0 --reader-cpus 1 -d 2s\n\
             zoneprof report /tmp/tap.zprof --format json > /tmp/tap-report.json\n",
            backend.record_flag()
        ),
        requires: Some(format!(
            "{} && [ -c /dev/net/tun ]",
            backend.requires().unwrap_or_else(|| "true".into())
        )),
        timeout_s: 240,
        modules: &["tun"],
        collect: &[("report.json", "/tmp/tap-report.json")],
        check: match backend {
            Backend::Default => |r| check_tap_with(r, Backend::Default),
            Backend::Tracepoint => |r| check_tap_with(r, Backend::Tracepoint),
            Backend::Kprobe => |r| check_tap_with(r, Backend::Kprobe),
            Backend::Fentry => |r| check_tap_with(r, Backend::Fentry),
        },
    }
}

fn check_tap_with(run: &Run<'_>, backend: Backend) -> Result<String> {
    let json = run.file("report.json")?;
    let report: Value = serde_json::from_slice(json).context("report.json is not JSON")?;
    tap_summary(&report, backend)
}

/// Asserts the tap expectations on a `zoneprof report --format json` document; returns the
/// one-line summary (what was attributed to `tun_do_read`, and how).
pub fn tap_summary(report: &Value, backend: Backend) -> Result<String> {
    let probes = report["probes"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no probes array"))?;
    let want = match backend {
        Backend::Kprobe | Backend::Fentry => Some(backend.name()),
        Backend::Tracepoint => Some("tracepoint"),
        Backend::Default => None,
    };
    let mut problems = Vec::new();
    let mut methods = Vec::new();
    for name in ["consume_skb", "skb_attempt_defer_free"] {
        // skb_attempt_defer_free has no tracepoint.
        if backend == Backend::Tracepoint && name == "skb_attempt_defer_free" {
            continue;
        }
        match probes.iter().find(|p| p["name"] == name) {
            None => problems.push(format!("probe {name} missing from the report")),
            Some(p) if p["attached"] != Value::Bool(true) => problems.push(format!(
                "probe {name} not attached: {}",
                p["reason"].as_str().unwrap_or("no reason given")
            )),
            Some(p) => {
                let m = p["method"].as_str().unwrap_or("?");
                if want.is_some_and(|w| w != m) {
                    problems.push(format!(
                        "probe {name} attached with {m} instead of {}",
                        want.unwrap_or("?")
                    ));
                }
                methods.push(format!("{name} {m}"));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("; "));
    if let Some(code) = report["command"]["exit_code"].as_i64() {
        ensure!(code == 0, "the tap workload exited with status {code}");
    }
    let sites = report["skb_free_sites"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no skb_free_sites array"))?;
    ensure!(!sites.is_empty(), "no SKB free sites were counted");
    let count = |s: &Value| s["count"].as_u64().unwrap_or(0);
    let consumed: u64 = sites
        .iter()
        .filter(|s| s["function"] == "consume_skb")
        .map(count)
        .sum();
    ensure!(consumed > 0, "no consume_skb frees were counted");
    let tun: Vec<&Value> = sites
        .iter()
        .filter(|s| s["caller"] == "tun_do_read" && count(s) > 0)
        .collect();
    if tun.is_empty() {
        let mut callers: Vec<&Value> = sites.iter().collect();
        callers.sort_by_key(|s| std::cmp::Reverse(count(s)));
        let seen: Vec<String> = callers
            .iter()
            .take(4)
            .map(|s| {
                format!(
                    "{} ← {} ({})",
                    s["function"].as_str().unwrap_or("?"),
                    s["caller"].as_str().unwrap_or("?"),
                    count(s)
                )
            })
            .collect();
        bail!(
            "caller attribution: no free site from tun_do_read; top sites: {}",
            seen.join(", ")
        );
    }
    let tun_text: Vec<String> = tun
        .iter()
        .map(|s| {
            format!(
                "{} ← tun_do_read {} ({:.0} % remote)",
                s["function"].as_str().unwrap_or("?"),
                count(s),
                100.0 * s["remote_ratio"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let defer = report["skb_defer"].as_array();
    let sum = |k: &str| -> u64 {
        defer
            .into_iter()
            .flatten()
            .map(|d| d[k].as_u64().unwrap_or(0))
            .sum()
    };
    let mut text = format!(
        "{}; {consumed} consume_skb frees; {}",
        methods.join(", "),
        tun_text.join(", ")
    );
    // Recorded with --tasks: the reader thread (vhost-<pid>) holds frees of its own.
    if report["tasks_recorded"] == Value::Bool(true) {
        let vhost: u64 = report["skb_free_tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["comm"].as_str().is_some_and(|c| c.starts_with("vhost-")))
            .map(count)
            .sum();
        ensure!(
            vhost > 0,
            "--tasks: no SKB frees by the reader thread (vhost-<pid>) in skb_free_tasks"
        );
        text.push_str(&format!("; {vhost} by the vhost-<pid> reader thread"));
    }
    if sum("calls") > 0 {
        text.push_str(&format!(
            "; skb_attempt_defer_free {} calls, {} deferred, {} flushed",
            sum("calls"),
            sum("deferred"),
            sum("flushed")
        ));
        if sum("flushed") == 0 && matches!(backend, Backend::Kprobe | Backend::Fentry) {
            // The flush frees with napi_consume_skb, which fires the consume_skb
            // tracepoint but is not the consume_skb function these backends probe.
            text.push_str(" (flush frees not observable: napi_consume_skb is not probed)");
        }
    }
    Ok(text)
}

/// NUMA nodes of the `vm-numa` guest: CPU 0 and half the memory on node 0, CPU 1 and the
/// other half on node 1.
pub const NUMA_NODES: u32 = 2;

/// The scenarios `vm-numa` runs in a guest of [`NUMA_NODES`] nodes: pages and SKBs
/// allocated on node 0's CPU and freed on node 1's.
pub fn numa_table() -> Vec<Scenario> {
    vec![kernel_info(), numa_pages(), numa_tap()]
}

/// Page flows of the cross-CPU workload across the two nodes.
fn numa_pages() -> Scenario {
    Scenario {
        name: "numa-pages".into(),
        about: "pages allocated on node 0 (CPU 0), freed on node 1 (CPU 1): node matrix, per-node zone totals, cross-node blame",
        backend: None,
        script: "cat /sys/devices/system/node/online\n\
                 zoneprof record --page-flows --page-sample 16 -d 3s -o /tmp/numa.zprof \
                 --no-progress -- zoneprof workload cross-cpu-pages --alloc-cpus 0 \
                 --free-cpus 1 -d 2s\n\
                 zoneprof report /tmp/numa.zprof --format json > /tmp/numa.json\n\
                 zoneprof report /tmp/numa.zprof\n"
            .into(),
        requires: None,
        timeout_s: 300,
        modules: &[],
        collect: &[("report.json", "/tmp/numa.json")],
        check: |r| {
            let report: Value = serde_json::from_slice(r.file("report.json")?)
                .context("report.json is not JSON")?;
            numa_pages_summary(&report)
        },
    }
}

/// SKBs of the tap workload (sent on CPU 0, read on CPU 1) across the two nodes: the
/// kernel-side CPU → node map (`CPU_NODE`) counts them as cross-node.
fn numa_tap() -> Scenario {
    Scenario {
        name: "numa-tap".into(),
        about: "SKBs allocated on node 0 (CPU 0), freed on node 1 (CPU 1): SKB node matrix and cross-node free sites",
        backend: None,
        script: "zoneprof record -d 3s -o /tmp/numa-tap.zprof --no-progress -- \
                 zoneprof workload tap --sender-cpus 0 --reader-cpus 1 -d 2s\n\
                 zoneprof report /tmp/numa-tap.zprof --format json > /tmp/numa-tap.json\n"
            .into(),
        requires: Some("[ -c /dev/net/tun ]".into()),
        timeout_s: 300,
        modules: &["tun"],
        collect: &[("report.json", "/tmp/numa-tap.json")],
        check: |r| {
            let report: Value = serde_json::from_slice(r.file("report.json")?)
                .context("report.json is not JSON")?;
            numa_tap_summary(&report)
        },
    }
}

/// The guest saw two nodes, CPU 0 on node 0 and CPU 1 on node 1, and the report has a
/// zone-lock row for each node.
fn check_two_nodes(report: &Value) -> Result<()> {
    let nodes = report["host"]["numa_nodes"].as_u64().unwrap_or(0);
    ensure!(
        nodes == u64::from(NUMA_NODES),
        "the guest saw {nodes} NUMA node(s), not {NUMA_NODES}"
    );
    let per_cpu = report["per_cpu"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no per_cpu array"))?;
    for cpu in 0..u64::from(NUMA_NODES) {
        let node = per_cpu
            .iter()
            .find(|c| c["cpu"].as_u64() == Some(cpu))
            .and_then(|c| c["node"].as_u64());
        ensure!(
            node == Some(cpu),
            "CPU {cpu} is on node {node:?}, not on node {cpu}"
        );
    }
    let zone_nodes: Vec<u64> = report["zone_nodes"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no zone_nodes array"))?
        .iter()
        .filter_map(|n| n["node"].as_u64())
        .collect();
    ensure!(
        zone_nodes == [0, 1],
        "per-node zone totals for nodes {zone_nodes:?}, not [0, 1]"
    );
    Ok(())
}

/// (alloc node, free node, count) of a node matrix's rows.
fn node_cells(m: &Value, a: &str, f: &str, n: &str) -> Result<Vec<(u64, u64, u64)>> {
    Ok(m.as_array()
        .ok_or_else(|| anyhow!("not an array: {m}"))?
        .iter()
        .map(|c| {
            let v = |k: &str| c[k].as_u64().unwrap_or(0);
            (v(a), v(f), v(n))
        })
        .collect())
}

/// (node 0 → node 1 count, total count) of node-matrix cells.
fn zero_to_one(cells: &[(u64, u64, u64)]) -> (u64, u64) {
    let total = cells.iter().map(|c| c.2).sum();
    let cross = cells
        .iter()
        .filter(|c| (c.0, c.1) == (0, 1))
        .map(|c| c.2)
        .sum();
    (cross, total)
}

/// Page flows node 0 → node 1 dominate the page node matrix; any zone-lock wait is on the
/// zones of node 0 (where the pages came from) and blamed mostly across nodes.
pub fn numa_pages_summary(report: &Value) -> Result<String> {
    check_two_nodes(report)?;
    if let Some(code) = report["command"]["exit_code"].as_i64() {
        ensure!(code == 0, "the workload exited with status {code}");
    }
    let cells = node_cells(
        &report["page_node_matrix"],
        "alloc_node",
        "free_node",
        "pages",
    )?;
    let (cross, total) = zero_to_one(&cells);
    ensure!(
        cross > 0 && 2 * cross >= total,
        "pages node 0 → node 1: {cross} of {total}: the page flows are not counted as \
         cross-node ({cells:?})"
    );
    let zone_ns = |n: &Value| -> u64 {
        ["alloc", "free", "other"]
            .iter()
            .filter_map(|k| n["wait_ns"][k].as_u64())
            .sum()
    };
    let nodes = report["zone_nodes"].as_array().cloned().unwrap_or_default();
    let wait: Vec<u64> = nodes.iter().map(zone_ns).collect();
    let mut text = format!(
        "2 nodes; pages node 0 → 1: {cross} of {total} ({:.0} %); zone-lock wait per node {wait:?} ns",
        100.0 * cross as f64 / total.max(1) as f64
    );
    if wait.iter().sum::<u64>() > 0 {
        ensure!(
            wait[0] >= wait[1],
            "zone-lock wait on node 1's zones ({} ns) over node 0's ({} ns), though the \
             pages are node 0's",
            wait[1],
            wait[0]
        );
        let b = &report["zone_wait_blame_summary"];
        let pct = b["cross_node_pct"].as_f64().ok_or_else(|| {
            anyhow!(
                "zone-lock wait but no cross-node blame share: {}",
                b["headline"]
            )
        })?;
        ensure!(
            pct >= 50.0,
            "only {pct:.1} % of zone-lock wait blamed across nodes: {}",
            b["headline"]
        );
        let remote = nodes[0]["remote_cpu_wait_ns"].as_u64().unwrap_or(0);
        text.push_str(&format!(
            "; {pct:.0} % blamed across nodes; node 0's zones: {remote} ns by node 1's CPU"
        ));
    } else {
        text.push_str(" (no contention in this guest: blame not checked)");
    }
    Ok(text)
}

/// SKBs node 0 → node 1 dominate the SKB node matrix, and the free sites count them as
/// cross-node (the eBPF side's node of each CPU).
pub fn numa_tap_summary(report: &Value) -> Result<String> {
    check_two_nodes(report)?;
    if let Some(code) = report["command"]["exit_code"].as_i64() {
        ensure!(code == 0, "the tap workload exited with status {code}");
    }
    // skb_node_matrix names its node columns alloc_cpu/free_cpu (docs/report-json.md).
    let cells = node_cells(&report["skb_node_matrix"], "alloc_cpu", "free_cpu", "count")?;
    let (cross, total) = zero_to_one(&cells);
    ensure!(
        cross > 0 && 2 * cross >= total,
        "SKBs node 0 → node 1: {cross} of {total}: not counted as cross-node ({cells:?})"
    );
    let sites = report["skb_free_sites"]
        .as_array()
        .ok_or_else(|| anyhow!("report has no skb_free_sites array"))?;
    let site_cross: u64 = sites
        .iter()
        .filter(|s| s["function"] != "skb_attempt_defer_free")
        .filter_map(|s| s["cross_node"].as_u64())
        .sum();
    ensure!(
        site_cross > 0,
        "no SKB free counted as cross-node by the kernel (CPU_NODE map)"
    );
    Ok(format!(
        "2 nodes; SKBs node 0 → 1: {cross} of {total}; {site_cross} frees counted cross-node in the kernel"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_has_unique_valid_names_and_scripts() {
        let t = table(&Backend::ALL);
        let mut names: Vec<_> = t.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "kernel-info",
                "version",
                "probe-methods",
                "record-cross-cpu",
                "record-cross-cpu-tracepoint",
                "record-cross-cpu-kprobe",
                "record-cross-cpu-fentry",
                "record-tap-kprobe",
                "pcp-twin-kprobe",
                "record-tap-fentry",
                "pcp-twin-fentry"
            ]
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), t.len());
        for s in &t {
            crate::vm::initramfs::check_name("step", &s.name).unwrap();
            assert!(!s.script.is_empty() && s.timeout_s > 0);
        }
        let default = &t[3];
        assert!(default.requires.is_none());
        assert!(default.script.starts_with("zoneprof record -d 3s"));
        let kprobe = &t[5];
        assert!(
            kprobe
                .script
                .starts_with("zoneprof record --backend kprobe -d 3s")
        );
        assert!(kprobe.requires.as_deref().unwrap().contains("kprobe/type"));
        assert_eq!(table(&[Backend::Default]).len(), 4);
        assert!(t[8].script.contains("--backend kprobe --pcp page"));
    }

    /// A report of the two-node guest, as `zoneprof report --format json` writes it.
    fn numa_report(pages: &[(u64, u64, u64)], wait: [u64; 2], cross_pct: Option<f64>) -> Value {
        json!({
            "host": {"numa_nodes": 2},
            "command": {"exit_code": 0},
            "per_cpu": [{"cpu": 0, "node": 0}, {"cpu": 1, "node": 1}],
            "zone_nodes": [
                {"node": 0, "wait_ns": {"alloc": wait[0], "free": 0, "other": 0},
                 "remote_cpu_wait_ns": wait[0] / 2},
                {"node": 1, "wait_ns": {"alloc": wait[1], "free": 0, "other": 0},
                 "remote_cpu_wait_ns": 0}
            ],
            "page_node_matrix": pages.iter().map(|&(a, f, n)| json!(
                {"alloc_node": a, "free_node": f, "pages": n})).collect::<Vec<_>>(),
            "skb_node_matrix": pages.iter().map(|&(a, f, n)| json!(
                {"alloc_cpu": a, "free_cpu": f, "count": n})).collect::<Vec<_>>(),
            "skb_free_sites": [{"function": "consume_skb", "cross_node": 5}],
            "zone_wait_blame_summary": {"cross_node_pct": cross_pct, "headline": "h"}
        })
    }

    #[test]
    fn numa_checks_want_two_nodes_and_flows_from_node_0_to_1() {
        let good = numa_report(&[(0, 0, 100), (0, 1, 900)], [4_000, 0], Some(80.0));
        let s = numa_pages_summary(&good).unwrap();
        assert!(s.contains("pages node 0 → 1: 900 of 1000 (90 %)"), "{s}");
        assert!(s.contains("80 % blamed across nodes"), "{s}");
        assert!(
            numa_tap_summary(&good)
                .unwrap()
                .contains("SKBs node 0 → 1: 900 of 1000")
        );
        // No contention: flows still checked, blame not.
        let quiet = numa_report(&[(0, 1, 10)], [0, 0], None);
        assert!(
            numa_pages_summary(&quiet)
                .unwrap()
                .contains("blame not checked")
        );
        // Flows on one node, or wait blamed within nodes, or one node: each fails.
        let local = numa_report(&[(0, 0, 900), (0, 1, 100)], [0, 0], None);
        assert!(numa_pages_summary(&local).is_err());
        assert!(numa_tap_summary(&local).is_err());
        let within = numa_report(&[(0, 1, 900)], [4_000, 0], Some(10.0));
        assert!(numa_pages_summary(&within).is_err());
        let unblamed = numa_report(&[(0, 1, 900)], [4_000, 0], None);
        assert!(numa_pages_summary(&unblamed).is_err());
        let mut one = good.clone();
        one["host"]["numa_nodes"] = json!(1);
        assert!(
            numa_pages_summary(&one)
                .unwrap_err()
                .to_string()
                .contains("1 NUMA node")
        );
        let mut swapped = good.clone();
        swapped["per_cpu"][1]["node"] = json!(0);
        assert!(numa_pages_summary(&swapped).is_err());
        let mut no_kernel_cross = good;
        no_kernel_cross["skb_free_sites"][0]["cross_node"] = json!(0);
        assert!(numa_tap_summary(&no_kernel_cross).is_err());
        let t = numa_table();
        let names: Vec<&str> = t.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["kernel-info", "numa-pages", "numa-tap"]);
        assert!(t[1].script.contains(
            "zoneprof record --page-flows --page-sample 16 -d 3s -o /tmp/numa.zprof --no-progress \
             -- zoneprof workload cross-cpu-pages --alloc-cpus 0 --free-cpus 1 -d 2s\n"
        ));
        assert!(t[2].script.starts_with(
            "zoneprof record -d 3s -o /tmp/numa-tap.zprof --no-progress -- zoneprof workload tap"
        ));
    }

    #[test]
    fn backend_parsing() {
        assert_eq!(Backend::parse("kprobe").unwrap(), [Backend::Kprobe]);
        assert_eq!(Backend::parse("all").unwrap().len(), 4);
        assert!(Backend::parse("uprobe").is_err());
    }

    #[test]
    fn kernel_info_parsing() {
        let out = "+ set +x\nzpvm.release=6.12.117\nzpvm.kprobe_pmu=yes\nzpvm.btf=yes\n\
                   zpvm.tracefs=yes\nzpvm.kallsyms_lines=140000\nzpvm.ftrace_functions=40339\n\
                   zpvm.tun=yes\nzpvm.sym.__rmqueue_pcplist=__rmqueue_pcplist.isra.0\n\
                   zpvm.ftrace.__rmqueue_pcplist=\nzpvm.sym.consume_skb=consume_skb\n\
                   zpvm.ftrace.consume_skb=consume_skb\nzpvm.kprobe_blacklisted.consume_skb=consume_skb\n\
                   zpvm.sym.tun_do_read=tun_do_read tun_do_read.cold\nzpvm.ftrace.tun_do_read=tun_do_read\n";
        let run = Run {
            output: out,
            files: BTreeMap::new(),
        };
        let summary = check_kernel_info(&run).unwrap();
        assert!(summary.starts_with(
            "Linux 6.12.117: kprobe PMU yes, BTF yes, tracefs yes, 140000 kallsyms lines, \
             40339 ftrace-able functions; "
        ));
        assert!(summary.contains("__rmqueue_pcplist (only as __rmqueue_pcplist.isra.0) notrace, "));
        assert!(summary.contains("consume_skb traceable kprobe-blacklisted"));
        assert!(summary.contains("skb_attempt_defer_free absent"));
        assert!(summary.ends_with("tun_do_read (+ tun_do_read.cold) traceable"));
        let bad = Run {
            output: "zpvm.release=6.1\n",
            files: BTreeMap::new(),
        };
        assert!(check_kernel_info(&bad).is_err());
    }

    fn report(probes_ok: bool, cpu0: (u64, u64), cpu1: (u64, u64)) -> Value {
        let mut probes: Vec<Value> = required_probes(Backend::Default)
            .0
            .iter()
            .map(|n| json!({"name": n, "method": "raw_tracepoint", "attached": true, "reason": null}))
            .collect();
        if !probes_ok {
            probes[3] = json!({"name": "kfree_skb", "method": "raw_tracepoint", "attached": false, "reason": "no such event"});
        }
        probes.push(json!({"name": "rmqueue_pcplist", "method": "fentry", "attached": false, "reason": "notrace"}));
        probes.push(json!({"name": "free_pcppages_bulk", "method": "fentry", "attached": true, "reason": null}));
        probes.push(json!({"name": "pcp_refill", "method": "raw_tracepoint", "attached": true, "reason": null}));
        json!({
            "duration_s": 3.01,
            "command": {"argv": ["zoneprof"], "exit_code": 0, "signal": null},
            "totals": {"zone_lock_wait_ns": {"alloc": 10, "free": 5, "other": 0},
                       "pcp_method": {"refill": "page", "drain": "batch"}},
            "probes": probes,
            "per_cpu": [
                {"cpu": 0, "pcp_refill_pages": cpu0.0, "pcp_drain_pages": cpu0.1},
                {"cpu": 1, "pcp_refill_pages": cpu1.0, "pcp_drain_pages": cpu1.1},
            ],
        })
    }

    #[test]
    fn cross_cpu_check() {
        let d = Backend::Default;
        let f = cross_cpu_figures(&report(true, (5000, 10), (63, 4900)), d).unwrap();
        assert_eq!(
            (f.refill, f.drain, f.zone_wait_ns),
            ([5000, 63], [10, 4900], 15)
        );
        assert_eq!(f.rmqueue, "not attached: notrace");
        assert_eq!(f.pcp_method, ("page".into(), "batch".into()));
        let e = cross_cpu_figures(&report(false, (5000, 10), (63, 4900)), d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "probes not attached: kfree_skb (no such event)"
        );
        let mut classic = report(true, (5000, 10), (63, 4900));
        classic["probes"][0]["method"] = json!("tracepoint");
        let e = cross_cpu_figures(&classic, d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "probes not attached: contention_begin (attached with tracepoint instead of raw_tracepoint)"
        );
        // A per-page fallback takes the raw form too.
        let mut classic_pcp = report(true, (5000, 10), (63, 4900));
        classic_pcp["probes"][6]["method"] = json!("tracepoint");
        let e = cross_cpu_figures(&classic_pcp, d).unwrap_err().to_string();
        assert!(e.contains("pcp_refill (attached with tracepoint"), "{e}");
        // By default both sides must be counted.
        let mut no_refill = report(true, (5000, 10), (63, 4900));
        no_refill["totals"]["pcp_method"]["refill"] = json!("off");
        let e = cross_cpu_figures(&no_refill, d).unwrap_err().to_string();
        assert!(e.contains("refills not counted"), "{e}");
        let e = cross_cpu_figures(&report(true, (0, 0), (0, 0)), d).unwrap_err();
        assert!(e.to_string().starts_with("drains"));
        assert!(cross_cpu_figures(&report(true, (100, 10), (90, 500)), d).is_err());
        assert!(cross_cpu_figures(&report(true, (100, 400), (10, 500)), d).is_err());
        // Forced kprobe: tracepoint-attached probes (of either form) do not count.
        let e = cross_cpu_figures(&report(true, (5000, 10), (63, 4900)), Backend::Kprobe)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("attached with raw_tracepoint instead of kprobe"),
            "{e}"
        );
        assert!(
            e.contains("skb_attempt_defer_free (missing from the report)"),
            "{e}"
        );
    }

    fn twin(batch: (u64, u64), page: (u64, u64), rmq: bool) -> Value {
        json!({
            "probes": [
                {"name": "rmqueue_pcplist", "method": "fentry", "target": "__rmqueue_pcplist", "attached": rmq, "reason": if rmq { Value::Null } else { json!("notrace") }},
                {"name": "free_pcppages_bulk", "method": "fentry", "target": "free_pcppages_bulk", "attached": true, "reason": null},
                {"name": "pcp_refill", "method": "raw_tracepoint", "attached": true, "reason": null},
                {"name": "pcp_drain", "method": "raw_tracepoint", "attached": true, "reason": null},
            ],
            "per_cpu": [
                {"cpu": 0, "pcp_refill_batch_pages": batch.0, "pcp_refill_pages": page.0, "pcp_bulk_free_pages": 0, "pcp_drain_pages": 0},
                {"cpu": 1, "pcp_refill_batch_pages": 0, "pcp_refill_pages": 0, "pcp_bulk_free_pages": batch.1, "pcp_drain_pages": page.1},
            ],
        })
    }

    #[test]
    fn twin_check() {
        let s = twin_summary(&twin((10_050, 20_000), (10_000, 20_000), true)).unwrap();
        assert_eq!(
            s,
            "refill: per batch 10050 (fentry __rmqueue_pcplist) vs per page 10000, +0.50 %; \
             drain: per batch 20000 (fentry free_pcppages_bulk) vs per page 20000, +0.00 %"
        );
        let e = twin_summary(&twin((10_200, 20_000), (10_000, 20_000), true)).unwrap_err();
        assert!(e.to_string().contains("2.00 % apart"), "{e}");
        // No batch hook on the refill side (Debian 6.12): compared on the drain side only.
        let s = twin_summary(&twin((0, 20_000), (10_000, 20_000), false)).unwrap();
        assert!(
            s.starts_with("refill: no batch hook (notrace); drain:"),
            "{s}"
        );
        assert!(
            twin_summary(&twin((5, 5), (5, 5), true)).is_err(),
            "too few pages"
        );
    }

    #[test]
    fn method_tables_and_card_proof() {
        let doc = |kernel: &str, rows: &[(&str, &str, &str)]| {
            let trials: Vec<Value> = rows
                .iter()
                .map(|(p, m, r)| json!({"probe": p, "method": m, "programs": ["x"], "target": "t",
                                        "result": r, "detail": if *r == "attached" { Value::Null } else { json!("R3 unbounded memory access") }}))
                .collect();
            serde_json::to_vec(&json!({"format": "zoneprof-methods", "version": 1,
                                       "kernel_release": kernel, "trials": trials}))
            .unwrap()
        };
        let all = |r: &'static str| {
            CARD_PROBES
                .iter()
                .flat_map(|p| [(*p, "kprobe", r), (*p, "fentry", r)])
                .collect::<Vec<_>>()
        };
        let good = MethodTable::parse(&doc("6.12-noinline", &all("attached"))).unwrap();
        assert_eq!(
            good.verdict().unwrap(),
            "6 attached, 0 rejected, 0 refused, 0 unavailable"
        );
        let lines = card_proof(std::slice::from_ref(&good)).unwrap();
        assert_eq!(
            lines[0],
            "rmqueue_pcplist by kprobe: attached on 6.12-noinline (t)"
        );
        let bad = MethodTable::parse(&doc("6.12", &all("rejected"))).unwrap();
        let e = bad.verdict().unwrap_err().to_string();
        assert!(e.contains("R3 unbounded memory access"), "{e}");
        // Rejected where the target exists and never attached elsewhere: not proven.
        assert!(card_proof(std::slice::from_ref(&bad)).is_err());
        assert!(card_proof(&[bad, good]).is_ok());
        // No kernel with the target: reported, not failed.
        let absent = MethodTable::parse(&doc("6.12", &all("unavailable"))).unwrap();
        let lines = card_proof(&[absent]).unwrap();
        assert!(lines[0].ends_with("not proven (no kernel of this run has its target)"));
        assert!(MethodTable::parse(b"{}").is_err());
    }

    fn tap_report(method: &str, caller: &str, flushed: u64) -> Value {
        json!({
            "command": {"exit_code": 0},
            "probes": [
                {"name": "consume_skb", "method": method, "attached": true, "reason": null},
                {"name": "skb_attempt_defer_free", "method": method, "attached": true, "reason": null},
            ],
            "skb_free_sites": [
                {"function": "consume_skb", "caller": caller, "count": 7628, "remote": 7628, "remote_ratio": 1.0},
                {"function": "consume_skb", "caller": "netlink_recvmsg", "count": 17, "remote": 0, "remote_ratio": 0.0},
            ],
            "skb_defer": [{"cpu": 1, "calls": 5, "deferred": 5, "immediate": 0, "flushed": flushed, "ipis": 0}],
        })
    }

    #[test]
    fn tap_check_with_tasks_wants_the_vhost_thread() {
        let mut r = tap_report("kprobe", "tun_do_read", 0);
        r["tasks_recorded"] = json!(true);
        r["skb_free_tasks"] = json!([{"comm": "tap-send-0", "count": 3}]);
        let e = tap_summary(&r, Backend::Kprobe).unwrap_err().to_string();
        assert!(e.contains("vhost-<pid>"), "{e}");
        r["skb_free_tasks"] = json!([{"comm": "vhost-77", "count": 7628}]);
        let s = tap_summary(&r, Backend::Kprobe).unwrap();
        assert!(
            s.contains("; 7628 by the vhost-<pid> reader thread;"),
            "{s}"
        );
    }

    #[test]
    fn tap_check() {
        let s = tap_summary(&tap_report("kprobe", "tun_do_read", 0), Backend::Kprobe).unwrap();
        assert_eq!(
            s,
            "consume_skb kprobe, skb_attempt_defer_free kprobe; 7645 consume_skb frees; \
             consume_skb ← tun_do_read 7628 (100 % remote); skb_attempt_defer_free 5 calls, \
             5 deferred, 0 flushed (flush frees not observable: napi_consume_skb is not probed)"
        );
        let e = tap_summary(&tap_report("kprobe", "tun_do_read", 0), Backend::Fentry)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("consume_skb attached with kprobe instead of fentry"),
            "{e}"
        );
        let e = tap_summary(
            &tap_report("fentry", "0xffffffff81a2b3c4", 1),
            Backend::Fentry,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "caller attribution: no free site from tun_do_read; top sites: consume_skb ← \
             0xffffffff81a2b3c4 (7628), consume_skb ← netlink_recvmsg (17)"
        );
        let mut none = tap_report("fentry", "tun_do_read", 1);
        none["skb_free_sites"] = json!([]);
        assert!(tap_summary(&none, Backend::Fentry).is_err());
        let mut off = tap_report("fentry", "tun_do_read", 1);
        off["probes"][1] = json!({"name": "skb_attempt_defer_free", "method": "fentry", "attached": false, "reason": "EBUSY"});
        assert_eq!(
            tap_summary(&off, Backend::Fentry).unwrap_err().to_string(),
            "probe skb_attempt_defer_free not attached: EBUSY"
        );
    }

    #[test]
    fn check_reads_the_collected_report() {
        let body = serde_json::to_vec(&report(true, (5000, 0), (0, 4900))).unwrap();
        let mut files = BTreeMap::new();
        files.insert("report.json", body.as_slice());
        let s = check_cross_cpu_with(&Run { output: "", files }, Backend::Default).unwrap();
        assert!(
            s.starts_with("6/7 probes; refill (page) CPU0 5000 / CPU1 0; drain (batch) CPU1 4900"),
            "{s}"
        );
        let none = Run {
            output: "",
            files: BTreeMap::new(),
        };
        assert_eq!(
            check_cross_cpu_with(&none, Backend::Default)
                .unwrap_err()
                .to_string(),
            "report.json did not come back from the guest"
        );
    }
}
