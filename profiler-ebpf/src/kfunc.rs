//! Logic behind the kprobe and fentry forms of the probes, shared by both: entry points in
//! main.rs only extract arguments. Caller attribution walks a short kernel stack for the
//! first frame after the probed function (works for kprobes and for BPF trampolines).
use aya_ebpf::{EbpfContext, helpers::bpf_probe_read_kernel};
use profiler_common::{ABSENT, CallStack, PcpCall, counter};

use crate::{config, helpers, lock, maps};

const STACK_FRAMES: usize = 8;

/// Return address into the caller of the function in range slot `slot`, or 0.
#[inline(always)]
pub fn caller_of<C: EbpfContext>(ctx: &C, slot: u32) -> u64 {
    let Some(r) = maps::FUNC_RANGES.get(slot) else {
        return 0;
    };
    if r.start == 0 {
        return 0;
    }
    let mut buf = [0u64; STACK_FRAMES];
    // SAFETY: buf is a local of the size passed; flags 0 = kernel stack.
    let n = unsafe {
        aya_ebpf::helpers::generated::bpf_get_stack(
            ctx.as_ptr(),
            buf.as_mut_ptr().cast(),
            (STACK_FRAMES * 8) as u32,
            0,
        )
    };
    if n <= 0 {
        return 0;
    }
    let frames = (n as usize / 8).min(STACK_FRAMES);
    let mut i = 0;
    while i + 1 < STACK_FRAMES {
        if i + 1 < frames && buf[i] >= r.start && buf[i] < r.end {
            return buf[i + 1];
        }
        i += 1;
    }
    0
}

/// `skb_attempt_defer_free(skb)` entry: the outcome is decided by where the skb was
/// allocated, as the kernel decides it (same CPU, offline or out of range, or deferral
/// disabled: freed at once; else queued to the allocating CPU's list).
#[inline(always)]
pub fn on_defer_free(skb: u64, caller: u64) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    maps::count(counter::DEFER_CALLS, 1);
    let off = config::get(&config::SKB_ALLOC_CPU_OFF);
    let alloc = if off == ABSENT {
        None
    } else {
        // SAFETY: bpf_probe_read_kernel validates the address.
        unsafe { bpf_probe_read_kernel((skb + off as u64) as *const u16) }
            .ok()
            .map(u32::from)
    };
    let queued = match alloc {
        Some(a) => {
            a != cpu
                && a < config::get(&config::NR_CPU_IDS)
                && matches!(maps::CPU_ONLINE.get(a), Some(v) if *v != 0)
                && config::get(&config::SKB_DEFER_MAX) != 0
        }
        None => false,
    };
    maps::count(
        if queued {
            counter::DEFER_QUEUED
        } else {
            counter::DEFER_LOCAL
        },
        1,
    );
    // Freed at once: a free on this CPU. Queued: freed later on the allocating CPU.
    crate::skb::on_free(
        skb,
        profiler_common::skb_func::ATTEMPT_DEFER_FREE,
        caller,
        !queued,
    );
}

// PCP batch hooks. They run outside `zone->lock` (the functions take and release it
// inside), once per call instead of once per page like the `kmem:` tracepoints, which
// fire with the lock held. Pages are counted from how `pcp->count` moves across the call:
// the caller holds the PCP list's lock (or has IRQs off, before 6.0), so nothing else
// changes it in between.

/// What an exit learns its pages from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// `__rmqueue_pcplist(zone, order, mt, flags, pcp, list)` returns the page it took:
    /// refilled = count after - count before + the page taken.
    PcpList,
    /// `rmqueue_bulk(zone, order, count, list, mt, flags)` returns the blocks it took.
    Bulk,
}

