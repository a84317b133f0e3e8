//! Who waited and who freed (`record --tasks`): lock waits and SKB frees summed per thread
//! and per cgroup. The kernel keys both by thread id; the thread's process, name and
//! cgroup come from `Recording::tasks` and `Recording::cgroups`.
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::model::{
    analysis::{ClassifiedWait, SideNs},
    recording::{Recording, TaskInfo},
    units::SatSum,
};

/// What `--by` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    #[default]
    Cpu,
    Task,
    Cgroup,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Cpu => "cpu",
            By::Task => "task",
            By::Cgroup => "cgroup",
        }
    }
}

/// `--by task|cgroup` of a recording made without `--tasks`.
#[derive(Debug, thiserror::Error)]
#[error(
    "this recording has no thread keys, so it cannot be shown by {0}: record it with `zoneprof record --tasks`"
)]
pub struct NoTasks(pub &'static str);

/// Whether `rec` can be grouped `by`.
pub fn check(rec: &Recording, by: By) -> Result<(), NoTasks> {
    match by {
        By::Cpu => Ok(()),
        _ if rec.settings.tasks => Ok(()),
        other => Err(NoTasks(other.name())),
    }
}

/// A thread as the views name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskLabel {
    /// Thread name; `[unnamed]` when the task-name map was full.
    pub comm: String,
    /// The thread's id (the kernel's pid of the thread, as `ps -L` and perf show it).
    pub pid: u32,
    /// Its process (thread group) id; null when unnamed.
    pub tgid: Option<u32>,
    /// cgroup v2 path (`/machine.slice/vm1.scope`), `cgroup <id>` when it was gone at
    /// read-back, null when the thread had none (or was unnamed).
    pub cgroup: Option<String>,
}

impl TaskLabel {
    /// `comm-tid`, the root frame of `flamegraph --per-task` (as stackcollapse-perf names
    /// tasks).
    pub fn frame(&self) -> String {
        format!("{}-{}", self.comm, self.pid)
    }

    /// The cgroup as a group name: its path, or a bracketed reason.
    pub fn cgroup_name(&self) -> String {
        match (&self.cgroup, self.tgid) {
            (Some(c), _) => c.clone(),
            (None, Some(_)) => NO_CGROUP.into(),
            (None, None) => UNNAMED_CGROUP.into(),
        }
    }
}

/// Group names of threads without a cgroup id, and of threads the name map missed.
pub const NO_CGROUP: &str = "[no cgroup]";
pub const UNNAMED_CGROUP: &str = "[unnamed thread]";

/// Names every thread id of `rec`.
pub struct Names<'a> {
    tasks: HashMap<u32, &'a TaskInfo>,
    cgroups: HashMap<u64, Option<&'a str>>,
}

impl<'a> Names<'a> {
    pub fn of(rec: &'a Recording) -> Names<'a> {
        Names {
            tasks: rec.tasks.iter().map(|t| (t.tid, t)).collect(),
            cgroups: rec
                .cgroups
                .iter()
                .map(|c| (c.id, c.path.as_deref()))
                .collect(),
        }
    }

    pub fn label(&self, tid: u32) -> TaskLabel {
        match self.tasks.get(&tid) {
            Some(t) => TaskLabel {
                // The idle task has pid 0 on every CPU, each named `swapper/<cpu>`: one
                // name for all of them.
                comm: if tid == 0 {
                    "swapper".into()
                } else {
                    t.comm.clone()
                },
                pid: tid,
                tgid: Some(t.pid),
                cgroup: t.cgroup_id.map(|id| match self.cgroups.get(&id) {
                    Some(Some(p)) => (*p).to_string(),
                    _ => format!("cgroup {id}"),
                }),
            },
            None => TaskLabel {
                comm: "[unnamed]".into(),
                pid: tid,
                tgid: None,
                cgroup: None,
            },
        }
    }
}

/// Lock wait of one thread, or of one cgroup's threads.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitSums {
    pub zone_lock_wait_ns: SideNs,
    pub other_lock_wait_ns: u64,
    pub contentions: u64,
}

impl WaitSums {
    fn add(&mut self, cw: &ClassifiedWait<'_>) {
        let w = cw.wait;
        self.contentions = self.contentions.saturating_add(w.count);
        if cw.class.is_zone() {
            self.zone_lock_wait_ns.add(&cw.class, w.total_ns);
        } else {
            self.other_lock_wait_ns = self.other_lock_wait_ns.saturating_add(w.total_ns);
        }
    }

    fn merge(&mut self, o: &WaitSums) {
        let z = &mut self.zone_lock_wait_ns;
        z.alloc = z.alloc.saturating_add(o.zone_lock_wait_ns.alloc);
        z.free = z.free.saturating_add(o.zone_lock_wait_ns.free);
        z.other = z.other.saturating_add(o.zone_lock_wait_ns.other);
        self.other_lock_wait_ns = self.other_lock_wait_ns.saturating_add(o.other_lock_wait_ns);
        self.contentions = self.contentions.saturating_add(o.contentions);
    }

