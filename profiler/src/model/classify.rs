//! Which lock a contention stack waits on, and for `zone->lock` which side (alloc/free) and why.
//!
//! `lock:contention_*` reports a lock address and a stack, not the lock's name. The lock is
//! identified by its taker: the first frame below the lock frames (spin-lock slowpath,
//! `_raw_spin_lock*`, rwsem/mutex entry points). Only that frame (and, for
//! `free_pcppages_bulk`, its caller) counts: stacks often carry an interrupted context rootward
//! of an IRQ entry, and the zone functions there hold nothing the IRQ handler waits for.
//!
//! Function names follow `../shared/docs/kernel-facts.md` ("Who takes zone->lock"); every name, with its
//! aliases across kernel versions, lives in the single table [`FUNCS`].

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::kernel::symbolize::base_name;

/// Errors from parsing folded-stack lines.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    /// Nothing on the line.
    #[error("folded line is empty")]
    Empty,
    /// No `VALUE` after the stack.
    #[error("folded line has no value: {0:?}")]
    MissingValue(String),
    /// The value is not a non-negative integer.
    #[error("folded line value is not an integer: {0:?}")]
    BadValue(String),
}

/// Why `free_pcppages_bulk` (or a direct buddy free) took the zone lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FreeTrigger {
    /// The freeing CPU's PCP list went over `pcp->high` (`*_commit`): the cross-CPU symptom.
    PcpHigh,
    /// `drain_all_pages` / `drain_pages_zone` (reclaim, hotplug, isolation).
    DrainAllPages,
    /// vmstat's periodic `decay_pcp_high` (6.7+).
    Decay,
    /// `drain_zone_pages`: NUMA remote-list expiry.
    NumaDrain,
    /// `free_one_page` / `__free_pages_ok`: order above PCP, isolated block, or PCP unavailable.
    Direct,
    /// The caller is inlined away or not recognised.
    Unknown,
}

impl FreeTrigger {
    /// Short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            FreeTrigger::PcpHigh => "pcp high",
            FreeTrigger::DrainAllPages => "drain_all_pages",
            FreeTrigger::Decay => "pcp decay",
            FreeTrigger::NumaDrain => "numa drain",
            FreeTrigger::Direct => "direct",
            FreeTrigger::Unknown => "unknown trigger",
        }
    }
}

/// Which side of the page allocator waited on the zone lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Alloc,
    Free,
}

/// The lock a contention stack waited on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockClass {
    /// zone->lock: PCP refill or buddy allocation.
    ZoneAlloc,
    /// zone->lock: PCP drain or buddy free, with its trigger.
    ZoneFree(FreeTrigger),
    /// zone->lock taken by compaction, page reporting, isolation/offline, /proc readers, ...
    ZoneOther(String),
    /// A named non-zone lock ("lruvec lock", "rq lock", "mmap_lock", ...) or "lock in <taker>".
    Other(String),
    /// No frames, only lock frames, or an unsymbolized taker.
    Unknown,
}

impl LockClass {
    /// Whether this is the page allocator's zone lock.
    pub fn is_zone(&self) -> bool {
        matches!(
            self,
            LockClass::ZoneAlloc | LockClass::ZoneFree(_) | LockClass::ZoneOther(_)
        )
    }

    /// Alloc or free side, for the zone lock's PCP traffic only.
    pub fn side(&self) -> Option<Side> {
        match self {
            LockClass::ZoneAlloc => Some(Side::Alloc),
            LockClass::ZoneFree(_) => Some(Side::Free),
            _ => None,
        }
    }

    /// One-line label for reports and flamegraph root frames (no `;`).
    pub fn label(&self) -> String {
        match self {
            LockClass::ZoneAlloc => "zone->lock alloc".to_string(),
            LockClass::ZoneFree(FreeTrigger::Unknown) => "zone->lock free".to_string(),
            LockClass::ZoneFree(t) => format!("zone->lock free ({})", t.label()),
            LockClass::ZoneOther(what) => format!("zone->lock ({what})"),
            LockClass::Other(what) => what.clone(),
            LockClass::Unknown => "unknown lock".to_string(),
        }
    }
}

/// A classified stack: the lock, and the function that took it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Classification {
    pub class: LockClass,
    /// The first non-lock frame's symbol (suffixes stripped); None when there is none.
    pub taker: Option<String>,
}

/// What a function means when it is the taker.
#[derive(Clone, Copy, Debug)]
enum Taker {
    /// zone->lock, allocation side.
    ZoneAlloc,
    /// `free_pcppages_bulk`: zone->lock, free side; the trigger is read from its caller.
    ZoneFreeBulk,
    /// zone->lock, free side, the trigger known from the taker itself.
    ZoneFree(FreeTrigger),
    /// zone->lock for something other than PCP traffic.
    ZoneOther(&'static str),
    /// A named lock that is not zone->lock.
    Lock(&'static str),
    /// Takes no lock worth naming itself; only meaningful as a trigger.
    Unnamed,
}

/// One kernel function: its names across versions and what it means in a contention stack.
struct Func {
    /// The current name first, then older names and inlined-into aliases. A trailing `*` makes a
    /// prefix pattern.
    names: &'static [&'static str],
    taker: Taker,
    /// The free trigger when this function is the caller of `free_pcppages_bulk`.
    trigger: Option<FreeTrigger>,
}

const fn f(names: &'static [&'static str], taker: Taker) -> Func {
    Func {
        names,
        taker,
        trigger: None,
    }
}

const fn trig(names: &'static [&'static str], taker: Taker, trigger: FreeTrigger) -> Func {
    Func {
        names,
        taker,
        trigger: Some(trigger),
    }
}

use FreeTrigger::{Decay, Direct, DrainAllPages, NumaDrain, PcpHigh};
use Taker::{Lock, Unnamed, ZoneAlloc, ZoneFree, ZoneFreeBulk, ZoneOther};

const LRU: Taker = Lock("lruvec lock");
const RQ: Taker = Lock("rq lock");
const SLAB: Taker = Lock("slab list_lock");
const MMAP: Taker = Lock("mmap_lock");
const PCP: Taker = Lock("pcp->lock");
const POOL: Taker = Lock("page_pool ring");

