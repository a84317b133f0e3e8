//! The probe catalog: every logical probe zoneprof knows, what it feeds, and the ways it can
//! be attached, in order of preference. `attach` walks this list at run time.

/// How a probe attaches to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A stable `category:event` tracepoint, fields read at offsets from its tracefs format.
    Tracepoint {
        category: &'static str,
        event: &'static str,
    },
}

impl Method {
    pub fn kind(&self) -> &'static str {
        match self {
            Method::Tracepoint { .. } => "tracepoint",
        }
    }

    pub fn target(&self) -> String {
        match self {
            Method::Tracepoint { category, event } => format!("{category}:{event}"),
        }
    }
}

/// One logical probe.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    /// Stable name used in recordings and reports.
    pub name: &'static str,
    /// eBPF program (function name in profiler-ebpf) that implements the tracepoint form.
    pub program: &'static str,
    /// Ways to attach, most preferred first.
    pub methods: &'static [Method],
    /// Tracepoint fields the program cannot do without.
    pub fields: &'static [&'static str],
    /// Load-time globals set from tracepoint field offsets: (global, field). A field this
    /// kernel lacks sets the global to `ABSENT`.
    pub field_globals: &'static [(&'static str, &'static str)],
    /// Off unless this option is given (costly probes).
    pub opt_in: Option<&'static str>,
    /// What is lost when the probe is missing, for "not observable" lines.
    pub feeds: &'static str,
}

const fn tp(category: &'static str, event: &'static str) -> Method {
    Method::Tracepoint { category, event }
}

pub const CONTENTION_BEGIN: ProbeSpec = ProbeSpec {
    name: "contention_begin",
    program: "contention_begin",
    methods: &[tp("lock", "contention_begin")],
    fields: &["lock_addr", "flags"],
    field_globals: &[("CB_LOCK_ADDR_OFF", "lock_addr"), ("CB_FLAGS_OFF", "flags")],
    opt_in: None,
    feeds: "lock wait times and stacks (zone lock and every other contended lock)",
};

pub const CONTENTION_END: ProbeSpec = ProbeSpec {
    name: "contention_end",
    program: "contention_end",
    methods: &[tp("lock", "contention_end")],
    fields: &["lock_addr"],
    field_globals: &[("CE_LOCK_ADDR_OFF", "lock_addr")],
    opt_in: None,
    feeds: "lock wait times and stacks (zone lock and every other contended lock)",
};

pub const PCP_REFILL: ProbeSpec = ProbeSpec {
    name: "pcp_refill",
    program: "page_alloc_zone_locked",
    methods: &[tp("kmem", "mm_page_alloc_zone_locked")],
    // `percpu_refill` is optional: before 5.19 the kernel derived it from `order == 0`.
    fields: &["order"],
    field_globals: &[
        ("PA_ORDER_OFF", "order"),
        ("PA_REFILL_OFF", "percpu_refill"),
    ],
    opt_in: None,
    feeds: "pages refilled into per-CPU page lists under zone->lock",
};

pub const PCP_DRAIN: ProbeSpec = ProbeSpec {
    name: "pcp_drain",
    program: "page_pcpu_drain",
    methods: &[tp("kmem", "mm_page_pcpu_drain")],
    fields: &["order"],
    field_globals: &[("PD_ORDER_OFF", "order")],
    opt_in: None,
    feeds: "pages drained from per-CPU page lists under zone->lock",
};

pub const CONSUME_SKB: ProbeSpec = ProbeSpec {
    name: "consume_skb",
    program: "skb_consume",
    methods: &[tp("skb", "consume_skb")],
    // `location` (the caller) only since 6.3.
    fields: &["skbaddr"],
    field_globals: &[("CS_SKB_OFF", "skbaddr"), ("CS_LOC_OFF", "location")],
    opt_in: None,
    feeds: "SKB frees by consume_skb: alloc-CPU x free-CPU matrix and free sites",
};

pub const KFREE_SKB: ProbeSpec = ProbeSpec {
    name: "kfree_skb",
    program: "skb_kfree",
    methods: &[tp("skb", "kfree_skb")],
    fields: &["skbaddr"],
    field_globals: &[("KS_SKB_OFF", "skbaddr"), ("KS_LOC_OFF", "location")],
    opt_in: None,
    feeds: "SKB drops by kfree_skb: alloc-CPU x free-CPU matrix and free sites",
};

pub const DEFER_IPI: ProbeSpec = ProbeSpec {
    name: "skb_defer_ipi",
    program: "ipi_send_cpu",
    methods: &[tp("ipi", "ipi_send_cpu")],
    fields: &["callback"],
    field_globals: &[("IPI_CALLBACK_OFF", "callback")],
    opt_in: None,
    feeds: "IPIs that kick deferred SKB flushes (the cost side of skb_attempt_defer_free)",
};

pub const PAGE_ALLOC: ProbeSpec = ProbeSpec {
    name: "page_alloc",
    program: "page_alloc",
    methods: &[tp("kmem", "mm_page_alloc")],
    fields: &["pfn", "order"],
    field_globals: &[("PG_ALLOC_PFN_OFF", "pfn"), ("PG_ALLOC_ORDER_OFF", "order")],
    opt_in: Some("--page-flows"),
    feeds: "page alloc-CPU x free-CPU flows, lifetimes and orders (sampled)",
};

pub const PAGE_FREE: ProbeSpec = ProbeSpec {
    name: "page_free",
    program: "page_free",
    methods: &[tp("kmem", "mm_page_free")],
    fields: &["pfn", "order"],
    field_globals: &[("PG_FREE_PFN_OFF", "pfn"), ("PG_FREE_ORDER_OFF", "order")],
    opt_in: Some("--page-flows"),
    feeds: "page alloc-CPU x free-CPU flows, lifetimes and orders (sampled)",
};

/// Every probe, in attach order.
pub const CATALOG: &[ProbeSpec] = &[
    CONTENTION_BEGIN,
    CONTENTION_END,
    PCP_REFILL,
    PCP_DRAIN,
    CONSUME_SKB,
    KFREE_SKB,
    DEFER_IPI,
    PAGE_ALLOC,
    PAGE_FREE,
];