    /// Sort key: zone-lock wait, then other wait.
    fn weight(&self) -> (u64, u64) {
        (self.zone_lock_wait_ns.total(), self.other_lock_wait_ns)
    }
}

/// SKB frees of one thread, or of one cgroup's threads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SkbSums {
    pub count: u64,
    /// Freed on another CPU than the allocating one.
    pub remote: u64,
    /// Freed on another NUMA node than the allocating CPU's.
    pub cross_node: u64,
}

impl SkbSums {
    fn merge(&mut self, o: &SkbSums) {
        self.count = self.count.saturating_add(o.count);
        self.remote = self.remote.saturating_add(o.remote);
        self.cross_node = self.cross_node.saturating_add(o.cross_node);
    }
}

/// One thread's lock wait (`lock_wait_tasks[]` of the report JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskWaitRow {
    #[serde(flatten)]
    pub task: TaskLabel,
    #[serde(flatten)]
    pub wait: WaitSums,
}

/// One thread's SKB frees (`skb_free_tasks[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSkbRow {
    #[serde(flatten)]
    pub task: TaskLabel,
    #[serde(flatten)]
    pub frees: SkbSums,
}

/// One cgroup's lock wait and SKB frees, over its threads (`cgroups[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupRow {
    /// Path, or `[no cgroup]` / `[unnamed thread]`.
    pub cgroup: String,
    /// Threads seen waiting or freeing in it.
    pub threads: usize,
    #[serde(flatten)]
    pub wait: WaitSums,
    pub skb_frees: SkbSums,
}

/// Lock wait per thread, most zone-lock wait first. Rows without a thread id (recorded
/// without `--tasks`) are left out.
pub fn lock_wait_by_task(rec: &Recording, waits: &[ClassifiedWait<'_>]) -> Vec<TaskWaitRow> {
    let mut by: BTreeMap<u32, WaitSums> = BTreeMap::new();
    for cw in waits {
        if let Some(tid) = cw.wait.tid {
            by.entry(tid).or_default().add(cw);
        }
    }
    let names = Names::of(rec);
    let mut rows: Vec<TaskWaitRow> = by
        .into_iter()
        .map(|(tid, wait)| TaskWaitRow {
            task: names.label(tid),
            wait,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.wait
            .weight()
            .cmp(&a.wait.weight())
            .then(a.task.pid.cmp(&b.task.pid))
    });
    rows
}

/// SKB frees per thread, most frees first (the SKB-site table's thread keys, summed over
/// sites and CPUs).
pub fn skb_free_by_task(rec: &Recording) -> Vec<TaskSkbRow> {
    let mut by: BTreeMap<u32, SkbSums> = BTreeMap::new();
    for s in &rec.skb_sites {
        if let Some(tid) = s.tid {
            by.entry(tid).or_default().merge(&SkbSums {
                count: s.count,
                remote: s.remote,
                cross_node: s.cross_node,
            });
        }
    }
    let names = Names::of(rec);
    let mut rows: Vec<TaskSkbRow> = by
        .into_iter()
        .map(|(tid, frees)| TaskSkbRow {
            task: names.label(tid),
            frees,
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.frees.count, b.frees.remote)
            .cmp(&(a.frees.count, a.frees.remote))
            .then(a.task.pid.cmp(&b.task.pid))
    });
    rows
}

/// Lock wait and SKB frees per cgroup, most zone-lock wait first, then most frees.
pub fn by_cgroup(tasks: &[TaskWaitRow], skb: &[TaskSkbRow]) -> Vec<CgroupRow> {
    let mut by: BTreeMap<String, (WaitSums, SkbSums, Vec<u32>)> = BTreeMap::new();
    for t in tasks {
        let e = by.entry(t.task.cgroup_name()).or_default();
        e.0.merge(&t.wait);
        e.2.push(t.task.pid);
    }
    for t in skb {
        let e = by.entry(t.task.cgroup_name()).or_default();
        e.1.merge(&t.frees);
        e.2.push(t.task.pid);
    }
    let mut rows: Vec<CgroupRow> = by
        .into_iter()
        .map(|(cgroup, (wait, skb_frees, mut tids))| {
            tids.sort_unstable();
            tids.dedup();
            CgroupRow {
                cgroup,
                threads: tids.len(),
                wait,
                skb_frees,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.wait.weight(), b.skb_frees.count)
            .cmp(&(a.wait.weight(), a.skb_frees.count))
            .then(a.cgroup.cmp(&b.cgroup))
    });
    rows
}

