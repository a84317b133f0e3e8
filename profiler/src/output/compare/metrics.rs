//! Each recording's headline rates, typed: totals by [`Total`], the free-method mix by free
//! function, per-CPU rates by CPU number. The documented names
//! (`zone_lock_wait_alloc_ns_per_s`, `cpu3.pcp_refill_pages_per_s`, …) exist only in
//! [`MetricKey::name`], for the JSON and the views.
use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use serde::Serialize;

use super::{observable::Observable, pair::Pair};
use crate::model::{
    analysis,
    observer::{self, ObserverCost},
    recording::{Recording, SkbDefer},
    units::{fmt_count, fmt_ns, fmt_pct},
};

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

/// A headline over all CPUs of a recording (docs/compare-json.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    ZoneWaitAllocNs,
    ZoneWaitFreeNs,
    ZoneWaitOtherNs,
    ZoneWaitNs,
    ZoneWaitAllocPct,
    ZoneWaitFreePct,
    OtherLockWaitNs,
    Contentions,
    PcpRefill,
    PcpDrain,
    SkbFrees,
    SkbRemoteRatio,
    SkbCrossNodeRatio,
    DeferCalls,
    DeferDeferred,
    DeferImmediate,
    DeferDeferredRatio,
    DeferFlushed,
    DeferIpis,
    SkbMatrixCrossCpu,
    PageMatrixCrossCpu,
}

impl Total {
    /// In the documented order; each one's index is its discriminant.
    pub const ALL: [Total; 21] = [
        Total::ZoneWaitAllocNs,
        Total::ZoneWaitFreeNs,
        Total::ZoneWaitOtherNs,
        Total::ZoneWaitNs,
        Total::ZoneWaitAllocPct,
        Total::ZoneWaitFreePct,
        Total::OtherLockWaitNs,
        Total::Contentions,
        Total::PcpRefill,
        Total::PcpDrain,
        Total::SkbFrees,
        Total::SkbRemoteRatio,
        Total::SkbCrossNodeRatio,
        Total::DeferCalls,
        Total::DeferDeferred,
        Total::DeferImmediate,
        Total::DeferDeferredRatio,
        Total::DeferFlushed,
        Total::DeferIpis,
        Total::SkbMatrixCrossCpu,
        Total::PageMatrixCrossCpu,
    ];

    /// The documented list puts the free-method shares after this many totals.
    const BEFORE_FREE_SHARES: usize = Total::DeferCalls as usize;

    pub fn name(self) -> &'static str {
        self.spec().0
    }

    pub fn unit(self) -> Unit {
        self.spec().1
    }

    fn spec(self) -> (&'static str, Unit) {
        use Unit::*;
        match self {
            Total::ZoneWaitAllocNs => ("zone_lock_wait_alloc_ns_per_s", NsPerS),
            Total::ZoneWaitFreeNs => ("zone_lock_wait_free_ns_per_s", NsPerS),
            Total::ZoneWaitOtherNs => ("zone_lock_wait_other_ns_per_s", NsPerS),
            Total::ZoneWaitNs => ("zone_lock_wait_ns_per_s", NsPerS),
            Total::ZoneWaitAllocPct => ("zone_lock_wait_alloc_pct_of_cpu", Pct),
            Total::ZoneWaitFreePct => ("zone_lock_wait_free_pct_of_cpu", Pct),
            Total::OtherLockWaitNs => ("other_lock_wait_ns_per_s", NsPerS),
            Total::Contentions => ("contentions_per_s", PerS),
            Total::PcpRefill => ("pcp_refill_pages_per_s", PagesPerS),
            Total::PcpDrain => ("pcp_drain_pages_per_s", PagesPerS),
            Total::SkbFrees => ("skb_frees_per_s", PerS),
            Total::SkbRemoteRatio => ("skb_remote_free_ratio", Ratio),
            Total::SkbCrossNodeRatio => ("skb_cross_node_free_ratio", Ratio),
            Total::DeferCalls => ("skb_defer_calls_per_s", PerS),
            Total::DeferDeferred => ("skb_defer_deferred_per_s", PerS),
            Total::DeferImmediate => ("skb_defer_immediate_per_s", PerS),
            Total::DeferDeferredRatio => ("skb_defer_deferred_ratio", Ratio),
            Total::DeferFlushed => ("skb_defer_flushed_per_s", PerS),
            Total::DeferIpis => ("skb_defer_ipis_per_s", PerS),
            Total::SkbMatrixCrossCpu => ("skb_matrix_cross_cpu_ratio", Ratio),
            Total::PageMatrixCrossCpu => ("page_matrix_cross_cpu_ratio", Ratio),
        }
    }
}

