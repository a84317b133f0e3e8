//! What the comparison measures, typed: totals by [`Total`], per-CPU rates by [`CpuMetric`]
//! and CPU number, and the free-method mix by free function; the documented names
//! (`zone_lock_wait_alloc_ns_per_s`, `cpu3.pcp_refill_pages_per_s`, …) exist only in
//! [`MetricKey::name`], for the JSON and the views; and both recordings' [`Rates`] read
//! side by side, in the documented order.
use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use serde::Serialize;

use super::{pair::Pair, rates::Rates};
use crate::model::units::{fmt_count, fmt_ns, fmt_pct};

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
        let rates = |fs: &[&str]| {
            let mut r = Rates::default();
            r.free_share = fs.iter().map(|f| (f.to_string(), Some(0.5))).collect();
            r
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
