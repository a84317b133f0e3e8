//! Parsing what the tools print: the reproducers' throughput lines, `/proc/PID/fdinfo` of
//! BPF objects, BPF program names in `/proc/kallsyms`.

use std::collections::HashMap;

/// `cross-cpu-pages: 1 pair(s), cross-CPU mode, 2.99 GB in 3.00 s: 0.99 GB/s` -> 0.99.
pub fn cross_cpu_gbs(stdout: &str) -> Option<f64> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("cross-cpu-pages:"))?;
    let rate = line.rsplit_once(": ")?.1.trim();
    rate.strip_suffix("GB/s")?.trim().parse().ok()
}

/// Data moved and the time it took, from the same line: `2.84 GB in 4.01 s` -> (2.84, 4.01),
/// in decimal GB (the workload prints decimal B/kB/MB/GB); more digits than the rate.
pub fn cross_cpu_moved(stdout: &str) -> Option<(f64, f64)> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("cross-cpu-pages:"))?;
    let (left, _rate) = line.rsplit_once(": ")?;
    let (amount, secs) = left.rsplit_once(", ")?.1.split_once(" in ")?;
    let (value, unit) = amount.trim().split_once(' ')?;
    let scale = match unit {
        "B" => 1e-9,
        "kB" | "KB" => 1e-6,
        "MB" => 1e-3,
        "GB" => 1.0,
        "TB" => 1e3,
        _ => return None,
    };
    let gb = value.parse::<f64>().ok()? * scale;
    let secs = secs.trim().strip_suffix('s')?.trim().parse().ok()?;
    Some((gb, secs))
}

/// Tap throughput from `  read side: 54,320 packets/s, 14.26 Gbit/s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TapRate {
    pub gbit_s: f64,
    pub packets_s: f64,
}

pub fn tap_rate(stdout: &str) -> Option<TapRate> {
    let line = stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("read side:"))?;
    let (pps, gbit) = line.split_once(", ")?;
    let packets_s = pps
        .trim()
        .strip_suffix("packets/s")?
        .trim()
        .replace(',', "")
        .parse()
        .ok()?;
    let gbit_s = gbit.trim().strip_suffix("Gbit/s")?.trim().parse().ok()?;
    Some(TapRate { gbit_s, packets_s })
}

/// A BPF object behind one file descriptor, from `/proc/PID/fdinfo/FD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BpfFd {
    Prog(ProgInfo),
    Map(MapInfo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub tag: String,
    pub id: u32,
    pub memlock: u64,
    /// Only counted while `kernel.bpf_stats_enabled` is 1.
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// The kernel's own estimate of the map's memory (`bpf_map_memory_usage`, 6.4+).
    pub memlock: u64,
    pub id: u32,
}

