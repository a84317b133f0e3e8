//! `zoneprof report`: where zone-lock time went, per CPU and per side, as text or as a
//! JSON document whose keys are a contract (see docs/report-json.md): keys are added,
//! never renamed.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    kernel::map_entries::{MapSize, maps_of_loss},
    model::analysis::{self, ClassifiedWait, SideNs},
    model::blame::{self, Blame, BlameCell, BlameNodeCell},
    model::classify::{LockClass, Side},
    model::numa::{self, NodeWait},
    model::observer::{self, ObserverCost},
    model::recording::{Counters, LossUnit, PcpCount, PcpMethod, Recording},
    model::tasks::{self, By, CgroupRow, TaskSkbRow, TaskWaitRow},
    model::units::{SatSum, fmt_count, fmt_ns, fmt_pct},
};

pub const REPORT_FORMAT: &str = "zoneprof-report";
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub version: u32,
    pub host: ReportHost,
    pub start_unix_ms: u64,
    pub duration_s: f64,
    pub end_reason: String,
    pub command: Option<ReportCommand>,
    pub totals: Totals,
    /// What zoneprof's own programs added under zone->lock.
    pub observer_cost: ObserverCost,
    pub per_cpu: Vec<PerCpu>,
    pub free_triggers: Vec<TriggerRow>,
    pub zones: Vec<ZoneRow>,
    /// Zone-lock wait on each NUMA node's zones (the node of the memory, not of the CPU).
    pub zone_nodes: Vec<NodeWait>,
    pub top_zone_stacks: Vec<StackRow>,
    pub top_other_locks: Vec<OtherLockRow>,
    pub wait_histograms: Vec<HistRow>,
    pub probes: Vec<ProbeRow>,
    pub losses: Counters,
    /// Each aggregation map's size as loaded (`--map-entries`); absent for recordings
    /// that do not say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub map_entries: Vec<MapSize>,
    pub not_observable: Vec<NotObservable>,
    /// SKB frees per (alloc CPU, free CPU), non-zero cells only.
    pub skb_matrix: Vec<SkbMatrixRow>,
    /// SKB frees per (free function, caller), summed over CPUs.
    pub skb_free_sites: Vec<SkbSiteRow>,
    /// SKB frees per (alloc node, free node).
    pub skb_node_matrix: Vec<SkbMatrixRow>,
    /// Deferred-free outcomes and their cost per CPU.
    pub skb_defer: Vec<crate::model::recording::SkbDefer>,
    /// Estimated pages per (alloc CPU, free CPU) from sampled page tracking.
    pub page_matrix: Vec<PageMatrixRow>,
    /// Sampling of page tracking; null when it was off.
    pub page_tracking: Option<crate::model::recording::PageTracking>,
    /// Estimated pages per (alloc node, free node): `page_matrix` summed per node.
    pub page_node_matrix: Vec<PageNodeRow>,
    /// Zone-lock wait attributed to (alloc CPU, free CPU) pairs, most wait first.
    pub zone_wait_blame: Vec<BlameCell>,
    /// The attribution's headline, source and what it left out.
    pub zone_wait_blame_summary: BlameSummary,
    /// Whether lock waits and SKB frees were keyed by thread (`record --tasks`); the
    /// three tables below are empty without.
    pub tasks_recorded: bool,
    /// Lock wait per thread, most zone-lock wait first.
    pub lock_wait_tasks: Vec<TaskWaitRow>,
    /// SKB frees per thread, most frees first.
    pub skb_free_tasks: Vec<TaskSkbRow>,
    /// Lock wait and SKB frees per cgroup, over its threads.
    pub cgroups: Vec<CgroupRow>,
    /// `zone_wait_blame` summed per (alloc node, free node), most wait first.
    pub zone_wait_blame_nodes: Vec<BlameNodeCell>,
}

