//! In-kernel cost per event of each eBPF program: `kernel.bpf_stats_enabled` on for the
//! duration of a zoneprof run, and `run_time_ns` / `run_cnt` read from the fdinfo of the
//! zoneprof process's program descriptors, twice, inside the workload's steady state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::child;
use super::parse::{self, BpfFd, MapInfo, ProgInfo};

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Sets `kernel.bpf_stats_enabled` to 1 and restores the old value when dropped.
pub struct StatsEnabled {
    old: String,
}

impl StatsEnabled {
    pub fn enable() -> Result<StatsEnabled> {
        let old = std::fs::read_to_string(STATS_SYSCTL)
            .with_context(|| format!("reading {STATS_SYSCTL}"))?;
        std::fs::write(STATS_SYSCTL, "1")
            .with_context(|| format!("writing 1 to {STATS_SYSCTL} (needs root)"))?;
        Ok(StatsEnabled {
            old: old.trim().to_string(),
        })
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(STATS_SYSCTL, &self.old) {
            eprintln!(
                "bench: warning: could not restore {STATS_SYSCTL} to {}: {e}",
                self.old
            );
        }
    }
}

/// BPF objects held by one process.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub at: Duration,
    pub progs: Vec<ProgInfo>,
    pub maps: Vec<MapInfo>,
}

/// Reads every fdinfo of `pid` that is a BPF program or map.
pub fn snapshot(pid: u32, at: Duration) -> Snapshot {
    let mut s = Snapshot {
        at,
        ..Snapshot::default()
    };
    let dir = PathBuf::from(format!("/proc/{pid}/fdinfo"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return s;
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        match parse::fdinfo(&text) {
            Some(BpfFd::Prog(p)) => s.progs.push(p),
            Some(BpfFd::Map(m)) => s.maps.push(m),
            None => {}
        }
    }
    s
}

/// One program's cost over the measured window.
#[derive(Debug, Clone)]
pub struct ProgCost {
    pub name: String,
    pub prog_type: u32,
    pub events: u64,
    pub run_time_ns: u64,
    pub window_s: f64,
    pub recursion_misses: u64,
}

impl ProgCost {
    pub fn ns_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.run_time_ns as f64 / self.events as f64)
    }

    pub fn events_per_s(&self) -> f64 {
        if self.window_s > 0.0 {
            self.events as f64 / self.window_s
        } else {
            0.0
        }
    }
}

/// Per-program deltas between two snapshots of the same process (matched by program id).
pub fn deltas(
    a: &Snapshot,
    b: &Snapshot,
    names: &HashMap<String, String>,
    by_id: &HashMap<u32, String>,
) -> Vec<ProgCost> {
    let window_s = b.at.saturating_sub(a.at).as_secs_f64();
    let mut out: Vec<ProgCost> = b
        .progs
        .iter()
        .map(|pb| {
            let pa = a.progs.iter().find(|p| p.id == pb.id);
            let (cnt0, ns0, miss0) = pa.map_or((0, 0, 0), |p| {
                (p.run_cnt, p.run_time_ns, p.recursion_misses)
            });
            ProgCost {
                name: by_id
                    .get(&pb.id)
                    .or_else(|| names.get(&pb.tag))
                    .cloned()
                    .unwrap_or_else(|| format!("tag {}", pb.tag)),
                prog_type: pb.prog_type,
                events: pb.run_cnt.saturating_sub(cnt0),
                run_time_ns: pb.run_time_ns.saturating_sub(ns0),
                window_s,
                recursion_misses: pb.recursion_misses.saturating_sub(miss0),
            }
        })
        .collect();
    out.sort_by(|x, y| y.events.cmp(&x.events).then(x.name.cmp(&y.name)));
    out
}

/// A measured zoneprof run.
#[derive(Debug, Clone)]
pub struct CostRun {
    pub label: String,
    pub command: String,
    pub progs: Vec<ProgCost>,
    /// What the process held (maps too, for the memory cross-check).
    pub last: Snapshot,
}

/// `zoneprof record [extra] -o OUT -- repro`.
pub fn zoneprof_argv(zoneprof: &Path, extra: &[&str], repro: &[String], out: &Path) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        zoneprof.display().to_string(),
        "record".into(),
        "--no-progress".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.push("--".into());
    argv.extend(repro.iter().cloned());
    argv
}

