//! The pure parts of the soak: reading RSS from /proc, the flatness rule, which kernel
//! counter is which loss, the /metrics loss series, and the loss comparisons.

use std::collections::BTreeMap;

use profiler_common::counter as c;
use serde_json::Value;

/// `kB` value of field `field` (`VmRSS`, `VmHWM`) of a /proc/PID/status text.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let mut it = rest.split_whitespace();
        let n = it.next()?.parse().ok()?;
        (it.next() == Some("kB")).then_some(n)
    })
}

/// Warm-up left out of the flatness rule: the first minute, or the first 10 % of a run
/// longer than 10 minutes (3 min of 30). Maps, stack tables and allocator pools fill then.
pub fn warmup_s(run_s: f64) -> f64 {
    (run_s * 0.1).max(60.0)
}

/// Samples right after the warm-up whose median is the baseline (30 s at one per 10 s).
const BASELINE_SAMPLES: usize = 3;
/// Fewest samples after the warm-up for a verdict: the baseline and a last half.
const MIN_SAMPLES: usize = 6;

/// The RSS verdict of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatness {
    pub warmup_s: f64,
    /// Samples after the warm-up.
    pub samples: usize,
    /// Median of the first [`BASELINE_SAMPLES`] samples after the warm-up.
    pub baseline_kib: u64,
    /// Largest sample of the last half of the run after the warm-up.
    pub end_max_kib: u64,
    /// Smallest and largest sample over the whole run, warm-up included.
    pub min_kib: u64,
    pub max_kib: u64,
    /// (end_max - baseline) / baseline, percent (negative when it shrank).
    pub growth_pct: f64,
    /// None: flat within the limit; else why not.
    pub failure: Option<String>,
}

/// The rule: after the warm-up, RSS is flat when the largest sample of the last half of
/// the run is at most `limit_pct` % above the median of the first three samples after the
/// warm-up. A leak grows the last half; a one-off allocation in the warm-up does not
/// count, and shrinking is not a leak. `samples` are (seconds since start, KiB).
pub fn flatness(samples: &[(f64, u64)], warmup_s: f64, limit_pct: f64) -> Flatness {
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warmup_s)
        .map(|&(_, k)| k)
        .collect();
    let min_kib = samples.iter().map(|s| s.1).min().unwrap_or(0);
    let max_kib = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let mut f = Flatness {
        warmup_s,
        samples: after.len(),
        baseline_kib: 0,
        end_max_kib: 0,
        min_kib,
        max_kib,
        growth_pct: 0.0,
        failure: None,
    };
    if after.len() < MIN_SAMPLES {
        f.failure = Some(format!(
            "only {} RSS samples after the {:.0} s warm-up (need {MIN_SAMPLES}): run longer",
            after.len(),
            warmup_s
        ));
        return f;
    }
    let mut base: Vec<u64> = after.iter().take(BASELINE_SAMPLES).copied().collect();
    base.sort_unstable();
    f.baseline_kib = base[base.len() / 2];
    f.end_max_kib = after[after.len() / 2..].iter().copied().max().unwrap_or(0);
    f.growth_pct = if f.baseline_kib == 0 {
        0.0
    } else {
        (f.end_max_kib as f64 - f.baseline_kib as f64) / f.baseline_kib as f64 * 100.0
    };
    if f.growth_pct > limit_pct {
        f.failure = Some(format!(
            "RSS grew {:.1} % (limit {limit_pct} %): {} KiB after the warm-up, up to {} KiB in the last half",
            f.growth_pct, f.baseline_kib, f.end_max_kib
        ));
    }
    f
}

