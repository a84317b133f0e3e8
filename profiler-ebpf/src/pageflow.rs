//! Page flows: a sample of pages (chosen by a hash of the pfn, or of the `struct page` address
//! in the raw tracepoint form, so allocation and free agree on which
//! pages are tracked) followed from `kmem:mm_page_alloc` to `kmem:mm_page_free`, counted
//! per (alloc CPU, free CPU), by order, and by lifetime.
use profiler_common::{CpuPairKey, PAGE_ORDERS, PageAlloc, counter, hist_bucket};

use crate::{config, helpers, maps};

#[inline(always)]
fn sampled(pfn: u64) -> bool {
    let n = config::get(&config::PAGE_SAMPLE) as u64;
    if n <= 1 {
        return true;
    }
    // Fibonacci hashing spreads consecutive pfns.
    (pfn.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32).is_multiple_of(n)
}

pub fn on_alloc(pfn: u64, order: u32) {
    if pfn == u64::MAX || !sampled(pfn) {
        return;
    }
    let (cpu, now) = (helpers::cpu(), helpers::now_ns());
    let a = PageAlloc {
        ts_ns: now,
        cpu,
        order,
    };
    if maps::PAGE_TRACK.insert(pfn, a, maps::BPF_ANY).is_err() {
        maps::count(counter::PAGE_TRACK_FULL, 1);
    }
}

pub fn on_free(pfn: u64, order: u32) {
    if !sampled(pfn) {
        return;
    }
    let Some(a) = maps::PAGE_TRACK.get_ptr(pfn) else {
        return;
    };
    // SAFETY: the entry stays valid until removed below; a stale read only skews one sample.
    let a = unsafe { *a };
    // Fails only when another program removed it first: nothing to undo.
    maps::PAGE_TRACK.remove(pfn).ok();
    let (cpu, now) = (helpers::cpu(), helpers::now_ns());
    let pages = 1u64 << (order & 31);
    let key = CpuPairKey {
        alloc_cpu: a.cpu,
        free_cpu: cpu,
    };
    if !maps::add_keyed(&maps::PAGE_MATRIX, &key, pages) {
        maps::count(counter::PAGE_MATRIX_FULL, 1);
    }
    let life = now.saturating_sub(a.ts_ns);
    maps::add_percpu(&maps::PAGE_LIFETIME, hist_bucket(life), pages);
    if order < PAGE_ORDERS {
        maps::add_percpu(&maps::PAGE_ORDER, order, 1);
    }
}
