//! Loading the eBPF object and attaching the catalog's probes, choosing per probe the
//! first method this kernel really accepts. A probe that cannot attach is reported with
//! the reason (verifier log included), never silently dropped.
use std::path::PathBuf;

use aya::{
    Ebpf, EbpfLoader,
    maps::Array,
    programs::{ProgramError, TracePoint},
};
use profiler_common::{ABSENT, MAX_CPUS};

use crate::{
    btf::Btf,
    probes::{CATALOG, Method, ProbeSpec},
    recording::{AttachAttempt, ProbeStatus},
    symbolize::Kallsyms,
    tracefs,
};

/// The compiled eBPF object, built by build.rs (aya-build) and embedded in the binary.
static EBPF_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler"));

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "loading eBPF programs needs root (or CAP_BPF + CAP_PERFMON, and CAP_SYS_ADMIN to mount tracefs): try sudo"
    )]
    NotPrivileged,
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
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_PERFMON: u64 = 1 << 38;
    const CAP_BPF: u64 = 1 << 39;
    let caps = effective_caps();
    let ok = caps & CAP_SYS_ADMIN != 0 || caps & (CAP_BPF | CAP_PERFMON) == CAP_BPF | CAP_PERFMON;
    if ok {
        Ok(())
    } else {
        Err(AttachError::NotPrivileged)
    }
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
}

impl PlanOpts {
    fn enables(&self, opt: &str) -> bool {
        match opt {
            "--page-flows" => self.page_flows,
            _ => false,
        }
    }
}

/// What could be learnt about the running kernel before loading.
pub struct Plan {
    tracefs_root: PathBuf,
    pub tracefs_mounted_by_us: bool,
    globals: Globals,
    /// Per catalog entry: the method to use, or why none is usable.
    choices: Vec<Result<Method, Vec<AttachAttempt>>>,
    /// Why zone locks cannot be labelled by address, if they cannot.
    pub zone_label_unavailable: Option<String>,
    /// Why SKB frees cannot be attributed to their allocating CPU, if they cannot.
    pub skb_alloc_cpu_unavailable: Option<String>,
    pub opts: PlanOpts,
}

