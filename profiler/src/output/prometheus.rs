//! The Prometheus text exposition (format 0.0.4) of a live snapshot (`zoneprof serve`).
//!
//! A snapshot holds everything since attach, so every count is a counter. Label sets are
//! bounded whatever the host does: CPUs, NUMA nodes, zones and sides for the zone lock; the
//! first `skb_sites` SKB free sites seen for the SKB frees (the rest summed per free
//! function as `caller="other"`); with `--tasks`, cgroups (never threads); no stack is ever
//! a label. Sites keep their own series once they have one, so `other` never shrinks and
//! every series stays monotonic.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::model::{
    analysis,
    classify::Side,
    recording::{CpuPages, LOSSES, LossUnit, PcpCount, PcpMethod, Recording},
    tasks,
};

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How the metrics are labelled.
#[derive(Debug, Clone, Copy)]
pub struct MetricsOpts {
    /// One series per CPU (false: summed over CPUs, no `cpu` label).
    pub per_cpu: bool,
    /// SKB free sites (function, caller) with series of their own.
    pub skb_sites: usize,
}

impl Default for MetricsOpts {
    fn default() -> Self {
        MetricsOpts {
            per_cpu: true,
            skb_sites: 20,
        }
    }
}

/// Renders snapshots of one live session; remembers which SKB sites have series.
pub struct Exposition {
    opts: MetricsOpts,
    /// (function, caller) of the SKB sites with series of their own, at most `skb_sites`.
    sites: BTreeSet<(String, String)>,
    /// The class of each stack of the session, classified at its first scrape.
    classes: analysis::StackClasses,
}

impl Exposition {
    pub fn new(opts: MetricsOpts) -> Exposition {
        Exposition {
            opts,
            sites: BTreeSet::new(),
            classes: analysis::StackClasses::default(),
        }
    }

    /// The exposition of `rec`, a snapshot of everything since attach.
    pub fn render(&mut self, rec: &Recording) -> String {
        let mut w = Writer {
            out: String::with_capacity(16 * 1024),
            per_cpu: self.opts.per_cpu,
        };
        info(&mut w, rec);
        let waits = analysis::classify_waits_with(rec, &mut self.classes);
        zone_lock(&mut w, rec, &waits, &mut self.classes);
        pcp(&mut w, rec);
        self.skb(&mut w, rec);
        cgroups(&mut w, rec, &waits);
        losses(&mut w, rec);
        programs(&mut w, rec);
        w.out
    }

    fn skb(&mut self, w: &mut Writer, rec: &Recording) {
        // (function, caller) -> (remote, local), over CPUs.
        let mut by_site: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for s in &rec.skb_sites {
            let e = by_site
                .entry((s.function.as_str(), s.caller.as_str()))
                .or_default();
            e.0 += s.remote;
            e.1 += s.count.saturating_sub(s.remote);
        }
        // New sites get series while there is room, largest first: a site seen for the
        // first time was in no earlier scrape's `other`.
        let mut new: Vec<_> = by_site
            .iter()
            .filter(|(k, _)| !self.sites.contains(&(k.0.to_string(), k.1.to_string())))
            .map(|(k, v)| (v.0 + v.1, *k))
            .collect();
        new.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let room = self.opts.skb_sites.saturating_sub(self.sites.len());
        for (_, (f, c)) in new.into_iter().take(room) {
            self.sites.insert((f.to_string(), c.to_string()));
        }
        let mut series: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for ((f, c), (remote, local)) in by_site {
            let caller = if self.sites.contains(&(f.to_string(), c.to_string())) {
                c
            } else {
                OTHER
            };
            let e = series.entry((f, caller)).or_default();
            e.0 += remote;
            e.1 += local;
        }
        w.family(
            "zoneprof_skb_frees_total",
            "counter",
            "SKB frees by free function and call site, freed on another CPU than the allocating one (remote) or not; sites beyond the first ones seen are summed as caller=\"other\".",
        );
        for ((f, c), (remote, local)) in series {
            for (r, n) in [("true", remote), ("false", local)] {
                w.sample(
                    "zoneprof_skb_frees_total",
                    &[("function", f), ("caller", c), ("remote", r)],
                    Value::Int(n),
                );
            }
        }

        w.family(
            "zoneprof_skb_defer_ipis_total",
            "counter",
            "IPIs sent to kick another CPU's deferred SKB free list, by sending CPU.",
        );
        w.per_cpu_counter(
            "zoneprof_skb_defer_ipis_total",
            rec.skb_defer.iter().map(|d| (d.cpu, d.ipis)),
            Value::Int,
        );
    }
}

