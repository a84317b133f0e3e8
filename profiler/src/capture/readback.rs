//! Reading the in-kernel aggregates back: lock waits per (stack, CPU, lock), histograms,
//! zone labels, PCP counters and loss counters, symbolized into recording tables.
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray, StackTraceMap},
};
use profiler_common::{
    CpuPairKey, HistKey, LockKey, LockVal, NO_TASK, PageCounters, SkbSiteKey, SkbSiteVal,
    TaskInfo as KernelTask, ZoneInfo, counter,
};

use crate::{
    kernel::symbolize::Kallsyms,
    model::recording::{
        CgroupInfo, Counters, CpuPages, HistEntry, LockWait, PageCell, PageTracking, PcpCount,
        PcpMethod, SkbCell, SkbDefer, SkbSite, StackInterner, TaskInfo, ZoneLabel,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("cannot read map {map}: {detail}")]
    Map { map: &'static str, detail: String },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> AggregateError {
    move |e| AggregateError::Map {
        map,
        detail: e.to_string(),
    }
}

fn get_map<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a aya::maps::Map, AggregateError> {
    ebpf.map(name).ok_or(AggregateError::MissingMap(name))
}

/// Per-CPU counters summed over CPUs, indexed by `profiler_common::counter`.
pub fn read_counters(ebpf: &Ebpf) -> Result<[u64; counter::COUNT as usize], AggregateError> {
    let arr: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(get_map(ebpf, "COUNTERS")?).map_err(map_err("COUNTERS"))?;
    let mut out = [0u64; counter::COUNT as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        let v = arr.get(&(i as u32), 0).map_err(map_err("COUNTERS"))?;
        *slot = v.iter().sum();
    }
    Ok(out)
}

pub fn counters_from(raw: &[u64; counter::COUNT as usize]) -> Counters {
    let c = |i: u32| raw[i as usize];
    Counters {
        contention_begin: c(counter::CONTENTION_BEGIN),
        contention_end: c(counter::CONTENTION_END),
        end_without_begin: c(counter::END_WITHOUT_BEGIN),
        nest_overflow: c(counter::NEST_OVERFLOW),
        begin_without_end: c(counter::BEGIN_WITHOUT_END),
        stack_collisions: c(counter::STACK_COLLISION),
        stack_errors: c(counter::STACK_ERROR),
        lock_map_full: c(counter::LOCK_MAP_FULL),
        lost_wait_ns: c(counter::LOST_WAIT_NS),
        hist_map_full: c(counter::HIST_MAP_FULL),
        task_map_full: c(counter::TASK_MAP_FULL),
        zone_cache_full: c(counter::ZONE_CACHE_FULL),
        zone_wait_ns: c(counter::ZONE_WAIT_NS),
        zone_contentions: c(counter::ZONE_CONTENTIONS),
        total_wait_ns: c(counter::TOTAL_WAIT_NS),
        page_read_errors: c(counter::PAGE_READ_ERROR),
        unsymbolized_frames: 0,
        skb_frees: c(counter::SKB_FREES),
        skb_read_errors: c(counter::SKB_READ_ERROR),
        skb_map_full: c(counter::SKB_MAP_FULL),
        skb_defer_ipis: c(counter::SKB_DEFER_IPIS),
        page_track_full: c(counter::PAGE_TRACK_FULL),
        page_matrix_full: c(counter::PAGE_MATRIX_FULL),
        rmqueue_unmatched: c(counter::RMQUEUE_UNMATCHED),
        bulk_free_unmatched: c(counter::BULK_FREE_UNMATCHED),
        pcp_count_errors: c(counter::PCP_COUNT_ERRORS),
        task_info_full: c(counter::TASK_INFO_FULL),
    }
}

/// PCP counters per CPU (only CPUs with any activity, or in `cpus`); refill and drain
/// pages as `method` counted them.
pub fn read_pages(
    ebpf: &Ebpf,
    cpus: &[u32],
    method: PcpMethod,
) -> Result<Vec<CpuPages>, AggregateError> {
    let arr: PerCpuArray<&MapData, PageCounters> =
        PerCpuArray::try_from(get_map(ebpf, "PAGES")?).map_err(map_err("PAGES"))?;
    let v = arr.get(&0, 0).map_err(map_err("PAGES"))?;
    let rmq_calls = read_counter_per_cpu(ebpf, counter::RMQUEUE_CALLS)?;
    let rmq_ns = read_counter_per_cpu(ebpf, counter::RMQUEUE_NS)?;
    let bulk_calls = read_counter_per_cpu(ebpf, counter::BULK_FREE_CALLS)?;
    let bulk_pages = read_counter_per_cpu(ebpf, counter::BULK_FREE_PAGES)?;
    let batch_pages = read_counter_per_cpu(ebpf, counter::REFILL_BATCH_PAGES)?;
    let batches = read_counter_per_cpu(ebpf, counter::REFILL_BATCHES)?;
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let mut out = Vec::new();
    for (i, p) in v.iter().enumerate() {
        let cpu = i as u32;
        let active = p.refill_events
            + p.buddy_events
            + p.drain_events
            + at(&rmq_calls, i)
            + at(&bulk_calls, i)
            > 0;
        if active || cpus.contains(&cpu) {
            let by = |m: PcpCount, page: u64, batch: u64| match m {
                PcpCount::Page => page,
                PcpCount::Batch => batch,
                PcpCount::Off => 0,
            };
            out.push(CpuPages {
                cpu,
                refill_events: p.refill_events,
                refill_pages: by(method.refill, p.refill_pages, at(&batch_pages, i)),
                buddy_events: p.buddy_events,
                buddy_pages: p.buddy_pages,
                drain_events: p.drain_events,
                drain_pages: by(method.drain, p.drain_pages, at(&bulk_pages, i)),
                rmqueue_calls: at(&rmq_calls, i),
                rmqueue_ns: at(&rmq_ns, i),
                bulk_free_calls: at(&bulk_calls, i),
                bulk_free_pages: at(&bulk_pages, i),
                refill_batch_pages: at(&batch_pages, i),
                refill_batches: at(&batches, i),
            });
        }
    }
    Ok(out)
}

/// Everything a recording holds about lock waits.
pub struct LockTables {
    pub frames: Vec<String>,
    pub stacks: Vec<Vec<u32>>,
    pub lock_waits: Vec<LockWait>,
    pub wait_hist: Vec<HistEntry>,
    pub zones: Vec<ZoneLabel>,
    pub unsymbolized_frames: u64,
}

/// Kernel stack ids read and symbolized so far, and the interned tables they went into.
/// A stack id keeps its frames for as long as the programs are loaded (no
/// `BPF_F_REUSE_STACKID`), so a live session keeps one resolver and reads each stack once;
/// its tables only grow, bounded by the stack map's size.
#[derive(Default)]
pub struct StackResolver {
    interner: StackInterner,
    /// Kernel stack id -> recording stack index (None: the stack could not be read).
    by_id: std::collections::HashMap<i32, Option<u32>>,
    /// Frames no kallsyms symbol covered, over every stack resolved.
    unsymbolized: u64,
}

impl StackResolver {
    /// The frame and stack tables so far (a copy: the resolver goes on).
    pub fn tables(&self) -> (Vec<String>, Vec<Vec<u32>>) {
        (
            self.interner.frames().to_vec(),
            self.interner.stacks().to_vec(),
        )
    }

    pub fn unsymbolized_frames(&self) -> u64 {
        self.unsymbolized
    }

    pub fn finish(self) -> (Vec<String>, Vec<Vec<u32>>) {
        self.interner.finish()
    }
}

/// Reads lock waits, stacks, histograms and zone labels, symbolizing with `ksyms`.
/// `raw_stacks`: stacks were captured in a raw tracepoint program, whose own frames lead
/// them and are dropped.
pub fn read_lock_tables(
    ebpf: &Ebpf,
    ksyms: Option<&Kallsyms>,
    raw_stacks: bool,
) -> Result<LockTables, AggregateError> {
    let mut resolver = StackResolver::default();
    let mut t = read_lock_rows(ebpf, ksyms, raw_stacks, &mut resolver)?;
    (t.frames, t.stacks) = resolver.finish();
    Ok(t)
}

/// As [`read_lock_tables`], with stacks resolved through `resolver`, which keeps them for
/// the next read; `frames` and `stacks` are left empty (see [`StackResolver::tables`]) and
/// `unsymbolized_frames` counts every stack the resolver has read.
pub fn read_lock_rows(
    ebpf: &Ebpf,
    ksyms: Option<&Kallsyms>,
    raw_stacks: bool,
    resolver: &mut StackResolver,
) -> Result<LockTables, AggregateError> {
    let mut stacks = Stacks {
        map: StackTraceMap::try_from(get_map(ebpf, "STACKS")?).map_err(map_err("STACKS"))?,
        ksyms,
        raw_stacks,
        resolver,
    };
    let mut lock_waits = read_lock_waits(ebpf, &mut stacks)?;
    let mut wait_hist = read_wait_hist(ebpf, &mut stacks)?;
    let mut zones = read_zone_labels(ebpf)?;
    // Deterministic order makes recordings diffable.
    lock_waits.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.cpu.cmp(&b.cpu)));
    wait_hist.sort_by_key(|h| (h.stack, h.bucket));
    zones.sort_by_key(|z| z.lock_addr);
    Ok(LockTables {
        frames: Vec::new(),
        stacks: Vec::new(),
        lock_waits,
        wait_hist,
        zones,
        unsymbolized_frames: stacks.resolver.unsymbolized,
    })
}

