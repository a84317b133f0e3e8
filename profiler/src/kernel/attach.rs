//! Loading the eBPF object and attaching the catalog's probes, choosing per probe the
//! first method this kernel really accepts. A probe that cannot attach is reported with
//! the reason (verifier log included), never silently dropped.
use std::path::PathBuf;

use aya::{
    Ebpf, EbpfLoader,
    maps::Array,
    programs::{FEntry, FExit, KProbe, Program, ProgramError, RawTracePoint, TracePoint},
};
use profiler_common::{ABSENT, FuncRange, MAX_CPUS, func_slot};

use crate::{
    kernel::btf::Btf,
    kernel::probes::{Backend, CATALOG, Method, PcpMode, PcpRole, ProbeSpec, Proto, name},
    kernel::symbolize::Kallsyms,
    kernel::tracefs,
    model::recording::{AttachAttempt, ProbeStatus},
};

/// The compiled eBPF object, built by build.rs (aya-build) and embedded in the binary.
pub(crate) static EBPF_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler"));

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "loading eBPF programs needs root, or CAP_BPF and CAP_PERFMON: this process lacks {missing} (try sudo)"
    )]
    NotPrivileged { missing: String },
    #[error("tracefs is not available: {0}")]
    Tracefs(String),
    #[error("cannot load the eBPF object: {0}{hint}", hint = privilege_hint())]
    Load(String),
    #[error("no probe could be attached: {0}")]
    NothingAttached(String),
    #[error("cannot set up map {map}: {detail}")]
    Map { map: &'static str, detail: String },
}

fn privilege_hint() -> &'static str {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        " (run as root, or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)"
    } else {
        ""
    }
}

/// Effective capability bits from /proc/self/status (0 when unreadable).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails early, with one clear line, when this process cannot load eBPF programs, rather
/// than letting every probe fail with a less obvious EPERM.
pub fn check_privileges() -> Result<(), AttachError> {
    missing_caps(effective_caps()).map_or(Ok(()), |missing| {
        Err(AttachError::NotPrivileged {
            missing: missing.join(" and "),
        })
    })
}

/// The capabilities that `caps` (an effective set) lacks to load and attach the programs;
/// None when nothing is missing. CAP_SYS_ADMIN alone also does (the kernels before 5.8
/// had no CAP_BPF/CAP_PERFMON).
fn missing_caps(caps: u64) -> Option<Vec<&'static str>> {
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_PERFMON: u64 = 1 << 38;
    const CAP_BPF: u64 = 1 << 39;
    if caps & CAP_SYS_ADMIN != 0 {
        return None;
    }
    let missing: Vec<_> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(bit, _)| caps & bit == 0)
        .map(|(_, name)| name)
        .collect();
    (!missing.is_empty()).then_some(missing)
}

/// Offsets the programs need, as load-time globals.
#[derive(Debug, Clone, Default)]
struct Globals {
    u32s: Vec<(&'static str, u32)>,
    u64s: Vec<(&'static str, u64)>,
}

impl Globals {
    fn set(&mut self, name: &'static str, v: u32) {
        self.u32s.push((name, v));
    }

    fn set64(&mut self, name: &'static str, v: u64) {
        self.u64s.push((name, v));
    }
}

/// What the user asked to record beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct PlanOpts {
    /// Follow sampled pages from allocation to free (`--page-flows`).
    pub page_flows: bool,
    /// One page in N is tracked.
    pub page_sample: u32,
    /// Attach only with this kind of method (`--backend`).
    pub backend: Backend,
    /// Attach only these probes, by catalog name (`--probes`); None: every default probe.
    pub only: Option<Vec<String>>,
    /// How PCP pages are counted (`--pcp`).
    pub pcp: PcpMode,
    /// Sizes of the aggregation maps (`--map-entries`).
    pub map_entries: super::map_entries::MapEntries,
    /// Key lock waits and SKB frees by thread too, and name the threads (`--tasks`).
    pub tasks: bool,
}

impl PlanOpts {
    fn enables(&self, opt: &str) -> bool {
        match opt {
            "--page-flows" => self.page_flows,
            _ => false,
        }
    }
}

/// The method recorded for a probe left out by choice (opt-in, or not in `--probes`).
pub const OFF: &str = "off";

/// A method that passed the checks possible before loading, with its resolved target.
#[derive(Debug, Clone)]
struct Candidate {
    method: Method,
    /// Tracepoint `cat:event`, or the kernel symbol (a `.isra.N` clone, a renamed function).
    target: String,
}

/// What could be learnt about the running kernel before loading.
pub struct Plan {
    pub tracefs_mounted_by_us: bool,
    globals: Globals,
    /// Per catalog entry: methods to try in order, and the failed pre-checks.
    candidates: Vec<(Vec<Candidate>, Vec<AttachAttempt>)>,
    /// Per (catalog index, method index): what the pre-checks made of that method.
    method_checks: Vec<(usize, usize, Result<Vec<Candidate>, String>)>,
    /// Function ranges for caller attribution: (slot, range).
    ranges: Vec<(u32, FuncRange)>,
    /// Why zone locks cannot be labelled by address, if they cannot.
    pub zone_label_unavailable: Option<String>,
    /// Why SKB frees cannot be attributed to their allocating CPU, if they cannot.
    pub skb_alloc_cpu_unavailable: Option<String>,
    pub opts: PlanOpts,
}

impl Plan {
    /// The kinds of method (`raw_tracepoint`, `tracepoint`, ...) the probes `names` will
    /// first try, without repeats: what their programs will most likely be attached by.
    pub fn first_methods(&self, names: &[&str]) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        for (spec, (cands, _)) in CATALOG.iter().zip(&self.candidates) {
            if !names.contains(&spec.name) {
                continue;
            }
            if let Some(c) = cands.first() {
                let kind = c.method.kind();
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        kinds
    }
}

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

/// Kernel facts the pre-checks need, read once.
struct Kernel<'a> {
    tracefs: PathBuf,
    btf: Result<Btf, String>,
    ksyms: Option<&'a Kallsyms>,
    kprobes: Result<(), String>,
    /// Functions ftrace can trace (kprobes on them and fentry need that); None when the
    /// list is unreadable.
    traceable: Option<std::collections::HashSet<String>>,
    /// `offsetof(struct per_cpu_pages, count)`, which the PCP batch hooks read, or why not.
    pcp_count_off: Result<u32, String>,
}

impl<'a> Kernel<'a> {
    /// The facts of the running kernel, tracefs being at `tracefs`.
    fn read(tracefs: PathBuf, ksyms: Option<&'a Kallsyms>) -> Self {
        let btf = Btf::from_sys_vmlinux().map_err(|e| format!("no kernel BTF: {e}"));
        let pcp_count_off = btf.as_ref().map_err(Clone::clone).and_then(|b| {
            b.member_offset("per_cpu_pages", "count")
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "struct per_cpu_pages has no member count".to_string())
        });
        Kernel {
            traceable: read_traceable(&tracefs),
            tracefs,
            btf,
            pcp_count_off,
            ksyms,
            kprobes: if std::path::Path::new(KPROBE_PMU).exists() {
                Ok(())
            } else {
                Err(format!(
                    "kprobes are not available on this kernel (no kprobe PMU at {KPROBE_PMU}: CONFIG_KPROBES off?)"
                ))
            },
        }
    }