/// `pcp->count`, or None when the offset is unknown or the read fails.
#[inline(always)]
fn pcp_count(pcp: u64) -> Option<i32> {
    let off = config::get(&config::PCP_COUNT_OFF);
    if pcp == 0 || off == ABSENT {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel validates the address.
    unsafe { bpf_probe_read_kernel((pcp + off as u64) as *const i32) }.ok()
}

#[inline(always)]
fn push(stack: &aya_ebpf::maps::PerCpuArray<CallStack>, call: PcpCall, unmatched: u32) {
    let Some(st) = stack.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot; these functions run with preemption off (PCP lock held).
    if !unsafe { &mut *st }.push(call) {
        maps::count(unmatched, 1);
    }
}

#[inline(always)]
fn pop(stack: &aya_ebpf::maps::PerCpuArray<CallStack>, unmatched: u32) -> Option<PcpCall> {
    let st = stack.get_ptr_mut(0)?;
    // SAFETY: as in `push`.
    let call = unsafe { &mut *st }.pop();
    if call.is_none() {
        maps::count(unmatched, 1);
    }
    call
}

/// Entry of `__rmqueue_pcplist` (`pcp` given) or `rmqueue_bulk` (`pcp` 0): time the PCP
/// allocation slow path, learn the zone, note the list's count.
#[inline(always)]
pub fn on_rmqueue_entry(zone: u64, order: u32, pcp: u64) {
    let (cpu, now) = (helpers::cpu(), helpers::now_ns());
    if !maps::cpu_selected(cpu) {
        return;
    }
    learn_zone(zone);
    let call = PcpCall {
        start_ns: now,
        pcp,
        count: pcp_count(pcp).unwrap_or(-1),
        order,
    };
    push(&maps::RMQ_STACK, call, counter::RMQUEUE_UNMATCHED);
}

/// Exit of the function `on_rmqueue_entry` saw; `ret` is its return value.
#[inline(always)]
pub fn on_rmqueue_exit(ret: u64, how: Refill) {
    let (cpu, now) = (helpers::cpu(), helpers::now_ns());
    if !maps::cpu_selected(cpu) {
        return;
    }
    let Some(call) = pop(&maps::RMQ_STACK, counter::RMQUEUE_UNMATCHED) else {
        return;
    };
    maps::count(counter::RMQUEUE_CALLS, 1);
    maps::count(counter::RMQUEUE_NS, now.saturating_sub(call.start_ns));
    let block = 1i64 << (call.order & 31);
    let pages = match how {
        // The return value is an int: its low 32 bits.
        Refill::Bulk => i64::from(ret as i32) * block,
        Refill::PcpList => {
            let Some(after) = pcp_count(call.pcp).filter(|_| call.count >= 0) else {
                maps::count(counter::PCP_COUNT_ERRORS, 1);
                return;
            };
            let taken = if ret != 0 { block } else { 0 };
            i64::from(after) - i64::from(call.count) + taken
        }
    };
    if pages > 0 {
        maps::count(counter::REFILL_BATCHES, 1);
        maps::count(counter::REFILL_BATCH_PAGES, pages as u64);
    } else if pages < 0 {
        maps::count(counter::PCP_COUNT_ERRORS, 1);
    }
}

/// `free_pcppages_bulk(zone, count, pcp[, pindex])` entry, before it takes `zone->lock`:
/// note the list's count; the exit counts what left it (exact, whatever the orders, where
/// `min(count, pcp->count)` can be a few pages short of a high-order block).
#[inline(always)]
pub fn on_free_bulk_entry(zone: u64, pcp: u64) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    learn_zone(zone);
    let call = PcpCall {
        start_ns: 0,
        pcp,
        count: pcp_count(pcp).unwrap_or(-1),
        order: 0,
    };
    push(&maps::BULK_STACK, call, counter::BULK_FREE_UNMATCHED);
}

/// `free_pcppages_bulk` exit, after `zone->lock` was released.
#[inline(always)]
pub fn on_free_bulk_exit() {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    let Some(call) = pop(&maps::BULK_STACK, counter::BULK_FREE_UNMATCHED) else {
        return;
    };
    maps::count(counter::BULK_FREE_CALLS, 1);
    match pcp_count(call.pcp).filter(|_| call.count >= 0) {
        Some(after) if after <= call.count => {
            maps::count(counter::BULK_FREE_PAGES, (call.count - after) as u64);
        }
        _ => maps::count(counter::PCP_COUNT_ERRORS, 1),
    }
}

/// A `struct zone *` argument names a zone lock: cache its label.
#[inline(always)]
fn learn_zone(zone: u64) {
    if zone != 0 {
        let _ = lock::zone_of(zone + config::get(&config::ZONE_LOCK_OFF) as u64);
    }
}
