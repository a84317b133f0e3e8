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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // eBPF programs cannot unwind; the verifier rejects any path that reaches here.
    loop {}
}
