//! Lock-wait accounting from `lock:contention_begin` / `lock:contention_end`.
//!
//! Spin waits (qspinlock, rwlock) cannot migrate, so they live on a per-CPU stack: an IRQ
//! that spins while a task spins pushes a second frame. Each frame's nested time is
//! subtracted from its parent so a nanosecond is counted once. Sleeping locks (mutex,
//! rwsem, rt, percpu-rwsem) are keyed by thread id because the waiter may wake elsewhere;
//! a mutex emits a second `contention_begin` when optimistic spinning gives up, which keeps
//! the first start time.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    programs::tracing::StackIdContext,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use profiler_common::{
    HistKey, LockKey, SpinEnd, TaskWait, ZoneInfo, counter, hist_bucket, lock_flags,
};

use crate::{
    config, helpers,
    maps::{self, BPF_ANY, BPF_NOEXIST},
    task,
};

const EEXIST: i32 = 17;

#[inline(always)]
fn is_spin(flags: u32) -> bool {
    flags & lock_flags::SPIN != 0
        && flags & (lock_flags::MUTEX | lock_flags::RT | lock_flags::PERCPU) == 0
}

#[inline(always)]
fn tid() -> u32 {
    // Lower 32 bits are the thread id.
    bpf_get_current_pid_tgid() as u32
}

/// Captures the waiter's kernel stack. Done at begin, not end: `contention_end` runs with
/// the lock already held, so the few microseconds of unwinding there would lengthen every
/// critical section and inflate the very waits being measured. At begin the waiter would
/// only spin.
#[inline(always)]
fn capture_stack<C: StackIdContext>(ctx: &C) -> i32 {
    match ctx.get_stackid(&maps::STACKS, 0) {
        Ok(id) => id as i32,
        Err(e) => {
            maps::count(
                if e == -EEXIST {
                    counter::STACK_COLLISION
                } else {
                    counter::STACK_ERROR
                },
                1,
            );
            e
        }
    }
}

/// `contention_begin(lock, flags)`, from either tracepoint form.
pub fn on_begin<C: StackIdContext>(ctx: &C, lock: u64, flags: u32) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    maps::count(counter::CONTENTION_BEGIN, 1);
    // The wait starts now; the stack capture below is part of it, as in `perf lock`.
    let now = helpers::now_ns();

    // What contention_end would otherwise look up with the lock held.
    let flags = flags | zone_mark(lock);
    task::note();

    if is_spin(flags) {
        let stack_id = capture_stack(ctx);
        let Some(st) = maps::SPIN_STACK.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: per-CPU slot, preemption is off; a program nesting here (NMI) is
        // refused by the kernel's recursion guard, so no one else touches the slot.
        let st = unsafe { &mut *st };
        // Only an outermost spin can be part of a sleeping wait of the same task.
        let flags = if st.depth == 0 && maps::TASK_WAIT.get_ptr(tid()).is_some() {
            flags | lock_flags::ZP_IN_SLEEP_WAIT
        } else {
            flags
        };
        if !st.push(lock, now, flags, stack_id) {
            maps::count(counter::NEST_OVERFLOW, 1);
        }
        return;
    }

    let tid = tid();
    if let Some(w) = maps::TASK_WAIT.get_ptr_mut(tid) {
        // SAFETY: only this thread writes its own entry.
        let w = unsafe { &mut *w };
        if w.lock_addr == lock {
            // Mutex: optimistic spin failed, now it sleeps. Same wait, keep its start
            // and its stack.
            w.flags |= flags;
            return;
        }
        maps::count(counter::BEGIN_WITHOUT_END, 1);
    }
    let w = TaskWait {
        lock_addr: lock,
        start_ns: now,
        nested_ns: 0,
        flags,
        stack_id: capture_stack(ctx),
    };
    if maps::TASK_WAIT.insert(tid, w, BPF_ANY).is_err() {
        maps::count(counter::TASK_MAP_FULL, 1);
    }
}

/// `contention_end(lock, ret)`, from either tracepoint form. Runs with the lock held:
/// keep it short.
pub fn on_end(lock: u64) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    maps::count(counter::CONTENTION_END, 1);
    let now = helpers::now_ns();

    if let Some(e) = end_spin(lock, now) {
        record(lock, cpu, e.wait_ns, e.flags, e.stack_id);
        return;
    }
    let tid = tid();
    if let Some(w) = maps::TASK_WAIT.get_ptr(tid) {
        // SAFETY: only this thread writes its own entry.
        let w = unsafe { *w };
        if w.lock_addr == lock {
            // Gone already only if a nested program ended the same wait: nothing to undo.
            maps::TASK_WAIT.remove(tid).ok();
            let elapsed = now.saturating_sub(w.start_ns);
            record(
                lock,
                cpu,
                elapsed.saturating_sub(w.nested_ns),
                w.flags,
                w.stack_id,
            );
            return;
        }
    }
    maps::count(counter::END_WITHOUT_BEGIN, 1);
}

