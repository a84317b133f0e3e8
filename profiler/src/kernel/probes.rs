//! The probe catalog: every logical probe zoneprof knows, what it feeds, and the ways it can
//! be attached, in order of preference. `attach` walks this list at run time.

/// Probe names, as recordings, reports and `--probes` spell them.
pub mod name {
    pub const CONTENTION_BEGIN: &str = "contention_begin";
    pub const CONTENTION_END: &str = "contention_end";
    pub const PCP_REFILL: &str = "pcp_refill";
    pub const PCP_DRAIN: &str = "pcp_drain";
    pub const CONSUME_SKB: &str = "consume_skb";
    pub const KFREE_SKB: &str = "kfree_skb";
    pub const SKB_DEFER_IPI: &str = "skb_defer_ipi";
    pub const SKB_ATTEMPT_DEFER_FREE: &str = "skb_attempt_defer_free";
    pub const RMQUEUE_PCPLIST: &str = "rmqueue_pcplist";
    pub const FREE_PCPPAGES_BULK: &str = "free_pcppages_bulk";
    pub const PAGE_ALLOC: &str = "page_alloc";
    pub const PAGE_FREE: &str = "page_free";
}

/// How a probe attaches to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The same tracepoint as a raw tracepoint: the program gets the `TP_PROTO` arguments
    /// directly, without the perf record copy a classic tracepoint pays for (the cheaper
    /// hook for events that fire millions of times a second). `arg_types` are the C types
    /// of the leading arguments the program reads by position; BTF (`btf_trace_<event>`)
    /// must agree, so a prototype that changed falls back to the classic tracepoint.
    RawTracepoint {
        program: &'static str,
        category: &'static str,
        event: &'static str,
        arg_types: &'static [&'static str],
    },
    /// A stable `category:event` tracepoint, fields read at offsets from its tracefs format.
    Tracepoint {
        program: &'static str,
        category: &'static str,
        event: &'static str,
    },
    /// fentry (and fexit when `exit` is set) on the first target that BTF knows; needs
    /// BPF trampolines (x86-64/arm64, 5.5+) and permission to load tracing programs.
    Fentry {
        program: &'static str,
        exit: Option<&'static str>,
        targets: &'static [&'static str],
        proto: Proto,
    },
    /// kprobe (and kretprobe when `ret` is set) on the first target kallsyms lists,
    /// `.isra.N`/`.constprop.N` clones included (unless `proto` says which arguments are
    /// read: a clone's arguments may differ from the prototype); needs CONFIG_KPROBES.
    Kprobe {
        program: &'static str,
        ret: Option<&'static str>,
        targets: &'static [&'static str],
        proto: Proto,
    },
}

/// What a kprobe/fentry program reads of its target's arguments beyond the first, checked
/// against the function's prototype in BTF before loading, so that a kernel that changed
/// the function falls back with the reason instead of counting garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proto {
    /// C types of the parameters by position, as BTF spells them; "" = not read.
    pub args: &'static [&'static str],
    /// The prototype must have exactly `args.len()` parameters: fexit finds the return
    /// value right after the arguments, at a position fixed when the program was built.
    pub exact: bool,
}

impl Proto {
    /// Reads nothing that needs checking (the first argument, or none).
    pub const ANY: Proto = Proto {
        args: &[],
        exact: false,
    };

    pub fn is_any(&self) -> bool {
        self.args.is_empty() && !self.exact
    }
}

/// How a probe takes part in counting PCP pages (`record --pcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpRole {
    None,
    /// Counts pages per call, outside `zone->lock`.
    Batch,
    /// Counts pages one by one, inside `zone->lock`; under `--pcp auto` it attaches only
    /// when `batch` (earlier in the catalog) did not.
    PerPage {
        batch: &'static str,
    },
}

