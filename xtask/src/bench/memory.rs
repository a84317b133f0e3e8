//! Kernel memory of zoneprof's BPF maps for any number of possible CPUs, computed from the
//! map definitions (sizes from `profiler-common`, so they follow any change there), with
//! the kernel's own per-map object overheads (Linux 6.x, x86-64; see `docs/benchmarks.md`).
//!
//! The model mirrors `profiler-ebpf/src/maps.rs`. It is checked against the running kernel
//! by [`cross_check`]: every modelled map must exist in a live zoneprof with the same
//! type, key, value and entries, and its `memlock` (the kernel's `bpf_map_memory_usage()`)
//! must match the model at this host's CPU count.

use std::mem::size_of;

use profiler_common as pc;

use super::parse::MapInfo;

/// BPF map types used by zoneprof (`enum bpf_map_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hash,
    Array,
    PerCpuArray,
    StackTrace,
}

impl Kind {
    pub fn type_id(self) -> u32 {
        match self {
            Kind::Hash => 1,
            Kind::Array => 2,
            Kind::PerCpuArray => 6,
            Kind::StackTrace => 7,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hash => "hash",
            Kind::Array => "array",
            Kind::PerCpuArray => "percpu_array",
            Kind::StackTrace => "stack_trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapDef {
    pub name: &'static str,
    pub kind: Kind,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Only used with `--page-flows`.
    pub page_flows_only: bool,
    /// Created with one entry unless `--page-flows` (profiler/src/kernel/attach.rs).
    pub shrunk_by_default: bool,
}

impl MapDef {
    /// The map as a run without `--page-flows` creates it.
    pub fn as_created_by_default(&self) -> MapDef {
        if self.shrunk_by_default {
            MapDef {
                max_entries: 1,
                ..*self
            }
        } else {
            *self
        }
    }
}

/// `PERF_MAX_STACK_DEPTH`: aya's stack-trace map holds 127 frames of 8 bytes per entry.
pub const STACK_DEPTH: u32 = 127;

const fn sz<T>() -> u32 {
    size_of::<T>() as u32
}

const fn def(name: &'static str, kind: Kind, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef {
        name,
        kind,
        key_size: key,
        value_size: value,
        max_entries: entries,
        page_flows_only: false,
        shrunk_by_default: false,
    }
}

const fn shrunk(d: MapDef) -> MapDef {
    MapDef {
        shrunk_by_default: true,
        ..d
    }
}

const fn page_flows(d: MapDef) -> MapDef {
    MapDef {
        page_flows_only: true,
        ..d
    }
}

/// Every map of `profiler-ebpf/src/maps.rs`, in its order.
pub fn maps() -> Vec<MapDef> {
    use Kind::*;
    vec![
        def(
            "LOCK_STATS",
            Hash,
            sz::<pc::LockKey>(),
            sz::<pc::LockVal>(),
            pc::LOCK_STATS_ENTRIES,
        ),
        def(
            "WAIT_HIST",
            Hash,
            sz::<pc::HistKey>(),
            sz::<u64>(),
            pc::HIST_ENTRIES,
        ),
        def(
            "STACKS",
            StackTrace,
            sz::<u32>(),
            8 * STACK_DEPTH,
            pc::STACK_ENTRIES,
        ),
        def("SPIN_STACK", PerCpuArray, 4, sz::<pc::SpinStack>(), 1),
        def(
            "TASK_WAIT",
            Hash,
            sz::<u32>(),
            sz::<pc::TaskWait>(),
            pc::TASK_WAIT_ENTRIES,
        ),
        // Sized only with `record --tasks`.
        shrunk(def(
            "TASKS",
            Hash,
            sz::<u32>(),
            sz::<pc::TaskInfo>(),
            pc::TASK_INFO_ENTRIES,
        )),
        def(
            "ZONE_CACHE",
            Hash,
            sz::<u64>(),
            sz::<pc::ZoneInfo>(),
            pc::ZONE_CACHE_ENTRIES,
        ),
        def("COUNTERS", PerCpuArray, 4, sz::<u64>(), pc::counter::COUNT),
        def("PAGES", PerCpuArray, 4, sz::<pc::PageCounters>(), 1),
        def(
            "SKB_MATRIX",
            Hash,
            sz::<pc::CpuPairKey>(),
            sz::<u64>(),
            pc::SKB_MATRIX_ENTRIES,
        ),
        def(
            "SKB_SITES",
            Hash,
            sz::<pc::SkbSiteKey>(),
            sz::<pc::SkbSiteVal>(),
            pc::SKB_SITE_ENTRIES,
        ),
        def("SKB_IPIS", PerCpuArray, 4, sz::<u64>(), 1),
        def("CPU_NODE", Array, 4, sz::<u32>(), pc::MAX_CPUS),
        page_flows(shrunk(def(
            "PAGE_TRACK",
            Hash,
            sz::<u64>(),
            sz::<pc::PageAlloc>(),
            pc::PAGE_TRACK_ENTRIES,
        ))),
        page_flows(shrunk(def(
            "PAGE_MATRIX",
            Hash,
            sz::<pc::CpuPairKey>(),
            sz::<u64>(),
            pc::PAGE_MATRIX_ENTRIES,
        ))),
        page_flows(def(
            "PAGE_LIFETIME",
            PerCpuArray,
            4,
            sz::<u64>(),
            pc::HIST_BUCKETS,
        )),
        page_flows(def(
            "PAGE_ORDER",
            PerCpuArray,
            4,
            sz::<u64>(),
            pc::PAGE_ORDERS,
        )),
        def(
            "FUNC_RANGES",
            Array,
            4,
            sz::<pc::FuncRange>(),
            pc::func_slot::COUNT,
        ),
        def("CPU_ONLINE", Array, 4, 1, pc::MAX_CPUS),
        def("RMQ_STACK", PerCpuArray, 4, sz::<pc::CallStack>(), 1),
        def("BULK_STACK", PerCpuArray, 4, sz::<pc::CallStack>(), 1),
        def("CPU_FILTER", Array, 4, 1, pc::MAX_CPUS),
    ]
}

/// Kernel object sizes (x86-64). `struct htab_elem` before the key, `struct bucket`,
/// `struct stack_map_bucket`; the map headers (`struct bpf_htab`, `bpf_array`,
/// `bpf_stack_map`) were measured on Linux 6.18 (they vary a little by version and config).
pub const HTAB_ELEM: u64 = 48;
pub const HTAB_BUCKET: u64 = 16;
pub const HTAB_HEADER: u64 = 896;
pub const ARRAY_HEADER: u64 = 312;
pub const STACK_HEADER: u64 = 320;
pub const STACK_BUCKET: u64 = 16;

fn round8(v: u64) -> u64 {
    v.div_ceil(8) * 8
}

/// Bytes the kernel allocates for `m` on a host with `cpus` possible CPUs, following
/// `htab_map_mem_usage`, `array_map_mem_usage` and `stack_map_mem_usage`.
/// Hash maps are preallocated (no `BPF_F_NO_PREALLOC`): every entry, plus one spare
/// element per possible CPU, exists from load time whether used or not.
pub fn map_bytes(m: &MapDef, cpus: u32) -> u64 {
    let cpus = u64::from(cpus);
    let entries = u64::from(m.max_entries);
    let (key, value) = (u64::from(m.key_size), u64::from(m.value_size));
    match m.kind {
        Kind::Hash => {
            let elem = HTAB_ELEM + round8(key) + round8(value);
            HTAB_HEADER
                + HTAB_BUCKET * entries.next_power_of_two()
                + elem * (entries + cpus)
                // per-CPU pointer to the spare element
                + 8 * cpus
        }
        Kind::Array => ARRAY_HEADER + entries * round8(value),
        Kind::PerCpuArray => ARRAY_HEADER + 8 * entries + entries * round8(value) * cpus,
        Kind::StackTrace => {
            STACK_HEADER + 8 * entries.next_power_of_two() + entries * (STACK_BUCKET + value)
        }
    }
}

/// perf's callchain buffers, which `bpf_get_stackid` needs: one per CPU id and context
/// (task, IRQ, softirq, NMI), each `perf_event_max_stack` + `perf_event_max_contexts_per_stack`
/// (8) entries. Allocated once for the whole kernel while any user (a stack-trace map,
/// perf) exists, so shared with perf when it runs too.
pub fn callchain_bytes(cpus: u32, max_stack: u32) -> u64 {
    const CONTEXTS: u64 = 4;
    const CONTEXTS_PER_STACK: u64 = 8;
    u64::from(cpus) * CONTEXTS * (8 + 8 * (u64::from(max_stack) + CONTEXTS_PER_STACK))
}

/// A modelled map next to the live one the kernel created for it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub def: MapDef,
    pub live: Option<MapInfo>,
    pub model_here: u64,
}

