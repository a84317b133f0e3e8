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

/// Contended lock address -> is it a zone lock, and which.
#[map]
pub static ZONE_CACHE: HashMap<u64, ZoneInfo> = HashMap::with_max_entries(ZONE_CACHE_ENTRIES, 0);

/// Event and loss counters, see `profiler_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Page-allocator counters.
#[map]
pub static PAGES: PerCpuArray<PageCounters> = PerCpuArray::with_max_entries(1, 0);

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

/// Whether this CPU is being recorded.
#[inline(always)]
pub fn cpu_selected(cpu: u32) -> bool {
    if crate::config::get(&crate::config::CPU_FILTER_ON) == 0 {
        return true;
    }
    matches!(CPU_FILTER.get(cpu), Some(v) if *v != 0)
}
