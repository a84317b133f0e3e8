//! eBPF programs of zoneprof. Entry points stay thin: each reads its event's fields (at
//! offsets learnt from tracefs, or raw tracepoint arguments) and hands off to `lock`,
//! `page`, `skb`, `pageflow` or `kfunc`.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(
    internal_features,
    reason = "core_intrinsics: atomic adds to map values shared by CPUs"
)]

mod config;
mod helpers;
mod kfunc;
mod lock;
mod maps;
mod page;
mod pageflow;
mod skb;
mod task;

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe, raw_tracepoint, tracepoint},
    programs::{
        FEntryContext, FExitContext, ProbeContext, RawTracePointContext, RetProbeContext,
        TracePointContext,
    },
};
use profiler_common::{ABSENT, counter, func_slot, skb_func};

/// A classic tracepoint's field at the offset its tracefs format gave; None when this
/// kernel lacks the field or the read fails.
#[inline(always)]
fn field<T>(ctx: &TracePointContext, off: &aya_ebpf::Global<u32>) -> Option<T> {
    let off = config::get(off);
    if off == ABSENT {
        return None;
    }
    // SAFETY: offsets come from the tracepoint's format file, inside the record.
    unsafe { ctx.read_at::<T>(off as usize) }.ok()
}

/// `lock:contention_begin(lock_addr, flags)`.
#[tracepoint]
pub fn contention_begin(ctx: TracePointContext) -> u32 {
    if let (Some(lock), Some(flags)) = (
        field::<u64>(&ctx, &config::CB_LOCK_ADDR_OFF),
        field::<u32>(&ctx, &config::CB_FLAGS_OFF),
    ) {
        lock::on_begin(&ctx, lock, flags);
    }
    0
}

/// `lock:contention_end(lock_addr, ret)`.
#[tracepoint]
pub fn contention_end(ctx: TracePointContext) -> u32 {
    if let Some(lock) = field::<u64>(&ctx, &config::CE_LOCK_ADDR_OFF) {
        lock::on_end(lock);
    }
    0
}

/// `kmem:mm_page_alloc_zone_locked(pfn, order, migratetype[, percpu_refill])`.
#[tracepoint]
pub fn page_alloc_zone_locked(ctx: TracePointContext) -> u32 {
    let Some(order) = field::<u32>(&ctx, &config::PA_ORDER_OFF) else {
        maps::count(counter::PAGE_READ_ERROR, 1);
        return 0;
    };
    // Before 5.19 `percpu_refill` was not a field; the kernel printed `order == 0` for it.
    let refill = if config::get(&config::PA_REFILL_OFF) == ABSENT {
        order == 0
    } else {
        matches!(field::<u32>(&ctx, &config::PA_REFILL_OFF), Some(v) if v != 0)
    };
    page::on_alloc_zone_locked(order, refill);
    0
}

/// `kmem:mm_page_pcpu_drain(pfn, order, migratetype)`.
#[tracepoint]
pub fn page_pcpu_drain(ctx: TracePointContext) -> u32 {
    match field::<u32>(&ctx, &config::PD_ORDER_OFF) {
        Some(order) => page::on_pcpu_drain(order),
        None => maps::count(counter::PAGE_READ_ERROR, 1),
    }
    0
}

/// `skb:consume_skb(skbaddr[, location])`.
#[tracepoint]
pub fn skb_consume(ctx: TracePointContext) -> u32 {
    if let Some(skb) = field::<u64>(&ctx, &config::CS_SKB_OFF) {
        let loc = field::<u64>(&ctx, &config::CS_LOC_OFF).unwrap_or(0);
        skb::on_free(skb, profiler_common::skb_func::CONSUME_SKB, loc, true);
    }
    0
}

/// `skb:kfree_skb(skbaddr, location, ...)`.
#[tracepoint]
pub fn skb_kfree(ctx: TracePointContext) -> u32 {
    if let Some(skb) = field::<u64>(&ctx, &config::KS_SKB_OFF) {
        let loc = field::<u64>(&ctx, &config::KS_LOC_OFF).unwrap_or(0);
        skb::on_free(skb, profiler_common::skb_func::KFREE_SKB, loc, true);
    }
    0
}

