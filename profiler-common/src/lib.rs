//! Types shared by the eBPF programs and the userspace loader.
//!
//! Every type is `#[repr(C)]` with explicit padding so both sides agree on the layout
//! byte for byte; sizes are checked at compile time at the bottom of this file.
#![no_std]

/// Depth of the per-CPU stack of spin waits in progress. A spin wait can be interrupted by
/// an IRQ, softirq or NMI handler that spins on another lock, so waits nest on one CPU.
pub const MAX_SPIN_NEST: usize = 4;

/// Entries of the per-(stack, CPU, lock) wait map.
pub const LOCK_STATS_ENTRIES: u32 = 16384;
/// Entries of the stack-trace map (stack ids collide when it is close to full).
pub const STACK_ENTRIES: u32 = 16384;
/// Entries of the per-(stack, bucket) wait histogram map.
pub const HIST_ENTRIES: u32 = 32768;
/// Tasks that can wait on sleeping locks at once.
pub const TASK_WAIT_ENTRIES: u32 = 16384;
/// Distinct lock addresses checked for being a `struct zone` lock.
pub const ZONE_CACHE_ENTRIES: u32 = 4096;
/// Highest CPU number + 1 the CPU filter can express.
pub const MAX_CPUS: u32 = 4096;
/// Log2 buckets of the wait and page-lifetime histograms: bucket b holds values in
/// [2^b, 2^(b+1)) ns, except that bucket 0 also holds 0 and the last bucket holds
/// everything from 2^(HIST_BUCKETS-1) ns (about 9 minutes) up. See [`hist_bucket`].
pub const HIST_BUCKETS: u32 = 40;

/// The log2 histogram bucket of `v` (floor(log2 v), 0 for 0, capped at the last bucket).
/// Branch-free apart from the cap, so the verifier sees no loop.
#[inline(always)]
pub const fn hist_bucket(v: u64) -> u32 {
    // `| 1` makes 0 land in bucket 0 with 1, instead of leading_zeros() == 64.
    let b = 63 - (v | 1).leading_zeros();
    if b < HIST_BUCKETS {
        b
    } else {
        HIST_BUCKETS - 1
    }
}

/// `lock:contention_begin` flags (include/trace/events/lock.h).
pub mod lock_flags {
    pub const SPIN: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
    pub const RT: u32 = 1 << 3;
    pub const PERCPU: u32 = 1 << 4;
    pub const MUTEX: u32 = 1 << 5;
    /// zoneprof's own marks, set at begin so that `contention_end` (which runs with the lock
    /// held) has less to look up; never stored in `LockVal::flags`.
    /// The lock is a `zone->lock`.
    pub const ZP_ZONE: u32 = 1 << 31;
    /// The waiting task was inside a sleeping-lock wait when this spin began.
    pub const ZP_IN_SLEEP_WAIT: u32 = 1 << 30;
    pub const ZP_MASK: u32 = ZP_ZONE | ZP_IN_SLEEP_WAIT;
}