/// Total zone-lock wait of some rows (for shares in the views).
pub fn zone_total(rows: &[TaskWaitRow]) -> u64 {
    rows.iter()
        .map(|r| r.wait.zone_lock_wait_ns.total())
        .sat_sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{
        analysis::classify_waits,
        recording::{CgroupInfo, SkbSite, sample},
    };

    /// `sample()` recorded with `--tasks`: the alloc-side wait by `tap-send-0` (1001), the
    /// free-side wait by `vhost-1000` (1002), the rest by `kworker/1:0` (77) with no
    /// cgroup; one thread (4242) the name map missed.
    pub(crate) fn sample_with_tasks() -> Recording {
        let mut rec = sample();
        rec.settings.tasks = true;
        let tids = [1001, 1002, 77, 4242];
        for (w, tid) in rec.lock_waits.iter_mut().zip(tids) {
            w.tid = Some(tid);
        }
        let site = |tid, count, remote| SkbSite {
            function: "consume_skb".into(),
            caller: "tun_do_read".into(),
            cpu: 1,
            count,
            remote,
            cross_node: 0,
            tid: Some(tid),
        };
        rec.skb_sites = vec![site(1002, 900, 880), site(1002, 100, 20), site(77, 5, 0)];
        rec.tasks = vec![
            TaskInfo {
                tid: 77,
                pid: 77,
                comm: "kworker/1:0".into(),
                cgroup_id: None,
            },
            TaskInfo {
                tid: 1001,
                pid: 1000,
                comm: "tap-send-0".into(),
                cgroup_id: Some(11),
            },
            TaskInfo {
                tid: 1002,
                pid: 1000,
                comm: "vhost-1000".into(),
                cgroup_id: Some(11),
            },
        ];
        rec.cgroups = vec![CgroupInfo {
            id: 11,
            path: Some("/machine.slice/vm1.scope".into()),
        }];
        rec
    }

    #[test]
    fn waits_and_frees_sum_per_thread_with_names() {
        let rec = sample_with_tasks();
        let waits = classify_waits(&rec);
        let rows = lock_wait_by_task(&rec, &waits);
        type Row<'a> = (&'a str, u32, Option<u32>, u64, u64, u64);
        let got: Vec<Row<'_>> = rows
            .iter()
            .map(|r| {
                let z = r.wait.zone_lock_wait_ns;
                (
                    r.task.comm.as_str(),
                    r.task.pid,
                    r.task.tgid,
                    z.alloc,
                    z.free,
                    r.wait.other_lock_wait_ns,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("vhost-1000", 1002, Some(1000), 0, 12_000_000, 0),
                ("tap-send-0", 1001, Some(1000), 6_000_000, 0, 0),
                // The stackless wait on the proven zone lock: zone, other side.
                ("[unnamed]", 4242, None, 0, 0, 0),
                ("kworker/1:0", 77, Some(77), 0, 0, 1_000_000),
            ]
        );
        assert_eq!(rows[2].wait.zone_lock_wait_ns.other, 500_000);
        assert_eq!(
            rows[0].task.cgroup.as_deref(),
            Some("/machine.slice/vm1.scope")
        );
        assert_eq!(rows[0].task.frame(), "vhost-1000-1002");
        // Every row's wait is in some thread: the per-thread sums add up to the total.
        let total: u64 = rows
            .iter()
            .map(|r| r.wait.zone_lock_wait_ns.total() + r.wait.other_lock_wait_ns)
            .sum();
        assert_eq!(
            total,
            rec.lock_waits.iter().map(|w| w.total_ns).sum::<u64>()
        );

        let skb = skb_free_by_task(&rec);
        assert_eq!(skb.len(), 2);
        assert_eq!(
            (skb[0].task.comm.as_str(), skb[0].frees.clone()),
            (
                "vhost-1000",
                SkbSums {
                    count: 1000,
                    remote: 900,
                    cross_node: 0
                }
            )
        );
    }

    #[test]
    fn cgroups_gather_their_threads() {
        let rec = sample_with_tasks();
        let waits = classify_waits(&rec);
        let rows = by_cgroup(&lock_wait_by_task(&rec, &waits), &skb_free_by_task(&rec));
        let got: Vec<(&str, usize, u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.cgroup.as_str(),
                    r.threads,
                    r.wait.zone_lock_wait_ns.total(),
                    r.skb_frees.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/machine.slice/vm1.scope", 2, 18_000_000, 1000),
                (UNNAMED_CGROUP, 1, 500_000, 0),
                (NO_CGROUP, 1, 0, 5),
            ]
        );
    }

    #[test]
    fn a_cgroup_gone_before_read_back_keeps_its_id() {
        let mut rec = sample_with_tasks();
        rec.cgroups[0].path = None;
        assert_eq!(
            Names::of(&rec).label(1002).cgroup.as_deref(),
            Some("cgroup 11")
        );
        // The idle task is one row whatever CPU named it.
        rec.tasks.push(TaskInfo {
            tid: 0,
            pid: 0,
            comm: "swapper/1".into(),
            cgroup_id: Some(1),
        });
        assert_eq!(Names::of(&rec).label(0).comm, "swapper");
    }

    #[test]
    fn grouping_by_task_needs_thread_keys() {
        let rec = sample();
        assert!(check(&rec, By::Cpu).is_ok());
        let e = check(&rec, By::Task).unwrap_err().to_string();
        assert!(e.contains("record --tasks"), "{e}");
        assert!(check(&sample_with_tasks(), By::Cgroup).is_ok());
        // Without thread keys, nothing to sum.
        assert!(lock_wait_by_task(&rec, &classify_waits(&rec)).is_empty());
    }
}
