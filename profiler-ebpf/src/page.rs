//! PCP refill / drain counters from `kmem:mm_page_alloc_zone_locked` and
//! `kmem:mm_page_pcpu_drain`: one event per block of 2^order pages, on the CPU whose list is
//! refilled or drained. These fire over a million times a second on a busy host, so the
//! body is one per-CPU update.
use crate::{helpers, maps};

/// A block left the buddy allocator under zone->lock: `refill` when it went to a PCP list.
#[inline(always)]
pub fn on_alloc_zone_locked(order: u32, refill: bool) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    let pages = 1u64 << (order & 31);
    let Some(c) = maps::PAGES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, preemption is off in tracepoint programs.
    let c = unsafe { &mut *c };
    if refill {
        c.refill_events += 1;
        c.refill_pages += pages;
    } else {
        c.buddy_events += 1;
        c.buddy_pages += pages;
    }
}

/// A block went back from a PCP list to the buddy allocator.
#[inline(always)]
pub fn on_pcpu_drain(order: u32) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) {
        return;
    }
    let Some(c) = maps::PAGES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, preemption is off in tracepoint programs.
    let c = unsafe { &mut *c };
    c.drain_events += 1;
    c.drain_pages += 1u64 << (order & 31);
}