/// Indices into the per-CPU `COUNTERS` array: events seen and every way one can be lost.
pub mod counter {
    /// `lock:contention_begin` events handled.
    pub const CONTENTION_BEGIN: u32 = 0;
    /// `lock:contention_end` events handled.
    pub const CONTENTION_END: u32 = 1;
    /// An end whose begin was not seen (it started before attach, or was dropped).
    pub const END_WITHOUT_BEGIN: u32 = 2;
    /// A begin dropped because the per-CPU spin stack was full.
    pub const NEST_OVERFLOW: u32 = 3;
    /// Begins whose end never came (overwritten or popped past).
    pub const BEGIN_WITHOUT_END: u32 = 4;
    /// `bpf_get_stackid` returned -EEXIST: another stack owns the bucket.
    pub const STACK_COLLISION: u32 = 5;
    /// `bpf_get_stackid` failed for another reason.
    pub const STACK_ERROR: u32 = 6;
    /// Lock-wait map full: the wait is still summed in `LOST_WAIT_NS`.
    pub const LOCK_MAP_FULL: u32 = 7;
    /// Wait nanoseconds that could not be stored per stack (map full).
    pub const LOST_WAIT_NS: u32 = 8;
    /// Histogram map full.
    pub const HIST_MAP_FULL: u32 = 9;
    /// Sleeping-lock task map full: that wait was not measured.
    pub const TASK_MAP_FULL: u32 = 10;
    /// Zone-address cache full: lock not checked for being a zone lock.
    pub const ZONE_CACHE_FULL: u32 = 11;
    /// Wait nanoseconds on locks proven (by address) to be a `zone->lock`.
    pub const ZONE_WAIT_NS: u32 = 12;
    /// Contentions on locks proven to be a `zone->lock`.
    pub const ZONE_CONTENTIONS: u32 = 13;
    /// Total wait nanoseconds on every lock (exclusive of nested waits).
    pub const TOTAL_WAIT_NS: u32 = 14;
    /// Page-tracepoint reads that failed.
    pub const PAGE_READ_ERROR: u32 = 15;
    /// SKB frees handled (all free functions).
    pub const SKB_FREES: u32 = 16;
    /// SKB frees whose `alloc_cpu` could not be read.
    pub const SKB_READ_ERROR: u32 = 17;
    /// SKB matrix or site map full: that free is only in `SKB_FREES`.
    pub const SKB_MAP_FULL: u32 = 18;
    /// IPIs sent to kick another CPU's deferred-SKB flush.
    pub const SKB_DEFER_IPIS: u32 = 19;
    /// Tracked page allocations dropped: page-tracking map full.
    pub const PAGE_TRACK_FULL: u32 = 20;
    /// Page-flow matrix map full.
    pub const PAGE_MATRIX_FULL: u32 = 21;
    /// `skb_attempt_defer_free` calls, and their outcome decided at entry: queued to the
    /// allocating CPU (it is another, online CPU) or freed at once (local).
    pub const DEFER_CALLS: u32 = 22;
    pub const DEFER_QUEUED: u32 = 23;
    pub const DEFER_LOCAL: u32 = 24;
    /// `__rmqueue_pcplist` (or `rmqueue_bulk`) calls and time spent in them.
    pub const RMQUEUE_CALLS: u32 = 25;
    pub const RMQUEUE_NS: u32 = 26;
    /// `free_pcppages_bulk` calls (PCP drains) and the pages they freed (`pcp->count` at
    /// entry minus at exit; the entry's `count` argument where no exit program runs).
    pub const BULK_FREE_CALLS: u32 = 27;
    pub const BULK_FREE_PAGES: u32 = 28;
    /// `__rmqueue_pcplist` exits without a matching entry (or nesting too deep).
    pub const RMQUEUE_UNMATCHED: u32 = 29;
    /// Pages refilled into a PCP list, counted per batch outside `zone->lock`
    /// (`rmqueue_bulk`'s return value, or `pcp->count` across `__rmqueue_pcplist`), and
    /// the calls that refilled.
    pub const REFILL_BATCH_PAGES: u32 = 30;
    pub const REFILL_BATCHES: u32 = 31;
    /// `free_pcppages_bulk` exits without a matching entry.
    pub const BULK_FREE_UNMATCHED: u32 = 32;
    /// `pcp->count` unreadable, or a batch whose count moved the wrong way: not counted.
    pub const PCP_COUNT_ERRORS: u32 = 33;
    /// Task-name map full (`--tasks`): that task's waits and frees are still counted under
    /// its thread id, without its name, process or cgroup.
    pub const TASK_INFO_FULL: u32 = 34;
    pub const COUNT: u32 = 35;
}

/// Key of the in-kernel lock-wait aggregation: one entry per (lock, stack, CPU, task).
/// The CPU in the key also means no two CPUs update one entry at the same time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LockKey {
    pub lock_addr: u64,
    /// Kernel stack id in `STACKS`, or negative errno when the stack could not be taken.
    pub stack_id: i32,
    pub cpu: u32,
    /// Thread id of the waiter with `--tasks`, else [`NO_TASK`]. In the key rather than in
    /// a second map: `contention_end` runs with the lock held, and one update there (a
    /// few bytes more to hash) costs less than two.
    pub tid: u32,
    pub _pad: u32,
}

/// `tid` of keys recorded without `--tasks`.
pub const NO_TASK: u32 = u32::MAX;