/// Reads tracefs formats, BTF and kallsyms, and decides which method each probe will try.
pub fn plan(opts: &PlanOpts, ksyms: Option<&Kallsyms>) -> Result<Plan, AttachError> {
    check_privileges()?;
    let (root, mounted) =
        tracefs::ensure_tracefs().map_err(|e| AttachError::Tracefs(e.to_string()))?;
    let mut globals = Globals::default();
    let btf = Btf::from_sys_vmlinux().map_err(|e| format!("no kernel BTF: {e}"));
    let mut choices = Vec::new();
    for spec in CATALOG {
        let choice = match spec.opt_in {
            Some(opt) if !opts.enables(opt) => Err(vec![AttachAttempt {
                method: "off".into(),
                target: spec.methods.first().map(|m| m.target()).unwrap_or_default(),
                error: Some(format!("off by default (costly); enable with {opt}")),
            }]),
            _ => choose(&root, spec, &mut globals),
        };
        choices.push(choice);
    }
    // The deferred-flush IPI is recognised by its callback's address.
    match ksyms.and_then(|k| k.address_of("trigger_rx_softirq")) {
        Some(a) => globals.set64("DEFER_IPI_FN", a),
        None => {
            if let Some(i) = CATALOG.iter().position(|p| p.name == "skb_defer_ipi")
                && choices[i].is_ok()
            {
                choices[i] = Err(vec![AttachAttempt {
                    method: "tracepoint".into(),
                    target: "ipi:ipi_send_cpu".into(),
                    error: Some(
                        "trigger_rx_softirq (the deferred-flush IPI callback) is not in kallsyms"
                            .into(),
                    ),
                }]);
            }
        }
    }
    globals.set("PAGE_SAMPLE", opts.page_sample.max(1));
    let zone_label_unavailable = match &btf {
        Ok(b) => zone_layout(b, &mut globals).err(),
        Err(e) => Some(e.clone()),
    };
    let skb_alloc_cpu_unavailable = match &btf {
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
    Ok(Plan {
        tracefs_root: root,
        tracefs_mounted_by_us: mounted,
        globals,
        choices,
        zone_label_unavailable,
        skb_alloc_cpu_unavailable,
        opts: opts.clone(),
    })
}

fn choose(
    root: &std::path::Path,
    spec: &ProbeSpec,
    globals: &mut Globals,
) -> Result<Method, Vec<AttachAttempt>> {
    let mut attempts = Vec::new();
    for m in spec.methods {
        match *m {
            Method::Tracepoint { category, event } => {
                let fail = |e: String| AttachAttempt {
                    method: m.kind().into(),
                    target: m.target(),
                    error: Some(e),
                };
                if !tracefs::event_exists(root, category, event) {
                    attempts.push(fail(format!(
                        "tracepoint {category}:{event} does not exist on this kernel"
                    )));
                    continue;
                }
                let fmt = match tracefs::read_format(root, category, event) {
                    Ok(f) => f,
                    Err(e) => {
                        attempts.push(fail(e.to_string()));
                        continue;
                    }
                };
                if let Some(missing) = spec.fields.iter().find(|f| fmt.field(f).is_none()) {
                    attempts.push(fail(format!(
                        "tracepoint {category}:{event} has no field `{missing}`"
                    )));
                    continue;
                }
                for &(global, field) in spec.field_globals {
                    globals.set(global, fmt.field(field).map_or(ABSENT, |f| f.offset));
                }
                return Ok(*m);
            }
        }
    }
    Err(attempts)
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
    /// Programs attached, to detach at the end.
    programs: Vec<&'static str>,
}

impl Attached {
    /// Detaches every program, so maps stop changing while they are read.
    pub fn detach(&mut self) {
        for name in self.programs.drain(..) {
            if let Some(p) = self.ebpf.program_mut(name) {
                let tp: Result<&mut TracePoint, _> = p.try_into();
                if let Ok(tp) = tp {
                    let _ = tp.unload();
                }
            }
        }
    }
}

fn program_error(e: &ProgramError) -> String {
    // ProgramError's Display already carries the verifier log for load failures.
    let s = e.to_string();
    if let ProgramError::SyscallError(se) = e
        && se.io_error.raw_os_error() == Some(libc::EPERM)
    {
        return format!("{s}{}", privilege_hint());
    }
    s
}

/// Loads the object with the planned globals and attaches every usable probe.
/// `cpus`: record only these CPUs (None: all).
pub fn load_and_attach(
    plan: &Plan,
    cpus: Option<&[u32]>,
    cpu_node: &[(u32, u32)],
) -> Result<Attached, AttachError> {
    let mut loader = EbpfLoader::new();
    let cpu_filter_on: u32 = u32::from(cpus.is_some());
    for (name, v) in &plan.globals.u32s {
        loader.override_global(name, v, true);
    }
    for (name, v) in &plan.globals.u64s {
        loader.override_global(name, v, true);
    }
    loader.override_global("CPU_FILTER_ON", &cpu_filter_on, true);
    let mut ebpf = loader
        .load(EBPF_OBJ)
        .map_err(|e| AttachError::Load(e.to_string()))?;

    if let Some(cpus) = cpus {
        let map = ebpf.map_mut("CPU_FILTER").ok_or(AttachError::Map {
            map: "CPU_FILTER",
            detail: "missing from the eBPF object".into(),
        })?;
        let mut arr: Array<_, u8> = Array::try_from(map).map_err(|e| AttachError::Map {
            map: "CPU_FILTER",
            detail: e.to_string(),
        })?;
        for &c in cpus {
            if c < MAX_CPUS {
                arr.set(c, 1u8, 0).map_err(|e| AttachError::Map {
                    map: "CPU_FILTER",
                    detail: e.to_string(),
                })?;
            }
        }
    }

    {
        let map = ebpf.map_mut("CPU_NODE").ok_or(AttachError::Map {
            map: "CPU_NODE",
            detail: "missing from the eBPF object".into(),
        })?;
        let mut arr: Array<_, u32> = Array::try_from(map).map_err(|e| AttachError::Map {
            map: "CPU_NODE",
            detail: e.to_string(),
        })?;
        for &(cpu, node) in cpu_node.iter().filter(|(c, _)| *c < MAX_CPUS) {
            arr.set(cpu, node, 0).map_err(|e| AttachError::Map {
                map: "CPU_NODE",
                detail: e.to_string(),
            })?;
        }
    }

    let mut probes = Vec::new();
    let mut programs = Vec::new();
    for (spec, choice) in CATALOG.iter().zip(&plan.choices) {
        let preferred = spec.methods.first().copied();
        let status = match choice {
            Err(attempts) => ProbeStatus {
                name: spec.name.into(),
                method: preferred.map_or("none", |m| m.kind()).into(),
                target: preferred.map(|m| m.target()).unwrap_or_default(),
                attached: false,
                reason: Some(
                    attempts
                        .iter()
                        .filter_map(|a| a.error.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                attempts: attempts.clone(),
            },
            Ok(m) => {
                let result = attach_one(&mut ebpf, spec, m, &plan.tracefs_root);
                let attempt = AttachAttempt {
                    method: m.kind().into(),
                    target: m.target(),
                    error: result.clone().err(),
                };
                if result.is_ok() {
                    programs.push(spec.program);
                }
                ProbeStatus {
                    name: spec.name.into(),
                    method: m.kind().into(),
                    target: m.target(),
                    attached: result.is_ok(),
                    reason: result.err(),
                    attempts: vec![attempt],
                }
            }
        };
        probes.push(status);
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

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    method: &Method,
    _tracefs_root: &std::path::Path,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| format!("program {} missing from the eBPF object", spec.program))?;
    match *method {
        Method::Tracepoint { category, event } => {
            let tp: &mut TracePoint = prog.try_into().map_err(|e: ProgramError| e.to_string())?;
            tp.load().map_err(|e| program_error(&e))?;
            tp.attach(category, event).map_err(|e| program_error(&e))?;
        }
    }
    Ok(())
}
