//! Maps shared by the programs. Sizes come from `profiler_common`, so userspace can compute
//! their kernel memory for any number of possible CPUs.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, StackTrace},
};
use profiler_common::*;

/// Wait per (lock, stack, CPU).
#[map]
pub static LOCK_STATS: HashMap<LockKey, LockVal> = HashMap::with_max_entries(LOCK_STATS_ENTRIES, 0);

/// Log2 histogram of waits per (stack, bucket); shared by CPUs, updated atomically.
#[map]
pub static WAIT_HIST: HashMap<HistKey, u64> = HashMap::with_max_entries(HIST_ENTRIES, 0);

/// Kernel stacks of contended waits.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(STACK_ENTRIES, 0);

/// Spin waits in progress on each CPU.
#[map]
pub static SPIN_STACK: PerCpuArray<SpinStack> = PerCpuArray::with_max_entries(1, 0);

/// Sleeping-lock waits in progress, by thread id.
#[map]
pub static TASK_WAIT: HashMap<u32, TaskWait> = HashMap::with_max_entries(TASK_WAIT_ENTRIES, 0);

/// Thread id -> process, cgroup and comm, noted at first sight (`--tasks`).
#[map]
pub static TASKS: HashMap<u32, TaskInfo> = HashMap::with_max_entries(TASK_INFO_ENTRIES, 0);

/// Contended lock address -> is it a zone lock, and which.
#[map]
pub static ZONE_CACHE: HashMap<u64, ZoneInfo> = HashMap::with_max_entries(ZONE_CACHE_ENTRIES, 0);

/// Event and loss counters, see `profiler_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Page-allocator counters.
#[map]
pub static PAGES: PerCpuArray<PageCounters> = PerCpuArray::with_max_entries(1, 0);

/// SKB frees per (alloc CPU, free CPU).
#[map]
pub static SKB_MATRIX: HashMap<CpuPairKey, u64> = HashMap::with_max_entries(SKB_MATRIX_ENTRIES, 0);

/// SKB frees per (function, call site, CPU).
#[map]
pub static SKB_SITES: HashMap<SkbSiteKey, SkbSiteVal> =
    HashMap::with_max_entries(SKB_SITE_ENTRIES, 0);

/// Deferred-flush IPIs sent, per sending CPU.
#[map]
pub static SKB_IPIS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// NUMA node of each CPU, filled by userspace, for cross-node counts.
#[map]
pub static CPU_NODE: Array<u32> = Array::with_max_entries(MAX_CPUS, 0);

/// Sampled pages between allocation and free, by pfn.
#[map]
pub static PAGE_TRACK: HashMap<u64, PageAlloc> = HashMap::with_max_entries(PAGE_TRACK_ENTRIES, 0);

/// Sampled pages (base pages) per (alloc CPU, free CPU).
#[map]
pub static PAGE_MATRIX: HashMap<CpuPairKey, u64> =
    HashMap::with_max_entries(PAGE_MATRIX_ENTRIES, 0);

/// Sampled page lifetimes, log2 buckets of ns, in base pages.
#[map]
pub static PAGE_LIFETIME: PerCpuArray<u64> = PerCpuArray::with_max_entries(HIST_BUCKETS, 0);

/// Sampled freed pages by order (blocks).
#[map]
pub static PAGE_ORDER: PerCpuArray<u64> = PerCpuArray::with_max_entries(PAGE_ORDERS, 0);

/// Probed functions' address ranges, to find their caller in a stack.
#[map]
pub static FUNC_RANGES: Array<FuncRange> = Array::with_max_entries(func_slot::COUNT, 0);

/// Online CPUs (1), filled by userspace: `skb_attempt_defer_free` frees at once for offline ones.
#[map]
pub static CPU_ONLINE: Array<u8> = Array::with_max_entries(MAX_CPUS, 0);

/// `__rmqueue_pcplist` / `rmqueue_bulk` calls in progress on each CPU.
#[map]
pub static RMQ_STACK: PerCpuArray<CallStack> = PerCpuArray::with_max_entries(1, 0);

/// `free_pcppages_bulk` calls in progress on each CPU.
#[map]
pub static BULK_STACK: PerCpuArray<CallStack> = PerCpuArray::with_max_entries(1, 0);

/// CPUs to record (1) when `CPU_FILTER_ON` is set.
#[map]
pub static CPU_FILTER: Array<u8> = Array::with_max_entries(MAX_CPUS, 0);

#[inline(always)]
pub fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, and tracepoint programs run with preemption off, so nothing
        // else writes it concurrently.
        unsafe { *p += n };
    }
}

/// `bpf_map_update_elem` flags: insert only when absent, or insert or replace.
pub const BPF_NOEXIST: u64 = aya_ebpf::bindings::BPF_NOEXIST as u64;
pub const BPF_ANY: u64 = aya_ebpf::bindings::BPF_ANY as u64;

/// The entry of `key`, inserted zeroed when absent; None when the map is full.
///
/// The insert is `BPF_NOEXIST` so that it never overwrites an entry another program
/// inserted between the two lookups (a nested program on this CPU, or another CPU for a
/// key they share); the second lookup then finds that entry. Its result is not needed:
/// whatever it did, the second lookup says whether there is an entry.
#[inline(always)]
pub fn get_or_insert_zeroed<K, V: Default>(map: &HashMap<K, V>, key: &K) -> Option<*mut V> {
    if let Some(p) = map.get_ptr_mut(key) {
        return Some(p);
    }
    map.insert(key, V::default(), BPF_NOEXIST).ok();
    map.get_ptr_mut(key)
}

/// Adds `n` to a per-CPU slot.
#[inline(always)]
pub fn add_percpu(map: &PerCpuArray<u64>, idx: u32, n: u64) {
    if let Some(p) = map.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, preemption is off in tracing programs.
        unsafe { *p += n };
    }
}

/// Adds `n` to a hash entry keyed by something that includes this CPU, so that no other
/// CPU writes it; inserts it when new. Returns false when the map is full.
#[inline(always)]
pub fn add_keyed<K>(map: &HashMap<K, u64>, key: &K, n: u64) -> bool {
    let Some(p) = get_or_insert_zeroed(map, key) else {
        return false;
    };
    // SAFETY: the key holds this CPU; preemption is off.
    unsafe { *p += n };
    true
}

/// NUMA node of `cpu` (0 when unknown).
#[inline(always)]
pub fn node_of(cpu: u32) -> u32 {
    CPU_NODE.get(cpu).copied().unwrap_or(0)
}

/// Whether this CPU is being recorded.
#[inline(always)]
pub fn cpu_selected(cpu: u32) -> bool {
    if crate::config::get(&crate::config::CPU_FILTER_ON) == 0 {
        return true;
    }
    matches!(CPU_FILTER.get(cpu), Some(v) if *v != 0)
}
