//! Logic behind the kprobe and fentry forms of the probes, shared by both: entry points in
//! main.rs only extract arguments. Caller attribution walks a short kernel stack for the
//! first frame after the probed function (works for kprobes and for BPF trampolines).
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel},
};
use profiler_common::{ABSENT, MAX_SPIN_NEST, counter};

use crate::{config, lock, maps};

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
    // SAFETY: helper with no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
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

/// `__rmqueue_pcplist(zone, ...)` entry: time the PCP refill slow path, learn the zone.
#[inline(always)]
pub fn on_rmqueue_entry(zone: u64) {
    // SAFETY: helpers with no preconditions.
    let (cpu, now) = unsafe { (bpf_get_smp_processor_id(), bpf_ktime_get_ns()) };
    if !maps::cpu_selected(cpu) {
        return;
    }
    learn_zone(zone);
    let Some(st) = maps::RMQ_STACK.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, preemption is off.
    let st = unsafe { &mut *st };
    let d = st.depth as usize;
    if d < MAX_SPIN_NEST {
        st.start_ns[d] = now;
        st.depth = d as u32 + 1;
    } else {
        maps::count(counter::RMQUEUE_UNMATCHED, 1);
    }
}

#[inline(always)]
pub fn on_rmqueue_exit() {
    // SAFETY: helpers with no preconditions.
    let (cpu, now) = unsafe { (bpf_get_smp_processor_id(), bpf_ktime_get_ns()) };
    if !maps::cpu_selected(cpu) {
        return;
    }
    let Some(st) = maps::RMQ_STACK.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, preemption is off.
    let st = unsafe { &mut *st };
    let d = st.depth as usize;
    // `get` rather than indexing: a bounds-check panic path would end the program in a
    // call, which older verifiers (6.1) reject ("last insn is not an exit or jmp").
    let Some(&start) = d.checked_sub(1).and_then(|i| st.start_ns.get(i)) else {
        maps::count(counter::RMQUEUE_UNMATCHED, 1);
        return;
    };
    st.depth = d as u32 - 1;
    maps::count(counter::RMQUEUE_CALLS, 1);
    maps::count(counter::RMQUEUE_NS, now.saturating_sub(start));
}

/// `free_pcppages_bulk(zone, count, pcp, pindex)` entry: a PCP drain of `count` pages.
#[inline(always)]
pub fn on_free_bulk(zone: u64, count: i32) {
    // SAFETY: helper with no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if !maps::cpu_selected(cpu) {
        return;
    }
    learn_zone(zone);
    maps::count(counter::BULK_FREE_CALLS, 1);
    if count > 0 {
        maps::count(counter::BULK_FREE_PAGES, count as u64);
    }
}

/// A `struct zone *` argument names a zone lock: cache its label.
#[inline(always)]
fn learn_zone(zone: u64) {
    if zone != 0 {
        let _ = lock::zone_of(zone + config::get(&config::ZONE_LOCK_OFF) as u64);
    }
}
