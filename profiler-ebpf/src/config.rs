//! Load-time configuration: offsets from tracefs formats and BTF, set by the loader with
//! `EbpfLoader::override_global`. `ABSENT` (u32::MAX) marks a field this kernel lacks.
use aya_ebpf::Global;
use profiler_common::ABSENT;

macro_rules! globals {
    ($($(#[$m:meta])* $name:ident: $ty:ty = $default:expr;)*) => {
        $(
            $(#[$m])*
            #[unsafe(no_mangle)]
            pub static $name: Global<$ty> = Global::new($default);
        )*
    };
}

globals! {
    /// `lock:contention_begin` field offsets.
    CB_LOCK_ADDR_OFF: u32 = 8;
    CB_FLAGS_OFF: u32 = 16;
    /// `lock:contention_end` field offset.
    CE_LOCK_ADDR_OFF: u32 = 8;
    /// `kmem:mm_page_alloc_zone_locked` field offsets (`percpu_refill` is a real field since 5.19).
    PA_ORDER_OFF: u32 = 16;
    PA_REFILL_OFF: u32 = ABSENT;
    /// `kmem:mm_page_pcpu_drain` order offset.
    PD_ORDER_OFF: u32 = 16;
    /// `struct zone` / `struct pglist_data` layout from BTF; ZONE_SIZE == 0 disables zone checks.
    ZONE_LOCK_OFF: u32 = 0;
    ZONE_NAME_OFF: u32 = 0;
    ZONE_PGDAT_OFF: u32 = 0;
    ZONE_SIZE: u32 = 0;
    PGDAT_NODE_ZONES_OFF: u32 = 0;
    PGDAT_NODE_ID_OFF: u32 = 0;
    MAX_NR_ZONES: u32 = 0;
    /// `skb:consume_skb` / `skb:kfree_skb` field offsets (`location` since 6.3 for consume).
    CS_SKB_OFF: u32 = 8;
    CS_LOC_OFF: u32 = ABSENT;
    KS_SKB_OFF: u32 = 8;
    KS_LOC_OFF: u32 = ABSENT;
    /// `offsetof(struct sk_buff, alloc_cpu)` from BTF (5.19+).
    SKB_ALLOC_CPU_OFF: u32 = ABSENT;
    /// `csd:csd_queue_cpu` func offset, and the address of the deferred-SKB kick function
    /// (`trigger_rx_softirq`) from kallsyms; 0 disables kick counting.
    CSD_FUNC_OFF: u32 = ABSENT;
    DEFER_IPI_FN: u64 = 0;
    /// `kmem:mm_page_alloc` / `kmem:mm_page_free` offsets, and 1-in-N pfn sampling.
    PG_ALLOC_PFN_OFF: u32 = 8;
    PG_ALLOC_ORDER_OFF: u32 = 16;
    PG_FREE_PFN_OFF: u32 = 8;
    PG_FREE_ORDER_OFF: u32 = 16;
    PAGE_SAMPLE: u32 = 64;
    /// Argument index of the SKB in the kfree_skb kprobe/fentry target
    /// (`sk_skb_reason_drop(sk, skb, reason)` since 6.11, else `kfree_skb_reason(skb, ...)`).
    KP_KFREE_ARG: u32 = 0;
    FE_KFREE_ARG: u32 = 0;
    /// `net.core.skb_defer_max` at record time: 0 means deferral is off.
    SKB_DEFER_MAX: u32 = 64;
    /// Number of possible CPUs (`nr_cpu_ids`), for `skb_attempt_defer_free`'s range check.
    NR_CPU_IDS: u32 = 4096;
    /// `offsetof(struct per_cpu_pages, count)` from BTF: the PCP batch hooks count pages
    /// by how `pcp->count` moves across the call.
    PCP_COUNT_OFF: u32 = ABSENT;
    /// 1 with `--tasks`: keys carry the thread id and `TASKS` names the threads.
    TASKS_ON: u32 = 0;
    /// 1 when `CPU_FILTER` restricts which CPUs are recorded.
    CPU_FILTER_ON: u32 = 0;
}

#[inline(always)]
pub fn get(g: &Global<u32>) -> u32 {
    g.load()
}

#[inline(always)]
pub fn get64(g: &Global<u64>) -> u64 {
    g.load()
}
