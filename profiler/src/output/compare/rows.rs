//! The comparison's tables: SKB free sites, alloc-CPU × free-CPU cells, and the lock-wait
//! stacks that changed most, each row a [`Pair`] of rates.
use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet},
};

use super::{observable::Observable, pair::Pair, rates::PerS};
use crate::{model::recording::Recording, output::flamegraph::Folded};

/// One SKB free site (free function called from caller), all CPUs summed.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    pub function: String,
    pub caller: String,
    /// None on a side that could not see SKB frees.
    pub frees_per_s: Pair<Option<f64>>,
    /// remote / count: share freed on another CPU than the one that allocated; None
    /// without frees.
    pub remote_ratio: Pair<Option<f64>>,
}

/// One alloc-CPU × free-CPU matrix cell, per second.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRow {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    /// None on a side that could not see the matrix.
    pub per_s: Pair<Option<f64>>,
}

/// A lock-wait stack (all CPUs), root first as in folded output, per second.
#[derive(Debug, Clone, PartialEq)]
pub struct StackDelta {
    pub stack: String,
    pub ns_per_s: Pair<f64>,
}

impl StackDelta {
    /// after - before, ns per second.
    pub fn change(&self) -> f64 {
        self.ns_per_s.delta()
    }
}

/// Lock-wait stacks that changed, BEFORE to AFTER.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackMoves {
    /// The `top` stacks that grew most and that shrank most (all locks).
    pub grew: Vec<StackDelta>,
    pub shrank: Vec<StackDelta>,
    /// The zone-lock stack that grew most and the one that shrank most, even when other
    /// locks' stacks fill the lists above.
    pub zone_grew: Option<StackDelta>,
    pub zone_shrank: Option<StackDelta>,
}

/// A folded lock stack (View::Locks) whose lock is a zone lock: its first frame is the
/// class, `[zone->lock …]`.
pub fn is_zone_stack(stack: &str) -> bool {
    stack.starts_with("[zone->lock")
}

/// The stacks that grew and shrank most: `top` each over all locks, and the zone lock's.
pub fn stack_deltas(f: Pair<&Folded>, top: usize) -> StackMoves {
    let all = join_stacks(f);
    let change = |r: &(&str, Pair<f64>)| r.1.delta();
    let row = |r: &(&str, Pair<f64>)| StackDelta {
        stack: r.0.to_string(),
        ns_per_s: r.1,
    };
    let shrinking = || all.iter().filter(|r| change(r) < 0.0);
    let growing = || all.iter().rev().filter(|r| change(r) > 0.0);
    let zone = |r: &&(&str, Pair<f64>)| is_zone_stack(r.0);
    StackMoves {
        shrank: shrinking().take(top).map(row).collect(),
        grew: growing().take(top).map(row).collect(),
        zone_shrank: shrinking().find(zone).map(row),
        zone_grew: growing().find(zone).map(row),
    }
}

/// Every stack of either side with both values, ordered by change (stable: equal changes
/// stay in stack order).
fn join_stacks(f: Pair<&Folded>) -> Vec<(&str, Pair<f64>)> {
    // Both maps are sorted, so one walk joins them; only the rows kept are copied out.
    let (b, a) = (f.before, f.after);
    let mut all = Vec::with_capacity(b.stacks.len().max(a.stacks.len()));
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
        all.push((stack, Pair::new(val(bv), val(av))));
    }
    all.sort_by(|x, y| x.1.delta().total_cmp(&y.1.delta()));
    all
}

/// Frees and remote frees at one site.
#[derive(Debug, Clone, Copy, Default)]
struct SiteCount {
    frees: u64,
    remote: u64,
}

/// Per (function, caller).
fn sites(rec: &Recording) -> BTreeMap<(String, String), SiteCount> {
    let mut m: BTreeMap<(String, String), SiteCount> = BTreeMap::new();
    for s in &rec.skb_sites {
        let e = m.entry((s.function.clone(), s.caller.clone())).or_default();
        e.frees = e.frees.saturating_add(s.count);
        e.remote = e.remote.saturating_add(s.remote.min(s.count));
    }
    m
}

/// Every site of either recording, busiest first.
pub fn site_rows(recs: Pair<&Recording>) -> Vec<SiteRow> {
    let observable = recs.map(|r| Observable::of(r).skb);
    let counts = recs.map(sites);
    let keys: BTreeSet<&(String, String)> =
        counts.before.keys().chain(counts.after.keys()).collect();
    let mut rows: Vec<SiteRow> = keys
        .into_iter()
        .map(|k| {
            let n = counts
                .as_ref()
                .map(|c| c.get(k).copied().unwrap_or_default());
            let frees = recs
                .zip(observable)
                .zip(n)
                .map(|((rec, ok), n)| ok.then(|| PerS(rec.duration_s()).of(n.frees)));
            SiteRow {
                function: k.0.clone(),
                caller: k.1.clone(),
                frees_per_s: frees,
                remote_ratio: n.map(|n| (n.frees > 0).then(|| n.remote as f64 / n.frees as f64)),
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        let key = |r: &SiteRow| r.frees_per_s.map(|v| v.unwrap_or(0.0)).max();
        key(y).total_cmp(&key(x))
    });
    rows
}

/// One recording's alloc-CPU × free-CPU counts, as its matrix cells give them.
pub struct Matrix {
    /// ((alloc CPU, free CPU), count).
    pub cells: Vec<((u32, u32), u64)>,
    /// The recording could see this matrix (else its side is None, not 0).
    pub observable: bool,
    /// Its length, to make rates.
    pub secs: f64,
}

impl Matrix {
    pub fn skb(rec: &Recording) -> Matrix {
        Matrix {
            cells: rec
                .skb_matrix
                .iter()
                .map(|c| ((c.alloc_cpu, c.free_cpu), c.count))
                .collect(),
            observable: Observable::of(rec).skb_matrix,
            secs: rec.duration_s(),
        }
    }

    pub fn pages(rec: &Recording) -> Matrix {
        Matrix {
            cells: rec
                .page_matrix
                .iter()
                .map(|c| ((c.alloc_cpu, c.free_cpu), c.pages))
                .collect(),
            observable: Observable::of(rec).page_matrix,
            secs: rec.duration_s(),
        }
    }
}

/// Every cell of either matrix, in (alloc CPU, free CPU) order.
pub fn cell_rows(m: Pair<Matrix>) -> Vec<CellRow> {
    let mut joined: BTreeMap<(u32, u32), Pair<u64>> = BTreeMap::new();
    for &(k, n) in &m.before.cells {
        let e = joined.entry(k).or_default();
        e.before = e.before.saturating_add(n);
    }
    for &(k, n) in &m.after.cells {
        let e = joined.entry(k).or_default();
        e.after = e.after.saturating_add(n);
    }
    let rate = |m: &Matrix, n: u64| m.observable.then(|| PerS(m.secs).of(n));
    joined
        .into_iter()
        .map(|((alloc_cpu, free_cpu), n)| CellRow {
            alloc_cpu,
            free_cpu,
            per_s: Pair::new(rate(&m.before, n.before), rate(&m.after, n.after)),
        })
        .collect()
}
