//! The verdict: one sentence per headline that moved materially (`material`), zone-lock
//! first (its wait, what explains it, its stacks), with its numbers. Each rule reads the
//! typed comparison; none invents a value a recording could not show.
use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    Comparison,
    material::{self, PCP_FLOOR_PAGES_PER_S, SKB_FLOOR_PER_S},
    metrics::{CpuMetric, MetricKey, Total, Unit},
    pair::Pair,
    rates::DEFER_FN,
    rows::{CellRow, SiteRow, StackDelta, is_zone_stack},
};
use crate::model::units::fmt_ns;

/// A change smaller than this (percent) reads "was unchanged".
const NOISE_PCT: f64 = material::MIN_CHANGE_PCT;

pub fn verdict(c: &Comparison) -> Vec<String> {
    // Zone-lock first: its wait, what explains it, its stacks.
    let mut v = zone_wait(c);
    v.extend(blame(c));
    v.extend(zone_stack_moves(c));
    v.extend(pcp_traffic(c));
    let skb_both = c.rates.total(Total::SkbFrees).both().is_some();
    if skb_both {
        v.extend(remote_frees_by_caller(&c.skb_sites));
        v.extend(handoff_sentences(c));
        v.extend(free_mix(c));
    }
    v.extend(defer_and_matrices(c));
    v.extend(other_lock_stack_moves(c));
    if v.is_empty() {
        let comparable = c.rates.rows().iter().any(|m| m.values.both().is_some());
        v.push(if comparable {
            "nothing moved materially between the recordings".to_string()
        } else {
            "nothing comparable: neither recording holds data both can show".to_string()
        });
    }
    v
}

/// "before → after" in `unit`.
fn span(unit: Unit, v: Pair<f64>) -> String {
    format!("{} → {}", unit.fmt(Some(v.before)), unit.fmt(Some(v.after)))
}

/// "was unchanged (181.0 ms/s → 178.2 ms/s, -2 %)".
fn unchanged(unit: Unit, v: Pair<f64>) -> String {
    let pct = if v.before != 0.0 {
        format!(", {:+.0} %", 100.0 * (v.after - v.before) / v.before)
    } else {
        String::new()
    };
    format!("was unchanged ({}{pct})", span(unit, v))
}