/// Matches modelled maps to live maps by (type, key size, value size, entries); returns
/// the matches and the live maps no model entry claims (the programs' global-variable
/// maps, or a map the model lacks).
pub fn cross_check(
    defs: &[MapDef],
    live: &[MapInfo],
    cpus_here: u32,
) -> (Vec<Checked>, Vec<MapInfo>) {
    let mut left: Vec<MapInfo> = live.to_vec();
    let checked = defs
        .iter()
        .map(|d| {
            let pos = left.iter().position(|m| {
                m.map_type == d.kind.type_id()
                    && m.key_size == d.key_size
                    && m.value_size == d.value_size
                    && m.max_entries == d.max_entries
            });
            Checked {
                def: *d,
                live: pos.map(|i| left.remove(i)),
                model_here: map_bytes(d, cpus_here),
            }
        })
        .collect();
    (checked, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(name: &str) -> MapDef {
        maps()
            .into_iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no map {name}"))
    }

    /// `memlock` of each map in `/proc/PID/fdinfo` of zoneprof on Linux 6.18, 2 possible CPUs.
    #[test]
    fn model_matches_the_kernel_at_two_cpus() {
        for (name, memlock) in [
            ("PAGE_TRACK", 23_069_728),
            ("SKB_MATRIX", 5_243_920),
            ("LOCK_STATS", 1_967_200),
            ("SKB_SITES", 1_967_200),
            ("TASKS", 1_705_024),
            ("TASK_WAIT", 1_705_024),
            ("WAIT_HIST", 2_622_480),
            ("ZONE_CACHE", 427_072),
            ("STACKS", 17_039_680),
            ("SPIN_STACK", 592),
            ("COUNTERS", 1_152),
            ("PAGE_LIFETIME", 1_272),
            ("CPU_ONLINE", 33_080),
            ("FUNC_RANGES", 376),
            ("RMQ_STACK", 528),
            ("BULK_STACK", 528),
        ] {
            assert_eq!(map_bytes(&find(name), 2), memlock, "{name}");
        }
    }

    #[test]
    fn per_cpu_parts_scale() {
        let c = find("COUNTERS");
        assert_eq!(
            map_bytes(&c, 640) - map_bytes(&c, 2),
            638 * 8 * u64::from(pc::counter::COUNT)
        );
        let h = find("LOCK_STATS");
        assert_eq!(map_bytes(&h, 640) - map_bytes(&h, 2), 638 * (104 + 8));
        let a = find("CPU_NODE");
        assert_eq!(map_bytes(&a, 640), map_bytes(&a, 2));
    }

    #[test]
    fn callchain_buffers() {
        assert_eq!(callchain_bytes(1, 127), 4 * 1088);
        assert_eq!(callchain_bytes(640, 127), 640 * 4 * 1088);
    }

    #[test]
    fn cross_check_matches_by_signature() {
        let defs = [find("SKB_MATRIX"), find("PAGE_MATRIX"), find("COUNTERS")];
        let live = |t, k, v, e, mem| MapInfo {
            map_type: t,
            key_size: k,
            value_size: v,
            max_entries: e,
            map_flags: 0,
            memlock: mem,
            id: 0,
        };
        let (checked, left) = cross_check(
            &defs,
            &[
                live(1, 8, 8, 65536, 1),
                live(1, 8, 8, 65536, 2),
                live(2, 4, 124, 1, 3),
            ],
            2,
        );
        assert!(checked[0].live.is_some() && checked[1].live.is_some());
        assert!(checked[2].live.is_none());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].memlock, 3);
    }
}
