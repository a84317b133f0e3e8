//! `zoneprof compare BEFORE AFTER`: every headline of two recordings side by side, normalised
//! per second of recording, a verdict in words that only states what the data shows, the
//! stacks that grew and shrank most, and differential flamegraphs both ways.
//!
//! The JSON document is a contract (docs/compare-json.md). A value a recording cannot show
//! (its probe did not attach) is `null`, never 0.
use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::{
    kernel::probes::name,
    model::analysis,
    model::observer::{self, ObserverCost},
    model::recording::{PcpCount, PcpMethod, Recording},
    model::units::{fmt_count, fmt_ns, fmt_pct},
    output::flamegraph::{self as fg, FoldOptions, Folded, View},
    par,
};

pub const COMPARE_FORMAT: &str = "zoneprof-compare";
pub const COMPARE_VERSION: u32 = 1;

/// A change smaller than this (percent) is reported as "unchanged" in the verdict.
const NOISE_PCT: f64 = 10.0;

#[derive(Debug, Clone, Serialize)]
pub struct RecInfo {
    pub file: String,
    pub host: String,
    pub kernel: String,
    pub duration_s: f64,
    pub online_cpus: usize,
    pub recorded_cpus: usize,
}

/// What a metric counts; decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    #[serde(rename = "ns/s")]
    NsPerS,
    #[serde(rename = "pages/s")]
    PagesPerS,
    #[serde(rename = "1/s")]
    PerS,
    /// Percent (0-100).
    #[serde(rename = "%")]
    Pct,
    /// A fraction 0-1.
    #[serde(rename = "ratio")]
    Ratio,
}