/// `csd:csd_queue_cpu(cpu, callsite, func, csd)`: a cross-CPU function call queued.
#[tracepoint]
pub fn csd_queue_cpu(ctx: TracePointContext) -> u32 {
    if let Some(func) = field::<u64>(&ctx, &config::CSD_FUNC_OFF) {
        skb::on_ipi(func);
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

// Raw tracepoint forms: the same events, called straight from the tracepoint with its
// TP_PROTO arguments, skipping the perf record a classic tracepoint program reads from. The
// argument positions below are checked against the kernel's BTF (`btf_trace_<event>`)
// before loading (profiler/src/kernel/probes.rs); a kernel with another layout gets the classic form.

/// `contention_begin(void *lock, unsigned int flags)`.
#[raw_tracepoint]
pub fn raw_contention_begin(ctx: RawTracePointContext) -> u32 {
    lock::on_begin(&ctx, ctx.arg::<u64>(0), ctx.arg::<u32>(1));
    0
}

/// `contention_end(void *lock, int ret)`.
#[raw_tracepoint]
pub fn raw_contention_end(ctx: RawTracePointContext) -> u32 {
    lock::on_end(ctx.arg::<u64>(0));
    0
}

/// `mm_page_alloc_zone_locked(page, order, migratetype, percpu_refill)` (5.19+ layout).
#[raw_tracepoint]
pub fn raw_page_alloc_zone_locked(ctx: RawTracePointContext) -> u32 {
    page::on_alloc_zone_locked(ctx.arg::<u32>(1), ctx.arg::<u32>(3) != 0);
    0
}

/// `mm_page_pcpu_drain(page, order, migratetype)`.
#[raw_tracepoint]
pub fn raw_page_pcpu_drain(ctx: RawTracePointContext) -> u32 {
    page::on_pcpu_drain(ctx.arg::<u32>(1));
    0
}

/// `consume_skb(skb, location)` (6.3+ layout).
#[raw_tracepoint]
pub fn raw_skb_consume(ctx: RawTracePointContext) -> u32 {
    skb::on_free(
        ctx.arg::<u64>(0),
        skb_func::CONSUME_SKB,
        ctx.arg::<u64>(1),
        true,
    );
    0
}

/// `kfree_skb(skb, location, ...)`.
#[raw_tracepoint]
pub fn raw_skb_kfree(ctx: RawTracePointContext) -> u32 {
    skb::on_free(
        ctx.arg::<u64>(0),
        skb_func::KFREE_SKB,
        ctx.arg::<u64>(1),
        true,
    );
    0
}

/// `csd_queue_cpu(cpu, callsite, func, csd)`.
#[raw_tracepoint]
pub fn raw_csd_queue_cpu(ctx: RawTracePointContext) -> u32 {
    skb::on_ipi(ctx.arg::<u64>(2));
    0
}

/// `mm_page_alloc(page, order, gfp_flags, migratetype)`: pages are keyed by their
/// `struct page` address here (one per page, like the pfn the classic form reads).
#[raw_tracepoint]
pub fn raw_page_alloc(ctx: RawTracePointContext) -> u32 {
    let page = ctx.arg::<u64>(0);
    if page != 0 {
        pageflow::on_alloc(page, ctx.arg::<u32>(1));
    }
    0
}

/// `mm_page_free(page, order)`.
#[raw_tracepoint]
pub fn raw_page_free(ctx: RawTracePointContext) -> u32 {
    let page = ctx.arg::<u64>(0);
    if page != 0 {
        pageflow::on_free(page, ctx.arg::<u32>(1));
    }
    0
}

// kprobe and fentry forms. The attach target (and its fallbacks) is chosen in userspace;
// fentry programs are bound to their target at load time.

/// fentry argument `n` as a plain number. The verifier types fentry pointer arguments from
/// BTF and forbids the arithmetic zoneprof does on them (zone checks), so read the raw
/// value through the helper, which yields a scalar.
#[inline(always)]
fn fentry_arg<C: aya_ebpf::EbpfContext>(ctx: &C, n: usize) -> u64 {
    let p = ctx.as_ptr().cast::<u64>().wrapping_add(n);
    // SAFETY: the helper validates the address; ctx holds the traced function's arguments.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(p) }.unwrap_or(0)
}

/// The kfree_skb target's SKB argument: index 1 for `sk_skb_reason_drop(sk, skb, ...)`,
/// else 0. Both are read at constant offsets (the verifier rejects a variable ctx offset).
#[inline(always)]
fn pick_arg(idx: u32, a0: u64, a1: u64) -> u64 {
    if idx == 1 { a1 } else { a0 }
}

#[kprobe]
pub fn kp_consume_skb(ctx: ProbeContext) -> u32 {
    if let Some(skb) = ctx.arg::<u64>(0) {
        let caller = kfunc::caller_of(&ctx, func_slot::CONSUME_SKB);
        skb::on_free(skb, skb_func::CONSUME_SKB, caller, true);
    }
    0
}

#[fentry]
pub fn fe_consume_skb(ctx: FEntryContext) -> u32 {
    let skb = fentry_arg(&ctx, 0);
    let caller = kfunc::caller_of(&ctx, func_slot::CONSUME_SKB);
    skb::on_free(skb, skb_func::CONSUME_SKB, caller, true);
    0
}

#[kprobe]
pub fn kp_kfree_skb(ctx: ProbeContext) -> u32 {
    let (a0, a1) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1));
    if let (Some(a0), Some(a1)) = (a0, a1) {
        let skb = pick_arg(config::get(&config::KP_KFREE_ARG), a0, a1);
        let caller = kfunc::caller_of(&ctx, func_slot::KFREE_SKB);
        skb::on_free(skb, skb_func::KFREE_SKB, caller, true);
    }
    0
}

