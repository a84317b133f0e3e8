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
    /// eBPF program (function name in profiler-ebpf) that implements it.
    pub program: &'static str,
    /// Ways to attach, most preferred first.
    pub methods: &'static [Method],
    /// Tracepoint fields the program reads; a format lacking one makes the method unusable.
    pub fields: &'static [&'static str],
    /// What is lost when the probe is missing, for "not observable" lines.
    pub feeds: &'static str,
}

pub const CONTENTION_BEGIN: ProbeSpec = ProbeSpec {
    name: "contention_begin",
    program: "contention_begin",
    methods: &[Method::Tracepoint {
        category: "lock",
        event: "contention_begin",
    }],
    fields: &["lock_addr", "flags"],
    feeds: "lock wait times and stacks (zone lock and every other contended lock)",
};

pub const CONTENTION_END: ProbeSpec = ProbeSpec {
    name: "contention_end",
    program: "contention_end",
    methods: &[Method::Tracepoint {
        category: "lock",
        event: "contention_end",
    }],
    fields: &["lock_addr"],
    feeds: "lock wait times and stacks (zone lock and every other contended lock)",
};

pub const PCP_REFILL: ProbeSpec = ProbeSpec {
    name: "pcp_refill",
    program: "page_alloc_zone_locked",
    methods: &[Method::Tracepoint {
        category: "kmem",
        event: "mm_page_alloc_zone_locked",
    }],
    // `percpu_refill` is optional: before 5.19 the kernel derived it from `order == 0`.
    fields: &["order"],
    feeds: "pages refilled into per-CPU page lists under zone->lock",
};

pub const PCP_DRAIN: ProbeSpec = ProbeSpec {
    name: "pcp_drain",
    program: "page_pcpu_drain",
    methods: &[Method::Tracepoint {
        category: "kmem",
        event: "mm_page_pcpu_drain",
    }],
    fields: &["order"],
    feeds: "pages drained from per-CPU page lists under zone->lock",
};

/// Every probe, in attach order (begin before end so no end arrives without its begin
/// program running).
pub const CATALOG: &[ProbeSpec] = &[CONTENTION_BEGIN, CONTENTION_END, PCP_REFILL, PCP_DRAIN];