/// The kernel's loss counters (`profiler_common::counter`) and their key in the
/// recording's `counters`, the report's `losses` and /metrics' `loss` label.
pub const LOSS_COUNTERS: &[(u32, &str)] = &[
    (c::END_WITHOUT_BEGIN, "end_without_begin"),
    (c::BEGIN_WITHOUT_END, "begin_without_end"),
    (c::NEST_OVERFLOW, "nest_overflow"),
    (c::STACK_COLLISION, "stack_collisions"),
    (c::STACK_ERROR, "stack_errors"),
    (c::LOCK_MAP_FULL, "lock_map_full"),
    (c::LOST_WAIT_NS, "lost_wait_ns"),
    (c::HIST_MAP_FULL, "hist_map_full"),
    (c::TASK_MAP_FULL, "task_map_full"),
    (c::ZONE_CACHE_FULL, "zone_cache_full"),
    (c::PAGE_READ_ERROR, "page_read_errors"),
    (c::SKB_READ_ERROR, "skb_read_errors"),
    (c::SKB_MAP_FULL, "skb_map_full"),
    (c::PAGE_TRACK_FULL, "page_track_full"),
    (c::PAGE_MATRIX_FULL, "page_matrix_full"),
    (c::RMQUEUE_UNMATCHED, "rmqueue_unmatched"),
    (c::BULK_FREE_UNMATCHED, "bulk_free_unmatched"),
    (c::PCP_COUNT_ERRORS, "pcp_count_errors"),
    (c::TASK_INFO_FULL, "task_info_full"),
];

/// The other kernel counters: events seen and cross-checks, with their key in the
/// recording's `counters` (None: they go to the per-CPU PCP table instead).
pub const EVENT_COUNTERS: &[(u32, Option<&str>)] = &[
    (c::CONTENTION_BEGIN, Some("contention_begin")),
    (c::CONTENTION_END, Some("contention_end")),
    (c::ZONE_WAIT_NS, Some("zone_wait_ns")),
    (c::ZONE_CONTENTIONS, Some("zone_contentions")),
    (c::TOTAL_WAIT_NS, Some("total_wait_ns")),
    (c::SKB_FREES, Some("skb_frees")),
    (c::SKB_DEFER_IPIS, Some("skb_defer_ipis")),
    (c::DEFER_CALLS, None),
    (c::DEFER_QUEUED, None),
    (c::DEFER_LOCAL, None),
    (c::RMQUEUE_CALLS, None),
    (c::RMQUEUE_NS, None),
    (c::BULK_FREE_CALLS, None),
    (c::BULK_FREE_PAGES, None),
    (c::REFILL_BATCH_PAGES, None),
    (c::REFILL_BATCHES, None),
];

/// Loss counted by zoneprof itself, not by the kernel: frames no kernel symbol covered.
pub const USER_LOSSES: &[&str] = &["unsymbolized_frames"];

/// The losses of a /metrics text, by key: `zoneprof_losses_total{loss="K"}` as counts,
/// `zoneprof_lost_seconds_total{loss="K"}` back in nanoseconds under `K_ns`.
pub fn metrics_losses(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            series
                .strip_prefix(name)?
                .strip_prefix("{loss=\"")?
                .strip_suffix("\"}")
                .map(str::to_string)
        };
        if let Some(k) = label("zoneprof_losses_total") {
            if let Ok(n) = value.parse::<u64>() {
                out.insert(k, n);
            }
        } else if let Some(k) = label("zoneprof_lost_seconds_total")
            && let Ok(s) = value.parse::<f64>()
        {
            out.insert(format!("{k}_ns"), (s * 1e9).round() as u64);
        }
    }
    out
}

/// Number of CPUs in a kernel CPU list (`0-3,8`), as /sys/devices/system/cpu/possible.
pub fn cpu_count(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let a = part.parse::<usize>().ok()?;
                (a, a)
            }
        };
        n += b.checked_sub(a)? + 1;
    }
    Some(n)
}

/// One loss counter's value as the kernel held it and as each view reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LossRow {
    pub key: String,
    /// `record`: the kernel's counter after detach, the recording's, the JSON report's.
    pub record_kernel: Option<u64>,
    pub recording: Option<u64>,
    pub report: Option<u64>,
    /// `serve`: the kernel's counter read just before and just after the last scrape, and
    /// the scrape's.
    pub serve_kernel_before: Option<u64>,
    pub metrics: Option<u64>,
    pub serve_kernel_after: Option<u64>,
}