/// Appends how long this scrape took to read the maps and render, as ebpf_exporter and
/// node_exporter report their own.
pub fn scrape_duration(out: &mut String, took: std::time::Duration) {
    let mut w = Writer {
        out: std::mem::take(out),
        per_cpu: true,
    };
    w.family(
        "zoneprof_scrape_duration_seconds",
        "gauge",
        "Time this scrape took to read the eBPF maps and render the metrics.",
    );
    w.sample(
        "zoneprof_scrape_duration_seconds",
        &[],
        Value::Float(took.as_secs_f64()),
    );
    *out = w.out;
}

/// `caller` of the SKB frees at sites without series of their own.
pub const OTHER: &str = "other";

fn info(w: &mut Writer, rec: &Recording) {
    w.family(
        "zoneprof_build_info",
        "gauge",
        "zoneprof's version; always 1.",
    );
    w.sample(
        "zoneprof_build_info",
        &[("version", &rec.zoneprof_version)],
        Value::Int(1),
    );
    w.family(
        "zoneprof_attach_time_seconds",
        "gauge",
        "When the probes were attached, in seconds since the Unix epoch: every counter counts from then.",
    );
    w.sample(
        "zoneprof_attach_time_seconds",
        &[],
        Value::Float(rec.start_unix_ms as f64 / 1e3),
    );
    w.family(
        "zoneprof_probe_attached",
        "gauge",
        "Whether each probe is attached (1) or not (0), by the method it attached with (or the preferred one when none did).",
    );
    for p in &rec.probes {
        w.sample(
            "zoneprof_probe_attached",
            &[("probe", &p.name), ("method", &p.method)],
            Value::Int(u64::from(p.attached)),
        );
    }
}

fn side_name(side: Option<Side>) -> &'static str {
    match side {
        Some(Side::Alloc) => "alloc",
        Some(Side::Free) => "free",
        None => "other",
    }
}