/// One read of the stack map, resolving through a resolver that may outlive it.
struct Stacks<'a, 'r> {
    map: StackTraceMap<&'a MapData>,
    ksyms: Option<&'a Kallsyms>,
    /// Raw tracepoint stacks start in the probe; only the traced path is kept.
    raw_stacks: bool,
    resolver: &'r mut StackResolver,
}

impl Stacks<'_, '_> {
    /// The recording stack of kernel stack `id`, read and symbolized the first time; None
    /// for a failed capture (negative id) or a stack no longer in the map.
    fn resolve(&mut self, id: i32) -> Option<u32> {
        if id < 0 {
            return None;
        }
        let r = &mut *self.resolver;
        if let Some(&s) = r.by_id.get(&id) {
            return s;
        }
        let s = self.map.get(&(id as u32), 0).ok().map(|st| {
            let all = st.frames();
            let ips: Vec<u64> = all.iter().map(|f| f.ip).collect();
            let glue = match self.ksyms {
                Some(k) if self.raw_stacks => k.probe_glue_len(&ips),
                _ => 0,
            };
            let frames = all[glue..]
                .iter()
                .map(|f| {
                    let name = match self.ksyms {
                        Some(k) if k.resolve(f.ip).is_some() => k.format_frame(f.ip),
                        _ => {
                            r.unsymbolized += 1;
                            format!("{:#x}", f.ip)
                        }
                    };
                    r.interner.frame(name)
                })
                .collect();
            r.interner.stack(frames)
        });
        r.by_id.insert(id, s);
        s
    }
}