/// The one table of functions that name a lock, with their kernel-version aliases.
const FUNCS: &[Func] = &[
    // ---- zone->lock, alloc side (PCP refill / buddy). rmqueue_bulk, rmqueue_pcplist, rmqueue
    // and rmqueue_buddy are commonly inlined (6.18 here: rmqueue_bulk into __rmqueue_pcplist).
    f(&["__rmqueue_pcplist"], ZoneAlloc),
    f(&["rmqueue_bulk"], ZoneAlloc),
    f(&["rmqueue_pcplist"], ZoneAlloc),
    f(&["rmqueue_buddy"], ZoneAlloc),
    f(&["rmqueue"], ZoneAlloc),
    f(&["get_page_from_freelist"], ZoneAlloc),
    f(
        &["alloc_pages_bulk_noprof", "__alloc_pages_bulk"],
        ZoneAlloc,
    ),
    f(&["reserve_highatomic_pageblock"], ZoneAlloc),
    f(&["unreserve_highatomic_pageblock"], ZoneAlloc),
    f(&["try_to_accept_memory_one"], ZoneAlloc),
    // Entry points take no spinlock of their own: as takers they mean get_page_from_freelist
    // was inlined (LTO). __alloc_pages → __alloc_pages_noprof (6.10) → __alloc_frozen_pages_noprof (6.14).
    f(
        &[
            "__alloc_frozen_pages_noprof",
            "__alloc_pages_noprof",
            "__alloc_pages",
            "__alloc_pages_nodemask",
        ],
        ZoneAlloc,
    ),
    // ---- zone->lock, free side.
    f(&["free_pcppages_bulk"], ZoneFreeBulk),
    // The freeing CPU's list went over high; as a taker free_pcppages_bulk was inlined into it.
    trig(
        &["free_frozen_page_commit", "free_unref_page_commit"],
        ZoneFree(PcpHigh),
        PcpHigh,
    ),
    // Callers of *_commit (inlined there on some builds): as a trigger they mean the commit; as
    // a taker either the commit or free_one_page was inlined, so the trigger is unknown.
    // free_unref_page* → free_frozen_page* (6.14); free_unref_page_list → free_unref_folios (6.9–6.12).
    trig(
        &["free_frozen_pages", "free_unref_page"],
        ZoneFree(FreeTrigger::Unknown),
        PcpHigh,
    ),
    trig(
        &["__free_frozen_pages"],
        ZoneFree(FreeTrigger::Unknown),
        PcpHigh,
    ),
    trig(
        &["free_unref_folios", "free_unref_page_list"],
        ZoneFree(FreeTrigger::Unknown),
        PcpHigh,
    ),
    f(&["free_one_page"], ZoneFree(Direct)),
    f(&["__free_pages_ok"], ZoneFree(Direct)),
    // Drain triggers. Since 6.0 these take pcp->lock themselves around free_pcppages_bulk.
    trig(&["drain_pages_zone"], PCP, DrainAllPages),
    trig(
        &[
            "drain_pages",
            "drain_local_pages",
            "drain_local_pages_wq",
            "drain_all_pages",
            "__drain_all_pages",
            "page_alloc_cpu_dead",
        ],
        Unnamed,
        DrainAllPages,
    ),
    trig(&["decay_pcp_high"], PCP, Decay),
    trig(&["refresh_cpu_vm_stats"], Unnamed, Decay),
    trig(&["drain_zone_pages"], PCP, NumaDrain),
    f(&["zone_pcp_update_cacheinfo"], PCP),
    // ---- zone->lock, other users.
    f(&["isolate_freepages_block"], ZoneOther("compaction")),
    f(&["fast_isolate_freepages"], ZoneOther("compaction")),
    f(&["isolate_freepages"], ZoneOther("compaction")),
    f(&["compaction_alloc"], ZoneOther("compaction")),
    f(&["page_reporting_cycle"], ZoneOther("page reporting")),
    f(
        &[
            "move_freepages_block",
            "set_migratetype_isolate",
            "unset_migratetype_isolate",
            "start_isolate_page_range",
            "isolate_single_pageblock",
            "test_pages_isolated",
        ],
        ZoneOther("page isolation"),
    ),
    f(&["__offline_isolated_pages"], ZoneOther("memory offline")),
    f(
        &["take_page_off_buddy", "put_page_back_buddy"],
        ZoneOther("memory failure"),
    ),
    f(&["accept_page"], ZoneOther("memory acceptance")),
    f(&["__setup_per_zone_wmarks"], ZoneOther("watermark setup")),
    f(
        &["show_free_areas", "__show_free_areas"],
        ZoneOther("show_free_areas"),
    ),
    // /proc/zoneinfo, /proc/buddyinfo, /proc/pagetypeinfo: every zone lock with IRQs off.
    f(
        &[
            "walk_zones_in_node",
            "zoneinfo_show*",
            "frag_show*",
            "pagetypeinfo_show*",
        ],
        ZoneOther("zoneinfo reader"),
    ),
    // ---- Not zone->lock, though found in the same stacks.
    f(
        &[
            "folio_lruvec_lock*",
            "folio_lruvec_relock*",
            "lock_page_lruvec*",
            "folios_put_refs",
            "release_pages",
            "folio_batch_move_lru",
            "pagevec_lru_move_fn",
            "__pagevec_lru_add",
            "shrink_active_list",
            "shrink_inactive_list",
            "move_folios_to_lru",
            "folio_isolate_lru",
            "isolate_lru_page",
            "lru_note_cost",
            "isolate_migratepages_block",
        ],
        LRU,
    ),
    f(
        &[
            "raw_spin_rq_lock_nested",
            "raw_spin_rq_lock",
            "_raw_spin_rq_lock_irqsave",
            "__task_rq_lock",
            "task_rq_lock",
            "double_rq_lock",
            "_double_lock_balance",
            "double_lock_balance",
            "sched_tick",
            "scheduler_tick",
            "try_to_wake_up",
            "__schedule",
            "ttwu_*",
            "sched_ttwu_pending",
            "wake_up_new_task",
            "sched_balance_rq",
            "load_balance",
            "sched_balance_newidle",
            "newidle_balance",
            "sched_balance_update_blocked_averages",
            "update_blocked_averages",
            "active_load_balance_cpu_stop",
            "migration_cpu_stop",
        ],
        RQ,
    ),
    f(
        &[
            "get_partial_node",
            "__slab_free",
            "___slab_alloc",
            "deactivate_slab",
            "__put_partials",
            "put_partials",
            "unfreeze_partials",
            "__unfreeze_partials",
            "free_partial",
            "__kmem_cache_do_shrink",
            "__kmem_cache_shrink",
            "free_to_partial_list",
            "alloc_single_from_new_slab",
            "validate_slab_node",
            "cache_alloc_refill",
            "cache_flusharray",
        ],
        SLAB,
    ),
    f(&["barn_*"], Lock("slab barn lock")),
    f(
        &[
            "lock_mm_and_find_vma",
            "do_user_addr_fault",
            "vm_mmap_pgoff",
            "__vm_munmap",
            "vm_munmap",
            "madvise_lock",
            "do_madvise",
            "vm_brk_flags",
            "__do_sys_brk",
            "do_mprotect_pkey",
            "__do_sys_mremap",
            "do_mlock",
            "__mm_populate",
            "exit_mmap",
            "dup_mmap",
            "exit_mm",
            "__access_remote_vm",
            "get_user_pages_unlocked",
        ],
        MMAP,
    ),
    f(&["__vma_start_write", "vma_start_write"], Lock("vma lock")),
    f(
        &["skb_attempt_defer_free", "skb_defer_free_flush"],
        Lock("sd->defer_lock"),
    ),
    f(
        &[
            "page_pool_recycle_in_ring",
            "page_pool_refill_alloc_cache",
            "page_pool_put_page_bulk",
            "page_pool_put_netmem_bulk",
            "page_pool_put_unrefed_netmem",
            "page_pool_put_unrefed_page",
            "page_pool_empty_ring",
        ],
        POOL,
    ),
    f(
        &["rtnl_lock", "rtnl_lock_killable", "rtnl_lock_interruptible"],
        Lock("rtnl_mutex"),
    ),
    f(
        &[
            "release_task",
            "exit_notify",
            "__do_wait",
            "do_wait",
            "copy_process",
        ],
        Lock("tasklist_lock"),
    ),
    f(
        &[
            "__wake_up_common_lock",
            "__wake_up",
            "__wake_up_sync_key",
            "prepare_to_wait*",
            "prepare_to_swait*",
            "finish_wait",
            "add_wait_queue*",
            "remove_wait_queue",
            "folio_wake_bit",
            "folio_wait_bit_common",
        ],
        Lock("wait queue lock"),
    ),
    f(
        &["lock_timer_base", "__run_timers"],
        Lock("timer base lock"),
    ),
];

