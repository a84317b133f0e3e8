//! Host facts captured at record time: identity, CPU/NUMA topology, and the sysctls and
//! per-CPU page (PCP) list settings that decide how often `zone->lock` is taken.

use std::ffi::CStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kernel::cpulist::{CpuListError, parse_cpu_list};

#[derive(Debug, Error)]
pub enum HostError {
    #[error("uname failed: {0}")]
    Uname(io::Error),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse CPU list in {path}: {source}")]
    CpuList { path: PathBuf, source: CpuListError },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel_release: String,
    /// `uname -v`: build number and date, e.g. "#1 SMP PREEMPT_DYNAMIC ...".
    pub kernel_version: String,
    pub arch: String,
    pub online_cpus: Vec<u32>,
    /// Highest possible CPU id + 1: the size of per-CPU arrays (what BPF per-CPU maps use).
    pub possible_cpus: u32,
    /// (cpu, node) for every CPU that some node lists, sorted by CPU.
    pub cpu_node: Vec<(u32, u32)>,
    /// NUMA node ids, sorted; memory-only nodes included. `[0]` without NUMA support.
    pub numa_nodes: Vec<u32>,
}

impl HostInfo {
    /// NUMA node of `cpu`; 0 when unknown (non-NUMA kernels put everything on node 0).
    pub fn node_of(&self, cpu: u32) -> u32 {
        self.cpu_node
            .iter()
            .find(|(c, _)| *c == cpu)
            .map_or(0, |(_, n)| *n)
    }
}

/// One CPU's PCP list in one zone, from the `pagesets` section of /proc/zoneinfo (pages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcpSetting {
    pub node: u32,
    pub zone: String,
    pub cpu: u32,
    pub count: u64,
    pub high: u64,
    pub batch: u64,
    /// Auto-tuning bounds of `high`; printed since 6.13.
    pub high_min: Option<u64>,
    pub high_max: Option<u64>,
}

/// Tunables that shape PCP and SKB-defer behaviour. `None` = sysctl absent or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Settings {
    pub skb_defer_max: Option<i64>,
    pub percpu_pagelist_high_fraction: Option<i64>,
    pub stat_interval: Option<i64>,
    pub pcp: Vec<PcpSetting>,
    /// zoneprof's own: each aggregation map's size as loaded (`--map-entries`). Empty in
    /// recordings made before they were kept, and in synthetic ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub map_entries: Vec<crate::kernel::map_entries::MapSize>,
    /// zoneprof's own: lock waits and SKB frees were keyed by thread too (`--tasks`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tasks: bool,
}

const SYS_CPU: &str = "/sys/devices/system/cpu";
const SYS_NODE: &str = "/sys/devices/system/node";

