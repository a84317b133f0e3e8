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
    pub check: fn(&Run) -> Result<String>,
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
    let mut t = vec![kernel_info(), version()];
    for &b in backends {
        t.push(record_cross_cpu(b));
    }
    for &b in backends {
        if matches!(b, Backend::Kprobe | Backend::Fentry) {
            t.push(record_tap(b));
        }
    }
    t
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
        timeout_s: 60,
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

fn check_kernel_info(run: &Run) -> Result<String> {
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
        timeout_s: 60,
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
    /// Per CPU 0/1: PCP refill pages (tracepoint) or `__rmqueue_pcplist` calls (kprobe/fentry).
    pub refill: [u64; 2],
    /// Per CPU 0/1: PCP drain pages (tracepoint) or `free_pcppages_bulk` pages (kprobe/fentry).
    pub drain: [u64; 2],
    pub zone_wait_ns: u64,
    pub duration_s: f64,
    /// How `__rmqueue_pcplist` went: the method, or why it fell back.
    pub rmqueue: String,
}

/// Probes that must attach under `backend`, and the method they must use (None: any).
pub fn required_probes(backend: Backend) -> (&'static [&'static str], Option<&'static str>) {
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
        Backend::Default => (TP, None),
        Backend::Tracepoint => (TP, Some("tracepoint")),
        Backend::Kprobe => (KFUNC, Some("kprobe")),
        Backend::Fentry => (KFUNC, Some("fentry")),
    }
}

fn check_cross_cpu_with(run: &Run, backend: Backend) -> Result<String> {
    let json = run.file("report.json")?;
    let report: Value = serde_json::from_slice(json).context("report.json is not JSON")?;
    let f = cross_cpu_figures(&report, backend)?;
    Ok(format!(
        "{}/{} probes; refill CPU0 {} / CPU1 {}; drain CPU1 {} / CPU0 {}; \
         zone-lock wait {} ns; {:.2} s; __rmqueue_pcplist: {}",
        f.probes_attached,
        f.probes,
        f.refill[0],
        f.refill[1],
        f.drain[1],
        f.drain[0],
        f.zone_wait_ns,
        f.duration_s,
        f.rmqueue
    ))
}

/// Asserts the cross-CPU expectations on a `zoneprof report --format json` document.
/// Probes whose raw tracepoint form every kernel under test accepts.
const RAW_BY_DEFAULT: [&str; 4] = [
    "contention_begin",
    "contention_end",
    "pcp_refill",
    "pcp_drain",
];

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
    ensure!(
        problems.is_empty(),
        "probes not attached: {}",
        problems.join("; ")
    );
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
    let kfunc = matches!(backend, Backend::Kprobe | Backend::Fentry);
    let (rkey, dkey) = if kfunc {
        ("rmqueue_calls", "pcp_bulk_free_pages")
    } else {
        ("pcp_refill_pages", "pcp_drain_pages")
    };
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
    };
    // The drain side is observable with every backend.
    ensure!(
        drain[1] > 0 && drain[1] >= 2 * drain[0],
        "drains ({dkey}) not dominated by the free CPU: CPU1 {} vs CPU0 {}",
        drain[1],
        drain[0]
    );
    // Refills: with kprobe/fentry only when __rmqueue_pcplist (or its fallback) attached.
    if !kfunc || f.rmqueue.starts_with("attached") {
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
            "zoneprof record{} -o /tmp/tap.zprof --no-progress -- \
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

fn check_tap_with(run: &Run, backend: Backend) -> Result<String> {
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
                "record-cross-cpu",
                "record-cross-cpu-tracepoint",
                "record-cross-cpu-kprobe",
                "record-cross-cpu-fentry",
                "record-tap-kprobe",
                "record-tap-fentry"
            ]
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), t.len());
        for s in &t {
            crate::vm::initramfs::check_name("step", &s.name).unwrap();
            assert!(!s.script.is_empty() && s.timeout_s > 0);
        }
        let default = &t[2];
        assert!(default.requires.is_none());
        assert!(default.script.starts_with("zoneprof record -d 3s"));
        let kprobe = &t[4];
        assert!(
            kprobe
                .script
                .starts_with("zoneprof record --backend kprobe -d 3s")
        );
        assert!(kprobe.requires.as_deref().unwrap().contains("kprobe/type"));
        assert_eq!(table(&[Backend::Default]).len(), 3);
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
            probes[3] = json!({"name": "pcp_drain", "method": "raw_tracepoint", "attached": false, "reason": "no such event"});
        }
        probes.push(json!({"name": "rmqueue_pcplist", "method": "fentry", "attached": false, "reason": "notrace"}));
        json!({
            "duration_s": 3.01,
            "command": {"argv": ["zoneprof"], "exit_code": 0, "signal": null},
            "totals": {"zone_lock_wait_ns": {"alloc": 10, "free": 5, "other": 0}},
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
        let e = cross_cpu_figures(&report(false, (5000, 10), (63, 4900)), d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "probes not attached: pcp_drain (no such event)"
        );
        let mut classic = report(true, (5000, 10), (63, 4900));
        classic["probes"][0]["method"] = json!("tracepoint");
        let e = cross_cpu_figures(&classic, d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "probes not attached: contention_begin (attached with tracepoint instead of raw_tracepoint)"
        );
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
            s.starts_with("6/7 probes; refill CPU0 5000 / CPU1 0; drain CPU1 4900"),
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