/// Entries of the task-name map (`--tasks`): threads seen waiting or freeing SKBs.
pub const TASK_INFO_ENTRIES: u32 = 16384;

/// Who a thread id was when zoneprof first saw it wait or free an SKB (`--tasks`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskInfo {
    /// Process (thread group) id.
    pub tgid: u32,
    pub _pad: u32,
    /// cgroup v2 id (the inode number of its directory in the cgroup2 mount).
    pub cgroup_id: u64,
    /// `comm`, NUL-padded.
    pub comm: [u8; 16],
}

/// Wait statistics of one [`LockKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockVal {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Union of the `contention_begin` flags seen (lock type).
    pub flags: u32,
    pub _pad: u32,
}

/// Key of the wait histogram: (stack, log2 bucket). Userspace merges stacks into classes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HistKey {
    pub stack_id: i32,
    pub bucket: u32,
}

/// One spin wait in progress on a CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinFrame {
    pub lock_addr: u64,
    pub start_ns: u64,
    /// Time spent in waits nested inside this one; subtracted so nothing counts twice.
    pub nested_ns: u64,
    pub flags: u32,
    /// Kernel stack captured when the wait began (or a negative error).
    pub stack_id: i32,
}

/// Per-CPU stack of spin waits in progress.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinStack {
    pub depth: u32,
    pub _pad: u32,
    pub frames: [SpinFrame; MAX_SPIN_NEST],
}

/// A spin wait that ended: its own (exclusive) wait, and what the caller must account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpinEnd {
    /// Wait minus the waits nested inside it.
    pub wait_ns: u64,
    pub flags: u32,
    pub stack_id: i32,
    /// Whole elapsed time; when `outermost`, the caller adds it to an enclosing sleeping
    /// wait of the same task (a mutex's wait_lock spin is part of the mutex wait).
    pub elapsed_ns: u64,
    pub outermost: bool,
    /// Frames above the match whose end never came (dropped).
    pub lost: u32,
}

/// The nesting logic, shared by the eBPF programs and host tests. Written for the
/// verifier: bounded loops, no indexing that could panic.
impl SpinStack {
    /// Pushes a wait; false when the stack is full (the wait is not measured).
    #[inline(always)]
    pub fn push(&mut self, lock_addr: u64, now: u64, flags: u32, stack_id: i32) -> bool {
        let depth = self.depth as usize;
        match self.frames.get_mut(depth) {
            Some(f) => {
                *f = SpinFrame {
                    lock_addr,
                    start_ns: now,
                    nested_ns: 0,
                    flags,
                    stack_id,
                };
                self.depth = depth as u32 + 1;
                true
            }
            None => false,
        }
    }

    /// Ends the innermost wait on `lock_addr`: frames above it lost their end and are
    /// dropped; its elapsed time is added to its parent's nested time.
    #[inline(always)]
    pub fn pop(&mut self, lock_addr: u64, now: u64) -> Option<SpinEnd> {
        let depth = (self.depth as usize).min(MAX_SPIN_NEST);
        let mut i = MAX_SPIN_NEST;
        while i > 0 {
            i -= 1;
            if i >= depth {
                continue;
            }
            let Some(f) = self.frames.get(i).copied() else {
                continue;
            };
            if f.lock_addr != lock_addr {
                continue;
            }
            let elapsed = now.saturating_sub(f.start_ns);
            self.depth = i as u32;
            let outermost = i == 0;
            if let Some(parent) = i.checked_sub(1).and_then(|p| self.frames.get_mut(p)) {
                parent.nested_ns += elapsed;
            }
            return Some(SpinEnd {
                wait_ns: elapsed.saturating_sub(f.nested_ns),
                flags: f.flags,
                stack_id: f.stack_id,
                elapsed_ns: elapsed,
                outermost,
                lost: (depth - 1 - i) as u32,
            });
        }
        None
    }
}

/// A sleeping-lock wait in progress, keyed by thread id (the task can migrate while asleep).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskWait {
    pub lock_addr: u64,
    pub start_ns: u64,
    pub nested_ns: u64,
    pub flags: u32,
    /// Kernel stack captured when the wait began (or a negative error).
    pub stack_id: i32,
}