/// A rate of one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMetric {
    ZoneWaitAllocNs,
    ZoneWaitFreeNs,
    ZoneWaitAllocPct,
    ZoneWaitFreePct,
    PcpRefill,
    PcpDrain,
}

impl CpuMetric {
    /// In the documented order; each one's index is its discriminant.
    pub const ALL: [CpuMetric; 6] = [
        CpuMetric::ZoneWaitAllocNs,
        CpuMetric::ZoneWaitFreeNs,
        CpuMetric::ZoneWaitAllocPct,
        CpuMetric::ZoneWaitFreePct,
        CpuMetric::PcpRefill,
        CpuMetric::PcpDrain,
    ];

    /// The name after `cpuN.`.
    pub fn suffix(self) -> &'static str {
        match self {
            CpuMetric::ZoneWaitAllocNs => "zone_lock_wait_alloc_ns_per_s",
            CpuMetric::ZoneWaitFreeNs => "zone_lock_wait_free_ns_per_s",
            CpuMetric::ZoneWaitAllocPct => "zone_lock_wait_alloc_pct",
            CpuMetric::ZoneWaitFreePct => "zone_lock_wait_free_pct",
            CpuMetric::PcpRefill => "pcp_refill_pages_per_s",
            CpuMetric::PcpDrain => "pcp_drain_pages_per_s",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            CpuMetric::ZoneWaitAllocNs | CpuMetric::ZoneWaitFreeNs => Unit::NsPerS,
            CpuMetric::ZoneWaitAllocPct | CpuMetric::ZoneWaitFreePct => Unit::Pct,
            CpuMetric::PcpRefill | CpuMetric::PcpDrain => Unit::PagesPerS,
        }
    }
}

/// One CPU's rates; None = the recording could not observe it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuRates([Option<f64>; CpuMetric::ALL.len()]);

impl CpuRates {
    pub fn get(&self, m: CpuMetric) -> Option<f64> {
        self.0[m as usize]
    }
}

/// One recording's rates, per second of recording; None = it could not observe that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    totals: [Option<f64>; Total::ALL.len()],
    /// Share of SKB free calls per free function (hand-offs included).
    pub free_share: BTreeMap<String, Option<f64>>,
    /// Every recorded CPU and any CPU with data.
    pub per_cpu: BTreeMap<u32, CpuRates>,
}

/// Counts to rates over one recording's length.
#[derive(Clone, Copy)]
struct PerS(f64);

