//! Safe wrappers of the BPF helpers that have no preconditions, so call sites need no
//! `unsafe` of their own.
use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns};

/// The CPU this program runs on.
#[inline(always)]
pub fn cpu() -> u32 {
    // SAFETY: helper with no preconditions.
    unsafe { bpf_get_smp_processor_id() }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC, not counting suspend).
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: helper with no preconditions.
    unsafe { bpf_ktime_get_ns() }
}