/// Exact names and prefix patterns of [`FUNCS`], built once.
struct Index {
    exact: HashMap<&'static str, &'static Func>,
    prefixes: Vec<(&'static str, &'static Func)>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        for func in FUNCS {
            for name in func.names {
                match name.strip_suffix('*') {
                    Some(prefix) => prefixes.push((prefix, func)),
                    None => {
                        exact.insert(*name, func);
                    }
                }
            }
        }
        Index { exact, prefixes }
    })
}

/// The table entry for a (suffix-stripped) symbol.
fn lookup(sym: &str) -> Option<&'static Func> {
    let idx = index();
    idx.exact.get(sym).copied().or_else(|| {
        idx.prefixes
            .iter()
            .find(|(prefix, _)| sym.starts_with(prefix))
            .map(|(_, func)| *func)
    })
}

/// The function name of a frame: strips `+0x..`, ` [mod]` and compiler clone suffixes
/// (`.isra.N`, `.constprop.N`, `.part.N`, `.cold`), so one name matches every build.
pub fn frame_symbol(frame: &str) -> &str {
    let mut s = frame.trim();
    if let Some(i) = find_ascii(s, b" [") {
        s = s[..i].trim_end();
    }
    if let Some(i) = find_ascii(s, b"+0x") {
        s = &s[..i];
    }
    base_name(s)
}

/// `s.find(pat)` for a short ASCII `pat`, by a plain scan: classifying a 640-CPU recording
/// calls [`frame_symbol`] over a million times, and `str::find` builds a general substring
/// searcher on each call. An ASCII match starts on a char boundary, so the offset slices.
fn find_ascii(s: &str, pat: &[u8]) -> Option<usize> {
    s.as_bytes().windows(pat.len()).position(|w| w == pat)
}

/// A frame the symbolizer could not name (`0xffffffff8123...`): no lock can be inferred from it.
fn is_unsymbolized(sym: &str) -> bool {
    sym.strip_prefix("0x")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Exact lock-implementation frames.
const LOCK_EXACT: &[&str] = &[
    "do_raw_spin_lock",
    "do_raw_spin_trylock",
    "do_raw_read_lock",
    "do_raw_write_lock",
    "queued_read_lock_slowpath",
    "queued_write_lock_slowpath",
    "kvm_wait",
    "xen_qlock_wait",
    "pv_wait_head_or_lock",
    "pv_wait_node",
    // Semaphores.
    "down",
    "down_interruptible",
    "down_killable",
    "down_timeout",
    "__down",
    "__down_common",
    "__down_interruptible",
    "__down_killable",
    "__down_timeout",
    // Spinning phases of sleeping locks.
    "mutex_spin_on_owner",
    "mutex_optimistic_spin",
    "rwsem_optimistic_spin",
    "rwsem_spin_on_owner",
    "percpu_rwsem_wait",
    "rtlock_slowlock",
    "rtlock_slowlock_locked",
    "rt_spin_lock",
    // Compaction's lock helper: the lock is named by its caller (zone or lruvec).
    "compact_lock_irqsave",
    "compact_trylock_irqsave",
];

/// Lock-implementation frame prefixes.
const LOCK_PREFIXES: &[&str] = &[
    "_raw_spin_lock",
    "_raw_spin_trylock",
    "_raw_read_lock",
    "_raw_write_lock",
    "_raw_read_trylock",
    "_raw_write_trylock",
    "mutex_lock",
    "__mutex_lock",
    "ww_mutex_lock",
    "__ww_mutex_lock",
    "down_read",
    "down_write",
    "__down_read",
    "__down_write",
    "rwsem_down_",
    "percpu_down_",
    "__percpu_down_",
    "rt_mutex_lock",
    "rt_mutex_slowlock",
    "__rt_mutex_lock",
    "__rt_mutex_slowlock",
    "rt_read_lock",
    "rt_write_lock",
    "rwbase_read_lock",
    "rwbase_write_lock",
    "__rwbase_read_lock",
];

/// Whether `sym` belongs to a lock implementation (spin-lock slowpaths, `_raw_*_lock*`,
/// rwsem/mutex/semaphore/rtmutex entry and slowpath frames) and so names no lock user.
pub fn is_lock_frame(sym: &str) -> bool {
    let sym = frame_symbol(sym);
    sym.ends_with("queued_spin_lock_slowpath")
        || LOCK_EXACT.contains(&sym)
        || LOCK_PREFIXES.iter().any(|p| sym.starts_with(p))
}

/// Classifies a contention stack given leaf first (the lock slowpath first) by its taker, the
/// first non-lock frame.
pub fn classify(frames_leaf_first: &[&str]) -> Classification {
    let mut frames = frames_leaf_first
        .iter()
        .map(|f| frame_symbol(f))
        .filter(|s| !s.is_empty());
    let Some(taker) = frames.find(|s| !is_lock_frame(s)) else {
        return Classification {
            class: LockClass::Unknown,
            taker: None,
        };
    };
    let class = if is_unsymbolized(taker) {
        LockClass::Unknown
    } else {
        match lookup(taker).map(|func| func.taker) {
            Some(Taker::ZoneAlloc) => LockClass::ZoneAlloc,
            Some(Taker::ZoneFreeBulk) => {
                let trigger = frames
                    .next()
                    .and_then(lookup)
                    .and_then(|func| func.trigger)
                    .unwrap_or(FreeTrigger::Unknown);
                LockClass::ZoneFree(trigger)
            }
            Some(Taker::ZoneFree(trigger)) => LockClass::ZoneFree(trigger),
            Some(Taker::ZoneOther(what)) => LockClass::ZoneOther(what.to_string()),
            Some(Taker::Lock(name)) => LockClass::Other(name.to_string()),
            Some(Taker::Unnamed) | None => LockClass::Other(format!("lock in {taker}")),
        }
    };
    Classification {
        class,
        taker: Some(taker.to_string()),
    }
}

/// One line of a folded-stack file: `cpuN;root;...;leaf VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldedLine {
    /// From a leading `cpuN` pseudo-frame, when present.
    pub cpu: Option<u32>,
    pub frames_root_first: Vec<String>,
    /// Weight: wait nanoseconds in the contention fixtures.
    pub value: u64,
}