    /// Err when ftrace says `sym` is `notrace` (kprobe gets EINVAL, fentry EBUSY).
    fn check_traceable(&self, sym: &str) -> Result<(), String> {
        match &self.traceable {
            Some(t) if !t.contains(sym) => Err(format!(
                "{sym} is not traceable (notrace: missing from available_filter_functions)"
            )),
            _ => Ok(()),
        }
    }
}

fn read_traceable(tracefs: &std::path::Path) -> Option<std::collections::HashSet<String>> {
    let text = std::fs::read_to_string(tracefs.join("available_filter_functions")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect(),
    )
}

/// Reads tracefs formats, BTF and kallsyms, and decides which methods each probe will try.
pub fn plan(opts: &PlanOpts, ksyms: Option<&Kallsyms>) -> Result<Plan, AttachError> {
    check_privileges()?;
    let (root, mounted) =
        tracefs::ensure_tracefs().map_err(|e| AttachError::Tracefs(e.to_string()))?;
    let k = Kernel::read(root, ksyms);
    let mut p = Planner {
        k: &k,
        opts,
        globals: Globals::default(),
        method_checks: Vec::new(),
        ranges: Vec::new(),
    };
    let mut candidates = Vec::new();
    for (si, spec) in CATALOG.iter().enumerate() {
        candidates.push(p.probe(si, spec));
    }
    let Planner {
        mut globals,
        method_checks,
        ranges,
        ..
    } = p;
    defer_ipi_callback(ksyms, &mut globals, &mut candidates);
    let (zone_label_unavailable, skb_alloc_cpu_unavailable) =
        kernel_globals(&k, opts, &mut globals);
    Ok(Plan {
        tracefs_mounted_by_us: mounted,
        globals,
        candidates,
        method_checks,
        ranges,
        zone_label_unavailable,
        skb_alloc_cpu_unavailable,
        opts: opts.clone(),
    })
}

/// What `plan` gathers while it goes through the catalog.
struct Planner<'k> {
    k: &'k Kernel<'k>,
    opts: &'k PlanOpts,
    globals: Globals,
    method_checks: Vec<(usize, usize, Result<Vec<Candidate>, String>)>,
    ranges: Vec<(u32, FuncRange)>,
}

impl Planner<'_> {
    /// The methods catalog entry `si` will try, in order, and those that failed the
    /// pre-checks or were not tried.
    fn probe(&mut self, si: usize, spec: &ProbeSpec) -> (Vec<Candidate>, Vec<AttachAttempt>) {
        let opts = self.opts;
        // Probes left out by choice are marked "off": not a failure to warn about.
        if let Some(why) = left_out(spec, opts) {
            let off = AttachAttempt {
                method: OFF.into(),
                target: spec.methods.first().map(|m| m.target()).unwrap_or_default(),
                error: Some(why),
            };
            return (Vec::new(), vec![off]);
        }
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        // `--pcp page` names the per-page tracepoints itself, whatever `--backend` says.
        let pcp_page = opts.pcp == PcpMode::Page && matches!(spec.pcp, PcpRole::PerPage { .. });
        for (mi, m) in spec.methods.iter().enumerate() {
            let fail = |e: String| AttachAttempt {
                method: m.kind().into(),
                target: m.target(),
                error: Some(e),
            };
            if !m.allowed_by(opts.backend) && !pcp_page {
                failed.push(fail(format!(
                    "not tried: --backend {} forces another method",
                    backend_name(opts.backend)
                )));
                continue;
            }
            let checked = precheck(self.k, spec, m, &mut self.globals);
            self.method_checks.push((si, mi, checked.clone()));
            match checked {
                Ok(cs) => {
                    for c in cs {
                        self.note_caller_range(spec, &c);
                        ok.push(c);
                    }
                }
                Err(e) => failed.push(fail(e)),
            }
        }
        if ok.is_empty() && failed.is_empty() {
            failed.push(AttachAttempt {
                method: backend_name(opts.backend).into(),
                target: String::new(),
                error: Some(format!(
                    "this probe has no {} method",
                    backend_name(opts.backend)
                )),
            });
        }
        (ok, failed)
    }

    /// The first target of a probe that attributes callers gives its function range.
    fn note_caller_range(&mut self, spec: &ProbeSpec, c: &Candidate) {
        if let Some(slot) = caller_slot(spec.name)
            && let Some(r) = self.k.ksyms.and_then(|ks| ks.symbol_range(&c.target))
            && !self.ranges.iter().any(|(s, _)| *s == slot)
        {
            self.ranges.push((
                slot,
                FuncRange {
                    start: r.0,
                    end: r.1,
                },
            ));
        }
    }
}

/// Why a probe is left out by choice (not in `--probes`, `--pcp`, opt-in), if it is.
fn left_out(spec: &ProbeSpec, opts: &PlanOpts) -> Option<String> {
    if let Some(only) = &opts.only
        && !only.iter().any(|n| n == spec.name)
    {
        return Some("not selected (--probes)".into());
    }
    if let Some(why) = pcp_off_reason(spec, opts.pcp) {
        return Some(why);
    }
    spec.opt_in
        .filter(|o| !opts.enables(o))
        .map(|opt| format!("off by default (costly); enable with {opt}"))
}