/// `record --pcp`: how PCP refills and drains are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcpMode {
    /// Per batch where the kernel lets a hook out of the lock, else per page.
    #[default]
    Auto,
    /// Per batch only; a side without a batch hook is not counted.
    Batch,
    /// Per page (the `kmem:` tracepoints, under the lock); batch hooks still run.
    Page,
    /// Neither: no program runs under `zone->lock` for PCP accounting.
    Off,
}

/// The backends `--backend` can force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Auto,
    Fentry,
    Kprobe,
    /// Classic tracepoints only.
    Tracepoint,
    RawTracepoint,
}

impl Method {
    pub fn kind(&self) -> &'static str {
        match self {
            Method::Tracepoint { .. } => "tracepoint",
            Method::RawTracepoint { .. } => "raw_tracepoint",
            Method::Fentry { .. } => "fentry",
            Method::Kprobe { .. } => "kprobe",
        }
    }

    /// What it attaches to, e.g. `lock:contention_begin` or `consume_skb` (first choice).
    pub fn target(&self) -> String {
        match self {
            Method::Tracepoint {
                category, event, ..
            }
            | Method::RawTracepoint {
                category, event, ..
            } => format!("{category}:{event}"),
            Method::Fentry { targets, .. } | Method::Kprobe { targets, .. } => {
                targets.first().copied().unwrap_or("").to_string()
            }
        }
    }

    /// The programs it loads: the entry program, then its exit program.
    pub fn programs(&self) -> Vec<&'static str> {
        match *self {
            Method::Tracepoint { program, .. } | Method::RawTracepoint { program, .. } => {
                vec![program]
            }
            Method::Fentry { program, exit, .. } => std::iter::once(program).chain(exit).collect(),
            Method::Kprobe { program, ret, .. } => std::iter::once(program).chain(ret).collect(),
        }
    }

    pub fn allowed_by(&self, b: Backend) -> bool {
        matches!(
            (b, self),
            (Backend::Auto, _)
                | (Backend::Fentry, Method::Fentry { .. })
                | (Backend::Kprobe, Method::Kprobe { .. })
                | (Backend::Tracepoint, Method::Tracepoint { .. })
                | (Backend::RawTracepoint, Method::RawTracepoint { .. })
        )
    }
}

/// One logical probe.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    /// Stable name used in recordings and reports.
    pub name: &'static str,
    /// Ways to attach, most preferred first.
    pub methods: &'static [Method],
    /// Classic tracepoint fields the program cannot do without.
    pub fields: &'static [&'static str],
    /// Load-time globals set from tracepoint field offsets: (global, field). A field this
    /// kernel lacks sets the global to `ABSENT`.
    pub field_globals: &'static [(&'static str, &'static str)],
    /// Off unless this option is given (costly probes).
    pub opt_in: Option<&'static str>,
    /// What is lost when the probe is missing, for "not observable" lines.
    pub feeds: &'static str,
    /// Its part in PCP page counting.
    pub pcp: PcpRole,
}

const fn tp(program: &'static str, category: &'static str, event: &'static str) -> Method {
    Method::Tracepoint {
        program,
        category,
        event,
    }
}

const fn raw(
    program: &'static str,
    category: &'static str,
    event: &'static str,
    arg_types: &'static [&'static str],
) -> Method {
    Method::RawTracepoint {
        program,
        category,
        event,
        arg_types,
    }
}

pub const CONTENTION_BEGIN: ProbeSpec = ProbeSpec {
    name: name::CONTENTION_BEGIN,
    methods: &[
        raw(
            "raw_contention_begin",
            "lock",
            "contention_begin",
            &["void *", "unsigned int"],
        ),
        tp("contention_begin", "lock", "contention_begin"),
    ],
    fields: &["lock_addr", "flags"],
    field_globals: &[("CB_LOCK_ADDR_OFF", "lock_addr"), ("CB_FLAGS_OFF", "flags")],
    opt_in: None,
    pcp: PcpRole::None,
    feeds: "lock wait times and stacks (zone lock and every other contended lock)",
};