impl Unit {
    pub fn fmt(self, v: Option<f64>) -> String {
        let Some(v) = v else {
            return "n/a".to_string();
        };
        match self {
            Unit::NsPerS => format!("{}/s", fmt_ns(v.round().max(0.0) as u64)),
            Unit::PagesPerS => format!("{} pg/s", fmt_count(v.round().max(0.0) as u64)),
            Unit::PerS => format!("{}/s", fmt_count(v.round().max(0.0) as u64)),
            Unit::Pct => format!("{v:.2} %"),
            Unit::Ratio => fmt_pct(100.0 * v),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub unit: Unit,
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// `100 * (after - before) / before`; null when either is null or before is 0.
    pub change_pct: Option<f64>,
}

/// One SKB free site (free function called from caller), all CPUs summed.
#[derive(Debug, Clone, Serialize)]
pub struct SiteRow {
    pub function: String,
    pub caller: String,
    pub before_frees_per_s: Option<f64>,
    pub after_frees_per_s: Option<f64>,
    /// remote / count: share freed on another CPU than the one that allocated.
    pub before_remote_ratio: Option<f64>,
    pub after_remote_ratio: Option<f64>,
}

/// One alloc-CPU x free-CPU matrix cell, per second.
#[derive(Debug, Clone, Serialize)]
pub struct CellRow {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    pub before_per_s: Option<f64>,
    pub after_per_s: Option<f64>,
}

/// A lock-wait stack (all CPUs), root first as in folded output, per second.
#[derive(Debug, Clone, Serialize)]
pub struct StackDelta {
    pub stack: String,
    pub before_ns_per_s: f64,
    pub after_ns_per_s: f64,
    pub change_ns_per_s: f64,
}

/// One value per recording.
#[derive(Debug, Clone, Serialize)]
pub struct BeforeAfter<T> {
    pub before: T,
    pub after: T,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub format: &'static str,
    pub version: u32,
    pub before: RecInfo,
    pub after: RecInfo,
    pub warnings: Vec<String>,
    pub verdict: Vec<String>,
    /// How each recording counted PCP pages (per page inside zone->lock, per batch, off).
    pub pcp_method: BeforeAfter<PcpMethod>,
    /// What each recording's own programs added under zone->lock.
    pub observer_cost: BeforeAfter<ObserverCost>,
    pub metrics: Vec<Metric>,
    pub skb_sites: Vec<SiteRow>,
    pub skb_matrix: Vec<CellRow>,
    pub page_matrix: Vec<CellRow>,
    pub stacks_grew: Vec<StackDelta>,
    pub stacks_shrank: Vec<StackDelta>,
    /// Differential flamegraph files written, when asked for.
    pub flamegraphs: Vec<String>,
}

impl Comparison {
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// Probes that see SKB frees (see probes.rs).
const SKB_FREE_PROBES: &[&str] = &[
    name::CONSUME_SKB,
    name::KFREE_SKB,
    name::SKB_ATTEMPT_DEFER_FREE,
];

/// What a recording could observe (its probes attached, or it holds the data).
#[derive(Debug, Clone, Copy)]
pub struct Observable {
    pub locks: bool,
    pub refill: bool,
    pub drain: bool,
    pub skb: bool,
    /// `skb_attempt_defer_free` itself was probed (calls, deferred vs immediate).
    pub defer: bool,
    /// Deferred-list flushes (consume_skb from the flush path) and their IPIs were watched.
    pub defer_cost: bool,
    pub skb_matrix: bool,
    pub page_matrix: bool,
}

impl Observable {
    pub fn of(rec: &Recording) -> Observable {
        let any = |names: &[&str]| names.iter().any(|n| rec.attached(n));
        // Pages are counted per page or per batch: either way the side was watched.
        let m = PcpMethod::of(&rec.probes);
        Observable {
            locks: !rec.lock_waits.is_empty() || rec.attached(name::CONTENTION_END),
            refill: rec.pcp.iter().any(|p| p.refill_pages > 0) || m.refill != PcpCount::Off,
            drain: rec.pcp.iter().any(|p| p.drain_pages > 0) || m.drain != PcpCount::Off,
            skb: !rec.skb_sites.is_empty() || any(SKB_FREE_PROBES),
            defer: rec.skb_defer.iter().any(|d| d.calls > 0)
                || rec.attached(name::SKB_ATTEMPT_DEFER_FREE),
            defer_cost: any(&[name::SKB_DEFER_IPI, name::CONSUME_SKB]),
            skb_matrix: !rec.skb_matrix.is_empty() || any(SKB_FREE_PROBES),
            page_matrix: !rec.page_matrix.is_empty() || rec.page_tracking.is_some(),
        }
    }
}

/// Metrics of one recording, in a stable order: (name, unit, value); and its observer cost
/// (from the same classified waits).
fn metrics_of(rec: &Recording) -> (Vec<(String, Unit, Option<f64>)>, ObserverCost) {
    let obs = Observable::of(rec);
    let secs = rec.duration_s();
    let per_s = |v: u64| if secs > 0.0 { v as f64 / secs } else { 0.0 };
    let ncpus = rec.cpus.len().max(1) as f64;
    let when = |ok: bool, v: f64| ok.then_some(v);
    let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);

    let waits = analysis::classify_waits(rec);
    let cost = observer::cost(rec, &waits);
    let zone = analysis::zone_totals(&waits);
    let cpu_wait = analysis::per_cpu_wait(&waits);
    let other: u64 = cpu_wait.values().map(|c| c.other_ns).sum();
    let contentions: u64 = cpu_wait.values().map(|c| c.contentions).sum();
    let refill: u64 = rec.pcp.iter().map(|p| p.refill_pages).sum();
    let drain: u64 = rec.pcp.iter().map(|p| p.drain_pages).sum();

    let mut m: Vec<(String, Unit, Option<f64>)> = Vec::new();
    let mut push = |n: &str, u: Unit, v: Option<f64>| m.push((n.to_string(), u, v));
    let l = obs.locks;
    push(
        "zone_lock_wait_alloc_ns_per_s",
        Unit::NsPerS,
        when(l, per_s(zone.alloc)),
    );
    push(
        "zone_lock_wait_free_ns_per_s",
        Unit::NsPerS,
        when(l, per_s(zone.free)),
    );
    push(
        "zone_lock_wait_other_ns_per_s",
        Unit::NsPerS,
        when(l, per_s(zone.other)),
    );
    push(
        "zone_lock_wait_ns_per_s",
        Unit::NsPerS,
        when(l, per_s(zone.total())),
    );
    let pct_all = |ns: u64| 100.0 * per_s(ns) / 1e9 / ncpus;
    push(
        "zone_lock_wait_alloc_pct_of_cpu",
        Unit::Pct,
        when(l, pct_all(zone.alloc)),
    );
    push(
        "zone_lock_wait_free_pct_of_cpu",
        Unit::Pct,
        when(l, pct_all(zone.free)),
    );
    push(
        "other_lock_wait_ns_per_s",
        Unit::NsPerS,
        when(l, per_s(other)),
    );
    push("contentions_per_s", Unit::PerS, when(l, per_s(contentions)));
    push(
        "pcp_refill_pages_per_s",
        Unit::PagesPerS,
        when(obs.refill, per_s(refill)),
    );
    push(
        "pcp_drain_pages_per_s",
        Unit::PagesPerS,
        when(obs.drain, per_s(drain)),
    );

    // skb_attempt_defer_free calls hand an SKB to its allocating CPU, which frees it later
    // (counted there by consume_skb): they are not frees, so they stay out of these ratios.
    let real_frees = || {
        rec.skb_sites
            .iter()
            .filter(|s| s.function != "skb_attempt_defer_free")
    };
    let frees: u64 = real_frees().map(|s| s.count).sum();
    let remote: u64 = real_frees().map(|s| s.remote.min(s.count)).sum();
    let cross: u64 = real_frees().map(|s| s.cross_node.min(s.count)).sum();
    push("skb_frees_per_s", Unit::PerS, when(obs.skb, per_s(frees)));
    push(
        "skb_remote_free_ratio",
        Unit::Ratio,
        obs.skb.then(|| ratio(remote, frees)).flatten(),
    );
    push(
        "skb_cross_node_free_ratio",
        Unit::Ratio,
        obs.skb.then(|| ratio(cross, frees)).flatten(),
    );
    // The free-method mix: share of calls per free function (hand-offs included).
    let all_calls: u64 = rec.skb_sites.iter().map(|s| s.count).sum();
    let mut by_fn: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &rec.skb_sites {
        *by_fn.entry(s.function.as_str()).or_default() += s.count;
    }
    for (f, n) in &by_fn {
        push(
            &format!("skb_free_share.{f}"),
            Unit::Ratio,
            ratio(*n, all_calls),
        );
    }

    let d = &rec.skb_defer;
    let sum = |f: fn(&crate::model::recording::SkbDefer) -> u64| d.iter().map(f).sum::<u64>();
    let (calls, deferred, immediate) =
        (sum(|x| x.calls), sum(|x| x.deferred), sum(|x| x.immediate));
    let od = obs.defer;
    push("skb_defer_calls_per_s", Unit::PerS, when(od, per_s(calls)));
    push(
        "skb_defer_deferred_per_s",
        Unit::PerS,
        when(od, per_s(deferred)),
    );
    push(
        "skb_defer_immediate_per_s",
        Unit::PerS,
        when(od, per_s(immediate)),
    );
    push(
        "skb_defer_deferred_ratio",
        Unit::Ratio,
        od.then(|| ratio(deferred, deferred + immediate)).flatten(),
    );
    push(
        "skb_defer_flushed_per_s",
        Unit::PerS,
        when(obs.defer_cost, per_s(sum(|x| x.flushed))),
    );
    push(
        "skb_defer_ipis_per_s",
        Unit::PerS,
        when(obs.defer_cost, per_s(sum(|x| x.ipis))),
    );

    let skb_all: u64 = rec.skb_matrix.iter().map(|c| c.count).sum();
    let skb_off: u64 = rec
        .skb_matrix
        .iter()
        .filter(|c| c.alloc_cpu != c.free_cpu)
        .map(|c| c.count)
        .sum();
    push(
        "skb_matrix_cross_cpu_ratio",
        Unit::Ratio,
        obs.skb_matrix.then(|| ratio(skb_off, skb_all)).flatten(),
    );
    let pg_all: u64 = rec.page_matrix.iter().map(|c| c.pages).sum();
    let pg_off: u64 = rec
        .page_matrix
        .iter()
        .filter(|c| c.alloc_cpu != c.free_cpu)
        .map(|c| c.pages)
        .sum();
    push(
        "page_matrix_cross_cpu_ratio",
        Unit::Ratio,
        obs.page_matrix.then(|| ratio(pg_off, pg_all)).flatten(),
    );

    // Per CPU: every recorded CPU and any CPU with data.
    let pcp: BTreeMap<u32, _> = rec.pcp.iter().map(|p| (p.cpu, p)).collect();
    let mut cpus: BTreeSet<u32> = rec.cpus.iter().copied().collect();
    cpus.extend(cpu_wait.keys().copied());
    cpus.extend(pcp.keys().copied());
    for cpu in cpus {
        let w = cpu_wait.get(&cpu).map(|c| c.zone).unwrap_or_default();
        let p = pcp.get(&cpu);
        let pct = |ns: u64| 100.0 * per_s(ns) / 1e9;
        push(
            &format!("cpu{cpu}.zone_lock_wait_alloc_ns_per_s"),
            Unit::NsPerS,
            when(l, per_s(w.alloc)),
        );
        push(
            &format!("cpu{cpu}.zone_lock_wait_free_ns_per_s"),
            Unit::NsPerS,
            when(l, per_s(w.free)),
        );
        push(
            &format!("cpu{cpu}.zone_lock_wait_alloc_pct"),
            Unit::Pct,
            when(l, pct(w.alloc)),
        );
        push(
            &format!("cpu{cpu}.zone_lock_wait_free_pct"),
            Unit::Pct,
            when(l, pct(w.free)),
        );
        push(
            &format!("cpu{cpu}.pcp_refill_pages_per_s"),
            Unit::PagesPerS,
            when(obs.refill, per_s(p.map_or(0, |p| p.refill_pages))),
        );
        push(
            &format!("cpu{cpu}.pcp_drain_pages_per_s"),
            Unit::PagesPerS,
            when(obs.drain, per_s(p.map_or(0, |p| p.drain_pages))),
        );
    }
    (m, cost)
}

fn change_pct(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if b != 0.0 => Some(100.0 * (a - b) / b),
        _ => None,
    }
}

/// Joins both recordings' metrics (from [`metrics_of`]) by name, before's order first.
fn join_metrics(
    b: Vec<(String, Unit, Option<f64>)>,
    a: Vec<(String, Unit, Option<f64>)>,
) -> Vec<Metric> {
    let a_by: BTreeMap<&str, (Unit, Option<f64>)> =
        a.iter().map(|(n, u, v)| (n.as_str(), (*u, *v))).collect();
    let b_names: BTreeSet<&str> = b.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut out: Vec<Metric> = b
        .iter()
        .map(|(n, u, bv)| {
            let av = a_by.get(n.as_str()).and_then(|(_, v)| *v);
            Metric {
                name: n.clone(),
                unit: *u,
                before: *bv,
                after: av,
                change_pct: change_pct(*bv, av),
            }
        })
        .collect();
    // Metrics only AFTER has (a CPU or free function BEFORE did not have).
    for (n, u, av) in a.iter().filter(|(n, _, _)| !b_names.contains(n.as_str())) {
        out.push(Metric {
            name: n.clone(),
            unit: *u,
            before: None,
            after: *av,
            change_pct: None,
        });
    }
    // Keep per-CPU metrics together and in CPU order, after the totals.
    out.sort_by_key(|m| cpu_of_metric(&m.name).map_or((0, 0), |c| (1, c)));
    out
}

/// `cpuN.` prefix of a per-CPU metric.
pub fn cpu_of_metric(name: &str) -> Option<u32> {
    name.strip_prefix("cpu")?.split_once('.')?.0.parse().ok()
}

fn info(rec: &Recording, file: &str) -> RecInfo {
    RecInfo {
        file: file.to_string(),
        host: rec.host.hostname.clone(),
        kernel: rec.host.kernel_release.clone(),
        duration_s: rec.duration_s(),
        online_cpus: rec.host.online_cpus.len(),
        recorded_cpus: rec.cpus.len(),
    }
}

fn warnings(b: &Recording, a: &Recording) -> Vec<String> {
    let mut w = Vec::new();
    if b.host.hostname != a.host.hostname {
        w.push(format!(
            "the recordings come from different hosts ({} vs {}): compare rates only if hardware and load match",
            b.host.hostname, a.host.hostname
        ));
    }
    if b.host.kernel_release != a.host.kernel_release {
        w.push(format!(
            "the recordings come from different kernels ({} vs {}): function names and probes may differ",
            b.host.kernel_release, a.host.kernel_release
        ));
    }
    if b.host.online_cpus.len() != a.host.online_cpus.len() || b.cpus.len() != a.cpus.len() {
        w.push(format!(
            "different CPU counts ({} online / {} recorded vs {} / {}): per-CPU rows are matched by CPU number; \
             a CPU missing on one side shows n/a",
            b.host.online_cpus.len(),
            b.cpus.len(),
            a.host.online_cpus.len(),
            a.cpus.len()
        ));
    }
    let (ob, oa) = (Observable::of(b), Observable::of(a));
    for (what, x, y) in [
        ("lock contention", ob.locks, oa.locks),
        ("PCP refills", ob.refill, oa.refill),
        ("PCP drains", ob.drain, oa.drain),
        ("SKB free sites", ob.skb, oa.skb),
        ("skb_attempt_defer_free outcomes", ob.defer, oa.defer),
    ] {
        if x != y {
            w.push(format!(
                "{what} observable only in the {} recording: those metrics are null on the other side",
                if x { "before" } else { "after" }
            ));
        }
    }
    w.extend(pcp_method_warnings(
        &PcpMethod::of(&b.probes),
        &PcpMethod::of(&a.probes),
    ));
    for (side, r) in [("before", b), ("after", a)] {
        if r.counters.lost_wait_ns > 0 {
            w.push(format!(
                "the {side} recording lost {} of lock wait (map full): its totals are lower bounds",
                fmt_ns(r.counters.lost_wait_ns)
            ));
        }
        if r.duration_ns < 500_000_000 {
            w.push(format!(
                "the {side} recording is only {:.2} s long: per-second rates are noisy",
                r.duration_s()
            ));
        }
    }
    w
}

/// PCP pages counted per page (a program inside zone->lock) on one side and per batch (or
/// not at all) on the other: the observer cost under the lock differs between the two.
fn pcp_method_warnings(b: &PcpMethod, a: &PcpMethod) -> Vec<String> {
    let mut w = Vec::new();
    for (what, x, y) in [("refill", b.refill, a.refill), ("drain", b.drain, a.drain)] {
        if x == y {
            continue;
        }
        let consequence = if x == PcpCount::Off || y == PcpCount::Off {
            "the observer cost under the lock does not compare"
        } else {
            "page counts compare, the observer cost under the lock does not"
        };
        w.push(format!(
            "PCP {what} counted {} in before, {} in after: {consequence}",
            x.words(),
            y.words()
        ));
    }
    w
}

/// Lock-wait stacks folded for `view` (all CPUs), per second of recording.
pub fn folded_per_s(rec: &Recording, view: View) -> Folded {
    let f = fg::fold(&fg::stacks_for_view(rec, view), &FoldOptions::default());
    let secs = rec.duration_s();
    if secs > 0.0 {
        f.into_scaled(1.0 / secs)
    } else {
        f
    }
}

fn stack_deltas(b: &Folded, a: &Folded, top: usize) -> (Vec<StackDelta>, Vec<StackDelta>) {
    // Every stack of either side in stack order, (stack, before, after): both maps are
    // sorted, so one walk joins them; only the rows kept are copied out.
    let mut all: Vec<(&str, f64, f64)> = Vec::with_capacity(b.stacks.len().max(a.stacks.len()));
    let (mut bi, mut ai) = (b.stacks.iter().peekable(), a.stacks.iter().peekable());
    loop {
        let order = match (bi.peek(), ai.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((kb, _)), Some((ka, _))) => kb.cmp(ka),
        };
        let bv = if order.is_le() { bi.next() } else { None };
        let av = if order.is_ge() { ai.next() } else { None };
        let Some(stack) = bv.or(av).map(|(k, _)| k.as_str()) else {
            break;
        };
        let val = |e: Option<(&String, &u64)>| e.map_or(0.0, |(_, &v)| v as f64);
        all.push((stack, val(bv), val(av)));
    }
    let change = |&(_, bv, av): &(&str, f64, f64)| av - bv;
    // Stable: equal changes stay in stack order.
    all.sort_by(|x, y| change(x).total_cmp(&change(y)));
    let row = |r: &(&str, f64, f64)| StackDelta {
        stack: r.0.to_string(),
        before_ns_per_s: r.1,
        after_ns_per_s: r.2,
        change_ns_per_s: change(r),
    };
    let shrank: Vec<StackDelta> = all
        .iter()
        .filter(|r| change(r) < 0.0)
        .take(top)
        .map(row)
        .collect();
    let grew: Vec<StackDelta> = all
        .iter()
        .rev()
        .filter(|r| change(r) > 0.0)
        .take(top)
        .map(row)
        .collect();
    (grew, shrank)
}