impl PerS {
    fn of(self, v: u64) -> f64 {
        if self.0 > 0.0 { v as f64 / self.0 } else { 0.0 }
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Rates {
    pub fn total(&self, t: Total) -> Option<f64> {
        self.totals[t as usize]
    }

    /// The rates of one recording, and its observer cost (from the same classified waits).
    pub fn of(rec: &Recording) -> (Rates, ObserverCost) {
        let obs = Observable::of(rec);
        let per_s = PerS(rec.duration_s());
        let waits = analysis::classify_waits(rec);
        let cost = observer::cost(rec, &waits);
        let cpu_wait = analysis::per_cpu_wait(&waits);
        let mut r = Rates::default();
        let totals = lock_totals(rec, &obs, per_s, &waits, &cpu_wait)
            .into_iter()
            .chain(pcp_totals(rec, &obs, per_s))
            .chain(skb_totals(rec, &obs, per_s))
            .chain(defer_totals(&rec.skb_defer, &obs, per_s))
            .chain(matrix_totals(rec, &obs));
        for (t, v) in totals {
            r.totals[t as usize] = v;
        }
        r.free_share = free_shares(rec);
        r.per_cpu = per_cpu(rec, &obs, per_s, &cpu_wait);
        (r, cost)
    }
}

fn lock_totals(
    rec: &Recording,
    obs: &Observable,
    per_s: PerS,
    waits: &[analysis::ClassifiedWait<'_>],
    cpu_wait: &BTreeMap<u32, analysis::CpuWait>,
) -> [(Total, Option<f64>); 8] {
    let zone = analysis::zone_totals(waits);
    let other: u64 = cpu_wait.values().map(|c| c.other_ns).sum();
    let contentions: u64 = cpu_wait.values().map(|c| c.contentions).sum();
    let ncpus = rec.cpus.len().max(1) as f64;
    let pct_all = |ns: u64| 100.0 * per_s.of(ns) / 1e9 / ncpus;
    let when = |v: f64| obs.locks.then_some(v);
    [
        (Total::ZoneWaitAllocNs, when(per_s.of(zone.alloc))),
        (Total::ZoneWaitFreeNs, when(per_s.of(zone.free))),
        (Total::ZoneWaitOtherNs, when(per_s.of(zone.other))),
        (Total::ZoneWaitNs, when(per_s.of(zone.total()))),
        (Total::ZoneWaitAllocPct, when(pct_all(zone.alloc))),
        (Total::ZoneWaitFreePct, when(pct_all(zone.free))),
        (Total::OtherLockWaitNs, when(per_s.of(other))),
        (Total::Contentions, when(per_s.of(contentions))),
    ]
}

fn pcp_totals(rec: &Recording, obs: &Observable, per_s: PerS) -> [(Total, Option<f64>); 2] {
    let refill: u64 = rec.pcp.iter().map(|p| p.refill_pages).sum();
    let drain: u64 = rec.pcp.iter().map(|p| p.drain_pages).sum();
    [
        (Total::PcpRefill, obs.refill.then_some(per_s.of(refill))),
        (Total::PcpDrain, obs.drain.then_some(per_s.of(drain))),
    ]
}

/// The free function whose calls hand an SKB back to its allocating CPU.
pub(super) const DEFER_FN: &str = "skb_attempt_defer_free";

fn skb_totals(rec: &Recording, obs: &Observable, per_s: PerS) -> [(Total, Option<f64>); 3] {
    // skb_attempt_defer_free calls hand an SKB to its allocating CPU, which frees it later
    // (counted there by consume_skb): they are not frees, so they stay out of these ratios.
    let real_frees = || rec.skb_sites.iter().filter(|s| s.function != DEFER_FN);
    let frees: u64 = real_frees().map(|s| s.count).sum();
    let remote: u64 = real_frees().map(|s| s.remote.min(s.count)).sum();
    let cross: u64 = real_frees().map(|s| s.cross_node.min(s.count)).sum();
    let ok = obs.skb;
    [
        (Total::SkbFrees, ok.then_some(per_s.of(frees))),
        (
            Total::SkbRemoteRatio,
            ok.then(|| ratio(remote, frees)).flatten(),
        ),
        (
            Total::SkbCrossNodeRatio,
            ok.then(|| ratio(cross, frees)).flatten(),
        ),
    ]
}

/// The free-method mix: share of calls per free function (hand-offs included).
fn free_shares(rec: &Recording) -> BTreeMap<String, Option<f64>> {
    let all_calls: u64 = rec.skb_sites.iter().map(|s| s.count).sum();
    let mut by_fn: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &rec.skb_sites {
        *by_fn.entry(s.function.as_str()).or_default() += s.count;
    }
    by_fn
        .into_iter()
        .map(|(f, n)| (f.to_string(), ratio(n, all_calls)))
        .collect()
}

fn defer_totals(d: &[SkbDefer], obs: &Observable, per_s: PerS) -> [(Total, Option<f64>); 6] {
    let sum = |f: fn(&SkbDefer) -> u64| d.iter().map(f).sum::<u64>();
    let (calls, deferred, immediate) =
        (sum(|x| x.calls), sum(|x| x.deferred), sum(|x| x.immediate));
    let (od, oc) = (obs.defer, obs.defer_cost);
    [
        (Total::DeferCalls, od.then_some(per_s.of(calls))),
        (Total::DeferDeferred, od.then_some(per_s.of(deferred))),
        (Total::DeferImmediate, od.then_some(per_s.of(immediate))),
        (
            Total::DeferDeferredRatio,
            od.then(|| ratio(deferred, deferred + immediate)).flatten(),
        ),
        (
            Total::DeferFlushed,
            oc.then_some(per_s.of(sum(|x| x.flushed))),
        ),
        (Total::DeferIpis, oc.then_some(per_s.of(sum(|x| x.ipis)))),
    ]
}

fn matrix_totals(rec: &Recording, obs: &Observable) -> [(Total, Option<f64>); 2] {
    let skb = rec
        .skb_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.count));
    let pages = rec
        .page_matrix
        .iter()
        .map(|c| (c.alloc_cpu, c.free_cpu, c.pages));
    [
        (
            Total::SkbMatrixCrossCpu,
            obs.skb_matrix.then(|| off_diagonal(skb)).flatten(),
        ),
        (
            Total::PageMatrixCrossCpu,
            obs.page_matrix.then(|| off_diagonal(pages)).flatten(),
        ),
    ]
}

/// Share of (alloc CPU, free CPU, count) cells freed on another CPU than allocated.
fn off_diagonal(cells: impl Iterator<Item = (u32, u32, u64)>) -> Option<f64> {
    let (mut all, mut off) = (0u64, 0u64);
    for (alloc, free, n) in cells {
        all += n;
        if alloc != free {
            off += n;
        }
    }
    ratio(off, all)
}

/// Per CPU: every recorded CPU and any CPU with data.
fn per_cpu(
    rec: &Recording,
    obs: &Observable,
    per_s: PerS,
    cpu_wait: &BTreeMap<u32, analysis::CpuWait>,
) -> BTreeMap<u32, CpuRates> {
    let pcp: BTreeMap<u32, _> = rec.pcp.iter().map(|p| (p.cpu, p)).collect();
    let mut cpus: BTreeSet<u32> = rec.cpus.iter().copied().collect();
    cpus.extend(cpu_wait.keys().copied());
    cpus.extend(pcp.keys().copied());
    let pct = |ns: u64| 100.0 * per_s.of(ns) / 1e9;
    let l = obs.locks;
    cpus.into_iter()
        .map(|cpu| {
            let w = cpu_wait.get(&cpu).map(|c| c.zone).unwrap_or_default();
            let p = pcp.get(&cpu);
            let rates = CpuRates([
                l.then_some(per_s.of(w.alloc)),
                l.then_some(per_s.of(w.free)),
                l.then_some(pct(w.alloc)),
                l.then_some(pct(w.free)),
                obs.refill
                    .then_some(per_s.of(p.map_or(0, |p| p.refill_pages))),
                obs.drain
                    .then_some(per_s.of(p.map_or(0, |p| p.drain_pages))),
            ]);
            (cpu, rates)
        })
        .collect()
}

/// What a metric row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKey<'a> {
    Total(Total),
    /// `skb_free_share.<function>`.
    FreeShare(&'a str),
    Cpu(u32, CpuMetric),
}

impl MetricKey<'_> {
    /// The documented name, as the JSON and the headline tables print it.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            MetricKey::Total(t) => Cow::Borrowed(t.name()),
            MetricKey::FreeShare(f) => Cow::Owned(format!("skb_free_share.{f}")),
            MetricKey::Cpu(cpu, m) => Cow::Owned(format!("cpu{cpu}.{}", m.suffix())),
        }
    }

    pub fn unit(&self) -> Unit {
        match self {
            MetricKey::Total(t) => t.unit(),
            MetricKey::FreeShare(_) => Unit::Ratio,
            MetricKey::Cpu(_, m) => m.unit(),
        }
    }
}