fn read_lock_waits(
    ebpf: &Ebpf,
    stacks: &mut Stacks<'_, '_>,
) -> Result<Vec<LockWait>, AggregateError> {
    let stats: HashMap<&MapData, LockKey, LockVal> =
        HashMap::try_from(get_map(ebpf, "LOCK_STATS")?).map_err(map_err("LOCK_STATS"))?;
    let mut lock_waits = Vec::new();
    for item in stats.iter() {
        let (k, v) = item.map_err(map_err("LOCK_STATS"))?;
        lock_waits.push(LockWait {
            stack: stacks.resolve(k.stack_id),
            stack_error: (k.stack_id < 0).then_some(k.stack_id),
            cpu: k.cpu,
            lock_addr: k.lock_addr,
            lock_flags: v.flags,
            count: v.count,
            total_ns: v.total_ns,
            max_ns: v.max_ns,
            tid: task_of(k.tid),
        });
    }
    Ok(lock_waits)
}

fn read_wait_hist(
    ebpf: &Ebpf,
    stacks: &mut Stacks<'_, '_>,
) -> Result<Vec<HistEntry>, AggregateError> {
    let hist: HashMap<&MapData, HistKey, u64> =
        HashMap::try_from(get_map(ebpf, "WAIT_HIST")?).map_err(map_err("WAIT_HIST"))?;
    let mut wait_hist = Vec::new();
    for item in hist.iter() {
        let (k, count) = item.map_err(map_err("WAIT_HIST"))?;
        wait_hist.push(HistEntry {
            stack: stacks.resolve(k.stack_id),
            bucket: k.bucket,
            count,
        });
    }
    Ok(wait_hist)
}

