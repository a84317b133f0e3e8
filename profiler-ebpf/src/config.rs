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
    /// 1 when `CPU_FILTER` restricts which CPUs are recorded.
    CPU_FILTER_ON: u32 = 0;
}

#[inline(always)]
pub fn get(g: &Global<u32>) -> u32 {
    g.load()
}