/// One metric of both recordings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRow<'a> {
    pub key: MetricKey<'a>,
    pub values: Pair<Option<f64>>,
}

impl Pair<Rates> {
    pub fn total(&self, t: Total) -> Pair<Option<f64>> {
        self.as_ref().map(|r| r.total(t))
    }

    /// CPUs either recording has rates for, in order.
    pub fn cpus(&self) -> BTreeSet<u32> {
        let keys = self.before.per_cpu.keys().chain(self.after.per_cpu.keys());
        keys.copied().collect()
    }

    /// A CPU's rate; None on a side that has no such CPU.
    pub fn cpu(&self, cpu: u32, m: CpuMetric) -> Pair<Option<f64>> {
        self.as_ref()
            .map(|r| r.per_cpu.get(&cpu).and_then(|c| c.get(m)))
    }

    /// Each free function's share: BEFORE's functions first, then those only AFTER has.
    pub fn free_shares(&self) -> Vec<(&str, Pair<Option<f64>>)> {
        let (b, a) = (&self.before.free_share, &self.after.free_share);
        let after_only = a.keys().filter(|f| !b.contains_key(*f));
        b.keys()
            .chain(after_only)
            .map(|f| {
                let share = |m: &BTreeMap<String, Option<f64>>| m.get(f).copied().flatten();
                (f.as_str(), Pair::new(share(b), share(a)))
            })
            .collect()
    }

