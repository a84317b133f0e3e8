//! eBPF programs of zoneprof. Entry points stay thin: each reads its tracepoint fields
//! at offsets learnt from tracefs and hands off to `lock` or `page`.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod config;
mod lock;
mod maps;
mod page;
mod pageflow;
mod skb;

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

/// `lock:contention_begin(lock_addr, flags)`.
#[tracepoint]
pub fn contention_begin(ctx: TracePointContext) -> u32 {
    lock::on_begin(&ctx);
    0
}

/// `lock:contention_end(lock_addr, ret)`.
#[tracepoint]
pub fn contention_end(ctx: TracePointContext) -> u32 {
    lock::on_end(&ctx);
    0
}

/// `kmem:mm_page_alloc_zone_locked(pfn, order, migratetype[, percpu_refill])`.
#[tracepoint]
pub fn page_alloc_zone_locked(ctx: TracePointContext) -> u32 {
    page::on_alloc_zone_locked(&ctx);
    0
}

/// `kmem:mm_page_pcpu_drain(pfn, order, migratetype)`.
#[tracepoint]
pub fn page_pcpu_drain(ctx: TracePointContext) -> u32 {
    page::on_pcpu_drain(&ctx);
    0
}

#[inline(always)]
fn field<T>(ctx: &TracePointContext, off: &aya_ebpf::Global<u32>) -> Option<T> {
    let off = config::get(off);
    if off == profiler_common::ABSENT {
        return None;
    }
    // SAFETY: offsets come from the tracepoint's format file, inside the record.
    unsafe { ctx.read_at::<T>(off as usize) }.ok()
}

/// `skb:consume_skb(skbaddr[, location])`.
#[tracepoint]
pub fn skb_consume(ctx: TracePointContext) -> u32 {
    if let Some(skb) = field::<u64>(&ctx, &config::CS_SKB_OFF) {
        let loc = field::<u64>(&ctx, &config::CS_LOC_OFF).unwrap_or(0);
        skb::on_free(skb, profiler_common::skb_func::CONSUME_SKB, loc);
    }
    0
}

/// `skb:kfree_skb(skbaddr, location, ...)`.
#[tracepoint]
pub fn skb_kfree(ctx: TracePointContext) -> u32 {
    if let Some(skb) = field::<u64>(&ctx, &config::KS_SKB_OFF) {
        let loc = field::<u64>(&ctx, &config::KS_LOC_OFF).unwrap_or(0);
        skb::on_free(skb, profiler_common::skb_func::KFREE_SKB, loc);
    }
    0
}

/// `ipi:ipi_send_cpu(cpu, callsite, callback)`.
#[tracepoint]
pub fn ipi_send_cpu(ctx: TracePointContext) -> u32 {
    if let Some(cb) = field::<u64>(&ctx, &config::IPI_CALLBACK_OFF) {
        skb::on_ipi(cb);
    }
    0
}

/// `kmem:mm_page_alloc(pfn, order, ...)` (page tracking, opt-in).
#[tracepoint]
pub fn page_alloc(ctx: TracePointContext) -> u32 {
    if let (Some(pfn), Some(order)) = (
        field::<u64>(&ctx, &config::PG_ALLOC_PFN_OFF),
        field::<u32>(&ctx, &config::PG_ALLOC_ORDER_OFF),
    ) {
        pageflow::on_alloc(pfn, order);
    }
    0
}

/// `kmem:mm_page_free(pfn, order)` (page tracking, opt-in).
#[tracepoint]
pub fn page_free(ctx: TracePointContext) -> u32 {
    if let (Some(pfn), Some(order)) = (
        field::<u64>(&ctx, &config::PG_FREE_PFN_OFF),
        field::<u32>(&ctx, &config::PG_FREE_ORDER_OFF),
    ) {
        pageflow::on_free(pfn, order);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // eBPF programs cannot unwind; the verifier rejects any path that reaches here.
    loop {}
}