/// The deferred-flush IPI is recognised by its callback's address: without it in kallsyms,
/// the IPI probe's candidates become a failure.
fn defer_ipi_callback(
    ksyms: Option<&Kallsyms>,
    globals: &mut Globals,
    candidates: &mut [(Vec<Candidate>, Vec<AttachAttempt>)],
) {
    if let Some(a) = ksyms.and_then(|k| k.address_of("trigger_rx_softirq")) {
        globals.set64("DEFER_IPI_FN", a);
        return;
    }
    let Some(i) = CATALOG.iter().position(|p| p.name == name::SKB_DEFER_IPI) else {
        return;
    };
    let (ok, failed) = &mut candidates[i];
    if let Some(first) = ok.first() {
        let method = first.method.kind().into();
        ok.clear();
        failed.push(AttachAttempt {
            method,
            target: "csd:csd_queue_cpu".into(),
            error: Some(
                "trigger_rx_softirq (the deferred-flush kick function) is not in kallsyms".into(),
            ),
        });
    }
}

/// Globals of the whole object rather than of one probe: sampling, sysctls, CPU ids and
/// struct offsets. Returns why zone locks cannot be labelled by address and why SKB frees
/// cannot be attributed to their allocating CPU, if they cannot.
fn kernel_globals(
    k: &Kernel<'_>,
    opts: &PlanOpts,
    globals: &mut Globals,
) -> (Option<String>, Option<String>) {
    globals.set("PAGE_SAMPLE", opts.page_sample.max(1));
    globals.set("TASKS_ON", u32::from(opts.tasks));
    let defer_max = std::fs::read_to_string("/proc/sys/net/core/skb_defer_max")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    globals.set("SKB_DEFER_MAX", defer_max.unwrap_or(64));
    if let Ok(n) = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map_err(|_| ())
        .and_then(|s| crate::kernel::cpulist::parse_cpu_list(s.trim()).map_err(|_| ()))
    {
        globals.set("NR_CPU_IDS", n.last().map_or(1, |c| c + 1));
    }
    let zone_label_unavailable = match &k.btf {
        Ok(b) => zone_layout(b, globals).err(),
        Err(e) => Some(e.clone()),
    };
    if let Ok(off) = k.pcp_count_off {
        globals.set("PCP_COUNT_OFF", off);
    }
    let skb_alloc_cpu_unavailable = match &k.btf {
        Ok(b) => match b.member_offset("sk_buff", "alloc_cpu") {
            Ok(Some(off)) => {
                globals.set("SKB_ALLOC_CPU_OFF", off);
                None
            }
            Ok(None) => Some("struct sk_buff has no alloc_cpu (kernel < 5.19)".to_string()),
            Err(e) => Some(e.to_string()),
        },
        Err(e) => Some(e.clone()),
    };
    (zone_label_unavailable, skb_alloc_cpu_unavailable)
}

pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Auto => "auto",
        Backend::Fentry => "fentry",
        Backend::Kprobe => "kprobe",
        Backend::Tracepoint => "tracepoint",
        Backend::RawTracepoint => "raw-tracepoint",
    }
}

/// Why `--pcp` leaves a PCP probe out before anything is tried, if it does.
fn pcp_off_reason(spec: &ProbeSpec, mode: PcpMode) -> Option<String> {
    match (spec.pcp, mode) {
        (PcpRole::None, _) => None,
        (_, PcpMode::Off) => Some("not attached (--pcp off)".into()),
        (PcpRole::PerPage { batch }, PcpMode::Batch) => Some(format!(
            "not attached (--pcp batch: pages are counted per batch by {batch} only)"
        )),
        _ => None,
    }
}

/// Under `--pcp auto`, why a per-page PCP probe is not needed: its batch probe attached.
fn counted_per_batch(spec: &ProbeSpec, mode: PcpMode, probes: &[ProbeStatus]) -> Option<String> {
    let PcpRole::PerPage { batch } = spec.pcp else {
        return None;
    };
    if mode != PcpMode::Auto {
        return None;
    }
    let b = probes.iter().find(|p| p.name == batch && p.attached)?;
    Some(format!(
        "not needed: pages are counted per batch outside zone->lock by {batch} ({} {}); \
         --pcp page counts them per page",
        b.method, b.target
    ))
}

/// Which function-range slot a probe uses to find its caller.
fn caller_slot(probe: &str) -> Option<u32> {
    match probe {
        name::CONSUME_SKB => Some(func_slot::CONSUME_SKB),
        name::KFREE_SKB => Some(func_slot::KFREE_SKB),
        name::SKB_ATTEMPT_DEFER_FREE => Some(func_slot::DEFER_FREE),
        _ => None,
    }
}

/// Index of the SKB argument of a kfree_skb kprobe/fentry target.
fn kfree_skb_arg(symbol: &str) -> u32 {
    if symbol.starts_with("sk_skb_reason_drop") {
        1
    } else {
        0
    }
}