pub const CONTENTION_END: ProbeSpec = ProbeSpec {
    name: name::CONTENTION_END,
    methods: &[
        raw("raw_contention_end", "lock", "contention_end", &["void *"]),
        tp("contention_end", "lock", "contention_end"),
    ],
    fields: &["lock_addr"],
    field_globals: &[("CE_LOCK_ADDR_OFF", "lock_addr")],
    opt_in: None,
    pcp: PcpRole::None,
    feeds: "lock wait times and stacks (zone lock and every other contended lock)",
};

pub const PCP_REFILL: ProbeSpec = ProbeSpec {
    name: name::PCP_REFILL,
    methods: &[
        // The raw form needs the 5.19+ prototype, where percpu_refill is an argument.
        raw(
            "raw_page_alloc_zone_locked",
            "kmem",
            "mm_page_alloc_zone_locked",
            &["struct page *", "unsigned int", "int", "int"],
        ),
        tp(
            "page_alloc_zone_locked",
            "kmem",
            "mm_page_alloc_zone_locked",
        ),
    ],
    // `percpu_refill` is optional: before 5.19 the kernel derived it from `order == 0`.
    fields: &["order"],
    field_globals: &[
        ("PA_ORDER_OFF", "order"),
        ("PA_REFILL_OFF", "percpu_refill"),
    ],
    opt_in: None,
    pcp: PcpRole::PerPage {
        batch: name::RMQUEUE_PCPLIST,
    },
    feeds: "pages refilled into per-CPU page lists, counted per page under zone->lock",
};

pub const PCP_DRAIN: ProbeSpec = ProbeSpec {
    name: name::PCP_DRAIN,
    methods: &[
        raw(
            "raw_page_pcpu_drain",
            "kmem",
            "mm_page_pcpu_drain",
            &["struct page *", "unsigned int"],
        ),
        tp("page_pcpu_drain", "kmem", "mm_page_pcpu_drain"),
    ],
    fields: &["order"],
    field_globals: &[("PD_ORDER_OFF", "order")],
    opt_in: None,
    pcp: PcpRole::PerPage {
        batch: name::FREE_PCPPAGES_BULK,
    },
    feeds: "pages drained from per-CPU page lists, counted per page under zone->lock",
};

pub const CONSUME_SKB: ProbeSpec = ProbeSpec {
    name: name::CONSUME_SKB,
    // Tracepoint first: a stable ABI, and since 6.3 it carries the caller.
    methods: &[
        // The raw form needs `location`, an argument since 6.3.
        raw(
            "raw_skb_consume",
            "skb",
            "consume_skb",
            &["struct sk_buff *", "void *"],
        ),
        tp("skb_consume", "skb", "consume_skb"),
        Method::Fentry {
            program: "fe_consume_skb",
            exit: None,
            targets: &["consume_skb"],
            proto: Proto::ANY,
        },
        Method::Kprobe {
            program: "kp_consume_skb",
            ret: None,
            targets: &["consume_skb"],
            proto: Proto::ANY,
        },
    ],
    // `location` (the caller) only since 6.3.
    fields: &["skbaddr"],
    field_globals: &[("CS_SKB_OFF", "skbaddr"), ("CS_LOC_OFF", "location")],
    opt_in: None,
    pcp: PcpRole::None,
    feeds: "SKB frees by consume_skb: alloc-CPU x free-CPU matrix and free sites",
};

pub const KFREE_SKB: ProbeSpec = ProbeSpec {
    name: name::KFREE_SKB,
    methods: &[
        raw(
            "raw_skb_kfree",
            "skb",
            "kfree_skb",
            &["struct sk_buff *", "void *"],
        ),
        tp("skb_kfree", "skb", "kfree_skb"),
        // sk_skb_reason_drop(sk, skb, reason) since 6.11; kfree_skb_reason(skb, reason) before.
        Method::Fentry {
            program: "fe_kfree_skb",
            exit: None,
            targets: &["sk_skb_reason_drop", "kfree_skb_reason", "kfree_skb"],
            proto: Proto::ANY,
        },
        Method::Kprobe {
            program: "kp_kfree_skb",
            ret: None,
            targets: &["sk_skb_reason_drop", "kfree_skb_reason", "kfree_skb"],
            proto: Proto::ANY,
        },
    ],
    fields: &["skbaddr"],
    field_globals: &[("KS_SKB_OFF", "skbaddr"), ("KS_LOC_OFF", "location")],
    opt_in: None,
    pcp: PcpRole::None,
    feeds: "SKB drops by kfree_skb: alloc-CPU x free-CPU matrix and free sites",
};