fn zone_lock(
    w: &mut Writer,
    rec: &Recording,
    waits: &[analysis::ClassifiedWait<'_>],
    classes: &mut analysis::StackClasses,
) {
    let per_cpu = w.per_cpu;
    // The (node, zone) labels of each lock address, made once: not two strings per wait.
    let mut zone_labels: HashMap<u64, (String, String)> = HashMap::new();
    for cw in waits.iter().filter(|cw| cw.class.is_zone()) {
        zone_labels.entry(cw.wait.lock_addr).or_insert_with(|| {
            match rec.zone_by_addr(cw.wait.lock_addr) {
                Some(z) => (z.node.to_string(), z.name.clone()),
                None => (UNKNOWN.to_string(), UNKNOWN.to_string()),
            }
        });
    }
    // (cpu, node, zone, side) -> (ns, contentions); the cpu is 0 when summed over CPUs.
    let mut zone: BTreeMap<(u32, &str, &str, &str), (u64, u64)> = BTreeMap::new();
    let mut other: BTreeMap<u32, u64> = BTreeMap::new();
    // Sums of the zone-lock waits by the side their stack says: the histograms' _sum.
    let mut side_sum: HashMap<Side, u64> = HashMap::new();
    for cw in waits {
        let cpu = if per_cpu { cw.wait.cpu } else { 0 };
        if cw.class.is_zone() {
            let (node, zone_name) = zone_labels
                .get(&cw.wait.lock_addr)
                .map_or((UNKNOWN, UNKNOWN), |(n, z)| (n.as_str(), z.as_str()));
            let e = zone
                .entry((cpu, node, zone_name, side_name(cw.class.side())))
                .or_default();
            e.0 += cw.wait.total_ns;
            e.1 += cw.wait.count;
        } else {
            *other.entry(cpu).or_default() += cw.wait.total_ns;
        }
        if let Some(s) = cw.class.side() {
            *side_sum.entry(s).or_default() += cw.wait.total_ns;
        }
    }
    for (name, help, value) in [
        (
            "zoneprof_zone_lock_wait_seconds_total",
            "Time spent waiting for a zone->lock, by CPU, NUMA node, zone and side (alloc: PCP refill or buddy allocation; free: PCP drain or buddy free; other: compaction, readers, unknown stacks).",
            0,
        ),
        (
            "zoneprof_zone_lock_contentions_total",
            "Contended acquisitions of a zone->lock, by CPU, NUMA node, zone and side.",
            1,
        ),
    ] {
        w.family(name, "counter", help);
        for ((cpu, node, zone_name, side), (ns, n)) in &zone {
            let cpu = cpu.to_string();
            let mut labels = Vec::with_capacity(4);
            if per_cpu {
                labels.push(("cpu", cpu.as_str()));
            }
            labels.extend([("node", *node), ("zone", *zone_name), ("side", *side)]);
            let v = if value == 0 {
                Value::Seconds(*ns)
            } else {
                Value::Int(*n)
            };
            w.sample(name, &labels, v);
        }
    }
    w.family(
        "zoneprof_other_lock_wait_seconds_total",
        "counter",
        "Time spent waiting for contended locks other than zone->lock (lock:contention_begin/end), by CPU.",
    );
    w.per_cpu_counter(
        "zoneprof_other_lock_wait_seconds_total",
        other.into_iter(),
        Value::Seconds,
    );
    wait_histograms(w, rec, &side_sum, classes);
}

/// Per cgroup (`serve --tasks`): lock wait and SKB frees of each cgroup's threads. One
/// series per cgroup, not per thread: cgroups (a VM's scope, a service) are few and stable,
/// threads come and go. A cgroup removed since its threads were seen is named `cgroup <id>`.
fn cgroups(w: &mut Writer, rec: &Recording, waits: &[analysis::ClassifiedWait<'_>]) {
    if !rec.settings.tasks {
        return;
    }
    let rows = tasks::by_cgroup(
        &tasks::lock_wait_by_task(rec, waits),
        &tasks::skb_free_by_task(rec),
    );
    let mut rows: Vec<&tasks::CgroupRow> = rows.iter().collect();
    // Stable order between scrapes: by name.
    rows.sort_by(|a, b| a.cgroup.cmp(&b.cgroup));
    w.family(
        "zoneprof_cgroup_zone_lock_wait_seconds_total",
        "counter",
        "Time the threads of a cgroup (v2 path) spent waiting for a zone->lock, by side (serve --tasks).",
    );
    for r in &rows {
        let z = &r.wait.zone_lock_wait_ns;
        for (side, ns) in [("alloc", z.alloc), ("free", z.free), ("other", z.other)] {
            w.sample(
                "zoneprof_cgroup_zone_lock_wait_seconds_total",
                &[("cgroup", r.cgroup.as_str()), ("side", side)],
                Value::Seconds(ns),
            );
        }
    }
    w.family(
        "zoneprof_cgroup_other_lock_wait_seconds_total",
        "counter",
        "Time the threads of a cgroup spent waiting for contended locks other than zone->lock (serve --tasks).",
    );
    for r in &rows {
        w.sample(
            "zoneprof_cgroup_other_lock_wait_seconds_total",
            &[("cgroup", r.cgroup.as_str())],
            Value::Seconds(r.wait.other_lock_wait_ns),
        );
    }
    w.family(
        "zoneprof_cgroup_skb_frees_total",
        "counter",
        "SKBs freed by the threads of a cgroup, by whether the freeing CPU is not the allocating one (serve --tasks).",
    );
    for r in &rows {
        let f = &r.skb_frees;
        for (remote, n) in [
            ("false", f.count.saturating_sub(f.remote)),
            ("true", f.remote),
        ] {
            w.sample(
                "zoneprof_cgroup_skb_frees_total",
                &[("cgroup", r.cgroup.as_str()), ("remote", remote)],
                Value::Int(n),
            );
        }
    }
}

/// Labels of zone locks the kernel did not prove to be a zone's (their stack says so).
const UNKNOWN: &str = "unknown";

/// The wait histogram of each side, from the in-kernel log2 buckets: bucket b holds waits
/// in [2^b, 2^(b+1)) ns, so its upper bound `le` is 2^(b+1) ns (a wait of exactly 2^k ns
/// is counted in the bucket above); the last bucket is open (+Inf).
fn wait_histograms(
    w: &mut Writer,
    rec: &Recording,
    side_sum: &HashMap<Side, u64>,
    classes: &mut analysis::StackClasses,
) {
    const NAME: &str = "zoneprof_zone_lock_wait_duration_seconds";
    let nb = profiler_common::HIST_BUCKETS as usize;
    let mut buckets: [Vec<u64>; 2] = [vec![0; nb], vec![0; nb]];
    for h in &rec.wait_hist {
        let Some(s) = h.stack else { continue };
        let i = match classes.of(rec, s).side() {
            Some(Side::Alloc) => 0,
            Some(Side::Free) => 1,
            None => continue,
        };
        let b = (h.bucket as usize).min(nb - 1);
        buckets[i][b] += h.count;
    }
    w.family(
        NAME,
        "histogram",
        "Zone-lock waits by duration, alloc and free side (log2 buckets measured in the kernel).",
    );
    for (i, side) in [Side::Alloc, Side::Free].into_iter().enumerate() {
        let name = side_name(Some(side));
        let mut cum = 0u64;
        for (b, n) in buckets[i].iter().enumerate().take(nb - 1) {
            cum += n;
            let le = format_float((1u64 << (b + 1)) as f64 / 1e9);
            w.sample(
                "zoneprof_zone_lock_wait_duration_seconds_bucket",
                &[("side", name), ("le", &le)],
                Value::Int(cum),
            );
        }
        cum += buckets[i][nb - 1];
        w.sample(
            "zoneprof_zone_lock_wait_duration_seconds_bucket",
            &[("side", name), ("le", "+Inf")],
            Value::Int(cum),
        );
        w.sample(
            "zoneprof_zone_lock_wait_duration_seconds_sum",
            &[("side", name)],
            Value::Seconds(side_sum.get(&side).copied().unwrap_or(0)),
        );
        w.sample(
            "zoneprof_zone_lock_wait_duration_seconds_count",
            &[("side", name)],
            Value::Int(cum),
        );
    }
}

fn pcp(w: &mut Writer, rec: &Recording) {
    let method = PcpMethod::of(&rec.probes);
    for (name, count, help, get) in [
        (
            "zoneprof_pcp_refill_pages_total",
            method.refill,
            "Pages moved from the buddy allocator into a CPU's PCP lists (refills, under zone->lock), by CPU.",
            (|p: &CpuPages| p.refill_pages) as fn(&CpuPages) -> u64,
        ),
        (
            "zoneprof_pcp_drain_pages_total",
            method.drain,
            "Pages moved from a CPU's PCP lists back to the buddy allocator (drains, under zone->lock), by CPU.",
            |p| p.drain_pages,
        ),
    ] {
        w.family(name, "counter", help);
        // Not counted (probe off or not attached): no series rather than zeros.
        if count == PcpCount::Off {
            continue;
        }
        w.per_cpu_counter(name, rec.pcp.iter().map(|p| (p.cpu, get(p))), Value::Int);
    }
}

fn losses(w: &mut Writer, rec: &Recording) {
    for (name, unit, help) in [
        (
            "zoneprof_losses_total",
            LossUnit::Count,
            "Events, entries or calls lost, by loss counter (see the report's losses).",
        ),
        (
            "zoneprof_lost_seconds_total",
            LossUnit::Nanoseconds,
            "Time lost from the attributed totals, by loss counter.",
        ),
    ] {
        w.family(name, "counter", help);
        for l in LOSSES.iter().filter(|l| l.unit == unit) {
            let n = (l.get)(&rec.counters);
            let v = match unit {
                LossUnit::Count => Value::Int(n),
                LossUnit::Nanoseconds => Value::Seconds(n),
            };
            // `lost_wait_ns` is exported in seconds: its label drops the unit.
            let key = match unit {
                LossUnit::Nanoseconds => l.key.strip_suffix("_ns").unwrap_or(l.key),
                LossUnit::Count => l.key,
            };
            w.sample(name, &[("loss", key)], v);
        }
    }
}

/// zoneprof's own programs, as ebpf_exporter reports its own: run counts and run time.
fn programs(w: &mut Writer, rec: &Recording) {
    let obs = rec.observer.as_ref();
    w.family(
        "zoneprof_bpf_stats_enabled",
        "gauge",
        "Whether the kernel's BPF run-time stats are on and every program's were read (1) or not (0).",
    );
    let ok = obs.is_some_and(|o| o.stats_error.is_none());
    w.sample("zoneprof_bpf_stats_enabled", &[], Value::Int(u64::from(ok)));
    let progs = obs.map(|o| o.programs.as_slice()).unwrap_or_default();
    for (name, help, seconds) in [
        (
            "zoneprof_bpf_program_runs_total",
            "Runs of each of zoneprof's eBPF programs since it was loaded.",
            false,
        ),
        (
            "zoneprof_bpf_program_run_seconds_total",
            "Time spent in each of zoneprof's eBPF programs since it was loaded (without the kernel's dispatch around it).",
            true,
        ),
    ] {
        w.family(name, "counter", help);
        for p in progs {
            let v = if seconds {
                Value::Seconds(p.run_ns)
            } else {
                Value::Int(p.runs)
            };
            w.sample(name, &[("probe", &p.probe), ("program", &p.program)], v);
        }
    }
}

enum Value {
    Int(u64),
    /// Nanoseconds, written as seconds.
    Seconds(u64),
    Float(f64),
}

struct Writer {
    out: String,
    per_cpu: bool,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}").ok();
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(&mut self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match v {
            Value::Int(n) => write!(self.out, "{n}").ok(),
            Value::Seconds(ns) => {
                let s = format_float(ns as f64 / 1e9);
                self.out.push_str(&s);
                Some(())
            }
            Value::Float(x) => {
                let s = format_float(x);
                self.out.push_str(&s);
                Some(())
            }
        };
        self.out.push('\n');
    }

    /// One series per CPU, or their sum without a `cpu` label.
    fn per_cpu_counter(
        &mut self,
        name: &str,
        rows: impl Iterator<Item = (u32, u64)>,
        value: fn(u64) -> Value,
    ) {
        if self.per_cpu {
            let by_cpu: BTreeMap<u32, u64> = rows.fold(BTreeMap::new(), |mut m, (c, n)| {
                *m.entry(c).or_default() += n;
                m
            });
            for (cpu, n) in by_cpu {
                self.sample(name, &[("cpu", &cpu.to_string())], value(n));
            }
        } else {
            let total = rows.map(|(_, n)| n).sum();
            self.sample(name, &[], value(total));
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Shortest decimal that reads back as `x` (Rust's `Display`, no exponent).
fn format_float(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{SkbSite, sample};

    fn site(caller: &str, cpu: u32, count: u64, remote: u64) -> SkbSite {
        SkbSite {
            function: "consume_skb".into(),
            caller: caller.into(),
            cpu,
            count,
            remote,
            cross_node: 0,
            tid: None,
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label(&mut s, "a\"b\\c\nd");
        assert_eq!(s, r#"a\"b\\c\nd"#);
    }

    #[test]
    fn sites_beyond_the_limit_are_other_and_every_series_only_grows() {
        let mut e = Exposition::new(MetricsOpts {
            per_cpu: true,
            skb_sites: 2,
        });
        let mut rec = sample();
        rec.skb_sites = vec![
            site("tun_do_read", 1, 100, 90),
            site("net_rx_action", 0, 50, 0),
        ];
        let first = e.render(&rec);
        let tun = r#"zoneprof_skb_frees_total{function="consume_skb",caller="tun_do_read",remote="true"}"#;
        assert_eq!(value(&first, tun), Some(90.0));
        // A third site, bigger than both: no room left, so it is `other`.
        rec.skb_sites.push(site("napi_consume", 1, 1_000, 10));
        rec.skb_sites[0].count += 1;
        let second = e.render(&rec);
        let other = |remote: &str| {
            format!(
                r#"zoneprof_skb_frees_total{{function="consume_skb",caller="other",remote="{remote}"}}"#
            )
        };
        assert_eq!(value(&first, &other("false")), None);
        assert_eq!(value(&second, &other("false")), Some(990.0));
        assert_eq!(value(&second, &other("true")), Some(10.0));
        assert_eq!(value(&second, tun), Some(90.0));
        // Every series of the first scrape is still there, and none went down.
        for l in first.lines().filter(|l| l.starts_with("zoneprof_skb")) {
            let (series, v) = l.rsplit_once(' ').expect("sample line");
            let later = value(&second, series).expect("series kept");
            assert!(later >= v.parse::<f64>().expect("number"), "{l}");
        }
    }

    #[test]
    fn histograms_are_cumulative_and_end_in_the_count() {
        let rec = sample();
        let text = Exposition::new(MetricsOpts::default()).render(&rec);
        let buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(
                    "zoneprof_zone_lock_wait_duration_seconds_bucket{side=\"alloc\",le=\"",
                )?;
                let (le, v) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, v.parse().ok()?))
            })
            .collect();
        assert_eq!(buckets.len(), profiler_common::HIST_BUCKETS as usize);
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        // sample(): 10 waits of the alloc stack in bucket 16, [65536, 131072) ns.
        let at = |le: f64| buckets.iter().find(|b| b.0 == le).map(|b| b.1);
        assert_eq!(at(65536e-9), Some(0));
        assert_eq!(at(131072e-9), Some(10));
        let count = value(
            &text,
            "zoneprof_zone_lock_wait_duration_seconds_count{side=\"alloc\"}",
        );
        assert_eq!(count, Some(10.0));
        // The sum is the alloc side's wait: 6 ms on CPU 0.
        let sum = value(
            &text,
            "zoneprof_zone_lock_wait_duration_seconds_sum{side=\"alloc\"}",
        );
        assert_eq!(sum, Some(0.006));
    }

    #[test]
    fn per_cpu_off_drops_the_cpu_label_and_sums() {
        let mut rec = sample();
        let mut refill = rec.probes[0].clone();
        refill.name = crate::kernel::probes::name::PCP_REFILL.into();
        rec.probes.push(refill);
        let on = Exposition::new(MetricsOpts::default()).render(&rec);
        let off = Exposition::new(MetricsOpts {
            per_cpu: false,
            ..Default::default()
        })
        .render(&rec);
        assert!(on.contains("cpu=\"1\""));
        assert!(!off.contains("cpu="), "{off}");
        let sum_on: f64 = on
            .lines()
            .filter(|l| l.starts_with("zoneprof_pcp_refill_pages_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert_eq!(sum_on, 1000.0);
        assert_eq!(value(&off, "zoneprof_pcp_refill_pages_total"), Some(sum_on));
        // Drains were not counted (no drain probe attached): no series at all.
        assert!(
            !on.lines()
                .any(|l| l.starts_with("zoneprof_pcp_drain_pages_total"))
        );
    }

    #[test]
    fn every_loss_counter_is_exported() {
        let rec = sample();
        let text = Exposition::new(MetricsOpts::default()).render(&rec);
        for l in LOSSES {
            let key = l.key.strip_suffix("_ns").unwrap_or(l.key);
            assert!(
                text.contains(&format!("{{loss=\"{key}\"}}")),
                "{} missing",
                l.key
            );
        }
    }
    #[test]
    fn cgroup_series_sum_the_threads_and_only_with_tasks() {
        let text = Exposition::new(MetricsOpts::default()).render(&sample());
        assert!(
            !text.contains("zoneprof_cgroup_"),
            "without --tasks: no cgroup series"
        );

        let rec = crate::model::tasks::tests::sample_with_tasks();
        let text = Exposition::new(MetricsOpts::default()).render(&rec);
        let vm = "/machine.slice/vm1.scope";
        let frees = |cg: &str, remote: &str| {
            value(
                &text,
                &format!("zoneprof_cgroup_skb_frees_total{{cgroup=\"{cg}\",remote=\"{remote}\"}}"),
            )
        };
        // vhost-1000 freed 1,000, 900 of them remote; kworker 5, none remote.
        assert_eq!(
            (frees(vm, "true"), frees(vm, "false")),
            (Some(900.0), Some(100.0))
        );
        assert_eq!(frees("[no cgroup]", "false"), Some(5.0));
        // Every zone-lock second lands in exactly one cgroup series (a thread the name map
        // missed is "[unnamed thread]"): the cgroup sums equal the zone-lock family's.
        let sum = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        let by_cgroup = sum("zoneprof_cgroup_zone_lock_wait_seconds_total{");
        let all = sum("zoneprof_zone_lock_wait_seconds_total{");
        assert!(
            all > 0.0 && (by_cgroup - all).abs() < 1e-9,
            "{by_cgroup} vs {all}"
        );
        assert!(text.contains("cgroup=\"[unnamed thread]\""), "{text}");
        // The vm's alloc side is tap-send-0's wait, its free side vhost-1000's.
        let waits = analysis::classify_waits(&rec);
        let rows = tasks::by_cgroup(
            &tasks::lock_wait_by_task(&rec, &waits),
            &tasks::skb_free_by_task(&rec),
        );
        let vm_row = rows.iter().find(|r| r.cgroup == vm).expect("vm row");
        for (side, ns) in [
            ("alloc", vm_row.wait.zone_lock_wait_ns.alloc),
            ("free", vm_row.wait.zone_lock_wait_ns.free),
        ] {
            assert_eq!(
                value(
                    &text,
                    &format!(
                        "zoneprof_cgroup_zone_lock_wait_seconds_total{{cgroup=\"{vm}\",side=\"{side}\"}}"
                    )
                ),
                Some(ns as f64 / 1e9),
                "{side}"
            );
        }
    }
}
