//! Page flows: a sample of pages (chosen by a hash of the pfn, or of the `struct page` address
//! in the raw tracepoint form, so allocation and free agree on which
//! pages are tracked) followed from `kmem:mm_page_alloc` to `kmem:mm_page_free`, counted
//! per (alloc CPU, free CPU), by order, and by lifetime.
use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns};
use profiler_common::{CpuPairKey, HIST_BUCKETS, PAGE_ORDERS, PageAlloc, counter};

use crate::{config, maps};

#[inline(always)]
fn sampled(pfn: u64) -> bool {
    let n = config::get(&config::PAGE_SAMPLE) as u64;
    if n <= 1 {
        return true;
    }
    // Fibonacci hashing spreads consecutive pfns.
    (pfn.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n == 0
}

pub fn on_alloc(pfn: u64, order: u32) {
    if pfn == u64::MAX || !sampled(pfn) {
        return;
    }
    // SAFETY: helpers with no preconditions.
    let (cpu, now) = unsafe { (bpf_get_smp_processor_id(), bpf_ktime_get_ns()) };
    let a = PageAlloc {
        ts_ns: now,
        cpu,
        order,
    };
    if maps::PAGE_TRACK.insert(&pfn, &a, maps::BPF_ANY).is_err() {
        maps::count(counter::PAGE_TRACK_FULL, 1);
    }
}

pub fn on_free(pfn: u64, order: u32) {
    if !sampled(pfn) {
        return;
    }
    let Some(a) = maps::PAGE_TRACK.get_ptr(&pfn) else {
        return;
    };
    // SAFETY: the entry stays valid until removed below; a stale read only skews one sample.
    let a = unsafe { *a };
    let _ = maps::PAGE_TRACK.remove(&pfn);
    // SAFETY: helpers with no preconditions.
    let (cpu, now) = unsafe { (bpf_get_smp_processor_id(), bpf_ktime_get_ns()) };
    let pages = 1u64 << (order & 31);
    let key = CpuPairKey {
        alloc_cpu: a.cpu,
        free_cpu: cpu,
    };
    if !maps::add_keyed(&maps::PAGE_MATRIX, &key, pages) {
        maps::count(counter::PAGE_MATRIX_FULL, 1);
    }
    let life = now.saturating_sub(a.ts_ns);
    let mut bucket = 63 - (life | 1).leading_zeros();
    if bucket >= HIST_BUCKETS {
        bucket = HIST_BUCKETS - 1;
    }
    maps::add_percpu(&maps::PAGE_LIFETIME, bucket, pages);
    if order < PAGE_ORDERS {
        maps::add_percpu(&maps::PAGE_ORDER, order, 1);
    }
}