/// Checks what can be checked before loading: the tracepoint and its fields, the symbol
/// in kallsyms, the function in BTF, whether ftrace can trace it, the kprobe PMU. Returns
/// every usable target in order of preference and sets the globals the method needs.
fn precheck(
    k: &Kernel<'_>,
    spec: &ProbeSpec,
    m: &Method,
    globals: &mut Globals,
) -> Result<Vec<Candidate>, String> {
    match *m {
        Method::RawTracepoint {
            category,
            event,
            arg_types,
            ..
        } => {
            let btf = k.btf.as_ref().map_err(Clone::clone)?;
            let have = btf
                .tracepoint_arg_types(event)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("no btf_trace_{event} in the kernel's BTF (no tracepoint {category}:{event})")
                })?;
            raw_args_match(arg_types, &have)
                .map_err(|e| format!("raw tracepoint {category}:{event} {e}"))?;
            Ok(vec![Candidate {
                method: *m,
                target: m.target(),
            }])
        }
        Method::Tracepoint {
            category, event, ..
        } => {
            if !tracefs::event_exists(&k.tracefs, category, event) {
                return Err(format!(
                    "tracepoint {category}:{event} does not exist on this kernel"
                ));
            }
            let fmt =
                tracefs::read_format(&k.tracefs, category, event).map_err(|e| e.to_string())?;
            if let Some(missing) = spec.fields.iter().find(|f| fmt.field(f).is_none()) {
                return Err(format!(
                    "tracepoint {category}:{event} has no field `{missing}`"
                ));
            }
            for &(global, field) in spec.field_globals {
                globals.set(global, fmt.field(field).map_or(ABSENT, |f| f.offset));
            }
            Ok(vec![Candidate {
                method: *m,
                target: m.target(),
            }])
        }
        Method::Fentry { targets, proto, .. } => {
            let btf = k.btf.as_ref().map_err(Clone::clone)?;
            let mut why = Vec::new();
            let mut found = Vec::new();
            for t in targets.iter() {
                if !btf.has_func(t) {
                    why.push(format!("{t} not in the kernel's BTF (inlined or renamed)"));
                } else if let Err(e) = k.check_traceable(t) {
                    why.push(e);
                } else if let Err(e) = check_proto(k, t, t, &proto) {
                    why.push(e);
                } else {
                    found.push(t.to_string());
                }
            }
            finish_targets(spec, m, found, why, globals, "FE_KFREE_ARG")
        }
        Method::Kprobe { targets, proto, .. } => {
            k.kprobes.clone()?;
            let ksyms = k
                .ksyms
                .ok_or("kallsyms is not readable, so kprobe targets cannot be resolved")?;
            let mut why = Vec::new();
            let mut found = Vec::new();
            for t in targets.iter() {
                // The plain name first, then compiler clones (`.isra.0`, `.constprop.0`).
                let sym = if ksyms.contains(t) {
                    Some(t.to_string())
                } else {
                    ksyms.variants_of(t).into_iter().find(|v| v.as_str() != *t)
                };
                match sym {
                    None => why.push(format!("{t} not in kallsyms (inlined or renamed)")),
                    Some(s) => match k
                        .check_traceable(&s)
                        .and_then(|()| check_proto(k, t, &s, &proto))
                    {
                        Err(e) => why.push(e),
                        Ok(()) => found.push(s),
                    },
                }
            }
            finish_targets(spec, m, found, why, globals, "KP_KFREE_ARG")
        }
    }
}

/// A kprobe/fentry program that reads `proto`'s arguments of `func` (found as `sym`):
/// BTF's prototype must agree, `sym` must not be a compiler clone (whose arguments can be
/// dropped or reordered), and a program that reads `pcp->count` needs its offset.
fn check_proto(k: &Kernel<'_>, func: &str, sym: &str, proto: &Proto) -> Result<(), String> {
    if proto.is_any() {
        return Ok(());
    }
    if sym != func {
        return Err(format!(
            "{sym} is a compiler clone of {func}: its arguments may not be the prototype's"
        ));
    }
    let btf = k
        .btf
        .as_ref()
        .map_err(|e| format!("{e}: the arguments of {func} cannot be checked"))?;
    let have = btf
        .func_arg_types(func)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("{func} not in the kernel's BTF: its arguments cannot be checked")
        })?;
    let agrees = proto
        .args
        .iter()
        .enumerate()
        .all(|(i, w)| w.is_empty() || have.get(i).is_some_and(|h| h == w))
        && have.len() >= proto.args.len()
        && (!proto.exact || have.len() == proto.args.len());
    if !agrees {
        return Err(format!(
            "{func} takes ({}) on this kernel; the program reads ({})",
            have.join(", "),
            proto
                .args
                .iter()
                .map(|a| if a.is_empty() { "_" } else { a })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if proto.args.contains(&"struct per_cpu_pages *") {
        k.pcp_count_off.as_ref().map_err(Clone::clone)?;
    }
    Ok(())
}

/// The program reads a `want[i]` from `args[i]`: the kernel's prototype must have those
/// types at those positions (a layout change moves arguments, and a raw tracepoint program
/// reading past the last one is refused at attach).
fn raw_args_match(want: &[&str], have: &[String]) -> Result<(), String> {
    let agrees = want
        .iter()
        .enumerate()
        .all(|(i, w)| have.get(i).is_some_and(|h| h == w));
    if agrees {
        Ok(())
    } else {
        Err(format!(
            "takes ({}) on this kernel; the program reads ({})",
            have.join(", "),
            want.join(", ")
        ))
    }
}

fn finish_targets(
    spec: &ProbeSpec,
    m: &Method,
    mut found: Vec<String>,
    why: Vec<String>,
    globals: &mut Globals,
    kfree_global: &'static str,
) -> Result<Vec<Candidate>, String> {
    if found.is_empty() {
        return Err(why.join("; "));
    }
    if spec.name == name::KFREE_SKB {
        // The SKB's argument index is a load-time global: only the first target can be used.
        found.truncate(1);
        globals.set(kfree_global, kfree_skb_arg(&found[0]));
    }
    Ok(found
        .into_iter()
        .map(|target| Candidate { method: *m, target })
        .collect())
}

/// `struct zone` / `struct pglist_data` layout from BTF, so the eBPF side can prove a lock
/// address is `&zone->lock` and read the zone's name and node.
fn zone_layout(btf: &Btf, globals: &mut Globals) -> Result<(), String> {
    let member = |s: &str, m: &str| -> Result<u32, String> {
        btf.member_offset(s, m)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("struct {s} has no member {m} in this kernel's BTF"))
    };
    let lock = member("zone", "lock")?;
    let name = member("zone", "name")?;
    let pgdat = member("zone", "zone_pgdat")?;
    let size = btf.struct_size("zone").map_err(|e| e.to_string())?;
    let node_zones = member("pglist_data", "node_zones")?;
    let node_id = member("pglist_data", "node_id")?;
    let nr_zones = btf
        .member_array_len("pglist_data", "node_zones")
        .map_err(|e| e.to_string())?
        .ok_or("pglist_data.node_zones is not an array")?;
    globals.set("ZONE_LOCK_OFF", lock);
    globals.set("ZONE_NAME_OFF", name);
    globals.set("ZONE_PGDAT_OFF", pgdat);
    globals.set("PGDAT_NODE_ZONES_OFF", node_zones);
    globals.set("PGDAT_NODE_ID_OFF", node_id);
    globals.set("MAX_NR_ZONES", nr_zones);
    // Last: a non-zero size switches the check on.
    globals.set("ZONE_SIZE", size);
    Ok(())
}

/// Loaded programs and their probe status.
pub struct Attached {
    pub ebpf: Ebpf,
    pub probes: Vec<ProbeStatus>,
    /// Programs attached, as (probe, program), to detach at the end.
    programs: Vec<(&'static str, &'static str)>,
}

impl Attached {
    /// (probe, program) of every program still attached.
    pub fn programs(&self) -> &[(&'static str, &'static str)] {
        &self.programs
    }

    /// Detaches every program, so maps stop changing while they are read.
    pub fn detach(&mut self) {
        for (_, name) in self.programs.drain(..) {
            if let Some(p) = self.ebpf.program_mut(name) {
                unload(p);
            }
        }
    }
}

/// Unloads (and so detaches) a program of any kind zoneprof uses. Errors are ignored: this
/// is teardown, and whatever stays attached is released when the `Ebpf` object is dropped.
fn unload(p: &mut Program) {
    try_unload(p).ok();
}

/// Unloads (and so detaches) a program of any kind zoneprof uses, saying why it could not.
pub(crate) fn try_unload(p: &mut Program) -> Result<(), ProgramError> {
    match p {
        Program::TracePoint(p) => p.unload(),
        Program::RawTracePoint(p) => p.unload(),
        Program::KProbe(p) => p.unload(),
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        _ => Ok(()),
    }
}

fn program_error(e: &ProgramError) -> String {
    // ProgramError's Display carries the verifier log for load failures; drop it when empty.
    let s = e.to_string();
    let s = s
        .strip_suffix(" Verifier output: ")
        .or_else(|| s.strip_suffix(". Verifier output: "))
        .map(str::to_string)
        .unwrap_or(s);
    let s = s.trim_end_matches('.');
    let errno = match e {
        ProgramError::SyscallError(se) => se.io_error.raw_os_error(),
        ProgramError::LoadError { io_error, .. } => io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EPERM) => format!(
            "{s}: the kernel refuses this program type here (lockdown or a security policy){}",
            privilege_hint()
        ),
        Some(libc::EBUSY) => format!("{s}: the function is busy or notrace for trampolines"),
        _ => s.to_string(),
    }
}

