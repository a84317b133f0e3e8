//! `zoneprof doctor`: can this host be recorded, and what would a recording see? Checks
//! privileges, tracefs, BTF, kprobes, fentry, every probe (by really loading and attaching
//! it, then detaching), every struct offset, topology and sysctls. Each failure says what
//! to do.
use serde::Serialize;

use crate::{
    kernel::attach, kernel::btf::Btf, kernel::host, kernel::probes::CATALOG,
    kernel::symbolize::Kallsyms, kernel::tracefs,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it (empty when nothing is needed).
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    pub format: &'static str,
    pub version: u32,
    pub checks: Vec<Check>,
    pub probes: Vec<crate::model::recording::ProbeStatus>,
    pub targets: Vec<attach::TargetFact>,
    /// A recording would show zone-lock contention or PCP traffic.
    pub recording_useful: bool,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// Struct members the probes read, as (struct, member, what needs it).
const OFFSETS: &[(&str, &str, &str)] = &[
    ("zone", "lock", "zone-lock proof by address"),
    ("zone", "name", "zone labels"),
    ("zone", "zone_pgdat", "zone-lock proof by address"),
    ("pglist_data", "node_zones", "zone-lock proof by address"),
    ("pglist_data", "node_id", "zone labels"),
    (
        "sk_buff",
        "alloc_cpu",
        "SKB alloc-CPU x free-CPU attribution (5.19+)",
    ),
];

/// Tracepoints the catalog uses, with what each gives.
fn tracepoints() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut v = Vec::new();
    for spec in CATALOG {
        for m in spec.methods {
            if let crate::kernel::probes::Method::Tracepoint {
                category, event, ..
            } = m
            {
                v.push((*category, *event, spec.feeds));
            }
        }
    }
    v
}

pub fn run() -> Doctor {
    let mut checks = Vec::new();
    let privileged = attach::check_privileges();
    checks.push(privileges_check(&privileged));
    let (tracefs_root, c) = tracefs_check();
    checks.push(c);
    let (btf, c) = btf_check();
    checks.push(c);
    checks.push(kprobes_check());
    let (ksyms, c) = kallsyms_check();
    checks.push(c);
    if let Some(root) = &tracefs_root {
        checks.extend(tracepoint_checks(root));
    }
    if let Some(b) = &btf {
        checks.extend(offset_checks(b));
    }
    checks.push(topology_check());
    checks.extend(sysctl_checks());

    // The real test: load and attach everything, then detach at once.
    let mut probes = Vec::new();
    if privileged.is_ok() && tracefs_root.is_some() {
        match attach_everything(ksyms.as_ref()) {
            Ok(p) => probes = p,
            Err(c) => checks.push(c),
        }
    }
    checks.extend(probes.iter().map(probe_check));
    Doctor {
        format: "zoneprof-doctor",
        version: 1,
        checks,
        targets: attach::target_facts(ksyms.as_ref(), btf.as_ref()),
        recording_useful: recording_useful(&probes),
        probes,
    }
}

fn privileges_check(privileged: &Result<(), attach::AttachError>) -> Check {
    match privileged {
        Ok(()) => check("privileges", Status::Ok, "can load eBPF programs", ""),
        Err(e) => check(
            "privileges",
            Status::Fail,
            e.to_string(),
            "run as root (sudo zoneprof ...)",
        ),
    }
}

/// tracefs, mounted here when it was not; its root when it is there.
fn tracefs_check() -> (Option<std::path::PathBuf>, Check) {
    match tracefs::ensure_tracefs() {
        Ok((p, mounted)) => {
            let c = check(
                "tracefs",
                Status::Ok,
                if mounted {
                    format!("mounted it at {}", p.display())
                } else {
                    format!("at {}", p.display())
                },
                "",
            );
            (Some(p), c)
        }
        Err(e) => (
            None,
            check(
                "tracefs",
                Status::Fail,
                e.to_string(),
                "as root: mount -t tracefs nodev /sys/kernel/tracing",
            ),
        ),
    }
}

fn btf_check() -> (Option<Btf>, Check) {
    match Btf::from_sys_vmlinux() {
        Ok(b) => (
            Some(b),
            check("BTF", Status::Ok, "/sys/kernel/btf/vmlinux", ""),
        ),
        Err(e) => (
            None,
            check(
                "BTF",
                Status::Warn,
                e.to_string(),
                "use a kernel built with CONFIG_DEBUG_INFO_BTF=y: without it zone locks are not \
                 labelled, SKB frees not attributed, and fentry is unavailable",
            ),
        ),
    }
}

