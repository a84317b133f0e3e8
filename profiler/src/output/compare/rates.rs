//! One recording's rates per second, computed from its tables: the totals, the free-method
//! mix and each CPU's rates. None = the recording could not observe that (its probe did
//! not attach): `null` in the JSON, never 0.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    metrics::{CpuMetric, Total},
    observable::Observable,
};
use crate::model::{
    analysis,
    observer::{self, ObserverCost},
    recording::{Recording, SkbDefer},
    units::SatSum,
};

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

/// Counts to rates over one recording's length (seconds); 0 for a recording of no length.
#[derive(Clone, Copy)]
pub(super) struct PerS(pub(super) f64);

impl PerS {
    pub(super) fn of(self, v: u64) -> f64 {
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

    /// Sets one total (tests of the rules that read them).
    #[cfg(test)]
    pub(super) fn set(&mut self, t: Total, v: Option<f64>) {
        self.totals[t as usize] = v;
    }

    /// The rates of one recording whose waits are `waits`, and its observer cost.
    pub fn of(rec: &Recording, waits: &[analysis::ClassifiedWait<'_>]) -> (Rates, ObserverCost) {
        let obs = Observable::of(rec);
        let per_s = PerS(rec.duration_s());
        let cost = observer::cost(rec, waits);
        let cpu_wait = analysis::per_cpu_wait(waits);
        let mut r = Rates::default();
        let totals = lock_totals(rec, &obs, per_s, waits, &cpu_wait)
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
    let other: u64 = cpu_wait.values().map(|c| c.other_ns).sat_sum();
    let contentions: u64 = cpu_wait.values().map(|c| c.contentions).sat_sum();
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
    let refill: u64 = rec.pcp.iter().map(|p| p.refill_pages).sat_sum();
    let drain: u64 = rec.pcp.iter().map(|p| p.drain_pages).sat_sum();
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
    let frees: u64 = real_frees().map(|s| s.count).sat_sum();
    let remote: u64 = real_frees().map(|s| s.remote.min(s.count)).sat_sum();
    let cross: u64 = real_frees().map(|s| s.cross_node.min(s.count)).sat_sum();
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
    let all_calls: u64 = rec.skb_sites.iter().map(|s| s.count).sat_sum();
    let mut by_fn: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &rec.skb_sites {
        let n = by_fn.entry(s.function.as_str()).or_default();
        *n = n.saturating_add(s.count);
    }
    by_fn
        .into_iter()
        .map(|(f, n)| (f.to_string(), ratio(n, all_calls)))
        .collect()
}

fn defer_totals(d: &[SkbDefer], obs: &Observable, per_s: PerS) -> [(Total, Option<f64>); 6] {
    let sum = |f: fn(&SkbDefer) -> u64| d.iter().map(f).sat_sum();
    let (calls, deferred, immediate) =
        (sum(|x| x.calls), sum(|x| x.deferred), sum(|x| x.immediate));
    let (od, oc) = (obs.defer, obs.defer_cost);
    [
        (Total::DeferCalls, od.then_some(per_s.of(calls))),
        (Total::DeferDeferred, od.then_some(per_s.of(deferred))),
        (Total::DeferImmediate, od.then_some(per_s.of(immediate))),
        (
            Total::DeferDeferredRatio,
            od.then(|| ratio(deferred, deferred.saturating_add(immediate)))
                .flatten(),
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
        all = all.saturating_add(n);
        if alloc != free {
            off = off.saturating_add(n);
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