impl LossRow {
    /// What is wrong with this row: a view that lacks the counter or disagrees with the
    /// kernel. The record side must be equal (its maps were read after detach); the scrape
    /// must lie between the two kernel reads around it (seconds are exported as a float:
    /// 1 ns of rounding is allowed).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let k = &self.key;
        if let Some(kernel) = self.record_kernel {
            for (what, v) in [("recording", self.recording), ("report JSON", self.report)] {
                match v {
                    None => out.push(format!("record: {k} missing from the {what}")),
                    Some(v) if v != kernel => out.push(format!(
                        "record: {k} is {v} in the {what}, {kernel} in the kernel"
                    )),
                    Some(_) => {}
                }
            }
        }
        if let (Some(lo), Some(hi)) = (self.serve_kernel_before, self.serve_kernel_after) {
            let slack = u64::from(k.ends_with("_ns"));
            match self.metrics {
                None => out.push(format!("serve: {k} missing from /metrics")),
                Some(m) if m + slack < lo || m > hi + slack => out.push(format!(
                    "serve: {k} is {m} in /metrics, outside the kernel's {lo}..={hi} around the scrape"
                )),
                Some(_) => {}
            }
        }
        out
    }
}

/// Counters that went down between two scrapes: counters never do.
pub fn decreases(prev: &BTreeMap<String, u64>, next: &BTreeMap<String, u64>) -> Vec<String> {
    prev.iter()
        .filter_map(|(k, &a)| match next.get(k) {
            None => Some(format!("{k} vanished from /metrics")),
            Some(&b) if b < a => Some(format!("{k} went down from {a} to {b}")),
            Some(_) => None,
        })
        .collect()
}

/// Non-zero losses of a report's `losses` object (kernel and userspace ones).
pub fn nonzero_losses(losses: &Value) -> usize {
    losses.as_object().map_or(0, |o| {
        o.iter()
            .filter(|(k, v)| {
                (LOSS_COUNTERS.iter().any(|(_, l)| l == k) || USER_LOSSES.contains(&k.as_str()))
                    && v.as_u64().is_some_and(|n| n > 0)
            })
            .count()
    })
}

/// Lines of the text report's "Losses" section ("none" is no line).
pub fn text_losses(text: &str) -> usize {
    text.split("\nLosses\n").nth(1).map_or(0, |s| {
        s.lines()
            .take_while(|l| l.starts_with("  ") && l.trim() != "none")
            .count()
    })
}

