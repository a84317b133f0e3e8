//! Reading the in-kernel aggregates back: lock waits per (stack, CPU, lock), histograms,
//! zone labels, PCP counters and loss counters, symbolized into recording tables.
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray, StackTraceMap},
};
use profiler_common::{HistKey, LockKey, LockVal, PageCounters, ZoneInfo, counter};

use crate::{
    recording::{Counters, CpuPages, HistEntry, LockWait, StackInterner, ZoneLabel},
    symbolize::Kallsyms,
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
    }
}

/// PCP counters per CPU (only CPUs with any activity, or in `cpus`).
pub fn read_pages(ebpf: &Ebpf, cpus: &[u32]) -> Result<Vec<CpuPages>, AggregateError> {
    let arr: PerCpuArray<&MapData, PageCounters> =
        PerCpuArray::try_from(get_map(ebpf, "PAGES")?).map_err(map_err("PAGES"))?;
    let v = arr.get(&0, 0).map_err(map_err("PAGES"))?;
    let mut out = Vec::new();
    for (cpu, p) in v.iter().enumerate() {
        let cpu = cpu as u32;
        let active = p.refill_events + p.buddy_events + p.drain_events > 0;
        if active || cpus.contains(&cpu) {
            out.push(CpuPages {
                cpu,
                refill_events: p.refill_events,
                refill_pages: p.refill_pages,
                buddy_events: p.buddy_events,
                buddy_pages: p.buddy_pages,
                drain_events: p.drain_events,
                drain_pages: p.drain_pages,
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

/// Reads lock waits, stacks, histograms and zone labels, symbolizing with `ksyms`.
pub fn read_lock_tables(
    ebpf: &Ebpf,
    ksyms: Option<&Kallsyms>,
) -> Result<LockTables, AggregateError> {
    let stats: HashMap<&MapData, LockKey, LockVal> =
        HashMap::try_from(get_map(ebpf, "LOCK_STATS")?).map_err(map_err("LOCK_STATS"))?;
    let stack_map: StackTraceMap<&MapData> =
        StackTraceMap::try_from(get_map(ebpf, "STACKS")?).map_err(map_err("STACKS"))?;
    let hist: HashMap<&MapData, HistKey, u64> =
        HashMap::try_from(get_map(ebpf, "WAIT_HIST")?).map_err(map_err("WAIT_HIST"))?;
    let zones: HashMap<&MapData, u64, ZoneInfo> =
        HashMap::try_from(get_map(ebpf, "ZONE_CACHE")?).map_err(map_err("ZONE_CACHE"))?;

    let mut interner = StackInterner::default();
    // Kernel stack id -> recording stack index; each id is read and symbolized once.
    let mut by_id: std::collections::HashMap<i32, Option<u32>> = Default::default();
    let mut unsymbolized = 0u64;
    let mut resolve = |id: i32, interner: &mut StackInterner| -> Option<u32> {
        if id < 0 {
            return None;
        }
        if let Some(&s) = by_id.get(&id) {
            return s;
        }
        let s = stack_map.get(&(id as u32), 0).ok().map(|st| {
            let frames = st
                .frames()
                .iter()
                .map(|f| {
                    let name = match ksyms {
                        Some(k) if k.resolve(f.ip).is_some() => k.format_frame(f.ip),
                        _ => {
                            unsymbolized += 1;
                            format!("{:#x}", f.ip)
                        }
                    };
                    interner.frame(name)
                })
                .collect();
            interner.stack(frames)
        });
        by_id.insert(id, s);
        s
    };

    let mut lock_waits = Vec::new();
    for item in stats.iter() {
        let (k, v) = item.map_err(map_err("LOCK_STATS"))?;
        let stack = resolve(k.stack_id, &mut interner);
        lock_waits.push(LockWait {
            stack,
            stack_error: (k.stack_id < 0).then_some(k.stack_id),
            cpu: k.cpu,
            lock_addr: k.lock_addr,
            lock_flags: v.flags,
            count: v.count,
            total_ns: v.total_ns,
            max_ns: v.max_ns,
        });
    }
    let mut wait_hist = Vec::new();
    for item in hist.iter() {
        let (k, count) = item.map_err(map_err("WAIT_HIST"))?;
        wait_hist.push(HistEntry {
            stack: resolve(k.stack_id, &mut interner),
            bucket: k.bucket,
            count,
        });
    }
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
    // Deterministic order makes recordings diffable.
    lock_waits.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.cpu.cmp(&b.cpu)));
    wait_hist.sort_by_key(|h| (h.stack, h.bucket));
    zone_labels.sort_by_key(|z| z.lock_addr);
    let (frames, stacks) = interner.finish();
    Ok(LockTables {
        frames,
        stacks,
        lock_waits,
        wait_hist,
        zones: zone_labels,
        unsymbolized_frames: unsymbolized,
    })
}