fn set_array<T: aya::Pod>(
    ebpf: &mut Ebpf,
    map: &'static str,
    items: impl IntoIterator<Item = (u32, T)>,
) -> Result<(), AttachError> {
    let err = |detail: String| AttachError::Map { map, detail };
    let m = ebpf
        .map_mut(map)
        .ok_or_else(|| err("missing from the eBPF object".into()))?;
    let mut arr: Array<_, T> = Array::try_from(m).map_err(|e| err(e.to_string()))?;
    for (i, v) in items {
        arr.set(i, v, 0).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// Loads the object with the planned globals and attaches every usable probe, each with
/// the first of its methods that really attaches.
pub fn load_and_attach(
    plan: &Plan,
    cpus: Option<&[u32]>,
    cpu_node: &[(u32, u32)],
    online: &[u32],
) -> Result<Attached, AttachError> {
    attach(load(plan, cpus, cpu_node, online)?, plan)
}

/// Attaches `plan`'s probes to an object from [`load`], each by its first method that works.
pub fn attach(mut ebpf: Ebpf, plan: &Plan) -> Result<Attached, AttachError> {
    let mut btf: Option<Result<aya::Btf, String>> = None;
    let mut probes = Vec::new();
    let mut programs = Vec::new();
    for (spec, (cands, failed)) in CATALOG.iter().zip(&plan.candidates) {
        let mut attempts = failed.clone();
        let mut attached: Option<&Candidate> = None;
        let per_batch = counted_per_batch(spec, plan.opts.pcp, &probes);
        if let Some(why) = &per_batch {
            attempts.push(AttachAttempt {
                method: OFF.into(),
                target: spec.methods.first().map(|m| m.target()).unwrap_or_default(),
                error: Some(why.clone()),
            });
        }
        for c in cands.iter().filter(|_| per_batch.is_none()) {
            let result = attach_one(&mut ebpf, &c.method, &c.target, &mut btf);
            attempts.push(AttachAttempt {
                method: c.method.kind().into(),
                target: c.target.clone(),
                error: result.as_ref().err().map(|f| f.message.clone()),
            });
            if let Ok(progs) = result {
                programs.extend(progs.into_iter().map(|p| (spec.name, p)));
                attached = Some(c);
                break;
            }
        }
        // Report attempts in the catalog's order of preference.
        let order = |a: &AttachAttempt| {
            spec.methods
                .iter()
                .position(|m| m.kind() == a.method)
                .unwrap_or(usize::MAX)
        };
        attempts.sort_by_key(order);
        let preferred = spec.methods.first();
        probes.push(match attached {
            Some(c) => ProbeStatus {
                name: spec.name.into(),
                method: c.method.kind().into(),
                target: c.target.clone(),
                attached: true,
                reason: None,
                attempts,
            },
            None => ProbeStatus {
                name: spec.name.into(),
                method: preferred.map_or("none", |m| m.kind()).into(),
                target: preferred.map(|m| m.target()).unwrap_or_default(),
                attached: false,
                reason: Some(
                    attempts
                        .iter()
                        .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.method)))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                attempts,
            },
        });
    }
    if programs.is_empty() {
        let why = probes
            .iter()
            .map(|p| format!("{}: {}", p.name, p.reason.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(AttachError::NothingAttached(why));
    }
    Ok(Attached {
        ebpf,
        probes,
        programs,
    })
}

/// One method of one probe, tried on its own: `zoneprof doctor --methods`, and the
/// program × kernel × method table of the VM tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodTrial {
    pub probe: &'static str,
    pub method: &'static str,
    /// Entry program first, then its exit program.
    pub programs: Vec<&'static str>,
    /// The resolved target (a clone's name, a `cat:event`), or the first choice.
    pub target: String,
    pub result: TrialResult,
    /// Why it did not attach: the pre-check's reason, the verifier's last line, the errno.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialResult {
    /// Loaded, passed the verifier and attached.
    Attached,
    /// The verifier refused the program: a zoneprof bug on a kernel where the target exists.
    Rejected,
    /// Loaded but the kernel would not attach it, or refused this program type (EPERM).
    Refused,
    /// Not tried: the target is absent, notrace, or the kernel lacks the mechanism.
    Unavailable,
}

impl TrialResult {
    pub fn name(self) -> &'static str {
        match self {
            TrialResult::Attached => "attached",
            TrialResult::Rejected => "rejected",
            TrialResult::Refused => "refused",
            TrialResult::Unavailable => "unavailable",
        }
    }
}

