//! What `zoneprof top` shows of one interval (the delta of two live snapshots), as rates:
//! per CPU zone-lock wait as a share of the CPU and PCP pages/s, the top zone-lock stacks,
//! the top remote SKB free sites, with `--tasks` the top threads, losses and probe status.
//! Both the full-screen view and the plain-text snapshot draw from it.
use std::collections::{BTreeMap, HashMap};

use crate::{
    kernel::attach,
    model::{
        analysis::{self, SideNs},
        classify::{self, LockClass},
        recording::{PcpCount, PcpMethod, Recording},
        tasks,
    },
};

/// One CPU over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuRow {
    pub cpu: u32,
    /// Zone-lock wait as % of the CPU's time: allocation side, free side, other users.
    pub alloc_pct: f64,
    pub free_pct: f64,
    pub other_pct: f64,
    /// PCP pages per second (None: not counted on this host/plan).
    pub refill_per_s: Option<f64>,
    pub drain_per_s: Option<f64>,
}

impl CpuRow {
    pub fn zone_pct(&self) -> f64 {
        self.alloc_pct + self.free_pct + self.other_pct
    }
}

/// A zone-lock stack over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct StackRow {
    /// `alloc`, `free (pcp high)`, `other`...
    pub side: String,
    /// The taker and its callers, shortened: `__rmqueue_pcplist < get_page_from_freelist`.
    pub path: String,
    /// Wait as % of one CPU.
    pub pct: f64,
}

/// SKB frees at one (function, caller) over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SkbRow {
    pub function: String,
    pub caller: String,
    pub remote_per_s: f64,
    pub frees_per_s: f64,
}

/// One thread over the interval (`top --tasks`).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRow {
    /// `comm-tid`, as `flamegraph --per-task` names it.
    pub task: String,
    /// cgroup v2 path, or `[no cgroup]` / `[unnamed thread]`.
    pub cgroup: String,
    /// Its zone-lock wait as % of one CPU.
    pub zone_pct: f64,
    pub remote_frees_per_s: f64,
}

/// How the CPU rows are ordered (`s` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most zone-lock wait first.
    #[default]
    Wait,
    Cpu,
    Refill,
    Drain,
}