/// Zone labels of the lock addresses the programs proved to be zone locks.
fn read_zone_labels(ebpf: &Ebpf) -> Result<Vec<ZoneLabel>, AggregateError> {
    let zones: HashMap<&MapData, u64, ZoneInfo> =
        HashMap::try_from(get_map(ebpf, "ZONE_CACHE")?).map_err(map_err("ZONE_CACHE"))?;
    let mut zone_labels = Vec::new();
    for item in zones.iter() {
        let (addr, z) = item.map_err(map_err("ZONE_CACHE"))?;
        if z.is_zone == 0 {
            continue;
        }
        let end = z.name.iter().position(|&b| b == 0).unwrap_or(z.name.len());
        zone_labels.push(ZoneLabel {
            lock_addr: addr,
            node: z.node,
            zone_idx: z.zone_idx,
            name: String::from_utf8_lossy(&z.name[..end]).into_owned(),
        });
    }
    Ok(zone_labels)
}

/// Per-CPU values of one counter (index = CPU).
pub fn read_counter_per_cpu(ebpf: &Ebpf, idx: u32) -> Result<Vec<u64>, AggregateError> {
    let arr: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(get_map(ebpf, "COUNTERS")?).map_err(map_err("COUNTERS"))?;
    let v = arr.get(&idx, 0).map_err(map_err("COUNTERS"))?;
    Ok(v.iter().copied().collect())
}

/// Callers whose `consume_skb` is the deferred-list flush on the allocating CPU.
pub const DEFER_FLUSH_CALLERS: &[&str] = &["skb_defer_free_flush", "net_rx_action"];

/// SKB tables: the alloc x free matrix, free sites, and per-CPU defer outcomes.
pub struct SkbTables {
    pub matrix: Vec<SkbCell>,
    pub sites: Vec<SkbSite>,
    pub defer: Vec<SkbDefer>,
}

pub fn read_skb_tables(ebpf: &Ebpf, ksyms: Option<&Kallsyms>) -> Result<SkbTables, AggregateError> {
    let matrix_map: HashMap<&MapData, CpuPairKey, u64> =
        HashMap::try_from(get_map(ebpf, "SKB_MATRIX")?).map_err(map_err("SKB_MATRIX"))?;
    let sites_map: HashMap<&MapData, SkbSiteKey, SkbSiteVal> =
        HashMap::try_from(get_map(ebpf, "SKB_SITES")?).map_err(map_err("SKB_SITES"))?;
    let mut matrix = Vec::new();
    for item in matrix_map.iter() {
        let (k, count) = item.map_err(map_err("SKB_MATRIX"))?;
        matrix.push(SkbCell {
            alloc_cpu: k.alloc_cpu,
            free_cpu: k.free_cpu,
            count,
        });
    }
    matrix.sort_by_key(|c| (c.alloc_cpu, c.free_cpu));

    // Merge call sites by caller symbol: offsets inside one caller are one site.
    let mut merged: std::collections::BTreeMap<(u32, String, u32, u32), SkbSite> =
        Default::default();
    for item in sites_map.iter() {
        let (k, v) = item.map_err(map_err("SKB_SITES"))?;
        let function = profiler_common::skb_func::NAMES
            .get(k.func as usize)
            .copied()
            .unwrap_or("?");
        let caller = caller_name(ksyms, k.location);
        let e = merged
            .entry((k.func, caller.clone(), k.cpu, k.tid))
            .or_insert_with(|| SkbSite {
                function: function.into(),
                caller,
                cpu: k.cpu,
                count: 0,
                remote: 0,
                cross_node: 0,
                tid: task_of(k.tid),
            });
        e.count += v.count;
        e.remote += v.remote;
        e.cross_node += v.cross_node;
    }
    let sites: Vec<SkbSite> = merged.into_values().collect();

    let mut defer: std::collections::BTreeMap<u32, SkbDefer> = Default::default();
    let per_cpu_into = |idx: u32,
                        defer: &mut std::collections::BTreeMap<u32, SkbDefer>,
                        set: fn(&mut SkbDefer, u64)|
     -> Result<(), AggregateError> {
        for (cpu, &n) in read_counter_per_cpu(ebpf, idx)?
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
        {
            set(defer.entry(cpu as u32).or_default(), n);
        }
        Ok(())
    };
    per_cpu_into(counter::SKB_DEFER_IPIS, &mut defer, |d, n| d.ipis = n)?;
    per_cpu_into(counter::DEFER_CALLS, &mut defer, |d, n| d.calls = n)?;
    per_cpu_into(counter::DEFER_QUEUED, &mut defer, |d, n| d.deferred = n)?;
    per_cpu_into(counter::DEFER_LOCAL, &mut defer, |d, n| d.immediate = n)?;
    for s in sites
        .iter()
        .filter(|s| s.function == "consume_skb" && DEFER_FLUSH_CALLERS.contains(&s.caller.as_str()))
    {
        defer.entry(s.cpu).or_default().flushed += s.count;
    }
    let defer = defer
        .into_iter()
        .map(|(cpu, d)| SkbDefer { cpu, ..d })
        .collect();
    Ok(SkbTables {
        matrix,
        sites,
        defer,
    })
}