/// Loads and attaches every method of every probe on its own (each in a fresh copy of the
/// object, detached at once), so a method that is never preferred on this kernel is
/// still proven to load. Every probe is planned, opt-in ones and both PCP forms included.
pub fn try_every_method(
    ksyms: Option<&Kallsyms>,
    cpu_node: &[(u32, u32)],
    online: &[u32],
) -> Result<Vec<MethodTrial>, AttachError> {
    let opts = PlanOpts {
        page_flows: true,
        page_sample: 64,
        backend: Backend::Auto,
        only: None,
        pcp: PcpMode::Page,
        map_entries: Default::default(),
        tasks: true,
    };
    let plan = plan(&opts, ksyms)?;
    let mut btf: Option<Result<aya::Btf, String>> = None;
    let mut out = Vec::new();
    for (si, mi, checked) in &plan.method_checks {
        let (spec, m) = (&CATALOG[*si], &CATALOG[*si].methods[*mi]);
        let trial = |target: String, result, detail| MethodTrial {
            probe: spec.name,
            method: m.kind(),
            programs: m.programs(),
            target,
            result,
            detail,
        };
        let cands = match checked {
            Err(why) => {
                out.push(trial(
                    m.target(),
                    TrialResult::Unavailable,
                    Some(why.clone()),
                ));
                continue;
            }
            Ok(c) => c,
        };
        for c in cands {
            let mut ebpf = load(&plan, None, cpu_node, online)?;
            let t = match attach_one(&mut ebpf, &c.method, &c.target, &mut btf) {
                Ok(_) => trial(c.target.clone(), TrialResult::Attached, None),
                Err(f) => {
                    let verifier = f.step == Step::Load
                        && matches!(f.errno, Some(libc::EACCES) | Some(libc::EINVAL))
                        && f.verifier.is_some();
                    let result = if verifier {
                        TrialResult::Rejected
                    } else if f.step == Step::Setup {
                        TrialResult::Unavailable
                    } else {
                        TrialResult::Refused
                    };
                    let detail = match (&f.verifier, verifier) {
                        (Some(v), true) => format!("verifier: {v}"),
                        _ => f.message.clone(),
                    };
                    trial(c.target.clone(), result, Some(detail))
                }
            };
            // Dropping the object detaches and unloads what attached.
            drop(ebpf);
            out.push(t);
        }
    }
    Ok(out)
}

/// Loads the object with the planned globals and fills the maps userspace sets up.
/// Loads the eBPF object with `plan`'s settings and fills its configuration maps; no
/// program is loaded into the kernel or attached yet.
pub fn load(
    plan: &Plan,
    cpus: Option<&[u32]>,
    cpu_node: &[(u32, u32)],
    online: &[u32],
) -> Result<Ebpf, AttachError> {
    let mut loader = EbpfLoader::new();
    let cpu_filter_on: u32 = u32::from(cpus.is_some());
    for (name, v) in &plan.globals.u32s {
        loader.override_global(name, v, true);
    }
    for (name, v) in &plan.globals.u64s {
        loader.override_global(name, v, true);
    }
    loader.override_global("CPU_FILTER_ON", &cpu_filter_on, true);
    // Without --page-flows its maps get one entry: 28 MB at 640 CPUs saved (measured by
    // cargo xtask bench).
    for (spec, n) in plan
        .opts
        .map_entries
        .loaded(plan.opts.page_flows, plan.opts.tasks)
    {
        loader.map_max_entries(spec.map, n);
    }
    let mut ebpf = loader
        .load(EBPF_OBJ)
        .map_err(|e| AttachError::Load(e.to_string()))?;

    if let Some(cpus) = cpus {
        set_array(
            &mut ebpf,
            "CPU_FILTER",
            cpus.iter().filter(|&&c| c < MAX_CPUS).map(|&c| (c, 1u8)),
        )?;
    }
    set_array(
        &mut ebpf,
        "CPU_NODE",
        cpu_node.iter().filter(|(c, _)| *c < MAX_CPUS).copied(),
    )?;
    set_array(
        &mut ebpf,
        "CPU_ONLINE",
        online.iter().filter(|&&c| c < MAX_CPUS).map(|&c| (c, 1u8)),
    )?;
    set_array(&mut ebpf, "FUNC_RANGES", plan.ranges.iter().copied())?;
    Ok(ebpf)
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Program, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the eBPF object"))
}

/// Why a method did not attach: at which step, and what the kernel said.
#[derive(Debug, Clone)]
struct Failure {
    step: Step,
    /// The kernel's errno, where it gave one.
    errno: Option<i32>,
    /// The verifier's last line that says something (load failures).
    verifier: Option<String>,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Before the kernel was asked (program missing, no BTF, ...).
    Setup,
    Load,
    Attach,
}

impl Failure {
    fn from_program(step: Step, e: &ProgramError) -> Self {
        let (errno, verifier) = match e {
            ProgramError::SyscallError(se) => (se.io_error.raw_os_error(), None),
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => (
                io_error.raw_os_error(),
                verifier_last_line(&verifier_log.to_string()),
            ),
            _ => (None, None),
        };
        Failure {
            step,
            errno,
            verifier,
            message: program_error(e),
        }
    }

    fn load(e: &ProgramError) -> Self {
        Self::from_program(Step::Load, e)
    }

    fn attach(e: &ProgramError) -> Self {
        Self::from_program(Step::Attach, e)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            step: Step::Setup,
            errno: None,
            verifier: None,
            message,
        }
    }
}

/// The line of a verifier log that says why it refused: the last one before the
/// statistics it ends with.
fn verifier_last_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .rev()
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
        })
        .map(str::to_string)
}