pub const DEFER_IPI: ProbeSpec = ProbeSpec {
    name: name::SKB_DEFER_IPI,
    // The kick is an async call-function request whose function is trigger_rx_softirq:
    // `csd:csd_queue_cpu` (6.3+) names it; `ipi:ipi_send_cpu` only shows the generic
    // call-function handler there.
    methods: &[
        raw(
            "raw_csd_queue_cpu",
            "csd",
            "csd_queue_cpu",
            &["const unsigned int", "long unsigned int", "smp_call_func_t"],
        ),
        tp("csd_queue_cpu", "csd", "csd_queue_cpu"),
    ],
    fields: &["func"],
    field_globals: &[("CSD_FUNC_OFF", "func")],
    opt_in: None,
    pcp: PcpRole::None,
    feeds: "IPIs that kick deferred SKB flushes (the cost side of skb_attempt_defer_free)",
};

pub const PAGE_ALLOC: ProbeSpec = ProbeSpec {
    name: name::PAGE_ALLOC,
    methods: &[
        raw(
            "raw_page_alloc",
            "kmem",
            "mm_page_alloc",
            &["struct page *", "unsigned int"],
        ),
        tp("page_alloc", "kmem", "mm_page_alloc"),
    ],
    fields: &["pfn", "order"],
    field_globals: &[("PG_ALLOC_PFN_OFF", "pfn"), ("PG_ALLOC_ORDER_OFF", "order")],
    opt_in: Some("--page-flows"),
    pcp: PcpRole::None,
    feeds: "page alloc-CPU x free-CPU flows, lifetimes and orders (sampled)",
};

pub const PAGE_FREE: ProbeSpec = ProbeSpec {
    name: name::PAGE_FREE,
    methods: &[
        raw(
            "raw_page_free",
            "kmem",
            "mm_page_free",
            &["struct page *", "unsigned int"],
        ),
        tp("page_free", "kmem", "mm_page_free"),
    ],
    fields: &["pfn", "order"],
    field_globals: &[("PG_FREE_PFN_OFF", "pfn"), ("PG_FREE_ORDER_OFF", "order")],
    opt_in: Some("--page-flows"),
    pcp: PcpRole::None,
    feeds: "page alloc-CPU x free-CPU flows, lifetimes and orders (sampled)",
};

pub const SKB_DEFER_FREE: ProbeSpec = ProbeSpec {
    name: name::SKB_ATTEMPT_DEFER_FREE,
    // No tracepoint exists for it.
    methods: &[
        Method::Fentry {
            program: "fe_defer_free",
            exit: None,
            targets: &["skb_attempt_defer_free"],
            proto: Proto::ANY,
        },
        Method::Kprobe {
            program: "kp_defer_free",
            ret: None,
            targets: &["skb_attempt_defer_free"],
            proto: Proto::ANY,
        },
    ],
    fields: &[],
    field_globals: &[],
    opt_in: None,
    pcp: PcpRole::None,
    feeds: "deferred vs immediate SKB frees (skb_attempt_defer_free) and their free sites",
};

/// `__rmqueue_pcplist(zone, order, migratetype, alloc_flags, pcp, list)` (5.15+).
const RMQUEUE_PCPLIST_PROTO: Proto = Proto {
    args: &[
        "struct zone *",
        "unsigned int",
        "",
        "",
        "struct per_cpu_pages *",
        "",
    ],
    exact: true,
};