fn read_string(path: &Path) -> Result<String, HostError> {
    fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_cpu_list(path: &Path) -> Result<Vec<u32>, HostError> {
    parse_cpu_list(&read_string(path)?).map_err(|source| HostError::CpuList {
        path: path.to_path_buf(),
        source,
    })
}

/// Online CPUs from /sys/devices/system/cpu/online.
pub fn online_cpus() -> Result<Vec<u32>, HostError> {
    read_cpu_list(&Path::new(SYS_CPU).join("online"))
}

struct Uname {
    hostname: String,
    release: String,
    version: String,
    machine: String,
}

fn field(bytes: &[libc::c_char]) -> String {
    // uname fields are NUL-terminated; fall back to the whole array if one is not.
    // SAFETY: c_char and u8 have the same size and alignment; the slice stays borrowed.
    let raw: &[u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) };
    match CStr::from_bytes_until_nul(raw) {
        Ok(c) => c.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

fn uname() -> Result<Uname, HostError> {
    // SAFETY: utsname is plain old data (arrays of c_char); all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname for the duration of the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(HostError::Uname(io::Error::last_os_error()));
    }
    Ok(Uname {
        hostname: field(&uts.nodename),
        release: field(&uts.release),
        version: field(&uts.version),
        machine: field(&uts.machine),
    })
}

/// Reads host identity and topology.
pub fn host_info() -> Result<HostInfo, HostError> {
    let u = uname()?;
    let (online_cpus, possible_cpus, cpu_node, numa_nodes) =
        topology_at(Path::new(SYS_CPU), Path::new(SYS_NODE))?;
    Ok(HostInfo {
        hostname: u.hostname,
        kernel_release: u.release,
        kernel_version: u.version,
        arch: u.machine,
        online_cpus,
        possible_cpus,
        cpu_node,
        numa_nodes,
    })
}

type Topology = (Vec<u32>, u32, Vec<(u32, u32)>, Vec<u32>);

/// Topology from sysfs roots, split out so tests can point it at a fake tree.
fn topology_at(cpu_dir: &Path, node_dir: &Path) -> Result<Topology, HostError> {
    let online = read_cpu_list(&cpu_dir.join("online"))?;
    let possible = read_cpu_list(&cpu_dir.join("possible"))?;
    // parse_cpu_list never returns an empty list, so max() exists; saturate on u32::MAX.
    let possible_cpus = possible.iter().max().map_or(0, |m| m.saturating_add(1));

    let mut nodes: Vec<u32> = Vec::new();
    let mut cpu_node: Vec<(u32, u32)> = Vec::new();
    // No node directory = kernel without CONFIG_NUMA: everything is node 0.
    if let Ok(entries) = fs::read_dir(node_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("node"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            nodes.push(id);
            let path = entry.path().join("cpulist");
            let text = read_string(&path)?;
            // Memory-only (CPU-less) nodes have an empty cpulist.
            if text.trim().is_empty() {
                continue;
            }
            let cpus = parse_cpu_list(&text).map_err(|source| HostError::CpuList {
                path: path.clone(),
                source,
            })?;
            cpu_node.extend(cpus.into_iter().map(|c| (c, id)));
        }
    }
    if nodes.is_empty() {
        nodes.push(0);
        cpu_node = online.iter().map(|&c| (c, 0)).collect();
    }
    nodes.sort_unstable();
    nodes.dedup();
    cpu_node.sort_unstable();
    cpu_node.dedup_by_key(|(c, _)| *c);
    Ok((online, possible_cpus, cpu_node, nodes))
}

fn read_sysctl(path: &str) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads sysctls and PCP settings, best effort: anything missing is `None` / empty.
///
/// /proc/zoneinfo is read exactly once: generating it takes every zone lock with IRQs
/// off, which is the lock this tool measures.
pub fn read_settings() -> Settings {
    Settings {
        skb_defer_max: read_sysctl("/proc/sys/net/core/skb_defer_max"),
        percpu_pagelist_high_fraction: read_sysctl("/proc/sys/vm/percpu_pagelist_high_fraction"),
        stat_interval: read_sysctl("/proc/sys/vm/stat_interval"),
        pcp: fs::read_to_string("/proc/zoneinfo")
            .map(|t| parse_zoneinfo(&t))
            .unwrap_or_default(),
        map_entries: Vec::new(),
        tasks: false,
    }
}

/// Partial pageset entry being filled while scanning /proc/zoneinfo.
#[derive(Default)]
struct Pending {
    cpu: u32,
    count: Option<u64>,
    high: Option<u64>,
    batch: Option<u64>,
    high_min: Option<u64>,
    high_max: Option<u64>,
}

fn finish(out: &mut Vec<PcpSetting>, zone: Option<&(u32, String)>, p: Option<Pending>) {
    // Entries missing count/high/batch are malformed: drop them rather than invent zeros.
    if let (Some((node, name)), Some(p)) = (zone, p)
        && let (Some(count), Some(high), Some(batch)) = (p.count, p.high, p.batch)
    {
        out.push(PcpSetting {
            node: *node,
            zone: name.clone(),
            cpu: p.cpu,
            count,
            high,
            batch,
            high_min: p.high_min,
            high_max: p.high_max,
        });
    }
}

/// "Node 0, zone   Normal" -> (0, "Normal").
fn parse_zone_header(line: &str) -> Option<(u32, String)> {
    let rest = line.strip_prefix("Node ")?;
    let (node, zone) = rest.split_once(',')?;
    let node = node.trim().parse().ok()?;
    let zone = zone.trim().strip_prefix("zone")?.trim();
    if zone.is_empty() {
        return None;
    }
    Some((node, zone.to_string()))
}

/// Extracts the per-CPU pageset entries of /proc/zoneinfo. Zones without a `pagesets`
/// section (empty Movable/Device zones) contribute nothing; unknown lines are ignored.
pub fn parse_zoneinfo(text: &str) -> Vec<PcpSetting> {
    let mut out = Vec::new();
    let mut zone: Option<(u32, String)> = None;
    let mut in_pagesets = false;
    let mut pending: Option<Pending> = None;

    for line in text.lines() {
        if line.starts_with("Node ") {
            finish(&mut out, zone.as_ref(), pending.take());
            zone = parse_zone_header(line);
            in_pagesets = false;
            continue;
        }
        let t = line.trim();
        if t == "pagesets" {
            finish(&mut out, zone.as_ref(), pending.take());
            in_pagesets = true;
            continue;
        }
        if !in_pagesets {
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "cpu" => {
                finish(&mut out, zone.as_ref(), pending.take());
                pending = value.parse().ok().map(|cpu| Pending {
                    cpu,
                    ..Pending::default()
                });
            }
            k @ ("count" | "high" | "batch" | "high_min" | "high_max") => {
                if let (Some(p), Ok(v)) = (pending.as_mut(), value.parse::<u64>()) {
                    match k {
                        "count" => p.count = Some(v),
                        "high" => p.high = Some(v),
                        "batch" => p.batch = Some(v),
                        "high_min" => p.high_min = Some(v),
                        _ => p.high_max = Some(v),
                    }
                }
            }
            // Per-CPU trailer line; the next "cpu:" or zone-level key ends the entry.
            "vm stats threshold" => {}
            // Zone-level keys after the pagesets ("node_unreclaimable", "start_pfn").
            _ => {
                finish(&mut out, zone.as_ref(), pending.take());
                in_pagesets = false;
            }
        }
    }
    finish(&mut out, zone.as_ref(), pending.take());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape of 6.18 /proc/zoneinfo (per-node stats abbreviated), two CPUs, with an empty
    /// DMA32 and Movable/Device zones that have no pagesets.
    const ZONEINFO_6_18: &str = "\
Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 1426
      nr_active_anon 384
      nr_kernel_stack 1400
  pages free     3840
        boost    0
        min      40
        low      50
        high     60
        promo    70
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 3018, 6218, 6218, 6218)
      nr_free_pages 3840
      numa_local   0
  pagesets
    cpu: 0
              count:    0
              high:     0
              batch:    1
              high_min: 25
              high_max: 240
  vm stats threshold: 4
    cpu: 1
              count:    0
              high:     0
              batch:    1
              high_min: 25
              high_max: 240
  vm stats threshold: 4
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone    DMA32
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        promo    0
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 3200, 3200, 3200)
Node 0, zone   Normal
  pages free     366716
        boost    0
        min      8673
        low      10841
        high     13009
        promo    15177
        spanned  5505024
        present  5505024
        managed  819200
        cma      0
        protection: (0, 0, 0, 0, 0)
      nr_free_pages 366716
  pagesets
    cpu: 0
              count:    2313
              high:     11185
              batch:    63
              high_min: 5420
              high_max: 51200
  vm stats threshold: 24
    cpu: 1
              count:    5900
              high:     9247
              batch:    63
              high_min: 5420
              high_max: 51200
  vm stats threshold: 24
  node_unreclaimable:  0
  start_pfn:           1048576