fn kprobes_check() -> Check {
    let kprobe_pmu = std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    if kprobe_pmu {
        check("kprobes", Status::Ok, "kprobe PMU present", "")
    } else {
        check(
            "kprobes",
            Status::Warn,
            "no kprobe PMU (CONFIG_KPROBES off)",
            "probes fall back to fentry or tracepoints; skb_attempt_defer_free needs kprobe or fentry",
        )
    }
}

fn kallsyms_check() -> (Option<Kallsyms>, Check) {
    match Kallsyms::load() {
        Ok(k) => {
            let c = check("kallsyms", Status::Ok, format!("{} symbols", k.len()), "");
            (Some(k), c)
        }
        Err(e) => (
            None,
            check(
                "kallsyms",
                Status::Warn,
                e.to_string(),
                "run as root or with CAP_SYSLOG: stacks stay unsymbolized otherwise",
            ),
        ),
    }
}

/// Every tracepoint the catalog uses: present, or what is lost without it.
fn tracepoint_checks(root: &std::path::Path) -> Vec<Check> {
    tracepoints()
        .into_iter()
        .map(|(cat, ev, feeds)| {
            if tracefs::event_exists(root, cat, ev) {
                check(&format!("tracepoint {cat}:{ev}"), Status::Ok, "present", "")
            } else {
                check(
                    &format!("tracepoint {cat}:{ev}"),
                    Status::Warn,
                    format!("missing: no {feeds} from it"),
                    if cat == "lock" {
                        "lock:contention_* needs Linux 5.19+"
                    } else {
                        "needs a newer kernel, or another method for this probe"
                    },
                )
            }
        })
        .collect()
}

/// Every struct member the probes read, found in BTF or not.
fn offset_checks(b: &Btf) -> Vec<Check> {
    OFFSETS
        .iter()
        .map(|(s, m, why)| {
            let name = format!("offset {s}.{m}");
            match b.member_offset(s, m) {
                Ok(Some(off)) => check(&name, Status::Ok, format!("{off}"), ""),
                Ok(None) => check(
                    &name,
                    Status::Warn,
                    format!("absent on this kernel: no {why}"),
                    "",
                ),
                Err(e) => check(&name, Status::Warn, e.to_string(), ""),
            }
        })
        .collect()
}

fn topology_check() -> Check {
    match host::host_info() {
        Ok(h) => check(
            "topology",
            Status::Ok,
            format!(
                "{} online CPUs ({}), {} possible, {} NUMA node(s); Linux {}",
                h.online_cpus.len(),
                crate::kernel::cpulist::format_cpu_list(&h.online_cpus),
                h.possible_cpus,
                h.numa_nodes.len().max(1),
                h.kernel_release
            ),
            "",
        ),
        Err(e) => check("topology", Status::Warn, e.to_string(), ""),
    }
}

/// The sysctls a recording notes, and a warning when SKB deferral is off.
fn sysctl_checks() -> Vec<Check> {
    let s = host::read_settings();
    let show = |v: Option<i64>| v.map_or("absent".to_string(), |v| v.to_string());
    let mut checks = vec![check(
        "sysctls",
        Status::Ok,
        format!(
            "net.core.skb_defer_max={} vm.percpu_pagelist_high_fraction={} vm.stat_interval={}",
            show(s.skb_defer_max),
            show(s.percpu_pagelist_high_fraction),
            show(s.stat_interval)
        ),
        "",
    )];
    if s.skb_defer_max == Some(0) {
        checks.push(check(
            "skb deferral",
            Status::Warn,
            "net.core.skb_defer_max=0: skb_attempt_defer_free never defers",
            "sysctl -w net.core.skb_defer_max=64 to compare deferral",
        ));
    }
    checks
}

/// Loads and attaches every probe, opt-in ones included, then detaches: what each probe
/// really did, or the failed "load" check.
fn attach_everything(
    ksyms: Option<&Kallsyms>,
) -> Result<Vec<crate::model::recording::ProbeStatus>, Check> {
    let opts = attach::PlanOpts {
        page_flows: true,
        page_sample: 64,
        backend: Default::default(),
        only: None,
        // Every PCP probe, batch and per page, so each is tried for real.
        pcp: crate::kernel::probes::PcpMode::Page,
        map_entries: Default::default(),
        // Keys by thread too: the doctor loads what --tasks loads.
        tasks: true,
    };
    let host = host::host_info().ok();
    let (cpu_node, online) = host
        .map(|h| (h.cpu_node, h.online_cpus))
        .unwrap_or_default();
    match attach::plan(&opts, ksyms)
        .and_then(|p| attach::load_and_attach(&p, None, &cpu_node, &online))
    {
        Ok(mut a) => {
            a.detach();
            Ok(a.probes)
        }
        Err(e) => Err(check(
            "load",
            Status::Fail,
            e.to_string(),
            "see the probe lines above",
        )),
    }
}

