//! PCP refill / drain counters from the `kmem:` tracepoints: one event per block of
//! 2^order pages, on the CPU whose list is refilled or drained.
use aya_ebpf::{helpers::bpf_get_smp_processor_id, programs::TracePointContext};
use profiler_common::{ABSENT, counter};

use crate::{config, maps};

#[inline(always)]
fn read_u32(ctx: &TracePointContext, off: u32) -> Option<u32> {
    // SAFETY: `off` comes from this tracepoint's format file, so it lies inside the record.
    unsafe { ctx.read_at::<u32>(off as usize) }.ok()
}

pub fn on_alloc_zone_locked(ctx: &TracePointContext) {
    // SAFETY: helper with no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if !maps::cpu_selected(cpu) {
        return;
    }
    let Some(order) = read_u32(ctx, config::get(&config::PA_ORDER_OFF)) else {
        maps::count(counter::PAGE_READ_ERROR, 1);
        return;
    };
    let refill_off = config::get(&config::PA_REFILL_OFF);
    // Before 5.19 `percpu_refill` was not a field; the kernel printed `order == 0` for it.
    let refill = if refill_off == ABSENT {
        order == 0
    } else {
        matches!(read_u32(ctx, refill_off), Some(v) if v != 0)
    };
    let pages = 1u64 << (order & 31);
    let Some(c) = maps::PAGES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, preemption is off in tracepoint programs.
    unsafe {
        if refill {
            (*c).refill_events += 1;
            (*c).refill_pages += pages;
        } else {
            (*c).buddy_events += 1;
            (*c).buddy_pages += pages;
        }
    }
}

pub fn on_pcpu_drain(ctx: &TracePointContext) {
    // SAFETY: helper with no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if !maps::cpu_selected(cpu) {
        return;
    }
    let Some(order) = read_u32(ctx, config::get(&config::PD_ORDER_OFF)) else {
        maps::count(counter::PAGE_READ_ERROR, 1);
        return;
    };
    let Some(c) = maps::PAGES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, preemption is off in tracepoint programs.
    unsafe {
        (*c).drain_events += 1;
        (*c).drain_pages += 1u64 << (order & 31);
    }
}