/// What fitted in the maps plus what was counted lost equals the kernel's totals.
pub fn conservation(rec: &Value) -> Vec<String> {
    let c = &rec["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let sum = |table: &str, field: &str| -> u64 {
        rec[table]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r[field].as_u64()).sum())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    let stored_ns = sum("lock_waits", "total_ns");
    if stored_ns + n("lost_wait_ns") != n("total_wait_ns") {
        out.push(format!(
            "record: wait per stack {stored_ns} + lost_wait_ns {} != total_wait_ns {}",
            n("lost_wait_ns"),
            n("total_wait_ns")
        ));
    }
    let (waits, hist) = (sum("lock_waits", "count"), sum("wait_hist", "count"));
    if waits + n("lock_map_full") != hist + n("hist_map_full") {
        out.push(format!(
            "record: waits {waits} + lock_map_full {} != histogram {hist} + hist_map_full {}",
            n("lock_map_full"),
            n("hist_map_full")
        ));
    }
    let sites = sum("skb_sites", "count");
    if sites > n("skb_frees") || n("skb_frees") - sites > n("skb_map_full") {
        out.push(format!(
            "record: SKB frees {} != sites {sites} + at most skb_map_full {}",
            n("skb_frees"),
            n("skb_map_full")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_rss_from_proc_status() {
        let s = "Name:\tzoneprof\nVmPeak:\t  300000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18432 kB\nRssAnon:\t 9000 kB\n";
        assert_eq!(status_kib(s, "VmRSS"), Some(18432));
        assert_eq!(status_kib(s, "VmHWM"), Some(20480));
        // Not `VmRSSx`, not a prefix of another field, and nothing without a unit.
        assert_eq!(status_kib("VmRSSx:\t1 kB\n", "VmRSS"), None);
        assert_eq!(status_kib("VmRSS:\t1\n", "VmRSS"), None);
        assert_eq!(status_kib("VmRSS:\tmany kB\n", "VmRSS"), None);
        assert_eq!(status_kib("", "VmRSS"), None);
        // A kernel thread (or an exited process) has no VmRSS line.
        assert_eq!(status_kib("Name:\tkthreadd\nState:\tS\n", "VmRSS"), None);
    }

    fn series(kib: &[u64]) -> Vec<(f64, u64)> {
        kib.iter()
            .enumerate()
            .map(|(i, &k)| (i as f64 * 10.0, k))
            .collect()
    }

    #[test]
    fn warmup_is_a_minute_or_a_tenth() {
        assert_eq!(warmup_s(180.0), 60.0);
        assert_eq!(warmup_s(1800.0), 180.0);
    }

    #[test]
    fn flat_rss_passes_and_warmup_growth_is_ignored() {
        // Grows from 5 to 10 MiB in the first minute, then wobbles within 2 %.
        let mut kib = vec![5000, 7000, 9000, 9500, 9800, 9900];
        kib.extend([
            10_000, 10_100, 9_950, 10_050, 10_200, 10_100, 10_000, 10_150,
        ]);
        let f = flatness(&series(&kib), 60.0, 5.0);
        assert_eq!(f.failure, None, "{f:?}");
        assert_eq!(f.samples, 8);
        assert_eq!(f.baseline_kib, 10_000, "median of 10000, 10100, 9950");
        assert_eq!(f.end_max_kib, 10_200);
        assert!((f.growth_pct - 2.0).abs() < 1e-9, "{}", f.growth_pct);
        assert_eq!((f.min_kib, f.max_kib), (5000, 10_200));
    }

    #[test]
    fn a_leak_fails() {
        // 1 % per sample after the warm-up: 7 % by the end.
        let kib: Vec<u64> = (0..14)
            .map(|i| {
                if i < 6 {
                    10_000
                } else {
                    10_000 + (i - 6) * 100
                }
            })
            .collect();
        let f = flatness(&series(&kib), 60.0, 5.0);
        assert_eq!(f.baseline_kib, 10_100);
        assert_eq!(f.end_max_kib, 10_700);
        let why = f.failure.expect("a leak fails");
        assert!(why.starts_with("RSS grew 5.9 % (limit 5 %)"), "{why}");
    }

    #[test]
    fn exactly_at_the_limit_passes_and_shrinking_is_not_a_leak() {
        let kib = [
            10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_500,
        ];
        let f = flatness(&series(&kib), 0.0, 5.0);
        assert_eq!(f.failure, None, "{f:?}");
        let kib = [10_000, 10_000, 10_000, 9_000, 9_000, 8_000];
        let f = flatness(&series(&kib), 0.0, 5.0);
        assert_eq!(f.failure, None);
        assert!(f.growth_pct < 0.0);
    }

    #[test]
    fn too_few_samples_is_no_verdict() {
        let f = flatness(&series(&[1, 2, 3, 4, 5, 6, 7, 8]), 30.0, 5.0);
        assert_eq!(f.samples, 5);
        let why = f.failure.expect("no verdict");
        assert!(
            why.contains("only 5 RSS samples after the 30 s warm-up"),
            "{why}"
        );
        assert!(flatness(&[], 60.0, 5.0).failure.is_some());
    }

    /// Every kernel counter is either a loss the views must show or an event count: a new
    /// counter must be added to one of the lists, so no loss is dropped unseen.
    #[test]
    fn every_kernel_counter_is_classified_once() {
        let mut seen = vec![0u32; c::COUNT as usize];
        for &(i, _) in LOSS_COUNTERS {
            seen[i as usize] += 1;
        }
        for &(i, _) in EVENT_COUNTERS {
            seen[i as usize] += 1;
        }
        for (i, n) in seen.iter().enumerate() {
            assert_eq!(*n, 1, "counter {i} is classified {n} times");
        }
    }

    #[test]
    fn reads_losses_from_metrics() {
        let text = "# HELP zoneprof_losses_total Events lost.\n# TYPE zoneprof_losses_total counter\n\
                    zoneprof_losses_total{loss=\"lock_map_full\"} 340\n\
                    zoneprof_losses_total{loss=\"stack_collisions\"} 0\n\
                    zoneprof_lost_seconds_total{loss=\"lost_wait\"} 0.450398102\n\
                    zoneprof_contentions_total{cpu=\"0\"} 12\n";
        let m = metrics_losses(text);
        assert_eq!(m.get("lock_map_full"), Some(&340));
        assert_eq!(m.get("stack_collisions"), Some(&0));
        assert_eq!(m.get("lost_wait_ns"), Some(&450_398_102));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn counts_possible_cpus() {
        assert_eq!(cpu_count("0-1\n"), Some(2));
        assert_eq!(cpu_count("0"), Some(1));
        assert_eq!(cpu_count("0-3,8,10-11"), Some(7));
        assert_eq!(cpu_count("3-1"), None);
        assert_eq!(cpu_count("x"), None);
    }

    #[test]
    fn loss_rows_compare_every_view_with_the_kernel() {
        let ok = LossRow {
            key: "lock_map_full".into(),
            record_kernel: Some(5),
            recording: Some(5),
            report: Some(5),
            serve_kernel_before: Some(10),
            metrics: Some(11),
            serve_kernel_after: Some(12),
        };
        assert!(ok.problems().is_empty());
        let bad = LossRow {
            recording: Some(4),
            report: None,
            metrics: Some(13),
            ..ok.clone()
        };
        assert_eq!(
            bad.problems(),
            [
                "record: lock_map_full is 4 in the recording, 5 in the kernel",
                "record: lock_map_full missing from the report JSON",
                "serve: lock_map_full is 13 in /metrics, outside the kernel's 10..=12 around the scrape",
            ]
        );
        let ns = LossRow {
            key: "lost_wait_ns".into(),
            serve_kernel_before: Some(100),
            metrics: Some(99),
            serve_kernel_after: Some(100),
            ..LossRow::default()
        };
        assert!(ns.problems().is_empty(), "1 ns of float rounding");
        let missing = LossRow {
            metrics: None,
            ..ns
        };
        assert_eq!(
            missing.problems(),
            ["serve: lost_wait_ns missing from /metrics"]
        );
    }

    #[test]
    fn counters_never_go_down() {
        let a: BTreeMap<String, u64> = [("x".to_string(), 3), ("y".to_string(), 1)].into();
        let b: BTreeMap<String, u64> = [("x".to_string(), 2)].into();
        assert_eq!(
            decreases(&a, &b),
            ["x went down from 3 to 2", "y vanished from /metrics"]
        );
        assert!(decreases(&b, &a).is_empty());
    }

    #[test]
    fn what_fitted_plus_what_was_lost_is_the_total() {
        let rec = json!({
            "counters": {"total_wait_ns": 100, "lost_wait_ns": 30, "lock_map_full": 2,
                         "hist_map_full": 1, "skb_frees": 10, "skb_map_full": 5},
            "lock_waits": [{"total_ns": 50, "count": 3}, {"total_ns": 20, "count": 1}],
            "wait_hist": [{"count": 5}],
            "skb_sites": [{"count": 6}],
        });
        assert!(conservation(&rec).is_empty(), "{:?}", conservation(&rec));
        let mut bad = rec.clone();
        bad["counters"]["lost_wait_ns"] = json!(29);
        bad["counters"]["hist_map_full"] = json!(0);
        bad["counters"]["skb_map_full"] = json!(3);
        assert_eq!(
            conservation(&bad),
            [
                "record: wait per stack 70 + lost_wait_ns 29 != total_wait_ns 100",
                "record: waits 4 + lock_map_full 2 != histogram 5 + hist_map_full 0",
                "record: SKB frees 10 != sites 6 + at most skb_map_full 3",
            ]
        );
    }

    #[test]
    fn counts_the_losses_of_both_reports() {
        let losses = json!({"lock_map_full": 3, "stack_collisions": 0, "unsymbolized_frames": 2,
                            "contention_end": 9});
        assert_eq!(nonzero_losses(&losses), 2, "contention_end is no loss");
        let text = "Header\n\nLosses\n           3  lock-wait map full\n           2  unsymbolized frames\n\nProbes\n  x\n";
        assert_eq!(text_losses(text), 2);
        assert_eq!(text_losses("a\nLosses\n  none\n\nProbes\n  x\n"), 0);
        assert_eq!(text_losses("no section"), 0);
    }
}