/// What the eBPF side learnt about a contended lock address: is it a `zone->lock`?
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneInfo {
    /// 1 when `lock_addr - offsetof(zone, lock)` is `node_zones[i]` of its own pgdat.
    pub is_zone: u32,
    pub node: u32,
    /// Index in `pgdat->node_zones[]`.
    pub zone_idx: u32,
    pub _pad: u32,
    /// `zone->name`, NUL-padded.
    pub name: [u8; 16],
}

/// Per-CPU page-allocator counters from the `kmem:` tracepoints.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounters {
    /// `mm_page_alloc_zone_locked` with `percpu_refill` set: blocks moved buddy -> PCP list.
    pub refill_events: u64,
    /// Same, in base pages (sum of 2^order).
    pub refill_pages: u64,
    /// `mm_page_alloc_zone_locked` without `percpu_refill`: direct buddy allocations.
    pub buddy_events: u64,
    pub buddy_pages: u64,
    /// `mm_page_pcpu_drain`: blocks moved PCP list -> buddy.
    pub drain_events: u64,
    pub drain_pages: u64,
}

/// Entries of the SKB alloc-CPU x free-CPU map (sparse: only pairs that occur).
pub const SKB_MATRIX_ENTRIES: u32 = 65536;
/// Entries of the SKB free-site map: (function, call site, CPU).
pub const SKB_SITE_ENTRIES: u32 = 16384;
/// Pages tracked between allocation and free at once (sampled).
pub const PAGE_TRACK_ENTRIES: u32 = 262144;
/// Entries of the page alloc-CPU x free-CPU map.
pub const PAGE_MATRIX_ENTRIES: u32 = 65536;
/// Page orders counted (0..=10 on x86 with MAX_PAGE_ORDER 10).
pub const PAGE_ORDERS: u32 = 11;
/// `skb->alloc_cpu` unknown (field absent before 5.19, or read failed).
pub const NO_CPU: u32 = u32::MAX;

/// SKB free functions, as recorded in [`SkbSiteKey::func`].
pub mod skb_func {
    pub const CONSUME_SKB: u32 = 0;
    pub const KFREE_SKB: u32 = 1;
    pub const ATTEMPT_DEFER_FREE: u32 = 2;
    pub const NAMES: [&str; 3] = ["consume_skb", "kfree_skb", "skb_attempt_defer_free"];
}

/// Function ranges for finding a probed function's caller in a captured stack: slots of
/// the `FUNC_RANGES` array.
pub mod func_slot {
    pub const CONSUME_SKB: u32 = 0;
    pub const KFREE_SKB: u32 = 1;
    pub const DEFER_FREE: u32 = 2;
    pub const COUNT: u32 = 4;
}

/// `[start, end)` of a kernel function.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuncRange {
    pub start: u64,
    pub end: u64,
}

/// One call of a PCP batch function (`__rmqueue_pcplist`, `rmqueue_bulk`,
/// `free_pcppages_bulk`) in progress on a CPU: what its exit needs from its entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcpCall {
    pub start_ns: u64,
    /// The `struct per_cpu_pages *` argument; 0 when the function has none.
    pub pcp: u64,
    /// `pcp->count` at entry (pages on the CPU's lists); -1 when unknown.
    pub count: i32,
    pub order: u32,
}

/// Calls in progress on one CPU, innermost last. They nest only when an interrupt
/// allocates or frees inside one, which is rare; deeper nesting is counted, not followed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CallStack {
    pub depth: u32,
    pub _pad: u32,
    pub frames: [PcpCall; MAX_SPIN_NEST],
}

const _: () = assert!(MAX_SPIN_NEST.is_power_of_two());

impl CallStack {
    /// Pushes a call. A full stack means entries whose exits never came (an exit program
    /// missed them): they are dropped and the call starts a fresh stack; false then, so
    /// the caller counts the loss.
    #[inline(always)]
    pub fn push(&mut self, call: PcpCall) -> bool {
        let mut d = self.depth;
        let fresh = d as usize >= MAX_SPIN_NEST;
        if fresh {
            d = 0;
        }
        // The slot is masked, not range-checked, so the verifier sees a bounded index
        // whatever the compiler makes of the check (`get(d)` was rejected as "unbounded
        // memory access" on 6.1 and 6.12).
        let i = (d as usize) & (MAX_SPIN_NEST - 1);
        self.frames[i] = call;
        self.depth = d + 1;
        !fresh
    }