fn probe_check(p: &crate::model::recording::ProbeStatus) -> Check {
    if p.attached {
        check(
            &format!("probe {}", p.name),
            Status::Ok,
            format!("attaches with {} on {}", p.method, p.target),
            "",
        )
    } else {
        check(
            &format!("probe {}", p.name),
            Status::Warn,
            p.reason.clone().unwrap_or_default(),
            "the report will list it as not observable",
        )
    }
}

/// A recording would show zone-lock contention or PCP traffic.
fn recording_useful(probes: &[crate::model::recording::ProbeStatus]) -> bool {
    use crate::kernel::probes::name;
    let attached = |n: &str| crate::model::recording::attached(probes, n);
    (attached(name::CONTENTION_BEGIN) && attached(name::CONTENTION_END))
        || attached(name::PCP_REFILL)
        || attached(name::PCP_DRAIN)
        || attached(name::RMQUEUE_PCPLIST)
        || attached(name::FREE_PCPPAGES_BULK)
}

pub fn to_text(d: &Doctor) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for c in &d.checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(s, "[{tag}] {:<36} {}", c.name, c.detail);
        if !c.fix.is_empty() && c.status != Status::Ok {
            let _ = writeln!(s, "       {:<36} -> {}", "", c.fix);
        }
    }
    if !d.targets.is_empty() {
        let _ = writeln!(s, "\nkprobe/fentry targets");
        for t in &d.targets {
            let _ = writeln!(
                s,
                "  {:<24} {:<7} {:<22} kallsyms: {:<28} BTF: {:<3} traceable: {}",
                t.probe,
                t.method,
                t.symbol,
                t.in_kallsyms.as_deref().unwrap_or("absent (inlined?)"),
                if t.in_btf { "yes" } else { "no" },
                match t.traceable {
                    Some(true) => "yes",
                    Some(false) => "no (notrace)",
                    None => "unknown",
                }
            );
        }
    }
    let _ = writeln!(
        s,
        "\n{}",
        if d.recording_useful {
            "A useful recording is possible: zoneprof record -o r.zprof\n\
             Live: zoneprof top (terminal), zoneprof serve (Prometheus metrics)"
        } else {
            "No useful recording is possible on this host: fix the FAIL lines above."
        }
    );
    // Any recording, from any host, exports without probes.
    let _ = writeln!(
        s,
        "Other tools: zoneprof export r.zprof --format pprof|speedscope|folded|csv -o OUT"
    );
    s
}

/// `zoneprof doctor --methods`: every method of every probe, tried on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Methods {
    pub format: &'static str,
    pub version: u32,
    pub kernel_release: String,
    pub trials: Vec<attach::MethodTrial>,
}

impl Methods {
    /// Programs the verifier refused: a zoneprof bug wherever the target exists.
    pub fn rejected(&self) -> impl Iterator<Item = &attach::MethodTrial> {
        self.trials
            .iter()
            .filter(|t| t.result == attach::TrialResult::Rejected)
    }
}

pub fn methods() -> anyhow::Result<Methods> {
    use anyhow::Context as _;
    let ksyms = Kallsyms::load().ok();
    let host = host::host_info().context("reading host facts")?;
    let trials = attach::try_every_method(ksyms.as_ref(), &host.cpu_node, &host.online_cpus)
        .context("trying the probe methods")?;
    Ok(Methods {
        format: "zoneprof-methods",
        version: 1,
        kernel_release: host.kernel_release.clone(),
        trials,
    })
}

pub fn methods_text(m: &Methods) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "Probe methods on Linux {}: each loaded and attached on its own, then detached\n",
        m.kernel_release
    );
    let _ = writeln!(
        s,
        "  {:<24} {:<15} {:<60} {:<11} detail",
        "probe", "method", "programs @ target", "result"
    );
    for t in &m.trials {
        let _ = writeln!(
            s,
            "  {:<24} {:<15} {:<60} {:<11} {}",
            t.probe,
            t.method,
            format!("{} @ {}", t.programs.join("+"), t.target),
            t.result.name(),
            t.detail.as_deref().unwrap_or("")
        );
    }
    let rejected = m.rejected().count();
    let _ = writeln!(
        s,
        "{} attached, {rejected} rejected by the verifier, {} refused, {} unavailable",
        m.trials
            .iter()
            .filter(|t| t.result == attach::TrialResult::Attached)
            .count(),
        m.trials
            .iter()
            .filter(|t| t.result == attach::TrialResult::Refused)
            .count(),
        m.trials
            .iter()
            .filter(|t| t.result == attach::TrialResult::Unavailable)
            .count(),
    );
    s
}