Node 0, zone  Movable
  pages free     0
        boost    0
        min      32
        low      32
        high     32
        promo    32
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0, 0)
Node 0, zone   Device
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        promo    0
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0, 0)
";

    /// Pre-6.13 shape (no high_min/high_max), two nodes.
    const ZONEINFO_6_1: &str = "\
Node 0, zone   Normal
  pages free     1000
        min      10
        high     30
  pagesets
    cpu: 0
              count: 12
              high:  378
              batch: 63
  vm stats threshold: 24
  node_unreclaimable:  0
  start_pfn:           1048576
Node 1, zone   Normal
  pages free     2000
        high     30
  pagesets
    cpu: 1
              count: 7
              high:  378
              batch: 63
  vm stats threshold: 24
";

    fn pcp(node: u32, zone: &str, cpu: u32, c: u64, h: u64, b: u64) -> PcpSetting {
        PcpSetting {
            node,
            zone: zone.to_string(),
            cpu,
            count: c,
            high: h,
            batch: b,
            high_min: None,
            high_max: None,
        }
    }

    #[test]
    fn parses_6_18_zoneinfo() {
        let got = parse_zoneinfo(ZONEINFO_6_18);
        let with = |mut p: PcpSetting, lo, hi| {
            p.high_min = Some(lo);
            p.high_max = Some(hi);
            p
        };
        assert_eq!(
            got,
            vec![
                with(pcp(0, "DMA", 0, 0, 0, 1), 25, 240),
                with(pcp(0, "DMA", 1, 0, 0, 1), 25, 240),
                with(pcp(0, "Normal", 0, 2313, 11185, 63), 5420, 51200),
                with(pcp(0, "Normal", 1, 5900, 9247, 63), 5420, 51200),
            ]
        );
    }

    #[test]
    fn parses_pre_6_13_zoneinfo_without_trailer() {
        assert_eq!(
            parse_zoneinfo(ZONEINFO_6_1),
            vec![
                pcp(0, "Normal", 0, 12, 378, 63),
                pcp(1, "Normal", 1, 7, 378, 63),
            ]
        );
    }

    #[test]
    fn zoneinfo_junk_is_ignored() {
        assert!(parse_zoneinfo("").is_empty());
        assert!(parse_zoneinfo("garbage\n  pagesets\n    cpu: 0\n count: 1\n").is_empty());
        // An entry missing batch is dropped, the next one kept.
        let text = "Node 0, zone Normal\n  pagesets\n    cpu: 0\n  count: 1\n  high: 2\n    cpu: 1\n  count: x\n    cpu: 2\n  count: 3\n  high: 4\n  batch: 5\n";
        assert_eq!(parse_zoneinfo(text), vec![pcp(0, "Normal", 2, 3, 4, 5)]);
    }

    #[test]
    fn live_zoneinfo_parses() {
        let Ok(text) = fs::read_to_string("/proc/zoneinfo") else {
            return;
        };
        let got = parse_zoneinfo(&text);
        assert!(
            !got.is_empty(),
            "no pagesets parsed from live /proc/zoneinfo"
        );
        assert!(got.iter().all(|p| p.batch > 0));
    }

    #[test]
    fn live_host_info() {
        let h = host_info().unwrap();
        assert!(!h.kernel_release.is_empty());
        assert!(h.kernel_version.starts_with('#'), "{:?}", h.kernel_version);
        assert_eq!(h.arch, std::env::consts::ARCH);
        assert!(!h.online_cpus.is_empty());
        assert!(h.possible_cpus as usize >= h.online_cpus.len());
        assert!(!h.numa_nodes.is_empty());
        // Every online CPU belongs to a known node.
        for &c in &h.online_cpus {
            assert!(h.numa_nodes.contains(&h.node_of(c)));
            assert!(
                h.cpu_node.iter().any(|(cpu, _)| *cpu == c),
                "cpu {c} has no node"
            );
        }
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(h.online_cpus.len() >= n);
        let json = serde_json::to_string(&h).unwrap();
        let back: HostInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn live_settings() {
        let s = read_settings();
        if Path::new("/proc/sys/vm/stat_interval").exists() {
            assert!(s.stat_interval.is_some());
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), s);
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn topology_numa_and_memory_only_node() {
        let d = tempfile::tempdir().unwrap();
        let cpu = d.path().join("cpu");
        let node = d.path().join("node");
        write(&cpu.join("online"), "0-3\n");
        write(&cpu.join("possible"), "0-7\n");
        write(&node.join("node0/cpulist"), "0-1\n");
        write(&node.join("node1/cpulist"), "2-3\n");
        write(&node.join("node2/cpulist"), "\n");
        write(&node.join("online"), "0-2\n");
        let (online, possible, cpu_node, nodes) = topology_at(&cpu, &node).unwrap();
        assert_eq!(online, vec![0, 1, 2, 3]);
        assert_eq!(possible, 8);
        assert_eq!(cpu_node, vec![(0, 0), (1, 0), (2, 1), (3, 1)]);
        assert_eq!(nodes, vec![0, 1, 2]);
    }

    #[test]
    fn topology_without_numa_dir() {
        let d = tempfile::tempdir().unwrap();
        let cpu = d.path().join("cpu");
        write(&cpu.join("online"), "0,2\n");
        write(&cpu.join("possible"), "0-3\n");
        let (_, possible, cpu_node, nodes) = topology_at(&cpu, &d.path().join("nope")).unwrap();
        assert_eq!(possible, 4);
        assert_eq!(cpu_node, vec![(0, 0), (2, 0)]);
        assert_eq!(nodes, vec![0]);
        let bad = d.path().join("bad");
        write(&bad.join("online"), "junk\n");
        assert!(matches!(
            topology_at(&bad, &d.path().join("nope")),
            Err(HostError::CpuList { .. })
        ));
        assert!(matches!(
            topology_at(&d.path().join("missing"), &d.path().join("nope")),
            Err(HostError::Read { .. })
        ));
    }
}