/// Pops the spin frame of `lock` from this CPU's stack.
/// The nesting arithmetic lives in `SpinStack::pop` (profiler-common), tested on the host.
#[inline(always)]
fn end_spin(lock: u64, now: u64) -> Option<SpinEnd> {
    let st = maps::SPIN_STACK.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, preemption is off.
    let st = unsafe { &mut *st };
    let e = st.pop(lock, now)?;
    if e.lost > 0 {
        maps::count(counter::BEGIN_WITHOUT_END, e.lost as u64);
    }
    if e.outermost && e.flags & lock_flags::ZP_IN_SLEEP_WAIT != 0 {
        add_nested_to_task(e.elapsed_ns);
    }
    Some(e)
}

/// An outermost spin inside a sleeping-lock wait (e.g. a mutex's wait_lock) is part of
/// that wait's time: mark it nested so it is not counted twice.
#[inline(always)]
fn add_nested_to_task(elapsed: u64) {
    let tid = tid();
    if let Some(w) = maps::TASK_WAIT.get_ptr_mut(tid) {
        // SAFETY: only this thread (or an IRQ on its CPU) touches its entry.
        unsafe { (*w).nested_ns += elapsed };
    }
}

fn record(lock: u64, cpu: u32, wait: u64, marked: u32, stack_id: i32) {
    maps::count(counter::TOTAL_WAIT_NS, wait);
    let flags = marked & !lock_flags::ZP_MASK;
    let key = LockKey {
        lock_addr: lock,
        stack_id,
        cpu,
        tid: task::key_tid(),
        _pad: 0,
    };
    match maps::get_or_insert_zeroed(&maps::LOCK_STATS, &key) {
        Some(v) => {
            // SAFETY: the key holds this CPU and preemption is off: no other writer.
            let v = unsafe { &mut *v };
            v.count += 1;
            v.total_ns += wait;
            if wait > v.max_ns {
                v.max_ns = wait;
            }
            v.flags |= flags;
        }
        None => {
            maps::count(counter::LOCK_MAP_FULL, 1);
            maps::count(counter::LOST_WAIT_NS, wait);
        }
    }

    let hk = HistKey {
        stack_id,
        bucket: hist_bucket(wait),
    };
    match maps::get_or_insert_zeroed(&maps::WAIT_HIST, &hk) {
        // SAFETY: the entry is shared between CPUs: add atomically.
        Some(p) => unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1);
        },
        None => maps::count(counter::HIST_MAP_FULL, 1),
    }

    if marked & lock_flags::ZP_ZONE != 0 {
        maps::count(counter::ZONE_WAIT_NS, wait);
        maps::count(counter::ZONE_CONTENTIONS, 1);
    }
}

/// `ZP_ZONE` when `lock` is a zone lock (checked once per address, then cached).
#[inline(always)]
fn zone_mark(lock: u64) -> u32 {
    match zone_of(lock) {
        Some(z) if z.is_zone != 0 => lock_flags::ZP_ZONE,
        _ => 0,
    }
}

/// Is `lock` the `lock` member of a `struct zone`? Checked once per address: the zone's
/// `zone_pgdat` must point at a node whose `node_zones[]` holds this very zone.
pub fn zone_of(lock: u64) -> Option<ZoneInfo> {
    if let Some(z) = maps::ZONE_CACHE.get_ptr(lock) {
        // SAFETY: entries are written once and never removed while loaded.
        return Some(unsafe { *z });
    }
    let zone_size = config::get(&config::ZONE_SIZE) as u64;
    if zone_size == 0 {
        return None;
    }
    let info = probe_zone(lock, zone_size).unwrap_or_default();
    if maps::ZONE_CACHE.insert(lock, info, BPF_NOEXIST).is_err() {
        maps::count(counter::ZONE_CACHE_FULL, 1);
    }
    Some(info)
}

#[inline(always)]
fn probe_zone(lock: u64, zone_size: u64) -> Option<ZoneInfo> {
    let zone = lock.checked_sub(config::get(&config::ZONE_LOCK_OFF) as u64)?;
    let pgdat_ptr = zone + config::get(&config::ZONE_PGDAT_OFF) as u64;
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly on a bad one.
    let pgdat: u64 = unsafe { bpf_probe_read_kernel(pgdat_ptr as *const u64) }.ok()?;
    let zones = pgdat.checked_add(config::get(&config::PGDAT_NODE_ZONES_OFF) as u64)?;
    let diff = zone.checked_sub(zones)?;
    if diff % zone_size != 0 {
        return None;
    }
    let idx = diff / zone_size;
    if idx >= config::get(&config::MAX_NR_ZONES) as u64 {
        return None;
    }
    let node_ptr = pgdat + config::get(&config::PGDAT_NODE_ID_OFF) as u64;
    // SAFETY: as above.
    let node: i32 = unsafe { bpf_probe_read_kernel(node_ptr as *const i32) }.ok()?;
    let name_ptr_ptr = zone + config::get(&config::ZONE_NAME_OFF) as u64;
    // SAFETY: as above.
    let name_ptr: u64 = unsafe { bpf_probe_read_kernel(name_ptr_ptr as *const u64) }.ok()?;
    let mut info = ZoneInfo {
        is_zone: 1,
        node: node as u32,
        zone_idx: idx as u32,
        _pad: 0,
        name: [0; 16],
    };
    // SAFETY: as above; the helper NUL-terminates within the buffer. A failed read leaves
    // the name empty, which userspace shows as an unnamed zone.
    unsafe { bpf_probe_read_kernel_str_bytes(name_ptr as *const u8, &mut info.name) }.ok();
    Some(info)
}