/// The headline of [`Report::zone_wait_blame`] (docs/report-json.md).
#[derive(Debug, Serialize)]
pub struct BlameSummary {
    /// The weights: `page_flows`, `skb_matrix`, or null (nothing to attribute with).
    pub source: Option<blame::Source>,
    /// Page flows: one page in this many was tracked.
    pub sample_one_in: Option<u32>,
    pub headline: String,
    /// Where the weights came from and what was not attributed, in words.
    pub basis: Option<String>,
    /// Percent of all zone-lock wait attributed to pairs of different CPUs; null without
    /// zone-lock wait or a source.
    pub explained_pct: Option<f64>,
    pub zone_lock_wait_ns: u64,
    pub cross_cpu_wait_ns: u64,
    pub same_cpu_wait_ns: u64,
    /// Zone-lock wait of neither side: not attributed.
    pub not_attributed_other_side_ns: u64,
    /// Alloc- or free-side wait on CPUs the flows never saw: not attributed.
    pub not_attributed_no_flows_ns: u64,
    /// Samples in the whole source matrix.
    pub samples: u64,
    /// The cross-CPU pair with the most wait; null when none.
    pub top_pair: Option<TopPair>,
    /// Wait attributed to pairs of CPUs on different NUMA nodes.
    pub cross_node_wait_ns: u64,
    /// Percent of all zone-lock wait attributed to pairs of CPUs on different NUMA nodes;
    /// null on a single-node host, without zone-lock wait or without a source.
    pub cross_node_pct: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TopPair {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    pub wait_ns: u64,
    /// Percent of all zone-lock wait.
    pub share_pct: f64,
    pub samples: u64,
}

impl BlameSummary {
    fn of(b: &Blame) -> BlameSummary {
        BlameSummary {
            source: b.source,
            sample_one_in: b.sample_one_in,
            headline: b.headline(),
            basis: b.basis(),
            explained_pct: b.explained_pct(),
            zone_lock_wait_ns: b.zone_wait_ns,
            cross_cpu_wait_ns: b.cross_cpu_ns,
            same_cpu_wait_ns: b.same_cpu_ns,
            not_attributed_other_side_ns: b.other_side_ns,
            not_attributed_no_flows_ns: b.no_flows_ns,
            samples: b.samples,
            top_pair: b.top_pair().map(|c| TopPair {
                alloc_cpu: c.alloc_cpu,
                free_cpu: c.free_cpu,
                wait_ns: c.wait_ns,
                share_pct: b.share_pct(c).unwrap_or(0.0),
                samples: c.samples,
            }),
            cross_node_wait_ns: b.cross_node_ns,
            cross_node_pct: b.cross_node_pct(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SkbMatrixRow {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct SkbSiteRow {
    pub function: String,
    pub caller: String,
    pub count: u64,
    /// Freed on another CPU than the one that allocated it.
    pub remote: u64,
    pub cross_node: u64,
    /// remote / count (0..1).
    pub remote_ratio: f64,
    /// Frees per CPU at this site: [cpu, count].
    pub cpus: Vec<(u32, u64)>,
}

#[derive(Debug, Serialize)]
pub struct PageMatrixRow {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    /// Estimated base pages (sampled count x sampling rate).
    pub pages: u64,
}

#[derive(Debug, Serialize)]
pub struct PageNodeRow {
    pub alloc_node: u32,
    pub free_node: u32,
    pub pages: u64,
}

#[derive(Debug, Serialize)]
pub struct ReportHost {
    pub hostname: String,
    pub kernel_release: String,
    pub online_cpus: usize,
    pub numa_nodes: usize,
}

#[derive(Debug, Serialize)]
pub struct ReportCommand {
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct Totals {
    pub zone_lock_wait_ns: SideNs,
    /// Zone-lock wait the kernel attributed by proven lock address (cross-check).
    pub zone_lock_wait_by_address_ns: u64,
    pub other_lock_wait_ns: u64,
    pub contentions: u64,
    pub pcp_refill_pages: u64,
    pub pcp_drain_pages: u64,
    pub pcp_refill_events: u64,
    pub pcp_drain_events: u64,
    /// How the PCP pages above were counted, per side.
    pub pcp_method: PcpMethod,
    /// Zone-lock wait as a share of all recorded CPU time (duration x CPUs), percent.
    pub zone_lock_wait_pct_of_cpu_time: f64,
}

#[derive(Debug, Serialize)]
pub struct Pct {
    pub alloc: f64,
    pub free: f64,
}

#[derive(Debug, Serialize)]
pub struct PerCpu {
    pub cpu: u32,
    pub node: u32,
    pub zone_lock_wait_ns: SideNs,
    /// Percent of this CPU's recorded time spent waiting on the zone lock, per side.
    pub zone_lock_wait_pct: Pct,
    pub other_lock_wait_ns: u64,
    pub contentions: u64,
    /// Base pages (4 KiB units: sum of 2^order) moved buddy -> this CPU's PCP lists.
    pub pcp_refill_pages: u64,
    /// Base pages moved this CPU's PCP lists -> buddy.
    pub pcp_drain_pages: u64,
    pub pcp_refill_events: u64,
    pub pcp_drain_events: u64,
    /// `__rmqueue_pcplist` calls and time inside (kprobe/fentry; 0 when not attached).
    pub rmqueue_calls: u64,
    pub rmqueue_ns: u64,
    /// `free_pcppages_bulk` calls and pages (kprobe/fentry; 0 when not attached).
    pub pcp_bulk_free_calls: u64,
    pub pcp_bulk_free_pages: u64,
    /// Pages refilled counted per batch by `rmqueue_pcplist` (0 when not attached).
    pub pcp_refill_batch_pages: u64,
}

impl PerCpu {
    /// Column headings of the per-CPU table, shared by the text and HTML reports.
    pub const COLUMNS: [&'static str; 9] = [
        "CPU",
        "node",
        "alloc wait",
        "alloc %",
        "free wait",
        "free %",
        "other locks",
        "PCP refill pages",
        "PCP drain pages",
    ];

    /// The row's cells in `COLUMNS` order, in human units.
    pub fn cells(&self) -> [String; 9] {
        [
            self.cpu.to_string(),
            self.node.to_string(),
            fmt_ns(self.zone_lock_wait_ns.alloc),
            fmt_pct(self.zone_lock_wait_pct.alloc),
            fmt_ns(self.zone_lock_wait_ns.free),
            fmt_pct(self.zone_lock_wait_pct.free),
            fmt_ns(self.other_lock_wait_ns),
            fmt_count(self.pcp_refill_pages),
            fmt_count(self.pcp_drain_pages),
        ]
    }

    /// Any zone-lock wait, other lock wait or PCP traffic: large hosts list only these.
    pub fn is_busy(&self) -> bool {
        [
            self.zone_lock_wait_ns.total(),
            self.other_lock_wait_ns,
            self.pcp_refill_pages,
            self.pcp_drain_pages,
        ]
        .into_iter()
        .any(|v| v > 0)
    }
}

#[derive(Debug, Serialize)]
pub struct TriggerRow {
    pub trigger: &'static str,
    pub label: &'static str,
    pub wait_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct ZoneRow {
    pub lock_addr: String,
    pub label: String,
    pub wait_ns: u64,
    pub contentions: u64,
    pub node: u32,
    /// Zone name (`Normal`, `DMA32`, …).
    pub zone: String,
    /// `wait_ns` split by side.
    pub wait_by_side_ns: SideNs,
    /// Wait by CPUs of another node than the zone's.
    pub remote_cpu_wait_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct StackRow {
    pub class: String,
    pub side: Option<&'static str>,
    pub wait_ns: u64,
    pub count: u64,
    pub max_ns: u64,
    pub cpus: Vec<u32>,
    /// Leaf first (the spin-lock slowpath first).
    pub frames: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OtherLockRow {
    pub lock: String,
    pub wait_ns: u64,
    pub count: u64,
    pub max_ns: u64,
    pub top_stack: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HistBucket {
    pub low_ns: u64,
    pub high_ns: u64,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct HistRow {
    pub class: String,
    pub buckets: Vec<HistBucket>,
}

#[derive(Debug, Serialize)]
pub struct ProbeRow {
    pub name: String,
    pub method: String,
    pub target: String,
    pub attached: bool,
    pub reason: Option<String>,
    /// Every method tried, in order of preference, with its error (null when it attached).
    pub attempts: Vec<crate::model::recording::AttachAttempt>,
}

#[derive(Debug, Serialize)]
pub struct NotObservable {
    pub what: String,
    pub why: String,
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Alloc => "alloc",
        Side::Free => "free",
    }
}

/// The coarse class used for histograms and the other-locks table.
fn class_group(c: &LockClass) -> String {
    match c {
        LockClass::ZoneAlloc => "zone lock, alloc side".into(),
        LockClass::ZoneFree(_) => "zone lock, free side".into(),
        LockClass::ZoneOther(_) => "zone lock, other".into(),
        other => other.label(),
    }
}

pub fn build(rec: &Recording, top: usize) -> Report {
    let waits = analysis::classify_waits(rec);
    let per_cpu = per_cpu_rows(rec, &waits);
    let blame = blame::attribute(rec, &waits);
    let lock_wait_tasks = tasks::lock_wait_by_task(rec, &waits);
    let skb_free_tasks = tasks::skb_free_by_task(rec);
    let zone_waits = numa::zone_waits(&rec.host, &rec.zones, &waits);
    Report {
        format: REPORT_FORMAT,
        version: REPORT_VERSION,
        host: ReportHost {
            hostname: rec.host.hostname.clone(),
            kernel_release: rec.host.kernel_release.clone(),
            online_cpus: rec.host.online_cpus.len(),
            numa_nodes: rec.host.numa_nodes.len().max(1),
        },
        start_unix_ms: rec.start_unix_ms,
        duration_s: rec.duration_s(),
        end_reason: rec.end_reason.clone(),
        command: rec.command.as_ref().map(|c| ReportCommand {
            argv: c.argv.clone(),
            exit_code: c.exit_code,
            signal: c.signal,
        }),
        totals: totals(rec, &waits, &per_cpu),
        observer_cost: observer::cost(rec, &waits),
        per_cpu,
        free_triggers: free_triggers(&waits),
        zones: zone_rows(&zone_waits),
        zone_nodes: numa::node_waits(&rec.host, &zone_waits),
        top_zone_stacks: top_zone_stacks(rec, &waits, top),
        top_other_locks: top_other_locks(rec, &waits, top),
        wait_histograms: histograms(rec, &waits),
        probes: rec
            .probes
            .iter()
            .map(|p| ProbeRow {
                name: p.name.clone(),
                method: p.method.clone(),
                target: p.target.clone(),
                attached: p.attached,
                reason: p.reason.clone(),
                attempts: p.attempts.clone(),
            })
            .collect(),
        losses: rec.counters.clone(),
        map_entries: rec.settings.map_entries.clone(),
        not_observable: not_observable(rec),
        skb_matrix: rec
            .skb_matrix
            .iter()
            .map(|c| SkbMatrixRow {
                alloc_cpu: c.alloc_cpu,
                free_cpu: c.free_cpu,
                count: c.count,
            })
            .collect(),
        skb_free_sites: skb_sites(rec),
        skb_node_matrix: skb_node_matrix(rec),
        skb_defer: rec.skb_defer.clone(),
        page_matrix: rec
            .page_matrix
            .iter()
            .map(|c| PageMatrixRow {
                alloc_cpu: c.alloc_cpu,
                free_cpu: c.free_cpu,
                pages: c.pages,
            })
            .collect(),
        page_tracking: rec.page_tracking.clone(),
        page_node_matrix: numa::node_matrix(
            &rec.host,
            rec.page_matrix
                .iter()
                .map(|c| (c.alloc_cpu, c.free_cpu, c.pages)),
        )
        .into_iter()
        .map(|(alloc_node, free_node, pages)| PageNodeRow {
            alloc_node,
            free_node,
            pages,
        })
        .collect(),
        zone_wait_blame_summary: BlameSummary::of(&blame),
        zone_wait_blame: blame.cells,
        tasks_recorded: rec.settings.tasks,
        cgroups: tasks::by_cgroup(&lock_wait_tasks, &skb_free_tasks),
        lock_wait_tasks,
        skb_free_tasks,
        zone_wait_blame_nodes: blame.nodes,
    }
}

/// One row per recorded CPU, and per CPU that waited or moved PCP pages.
fn per_cpu_rows(rec: &Recording, waits: &[ClassifiedWait<'_>]) -> Vec<PerCpu> {
    let per_cpu_wait = analysis::per_cpu_wait(waits);
    let dur_ns = rec.duration_ns.max(1) as f64;
    let pcp_by_cpu: BTreeMap<u32, _> = rec.pcp.iter().map(|p| (p.cpu, p)).collect();
    let mut cpus: Vec<u32> = rec.cpus.clone();
    cpus.extend(per_cpu_wait.keys().copied());
    cpus.extend(pcp_by_cpu.keys().copied());
    cpus.sort_unstable();
    cpus.dedup();
    cpus.iter()
        .map(|&cpu| {
            let w = per_cpu_wait.get(&cpu).cloned().unwrap_or_default();
            let p = pcp_by_cpu.get(&cpu);
            PerCpu {
                cpu,
                node: rec.host.node_of(cpu),
                zone_lock_wait_ns: w.zone,
                zone_lock_wait_pct: Pct {
                    alloc: 100.0 * w.zone.alloc as f64 / dur_ns,
                    free: 100.0 * w.zone.free as f64 / dur_ns,
                },
                other_lock_wait_ns: w.other_ns,
                contentions: w.contentions,
                pcp_refill_pages: p.map_or(0, |p| p.refill_pages),
                pcp_drain_pages: p.map_or(0, |p| p.drain_pages),
                pcp_refill_events: p.map_or(0, |p| p.refill_events),
                pcp_drain_events: p.map_or(0, |p| p.drain_events),
                rmqueue_calls: p.map_or(0, |p| p.rmqueue_calls),
                rmqueue_ns: p.map_or(0, |p| p.rmqueue_ns),
                pcp_bulk_free_calls: p.map_or(0, |p| p.bulk_free_calls),
                pcp_bulk_free_pages: p.map_or(0, |p| p.bulk_free_pages),
                pcp_refill_batch_pages: p.map_or(0, |p| p.refill_batch_pages),
            }
        })
        .collect()
}

fn totals(rec: &Recording, waits: &[ClassifiedWait<'_>], per_cpu: &[PerCpu]) -> Totals {
    let zone = analysis::zone_totals(waits);
    let dur_ns = rec.duration_ns.max(1) as f64;
    Totals {
        zone_lock_wait_ns: zone,
        zone_lock_wait_by_address_ns: rec.counters.zone_wait_ns,
        other_lock_wait_ns: per_cpu.iter().map(|c| c.other_lock_wait_ns).sat_sum(),
        contentions: per_cpu.iter().map(|c| c.contentions).sat_sum(),
        pcp_refill_pages: rec.pcp.iter().map(|p| p.refill_pages).sat_sum(),
        pcp_drain_pages: rec.pcp.iter().map(|p| p.drain_pages).sat_sum(),
        pcp_refill_events: rec.pcp.iter().map(|p| p.refill_events).sat_sum(),
        pcp_drain_events: rec.pcp.iter().map(|p| p.drain_events).sat_sum(),
        pcp_method: PcpMethod::of(&rec.probes),
        zone_lock_wait_pct_of_cpu_time: 100.0 * zone.total() as f64
            / (dur_ns * rec.cpus.len().max(1) as f64),
    }
}

/// Free-side zone-lock wait per trigger, longest first.
fn free_triggers(waits: &[ClassifiedWait<'_>]) -> Vec<TriggerRow> {
    let mut triggers: BTreeMap<&'static str, TriggerRow> = BTreeMap::new();
    for cw in waits {
        if let LockClass::ZoneFree(t) = cw.class {
            let row = triggers
                .entry(analysis::trigger_name(t))
                .or_insert(TriggerRow {
                    trigger: analysis::trigger_name(t),
                    label: analysis::trigger_label(t),
                    wait_ns: 0,
                });
            row.wait_ns = row.wait_ns.saturating_add(cw.wait.total_ns);
        }
    }
    let mut rows: Vec<TriggerRow> = triggers.into_values().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.wait_ns));
    rows
}

/// Wait on each labelled zone's lock address, longest first.
fn zone_rows(zones: &[numa::ZoneWait]) -> Vec<ZoneRow> {
    let mut rows: Vec<ZoneRow> = zones
        .iter()
        .map(|z| ZoneRow {
            lock_addr: format!("{:#x}", z.lock_addr),
            label: format!("node {} / zone {}", z.node, z.zone),
            wait_ns: z.wait_ns.total(),
            contentions: z.contentions,
            node: z.node,
            zone: z.zone.clone(),
            wait_by_side_ns: z.wait_ns,
            remote_cpu_wait_ns: z.remote_cpu_wait_ns,
        })
        .collect();
    // Stable: equal waits keep (node, zone) order.
    rows.sort_by_key(|r| std::cmp::Reverse(r.wait_ns));
    rows
}

/// Free sites merged over CPUs, most frees first.
pub fn skb_sites(rec: &Recording) -> Vec<SkbSiteRow> {
    let mut by_site: BTreeMap<(String, String), SkbSiteRow> = BTreeMap::new();
    for s in &rec.skb_sites {
        let row = by_site
            .entry((s.function.clone(), s.caller.clone()))
            .or_insert_with(|| SkbSiteRow {
                function: s.function.clone(),
                caller: s.caller.clone(),
                count: 0,
                remote: 0,
                cross_node: 0,
                remote_ratio: 0.0,
                cpus: Vec::new(),
            });
        row.count = row.count.saturating_add(s.count);
        row.remote = row.remote.saturating_add(s.remote);
        row.cross_node = row.cross_node.saturating_add(s.cross_node);
        row.cpus.push((s.cpu, s.count));
    }
    let mut rows: Vec<SkbSiteRow> = by_site.into_values().collect();
    for r in &mut rows {
        r.remote_ratio = if r.count > 0 {
            r.remote as f64 / r.count as f64
        } else {
            0.0
        };
        r.cpus.sort_unstable();
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.count));
    rows
}

fn skb_node_matrix(rec: &Recording) -> Vec<SkbMatrixRow> {
    let cells = rec
        .skb_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.count));
    numa::node_matrix(&rec.host, cells)
        .into_iter()
        .map(|(a, f, count)| SkbMatrixRow {
            alloc_cpu: a,
            free_cpu: f,
            count,
        })
        .collect()
}

fn frames_of(rec: &Recording, stack: Option<u32>) -> Vec<String> {
    match stack {
        Some(s) => rec.stack_frames(s).into_iter().map(String::from).collect(),
        None => vec!["[stack unavailable]".into()],
    }
}

fn top_zone_stacks(rec: &Recording, waits: &[ClassifiedWait<'_>], top: usize) -> Vec<StackRow> {
    // Merge CPUs and lock addresses of one stack.
    let mut by_stack: BTreeMap<(Option<u32>, String), StackRow> = BTreeMap::new();
    for cw in waits.iter().filter(|cw| cw.class.is_zone()) {
        let key = (cw.wait.stack, cw.class.label());
        let row = by_stack.entry(key).or_insert_with(|| StackRow {
            class: cw.class.label(),
            side: cw.class.side().map(side_name),
            wait_ns: 0,
            count: 0,
            max_ns: 0,
            cpus: Vec::new(),
            frames: frames_of(rec, cw.wait.stack),
        });
        row.wait_ns = row.wait_ns.saturating_add(cw.wait.total_ns);
        row.count = row.count.saturating_add(cw.wait.count);
        row.max_ns = row.max_ns.max(cw.wait.max_ns);
        if !row.cpus.contains(&cw.wait.cpu) {
            row.cpus.push(cw.wait.cpu);
        }
    }
    let mut rows: Vec<StackRow> = by_stack.into_values().collect();
    for r in &mut rows {
        r.cpus.sort_unstable();
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.wait_ns));
    rows.truncate(top);
    rows
}

fn top_other_locks(rec: &Recording, waits: &[ClassifiedWait<'_>], top: usize) -> Vec<OtherLockRow> {
    struct Acc {
        wait: u64,
        count: u64,
        max: u64,
        best: (u64, Option<u32>),
    }
    let mut by_lock: BTreeMap<String, Acc> = BTreeMap::new();
    for cw in waits.iter().filter(|cw| !cw.class.is_zone()) {
        let a = by_lock.entry(class_group(&cw.class)).or_insert(Acc {
            wait: 0,
            count: 0,
            max: 0,
            best: (0, None),
        });
        a.wait = a.wait.saturating_add(cw.wait.total_ns);
        a.count = a.count.saturating_add(cw.wait.count);
        a.max = a.max.max(cw.wait.max_ns);
        if cw.wait.total_ns >= a.best.0 {
            a.best = (cw.wait.total_ns, cw.wait.stack);
        }
    }
    let mut rows: Vec<OtherLockRow> = by_lock
        .into_iter()
        .map(|(lock, a)| OtherLockRow {
            lock,
            wait_ns: a.wait,
            count: a.count,
            max_ns: a.max,
            top_stack: frames_of(rec, a.best.1),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.wait_ns));
    rows.truncate(top);
    rows
}

fn histograms(rec: &Recording, waits: &[ClassifiedWait<'_>]) -> Vec<HistRow> {
    // Histogram entries are per stack; a stack's class is that of its waits.
    let mut class_of_stack: BTreeMap<Option<u32>, String> = BTreeMap::new();
    for cw in waits {
        class_of_stack
            .entry(cw.wait.stack)
            .or_insert_with(|| class_group(&cw.class));
    }
    let mut by_class: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
    for h in &rec.wait_hist {
        let class = class_of_stack
            .get(&h.stack)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let n = by_class
            .entry(class)
            .or_default()
            .entry(h.bucket)
            .or_default();
        *n = n.saturating_add(h.count);
    }
    by_class
        .into_iter()
        .map(|(class, b)| HistRow {
            class,
            buckets: b
                .into_iter()
                .map(|(bucket, count)| HistBucket {
                    low_ns: 1u64 << bucket.min(63),
                    high_ns: 1u64
                        .checked_shl(bucket.saturating_add(1))
                        .unwrap_or(u64::MAX),
                    count,
                })
                .collect(),
        })
        .collect()
}

fn not_observable(rec: &Recording) -> Vec<NotObservable> {
    let mut out: Vec<NotObservable> = rec
        .probes
        .iter()
        .filter(|p| !p.attached)
        .map(|p| NotObservable {
            what: format!("{} ({})", p.name, p.target),
            why: p.reason.clone().unwrap_or_else(|| "not attached".into()),
        })
        .collect();
    let attached = |n: &str| rec.probes.iter().any(|p| p.name == n && p.attached);
    if !rec
        .probes
        .iter()
        .any(|p| p.name == "skb_attempt_defer_free")
    {
        out.push(NotObservable {
            what: "skb_attempt_defer_free (deferred vs immediate frees)".into(),
            why: "it has no tracepoint, and this recording has no kprobe/fentry probe for it"
                .into(),
        });
    }
    if (attached("consume_skb") || attached("kfree_skb"))
        && rec.skb_matrix.is_empty()
        && rec.counters.skb_frees > 0
    {
        out.push(NotObservable {
            what: "SKB alloc CPU".into(),
            why: "skb->alloc_cpu could not be read (struct sk_buff has no alloc_cpu before 5.19)"
                .into(),
        });
    }
    if attached("contention_end") && rec.counters.contention_end == 0 {
        out.push(NotObservable {
            what: "lock contention".into(),
            why: "the lock tracepoints attached but fired no event: no contention, or the \
                  kernel does not emit them for this lock type (guests without PV spinlocks)"
                .into(),
        });
    }
    out
}

/// "Observer cost under zone->lock: …", shared by the text and HTML reports.
pub fn observer_line(r: &Report) -> String {
    format!(
        "Observer cost under zone->lock: {}",
        observer::describe(&r.observer_cost, &r.totals.pcp_method)
    )
}

pub fn to_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Human-readable report.
pub fn to_text(r: &Report, top: usize) -> String {
    to_text_by(r, top, By::Cpu)
}

/// The text report with its breakdown table `by` CPU, thread or cgroup (`--by`; the
/// caller checks the recording has thread keys, `tasks::check`).
pub fn to_text_by(r: &Report, top: usize, by: By) -> String {
    let mut s = String::new();
    let _ = write_text(&mut s, r, top, by);
    s
}

fn write_text(s: &mut String, r: &Report, top: usize, by: By) -> std::fmt::Result {
    write_header(s, r)?;
    write_totals(s, r)?;
    write_nodes(s, r)?;
    match by {
        By::Cpu => write_per_cpu(s, r)?,
        By::Task => write_per_task(s, r, top)?,
        By::Cgroup => write_per_cgroup(s, r, top)?,
    }
    write_blame(s, r, top)?;
    write_free_triggers(s, r)?;
    write_zone_stacks(s, r, top)?;
    write_other_locks(s, r)?;
    write_histograms(s, r)?;
    write_skb_text(s, r, top)?;
    write_page_flows_text(s, r, top)?;
    write_probes(s, r)?;
    write_losses(s, r)?;
    write_not_observable(s, r)
}

/// Host, duration and the recorded command.
fn write_header(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(
        s,
        "zoneprof report: {} (Linux {}), {} CPUs, {} NUMA node(s); recorded {:.2} s, stopped by {}",
        r.host.hostname,
        r.host.kernel_release,
        r.host.online_cpus,
        r.host.numa_nodes,
        r.duration_s,
        r.end_reason
    )?;
    if let Some(c) = &r.command {
        let status = match (c.exit_code, c.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "still running when recording stopped".into(),
        };
        writeln!(s, "command: {} ({status})", c.argv.join(" "))?;
    }
    writeln!(s)
}

/// Zone-lock and other-lock wait, PCP pages, each zone, and the observer cost.
fn write_totals(s: &mut String, r: &Report) -> std::fmt::Result {
    let t = &r.totals;
    let z = t.zone_lock_wait_ns;
    writeln!(
        s,
        "Zone-lock wait: {} ({} of recorded CPU time): alloc side {}, free side {}, other {}",
        fmt_ns(z.total()),
        fmt_pct(t.zone_lock_wait_pct_of_cpu_time),
        fmt_ns(z.alloc),
        fmt_ns(z.free),
        fmt_ns(z.other)
    )?;
    writeln!(
        s,
        "Other contended locks: {}; {} contentions in all",
        fmt_ns(t.other_lock_wait_ns),
        fmt_count(t.contentions)
    )?;
    write_pcp_line(s, t)?;
    for zr in &r.zones {
        write!(
            s,
            "  {} ({}): {} over {} contentions",
            zr.label,
            zr.lock_addr,
            fmt_ns(zr.wait_ns),
            fmt_count(zr.contentions)
        )?;
        if zr.wait_ns > 0 {
            let w = zr.wait_by_side_ns;
            write!(
                s,
                " (alloc {}, free {}, other {}",
                fmt_ns(w.alloc),
                fmt_ns(w.free),
                fmt_ns(w.other)
            )?;
            if r.host.numa_nodes > 1 {
                write!(
                    s,
                    "; {} by CPUs of other nodes",
                    fmt_ns(zr.remote_cpu_wait_ns)
                )?;
            }
            write!(s, ")")?;
        }
        writeln!(s)?;
    }
    writeln!(s, "{}", observer_line(r))
}

/// Zone-lock wait per NUMA node (of the zone's memory), on hosts of several nodes.
fn write_nodes(s: &mut String, r: &Report) -> std::fmt::Result {
    if r.zone_nodes.len() < 2 {
        return Ok(());
    }
    writeln!(
        s,
        "\nPer NUMA node (zone-lock wait on the node's zones, by the node of the memory)"
    )?;
    writeln!(
        s,
        "  {:>4} {:>12} {:>12} {:>12} {:>12} {:>12} {:>16}  zones",
        "node", "wait", "alloc side", "free side", "other", "contentions", "by other nodes"
    )?;
    for n in &r.zone_nodes {
        let w = n.wait_ns;
        writeln!(
            s,
            "  {:>4} {:>12} {:>12} {:>12} {:>12} {:>12} {:>16}  {}",
            n.node,
            fmt_ns(w.total()),
            fmt_ns(w.alloc),
            fmt_ns(w.free),
            fmt_ns(w.other),
            fmt_count(n.contentions),
            fmt_ns(n.remote_cpu_wait_ns),
            if n.zones.is_empty() {
                "-".to_string()
            } else {
                n.zones.join(",")
            }
        )?;
    }
    let on_nodes: u64 = r.zone_nodes.iter().map(|n| n.wait_ns.total()).sat_sum();
    let unproven = r.totals.zone_lock_wait_ns.total().saturating_sub(on_nodes);
    if unproven > 0 {
        writeln!(
            s,
            "  ({} of zone-lock wait on addresses not proven to be a zone: no node)",
            fmt_ns(unproven)
        )?;
    }
    Ok(())
}

/// PCP pages refilled and drained, with how each side was counted.
fn write_pcp_line(s: &mut String, t: &Totals) -> std::fmt::Result {
    let m = t.pcp_method;
    let side = |c: PcpCount, pages: u64| match c {
        PcpCount::Off => "not recorded".to_string(),
        PcpCount::Batch => format!("{} (per batch, outside zone->lock)", fmt_count(pages)),
        PcpCount::Page => format!("{} (per page, under zone->lock)", fmt_count(pages)),
    };
    if m.refill == PcpCount::Off && m.drain == PcpCount::Off {
        writeln!(
            s,
            "PCP lists: not recorded (no PCP probe attached: see the probes)"
        )
    } else {
        writeln!(
            s,
            "PCP lists: pages refilled from the buddy allocator {}; drained to it {}",
            side(m.refill, t.pcp_refill_pages),
            side(m.drain, t.pcp_drain_pages)
        )
    }
}

/// The per-CPU table; over 16 CPUs, idle ones are counted, not listed.
fn write_per_cpu(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "\nPer CPU (zone-lock wait and % of that CPU's time)")?;
    // Right-aligned widths of PerCpu::COLUMNS.
    const WIDTHS: [usize; 9] = [5, 4, 12, 8, 12, 8, 12, 16, 16];
    let row = |s: &mut String, cells: &[&str]| -> std::fmt::Result {
        for (i, (cell, w)) in cells.iter().zip(WIDTHS).enumerate() {
            write!(s, "{}{cell:>w$}", if i == 0 { "" } else { " " })?;
        }
        writeln!(s)
    };
    row(s, &PerCpu::COLUMNS)?;
    let mut idle = 0;
    for c in &r.per_cpu {
        if !c.is_busy() && r.per_cpu.len() > 16 {
            idle += 1;
            continue;
        }
        let cells = c.cells();
        row(s, &cells.each_ref().map(String::as_str))?;
    }
    if idle > 0 {
        writeln!(s, "  ({idle} CPUs with no activity not shown)")?;
    }
    Ok(())
}

/// Writes `rows` as right-aligned columns (the first left-aligned), widths fitted.
fn write_columns(s: &mut String, head: &[&str], rows: &[Vec<String>]) -> std::fmt::Result {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |s: &mut String, cells: &mut dyn Iterator<Item = &str>| -> std::fmt::Result {
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i == 0 {
                write!(s, "  {cell:<w$}")?;
            } else {
                write!(s, "  {cell:>w$}")?;
            }
        }
        writeln!(s)
    };
    line(s, &mut head.iter().copied())?;
    for row in rows {
        line(s, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Column headings of the per-thread lock-wait table, shared by the text and HTML reports.
pub const TASK_WAIT_COLUMNS: [&str; 8] = [
    "thread (comm-tid)",
    "process",
    "cgroup",
    "zone alloc",
    "zone free",
    "zone other",
    "other locks",
    "contentions",
];

/// A thread's lock-wait row in `TASK_WAIT_COLUMNS` order, in human units.
pub fn task_wait_cells(t: &TaskWaitRow) -> [String; 8] {
    let z = t.wait.zone_lock_wait_ns;
    [
        t.task.frame(),
        t.task.tgid.map_or("?".into(), |p| p.to_string()),
        t.task.cgroup_name(),
        fmt_ns(z.alloc),
        fmt_ns(z.free),
        fmt_ns(z.other),
        fmt_ns(t.wait.other_lock_wait_ns),
        fmt_count(t.wait.contentions),
    ]
}

/// Column headings of the per-cgroup table, shared by the text and HTML reports.
pub const CGROUP_COLUMNS: [&str; 8] = [
    "cgroup",
    "threads",
    "zone alloc",
    "zone free",
    "zone other",
    "other locks",
    "SKB frees",
    "remote",
];

/// A cgroup's row in `CGROUP_COLUMNS` order, in human units.
pub fn cgroup_cells(c: &CgroupRow) -> [String; 8] {
    let z = c.wait.zone_lock_wait_ns;
    [
        c.cgroup.clone(),
        c.threads.to_string(),
        fmt_ns(z.alloc),
        fmt_ns(z.free),
        fmt_ns(z.other),
        fmt_ns(c.wait.other_lock_wait_ns),
        fmt_count(c.skb_frees.count),
        fmt_count(c.skb_frees.remote),
    ]
}

/// Threads with the most zone-lock wait, then those that freed the most SKBs.
fn write_per_task(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let n = r.lock_wait_tasks.len();
    writeln!(
        s,
        "\nPer thread (lock wait; top {} of {n} threads)",
        top.min(n)
    )?;
    let rows: Vec<Vec<String>> = r
        .lock_wait_tasks
        .iter()
        .take(top)
        .map(|t| task_wait_cells(t).to_vec())
        .collect();
    write_columns(s, &TASK_WAIT_COLUMNS, &rows)?;
    let n = r.skb_free_tasks.len();
    if n == 0 {
        return Ok(());
    }
    writeln!(
        s,
        "\nSKB frees per thread (top {} of {n} threads)",
        top.min(n)
    )?;
    let rows: Vec<Vec<String>> = r
        .skb_free_tasks
        .iter()
        .take(top)
        .map(|t| {
            vec![
                t.task.frame(),
                t.task.tgid.map_or("?".into(), |p| p.to_string()),
                t.task.cgroup_name(),
                fmt_count(t.frees.count),
                fmt_count(t.frees.remote),
                fmt_pct(pct(t.frees.remote, t.frees.count)),
                fmt_count(t.frees.cross_node),
            ]
        })
        .collect();
    write_columns(
        s,
        &[
            "thread (comm-tid)",
            "process",
            "cgroup",
            "frees",
            "remote",
            "remote %",
            "cross-node",
        ],
        &rows,
    )
}

/// cgroups by zone-lock wait, with their SKB frees.
fn write_per_cgroup(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let n = r.cgroups.len();
    writeln!(
        s,
        "\nPer cgroup (lock wait and SKB frees of its threads; top {} of {n})",
        top.min(n)
    )?;
    let rows: Vec<Vec<String>> = r
        .cgroups
        .iter()
        .take(top)
        .map(|c| cgroup_cells(c).to_vec())
        .collect();
    write_columns(s, &CGROUP_COLUMNS, &rows)
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The blame headline, its basis, and the pairs with the most wait.
fn write_blame(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let b = &r.zone_wait_blame_summary;
    writeln!(
        s,
        "\nZone-lock wait by (alloc CPU → free CPU): {}",
        b.headline
    )?;
    if b.source.is_none() || r.zone_wait_blame.is_empty() {
        return Ok(());
    }
    if let Some(basis) = &b.basis {
        writeln!(s, "  {basis}")?;
    }
    writeln!(
        s,
        "  {:>5}    {:<5} {:>12} {:>8} {:>12} {:>12} {:>12}",
        "alloc", "free", "wait", "share", "alloc side", "free side", "samples"
    )?;
    for c in r.zone_wait_blame.iter().take(top) {
        writeln!(
            s,
            "  {:>5} -> {:<5} {:>12} {:>8} {:>12} {:>12} {:>12}{}",
            c.alloc_cpu,
            c.free_cpu,
            fmt_ns(c.wait_ns),
            fmt_pct(100.0 * c.wait_ns as f64 / b.zone_lock_wait_ns.max(1) as f64),
            fmt_ns(c.alloc_side_ns),
            fmt_ns(c.free_side_ns),
            fmt_count(c.samples),
            if c.samples < blame::FEW_SAMPLES {
                "  (few samples)"
            } else {
                ""
            }
        )?;
    }
    if r.zone_wait_blame.len() > top {
        let more = r.zone_wait_blame.len() - top;
        writeln!(
            s,
            "  ... {more} more pair{}",
            if more == 1 { "" } else { "s" }
        )?;
    }
    write_blame_nodes(s, r, top)
}

/// The blame per (alloc node, free node), on hosts of several nodes.
fn write_blame_nodes(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let b = &r.zone_wait_blame_summary;
    let Some(pct) = b.cross_node_pct else {
        return Ok(());
    };
    writeln!(
        s,
        "  Per NUMA node pair (alloc node -> free node): {} of zone-lock wait across nodes",
        fmt_pct(pct)
    )?;
    for c in r.zone_wait_blame_nodes.iter().take(top) {
        writeln!(
            s,
            "  {:>5} -> {:<5} {:>12} {:>8} {:>12} {:>12} {:>12}",
            c.alloc_node,
            c.free_node,
            fmt_ns(c.wait_ns),
            fmt_pct(100.0 * c.wait_ns as f64 / b.zone_lock_wait_ns.max(1) as f64),
            fmt_ns(c.alloc_side_ns),
            fmt_ns(c.free_side_ns),
            fmt_count(c.samples)
        )?;
    }
    Ok(())
}

fn write_free_triggers(s: &mut String, r: &Report) -> std::fmt::Result {
    if !r.free_triggers.is_empty() {
        writeln!(s, "\nFree-side zone-lock wait by trigger")?;
        for tr in &r.free_triggers {
            writeln!(s, "  {:>12}  {}", fmt_ns(tr.wait_ns), tr.label)?;
        }
    }
    Ok(())
}

fn write_zone_stacks(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    writeln!(s, "\nTop zone-lock stacks")?;
    if r.top_zone_stacks.is_empty() {
        writeln!(s, "  (none: no zone-lock contention was recorded)")?;
    }
    for (i, st) in r.top_zone_stacks.iter().enumerate().take(top) {
        writeln!(
            s,
            "  #{:<2} {}  {}  {} waits, max {}, CPUs {}",
            i + 1,
            st.class,
            fmt_ns(st.wait_ns),
            fmt_count(st.count),
            fmt_ns(st.max_ns),
            crate::kernel::cpulist::format_cpu_list(&st.cpus)
        )?;
        for f in st.frames.iter().take(14) {
            writeln!(s, "        {f}")?;
        }
        if st.frames.len() > 14 {
            writeln!(s, "        ... {} more frames", st.frames.len() - 14)?;
        }
    }
    Ok(())
}

fn write_other_locks(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "\nTop other contended locks")?;
    if r.top_other_locks.is_empty() {
        writeln!(s, "  (none)")?;
    }
    for o in &r.top_other_locks {
        writeln!(
            s,
            "  {:>12}  {:<32} {} waits, max {}",
            fmt_ns(o.wait_ns),
            o.lock,
            fmt_count(o.count),
            fmt_ns(o.max_ns)
        )?;
    }
    Ok(())
}

fn write_histograms(s: &mut String, r: &Report) -> std::fmt::Result {
    // Zone-lock classes always; other locks only the three that waited longest.
    let shown: Vec<&HistRow> = r
        .wait_histograms
        .iter()
        .filter(|h| {
            h.class.starts_with("zone lock")
                || r.top_other_locks.iter().take(3).any(|o| o.lock == h.class)
        })
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(s, "\nWait-time histograms (single waits)")?;
    for h in shown {
        writeln!(s, "  {}", h.class)?;
        let max = h.buckets.iter().map(|b| b.count).max().unwrap_or(1).max(1);
        for b in &h.buckets {
            // In u128: count × 40 overflows u64 for counts over 2^58 (any u64 may be recorded).
            let bar = "#".repeat((u128::from(b.count) * 40).div_ceil(u128::from(max)) as usize);
            writeln!(
                s,
                "    {:>9} .. {:<9} {:>12} {}",
                fmt_ns(b.low_ns),
                fmt_ns(b.high_ns),
                fmt_count(b.count),
                bar
            )?;
        }
    }
    Ok(())
}

fn write_probes(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "\nProbes")?;
    for p in &r.probes {
        writeln!(
            s,
            "  {:<24} {:<11} {:<36} {}",
            p.name,
            p.method,
            p.target,
            if p.attached {
                "attached".to_string()
            } else {
                format!("NOT attached: {}", p.reason.as_deref().unwrap_or("?"))
            }
        )?;
        // For an attached probe, say why the methods preferred to it did not work.
        if p.attached {
            for a in p.attempts.iter().filter(|a| a.error.is_some()) {
                writeln!(
                    s,
                    "  {:<24} {:<11} {:<36} (not used: {})",
                    "",
                    a.method,
                    a.target,
                    a.error.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    Ok(())
}

fn write_losses(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "\nLosses")?;
    let mut none = true;
    for (loss, n) in r.losses.losses() {
        none = false;
        let n = match loss.unit {
            LossUnit::Count => fmt_count(n),
            LossUnit::Nanoseconds => fmt_ns(n),
        };
        writeln!(s, "  {n:>12}  {}{}", loss.label, map_hint(loss, r))?;
    }
    if none {
        writeln!(s, "  none")?;
    }
    Ok(())
}

/// For a map-full loss: the size of the map that filled, and how to raise it.
fn map_hint(loss: &crate::model::recording::Loss, r: &Report) -> String {
    // `lost_wait_ns` is the time of the `lock_map_full` entries, already hinted.
    if loss.unit != LossUnit::Count {
        return String::new();
    }
    let maps = maps_of_loss(loss.key, &r.map_entries);
    if maps.is_empty() {
        return String::new();
    }
    let sizes: Vec<String> = maps
        .iter()
        .map(|m| format!("{} {}", m.map, fmt_count(u64::from(m.max_entries))))
        .collect();
    format!(
        " [{}: raise with --map-entries {}=N]",
        sizes.join(", "),
        maps[0].map
    )
}

fn write_not_observable(s: &mut String, r: &Report) -> std::fmt::Result {
    if !r.not_observable.is_empty() {
        writeln!(s, "\nNot observable in this recording")?;
        for n in &r.not_observable {
            writeln!(s, "  {}: {}", n.what, n.why)?;
        }
    }
    Ok(())
}

fn write_skb_text(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let total: u64 = r.skb_free_sites.iter().map(|x| x.count).sat_sum();
    if total > 0 {
        write_skb_frees_text(s, r, top)?;
    }
    write_defer_text(s, r)
}

/// `skb_attempt_defer_free` calls hand an SKB to its allocating CPU: they are not frees
/// on the calling CPU, so they stay out of the remote-free totals.
const DEFER_FN: &str = "skb_attempt_defer_free";

fn write_skb_frees_text(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    write_skb_totals(s, r)?;
    write_skb_remote_pairs(s, r, top)?;
    write_skb_sites(s, r, top)?;
    write_skb_per_free_cpu(s, r)?;
    write_skb_node_pairs(s, r)
}

/// Frees, remote and cross-node, then what `skb_attempt_defer_free` did with its calls.
fn write_skb_totals(s: &mut String, r: &Report) -> std::fmt::Result {
    let frees = r.skb_free_sites.iter().filter(|x| x.function != DEFER_FN);
    let (total, remote, cross) = frees.fold((0u64, 0u64, 0u64), |(t, rm, c), x| {
        (
            t.saturating_add(x.count),
            rm.saturating_add(x.remote),
            c.saturating_add(x.cross_node),
        )
    });
    writeln!(
        s,
        "\nSKB frees: {} ({} remote: {}; {} across NUMA nodes)",
        fmt_count(total),
        fmt_count(remote),
        fmt_pct(100.0 * remote as f64 / total.max(1) as f64),
        fmt_count(cross)
    )?;
    let (calls, handed) = r
        .skb_free_sites
        .iter()
        .filter(|x| x.function == DEFER_FN)
        .fold((0u64, 0u64), |(c, h), x| {
            (c.saturating_add(x.count), h.saturating_add(x.remote))
        });
    if calls > 0 {
        writeln!(
            s,
            "  skb_attempt_defer_free: {} calls, {} handed to the allocating CPU, {} freed at once",
            fmt_count(calls),
            fmt_count(handed),
            fmt_count(calls.saturating_sub(handed))
        )?;
    }
    Ok(())
}

fn write_skb_remote_pairs(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let mut pairs: Vec<&SkbMatrixRow> = r
        .skb_matrix
        .iter()
        .filter(|c| c.alloc_cpu != c.free_cpu)
        .collect();
    pairs.sort_by_key(|c| std::cmp::Reverse(c.count));
    if !pairs.is_empty() {
        writeln!(s, "  Top remote pairs (alloc CPU -> free CPU)")?;
        for c in pairs.iter().take(top) {
            writeln!(
                s,
                "    {:>4} -> {:<4} {:>12}",
                c.alloc_cpu,
                c.free_cpu,
                fmt_count(c.count)
            )?;
        }
    }
    Ok(())
}

fn write_skb_sites(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    writeln!(s, "  Free sites")?;
    writeln!(
        s,
        "    {:<24} {:<28} {:>12} {:>12} {:>8} {:>10}  CPUs",
        "function", "caller", "frees", "remote", "remote", "cross-node"
    )?;
    for x in r.skb_free_sites.iter().take(top) {
        let cpus: Vec<u32> = x.cpus.iter().map(|(c, _)| *c).collect();
        writeln!(
            s,
            "    {:<24} {:<28} {:>12} {:>12} {:>8} {:>10}  {}",
            x.function,
            x.caller,
            fmt_count(x.count),
            fmt_count(x.remote),
            fmt_pct(100.0 * x.remote_ratio),
            fmt_count(x.cross_node),
            crate::kernel::cpulist::format_cpu_list(&cpus)
        )?;
    }
    Ok(())
}

/// Per free CPU: how many of its frees were of SKBs allocated elsewhere.
fn write_skb_per_free_cpu(s: &mut String, r: &Report) -> std::fmt::Result {
    let mut per_cpu: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for c in &r.skb_matrix {
        let e = per_cpu.entry(c.free_cpu).or_default();
        e.0 = e.0.saturating_add(c.count);
        if c.alloc_cpu != c.free_cpu {
            e.1 = e.1.saturating_add(c.count);
        }
    }
    if !per_cpu.is_empty() {
        writeln!(s, "  Per free CPU")?;
        for (cpu, (n, rem)) in per_cpu.iter().take(64) {
            writeln!(
                s,
                "    CPU {:>4}: {:>12} frees, {} remote",
                cpu,
                fmt_count(*n),
                fmt_pct(100.0 * *rem as f64 / (*n).max(1) as f64)
            )?;
        }
    }
    Ok(())
}

fn write_skb_node_pairs(s: &mut String, r: &Report) -> std::fmt::Result {
    if r.skb_node_matrix.iter().any(|c| c.alloc_cpu != c.free_cpu) {
        writeln!(s, "  Per NUMA node pair (alloc node -> free node)")?;
        for c in &r.skb_node_matrix {
            writeln!(
                s,
                "    {:>3} -> {:<3} {:>12}",
                c.alloc_cpu,
                c.free_cpu,
                fmt_count(c.count)
            )?;
        }
    }
    Ok(())
}

fn write_defer_text(s: &mut String, r: &Report) -> std::fmt::Result {
    let defer_probe = r
        .probes
        .iter()
        .any(|p| p.name == crate::kernel::probes::name::SKB_ATTEMPT_DEFER_FREE && p.attached);
    if !r.skb_defer.is_empty() || defer_probe {
        writeln!(
            s,
            "  Deferred frees (skb_attempt_defer_free) and their cost"
        )?;
        writeln!(
            s,
            "    {:>5} {:>12} {:>12} {:>12} {:>12} {:>10}",
            "CPU", "calls", "deferred", "immediate", "flushed", "IPIs"
        )?;
        let na = |v: u64| {
            if defer_probe {
                fmt_count(v)
            } else {
                "n/a".to_string()
            }
        };
        for d in &r.skb_defer {
            writeln!(
                s,
                "    {:>5} {:>12} {:>12} {:>12} {:>12} {:>10}",
                d.cpu,
                na(d.calls),
                na(d.deferred),
                na(d.immediate),
                fmt_count(d.flushed),
                fmt_count(d.ipis)
            )?;
        }
        if !defer_probe {
            writeln!(
                s,
                "    (calls/deferred/immediate not observable on this kernel: see below)"
            )?;
        }
    }
    Ok(())
}

fn write_page_flows_text(s: &mut String, r: &Report, top: usize) -> std::fmt::Result {
    let Some(t) = &r.page_tracking else {
        return Ok(());
    };
    let total: u64 = r.page_matrix.iter().map(|c| c.pages).sat_sum();
    let remote: u64 = r
        .page_matrix
        .iter()
        .filter(|c| c.alloc_cpu != c.free_cpu)
        .map(|c| c.pages)
        .sat_sum();
    writeln!(
        s,
        "\nPage flows (estimates: 1 page in {} tracked by pfn hash): {} pages freed, {} on another CPU ({})",
        t.sample_one_in,
        fmt_count(total),
        fmt_count(remote),
        fmt_pct(100.0 * remote as f64 / total.max(1) as f64)
    )?;
    let mut cells: Vec<&PageMatrixRow> = r.page_matrix.iter().collect();
    cells.sort_by_key(|c| std::cmp::Reverse(c.pages));
    for c in cells.iter().take(top) {
        writeln!(
            s,
            "    {:>4} -> {:<4} {:>14} pages",
            c.alloc_cpu,
            c.free_cpu,
            fmt_count(c.pages)
        )?;
    }
    if t.map_full > 0 {
        writeln!(
            s,
            "    ({} sampled allocations not tracked: map full)",
            fmt_count(t.map_full)
        )?;
    }
    if r.page_node_matrix
        .iter()
        .any(|c| c.alloc_node != c.free_node)
    {
        let cross: u64 = r
            .page_node_matrix
            .iter()
            .filter(|c| c.alloc_node != c.free_node)
            .map(|c| c.pages)
            .sat_sum();
        writeln!(
            s,
            "  Per NUMA node pair (alloc node -> free node): {} pages across nodes ({})",
            fmt_count(cross),
            fmt_pct(100.0 * cross as f64 / total.max(1) as f64)
        )?;
        for c in &r.page_node_matrix {
            writeln!(
                s,
                "    {:>3} -> {:<3} {:>14} pages",
                c.alloc_node,
                c.free_node,
                fmt_count(c.pages)
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{HistEntry, sample};
    use crate::model::tasks::tests::sample_with_tasks;

    #[test]
    fn by_task_and_by_cgroup_replace_the_per_cpu_table() {
        let rec = sample_with_tasks();
        let r = build(&rec, 10);
        let t = to_text_by(&r, 10, By::Task);
        assert!(!t.contains("\nPer CPU"), "{t}");
        let line = |t: &str, start: &str| {
            t.lines()
                .find(|l| l.trim_start().starts_with(start))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| panic!("no {start} row in:\n{t}"))
        };
        assert!(
            t.contains("Per thread (lock wait; top 4 of 4 threads)"),
            "{t}"
        );
        assert_eq!(
            line(&t, "vhost-1000-1002"),
            "vhost-1000-1002 1000 /machine.slice/vm1.scope 0 ns 12.0 ms 0 ns 0 ns 10"
        );
        assert_eq!(
            line(&t, "[unnamed]-4242"),
            "[unnamed]-4242 ? [unnamed thread] 0 ns 0 ns 500.0 µs 0 ns 10"
        );
        assert!(
            t.contains("SKB frees per thread (top 2 of 2 threads)"),
            "{t}"
        );
        let skb = t.split("SKB frees per thread").nth(1).unwrap_or_default();
        assert_eq!(
            line(skb, "vhost-1000-1002"),
            "vhost-1000-1002 1000 /machine.slice/vm1.scope 1,000 900 90.0 % 0"
        );
        let c = to_text_by(&r, 10, By::Cgroup);
        assert_eq!(
            line(&c, "/machine.slice/vm1.scope"),
            "/machine.slice/vm1.scope 2 6.0 ms 12.0 ms 0 ns 0 ns 1,000 900"
        );
        // The default view is unchanged.
        assert_eq!(to_text(&r, 10), to_text_by(&r, 10, By::Cpu));
        assert!(to_text(&r, 10).contains("\nPer CPU"));
    }

    #[test]
    fn json_holds_the_thread_tables_of_the_contract() {
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&build(&sample_with_tasks(), 10))).expect("json");
        assert_eq!(v["tasks_recorded"], true);
        let t = &v["lock_wait_tasks"][0];
        assert_eq!(t["comm"], "vhost-1000");
        assert_eq!(t["pid"], 1002);
        assert_eq!(t["tgid"], 1000);
        assert_eq!(t["cgroup"], "/machine.slice/vm1.scope");
        assert_eq!(t["zone_lock_wait_ns"]["free"], 12_000_000);
        assert_eq!(t["zone_lock_wait_ns"]["alloc"], 0);
        assert_eq!(t["zone_lock_wait_ns"]["other"], 0);
        assert_eq!(t["other_lock_wait_ns"], 0);
        assert_eq!(t["contentions"], 10);
        let s = &v["skb_free_tasks"][0];
        assert_eq!(
            (&s["comm"], &s["count"], &s["remote"], &s["cross_node"]),
            (&"vhost-1000".into(), &1000.into(), &900.into(), &0.into())
        );
        assert_eq!(v["cgroups"][0]["cgroup"], "/machine.slice/vm1.scope");
        assert_eq!(v["cgroups"][0]["threads"], 2);
        assert_eq!(v["cgroups"][0]["skb_frees"]["count"], 1000);
        // Without --tasks: the keys are there, empty.
        let plain: serde_json::Value =
            serde_json::from_str(&to_json(&build(&sample(), 10))).expect("json");
        assert_eq!(plain["tasks_recorded"], false);
        assert_eq!(plain["lock_wait_tasks"], serde_json::json!([]));
    }

    #[test]
    fn per_cpu_split_follows_the_classifier_and_the_zone_proof() {
        let r = build(&sample(), 10);
        let c0 = &r.per_cpu[0];
        let c1 = &r.per_cpu[1];
        assert_eq!((c0.cpu, c1.cpu), (0, 1));
        assert_eq!(c0.zone_lock_wait_ns.alloc, 6_000_000);
        // The stackless wait on the proven zone address is zone lock, side unknown.
        assert_eq!(c0.zone_lock_wait_ns.other, 500_000);
        assert_eq!(c1.zone_lock_wait_ns.free, 12_000_000);
        assert_eq!(c1.other_lock_wait_ns, 1_000_000);
        assert!((c1.zone_lock_wait_pct.free - 0.6).abs() < 1e-9);
        assert_eq!(c0.pcp_refill_pages, 1000);
        assert_eq!(c1.pcp_drain_pages, 990);
        assert_eq!(r.free_triggers[0].trigger, "pcp_high");
        assert_eq!(r.zones[0].label, "node 0 / zone Normal");
        assert_eq!(r.top_zone_stacks[0].side, Some("free"));
        assert_eq!(r.top_other_locks[0].lock, "rq lock");
    }

    #[test]
    fn json_contract_keys_are_present() {
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&build(&sample(), 5))).expect("valid JSON");
        for cpu in v["per_cpu"].as_array().expect("per_cpu list") {
            for k in ["cpu", "pcp_refill_pages", "pcp_drain_pages"] {
                assert!(cpu[k].is_u64(), "per_cpu.{k}");
            }
            for side in ["alloc", "free"] {
                assert!(
                    cpu["zone_lock_wait_ns"][side].is_u64(),
                    "zone_lock_wait_ns.{side}"
                );
            }
        }
        for p in v["probes"].as_array().expect("probes list") {
            for k in ["name", "method", "attached", "reason"] {
                assert!(p.get(k).is_some(), "probes[].{k}");
            }
        }
        // The sample has only contention_begin attached and no run-time stats.
        assert_eq!(
            v["totals"]["pcp_method"],
            serde_json::json!({"refill": "off", "drain": "off"})
        );
        let oc = &v["observer_cost"];
        assert!(oc["in_lock_program_runs"].is_u64(), "{oc}");
        for k in ["ns_per_run", "in_lock_ns", "pct_of_zone_lock_wait"] {
            assert!(oc[k].is_null(), "observer_cost.{k} without stats: {oc}");
        }
        assert!(oc["reason"].is_string(), "{oc}");
        assert!(oc["programs"].is_array(), "{oc}");
    }

    /// The sample on two nodes: CPU 1 (node 1) frees node 0's pages under node 0's lock.
    #[test]
    fn numa_views_per_node_zone_and_node_pair() {
        use crate::model::recording::{PageCell, PageTracking};
        let mut rec = sample();
        rec.host.cpu_node = vec![(0, 0), (1, 1)];
        rec.host.numa_nodes = vec![0, 1];
        rec.page_matrix = vec![
            PageCell {
                alloc_cpu: 0,
                free_cpu: 1,
                pages: 64 * 90,
            },
            PageCell {
                alloc_cpu: 0,
                free_cpu: 0,
                pages: 64 * 10,
            },
        ];
        rec.page_tracking = Some(PageTracking {
            sample_one_in: 64,
            pages_by_order: vec![],
            lifetime_hist: vec![],
            map_full: 0,
        });
        let r = build(&rec, 5);
        let z = &r.zones[0];
        assert_eq!(
            (z.node, z.zone.as_str(), z.wait_ns),
            (0, "Normal", 18_500_000)
        );
        assert_eq!(z.wait_by_side_ns.free, 12_000_000);
        assert_eq!(z.remote_cpu_wait_ns, 12_000_000);
        assert_eq!(r.zone_nodes.len(), 2);
        assert_eq!(r.zone_nodes[0].wait_ns.total(), 18_500_000);
        assert_eq!(r.zone_nodes[1].wait_ns.total(), 0);
        let pages: Vec<(u32, u32, u64)> = r
            .page_node_matrix
            .iter()
            .map(|c| (c.alloc_node, c.free_node, c.pages))
            .collect();
        assert_eq!(pages, vec![(0, 0, 640), (0, 1, 5_760)]);
        // CPU 1's 12 ms free side all from CPU 0 (node 0 -> 1); CPU 0's 6 ms alloc side
        // 90 % to 0 -> 1.
        let b = &r.zone_wait_blame_summary;
        assert_eq!(b.cross_node_wait_ns, 12_000_000 + 5_400_000);
        let pct = b.cross_node_pct.expect("two nodes");
        assert!((pct - 100.0 * 17.4 / 18.5).abs() < 1e-9, "{pct}");
        let top = &r.zone_wait_blame_nodes[0];
        assert_eq!((top.alloc_node, top.free_node), (0, 1));
        let text = to_text(&r, 5);
        for want in [
            "Per NUMA node (zone-lock wait on the node's zones",
            "12.0 ms by CPUs of other nodes",
            "Per NUMA node pair (alloc node -> free node): 94.1 % of zone-lock wait across nodes",
            "Per NUMA node pair (alloc node -> free node): 5,760 pages across nodes (90.0 %)",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        // One node: the node sections stay out of the text, the keys stay in the JSON.
        let one = build(&sample(), 5);
        assert!(!to_text(&one, 5).contains("NUMA node pair"));
        assert_eq!(one.zone_wait_blame_summary.cross_node_pct, None);
        let v: serde_json::Value = serde_json::from_str(&to_json(&one)).expect("JSON");
        for k in ["zone_nodes", "page_node_matrix", "zone_wait_blame_nodes"] {
            assert!(v[k].is_array(), "{k}");
        }
        assert!(v["zone_wait_blame_summary"]["cross_node_pct"].is_null());
    }

    #[test]
    fn skb_sites_merge_cpus_and_compute_remote_ratio() {
        use crate::model::recording::{SkbCell, SkbSite};
        let mut rec = sample();
        rec.host.cpu_node = vec![(0, 0), (1, 1)];
        rec.host.numa_nodes = vec![0, 1];
        let site = |function: &str, caller: &str, cpu, count, remote| SkbSite {
            function: function.into(),
            caller: caller.into(),
            cpu,
            count,
            remote,
            cross_node: remote,
            tid: None,
        };
        rec.skb_sites = vec![
            site("consume_skb", "tun_do_read", 1, 900, 890),
            site("consume_skb", "tun_do_read", 0, 100, 0),
            site("kfree_skb", "tcp_data_queue", 1, 5, 0),
        ];
        rec.skb_matrix = vec![
            SkbCell {
                alloc_cpu: 0,
                free_cpu: 1,
                count: 890,
            },
            SkbCell {
                alloc_cpu: 1,
                free_cpu: 1,
                count: 15,
            },
            SkbCell {
                alloc_cpu: 0,
                free_cpu: 0,
                count: 100,
            },
        ];
        let r = build(&rec, 10);
        let tun = &r.skb_free_sites[0];
        assert_eq!(
            (tun.function.as_str(), tun.caller.as_str()),
            ("consume_skb", "tun_do_read")
        );
        assert_eq!((tun.count, tun.remote), (1000, 890));
        assert!((tun.remote_ratio - 0.89).abs() < 1e-12);
        assert_eq!(tun.cpus, vec![(0, 100), (1, 900)]);
        // Node pairs: CPU 0 is node 0, CPU 1 node 1.
        let cross: u64 = r
            .skb_node_matrix
            .iter()
            .filter(|c| c.alloc_cpu == 0 && c.free_cpu == 1)
            .map(|c| c.count)
            .sum();
        assert_eq!(cross, 890);
        let t = to_text(&r, 10);
        assert!(t.contains("0 -> 1"), "{t}");
        assert!(t.contains("tun_do_read"), "{t}");
        assert!(t.contains("89.0 %"), "{t}");
        // JSON contract keys of issue 3.
        let v: serde_json::Value = serde_json::from_str(&to_json(&r)).expect("json");
        for k in ["alloc_cpu", "free_cpu", "count"] {
            assert!(v["skb_matrix"][0][k].is_u64(), "skb_matrix[].{k}");
        }
        for k in ["function", "caller", "count", "remote"] {
            assert!(
                v["skb_free_sites"][0].get(k).is_some(),
                "skb_free_sites[].{k}"
            );
        }
        assert!(v["page_matrix"].is_array());
    }

    #[test]
    fn blame_shows_in_text_and_json() {
        use crate::model::recording::{PageCell, PageTracking};
        let mut rec = sample();
        rec.page_matrix = vec![
            PageCell {
                alloc_cpu: 0,
                free_cpu: 1,
                pages: 300 * 64,
            },
            PageCell {
                alloc_cpu: 0,
                free_cpu: 0,
                pages: 20 * 64,
            },
        ];
        rec.page_tracking = Some(PageTracking {
            sample_one_in: 64,
            pages_by_order: vec![],
            lifetime_hist: vec![],
            map_full: 0,
        });
        let r = build(&rec, 1);
        let t = to_text(&r, 1);
        assert!(
            t.contains(
                "Zone-lock wait by (alloc CPU → free CPU): 95.3 % of zone-lock wait is \
                        explained by pages freed away from their allocating CPU; top pair 0 → 1"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "      0 -> 1          17.6 ms   95.3 %       5.6 ms      12.0 ms          300\n"
            ),
            "{t}"
        );
        // One row shown (top 1); the 20-sample diagonal pair is counted, not listed.
        assert!(t.contains("  ... 1 more pair\n"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&to_json(&r)).expect("json");
        let cells = v["zone_wait_blame"].as_array().expect("cells");
        assert_eq!(cells.len(), 2);
        for k in [
            "alloc_cpu",
            "free_cpu",
            "wait_ns",
            "alloc_side_ns",
            "free_side_ns",
            "samples",
        ] {
            assert!(cells[0][k].is_u64(), "zone_wait_blame[].{k}");
        }
        let sm = &v["zone_wait_blame_summary"];
        assert_eq!(sm["source"], "page_flows");
        assert_eq!(sm["sample_one_in"], 64);
        assert_eq!(sm["top_pair"]["free_cpu"], 1);
        assert!(
            sm["explained_pct"]
                .as_f64()
                .is_some_and(|x| (x - 95.27).abs() < 0.01)
        );
        assert!(sm["headline"].is_string() && sm["basis"].is_string());
        // Without page flows or SKB matrix: null source, null share, and the text says why.
        rec.page_matrix.clear();
        rec.skb_matrix.clear();
        let r = build(&rec, 1);
        let v: serde_json::Value = serde_json::from_str(&to_json(&r)).expect("json");
        assert!(v["zone_wait_blame_summary"]["source"].is_null());
        assert!(v["zone_wait_blame_summary"]["explained_pct"].is_null());
        assert!(to_text(&r, 1).contains("(record with --page-flows)"));
    }

    #[test]
    fn defer_without_its_probe_is_not_observable_never_zero() {
        let mut rec = sample();
        rec.skb_defer = vec![crate::model::recording::SkbDefer {
            cpu: 0,
            flushed: 40,
            ..Default::default()
        }];
        let t = to_text(&build(&rec, 5), 5);
        assert!(t.contains("n/a"), "{t}");
        assert!(t.contains("skb_attempt_defer_free"), "{t}");
    }

    /// A map-full loss names the map that filled, its size and the option that raises
    /// it, when the recording kept the sizes; the JSON carries the sizes.
    #[test]
    fn map_full_losses_name_their_map() {
        let mut rec = sample();
        rec.counters.lock_map_full = 12;
        rec.counters.lost_wait_ns = 3_000;
        rec.counters.skb_map_full = 7;
        rec.counters.end_without_begin = 2;
        let text = to_text(&build(&rec, 3), 3);
        assert!(!text.contains("--map-entries"), "sizes unknown: {text}");
        rec.settings.map_entries = crate::kernel::map_entries::MapEntries::parse("lock-stats=4")
            .expect("parses")
            .effective(false, false);
        let r = build(&rec, 3);
        let text = to_text(&r, 3);
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle}: {text}"))
                .to_string()
        };
        assert_eq!(
            line("lock-wait map full"),
            "            12  lock-wait map full (wait kept in lost_wait_ns) \
             [lock-stats 4: raise with --map-entries lock-stats=N]"
        );
        assert!(line("skb").ends_with(
            "(map full) [skb-matrix 65,536, skb-sites 16,384: raise with --map-entries skb-matrix=N]"
        ));
        assert!(!line("not attributed").contains("--map-entries"));
        assert!(!line("without a begin").contains("--map-entries"));
        let v: serde_json::Value = serde_json::from_str(&to_json(&r)).expect("json");
        assert_eq!(v["map_entries"][0]["map"], "lock-stats");
        assert_eq!(v["map_entries"][0]["max_entries"], 4);
        assert_eq!(
            v["map_entries"].as_array().map(Vec::len),
            Some(crate::kernel::map_entries::MAPS.len())
        );
    }

    /// Every loss counter, set to a distinct value, shows in the text, HTML and JSON views.
    #[test]
    fn every_loss_shows_in_every_view() {
        let mut rec = sample();
        let (counters, _) = crate::model::recording::tests::distinct_counters();
        rec.counters = counters;
        let r = build(&rec, 3);
        let text = to_text(&r, 3);
        let html = crate::output::html::report_html(&rec, 3, "x.zprof").expect("html");
        let json: serde_json::Value = serde_json::from_str(&to_json(&r)).expect("parses");
        for l in crate::model::recording::LOSSES {
            let v = (l.get)(&rec.counters);
            let shown = match l.unit {
                LossUnit::Count => fmt_count(v),
                LossUnit::Nanoseconds => fmt_ns(v),
            };
            assert!(
                text.contains(&format!("{shown:>12}  {}", l.label)),
                "text lacks {}: {text}",
                l.key
            );
            assert!(
                html.contains(&format!(
                    "<tr><th>{}</th><td class=\"num\">{shown}</td></tr>",
                    crate::output::html::esc(l.label)
                )),
                "HTML lacks {}",
                l.key
            );
            assert_eq!(
                json["losses"][l.key].as_u64(),
                Some(v),
                "JSON lacks {}",
                l.key
            );
        }
    }

    #[test]
    fn text_report_names_sides_and_losses() {
        let mut rec = sample();
        rec.counters.stack_collisions = 3;
        let r = build(&rec, 3);
        let t = to_text(&r, 3);
        assert!(t.contains("alloc side 6.0 ms"), "{t}");
        assert!(t.contains("free side 12.0 ms"), "{t}");
        assert!(t.contains("stack-id collisions"), "{t}");
        assert!(t.contains("node 0 / zone Normal"), "{t}");
        assert!(
            t.contains(
                "Observer cost under zone->lock: 30 program runs, time unknown: this recording \
                 has no run-time stats"
            ),
            "{t}"
        );
    }

    #[test]
    fn histogram_buckets_at_the_top_of_u32_and_u64() {
        let mut rec = sample();
        let stack = rec.wait_hist[0].stack;
        rec.wait_hist = [(u32::MAX, u64::MAX), (u32::MAX, 1), (63, u64::MAX)]
            .into_iter()
            .map(|(bucket, count)| HistEntry {
                stack,
                bucket,
                count,
            })
            .collect();
        let r = build(&rec, 3);
        let b = &r.wait_histograms[0].buckets;
        assert_eq!(
            b.iter()
                .map(|b| (b.low_ns, b.high_ns, b.count))
                .collect::<Vec<_>>(),
            [(1 << 63, u64::MAX, u64::MAX), (1 << 63, u64::MAX, u64::MAX)]
        );
        // Full-width bars: count × 40 is done without overflow.
        let t = to_text(&r, 3);
        assert_eq!(
            t.matches(&format!(" {}\n", "#".repeat(40))).count(),
            2,
            "{t}"
        );
    }
}