/// Loads and attaches one method; returns the programs to detach later. On failure,
/// whatever part attached (an entry without its exit probe) is undone.
fn attach_one(
    ebpf: &mut Ebpf,
    method: &Method,
    target: &str,
    btf: &mut Option<Result<aya::Btf, String>>,
) -> Result<Vec<&'static str>, Failure> {
    match *method {
        Method::RawTracepoint {
            program: name,
            event,
            ..
        } => {
            let rtp: &mut RawTracePoint = program(ebpf, name)?
                .try_into()
                .map_err(|e: ProgramError| e.to_string())?;
            rtp.load().map_err(|e| Failure::load(&e))?;
            rtp.attach(event).map_err(|e| Failure::attach(&e))?;
            Ok(vec![name])
        }
        Method::Tracepoint {
            program: name,
            category,
            event,
        } => {
            let tp: &mut TracePoint = program(ebpf, name)?
                .try_into()
                .map_err(|e: ProgramError| e.to_string())?;
            tp.load().map_err(|e| Failure::load(&e))?;
            tp.attach(category, event)
                .map_err(|e| Failure::attach(&e))?;
            Ok(vec![name])
        }
        Method::Kprobe {
            program: name, ret, ..
        } => {
            // Exit first: an entry seen before its exit program is attached would leave
            // a frame no exit pops.
            let progs: Vec<_> = ret.into_iter().chain(std::iter::once(name)).collect();
            attach_all(ebpf, &progs, |ebpf, n| {
                let kp: &mut KProbe = program(ebpf, n)?
                    .try_into()
                    .map_err(|e: ProgramError| e.to_string())?;
                kp.load().map_err(|e| Failure::load(&e))?;
                kp.attach(target, 0).map_err(|e| Failure::attach(&e))?;
                Ok(())
            })
        }
        Method::Fentry {
            program: name,
            exit,
            ..
        } => {
            let btf = btf
                .get_or_insert_with(|| {
                    aya::Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))
                })
                .as_ref()
                .map_err(|e| Failure::from(e.clone()))?;
            // Exit first, as for kprobes.
            let progs: Vec<_> = exit.into_iter().chain(std::iter::once(name)).collect();
            attach_all(ebpf, &progs, |ebpf, n| {
                let p = program(ebpf, n)?;
                if Some(n) == exit {
                    let fx: &mut FExit = p.try_into().map_err(|e: ProgramError| e.to_string())?;
                    fx.load(target, btf).map_err(|e| Failure::load(&e))?;
                    fx.attach().map_err(|e| Failure::attach(&e))?;
                } else {
                    let fe: &mut FEntry = p.try_into().map_err(|e: ProgramError| e.to_string())?;
                    fe.load(target, btf).map_err(|e| Failure::load(&e))?;
                    fe.attach().map_err(|e| Failure::attach(&e))?;
                }
                Ok(())
            })
        }
    }
}

/// Loads and attaches an entry program and its exit program (if any) with `one`. If one
/// fails, whatever attached is unloaded: a probe never stays half attached.
fn attach_all(
    ebpf: &mut Ebpf,
    progs: &[&'static str],
    mut one: impl FnMut(&mut Ebpf, &'static str) -> Result<(), Failure>,
) -> Result<Vec<&'static str>, Failure> {
    let mut done = Vec::new();
    for &n in progs {
        if let Err(e) = one(ebpf, n) {
            for d in done.iter().chain(std::iter::once(&n)) {
                if let Ok(p) = program(ebpf, d) {
                    unload(p);
                }
            }
            return Err(e);
        }
        done.push(n);
    }
    Ok(done)
}

/// Where one kprobe/fentry target stands on this kernel, for `zoneprof doctor`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetFact {
    pub probe: &'static str,
    pub method: &'static str,
    pub symbol: &'static str,
    /// Name found in kallsyms (possibly a `.isra.N` clone), None when absent (inlined).
    pub in_kallsyms: Option<String>,
    pub in_btf: bool,
    /// Listed in available_filter_functions (None: list unreadable).
    pub traceable: Option<bool>,
}