    /// Pops the innermost call; None when there is none (its entry was not seen).
    #[inline(always)]
    pub fn pop(&mut self) -> Option<PcpCall> {
        let d = self.depth;
        let i = (d.wrapping_sub(1) as usize) & (MAX_SPIN_NEST - 1);
        let call = self.frames[i];
        if d == 0 || d as usize > MAX_SPIN_NEST {
            return None;
        }
        self.depth = d - 1;
        Some(call)
    }
}

/// SKBs allocated on `alloc_cpu` and freed on `free_cpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuPairKey {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
}

/// An SKB free site: free function, its call site, and the freeing CPU (which also keeps
/// CPUs from updating one entry concurrently).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SkbSiteKey {
    /// Return address into the caller (`location` of the skb tracepoints).
    pub location: u64,
    pub func: u32,
    pub cpu: u32,
    /// Thread id of the freeing task with `--tasks`, else [`NO_TASK`].
    pub tid: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbSiteVal {
    pub count: u64,
    /// alloc CPU != free CPU.
    pub remote: u64,
    /// alloc CPU on another NUMA node than the free CPU.
    pub cross_node: u64,
    /// `alloc_cpu` unknown.
    pub unknown: u64,
}

/// A sampled page between allocation and free.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageAlloc {
    pub ts_ns: u64,
    pub cpu: u32,
    pub order: u32,
}