/// `rmqueue_bulk(zone, order, count, list, migratetype, alloc_flags)`.
const RMQUEUE_BULK_PROTO: Proto = Proto {
    args: &["struct zone *", "unsigned int", "", "", "", ""],
    exact: true,
};

/// `free_pcppages_bulk(zone, count, pcp[, pindex])` (pindex since 5.19).
const FREE_PCPPAGES_BULK_PROTO: Proto = Proto {
    args: &["struct zone *", "int", "struct per_cpu_pages *"],
    exact: false,
};

pub const RMQUEUE_PCPLIST: ProbeSpec = ProbeSpec {
    name: name::RMQUEUE_PCPLIST,
    // The card's probe: the PCP allocation path, timed on the allocating CPU. Its exit
    // counts the pages a refill brought (pcp->count across the call) outside zone->lock.
    // `rmqueue_bulk`, the refill itself, where `__rmqueue_pcplist` is inlined or notrace
    // (Ubuntu 5.15-6.8, Debian 6.1): its return value is the blocks taken.
    methods: &[
        Method::Fentry {
            program: "fe_rmqueue_pcplist",
            exit: Some("fx_rmqueue_pcplist"),
            targets: &["__rmqueue_pcplist"],
            proto: RMQUEUE_PCPLIST_PROTO,
        },
        Method::Fentry {
            program: "fe_rmqueue_bulk",
            exit: Some("fx_rmqueue_bulk"),
            targets: &["rmqueue_bulk"],
            proto: RMQUEUE_BULK_PROTO,
        },
        Method::Kprobe {
            program: "kp_rmqueue_pcplist",
            ret: Some("krp_rmqueue_pcplist"),
            targets: &["__rmqueue_pcplist"],
            proto: RMQUEUE_PCPLIST_PROTO,
        },
        Method::Kprobe {
            program: "kp_rmqueue_bulk",
            ret: Some("krp_rmqueue_bulk"),
            targets: &["rmqueue_bulk"],
            proto: RMQUEUE_BULK_PROTO,
        },
    ],
    fields: &[],
    field_globals: &[],
    opt_in: None,
    pcp: PcpRole::Batch,
    feeds: "PCP allocation slow-path calls and time per CPU, pages refilled per batch outside zone->lock, and the zone",
};

pub const FREE_PCPPAGES_BULK: ProbeSpec = ProbeSpec {
    name: name::FREE_PCPPAGES_BULK,
    // Entry before the function takes zone->lock, exit after it released it.
    methods: &[
        Method::Fentry {
            program: "fe_free_pcppages_bulk",
            exit: Some("fx_free_pcppages_bulk"),
            targets: &["free_pcppages_bulk"],
            proto: FREE_PCPPAGES_BULK_PROTO,
        },
        Method::Kprobe {
            program: "kp_free_pcppages_bulk",
            ret: Some("krp_free_pcppages_bulk"),
            targets: &["free_pcppages_bulk"],
            proto: FREE_PCPPAGES_BULK_PROTO,
        },
    ],
    fields: &[],
    field_globals: &[],
    opt_in: None,
    pcp: PcpRole::Batch,
    feeds: "PCP drain calls and pages per CPU, counted per batch outside zone->lock, and the zone",
};

/// Every probe, in attach order.
/// The PCP batch probes come before their per-page fallbacks (`PcpRole::PerPage`).
pub const CATALOG: &[ProbeSpec] = &[
    CONTENTION_BEGIN,
    CONTENTION_END,
    RMQUEUE_PCPLIST,
    FREE_PCPPAGES_BULK,
    PCP_REFILL,
    PCP_DRAIN,
    CONSUME_SKB,
    KFREE_SKB,
    DEFER_IPI,
    SKB_DEFER_FREE,
    PAGE_ALLOC,
    PAGE_FREE,
];

/// Every probe name of the catalog, for `--probes` and its error message.
pub fn probe_names() -> Vec<&'static str> {
    CATALOG.iter().map(|p| p.name).collect()
}