/// Every kprobe/fentry target of the catalog, checked against kallsyms, BTF and ftrace.
pub fn target_facts(ksyms: Option<&Kallsyms>, btf: Option<&Btf>) -> Vec<TargetFact> {
    let traceable = tracefs::find_tracefs().and_then(|p| read_traceable(&p));
    let mut out = Vec::new();
    for spec in CATALOG {
        for m in spec.methods {
            let targets = match m {
                Method::Fentry { targets, .. } | Method::Kprobe { targets, .. } => *targets,
                Method::Tracepoint { .. } | Method::RawTracepoint { .. } => continue,
            };
            for &symbol in targets {
                let in_kallsyms = ksyms.and_then(|k| {
                    if k.contains(symbol) {
                        Some(symbol.to_string())
                    } else {
                        k.variants_of(symbol).into_iter().next()
                    }
                });
                out.push(TargetFact {
                    probe: spec.name,
                    method: m.kind(),
                    symbol,
                    traceable: traceable
                        .as_ref()
                        .map(|t| in_kallsyms.as_deref().is_some_and(|s| t.contains(s))),
                    in_kallsyms,
                    in_btf: btf.is_some_and(|b| b.has_func(symbol)),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_missing_capability_is_named() {
        const BPF: u64 = 1 << 39;
        const PERFMON: u64 = 1 << 38;
        assert_eq!(missing_caps(0), Some(vec!["CAP_BPF", "CAP_PERFMON"]));
        assert_eq!(missing_caps(BPF), Some(vec!["CAP_PERFMON"]));
        assert_eq!(missing_caps(PERFMON), Some(vec!["CAP_BPF"]));
        assert_eq!(missing_caps(BPF | PERFMON), None);
        assert_eq!(missing_caps(1 << 21), None, "CAP_SYS_ADMIN alone");
        let e = AttachError::NotPrivileged {
            missing: "CAP_PERFMON".into(),
        };
        assert!(e.to_string().contains("lacks CAP_PERFMON"), "{e}");
    }

    #[test]
    fn raw_args_must_agree_by_position() {
        let have = strs(&["struct sk_buff *", "void *", "enum skb_drop_reason"]);
        assert!(raw_args_match(&["struct sk_buff *", "void *"], &have).is_ok());
        // consume_skb before 6.3: no `location` argument to read.
        let e = raw_args_match(
            &["struct sk_buff *", "void *"],
            &strs(&["struct sk_buff *"]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "takes (struct sk_buff *) on this kernel; the program reads (struct sk_buff *, void *)"
        );
        // Same count, another layout.
        assert!(raw_args_match(&["void *", "unsigned int"], &strs(&["void *", "int"])).is_err());
    }

    /// Every program the catalog names is in the embedded eBPF object.
    #[test]
    fn catalog_programs_are_in_the_object() {
        let has = |name: &str| {
            let needle = format!("{name}\0");
            EBPF_OBJ
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        };
        for spec in CATALOG {
            for m in spec.methods {
                let names: Vec<&str> = match *m {
                    Method::Tracepoint { program, .. } | Method::RawTracepoint { program, .. } => {
                        vec![program]
                    }
                    Method::Fentry { program, exit, .. } => {
                        std::iter::once(program).chain(exit).collect()
                    }
                    Method::Kprobe { program, ret, .. } => {
                        std::iter::once(program).chain(ret).collect()
                    }
                };
                for n in names {
                    assert!(has(n), "{}: program {n} not in the eBPF object", spec.name);
                }
            }
        }
    }

    #[test]
    fn verifier_last_line_skips_the_statistics() {
        let log = "0: R1=ctx() R10=fp0\n; let Some(&start) = ...\n12: (79) r3 = *(u64 *)(r2 +0)\n\
                   R3 unbounded memory access, make sure to bounds check any such access\n\
                   processed 41 insns (limit 1000000) max_states_per_insn 0 total_states 3\n\
                   verification time 36 usec\nstack depth 0\n\n";
        assert_eq!(
            verifier_last_line(log).as_deref(),
            Some("R3 unbounded memory access, make sure to bounds check any such access")
        );
        assert_eq!(verifier_last_line("\n  \n"), None);
    }

    /// Every kprobe/kretprobe program of the catalog passes this kernel's verifier. Loading
    /// a kprobe program needs no kprobe support (only attaching does), so this runs the
    /// verifier over the kprobe forms wherever zoneprof can load programs at all; the fentry
    /// forms share their logic and are loaded for real in the qemu runs (`cargo xtask vm-test`).
    #[test]
    fn kprobe_programs_pass_the_verifier() {
        if check_privileges().is_err() {
            let msg = "SKIPPED kprobe_programs_pass_the_verifier: needs root (CAP_BPF)";
            assert!(
                std::env::var("ZONEPROF_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
                "{msg}"
            );
            println!("{msg}");
            return;
        }
        let mut ebpf = EbpfLoader::new().load(EBPF_OBJ).expect("object loads");
        let mut rejected = Vec::new();
        let mut loaded = 0;
        for spec in CATALOG {
            for m in spec.methods {
                let Method::Kprobe { program, ret, .. } = *m else {
                    continue;
                };
                for name in std::iter::once(program).chain(ret) {
                    let kp: &mut KProbe = ebpf
                        .program_mut(name)
                        .expect("in the object")
                        .try_into()
                        .expect("a kprobe program");
                    match kp.load() {
                        Ok(()) => loaded += 1,
                        Err(e) => rejected.push(format!("{name}: {}", program_error(&e))),
                    }
                }
            }
        }
        assert!(rejected.is_empty(), "rejected: {}", rejected.join("\n"));
        assert!(loaded >= 9, "only {loaded} kprobe programs");
    }

    /// `--map-entries` sizes reach the kernel: each map of the loaded object has the
    /// entries asked for (the page-flow maps one without `--page-flows`), as the kernel
    /// reports them.
    #[test]
    fn map_entries_size_the_loaded_maps() {
        if check_privileges().is_err() {
            let msg = "SKIPPED map_entries_size_the_loaded_maps: needs root (CAP_BPF)";
            assert!(
                std::env::var("ZONEPROF_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
                "{msg}"
            );
            println!("{msg}");
            return;
        }
        let entries = crate::kernel::map_entries::MapEntries::parse(
            "lock-stats=4,stacks=8,hist=5,task-wait=6,skb-sites=3,page-track=7,page-matrix=9,tasks=10",
        )
        .expect("parses");
        for page_flows in [false, true] {
            // Tasks follow page flows here: both ways of each are loaded once.
            let tasks = page_flows;
            let opts = PlanOpts {
                page_flows,
                tasks,
                page_sample: 64,
                map_entries: entries.clone(),
                ..Default::default()
            };
            let plan = plan(&opts, None).expect("plans");
            let ebpf = load(&plan, None, &[], &[]).expect("loads");
            for (spec, want) in entries.loaded(page_flows, tasks) {
                let info = match ebpf.map(spec.map).expect("in the object") {
                    aya::maps::Map::HashMap(d) | aya::maps::Map::StackTraceMap(d) => d.info(),
                    _ => panic!("{}: unexpected map type", spec.map),
                };
                let got = info.expect("map info").max_entries();
                assert_eq!(got, want, "{} with page_flows={page_flows}", spec.name);
            }
            let lock = entries
                .loaded(page_flows, tasks)
                .find(|(s, _)| s.name == "lock-stats");
            assert_eq!(lock.map(|(_, n)| n), Some(4));
            let track = entries
                .loaded(page_flows, tasks)
                .find(|(s, _)| s.name == "page-track");
            assert_eq!(track.map(|(_, n)| n), Some(if page_flows { 7 } else { 1 }));
            let names = entries
                .loaded(page_flows, tasks)
                .find(|(s, _)| s.name == "tasks");
            assert_eq!(names.map(|(_, n)| n), Some(if tasks { 10 } else { 1 }));
        }
    }

    /// On the running kernel, every raw tracepoint form matches its prototype in BTF, so
    /// a typo in a catalog type would show here rather than as a silent fallback.
    #[test]
    fn raw_tracepoint_types_match_this_kernel() {
        let btf = match Btf::from_sys_vmlinux() {
            Ok(b) => b,
            Err(e) => {
                println!("skipping: no kernel BTF: {e}");
                return;
            }
        };
        for spec in CATALOG {
            for m in spec.methods {
                if let Method::RawTracepoint {
                    event, arg_types, ..
                } = *m
                {
                    let Some(have) = btf.tracepoint_arg_types(event).expect("BTF reads") else {
                        println!("{event}: no such tracepoint on this kernel");
                        continue;
                    };
                    raw_args_match(arg_types, &have)
                        .unwrap_or_else(|e| panic!("{}: {event} {e}", spec.name));
                }
            }
        }
    }
}