/// Runs `argv` (a tool that loads BPF programs and runs a workload lasting `secs`) and
/// measures its programs between 1 s after they appear and 1 s before the workload ends.
pub fn measure(argv: &[String], secs: u32, label: &str) -> Result<CostRun> {
    if secs < 3 {
        bail!("the cost runs need a workload of at least 3 s");
    }
    let window = Duration::from_secs(u64::from(secs) - 2);
    let mut first_seen: Option<Instant> = None;
    let mut a: Option<Snapshot> = None;
    let mut b: Option<Snapshot> = None;
    let mut kallsyms: Option<String> = None;
    let mut by_id: HashMap<u32, String> = HashMap::new();
    let started = Instant::now();
    let o = child::run_with(argv, Duration::from_secs(u64::from(secs) + 60), |pid, _| {
        if b.is_some() {
            return;
        }
        let now = started.elapsed();
        match (&first_seen, &a) {
            (None, _) if !snapshot(pid, now).progs.is_empty() => {
                first_seen = Some(Instant::now());
            }
            (Some(t), None) if t.elapsed() >= Duration::from_secs(1) => {
                a = Some(snapshot(pid, now));
            }
            (Some(_), Some(sa)) if now.saturating_sub(sa.at) >= window => {
                b = Some(snapshot(pid, now));
                // Now, while the programs are loaded: their names go with them.
                kallsyms = std::fs::read_to_string("/proc/kallsyms").ok();
                by_id = crate::cmd::find_in_path("bpftool")
                    .and_then(|b| {
                        let argv = vec![
                            b.display().to_string(),
                            "prog".into(),
                            "show".into(),
                            "--json".into(),
                        ];
                        child::run_ok(&argv, Duration::from_secs(20)).ok()
                    })
                    .map(|o| parse::bpftool_names(&o.stdout))
                    .unwrap_or_default();
            }
            _ => {}
        }
    })?;
    if !o.success() {
        bail!(
            "`{}` failed ({}): {}",
            child::shown(argv),
            o.describe(),
            o.stderr_tail(5)
        );
    }
    let (Some(a), Some(b)) = (a, b) else {
        bail!(
            "`{}` ended before two snapshots of its BPF programs could be taken",
            child::shown(argv)
        );
    };
    let names = parse::bpf_prog_names(kallsyms.as_deref().unwrap_or(""));
    Ok(CostRun {
        label: label.to_string(),
        command: child::shown(argv),
        progs: deltas(&a, &b, &names, &by_id),
        last: b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(id: u32, tag: &str, cnt: u64, ns: u64) -> ProgInfo {
        ProgInfo {
            prog_type: 5,
            tag: tag.into(),
            id,
            memlock: 4096,
            run_time_ns: ns,
            run_cnt: cnt,
            recursion_misses: 0,
        }
    }

    #[test]
    fn deltas_per_program() {
        let a = Snapshot {
            at: Duration::from_secs(1),
            progs: vec![prog(1, "aa", 100, 10_000), prog(2, "bb", 0, 0)],
            maps: vec![],
        };
        let b = Snapshot {
            at: Duration::from_secs(3),
            progs: vec![
                prog(1, "aa", 1_100, 110_000),
                prog(2, "bb", 10, 500),
                prog(3, "cc", 0, 0),
            ],
            maps: vec![],
        };
        let names: HashMap<String, String> = [("aa".to_string(), "contention_end".to_string())]
            .into_iter()
            .collect();
        let by_id: HashMap<u32, String> = [(2, "by_id".to_string())].into_iter().collect();
        let d = deltas(&a, &b, &names, &by_id);
        assert_eq!(d[0].name, "contention_end");
        assert_eq!(d[0].events, 1_000);
        assert_eq!(d[0].ns_per_event(), Some(100.0));
        assert_eq!(d[0].events_per_s(), 500.0);
        assert_eq!(d[1].name, "by_id");
        assert_eq!(d[1].ns_per_event(), Some(50.0));
        assert_eq!(d[2].ns_per_event(), None);
    }
}