    /// The all-CPU metrics in the documented order: the totals, with BEFORE's free-function
    /// shares after the SKB ratios and the functions only AFTER has after all the totals.
    pub fn headlines<'a>(&'a self) -> Vec<MetricRow<'a>> {
        let total = |&t: &Total| MetricRow {
            key: MetricKey::Total(t),
            values: self.total(t),
        };
        let shares = self.free_shares();
        let (before_had, after_only) = shares.split_at(self.before.free_share.len());
        let share = |&(f, values): &(&'a str, Pair<Option<f64>>)| MetricRow {
            key: MetricKey::FreeShare(f),
            values,
        };
        let (head, tail) = Total::ALL.split_at(Total::BEFORE_FREE_SHARES);
        let mut rows: Vec<MetricRow<'a>> = head.iter().map(total).collect();
        rows.extend(before_had.iter().map(share));
        rows.extend(tail.iter().map(total));
        rows.extend(after_only.iter().map(share));
        rows
    }

    /// Every metric in the documented order: the headlines, then per CPU in CPU order.
    pub fn rows(&self) -> Vec<MetricRow<'_>> {
        let mut rows = self.headlines();
        for cpu in self.cpus() {
            rows.extend(CpuMetric::ALL.iter().map(|&m| MetricRow {
                key: MetricKey::Cpu(cpu, m),
                values: self.cpu(cpu, m),
            }));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_index_the_tables() {
        for (i, t) in Total::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
        for (i, m) in CpuMetric::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i, "{m:?}");
        }
        assert_eq!(
            Total::ALL[Total::BEFORE_FREE_SHARES - 1],
            Total::SkbCrossNodeRatio
        );
    }

    #[test]
    fn names_are_made_from_keys() {
        assert_eq!(
            MetricKey::Cpu(12, CpuMetric::PcpRefill).name(),
            "cpu12.pcp_refill_pages_per_s"
        );
        assert_eq!(
            MetricKey::FreeShare("kfree_skb").name(),
            "skb_free_share.kfree_skb"
        );
        assert_eq!(MetricKey::Total(Total::Contentions).unit(), Unit::PerS);
    }

    #[test]
    fn free_shares_only_after_has_come_last() {
        let rates = |fs: &[&str]| Rates {
            free_share: fs.iter().map(|f| (f.to_string(), Some(0.5))).collect(),
            ..Rates::default()
        };
        let p = Pair::new(
            rates(&["kfree_skb", "consume_skb"]),
            rates(&["a_new", "kfree_skb"]),
        );
        let names: Vec<_> = p.headlines().iter().map(|r| r.key.name()).collect();
        let at = |n: &str| names.iter().position(|x| x == n).expect(n);
        assert_eq!(at("skb_free_share.consume_skb"), Total::BEFORE_FREE_SHARES);
        assert_eq!(
            at("skb_free_share.kfree_skb"),
            Total::BEFORE_FREE_SHARES + 1
        );
        assert_eq!(at("skb_free_share.a_new"), names.len() - 1);
        assert_eq!(
            p.free_shares()[0],
            ("consume_skb", Pair::new(Some(0.5), None))
        );
    }
}