#[fentry]
pub fn fe_kfree_skb(ctx: FEntryContext) -> u32 {
    let skb = pick_arg(
        config::get(&config::FE_KFREE_ARG),
        fentry_arg(&ctx, 0),
        fentry_arg(&ctx, 1),
    );
    let caller = kfunc::caller_of(&ctx, func_slot::KFREE_SKB);
    skb::on_free(skb, skb_func::KFREE_SKB, caller, true);
    0
}

#[kprobe]
pub fn kp_defer_free(ctx: ProbeContext) -> u32 {
    if let Some(skb) = ctx.arg::<u64>(0) {
        kfunc::on_defer_free(skb, kfunc::caller_of(&ctx, func_slot::DEFER_FREE));
    }
    0
}

#[fentry]
pub fn fe_defer_free(ctx: FEntryContext) -> u32 {
    let skb = fentry_arg(&ctx, 0);
    kfunc::on_defer_free(skb, kfunc::caller_of(&ctx, func_slot::DEFER_FREE));
    0
}

// PCP batch hooks (see kfunc.rs): one program per target function, since the exit learns
// its pages differently. Argument positions are checked against BTF before loading.

/// fexit's view of the traced function's return value, which follows its arguments.
/// Both rmqueue targets take 6 arguments (checked against BTF before loading).
const RMQUEUE_NR_ARGS: usize = 6;

#[kprobe]
pub fn kp_rmqueue_pcplist(ctx: ProbeContext) -> u32 {
    if let (Some(zone), Some(order), Some(pcp)) =
        (ctx.arg::<u64>(0), ctx.arg::<u32>(1), ctx.arg::<u64>(4))
    {
        kfunc::on_rmqueue_entry(zone, order, pcp);
    }
    0
}

#[kretprobe]
pub fn krp_rmqueue_pcplist(ctx: RetProbeContext) -> u32 {
    kfunc::on_rmqueue_exit(ctx.ret::<u64>(), kfunc::Refill::PcpList);
    0
}

#[fentry]
pub fn fe_rmqueue_pcplist(ctx: FEntryContext) -> u32 {
    kfunc::on_rmqueue_entry(
        fentry_arg(&ctx, 0),
        fentry_arg(&ctx, 1) as u32,
        fentry_arg(&ctx, 4),
    );
    0
}

#[fexit]
pub fn fx_rmqueue_pcplist(ctx: FExitContext) -> u32 {
    kfunc::on_rmqueue_exit(fentry_arg(&ctx, RMQUEUE_NR_ARGS), kfunc::Refill::PcpList);
    0
}

#[kprobe]
pub fn kp_rmqueue_bulk(ctx: ProbeContext) -> u32 {
    if let (Some(zone), Some(order)) = (ctx.arg::<u64>(0), ctx.arg::<u32>(1)) {
        kfunc::on_rmqueue_entry(zone, order, 0);
    }
    0
}

#[kretprobe]
pub fn krp_rmqueue_bulk(ctx: RetProbeContext) -> u32 {
    kfunc::on_rmqueue_exit(ctx.ret::<u64>(), kfunc::Refill::Bulk);
    0
}

#[fentry]
pub fn fe_rmqueue_bulk(ctx: FEntryContext) -> u32 {
    kfunc::on_rmqueue_entry(fentry_arg(&ctx, 0), fentry_arg(&ctx, 1) as u32, 0);
    0
}

#[fexit]
pub fn fx_rmqueue_bulk(ctx: FExitContext) -> u32 {
    kfunc::on_rmqueue_exit(fentry_arg(&ctx, RMQUEUE_NR_ARGS), kfunc::Refill::Bulk);
    0
}

#[kprobe]
pub fn kp_free_pcppages_bulk(ctx: ProbeContext) -> u32 {
    if let (Some(zone), Some(pcp)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(2)) {
        kfunc::on_free_bulk_entry(zone, pcp);
    }
    0
}

#[kretprobe]
pub fn krp_free_pcppages_bulk(_ctx: RetProbeContext) -> u32 {
    kfunc::on_free_bulk_exit();
    0
}

#[fentry]
pub fn fe_free_pcppages_bulk(ctx: FEntryContext) -> u32 {
    kfunc::on_free_bulk_entry(fentry_arg(&ctx, 0), fentry_arg(&ctx, 2));
    0
}

#[fexit]
pub fn fx_free_pcppages_bulk(_ctx: FExitContext) -> u32 {
    kfunc::on_free_bulk_exit();
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // eBPF programs cannot unwind; the verifier rejects any path that reaches here.
    loop {}
}

// Calibration (profiler/src/capture/calibrate.rs): empty programs that `record` attaches for
// a moment to `task:task_rename`, which it fires itself, to time what the kernel adds around
// each program run beyond the program's own time.

/// Does nothing: its runs are timed from outside.
#[raw_tracepoint]
pub fn calib_raw_nop(_ctx: RawTracePointContext) -> u32 {
    0
}

/// Does nothing: its runs are timed from outside.
#[tracepoint]
pub fn calib_tp_nop(_ctx: TracePointContext) -> u32 {
    0
}
