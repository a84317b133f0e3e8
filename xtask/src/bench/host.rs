//! Facts about the machine the bench ran on, and how busy other people kept it.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::parse;

#[derive(Debug, Clone)]
pub struct HostFacts {
    pub kernel: String,
    pub cpu_model: String,
    pub online_cpus: u32,
    pub possible_cpus: u32,
    pub mem_gib: f64,
    pub date_utc: String,
    pub virtualized: Option<String>,
    pub perf_max_stack: u32,
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

pub fn facts() -> HostFacts {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let hypervisor = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    HostFacts {
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cpu_model,
        online_cpus: parse::cpu_count(&read("/sys/devices/system/cpu/online")).unwrap_or(0),
        possible_cpus: parse::cpu_count(&read("/sys/devices/system/cpu/possible")).unwrap_or(0),
        mem_gib: mem_kib / 1024.0 / 1024.0,
        date_utc: utc_now(),
        virtualized: hypervisor.then(|| "yes (hypervisor CPU flag)".to_string()),
        perf_max_stack: read("/proc/sys/kernel/perf_event_max_stack")
            .trim()
            .parse()
            .unwrap_or(127),
    }
}

pub fn loadavg() -> Option<[f64; 3]> {
    parse::loadavg(&read("/proc/loadavg"))
}

/// Programs that mean someone else is using the machine: compilers, linkers, VMs.
const BUSY: &[&str] = &[
    "rustc",
    "cc1",
    "cc1plus",
    "ld",
    "lld",
    "qemu-system-x86",
    "bpf-linker",
];

/// Running processes (not ours) whose name is in [`BUSY`].
pub fn others_busy() -> usize {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| !descends_from(pid, me))
        .filter(|pid| {
            let comm = read(&format!("/proc/{pid}/comm"));
            BUSY.contains(&comm.trim())
        })
        .count()
}

/// BPF tracepoint programs (`prog_type` 5) loaded by processes that are not ours: another
/// profiler on the same tracepoints slows every run, bare ones included.
pub fn foreign_bpf_tracepoint_progs() -> usize {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for pid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            continue;
        };
        let mut progs = 0;
        for fd in fds.flatten() {
            let text = std::fs::read_to_string(fd.path()).unwrap_or_default();
            if let Some(super::parse::BpfFd::Prog(p)) = super::parse::fdinfo(&text) {
                progs += usize::from(p.prog_type == 5);
            }
        }
        if progs > 0 && !descends_from(pid, me) {
            n += progs;
        }
    }
    n
}

pub fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        let status = read(&format!("/proc/{pid}/status"));
        match status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse().ok())
        {
            Some(pp) => pid = pp,
            None => return false,
        }
    }
    false
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The first of `candidates` that exists.
pub fn first_existing(candidates: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    candidates.iter().find(|p| Path::new(p).exists()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_764_142_500), "2025-11-26 07:35 UTC");
    }

    #[test]
    fn we_descend_from_ourselves_not_from_init_children() {
        let me = std::process::id();
        assert!(descends_from(me, me));
        assert!(!descends_from(1, me));
    }
}