/// Symbol of a call site, without offset; "unknown" without one (before 6.3,
/// `consume_skb` had no `location`).
/// A key's thread id: None for keys made without `--tasks`.
fn task_of(tid: u32) -> Option<u32> {
    (tid != NO_TASK).then_some(tid)
}

/// The threads `--tasks` named, by tid, and their cgroups with paths resolved now (a
/// cgroup gone by now keeps its id, without a path).
pub fn read_tasks(
    ebpf: &Ebpf,
    cgroup_paths: &mut crate::kernel::cgroup::PathCache,
) -> Result<(Vec<TaskInfo>, Vec<CgroupInfo>), AggregateError> {
    let m: HashMap<&MapData, u32, KernelTask> =
        HashMap::try_from(get_map(ebpf, "TASKS")?).map_err(map_err("TASKS"))?;
    let mut tasks = Vec::new();
    for item in m.iter() {
        let (tid, t) = item.map_err(map_err("TASKS"))?;
        tasks.push(task_info(tid, &t));
    }
    tasks.sort_by_key(|t| t.tid);
    let ids: std::collections::BTreeSet<u64> = tasks.iter().filter_map(|t| t.cgroup_id).collect();
    let cgroups = cgroup_paths
        .paths(&ids)
        .into_iter()
        .map(|(id, path)| CgroupInfo { id, path })
        .collect();
    Ok((tasks, cgroups))
}

fn task_info(tid: u32, t: &KernelTask) -> TaskInfo {
    let end = t.comm.iter().position(|&b| b == 0).unwrap_or(t.comm.len());
    TaskInfo {
        tid,
        pid: t.tgid,
        comm: String::from_utf8_lossy(&t.comm[..end]).into_owned(),
        // 0: the kernel had no cgroup v2 id for it.
        cgroup_id: (t.cgroup_id != 0).then_some(t.cgroup_id),
    }
}

fn caller_name(ksyms: Option<&Kallsyms>, addr: u64) -> String {
    if addr == 0 {
        return "unknown".into();
    }
    match ksyms.and_then(|k| k.resolve(addr)) {
        Some(r) => crate::kernel::symbolize::base_name(r.name).to_string(),
        None => format!("{addr:#x}"),
    }
}

/// Sampled page flows, scaled back to estimates of all pages.
pub fn read_page_flows(
    ebpf: &Ebpf,
    sample: u32,
    map_full: u64,
) -> Result<(Vec<PageCell>, PageTracking), AggregateError> {
    let n = u64::from(sample.max(1));
    let m: HashMap<&MapData, CpuPairKey, u64> =
        HashMap::try_from(get_map(ebpf, "PAGE_MATRIX")?).map_err(map_err("PAGE_MATRIX"))?;
    let mut cells = Vec::new();
    for item in m.iter() {
        let (k, pages) = item.map_err(map_err("PAGE_MATRIX"))?;
        cells.push(PageCell {
            alloc_cpu: k.alloc_cpu,
            free_cpu: k.free_cpu,
            pages: pages * n,
        });
    }
    cells.sort_by_key(|c| (c.alloc_cpu, c.free_cpu));
    let sum_per_cpu = |name: &'static str, len: u32| -> Result<Vec<u64>, AggregateError> {
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(get_map(ebpf, name)?).map_err(map_err(name))?;
        (0..len)
            .map(|i| {
                arr.get(&i, 0)
                    .map(|v| v.iter().sum::<u64>() * n)
                    .map_err(map_err(name))
            })
            .collect()
    };
    let lifetime = sum_per_cpu("PAGE_LIFETIME", profiler_common::HIST_BUCKETS)?;
    let orders = sum_per_cpu("PAGE_ORDER", profiler_common::PAGE_ORDERS)?;
    Ok((
        cells,
        PageTracking {
            sample_one_in: sample.max(1),
            pages_by_order: orders,
            lifetime_hist: lifetime
                .into_iter()
                .enumerate()
                .filter(|(_, c)| *c > 0)
                .map(|(b, c)| (b as u32, c))
                .collect(),
            map_full,
        },
    ))
}