/// Offsets the eBPF programs need, learnt at run time (tracefs formats, BTF).
/// `u32::MAX` marks a field the kernel does not have.
pub const ABSENT: u32 = u32::MAX;

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all of these are plain-old-data `#[repr(C)]` structs with explicit padding
    // and no pointers, so any byte pattern the kernel hands back is a valid value.
    unsafe impl aya::Pod for LockKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for LockVal {}
    // SAFETY: as above.
    unsafe impl aya::Pod for HistKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ZoneInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PageCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for CpuPairKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SkbSiteKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SkbSiteVal {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PageAlloc {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FuncRange {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PcpCall {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TaskInfo {}
}

const _: () = {
    assert!(core::mem::size_of::<LockKey>() == 24);
    assert!(core::mem::size_of::<TaskInfo>() == 32);
    assert!(core::mem::size_of::<LockVal>() == 32);
    assert!(core::mem::size_of::<HistKey>() == 8);
    assert!(core::mem::size_of::<SpinFrame>() == 32);
    assert!(core::mem::size_of::<SpinStack>() == 8 + 32 * MAX_SPIN_NEST);
    assert!(core::mem::size_of::<TaskWait>() == 32);
    assert!(core::mem::size_of::<ZoneInfo>() == 32);
    assert!(core::mem::size_of::<PageCounters>() == 48);
    assert!(core::mem::size_of::<CpuPairKey>() == 8);
    assert!(core::mem::size_of::<PcpCall>() == 24);
    assert!(core::mem::size_of::<FuncRange>() == 16);
    assert!(core::mem::size_of::<CallStack>() == 8 + 24 * MAX_SPIN_NEST);
    assert!(core::mem::size_of::<SkbSiteKey>() == 24);
    assert!(core::mem::size_of::<SkbSiteVal>() == 32);
    assert!(core::mem::size_of::<PageAlloc>() == 16);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irq_wait_nested_in_a_task_wait_counts_once() {
        let mut st = SpinStack::default();
        assert!(st.push(0xA, 100, lock_flags::SPIN, 7)); // task spins on A
        assert!(st.push(0xB, 150, lock_flags::SPIN, 8)); // IRQ spins on B
        let b = st.pop(0xB, 190).expect("B ends");
        assert_eq!(
            (b.wait_ns, b.outermost, b.lost, b.stack_id),
            (40, false, 0, 8)
        );
        let a = st.pop(0xA, 300).expect("A ends");
        // A waited 200 ns of wall time, 40 of them inside B's wait: 160 + 40 = 200 in all.
        assert_eq!((a.wait_ns, a.elapsed_ns, a.outermost), (160, 200, true));
        assert_eq!(
            a.stack_id, 7,
            "the stack captured at begin comes back at end"
        );
        assert_eq!(st.depth, 0);
    }

    #[test]
    fn lost_ends_are_dropped_and_counted() {
        let mut st = SpinStack::default();
        st.push(0xA, 0, 1, 7);
        st.push(0xB, 10, 1, 7); // its end never comes
        st.push(0xC, 20, 1, 7); // nor this one's
        let a = st.pop(0xA, 100).expect("A ends");
        assert_eq!((a.wait_ns, a.lost, st.depth), (100, 2, 0));
    }

    #[test]
    fn end_without_begin_and_overflow() {
        let mut st = SpinStack::default();
        assert!(st.pop(0xA, 5).is_none());
        for i in 0..MAX_SPIN_NEST as u64 {
            assert!(st.push(i, i, 1, 7));
        }
        assert!(!st.push(99, 99, 1, 7), "full stack refuses");
        assert!(st.pop(99, 100).is_none());
        // A corrupt depth beyond the array never panics.
        st.depth = 1000;
        assert!(st.pop(0, 10).is_some());
    }

    #[test]
    fn three_levels_subtract_only_direct_children() {
        let mut st = SpinStack::default();
        st.push(1, 0, 1, 7); // task
        st.push(2, 10, 1, 7); // softirq
        st.push(3, 20, 1, 7); // hardirq
        assert_eq!(st.pop(3, 30).map(|e| e.wait_ns), Some(10));
        assert_eq!(st.pop(2, 50).map(|e| e.wait_ns), Some(30)); // 40 elapsed - 10 nested
        assert_eq!(st.pop(1, 100).map(|e| e.wait_ns), Some(60)); // 100 - 40
    }

    #[test]
    fn hist_bucket_is_floor_log2_capped() {
        assert_eq!(hist_bucket(0), 0, "0 shares bucket 0 with 1");
        assert_eq!(hist_bucket(1), 0);
        assert_eq!(hist_bucket(2), 1);
        assert_eq!(hist_bucket(3), 1);
        let last = HIST_BUCKETS - 1;
        for b in 1..last {
            // Every bucket below the last holds exactly [2^b, 2^(b+1)).
            assert_eq!(hist_bucket(1 << b), b, "2^{b}");
            assert_eq!(hist_bucket((1 << b) - 1), b - 1, "2^{b} - 1");
            assert_eq!(hist_bucket((1 << (b + 1)) - 1), b, "2^({b}+1) - 1");
        }
        // The last bucket starts at 2^last and takes everything above.
        assert_eq!(hist_bucket((1 << last) - 1), last - 1);
        assert_eq!(hist_bucket(1 << last), last);
        assert_eq!(hist_bucket(1 << (last + 1)), last);
        assert_eq!(hist_bucket(1 << 63), last);
        assert_eq!(hist_bucket(u64::MAX), last);
    }

    #[test]
    fn call_stack_nests_and_refuses_overflow() {
        let call = |n: u64| PcpCall {
            start_ns: n,
            pcp: n * 10,
            count: n as i32,
            order: 0,
        };
        let mut st = CallStack::default();
        assert_eq!(st.pop(), None, "an exit whose entry was not seen");
        for n in 0..MAX_SPIN_NEST as u64 {
            assert!(st.push(call(n)));
        }
        for n in (0..MAX_SPIN_NEST as u64).rev() {
            assert_eq!(st.pop(), Some(call(n)));
        }
        assert_eq!(st.pop(), None);
        // Entries whose exits never came fill it: the next call starts afresh.
        for n in 0..MAX_SPIN_NEST as u64 {
            assert!(st.push(call(n)));
        }
        assert!(!st.push(call(99)), "full: reported as a loss");
        assert_eq!(st.depth, 1);
        assert_eq!(st.pop(), Some(call(99)));
        assert_eq!(st.pop(), None);
        // A corrupt depth is refused, not indexed.
        st.depth = 77;
        assert_eq!(st.pop(), None);
        assert!(!st.push(call(1)));
        assert_eq!(st.pop(), Some(call(1)));
    }
}
