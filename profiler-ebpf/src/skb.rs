//! SKB frees: who allocated (`skb->alloc_cpu`, read at a BTF offset) vs who frees (this
//! CPU), counted in the kernel per CPU pair and per free site. No per-packet event leaves
//! the kernel.
use aya_ebpf::helpers::bpf_probe_read_kernel;
use profiler_common::{ABSENT, CpuPairKey, NO_CPU, SkbSiteKey, counter};

use crate::{config, helpers, maps};

/// Accounts one free of `skb` by free function `func`, called from `location`. With
/// `in_matrix` false (an SKB handed to its allocating CPU's defer list) only the site is
/// counted: the real free comes later on the allocating CPU and is counted there.
#[inline(always)]
pub fn on_free(skb: u64, func: u32, location: u64, in_matrix: bool) {
    let cpu = helpers::cpu();
    if !maps::cpu_selected(cpu) || skb == 0 {
        return;
    }
    maps::count(counter::SKB_FREES, 1);
    let off = config::get(&config::SKB_ALLOC_CPU_OFF);
    let alloc_cpu = if off == ABSENT {
        NO_CPU
    } else {
        // SAFETY: bpf_probe_read_kernel validates the address.
        match unsafe { bpf_probe_read_kernel((skb + off as u64) as *const u16) } {
            Ok(c) => c as u32,
            Err(_) => {
                maps::count(counter::SKB_READ_ERROR, 1);
                NO_CPU
            }
        }
    };
    let known = alloc_cpu != NO_CPU;
    if known
        && in_matrix
        && !maps::add_keyed(
            &maps::SKB_MATRIX,
            &CpuPairKey {
                alloc_cpu,
                free_cpu: cpu,
            },
            1,
        )
    {
        maps::count(counter::SKB_MAP_FULL, 1);
    }

    let remote = known && alloc_cpu != cpu;
    let cross_node = remote && maps::node_of(alloc_cpu) != maps::node_of(cpu);
    crate::task::note();
    let key = SkbSiteKey {
        location,
        func,
        cpu,
        tid: crate::task::key_tid(),
        _pad: 0,
    };
    let Some(v) = maps::get_or_insert_zeroed(&maps::SKB_SITES, &key) else {
        maps::count(counter::SKB_MAP_FULL, 1);
        return;
    };
    // SAFETY: the key holds this CPU; preemption is off.
    let v = unsafe { &mut *v };
    v.count += 1;
    v.remote += remote as u64;
    v.cross_node += cross_node as u64;
    v.unknown += (!known) as u64;
}

/// `csd:csd_queue_cpu`: count the kicks (IPIs) of another CPU's deferred-SKB flush.
#[inline(always)]
pub fn on_ipi(callback: u64) {
    let target = config::get64(&config::DEFER_IPI_FN);
    if target == 0 || callback != target {
        return;
    }
    maps::count(counter::SKB_DEFER_IPIS, 1);
}