impl Sort {
    pub fn next(self) -> Sort {
        match self {
            Sort::Wait => Sort::Cpu,
            Sort::Cpu => Sort::Refill,
            Sort::Refill => Sort::Drain,
            Sort::Drain => Sort::Wait,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Wait => "wait",
            Sort::Cpu => "cpu",
            Sort::Refill => "refill",
            Sort::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopView {
    pub host: String,
    pub interval_s: f64,
    pub cpus: Vec<CpuRow>,
    /// Sum over CPUs, as % of one CPU.
    pub total: SidePct,
    pub stacks: Vec<StackRow>,
    pub skb: Vec<SkbRow>,
    /// The threads with the most zone-lock wait, then remote SKB frees; None without
    /// `--tasks`.
    pub threads: Option<Vec<ThreadRow>>,
    /// (what, how many) lost in the interval, non-zero only.
    pub losses: Vec<(&'static str, u64)>,
    pub probes_attached: usize,
    pub probes_total: usize,
    /// Probes that were asked for but did not attach.
    pub not_attached: Vec<String>,
}

/// Zone-lock wait by side, as % of one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SidePct {
    pub alloc: f64,
    pub free: f64,
    pub other: f64,
}

/// Rows kept of the stack and SKB tables.
pub const TOP_ROWS: usize = 5;

impl TopView {
    /// The view of `d`, the delta of two snapshots.
    pub fn of(d: &Recording) -> TopView {
        let secs = d.duration_s();
        let pct = |ns: u64| {
            if secs > 0.0 {
                100.0 * ns as f64 / 1e9 / secs
            } else {
                0.0
            }
        };
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let waits = analysis::classify_waits(d);
        let by_cpu = analysis::per_cpu_wait(&waits);
        let method = PcpMethod::of(&d.probes);
        let pages: HashMap<u32, (u64, u64)> = d
            .pcp
            .iter()
            .map(|p| (p.cpu, (p.refill_pages, p.drain_pages)))
            .collect();
        let counted = |c: PcpCount, n: u64| (c != PcpCount::Off).then(|| per_s(n));
        let cpus = d
            .cpus
            .iter()
            .map(|&cpu| {
                let z = by_cpu.get(&cpu).map(|w| w.zone).unwrap_or_default();
                let (refill, drain) = pages.get(&cpu).copied().unwrap_or_default();
                CpuRow {
                    cpu,
                    alloc_pct: pct(z.alloc),
                    free_pct: pct(z.free),
                    other_pct: pct(z.other),
                    refill_per_s: counted(method.refill, refill),
                    drain_per_s: counted(method.drain, drain),
                }
            })
            .collect();
        let t: SideNs = analysis::zone_totals(&waits);
        let total = SidePct {
            alloc: pct(t.alloc),
            free: pct(t.free),
            other: pct(t.other),
        };

        // Zone-lock wait by side and shortened stack: stacks that differ only below the
        // taker's callers are one row (a missing stack is its own).
        let mut paths: HashMap<Option<u32>, String> = HashMap::new();
        let mut by_path: HashMap<(String, String), u64> = HashMap::new();
        for cw in waits.iter().filter(|cw| cw.class.is_zone()) {
            let path = paths
                .entry(cw.wait.stack)
                .or_insert_with(|| match cw.wait.stack {
                    Some(s) => short_path(&d.stack_frames(s)),
                    None => "(stack unavailable)".into(),
                })
                .clone();
            *by_path.entry((side_label(&cw.class), path)).or_default() += cw.wait.total_ns;
        }
        let mut stacks: Vec<_> = by_path.into_iter().filter(|(_, ns)| *ns > 0).collect();
        stacks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let stacks = stacks
            .into_iter()
            .take(TOP_ROWS)
            .map(|((side, path), ns)| StackRow {
                side,
                path,
                pct: pct(ns),
            })
            .collect();

        let mut sites: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for s in &d.skb_sites {
            let e = sites.entry((&s.function, &s.caller)).or_default();
            e.0 += s.remote;
            e.1 += s.count;
        }
        let mut skb: Vec<_> = sites.into_iter().filter(|(_, v)| v.0 > 0).collect();
        skb.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let skb = skb
            .into_iter()
            .take(TOP_ROWS)
            .map(|((f, c), (remote, count))| SkbRow {
                function: f.into(),
                caller: c.into(),
                remote_per_s: per_s(remote),
                frees_per_s: per_s(count),
            })
            .collect();

        let threads = d.settings.tasks.then(|| {
            let mut by: BTreeMap<u32, ThreadRow> = BTreeMap::new();
            for t in tasks::lock_wait_by_task(d, &waits) {
                by.insert(
                    t.task.pid,
                    ThreadRow {
                        task: t.task.frame(),
                        cgroup: t.task.cgroup_name(),
                        zone_pct: pct(t.wait.zone_lock_wait_ns.total()),
                        remote_frees_per_s: 0.0,
                    },
                );
            }
            for t in tasks::skb_free_by_task(d) {
                by.entry(t.task.pid)
                    .or_insert_with(|| ThreadRow {
                        task: t.task.frame(),
                        cgroup: t.task.cgroup_name(),
                        zone_pct: 0.0,
                        remote_frees_per_s: 0.0,
                    })
                    .remote_frees_per_s = per_s(t.frees.remote);
            }
            let mut rows: Vec<ThreadRow> = by
                .into_values()
                .filter(|r| r.zone_pct > 0.0 || r.remote_frees_per_s > 0.0)
                .collect();
            rows.sort_by(|a, b| {
                b.zone_pct
                    .total_cmp(&a.zone_pct)
                    .then(b.remote_frees_per_s.total_cmp(&a.remote_frees_per_s))
                    .then(a.task.cmp(&b.task))
            });
            rows.truncate(TOP_ROWS);
            rows
        });

        let off = |p: &crate::model::recording::ProbeStatus| {
            p.attempts.iter().any(|a| a.method == attach::OFF)
        };
        TopView {
            host: d.host.hostname.clone(),
            interval_s: secs,
            cpus,
            total,
            stacks,
            skb,
            threads,
            losses: d.counters.losses().map(|(l, n)| (l.label, n)).collect(),
            probes_attached: d.probes.iter().filter(|p| p.attached).count(),
            probes_total: d.probes.len(),
            not_attached: d
                .probes
                .iter()
                .filter(|p| !p.attached && !off(p))
                .map(|p| p.name.clone())
                .collect(),
        }
    }

    /// The CPU rows in `sort` order (ties by CPU number).
    pub fn sorted_cpus(&self, sort: Sort) -> Vec<&CpuRow> {
        let mut rows: Vec<&CpuRow> = self.cpus.iter().collect();
        let key = |r: &CpuRow| -> f64 {
            match sort {
                Sort::Wait => r.zone_pct(),
                Sort::Cpu => 0.0,
                Sort::Refill => r.refill_per_s.unwrap_or(0.0),
                Sort::Drain => r.drain_per_s.unwrap_or(0.0),
            }
        };
        rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cpu.cmp(&b.cpu)));
        rows
    }
}

fn side_label(c: &LockClass) -> String {
    match c {
        LockClass::ZoneAlloc => "alloc".into(),
        LockClass::ZoneFree(t) => match t {
            classify::FreeTrigger::Unknown => "free".into(),
            t => format!("free ({})", t.label()),
        },
        // Compaction, readers, lost stacks: the path says which.
        LockClass::ZoneOther(_) => "other".into(),
        other => other.label(),
    }
}

/// The taker and up to two callers, lock frames and offsets dropped:
/// `__rmqueue_pcplist < get_page_from_freelist < __alloc_frozen_pages_noprof`.
pub fn short_path(frames_leaf_first: &[&str]) -> String {
    let names: Vec<&str> = frames_leaf_first
        .iter()
        .map(|f| classify::frame_symbol(f))
        .filter(|s| !s.is_empty() && !classify::is_lock_frame(s))
        .take(3)
        .collect();
    if names.is_empty() {
        "(only lock frames)".into()
    } else {
        names.join(" < ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::sample;

    /// sample(): 2 s; CPU 0 waits 6 ms alloc (+0.5 ms, stack lost, on the zone lock),
    /// CPU 1 12 ms free; CPU 0 refills 1000 pages, CPU 1 drains 990.
    #[test]
    fn rates_are_per_second_and_shares_of_the_cpu() {
        let mut rec = sample();
        for n in ["pcp_refill", "pcp_drain"] {
            let mut p = rec.probes[0].clone();
            p.name = n.into();
            rec.probes.push(p);
        }
        let v = TopView::of(&rec);
        assert_eq!(v.interval_s, 2.0);
        let cpu0 = &v.cpus[0];
        assert!((cpu0.alloc_pct - 0.3).abs() < 1e-9, "{cpu0:?}");
        assert!((cpu0.other_pct - 0.025).abs() < 1e-9, "{cpu0:?}");
        assert_eq!(cpu0.refill_per_s, Some(500.0));
        let cpu1 = &v.cpus[1];
        assert!((cpu1.free_pct - 0.6).abs() < 1e-9, "{cpu1:?}");
        assert_eq!(cpu1.drain_per_s, Some(495.0));
        // Busiest first, then by CPU number.
        let order: Vec<u32> = v.sorted_cpus(Sort::Wait).iter().map(|r| r.cpu).collect();
        assert_eq!(order, vec![1, 0]);
        let order: Vec<u32> = v.sorted_cpus(Sort::Refill).iter().map(|r| r.cpu).collect();
        assert_eq!(order, vec![0, 1]);
        // The free stack leads; the rq lock is no zone lock and not listed.
        assert_eq!(v.stacks[0].side, "free (pcp high)");
        assert_eq!(
            v.stacks[0].path,
            "free_pcppages_bulk < free_frozen_page_commit < free_unref_folios"
        );
        assert_eq!(v.stacks.len(), 3);
        assert!(v.stacks.iter().all(|s| !s.path.contains("sched_tick")));
    }

    #[test]
    fn uncounted_pcp_sides_are_none_not_zero() {
        let v = TopView::of(&sample());
        assert!(v.cpus.iter().all(|c| c.refill_per_s.is_none()));
        assert_eq!(v.probes_attached, 1);
    }

    #[test]
    fn sort_cycles_through_every_order() {
        let mut s = Sort::default();
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(s.name());
            s = s.next();
        }
        assert_eq!(s, Sort::default());
        assert_eq!(seen, vec!["wait", "cpu", "refill", "drain"]);
    }

    #[test]
    fn threads_only_with_tasks_most_wait_first() {
        assert_eq!(
            TopView::of(&crate::model::recording::sample()).threads,
            None
        );
        let rec = crate::model::tasks::tests::sample_with_tasks();
        let v = TopView::of(&rec);
        let rows = v.threads.expect("threads with --tasks");
        assert!(!rows.is_empty() && rows.len() <= TOP_ROWS);
        assert!(
            rows.windows(2).all(|w| w[0].zone_pct >= w[1].zone_pct),
            "{rows:?}"
        );
        // vhost-1000 made 900 remote frees in the 2 s sample.
        let vhost = rows
            .iter()
            .find(|r| r.task == "vhost-1000-1002")
            .expect("the vhost thread");
        assert_eq!(vhost.cgroup, "/machine.slice/vm1.scope");
        assert!((vhost.remote_frees_per_s - 450.0).abs() < 1e-9, "{vhost:?}");
    }
}