/// Per (function, caller): (frees, remote).
fn sites(rec: &Recording) -> BTreeMap<(String, String), (u64, u64)> {
    let mut m: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for s in &rec.skb_sites {
        let e = m.entry((s.function.clone(), s.caller.clone())).or_default();
        e.0 += s.count;
        e.1 += s.remote.min(s.count);
    }
    m
}

fn site_rows(b: &Recording, a: &Recording) -> Vec<SiteRow> {
    let (ob, oa) = (Observable::of(b).skb, Observable::of(a).skb);
    let (sb, sa) = (sites(b), sites(a));
    let keys: BTreeSet<&(String, String)> = sb.keys().chain(sa.keys()).collect();
    let rate = |ok: bool, rec: &Recording, n: u64| {
        ok.then(|| n as f64 / rec.duration_s().max(f64::MIN_POSITIVE))
    };
    let mut rows: Vec<SiteRow> = keys
        .into_iter()
        .map(|k| {
            let (bn, br) = sb.get(k).copied().unwrap_or_default();
            let (an, ar) = sa.get(k).copied().unwrap_or_default();
            SiteRow {
                function: k.0.clone(),
                caller: k.1.clone(),
                before_frees_per_s: rate(ob, b, bn),
                after_frees_per_s: rate(oa, a, an),
                before_remote_ratio: (bn > 0).then(|| br as f64 / bn as f64),
                after_remote_ratio: (an > 0).then(|| ar as f64 / an as f64),
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        let key = |r: &SiteRow| {
            r.before_frees_per_s
                .unwrap_or(0.0)
                .max(r.after_frees_per_s.unwrap_or(0.0))
        };
        key(y).total_cmp(&key(x))
    });
    rows
}

fn cell_rows(
    b: &[(u32, u32, u64)],
    a: &[(u32, u32, u64)],
    ob: bool,
    oa: bool,
    bs: f64,
    as_: f64,
) -> Vec<CellRow> {
    let mut m: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for &(x, y, n) in b {
        m.entry((x, y)).or_default().0 += n;
    }
    for &(x, y, n) in a {
        m.entry((x, y)).or_default().1 += n;
    }
    let rate = |ok: bool, n: u64, s: f64| ok.then(|| n as f64 / s.max(f64::MIN_POSITIVE));
    m.into_iter()
        .map(|((x, y), (bn, an))| CellRow {
            alloc_cpu: x,
            free_cpu: y,
            before_per_s: rate(ob, bn, bs),
            after_per_s: rate(oa, an, as_),
        })
        .collect()
}

/// Builds the comparison. `top` bounds the grew/shrank stack lists.
pub fn compare(
    before: &Recording,
    after: &Recording,
    before_file: &str,
    after_file: &str,
    top: usize,
) -> Comparison {
    // The metrics and stacks of one recording do not depend on the other's: one thread each.
    let per_recording = |rec: &Recording| (metrics_of(rec), folded_per_s(rec, View::Locks));
    let (((mb, cost_b), fb), ((ma, cost_a), fa)) =
        par::both(|| per_recording(before), || per_recording(after));
    let metrics = join_metrics(mb, ma);
    let (grew, shrank) = stack_deltas(&fb, &fa, top);
    let (ob, oa) = (Observable::of(before), Observable::of(after));
    let skb = |r: &Recording| -> Vec<(u32, u32, u64)> {
        r.skb_matrix
            .iter()
            .map(|c| (c.alloc_cpu, c.free_cpu, c.count))
            .collect()
    };
    let pages = |r: &Recording| -> Vec<(u32, u32, u64)> {
        r.page_matrix
            .iter()
            .map(|c| (c.alloc_cpu, c.free_cpu, c.pages))
            .collect()
    };
    let mut c = Comparison {
        format: COMPARE_FORMAT,
        version: COMPARE_VERSION,
        before: info(before, before_file),
        after: info(after, after_file),
        warnings: warnings(before, after),
        verdict: Vec::new(),
        pcp_method: BeforeAfter {
            before: PcpMethod::of(&before.probes),
            after: PcpMethod::of(&after.probes),
        },
        observer_cost: BeforeAfter {
            before: cost_b,
            after: cost_a,
        },
        metrics,
        skb_sites: site_rows(before, after),
        skb_matrix: cell_rows(
            &skb(before),
            &skb(after),
            ob.skb_matrix,
            oa.skb_matrix,
            before.duration_s(),
            after.duration_s(),
        ),
        page_matrix: cell_rows(
            &pages(before),
            &pages(after),
            ob.page_matrix,
            oa.page_matrix,
            before.duration_s(),
            after.duration_s(),
        ),
        stacks_grew: grew,
        stacks_shrank: shrank,
        flamegraphs: Vec::new(),
    };
    c.verdict = verdict(&c);
    c
}

/// "fell 93 % (181.0 ms/s → 12.7 ms/s)", "rose …", "was unchanged (…)", "appeared (…)".
fn movement(unit: Unit, b: f64, a: f64) -> Option<String> {
    let span = format!("{} → {}", unit.fmt(Some(b)), unit.fmt(Some(a)));
    if b == 0.0 && a == 0.0 {
        return None;
    }
    if b == 0.0 {
        return Some(format!("appeared ({span})"));
    }
    let pct = 100.0 * (a - b) / b;
    Some(if pct.abs() < NOISE_PCT {
        format!("was unchanged ({span}, {pct:+.0} %)")
    } else if pct < 0.0 {
        // "fell 100 %" only when it is gone.
        let fell = if a > 0.0 && -pct >= 99.5 {
            format!("{:.1}", -pct)
        } else {
            format!("{:.0}", -pct)
        };
        format!("fell {fell} % ({span})")
    } else {
        format!("rose {pct:.0} % ({span})")
    })
}

fn both(m: Option<&Metric>) -> Option<(f64, f64)> {
    m.and_then(|m| Some((m.before?, m.after?)))
}

/// The verdict: one sentence per headline the data supports, with its numbers.
fn verdict(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    let get = |n: &str| both(c.metric(n));

    for (name, pct_name, what) in [
        (
            "zone_lock_wait_alloc_ns_per_s",
            "zone_lock_wait_alloc_pct_of_cpu",
            "zone-lock wait on the allocation side",
        ),
        (
            "zone_lock_wait_free_ns_per_s",
            "zone_lock_wait_free_pct_of_cpu",
            "zone-lock wait on the free side",
        ),
    ] {
        if let Some((b, a)) = get(name)
            && let Some(mv) = movement(Unit::NsPerS, b, a)
        {
            let share = get(pct_name)
                .map(|(pb, pa)| format!("; {pb:.2} % → {pa:.2} % of recorded CPU time"))
                .unwrap_or_default();
            v.push(format!("{what} {mv}{share}"));
        }
    }
    if let (Some((ab, aa)), Some((fb, fa))) = (
        get("zone_lock_wait_alloc_ns_per_s"),
        get("zone_lock_wait_free_ns_per_s"),
    ) && ab + aa + fb + fa == 0.0
    {
        v.push("no zone-lock contention in either recording".to_string());
    }

    // PCP traffic: the CPU that refilled (drained) most before, and the totals.
    for (suffix, what) in [
        ("pcp_refill_pages_per_s", "PCP refills"),
        ("pcp_drain_pages_per_s", "PCP drains"),
    ] {
        let busiest = c
            .metrics
            .iter()
            .filter(|m| m.name.ends_with(&format!(".{suffix}")))
            .filter_map(|m| Some((cpu_of_metric(&m.name)?, m.before?, m.after?)))
            // Ties go to the lowest CPU.
            .max_by(|x, y| x.1.total_cmp(&y.1).then(y.0.cmp(&x.0)));
        if let Some((cpu, b, a)) = busiest
            && let Some(mv) = movement(Unit::PagesPerS, b, a)
        {
            v.push(format!("{what} on CPU {cpu} {mv}"));
        }
        // The all-CPU line only when it says more than the busiest CPU's.
        let same = busiest.is_some_and(|(_, cb, ca)| {
            get(suffix).is_some_and(|(b, a)| (b - cb).abs() < 0.5 && (a - ca).abs() < 0.5)
        });
        if let Some((b, a)) = get(suffix).filter(|_| !same)
            && let Some(mv) = movement(Unit::PagesPerS, b, a)
        {
            v.push(format!("{what} on all CPUs {mv}"));
        }
    }

    // Remote SKB frees by caller (free functions merged). `skb_attempt_defer_free` calls
    // are left out: a call with a remote alloc CPU is a hand-off back to that CPU, not a
    // remote free, so counting it would read "stayed at 100 %" exactly when the frees
    // moved; those callers get their own sentence below.
    let mut by_caller: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
    for s in c.skb_sites.iter().filter(|s| s.function != DEFER_FN) {
        let e = by_caller.entry(s.caller.as_str()).or_default();
        let (bn, an) = (
            s.before_frees_per_s.unwrap_or(0.0),
            s.after_frees_per_s.unwrap_or(0.0),
        );
        e[0] += bn;
        e[1] += bn * s.before_remote_ratio.unwrap_or(0.0);
        e[2] += an;
        e[3] += an * s.after_remote_ratio.unwrap_or(0.0);
    }
    let skb_both = both(c.metric("skb_frees_per_s")).is_some();
    let mut callers: Vec<_> = by_caller.into_iter().collect();
    callers.sort_by(|x, y| (y.1[0] + y.1[2]).total_cmp(&(x.1[0] + x.1[2])));
    for (caller, [bn, br, an, ar]) in callers.into_iter().take(3) {
        if !skb_both || bn == 0.0 || an == 0.0 {
            continue;
        }
        let (rb, ra) = (100.0 * br / bn, 100.0 * ar / an);
        let dir = if (ra - rb).abs() < 5.0 {
            "stayed at"
        } else if ra < rb {
            "fell from"
        } else {
            "rose from"
        };
        if dir == "stayed at" {
            v.push(format!("remote SKB frees at {caller} stayed at {ra:.0} %"));
        } else {
            v.push(format!(
                "remote SKB frees at {caller} {dir} {rb:.0} % to {ra:.0} %"
            ));
        }
    }

    if skb_both {
        v.extend(handoff_sentences(c));
    }

    // Free-method mix.
    for m in c
        .metrics
        .iter()
        .filter(|m| m.name.starts_with("skb_free_share."))
    {
        let f = &m.name["skb_free_share.".len()..];
        if skb_both {
            let (b, a) = (m.before.unwrap_or(0.0), m.after.unwrap_or(0.0));
            if (a - b).abs() >= 0.10 {
                v.push(format!(
                    "{f} share of SKB frees: {:.0} % → {:.0} %",
                    100.0 * b,
                    100.0 * a
                ));
            }
        }
    }
    if let Some((b, a)) = get("skb_defer_deferred_ratio") {
        v.push(format!(
            "skb_attempt_defer_free queued {:.0} % of its SKBs to the allocating CPU (was {:.0} %)",
            100.0 * a,
            100.0 * b
        ));
    }
    if let Some((b, a)) = get("skb_defer_ipis_per_s")
        && let Some(mv) = movement(Unit::PerS, b, a)
    {
        v.push(format!(
            "defer-flush IPIs (the cost side of deferring) {mv}"
        ));
    }
    for (name, what) in [
        (
            "skb_matrix_cross_cpu_ratio",
            "SKBs freed on another CPU than allocated",
        ),
        (
            "page_matrix_cross_cpu_ratio",
            "pages freed on another CPU than allocated (sampled)",
        ),
    ] {
        if let Some((b, a)) = get(name) {
            v.push(format!("{what}: {:.0} % → {:.0} %", 100.0 * b, 100.0 * a));
        }
    }

    // Stack moves under 1 ms/s (0.1 % of one CPU) are scheduler noise, not a finding.
    if let Some(s) = c
        .stacks_shrank
        .first()
        .filter(|s| s.change_ns_per_s <= -1e6)
    {
        v.push(format!(
            "largest drop: {} ({}/s → {}/s)",
            short_stack(&s.stack),
            fmt_ns(s.before_ns_per_s as u64),
            fmt_ns(s.after_ns_per_s as u64)
        ));
    }
    if let Some(s) = c.stacks_grew.first().filter(|s| s.change_ns_per_s >= 1e6) {
        v.push(format!(
            "largest rise: {} ({}/s → {}/s)",
            short_stack(&s.stack),
            fmt_ns(s.before_ns_per_s as u64),
            fmt_ns(s.after_ns_per_s as u64)
        ));
    }
    if v.is_empty() {
        v.push("nothing comparable: neither recording holds data both can show".to_string());
    }
    v
}

const DEFER_FN: &str = "skb_attempt_defer_free";

/// Callers that freed SKBs directly before and hand them to `skb_attempt_defer_free` after
/// (the tun patch: `tun_do_read`), one sentence each: the direct frees before/after with
/// their remote share, the deferral calls, the share queued back to the allocating CPU,
/// and the deferred-list flushes that freed them there.
fn handoff_sentences(c: &Comparison) -> Vec<String> {
    let rate = |x: Option<f64>| x.unwrap_or(0.0);
    let mut out = Vec::new();
    let mut callers: Vec<&str> = c
        .skb_sites
        .iter()
        .filter(|s| s.function == DEFER_FN && rate(s.after_frees_per_s) > 0.0)
        .map(|s| s.caller.as_str())
        .collect();
    callers.sort_unstable();
    callers.dedup();
    for caller in callers {
        let (mut bn, mut br, mut an, mut ar, mut db, mut da) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for s in c.skb_sites.iter().filter(|s| s.caller == caller) {
            let (b, a) = (rate(s.before_frees_per_s), rate(s.after_frees_per_s));
            if s.function == DEFER_FN {
                db += b;
                da += a;
            } else {
                bn += b;
                br += b * rate(s.before_remote_ratio);
                an += a;
                ar += a * rate(s.after_remote_ratio);
            }
        }
        // Only a switch: direct frees before, deferral calls after (more than before).
        if bn == 0.0 || da <= db {
            continue;
        }
        let share = |part: f64, whole: f64| {
            if whole > 0.0 {
                format!("{:.0} %", 100.0 * part / whole)
            } else {
                "n/a".to_string()
            }
        };
        let mut sent = format!(
            "SKB frees at {caller} moved to the allocating CPU: its direct frees fell from {} \
             ({} on another CPU than allocated) to {}",
            Unit::PerS.fmt(Some(bn)),
            share(br, bn),
            Unit::PerS.fmt(Some(an))
        );
        if an > 0.0 {
            let _ = write!(sent, " ({} remote)", share(ar, an));
        }
        let _ = write!(
            sent,
            "; it calls skb_attempt_defer_free {}",
            Unit::PerS.fmt(Some(da))
        );
        if let Some(q) = c.metric("skb_defer_deferred_ratio").and_then(|m| m.after) {
            let _ = write!(
                sent,
                ", {:.0} % queued back to the allocating CPU",
                100.0 * q
            );
        }
        if let Some(f) = c.metric("skb_defer_flushed_per_s").and_then(|m| m.after) {
            let _ = write!(
                sent,
                "; the deferred-list flush freed {} there ({} of the calls",
                Unit::PerS.fmt(Some(f)),
                share(f.min(da), da)
            );
            sent.push_str(if f < da {
                "; the rest were freed at once where they were read, e.g. with the defer \
                 list full, or were still queued)"
            } else {
                ")"
            });
        }
        out.push(sent);
    }
    out
}

/// A folded lock stack in a few words: the lock frame, then the taker and two of its callers,
/// e.g. "[zone->lock alloc] __rmqueue_pcplist ← get_page_from_freelist ← __alloc_frozen_pages".
pub fn short_stack(stack: &str) -> String {
    let frames: Vec<&str> = stack.split(';').collect();
    let root = frames.first().copied().unwrap_or("");
    let below: Vec<&str> = frames
        .iter()
        .rev()
        .copied()
        .filter(|f| !f.starts_with('['))
        .skip_while(|f| crate::model::classify::is_lock_frame(f))
        .take(3)
        .collect();
    if below.is_empty() {
        root.to_string()
    } else {
        format!("{root} {}", below.join(" ← "))
    }
}

/// Differential flamegraphs of `view`: (file name, title, SVG) for before→after and the
/// negated after→before. A direction whose sizing side is empty is left out.
pub fn diff_flamegraphs(
    before: &Recording,
    after: &Recording,
    view: View,
) -> Result<Vec<(String, String, Vec<u8>)>, fg::FlameError> {
    let (b, a) = par::both(|| folded_per_s(before, view), || folded_per_s(after, view));
    let mut out = Vec::new();
    let sub = "per second of recording; red = grew, blue = shrank (after vs before)";
    for negate in [false, true] {
        let sizing = if negate { &b } else { &a };
        if sizing.is_empty() {
            continue;
        }
        let (name, title) = if negate {
            (
                format!("{}.after-vs-before.diff.svg", view.name()),
                format!(
                    "{} per second, widths = BEFORE ({}/s); blue = gone or shrank in AFTER",
                    view.describe(),
                    fmt_ns(b.total())
                ),
            )
        } else {
            (
                format!("{}.before-vs-after.diff.svg", view.name()),
                format!(
                    "{} per second, widths = AFTER ({}/s); red = grew, blue = shrank",
                    view.describe(),
                    fmt_ns(a.total())
                ),
            )
        };
        let svg = fg::render_diff_svg(&b, &a, negate, view, &title, sub)?;
        out.push((name, title, svg));
    }
    Ok(out)
}

/// Writes the zone-wait and locks differential flamegraphs into `dir`; returns their paths.
pub fn write_flamegraphs(
    before: &Recording,
    after: &Recording,
    dir: &Path,
) -> Result<Vec<String>, fg::FlameError> {
    std::fs::create_dir_all(dir).map_err(|source| fg::FlameError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for view in [View::ZoneWait, View::Locks] {
        for (name, _, svg) in diff_flamegraphs(before, after, view)? {
            let p = dir.join(name);
            fg::write_atomic(&p, &svg)?;
            written.push(p.display().to_string());
        }
    }
    Ok(written)
}

/// Where `-o PATH` sends the report and the differential flamegraphs.
#[derive(Debug, PartialEq)]
pub struct OutputPlan {
    /// Report file; None = stdout.
    pub report: Option<PathBuf>,
    /// Directory for the differential flamegraphs; None = not written.
    pub dir: Option<PathBuf>,
}

impl OutputPlan {
    /// `-o DIR` (an existing directory, or a path ending in `/`) receives `compare.<ext>` and
    /// the flamegraphs; `-o FILE` is the report file alone.
    pub fn new(output: Option<&Path>, ext: &str) -> OutputPlan {
        match output {
            None => OutputPlan {
                report: None,
                dir: None,
            },
            Some(p) if p.is_dir() || p.as_os_str().to_string_lossy().ends_with('/') => OutputPlan {
                report: Some(p.join(format!("compare.{ext}"))),
                dir: Some(p.to_path_buf()),
            },
            Some(p) => OutputPlan {
                report: Some(p.to_path_buf()),
                dir: None,
            },
        }
    }
}

pub fn to_json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub fn to_text(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = write_text(&mut s, c);
    s
}

/// Each side's observer-cost sentence: ("before", …), ("after ", …).
pub fn observer_lines(c: &Comparison) -> [(&'static str, String); 2] {
    let o = &c.observer_cost;
    let m = &c.pcp_method;
    [
        ("before", observer::describe(&o.before, &m.before)),
        ("after ", observer::describe(&o.after, &m.after)),
    ]
}

fn fmt_change(m: &Metric) -> String {
    match (m.change_pct, m.before, m.after) {
        (Some(p), _, _) => format!("{p:+.0} %"),
        (None, Some(b), Some(a)) if b == 0.0 && a == 0.0 => "=".to_string(),
        (None, Some(_), Some(_)) => "new".to_string(),
        _ => "n/a".to_string(),
    }
}

fn write_text(s: &mut String, c: &Comparison) -> std::fmt::Result {
    writeln!(s, "zoneprof compare")?;
    for (label, r) in [("before", &c.before), ("after ", &c.after)] {
        writeln!(
            s,
            "  {label}: {}  {} (Linux {}), {} CPUs, {:.2} s",
            r.file, r.host, r.kernel, r.online_cpus, r.duration_s
        )?;
    }
    for w in &c.warnings {
        writeln!(s, "WARNING: {w}")?;
    }
    writeln!(s, "\nObserver cost under zone->lock")?;
    for (label, line) in observer_lines(c) {
        writeln!(s, "  {label}: {line}")?;
    }
    writeln!(s, "\nVerdict")?;
    for v in &c.verdict {
        writeln!(s, "  - {v}")?;
    }

    writeln!(s, "\nHeadlines (per second of recording)")?;
    writeln!(
        s,
        "  {:<34} {:>16} {:>16} {:>8}",
        "metric", "before", "after", "change"
    )?;
    for m in c
        .metrics
        .iter()
        .filter(|m| cpu_of_metric(&m.name).is_none())
    {
        if m.before.is_none() && m.after.is_none() {
            continue;
        }
        writeln!(
            s,
            "  {:<34} {:>16} {:>16} {:>8}",
            m.name,
            m.unit.fmt(m.before),
            m.unit.fmt(m.after),
            fmt_change(m)
        )?;
    }

    // Per CPU, one row per CPU with any activity on either side.
    let mut per_cpu: BTreeMap<u32, Vec<&Metric>> = BTreeMap::new();
    for m in &c.metrics {
        if let Some(cpu) = cpu_of_metric(&m.name) {
            per_cpu.entry(cpu).or_default().push(m);
        }
    }
    writeln!(s, "\nPer CPU (before → after, per second)")?;
    writeln!(
        s,
        "  {:>4} {:>25} {:>25} {:>27} {:>27}",
        "CPU", "zone alloc wait", "zone free wait", "PCP refill", "PCP drain"
    )?;
    let mut quiet = 0;
    for (cpu, ms) in &per_cpu {
        let find = |suffix: &str| ms.iter().find(|m| m.name.ends_with(suffix)).copied();
        let busy = ms
            .iter()
            .filter(|m| !m.name.ends_with("_pct"))
            .any(|m| m.before.unwrap_or(0.0) > 0.0 || m.after.unwrap_or(0.0) > 0.0);
        if !busy {
            quiet += 1;
            continue;
        }
        let cell = |suffix: &str| {
            find(suffix)
                .map(|m| format!("{} → {}", m.unit.fmt(m.before), m.unit.fmt(m.after)))
                .unwrap_or_else(|| "n/a".into())
        };
        writeln!(
            s,
            "  {:>4} {:>25} {:>25} {:>27} {:>27}",
            cpu,
            cell(".zone_lock_wait_alloc_ns_per_s"),
            cell(".zone_lock_wait_free_ns_per_s"),
            cell(".pcp_refill_pages_per_s"),
            cell(".pcp_drain_pages_per_s")
        )?;
    }
    if quiet > 0 {
        writeln!(
            s,
            "  ({quiet} CPUs with no activity in either recording not shown)"
        )?;
    }

    if !c.skb_sites.is_empty() {
        writeln!(
            s,
            "\nSKB free sites (frees/s and share freed on another CPU)"
        )?;
        for r in &c.skb_sites {
            let ratio = |x: Option<f64>| x.map_or("n/a".to_string(), |x| fmt_pct(100.0 * x));
            writeln!(
                s,
                "  {:<40} {:>14} {:>8} → {:>14} {:>8}",
                format!("{} ← {}", r.function, r.caller),
                Unit::PerS.fmt(r.before_frees_per_s),
                ratio(r.before_remote_ratio),
                Unit::PerS.fmt(r.after_frees_per_s),
                ratio(r.after_remote_ratio)
            )?;
        }
    }
    for (title, cells, unit) in [
        (
            "SKB alloc CPU → free CPU (SKBs/s)",
            &c.skb_matrix,
            Unit::PerS,
        ),
        (
            "Page alloc CPU → free CPU (pages/s, sampled)",
            &c.page_matrix,
            Unit::PagesPerS,
        ),
    ] {
        if cells.is_empty() {
            continue;
        }
        writeln!(s, "\n{title}")?;
        let mut rows: Vec<&CellRow> = cells.iter().collect();
        rows.sort_by(|x, y| {
            let k = |r: &CellRow| {
                r.before_per_s
                    .unwrap_or(0.0)
                    .max(r.after_per_s.unwrap_or(0.0))
            };
            k(y).total_cmp(&k(x))
        });
        for r in rows.iter().take(20) {
            writeln!(
                s,
                "  cpu{:<4} → cpu{:<4} {:>16} → {:>16}",
                r.alloc_cpu,
                r.free_cpu,
                unit.fmt(r.before_per_s),
                unit.fmt(r.after_per_s)
            )?;
        }
        if rows.len() > 20 {
            writeln!(s, "  ... {} more cells", rows.len() - 20)?;
        }
    }

    for (title, rows) in [
        (
            "Stacks that shrank most (lock wait per second)",
            &c.stacks_shrank,
        ),
        (
            "Stacks that grew most (lock wait per second)",
            &c.stacks_grew,
        ),
    ] {
        writeln!(s, "\n{title}")?;
        if rows.is_empty() {
            writeln!(s, "  (none)")?;
        }
        for d in rows {
            writeln!(
                s,
                "  {:>12} → {:>12}  {}",
                format!("{}/s", fmt_ns(d.before_ns_per_s as u64)),
                format!("{}/s", fmt_ns(d.after_ns_per_s as u64)),
                short_stack(&d.stack)
            )?;
        }
    }
    if !c.flamegraphs.is_empty() {
        writeln!(s, "\nDifferential flamegraphs")?;
        for f in &c.flamegraphs {
            writeln!(s, "  {f}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_pct_is_null_when_before_is_zero_or_unknown() {
        assert_eq!(change_pct(Some(0.0), Some(5.0)), None);
        assert_eq!(change_pct(None, Some(5.0)), None);
        assert_eq!(change_pct(Some(5.0), None), None);
        assert_eq!(change_pct(Some(200.0), Some(50.0)), Some(-75.0));
    }

    #[test]
    fn movement_words() {
        assert_eq!(movement(Unit::PerS, 0.0, 0.0), None);
        assert!(movement(Unit::PerS, 100.0, 7.0).is_some_and(|s| s.starts_with("fell 93 %")));
        assert!(movement(Unit::PerS, 1000.0, 1.0).is_some_and(|s| s.starts_with("fell 99.9 %")));
        assert!(movement(Unit::PerS, 1000.0, 0.0).is_some_and(|s| s.starts_with("fell 100 %")));
        assert!(movement(Unit::PerS, 100.0, 105.0).is_some_and(|s| s.starts_with("was unchanged")));
        assert!(movement(Unit::PerS, 100.0, 250.0).is_some_and(|s| s.starts_with("rose 150 %")));
        assert!(movement(Unit::PerS, 0.0, 3.0).is_some_and(|s| s.starts_with("appeared")));
    }

    #[test]
    fn cpu_metric_names() {
        assert_eq!(cpu_of_metric("cpu12.pcp_refill_pages_per_s"), Some(12));
        assert_eq!(cpu_of_metric("pcp_refill_pages_per_s"), None);
        assert_eq!(cpu_of_metric("cpux.y"), None);
    }

    #[test]
    fn differing_pcp_methods_warn_per_side() {
        let m = |refill, drain| PcpMethod { refill, drain };
        let (page, batch, off) = (PcpCount::Page, PcpCount::Batch, PcpCount::Off);
        assert!(pcp_method_warnings(&m(page, page), &m(page, page)).is_empty());
        assert_eq!(
            pcp_method_warnings(&m(page, page), &m(batch, page)),
            vec![
                "PCP refill counted per page in before, per batch in after: page counts compare, \
                 the observer cost under the lock does not"
                    .to_string()
            ]
        );
        let w = pcp_method_warnings(&m(batch, page), &m(batch, off));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "PCP drain counted per page in before, not counted in after: the observer"
            ),
            "{w:?}"
        );
    }

    #[test]
    fn short_stack_names_lock_and_taker() {
        assert_eq!(
            short_stack(
                "[zone->lock alloc];a;b;c;__rmqueue_pcplist;_raw_spin_lock;queued_spin_lock_slowpath"
            ),
            "[zone->lock alloc] __rmqueue_pcplist ← c ← b"
        );
        assert_eq!(short_stack("[rq lock];_raw_spin_lock"), "[rq lock]");
    }
}