/// "fell 93 % (181.0 ms/s → 12.7 ms/s)", "rose …", "was unchanged (…)", "appeared (…)".
pub(super) fn movement(unit: Unit, v: Pair<f64>) -> Option<String> {
    let (b, a) = (v.before, v.after);
    let span = span(unit, v);
    if b == 0.0 && a == 0.0 {
        return None;
    }
    if b == 0.0 {
        return Some(format!("appeared ({span})"));
    }
    let pct = 100.0 * (a - b) / b;
    Some(if pct.abs() < NOISE_PCT {
        unchanged(unit, v)
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

/// [`movement`] of a rate that moved materially (over `floor`); None otherwise.
fn moved(unit: Unit, v: Pair<f64>, floor: f64) -> Option<String> {
    material::rate_moved(v, floor)
        .then(|| movement(unit, v))
        .flatten()
}

/// Zone-lock wait on each side, with its share of CPU time: stated when it is material on
/// either recording, moved or not (the subject: "unchanged" is a finding); else that there
/// was none, or none worth a sentence.
fn zone_wait(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    let get = |t: Total| c.rates.total(t).both();
    let mut largest: Option<f64> = None;
    for (ns, pct, what) in [
        (
            Total::ZoneWaitAllocNs,
            Total::ZoneWaitAllocPct,
            "zone-lock wait on the allocation side",
        ),
        (
            Total::ZoneWaitFreeNs,
            Total::ZoneWaitFreePct,
            "zone-lock wait on the free side",
        ),
    ] {
        let Some(p) = get(ns) else {
            continue;
        };
        largest = Some(largest.unwrap_or(0.0).max(p.max()));
        if !material::zone_wait_material(p) {
            continue;
        }
        let mv = moved(Unit::NsPerS, p, material::ZONE_WAIT_FLOOR_NS_PER_S)
            .unwrap_or_else(|| unchanged(Unit::NsPerS, p));
        let share = get(pct)
            .map(|p| {
                format!(
                    "; {:.2} % → {:.2} % of recorded CPU time",
                    p.before, p.after
                )
            })
            .unwrap_or_default();
        v.push(format!("{what} {mv}{share}"));
    }
    match largest {
        Some(0.0) => v.push("no zone-lock contention in either recording".to_string()),
        Some(x) if v.is_empty() => v.push(format!(
            "zone-lock wait was negligible in both recordings (at most {}/s on a side, under \
             the {}/s floor)",
            fmt_ns(x.round() as u64),
            fmt_ns(material::ZONE_WAIT_FLOOR_NS_PER_S as u64)
        )),
        _ => {}
    }
    v
}

/// How much of the zone-lock wait cross-CPU frees explain (model/blame.rs), before and
/// after, and the share of the pair BEFORE blamed most; when the zone-lock wait is material
/// and that share moved.
fn blame(c: &Comparison) -> Option<String> {
    let zone = c.rates.total(Total::ZoneWaitNs).both()?;
    if !material::zone_wait_material(zone) {
        return None;
    }
    let b = &c.blame;
    let (sb, sa) = (&b.sides.before, &b.sides.after);
    let moved = sb.source.or(sa.source)?.moved();
    let pair = |side_share: Option<f64>| {
        let (a, f) = b.pair?;
        Some(format!("{a} → {f}, {:.0} %", side_share?))
    };
    match (sb.explained_pct, sa.explained_pct) {
        (Some(x), Some(y)) => {
            if !material::share_moved(Pair::new(x, y), zone, material::ZONE_WAIT_FLOOR_NS_PER_S) {
                return None;
            }
            let dir = if y < x { "fell" } else { "rose" };
            let mut s = format!(
                "share of zone-lock wait explained by {moved} freed away from their allocating \
                 CPU {dir} from {x:.0} % to {y:.0} %"
            );
            if let (Some((a, f)), Some(pb), Some(pa)) =
                (b.pair, b.pair_share_pct.before, b.pair_share_pct.after)
            {
                let _ = write!(s, "; pair {a} → {f}: {pb:.0} % → {pa:.0} % of the wait");
            }
            Some(s)
        }
        // One side explains a material share, the other has source but no wait left.
        (Some(x), None) if x >= material::MIN_POINTS && sa.source.is_some() => Some(format!(
            "before, {x:.0} % of zone-lock wait was explained by {moved} freed away from their \
             allocating CPU (top pair {}); after, no zone-lock wait was left to attribute",
            pair(b.pair_share_pct.before).unwrap_or_else(|| "none".into())
        )),
        (None, Some(y)) if y >= material::MIN_POINTS && sb.source.is_some() => Some(format!(
            "after, {y:.0} % of zone-lock wait is explained by {moved} freed away from their \
             allocating CPU (top pair {}); before, there was no zone-lock wait to attribute",
            pair(b.pair_share_pct.after).unwrap_or_else(|| "none".into())
        )),
        _ => None,
    }
}

/// All lock wait (zone and other locks) per second of each recording; 0 where unknown.
fn all_lock_wait(c: &Comparison) -> Pair<f64> {
    let z = c.rates.total(Total::ZoneWaitNs);
    let o = c.rates.total(Total::OtherLockWaitNs);
    Pair::new(
        z.before.unwrap_or(0.0) + o.before.unwrap_or(0.0),
        z.after.unwrap_or(0.0) + o.after.unwrap_or(0.0),
    )
}

/// "largest zone-lock stack drop: [zone->lock alloc] … (1.2 ms/s → 3.0 µs/s)".
fn stack_sentence(what: &str, s: &StackDelta) -> String {
    format!(
        "{what}: {} ({}/s → {}/s)",
        short_stack(&s.stack),
        fmt_ns(s.ns_per_s.before as u64),
        fmt_ns(s.ns_per_s.after as u64)
    )
}

/// The zone-lock stack that dropped most and the one that rose most, when material.
fn zone_stack_moves(c: &Comparison) -> Vec<String> {
    let all = all_lock_wait(c);
    [
        ("largest zone-lock stack drop", &c.zone_stack_shrank),
        ("largest zone-lock stack rise", &c.zone_stack_grew),
    ]
    .into_iter()
    .filter_map(|(what, s)| {
        let s = s.as_ref()?;
        material::stack_moved(s, true, all).then(|| stack_sentence(what, s))
    })
    .collect()
}

/// Another lock's largest drop and rise, when they pass its floor and share of the wait.
fn other_lock_stack_moves(c: &Comparison) -> Vec<String> {
    let all = all_lock_wait(c);
    [
        ("largest drop on another lock", &c.stacks_shrank),
        ("largest rise on another lock", &c.stacks_grew),
    ]
    .into_iter()
    .filter_map(|(what, list)| {
        // The lists are ordered by change: the first other-lock stack moved most.
        let s = list.iter().find(|s| !is_zone_stack(&s.stack))?;
        material::stack_moved(s, false, all).then(|| stack_sentence(what, s))
    })
    .collect()
}

/// PCP traffic: the CPU that refilled (drained) most before, and the all-CPU total, when
/// they moved materially.
fn pcp_traffic(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    for (per_cpu, total, what) in [
        (CpuMetric::PcpRefill, Total::PcpRefill, "PCP refills"),
        (CpuMetric::PcpDrain, Total::PcpDrain, "PCP drains"),
    ] {
        let busiest = c
            .rates
            .cpus()
            .into_iter()
            .filter_map(|cpu| Some((cpu, c.rates.cpu(cpu, per_cpu).both()?)))
            // Ties go to the lowest CPU.
            .max_by(|x, y| x.1.before.total_cmp(&y.1.before).then(y.0.cmp(&x.0)));
        if let Some((cpu, p)) = busiest
            && let Some(mv) = moved(Unit::PagesPerS, p, PCP_FLOOR_PAGES_PER_S)
        {
            v.push(format!("{what} on CPU {cpu} {mv}"));
        }
        // The all-CPU line only when it says more than the busiest CPU's.
        let all = c.rates.total(total).both();
        let same = busiest.is_some_and(|(_, cp)| {
            all.is_some_and(|p| {
                (p.before - cp.before).abs() < 0.5 && (p.after - cp.after).abs() < 0.5
            })
        });
        if let Some(mv) = all
            .filter(|_| !same)
            .and_then(|p| moved(Unit::PagesPerS, p, PCP_FLOOR_PAGES_PER_S))
        {
            v.push(format!("{what} on all CPUs {mv}"));
        }
    }
    v
}

/// SKB frees per second and how many of them were remote, summed over free functions.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    frees: f64,
    remote: f64,
}

impl Flow {
    fn add(&mut self, frees: f64, remote_ratio: Option<f64>) {
        self.frees += frees;
        self.remote += frees * remote_ratio.unwrap_or(0.0);
    }
}

/// Adds one site's frees and remote frees to its caller's flow.
fn add_site(flow: &mut Pair<Flow>, site: &SiteRow) {
    let frees = site.frees_per_s.map(|f| f.unwrap_or(0.0));
    flow.before.add(frees.before, site.remote_ratio.before);
    flow.after.add(frees.after, site.remote_ratio.after);
}

/// Remote SKB frees by caller (free functions merged), of the three busiest callers, where
/// the remote share moved materially.
fn remote_frees_by_caller(sites: &[SiteRow]) -> Vec<String> {
    // `skb_attempt_defer_free` calls are left out: a call with a remote alloc CPU is a
    // hand-off back to that CPU, not a remote free, so counting it would read "stayed at
    // 100 %" exactly when the frees moved; those callers get their own sentence.
    let mut by_caller: BTreeMap<&str, Pair<Flow>> = BTreeMap::new();
    for s in sites.iter().filter(|s| s.function != DEFER_FN) {
        add_site(by_caller.entry(s.caller.as_str()).or_default(), s);
    }
    let mut callers: Vec<_> = by_caller.into_iter().collect();
    let busy = |f: &Pair<Flow>| f.before.frees + f.after.frees;
    callers.sort_by(|x, y| busy(&y.1).total_cmp(&busy(&x.1)));
    let mut v = Vec::new();
    for (caller, f) in callers.into_iter().take(3) {
        let (b, a) = (f.before, f.after);
        if b.frees == 0.0 || a.frees == 0.0 {
            continue;
        }
        let (rb, ra) = (100.0 * b.remote / b.frees, 100.0 * a.remote / a.frees);
        let frees = Pair::new(b.frees, a.frees);
        if !material::share_moved(Pair::new(rb, ra), frees, SKB_FLOOR_PER_S) {
            continue;
        }
        let dir = if ra < rb { "fell from" } else { "rose from" };
        v.push(format!(
            "remote SKB frees at {caller} {dir} {rb:.0} % to {ra:.0} %"
        ));
    }
    v
}

/// Callers that freed SKBs directly before and hand them to `skb_attempt_defer_free` after
/// (the tun patch: `tun_do_read`), one sentence each: the direct frees before/after with
/// their remote share, the deferral calls, the share queued back to the allocating CPU,
/// and the deferred-list flushes that freed them there.
fn handoff_sentences(c: &Comparison) -> Vec<String> {
    let rate = |x: Option<f64>| x.unwrap_or(0.0);
    let mut callers: Vec<&str> = c
        .skb_sites
        .iter()
        .filter(|s| s.function == DEFER_FN && rate(s.frees_per_s.after) > 0.0)
        .map(|s| s.caller.as_str())
        .collect();
    callers.sort_unstable();
    callers.dedup();
    let mut out = Vec::new();
    for caller in callers {
        let (mut direct, mut deferred) = (Pair::<Flow>::default(), Pair::<f64>::default());
        for s in c.skb_sites.iter().filter(|s| s.caller == caller) {
            if s.function == DEFER_FN {
                deferred.before += rate(s.frees_per_s.before);
                deferred.after += rate(s.frees_per_s.after);
            } else {
                add_site(&mut direct, s);
            }
        }
        // Only a switch: direct frees before, deferral calls after (more than before, and
        // enough to matter).
        if direct.before.frees == 0.0
            || deferred.after <= deferred.before
            || deferred.after < SKB_FLOOR_PER_S
        {
            continue;
        }
        out.push(handoff_sentence(c, caller, direct, deferred.after));
    }
    out
}

fn handoff_sentence(c: &Comparison, caller: &str, direct: Pair<Flow>, calls: f64) -> String {
    let share = |part: f64, whole: f64| {
        if whole > 0.0 {
            format!("{:.0} %", 100.0 * part / whole)
        } else {
            "n/a".to_string()
        }
    };
    let (b, a) = (direct.before, direct.after);
    let mut sent = format!(
        "SKB frees at {caller} moved to the allocating CPU: its direct frees fell from {} \
         ({} on another CPU than allocated) to {}",
        Unit::PerS.fmt(Some(b.frees)),
        share(b.remote, b.frees),
        Unit::PerS.fmt(Some(a.frees))
    );
    if a.frees > 0.0 {
        let _ = write!(sent, " ({} remote)", share(a.remote, a.frees));
    }
    let _ = write!(
        sent,
        "; it calls skb_attempt_defer_free {}",
        Unit::PerS.fmt(Some(calls))
    );
    if let Some(q) = c.rates.total(Total::DeferDeferredRatio).after {
        let _ = write!(
            sent,
            ", {:.0} % queued back to the allocating CPU",
            100.0 * q
        );
    }
    if let Some(f) = c.rates.total(Total::DeferFlushed).after {
        let _ = write!(
            sent,
            "; the deferred-list flush freed {} there ({} of the calls",
            Unit::PerS.fmt(Some(f)),
            share(f.min(calls), calls)
        );
        sent.push_str(if f < calls {
            "; the rest were freed at once where they were read, e.g. with the defer \
             list full, or were still queued)"
        } else {
            ")"
        });
    }
    sent
}

/// Free-method mix shifts of 10 points or more, over a material number of frees.
fn free_mix(c: &Comparison) -> Vec<String> {
    let frees = c.rates.total(Total::SkbFrees).both().unwrap_or_default();
    let mut v = Vec::new();
    for row in c.rates.headlines() {
        let MetricKey::FreeShare(f) = row.key else {
            continue;
        };
        let (b, a) = (
            row.values.before.unwrap_or(0.0),
            row.values.after.unwrap_or(0.0),
        );
        if material::share_moved(Pair::new(100.0 * b, 100.0 * a), frees, SKB_FLOOR_PER_S) {
            v.push(format!(
                "{f} share of SKB frees: {:.0} % → {:.0} %",
                100.0 * b,
                100.0 * a
            ));
        }
    }
    v
}

/// Per second through each side of a matrix (all its cells).
fn matrix_volume(cells: &[CellRow]) -> Pair<f64> {
    cells.iter().fold(Pair::default(), |acc, c| {
        Pair::new(
            acc.before + c.per_s.before.unwrap_or(0.0),
            acc.after + c.per_s.after.unwrap_or(0.0),
        )
    })
}

/// The defer ratio and its IPIs, and the matrices' cross-CPU shares, when they moved
/// materially.
fn defer_and_matrices(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    let get = |t: Total| c.rates.total(t).both();
    if let Some(p) = get(Total::DeferDeferredRatio) {
        let calls = get(Total::DeferCalls).unwrap_or_default();
        let pct = Pair::new(100.0 * p.before, 100.0 * p.after);
        if material::share_moved(pct, calls, SKB_FLOOR_PER_S) {
            v.push(format!(
                "skb_attempt_defer_free queued {:.0} % of its SKBs to the allocating CPU (was {:.0} %)",
                pct.after, pct.before
            ));
        }
    }
    if let Some(mv) = get(Total::DeferIpis).and_then(|p| moved(Unit::PerS, p, SKB_FLOOR_PER_S)) {
        v.push(format!(
            "defer-flush IPIs (the cost side of deferring) {mv}"
        ));
    }
    for (t, cells, floor, what) in [
        (
            Total::SkbMatrixCrossCpu,
            &c.skb_matrix,
            SKB_FLOOR_PER_S,
            "SKBs freed on another CPU than allocated",
        ),
        (
            Total::PageMatrixCrossCpu,
            &c.page_matrix,
            PCP_FLOOR_PAGES_PER_S,
            "pages freed on another CPU than allocated (sampled)",
        ),
    ] {
        if let Some(p) = get(t) {
            let pct = Pair::new(100.0 * p.before, 100.0 * p.after);
            if material::share_moved(pct, matrix_volume(cells), floor) {
                v.push(format!("{what}: {:.0} % → {:.0} %", pct.before, pct.after));
            }
        }
    }
    v
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{blame::Source, recording::sample};

    /// A comparison of two copies of the sample recording with nothing in it that moved:
    /// each test sets what it is about.
    fn base() -> Comparison {
        let mut r = sample();
        r.lock_waits.clear();
        r.pcp.clear();
        r.skb_matrix.clear();
        let mut c = super::super::compare(Pair::new(&r, &r), Pair::new("b", "a"), 5);
        c.rates.before.per_cpu.clear();
        c.rates.after.per_cpu.clear();
        c
    }

    fn set(c: &mut Comparison, t: Total, before: f64, after: f64) {
        c.rates.before.set(t, Some(before));
        c.rates.after.set(t, Some(after));
    }

    fn stack(name: &str, before: f64, after: f64) -> StackDelta {
        StackDelta {
            stack: name.into(),
            ns_per_s: Pair::new(before, after),
        }
    }

    fn site(function: &str, caller: &str, frees: (f64, f64), remote: (f64, f64)) -> SiteRow {
        SiteRow {
            function: function.into(),
            caller: caller.into(),
            frees_per_s: Pair::new(Some(frees.0), Some(frees.1)),
            remote_ratio: Pair::new(Some(remote.0), Some(remote.1)),
        }
    }

    #[test]
    fn nothing_that_moved_says_so() {
        let mut c = base();
        set(&mut c, Total::PcpRefill, 4_000.0, 4_000.0);
        assert_eq!(
            verdict(&c),
            ["nothing moved materially between the recordings"]
        );
    }

    #[test]
    fn zone_wait_above_its_floor_is_stated_moved_or_not() {
        let mut c = base();
        set(&mut c, Total::ZoneWaitAllocNs, 3e6, 3.1e6);
        set(&mut c, Total::ZoneWaitFreeNs, 6e6, 0.0);
        let v = verdict(&c);
        assert!(
            v[0].starts_with(
                "zone-lock wait on the allocation side was unchanged (3.0 ms/s → 3.1 ms/s, +3 %)"
            ),
            "{v:?}"
        );
        assert!(
            v[1].starts_with("zone-lock wait on the free side fell 100 % (6.0 ms/s → 0 ns/s)"),
            "{v:?}"
        );
        // 20 % of 150 µs/s is 30 µs/s: under the floor, so unchanged, not "fell 20 %".
        set(&mut c, Total::ZoneWaitFreeNs, 150e3, 120e3);
        let v = verdict(&c);
        assert!(
            v[1].contains("free side was unchanged (150.0 µs/s"),
            "{v:?}"
        );
    }

    #[test]
    fn negligible_zone_wait_is_one_sentence() {
        let mut c = base();
        set(&mut c, Total::ZoneWaitAllocNs, 40_200.0, 0.0);
        set(&mut c, Total::ZoneWaitFreeNs, 953.0, 0.0);
        assert_eq!(
            verdict(&c),
            [
                "zone-lock wait was negligible in both recordings (at most 40.2 µs/s on a side, \
                 under the 100.0 µs/s floor)"
            ]
        );
        set(&mut c, Total::ZoneWaitAllocNs, 0.0, 0.0);
        set(&mut c, Total::ZoneWaitFreeNs, 0.0, 0.0);
        assert_eq!(verdict(&c), ["no zone-lock contention in either recording"]);
    }

    /// The loaded demo listed "remote SKB frees at netlink_broadcast_filtered stayed at
    /// 0 %" (5 frees/s): a share that did not move, of nothing.
    #[test]
    fn remote_frees_that_did_not_move_are_left_out() {
        let mut c = base();
        set(&mut c, Total::SkbFrees, 3_804.0, 21_786.0);
        c.skb_sites = vec![
            site(
                "consume_skb",
                "tun_do_read",
                (3_795.0, 21_778.0),
                (1.0, 0.0),
            ),
            site(
                "consume_skb",
                "netlink_broadcast_filtered",
                (5.0, 6.0),
                (0.0, 0.0),
            ),
            // Busy, but 5 points is no move.
            site(
                "consume_skb",
                "napi_consume_skb",
                (9_000.0, 9_000.0),
                (0.40, 0.45),
            ),
            // All remote after, but 10 frees/s.
            site("kfree_skb", "netlink_recvmsg", (10.0, 10.0), (0.0, 1.0)),
        ];
        let v = verdict(&c);
        assert_eq!(
            v,
            ["remote SKB frees at tun_do_read fell from 100 % to 0 %"],
            "{v:?}"
        );
    }

    /// The loaded demo's "largest drop" was a wait-queue lock (60 µs/s) and, on another run,
    /// mmap_lock at 8.2 ms/s: zone-lock stacks come first, other locks need 1 % of a CPU
    /// and a tenth of all lock wait.
    #[test]
    fn other_lock_stacks_need_their_floor_and_share_and_zone_comes_first() {
        let mut c = base();
        set(&mut c, Total::ZoneWaitNs, 426e3, 0.0);
        set(&mut c, Total::OtherLockWaitNs, 15.2e6, 1.1e6);
        let mmap = "[mmap_lock];__x64_sys_madvise;do_madvise;madvise_lock;down_write";
        let wq = "[wait queue lock];do_sys_poll;poll_freewait;remove_wait_queue;_raw_spin_lock";
        let zone = "[zone->lock alloc];__alloc_frozen_pages_noprof;get_page_from_freelist;\
                    __rmqueue_pcplist;_raw_spin_lock_irqsave";
        c.stacks_shrank = vec![
            stack(mmap, 8.2e6, 0.0),
            stack(zone, 201.1e3, 0.0),
            stack(wq, 60.5e3, 0.0),
        ];
        c.zone_stack_shrank = Some(stack(zone, 201.1e3, 0.0));
        let v = verdict(&c);
        assert_eq!(
            v,
            [
                "largest zone-lock stack drop: [zone->lock alloc] __rmqueue_pcplist ← \
                 get_page_from_freelist ← __alloc_frozen_pages_noprof (201.1 µs/s → 0 ns/s)"
            ],
            "{v:?}"
        );
        // The wait-queue lock alone, even the largest move: still left out.
        c.stacks_shrank = vec![stack(wq, 5e6, 0.0)];
        c.zone_stack_shrank = None;
        assert!(
            !verdict(&c).iter().any(|s| s.contains("wait queue lock")),
            "{:?}",
            verdict(&c)
        );
        // 82.7 ms/s of mmap_lock out of 200 ms/s of lock wait: material, after zone-lock.
        set(&mut c, Total::OtherLockWaitNs, 200.4e6, 8.6e6);
        c.stacks_shrank = vec![stack(mmap, 82.7e6, 0.0)];
        let v = verdict(&c);
        assert_eq!(
            v.last().map(String::as_str),
            Some(
                "largest drop on another lock: [mmap_lock] madvise_lock ← do_madvise ← \
                 __x64_sys_madvise (82.7 ms/s → 0 ns/s)"
            ),
            "{v:?}"
        );
    }

    #[test]
    fn pcp_traffic_only_when_it_moved() {
        let mut c = base();
        set(&mut c, Total::PcpDrain, 4_000.0, 4_000.0);
        set(&mut c, Total::PcpRefill, 45_196.0, 2_729.0);
        assert_eq!(
            verdict(&c),
            ["PCP refills on all CPUs fell 94 % (45,196 pg/s → 2,729 pg/s)"]
        );
        // 50 % of 600 pages/s is under the 1,000 pages/s floor.
        set(&mut c, Total::PcpRefill, 600.0, 300.0);
        assert_eq!(
            verdict(&c),
            ["nothing moved materially between the recordings"]
        );
    }

    #[test]
    fn matrix_shares_need_traffic_behind_them() {
        let mut c = base();
        set(&mut c, Total::SkbMatrixCrossCpu, 1.0, 0.0);
        let cell = |a, f, b: f64, af: f64| CellRow {
            alloc_cpu: a,
            free_cpu: f,
            per_s: Pair::new(Some(b), Some(af)),
        };
        // 3 SKBs/s in all: 100 % → 0 % of nothing.
        c.skb_matrix = vec![cell(0, 1, 3.0, 0.0), cell(0, 0, 0.0, 3.0)];
        assert!(!verdict(&c).iter().any(|s| s.starts_with("SKBs freed")));
        c.skb_matrix = vec![cell(0, 1, 3_795.0, 0.0), cell(0, 0, 1.0, 21_783.0)];
        assert!(
            verdict(&c)
                .iter()
                .any(|s| s == "SKBs freed on another CPU than allocated: 100 % → 0 %")
        );
    }

    #[test]
    fn defer_ratio_and_mix_need_calls_behind_them() {
        let mut c = base();
        set(&mut c, Total::DeferDeferredRatio, 0.40, 0.99);
        set(&mut c, Total::DeferCalls, 5.0, 50.0);
        assert!(!verdict(&c).iter().any(|s| s.contains("queued")));
        set(&mut c, Total::DeferCalls, 5.0, 500.0);
        assert!(verdict(&c).iter().any(|s| s
            == "skb_attempt_defer_free queued 99 % of its SKBs to the allocating CPU (was 40 %)"));
        // The free-method mix: a shift of 52 points, of 6 frees/s, then of 7,500/s.
        let shares = |v: &[(&str, f64)]| {
            v.iter()
                .map(|&(f, x)| (f.to_string(), Some(x)))
                .collect::<BTreeMap<_, _>>()
        };
        c.rates.before.free_share = shares(&[("consume_skb", 1.0)]);
        c.rates.after.free_share = shares(&[("consume_skb", 0.48), (DEFER_FN, 0.52)]);
        set(&mut c, Total::SkbFrees, 5.0, 6.0);
        assert!(!verdict(&c).iter().any(|s| s.contains("share of SKB frees")));
        set(&mut c, Total::SkbFrees, 5_000.0, 7_500.0);
        let v = verdict(&c);
        assert!(
            v.iter()
                .any(|s| s == "skb_attempt_defer_free share of SKB frees: 0 % → 52 %"),
            "{v:?}"
        );
    }

    #[test]
    fn blame_sentence_when_the_explained_share_moves_over_material_wait() {
        let mut c = base();
        set(&mut c, Total::ZoneWaitNs, 1.8e6, 1.6e6);
        let side = |x: f64| super::super::BlameSide {
            source: Some(Source::PageFlows),
            sample_one_in: Some(64),
            headline: String::new(),
            explained_pct: Some(x),
            cross_cpu_ns_per_s: Some(0.0),
            top_pair: Some((0, 1)),
            top_pair_share_pct: Some(x),
            samples: 1_000,
            cross_node_pct: None,
        };
        c.blame.sides = Pair::new(side(95.7), side(3.2));
        c.blame.pair = Some((0, 1));
        c.blame.pair_share_pct = Pair::new(Some(95.4), Some(1.0));
        assert_eq!(
            blame(&c).as_deref(),
            Some(
                "share of zone-lock wait explained by pages freed away from their allocating \
                 CPU fell from 96 % to 3 %; pair 0 → 1: 95 % → 1 % of the wait"
            )
        );
        // Under 10 points: no sentence.
        c.blame.sides.after.explained_pct = Some(90.0);
        assert_eq!(blame(&c), None);
        // AFTER has no zone-lock wait left.
        c.blame.sides.after.explained_pct = None;
        c.blame.pair_share_pct.after = None;
        assert_eq!(
            blame(&c).as_deref(),
            Some(
                "before, 96 % of zone-lock wait was explained by pages freed away from their \
                 allocating CPU (top pair 0 → 1, 95 %); after, no zone-lock wait was left to \
                 attribute"
            )
        );
        // Negligible zone-lock wait: nothing to explain.
        set(&mut c, Total::ZoneWaitNs, 40e3, 0.0);
        assert_eq!(blame(&c), None);
    }

    #[test]
    fn movement_words() {
        let m = |b, a| movement(Unit::PerS, Pair::new(b, a));
        assert_eq!(m(0.0, 0.0), None);
        assert!(m(100.0, 7.0).is_some_and(|s| s.starts_with("fell 93 %")));
        assert!(m(1000.0, 1.0).is_some_and(|s| s.starts_with("fell 99.9 %")));
        assert!(m(1000.0, 0.0).is_some_and(|s| s.starts_with("fell 100 %")));
        assert!(m(100.0, 105.0).is_some_and(|s| s.starts_with("was unchanged")));
        assert!(m(100.0, 250.0).is_some_and(|s| s.starts_with("rose 150 %")));
        assert!(m(0.0, 3.0).is_some_and(|s| s.starts_with("appeared")));
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

    #[test]
    fn remote_frees_per_caller_leave_hand_offs_out() {
        let site = |function: &str, frees: (f64, f64), remote: (f64, f64)| SiteRow {
            function: function.into(),
            caller: "tun_do_read".into(),
            frees_per_s: Pair::new(Some(frees.0), Some(frees.1)),
            remote_ratio: Pair::new(Some(remote.0), Some(remote.1)),
        };
        let v = remote_frees_by_caller(&[
            site("consume_skb", (100.0, 100.0), (0.9, 0.1)),
            site(DEFER_FN, (0.0, 500.0), (0.0, 1.0)),
        ]);
        assert_eq!(
            v,
            ["remote SKB frees at tun_do_read fell from 90 % to 10 %"]
        );
    }
}