impl FoldedLine {
    /// The frames leaf first, as [`classify`] takes them.
    pub fn frames_leaf_first(&self) -> Vec<&str> {
        self.frames_root_first
            .iter()
            .rev()
            .map(String::as_str)
            .collect()
    }
}

/// Parses `cpuN;root;...;leaf VALUE`. The value follows the last whitespace (frames may hold
/// ` [mod]`); the `cpuN` prefix is optional; empty frames are dropped.
pub fn parse_folded_line(line: &str) -> Result<FoldedLine, ClassifyError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(ClassifyError::Empty);
    }
    let (stack, value) = line
        .rsplit_once(char::is_whitespace)
        .ok_or_else(|| ClassifyError::MissingValue(line.to_string()))?;
    let value = value
        .parse::<u64>()
        .map_err(|_| ClassifyError::BadValue(line.to_string()))?;
    let mut parts = stack.trim_end().split(';').peekable();
    let cpu = parts
        .peek()
        .and_then(|first| first.strip_prefix("cpu"))
        .and_then(|n| n.parse::<u32>().ok());
    if cpu.is_some() {
        parts.next();
    }
    let frames_root_first = parts
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    Ok(FoldedLine {
        cpu,
        frames_root_first,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};
    use std::path::PathBuf;

    const SLOW: &str = "__pv_queued_spin_lock_slowpath+0x15f";
    const IRQSAVE: &str = "_raw_spin_lock_irqsave+0x55";

    /// Classifies `taker_and_callers` (leaf first) under the usual spin-lock frames.
    fn spin(taker_and_callers: &[&str]) -> Classification {
        let mut frames = vec![SLOW, IRQSAVE];
        frames.extend_from_slice(taker_and_callers);
        classify(&frames)
    }

    fn class(taker_and_callers: &[&str]) -> LockClass {
        spin(taker_and_callers).class
    }

    fn other(name: &str) -> LockClass {
        LockClass::Other(name.to_string())
    }

    #[test]
    fn frame_symbol_strips_offsets_modules_and_clone_suffixes() {
        for (frame, sym) in [
            ("free_pcppages_bulk+0x39", "free_pcppages_bulk"),
            ("tun_do_read+0x23 [tun]", "tun_do_read"),
            ("tun_do_read [tun]", "tun_do_read"),
            ("__mutex_lock.constprop.0+0x1a2", "__mutex_lock"),
            (
                "get_page_from_freelist.isra.0+0x1be",
                "get_page_from_freelist",
            ),
            ("rt_fibinfo_free_cpus.part.0+0x67", "rt_fibinfo_free_cpus"),
            ("drain_pages_zone.constprop.0.isra.0", "drain_pages_zone"),
            ("free_unref_page_commit.cold+0x5", "free_unref_page_commit"),
            ("schedule", "schedule"),
            ("0xffffffff81234567", "0xffffffff81234567"),
            ("  rmqueue_bulk+0x10  ", "rmqueue_bulk"),
        ] {
            assert_eq!(frame_symbol(frame), sym, "{frame}");
        }
    }

    #[test]
    fn lock_frames_are_recognised() {
        for sym in [
            "__pv_queued_spin_lock_slowpath",
            "native_queued_spin_lock_slowpath",
            "queued_spin_lock_slowpath",
            "_raw_spin_lock",
            "_raw_spin_lock_irqsave",
            "_raw_spin_lock_irq",
            "_raw_spin_lock_bh",
            "_raw_spin_trylock",
            "_raw_read_lock",
            "_raw_write_lock_irq",
            "queued_read_lock_slowpath",
            "queued_write_lock_slowpath",
            "do_raw_spin_lock",
            "down_read",
            "down_write_killable",
            "down_read_killable",
            "rwsem_down_write_slowpath",
            "rwsem_down_read_slowpath",
            "mutex_lock",
            "__mutex_lock_slowpath",
            "__mutex_lock.constprop.0+0x1",
            "percpu_down_write",
            "__percpu_down_read",
            "rt_mutex_lock",
            "rt_mutex_slowlock",
            "__down_common",
            "down_interruptible",
        ] {
            assert!(is_lock_frame(sym), "{sym} should be a lock frame");
        }
        for sym in [
            "raw_spin_rq_lock_nested",
            "_raw_spin_rq_lock_irqsave",
            "_raw_spin_unlock_irqrestore",
            "folio_lruvec_lock_irqsave",
            "rt_mutex_setprio",
            "mutex_unlock",
            "free_pcppages_bulk",
            "__rmqueue_pcplist",
            "lock_mm_and_find_vma",
            "downgrade_write",
            "0xffffffff81234567",
        ] {
            assert!(!is_lock_frame(sym), "{sym} should not be a lock frame");
        }
    }

    #[test]
    fn table_names_are_unique_and_never_lock_frames() {
        let mut seen = HashSet::new();
        for func in FUNCS {
            assert!(!func.names.is_empty());
            for name in func.names {
                assert!(seen.insert(*name), "{name} listed twice");
                let plain = name.trim_end_matches('*');
                assert!(!is_lock_frame(plain), "{name} would never be a taker");
                assert_eq!(base_name(plain), plain, "{name} carries a clone suffix");
            }
        }
    }

    #[test]
    fn alloc_side_takers() {
        for taker in [
            "__rmqueue_pcplist+0x244",
            "rmqueue_bulk+0x10",
            "rmqueue_pcplist.constprop.0+0x20",
            "rmqueue_buddy+0x1",
            "rmqueue+0x5",
            "get_page_from_freelist.isra.0+0x2e1",
            "alloc_pages_bulk_noprof+0x300",
            "__alloc_pages_bulk+0x300",
            "reserve_highatomic_pageblock+0x8",
            "unreserve_highatomic_pageblock+0x8",
            "try_to_accept_memory_one+0x8",
            "__alloc_pages+0x100",
            "__alloc_pages_noprof+0x100",
        ] {
            let c = spin(&[taker, "alloc_pages_mpol+0x88"]);
            assert_eq!(c.class, LockClass::ZoneAlloc, "{taker}");
            assert_eq!(c.taker.as_deref(), Some(frame_symbol(taker)));
            assert_eq!(c.class.side(), Some(Side::Alloc));
        }
    }

    #[test]
    fn free_triggers_come_from_the_caller_of_free_pcppages_bulk() {
        for (caller, trigger) in [
            ("free_frozen_page_commit+0x1a1", FreeTrigger::PcpHigh),
            ("free_unref_page_commit.isra.0+0x90", FreeTrigger::PcpHigh),
            // *_commit inlined into its callers (renamed in 6.14 / 6.9).
            ("free_unref_page+0x120", FreeTrigger::PcpHigh),
            ("free_frozen_pages+0x120", FreeTrigger::PcpHigh),
            ("__free_frozen_pages+0x1f6", FreeTrigger::PcpHigh),
            ("free_unref_page_list+0x200", FreeTrigger::PcpHigh),
            ("free_unref_folios+0x200", FreeTrigger::PcpHigh),
            ("drain_pages_zone+0x3e", FreeTrigger::DrainAllPages),
            (
                "drain_pages_zone.constprop.0+0x3e",
                FreeTrigger::DrainAllPages,
            ),
            ("drain_pages+0x40", FreeTrigger::DrainAllPages),
            ("drain_local_pages+0x40", FreeTrigger::DrainAllPages),
            ("__drain_all_pages+0x40", FreeTrigger::DrainAllPages),
            ("decay_pcp_high+0x5b", FreeTrigger::Decay),
            ("refresh_cpu_vm_stats+0x150", FreeTrigger::Decay),
            ("drain_zone_pages+0x30", FreeTrigger::NumaDrain),
            ("some_new_caller+0x30", FreeTrigger::Unknown),
            ("0xffffffff81234567", FreeTrigger::Unknown),
        ] {
            let c = spin(&["free_pcppages_bulk+0x39", caller, "vmstat_update+0x4a"]);
            assert_eq!(c.class, LockClass::ZoneFree(trigger), "{caller}");
            assert_eq!(c.taker.as_deref(), Some("free_pcppages_bulk"));
            assert_eq!(c.class.side(), Some(Side::Free));
        }
        // A stack truncated right above the taker.
        assert_eq!(
            class(&["free_pcppages_bulk+0x39"]),
            LockClass::ZoneFree(FreeTrigger::Unknown)
        );
    }

    #[test]
    fn free_side_inlined_takers() {
        assert_eq!(
            class(&["free_one_page+0x5d", "__free_frozen_pages+0x2c0"]),
            LockClass::ZoneFree(FreeTrigger::Direct)
        );
        assert_eq!(
            class(&["__free_pages_ok+0x2a0", "__free_pages+0x10"]),
            LockClass::ZoneFree(FreeTrigger::Direct)
        );
        // free_pcppages_bulk inlined into the commit: the trigger is the commit itself.
        assert_eq!(
            class(&["free_unref_page_commit+0x1a1", "free_unref_page+0x10"]),
            LockClass::ZoneFree(FreeTrigger::PcpHigh)
        );
        // Into free_frozen_pages / free_unref_folios either the commit or free_one_page may be
        // inlined: free side, trigger unknown.
        for taker in [
            "free_frozen_pages+0x300",
            "free_unref_page+0x300",
            "__free_frozen_pages+0x300",
            "free_unref_folios+0x300",
            "free_unref_page_list+0x300",
        ] {
            assert_eq!(
                class(&[taker, "folios_put_refs+0x1"]),
                LockClass::ZoneFree(FreeTrigger::Unknown),
                "{taker}"
            );
        }
    }

    #[test]
    fn zone_lock_other_users() {
        let zo = |s: &str| LockClass::ZoneOther(s.to_string());
        assert_eq!(class(&["isolate_freepages_block+0x100"]), zo("compaction"));
        assert_eq!(
            class(&["fast_isolate_freepages.isra.0+0x1"]),
            zo("compaction")
        );
        assert_eq!(class(&["compaction_alloc+0x1"]), zo("compaction"));
        // compact_lock_irqsave serves both locks; its caller names the lock.
        assert_eq!(
            class(&["compact_lock_irqsave+0x20", "isolate_freepages_block+0x100"]),
            zo("compaction")
        );
        assert_eq!(
            class(&[
                "compact_lock_irqsave+0x20",
                "isolate_migratepages_block+0x100"
            ]),
            other("lruvec lock")
        );
        assert_eq!(
            class(&["page_reporting_cycle+0x1", "page_reporting_process+0x1"]),
            zo("page reporting")
        );
        assert_eq!(
            class(&["set_migratetype_isolate+0x1"]),
            zo("page isolation")
        );
        assert_eq!(
            class(&["__offline_isolated_pages+0x1"]),
            zo("memory offline")
        );
        assert_eq!(
            class(&["walk_zones_in_node+0x1", "zoneinfo_show+0x1"]),
            zo("zoneinfo reader")
        );
        assert_eq!(class(&["frag_show+0x40"]), zo("zoneinfo reader"));
        assert_eq!(
            class(&["pagetypeinfo_showfree+0x40"]),
            zo("zoneinfo reader")
        );
        let c = class(&["isolate_freepages_block+0x100"]);
        assert!(c.is_zone());
        assert_eq!(c.side(), None);
    }

    #[test]
    fn non_zone_locks_in_the_same_stacks() {
        for (taker, caller, name) in [
            (
                "folio_lruvec_lock_irqsave+0x5e",
                "folios_put_refs+0x8b",
                "lruvec lock",
            ),
            (
                "lock_page_lruvec_irqsave+0x1",
                "release_pages+0x1",
                "lruvec lock",
            ),
            (
                "folios_put_refs+0x100",
                "free_pages_and_swap_cache+0x1",
                "lruvec lock",
            ),
            ("raw_spin_rq_lock_nested+0x1", "sched_tick+0x43", "rq lock"),
            ("sched_tick+0x43", "update_process_times+0x8c", "rq lock"),
            (
                "scheduler_tick+0x43",
                "update_process_times+0x8c",
                "rq lock",
            ),
            ("try_to_wake_up+0x60", "wake_up_process+0x10", "rq lock"),
            ("__schedule+0x1b0", "schedule+0x2c", "rq lock"),
            (
                "get_partial_node.part.0+0x2c",
                "___slab_alloc+0x1",
                "slab list_lock",
            ),
            ("__slab_free+0x1e0", "kmem_cache_free+0x1", "slab list_lock"),
            (
                "barn_put_full_sheaf+0x21",
                "rcu_free_sheaf+0xa1",
                "slab barn lock",
            ),
            (
                "skb_attempt_defer_free+0x1",
                "napi_consume_skb+0x1",
                "sd->defer_lock",
            ),
            (
                "page_pool_recycle_in_ring+0x1",
                "page_pool_put_unrefed_netmem+0x1",
                "page_pool ring",
            ),
            ("drain_pages_zone+0x1", "drain_pages+0x1", "pcp->lock"),
            (
                "decay_pcp_high+0x1",
                "refresh_cpu_vm_stats+0x1",
                "pcp->lock",
            ),
        ] {
            let c = class(&[taker, caller]);
            assert_eq!(c, other(name), "{taker}");
            assert!(!c.is_zone());
            assert_eq!(c.side(), None);
        }
        // Sleeping locks: rwsem frames are lock frames, the caller names the lock.
        for frames in [
            &[
                "rwsem_down_write_slowpath+0x26d",
                "down_write_killable+0x8d",
                "vm_mmap_pgoff+0xc8",
            ][..],
            &[
                "rwsem_down_read_slowpath+0x2a8",
                "down_read_killable+0x45",
                "lock_mm_and_find_vma+0x8a",
                "do_user_addr_fault+0x1f0",
            ],
            &[
                "rwsem_down_write_slowpath+0x26d",
                "down_write_killable+0x8d",
                "madvise_lock+0x51",
            ],
        ] {
            assert_eq!(classify(frames).class, other("mmap_lock"), "{frames:?}");
        }
        // A mutex's wait_lock spins inside mutex frames: still named by the mutex user.
        let c = classify(&[
            SLOW,
            IRQSAVE,
            "__mutex_lock.constprop.0+0x5a",
            "__mutex_lock_slowpath+0x13",
            "mutex_lock+0x3c",
            "rtnl_lock+0x15",
        ]);
        assert_eq!(c.class, other("rtnl_mutex"));
        assert_eq!(c.taker.as_deref(), Some("rtnl_lock"));
    }

    #[test]
    fn unknown_takers_are_named_after_the_taker() {
        let c = spin(&["tun_do_read+0x23 [tun]", "tun_chr_read_iter+0x1 [tun]"]);
        assert_eq!(c.class, other("lock in tun_do_read"));
        assert_eq!(c.class.label(), "lock in tun_do_read");
        // Trigger-only functions name no lock of their own.
        assert_eq!(
            class(&["__drain_all_pages+0x10"]),
            other("lock in __drain_all_pages")
        );
        // Semaphores.
        let c = classify(&[
            "__down_common+0x230",
            "__down_interruptible+0x1d",
            "down_interruptible+0x67",
            "_main_loop+0x93",
        ]);
        assert_eq!(c.class, other("lock in _main_loop"));
    }

    #[test]
    fn unknown_stacks() {
        assert_eq!(classify(&[]).class, LockClass::Unknown);
        assert_eq!(classify(&[]).taker, None);
        assert_eq!(classify(&["", " "]).class, LockClass::Unknown);
        let only_locks = classify(&[SLOW, IRQSAVE]);
        assert_eq!(only_locks.class, LockClass::Unknown);
        assert_eq!(only_locks.taker, None);
        let c = spin(&["0xffffffffc0a01234", "free_pcppages_bulk+0x39"]);
        assert_eq!(c.class, LockClass::Unknown);
        assert_eq!(c.taker.as_deref(), Some("0xffffffffc0a01234"));
        assert!(!c.class.is_zone());
    }

    #[test]
    fn only_the_frames_nearest_the_lock_count() {
        // A timer IRQ interrupted an allocation; the IRQ handler waits on an RCU node lock.
        let c = spin(&[
            "rcu_core+0xb2",
            "rcu_core_si+0xe",
            "handle_softirqs+0xce",
            "__irq_exit_rcu+0x93",
            "irq_exit_rcu+0xe",
            "sysvec_apic_timer_interrupt+0x89",
            "asm_sysvec_apic_timer_interrupt+0x1b",
            "__rmqueue_pcplist+0x244",
            "get_page_from_freelist+0x2e1",
        ]);
        assert_eq!(c.class, other("lock in rcu_core"));
        // And the reverse: a softirq free drains the PCP list under zone->lock.
        let c = spin(&[
            "free_pcppages_bulk+0x39",
            "free_frozen_page_commit+0x1a1",
            "__free_frozen_pages+0x1f6",
            "rcu_do_batch+0x1b5",
            "asm_sysvec_apic_timer_interrupt+0x1b",
            "folio_lruvec_lock_irqsave+0x5e",
        ]);
        assert_eq!(c.class, LockClass::ZoneFree(FreeTrigger::PcpHigh));
    }

    #[test]
    fn labels_sides_and_serde() {
        let all = [
            LockClass::ZoneAlloc,
            LockClass::ZoneFree(FreeTrigger::PcpHigh),
            LockClass::ZoneFree(FreeTrigger::DrainAllPages),
            LockClass::ZoneFree(FreeTrigger::Decay),
            LockClass::ZoneFree(FreeTrigger::NumaDrain),
            LockClass::ZoneFree(FreeTrigger::Direct),
            LockClass::ZoneFree(FreeTrigger::Unknown),
            LockClass::ZoneOther("compaction".into()),
            other("lruvec lock"),
            LockClass::Unknown,
        ];
        let labels: HashSet<String> = all.iter().map(LockClass::label).collect();
        assert_eq!(
            labels.len(),
            all.len(),
            "labels must be distinct: {labels:?}"
        );
        for c in &all {
            let label = c.label();
            assert!(!label.contains(';') && !label.contains('\n'), "{label}");
            let json = serde_json::to_string(c).expect("serialize");
            let back: LockClass = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(&back, c);
        }
        assert_eq!(
            LockClass::ZoneFree(FreeTrigger::PcpHigh).label(),
            "zone->lock free (pcp high)"
        );
        assert!(LockClass::ZoneAlloc.is_zone());
        assert!(!LockClass::Unknown.is_zone());
        let c = spin(&["free_one_page+0x5d"]);
        let json = serde_json::to_string(&c).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Classification>(&json).expect("de"),
            c
        );
    }

    #[test]
    fn folded_lines_parse() {
        let l = parse_folded_line("cpu12;root+0x1;mid+0x2;leaf+0x3 12345\n").expect("parse");
        assert_eq!(l.cpu, Some(12));
        assert_eq!(l.frames_root_first, vec!["root+0x1", "mid+0x2", "leaf+0x3"]);
        assert_eq!(
            l.frames_leaf_first(),
            vec!["leaf+0x3", "mid+0x2", "root+0x1"]
        );
        assert_eq!(l.value, 12345);

        let l =
            parse_folded_line("vhost+0x1 [vhost];tun_do_read+0x23 [tun];leaf 7").expect("parse");
        assert_eq!(l.cpu, None);
        assert_eq!(
            l.frames_root_first,
            vec!["vhost+0x1 [vhost]", "tun_do_read+0x23 [tun]", "leaf"]
        );
        assert_eq!(l.value, 7);

        let l = parse_folded_line("cpu13; 481").expect("parse");
        assert_eq!(
            (l.cpu, l.frames_root_first.len(), l.value),
            (Some(13), 0, 481)
        );
        // A frame that merely starts with "cpu" is a frame.
        let l = parse_folded_line("cpu_startup_entry+0x29;do_idle+0x1 5").expect("parse");
        assert_eq!(l.cpu, None);
        assert_eq!(l.frames_root_first.len(), 2);

        assert_eq!(parse_folded_line("   "), Err(ClassifyError::Empty));
        assert!(matches!(
            parse_folded_line("cpu0;a;b"),
            Err(ClassifyError::MissingValue(_))
        ));
        assert!(matches!(
            parse_folded_line("cpu0;a;b 12.5"),
            Err(ClassifyError::BadValue(_))
        ));
        assert!(matches!(
            parse_folded_line("cpu0;a;b -3"),
            Err(ClassifyError::BadValue(_))
        ));
    }

    // ---- Real recorded stacks (shared/fixtures/contention, see its README).

    /// The fixture directory, or None after saying the test is skipped; a panic instead
    /// under ZONEPROF_REQUIRE_FIXTURES=1 (CI), so CI cannot pass by skipping.
    fn fixture_dir() -> Option<PathBuf> {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/contention");
        if dir.is_dir() {
            Some(dir)
        } else if std::env::var("ZONEPROF_REQUIRE_FIXTURES").as_deref() == Ok("1") {
            panic!(
                "fixture directory {} not found, and ZONEPROF_REQUIRE_FIXTURES=1 forbids skipping",
                dir.display()
            );
        } else {
            println!("skipping fixture test: {} not found", dir.display());
            None
        }
    }

    /// One fixture file, classified line by line.
    struct Fixture {
        name: &'static str,
        lines: Vec<(FoldedLine, Classification)>,
    }

    impl Fixture {
        fn load(name: &'static str) -> Option<Fixture> {
            let path = fixture_dir()?.join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let lines = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let folded = parse_folded_line(l).unwrap_or_else(|e| panic!("{name}: {e}"));
                    let c = classify(&folded.frames_leaf_first());
                    (folded, c)
                })
                .collect();
            Some(Fixture { name, lines })
        }

        /// Wait in ms per CPU on one side of the zone lock.
        fn side_per_cpu(&self, side: Side) -> BTreeMap<u32, f64> {
            let mut out = BTreeMap::new();
            for (l, c) in &self.lines {
                if c.class.side() == Some(side) {
                    let cpu = l
                        .cpu
                        .unwrap_or_else(|| panic!("{}: line without cpu", self.name));
                    *out.entry(cpu).or_insert(0.0) += l.value as f64 / 1e6;
                }
            }
            out
        }

        fn by_class(&self) -> BTreeMap<String, f64> {
            let mut out = BTreeMap::new();
            for (l, c) in &self.lines {
                *out.entry(c.class.label()).or_insert(0.0) += l.value as f64 / 1e6;
            }
            out
        }

        fn report(&self) {
            println!("== {}", self.name);
            for side in [Side::Alloc, Side::Free] {
                let per_cpu = self.side_per_cpu(side);
                let total: f64 = per_cpu.values().sum();
                let cpus: Vec<String> = per_cpu
                    .iter()
                    .map(|(cpu, ms)| format!("cpu{cpu}={ms:.1}"))
                    .collect();
                println!("  {side:?}: {total:.1} ms  [{}]", cpus.join(" "));
            }
            let mut classes: Vec<_> = self.by_class().into_iter().collect();
            classes.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (label, ms) in classes.iter().take(8) {
                println!("    {ms:10.3} ms  {label}");
            }
        }

        /// Asserts one side: total ±3 % on `cpus`, each of `cpus` within `per_cpu` (when given,
        /// ±15 %; otherwise at least half an even share), and under 2 % of the total elsewhere.
        fn check_side(
            &self,
            side: Side,
            total_ms: f64,
            per_cpu_ms: Option<f64>,
            cpus: std::ops::RangeInclusive<u32>,
        ) {
            let per_cpu = self.side_per_cpu(side);
            let total: f64 = per_cpu.values().sum();
            let within = |measured: f64, expected: f64, tol: f64| {
                (measured - expected).abs() <= expected * tol
            };
            assert!(
                within(total, total_ms, 0.03),
                "{} {side:?}: total {total:.1} ms, expected ~{total_ms} ms",
                self.name
            );
            let even_share = total / cpus.clone().count() as f64;
            for cpu in cpus.clone() {
                let ms = per_cpu.get(&cpu).copied().unwrap_or(0.0);
                match per_cpu_ms {
                    Some(expected) => assert!(
                        within(ms, expected, 0.15),
                        "{} {side:?}: cpu{cpu} {ms:.1} ms, expected ~{expected} ms",
                        self.name
                    ),
                    None => assert!(
                        ms >= even_share * 0.5,
                        "{} {side:?}: cpu{cpu} only {ms:.1} ms of {total:.1} ms",
                        self.name
                    ),
                }
            }
            let elsewhere: f64 = per_cpu
                .iter()
                .filter(|(cpu, _)| !cpus.contains(cpu))
                .map(|(_, ms)| ms)
                .sum();
            assert!(
                elsewhere < total * 0.02,
                "{} {side:?}: {elsewhere:.2} ms outside cpus {cpus:?}",
                self.name
            );
        }
    }

    const ALL_FIXTURES: [&str; 5] = [
        "vm16-6.18-cross-cpu-free.folded",
        "vm16-6.18-same-cpu-free.folded",
        "vm2-6.18-cross-cpu-free.folded",
        "vm16-6.18-tap32k-cross-cpu.folded",
        "vm16-6.18-tap32k-same-cpu.folded",
    ];

    #[test]
    fn fixture_vm16_cross_cpu_free() {
        let Some(fx) = Fixture::load("vm16-6.18-cross-cpu-free.folded") else {
            return;
        };
        fx.report();
        fx.check_side(Side::Alloc, 724.0, Some(90.0), 0..=7);
        fx.check_side(Side::Free, 382.0, Some(47.0), 8..=15);
        // Cross-CPU frees drain because the freeing CPU's list overflows high.
        let classes = fx.by_class();
        let pcp_high = classes
            .get(&LockClass::ZoneFree(FreeTrigger::PcpHigh).label())
            .copied()
            .unwrap_or(0.0);
        let free: f64 = fx.side_per_cpu(Side::Free).values().sum();
        assert!(
            pcp_high > free * 0.9,
            "pcp high {pcp_high:.1} of {free:.1} ms"
        );
    }

    #[test]
    fn fixture_vm16_same_cpu_free() {
        let Some(fx) = Fixture::load("vm16-6.18-same-cpu-free.folded") else {
            return;
        };
        fx.report();
        fx.check_side(Side::Alloc, 55.0, None, 0..=7);
        fx.check_side(Side::Free, 224.0, None, 0..=7);
    }

    #[test]
    fn fixture_vm16_tap32k_cross_cpu() {
        let Some(fx) = Fixture::load("vm16-6.18-tap32k-cross-cpu.folded") else {
            return;
        };
        fx.report();
        fx.check_side(Side::Alloc, 1860.0, Some(230.0), 0..=7);
        fx.check_side(Side::Free, 1408.0, Some(175.0), 8..=15);
    }

    #[test]
    fn fixture_vm16_tap32k_same_cpu() {
        let Some(fx) = Fixture::load("vm16-6.18-tap32k-same-cpu.folded") else {
            return;
        };
        fx.report();
        fx.check_side(Side::Alloc, 141.0, None, 0..=7);
        fx.check_side(Side::Free, 141.0, None, 0..=7);
    }

    #[test]
    fn fixture_vm2_is_mostly_mmap_lock() {
        let Some(fx) = Fixture::load("vm2-6.18-cross-cpu-free.folded") else {
            return;
        };
        fx.report();
        let classes = fx.by_class();
        let top = classes
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(label, _)| label.clone());
        assert_eq!(top.as_deref(), Some("mmap_lock"));
    }

    /// lruvec, run-queue and mmap_lock stacks in the recordings are never counted as zone lock.
    #[test]
    fn fixture_non_zone_locks_stay_out_of_zone() {
        if fixture_dir().is_none() {
            return;
        }
        let mut seen: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for name in ALL_FIXTURES {
            let Some(fx) = Fixture::load(name) else {
                return;
            };
            for (l, c) in &fx.lines {
                let syms: Vec<&str> = l
                    .frames_leaf_first()
                    .into_iter()
                    .map(frame_symbol)
                    .collect();
                let taker = syms.iter().copied().find(|s| !is_lock_frame(s));
                let expected = if syms.iter().any(|s| s.starts_with("folio_lruvec_lock")) {
                    Some("lruvec lock")
                } else if syms.first().is_some_and(|s| s.starts_with("rwsem_down_"))
                    && syms.iter().any(|s| {
                        ["vm_mmap_pgoff", "madvise_lock", "lock_mm_and_find_vma"].contains(s)
                    })
                {
                    Some("mmap_lock")
                } else if taker.is_some_and(|t| {
                    [
                        "raw_spin_rq_lock_nested",
                        "_raw_spin_rq_lock_irqsave",
                        "__task_rq_lock",
                        "sched_tick",
                        "__schedule",
                    ]
                    .contains(&t)
                }) {
                    Some("rq lock")
                } else {
                    None
                };
                if let Some(lock) = expected {
                    assert_eq!(c.class, other(lock), "{name}: {:?}", l.frames_root_first);
                    let e = seen.entry(lock).or_insert((0, 0.0));
                    e.0 += 1;
                    e.1 += l.value as f64 / 1e6;
                }
            }
        }
        println!("non-zone stacks checked: {seen:?}");
        for lock in ["lruvec lock", "mmap_lock", "rq lock"] {
            assert!(
                seen.get(lock).is_some_and(|(n, _)| *n > 0),
                "no {lock} stacks seen"
            );
        }
    }

    /// Stacks where an IRQ interrupted page-allocator code and the IRQ handler waits on some
    /// other lock are classified by the handler's lock.
    #[test]
    fn fixture_interrupted_allocator_frames_do_not_count() {
        if fixture_dir().is_none() {
            return;
        }
        const ZONE_CODE: [&str; 7] = [
            "get_page_from_freelist",
            "__alloc_frozen_pages_noprof",
            "__rmqueue_pcplist",
            "free_pcppages_bulk",
            "free_frozen_page_commit",
            "__free_frozen_pages",
            "free_unref_folios",
        ];
        let mut checked = 0;
        for name in ALL_FIXTURES {
            let Some(fx) = Fixture::load(name) else {
                return;
            };
            for (l, c) in &fx.lines {
                let syms: Vec<&str> = l
                    .frames_leaf_first()
                    .into_iter()
                    .map(frame_symbol)
                    .collect();
                let Some(irq) = syms.iter().position(|s| {
                    s.starts_with("asm_sysvec_") || s.starts_with("asm_common_interrupt")
                }) else {
                    continue;
                };
                let zone_below_irq = syms[irq..].iter().any(|s| ZONE_CODE.contains(s));
                let zone_in_handler = syms[..irq].iter().any(|s| ZONE_CODE.contains(s));
                if zone_below_irq && !zone_in_handler {
                    assert!(
                        !c.class.is_zone(),
                        "{name}: {:?} -> {:?}",
                        l.frames_root_first,
                        c.class
                    );
                    checked += 1;
                }
            }
        }
        println!("interrupted allocator stacks checked: {checked}");
        assert!(checked > 0);
    }
}
