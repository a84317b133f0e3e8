//! The verdict: one sentence per headline the data supports, with its numbers. Each rule
//! reads the typed comparison; none invents a value a recording could not show.
use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    Comparison,
    metrics::{CpuMetric, MetricKey, Total, Unit},
    pair::Pair,
    rates::DEFER_FN,
    rows::{SiteRow, StackDelta},
};
use crate::model::units::fmt_ns;

/// A change smaller than this (percent) is reported as "unchanged" in the verdict.
const NOISE_PCT: f64 = 10.0;

/// Stack moves under this (1 ms/s, 0.1 % of one CPU) are scheduler noise, not a finding.
const STACK_NOISE_NS_PER_S: f64 = 1e6;

pub fn verdict(c: &Comparison) -> Vec<String> {
    let mut v = zone_wait(c);
    v.extend(pcp_traffic(c));
    let skb_both = c.rates.total(Total::SkbFrees).both().is_some();
    if skb_both {
        v.extend(remote_frees_by_caller(&c.skb_sites));
        v.extend(handoff_sentences(c));
        v.extend(free_mix(c));
    }
    v.extend(defer_and_matrices(c));
    v.extend(largest_stack_moves(&c.stacks_grew, &c.stacks_shrank));
    if v.is_empty() {
        v.push("nothing comparable: neither recording holds data both can show".to_string());
    }
    v
}

/// "fell 93 % (181.0 ms/s → 12.7 ms/s)", "rose …", "was unchanged (…)", "appeared (…)".
pub(super) fn movement(unit: Unit, v: Pair<f64>) -> Option<String> {
    let (b, a) = (v.before, v.after);
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

/// Zone-lock wait on each side, with its share of CPU time; or that there was none.
fn zone_wait(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    let get = |t: Total| c.rates.total(t).both();
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
        if let Some(mv) = get(ns).and_then(|p| movement(Unit::NsPerS, p)) {
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
    }
    if let (Some(alloc), Some(free)) = (get(Total::ZoneWaitAllocNs), get(Total::ZoneWaitFreeNs))
        && alloc.before + alloc.after + free.before + free.after == 0.0
    {
        v.push("no zone-lock contention in either recording".to_string());
    }
    v
}

/// PCP traffic: the CPU that refilled (drained) most before, and the all-CPU total.
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
            && let Some(mv) = movement(Unit::PagesPerS, p)
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
            .and_then(|p| movement(Unit::PagesPerS, p))
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

/// Remote SKB frees by caller (free functions merged), the three busiest callers.
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
        v.push(if (ra - rb).abs() < 5.0 {
            format!("remote SKB frees at {caller} stayed at {ra:.0} %")
        } else {
            let dir = if ra < rb { "fell from" } else { "rose from" };
            format!("remote SKB frees at {caller} {dir} {rb:.0} % to {ra:.0} %")
        });
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
        // Only a switch: direct frees before, deferral calls after (more than before).
        if direct.before.frees == 0.0 || deferred.after <= deferred.before {
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

/// Free-method mix shifts of 10 points or more.
fn free_mix(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    for row in c.rates.headlines() {
        let MetricKey::FreeShare(f) = row.key else {
            continue;
        };
        let (b, a) = (
            row.values.before.unwrap_or(0.0),
            row.values.after.unwrap_or(0.0),
        );
        if (a - b).abs() >= 0.10 {
            v.push(format!(
                "{f} share of SKB frees: {:.0} % → {:.0} %",
                100.0 * b,
                100.0 * a
            ));
        }
    }
    v
}

/// The defer ratio and its IPIs, and the matrices' cross-CPU shares.
fn defer_and_matrices(c: &Comparison) -> Vec<String> {
    let mut v = Vec::new();
    let get = |t: Total| c.rates.total(t).both();
    if let Some(p) = get(Total::DeferDeferredRatio) {
        v.push(format!(
            "skb_attempt_defer_free queued {:.0} % of its SKBs to the allocating CPU (was {:.0} %)",
            100.0 * p.after,
            100.0 * p.before
        ));
    }
    if let Some(mv) = get(Total::DeferIpis).and_then(|p| movement(Unit::PerS, p)) {
        v.push(format!(
            "defer-flush IPIs (the cost side of deferring) {mv}"
        ));
    }
    for (t, what) in [
        (
            Total::SkbMatrixCrossCpu,
            "SKBs freed on another CPU than allocated",
        ),
        (
            Total::PageMatrixCrossCpu,
            "pages freed on another CPU than allocated (sampled)",
        ),
    ] {
        if let Some(p) = get(t) {
            v.push(format!(
                "{what}: {:.0} % → {:.0} %",
                100.0 * p.before,
                100.0 * p.after
            ));
        }
    }
    v
}

/// The largest stack drop and rise, when they are not noise.
fn largest_stack_moves(grew: &[StackDelta], shrank: &[StackDelta]) -> Vec<String> {
    let drop = shrank
        .first()
        .filter(|s| s.change() <= -STACK_NOISE_NS_PER_S);
    let rise = grew.first().filter(|s| s.change() >= STACK_NOISE_NS_PER_S);
    [("largest drop", drop), ("largest rise", rise)]
        .into_iter()
        .filter_map(|(what, s)| {
            let s = s?;
            Some(format!(
                "{what}: {} ({}/s → {}/s)",
                short_stack(&s.stack),
                fmt_ns(s.ns_per_s.before as u64),
                fmt_ns(s.ns_per_s.after as u64)
            ))
        })
        .collect()
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