/// Parses one fdinfo file; None for a descriptor that is not a BPF program or map.
pub fn fdinfo(text: &str) -> Option<BpfFd> {
    let fields: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let num = |k: &str| -> Option<u64> {
        let v = fields.get(k)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    let num32 = |k: &str| num(k).and_then(|v| u32::try_from(v).ok());
    if fields.contains_key("prog_type") {
        return Some(BpfFd::Prog(ProgInfo {
            prog_type: num32("prog_type")?,
            tag: (*fields.get("prog_tag")?).to_string(),
            id: num32("prog_id")?,
            memlock: num("memlock").unwrap_or(0),
            run_time_ns: num("run_time_ns").unwrap_or(0),
            run_cnt: num("run_cnt").unwrap_or(0),
            recursion_misses: num("recursion_misses").unwrap_or(0),
        }));
    }
    if fields.contains_key("map_type") {
        return Some(BpfFd::Map(MapInfo {
            map_type: num32("map_type")?,
            key_size: num32("key_size")?,
            value_size: num32("value_size")?,
            max_entries: num32("max_entries")?,
            map_flags: num32("map_flags").unwrap_or(0),
            memlock: num("memlock").unwrap_or(0),
            id: num32("map_id").unwrap_or(0),
        }));
    }
    None
}

/// Program tag -> name, from the JIT's kallsyms lines (ambiguous when two programs have the
/// same instructions, hence the same tag: bpftool's names by id are preferred)
/// `ffffffffc0025c10 t bpf_prog_91c2df79d75b244b_contention_begin\t[bpf]`.
/// BPF-to-BPF subprograms appear too (under their own tags); they do not matter here,
/// since the lookups are by the tags of loaded programs.
pub fn bpf_prog_names(kallsyms: &str) -> HashMap<String, String> {
    kallsyms
        .lines()
        .filter(|l| l.ends_with("[bpf]"))
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter_map(|sym| sym.strip_prefix("bpf_prog_"))
        .filter_map(|rest| {
            let (tag, name) = rest.split_once('_')?;
            (tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (tag.to_string(), name.to_string()))
        })
        .collect()
}

/// Program id -> name from `bpftool prog show --json` (`[{"id": 12, "name": "x", ...}]`).
pub fn bpftool_names(json: &str) -> HashMap<u32, String> {
    let Ok(serde_json::Value::Array(progs)) = serde_json::from_str(json) else {
        return HashMap::new();
    };
    progs
        .iter()
        .filter_map(|p| {
            let id = u32::try_from(p.get("id")?.as_u64()?).ok()?;
            Some((id, p.get("name")?.as_str()?.to_string()))
        })
        .collect()
}

/// The three load averages of `/proc/loadavg`.
pub fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// `0-639` / `0` / `0-3,8-11` -> highest CPU + 1 (`/sys/devices/system/cpu/possible`).
pub fn cpu_count(list: &str) -> Option<u32> {
    list.trim()
        .split(',')
        .map(|part| {
            let last = part.rsplit('-').next()?;
            last.trim().parse::<u32>().ok().map(|v| v + 1)
        })
        .try_fold(0u32, |acc, v| v.map(|v| acc.max(v)))
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducer_lines() {
        let out = "cross-cpu-pages: 1 pair(s), cross-CPU mode, 2.99 GB in 3.00 s: 0.99 GB/s\n";
        assert_eq!(cross_cpu_gbs(out), Some(0.99));
        assert_eq!(cross_cpu_gbs("nothing\n"), None);
        assert_eq!(cross_cpu_moved(out), Some((2.99, 3.0)));
        let mb = "cross-cpu-pages: 1 pair(s), cross-CPU mode, 318.8 MB in 1.06 s: 0.30 GB/s\n";
        let (gb, secs) = cross_cpu_moved(mb).expect("MB line");
        assert!((gb - 0.3188).abs() < 1e-12 && secs == 1.06, "{gb} {secs}");
        assert_eq!(
            cross_cpu_moved("cross-cpu-pages: 1 pair(s), x, 3 parsecs in 1 s: 0 GB/s"),
            None
        );
        assert_eq!(cross_cpu_moved("nothing\n"), None);
        let tap = "tap (udp): 1 tap(s), 32768-byte payloads, sender CPUs 0, reader CPUs 1, 3.01 s\n  \
                   frames sent 163,620, read 163,620 (5.37 GB); lost 0, send errors 0\n  \
                   read side: 54,320 packets/s, 14.26 Gbit/s\n  reader CPU 1: 163,620 frames, 54,320 packets/s\n";
        assert_eq!(
            tap_rate(tap),
            Some(TapRate {
                gbit_s: 14.26,
                packets_s: 54_320.0
            })
        );
        assert_eq!(tap_rate("read side: n/a\n"), None);
    }

    #[test]
    fn fdinfo_prog_and_map() {
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\nprog_type:\t5\n\
                    prog_jited:\t1\nprog_tag:\t91c2df79d75b244b\nmemlock:\t4096\nprog_id:\t493\n\
                    run_time_ns:\t1234\nrun_cnt:\t10\nrecursion_misses:\t0\nverified_insns:\t135\n";
        assert_eq!(
            fdinfo(prog),
            Some(BpfFd::Prog(ProgInfo {
                prog_type: 5,
                tag: "91c2df79d75b244b".into(),
                id: 493,
                memlock: 4096,
                run_time_ns: 1234,
                run_cnt: 10,
                recursion_misses: 0,
            }))
        );
        let map = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1039\nmap_type:\t1\n\
                   key_size:\t8\nvalue_size:\t16\nmax_entries:\t262144\nmap_flags:\t0x80\n\
                   map_extra:\t0x0\nmemlock:\t23069728\nmap_id:\t12\nfrozen:\t0\n";
        assert_eq!(
            fdinfo(map),
            Some(BpfFd::Map(MapInfo {
                map_type: 1,
                key_size: 8,
                value_size: 16,
                max_entries: 262_144,
                map_flags: 0x80,
                memlock: 23_069_728,
                id: 12,
            }))
        );
        assert_eq!(fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t1\n"), None);
    }

    #[test]
    fn kallsyms_names() {
        let ks = "ffffffffc0025c10 t bpf_prog_91c2df79d75b244b_contention_begin\t[bpf]\n\
                  ffffffffc0026414 t bpf_prog_5ab8d0d5c65f8dd4_record\t[bpf]\n\
                  ffffffff81000000 T _stext\n\
                  ffffffffc0001000 t bpf_prog_short_x\t[bpf]\n";
        let m = bpf_prog_names(ks);
        assert_eq!(
            m.get("91c2df79d75b244b").map(String::as_str),
            Some("contention_begin")
        );
        assert_eq!(
            m.get("5ab8d0d5c65f8dd4").map(String::as_str),
            Some("record")
        );
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn bpftool_json_names() {
        let j = r#"[{"id":12,"type":"tracepoint","name":"mm_page_pcpu_dr","tag":"9df4"},{"id":13,"type":"tracepoint"}]"#;
        let m = bpftool_names(j);
        assert_eq!(m.get(&12).map(String::as_str), Some("mm_page_pcpu_dr"));
        assert_eq!(m.len(), 1);
        assert!(bpftool_names("not json").is_empty());
    }

    #[test]
    fn loadavg_and_cpu_lists() {
        assert_eq!(
            loadavg("2.01 3.05 3.46 3/250 1234\n"),
            Some([2.01, 3.05, 3.46])
        );
        assert_eq!(loadavg("x"), None);
        assert_eq!(cpu_count("0-1\n"), Some(2));
        assert_eq!(cpu_count("0"), Some(1));
        assert_eq!(cpu_count("0-3,8-11"), Some(12));
        assert_eq!(cpu_count(""), None);
    }
}
