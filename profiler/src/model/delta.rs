//! The recording of the interval between two snapshots of one live session
//! (`capture::live`): every count of the later one less the earlier one's.
//!
//! Both snapshots share the session's stack table (it only grows), so stack indices mean
//! the same in both; the result carries the later snapshot's tables, probes and labels.
//! Rows whose counts did not move are dropped. Maxima cannot be subtracted: a row's
//! `max_ns` is the largest wait since attach.
//!
//! [`scaled`] is the other arithmetic on every count of a recording: all of them times a
//! factor (`serve --replay`, which plays a recording's rates back as a growing session).
use std::collections::HashMap;

use crate::model::recording::{
    Counters, CpuPages, HistEntry, LockWait, ObserverStats, PageCell, PageTracking,
    ProgramRunStats, Recording, SkbCell, SkbDefer, SkbSite,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaError {
    #[error(
        "the snapshots are not of one live session (the earlier one has {earlier} stacks, the later {later})"
    )]
    NotOneSession { earlier: usize, later: usize },
    #[error("the snapshots are in the wrong order (the later one is older)")]
    WrongOrder,
}

/// `cur` less `prev`, for `prev` taken earlier in the same live session.
pub fn delta(prev: &Recording, cur: &Recording) -> Result<Recording, DeltaError> {
    if cur.stacks.len() < prev.stacks.len() || cur.frames.len() < prev.frames.len() {
        return Err(DeltaError::NotOneSession {
            earlier: prev.stacks.len(),
            later: cur.stacks.len(),
        });
    }
    if cur.duration_ns < prev.duration_ns {
        return Err(DeltaError::WrongOrder);
    }
    Ok(Recording {
        start_unix_ms: prev.start_unix_ms + prev.duration_ns / 1_000_000,
        duration_ns: cur.duration_ns - prev.duration_ns,
        lock_waits: lock_waits(&prev.lock_waits, &cur.lock_waits),
        wait_hist: rows(
            &prev.wait_hist,
            &cur.wait_hist,
            |h| (h.stack, h.bucket),
            |c, p| HistEntry {
                count: c.count.saturating_sub(p.count),
                ..c.clone()
            },
            |h| h.count > 0,
        ),
        pcp: rows(
            &prev.pcp,
            &cur.pcp,
            |p| p.cpu,
            |c, p| cpu_pages(c, p, u64::saturating_sub),
            |p| {
                *p != CpuPages {
                    cpu: p.cpu,
                    ..Default::default()
                }
            },
        ),
        counters: counters(&cur.counters, &prev.counters, u64::saturating_sub),
        skb_matrix: rows(
            &prev.skb_matrix,
            &cur.skb_matrix,
            |c| (c.alloc_cpu, c.free_cpu),
            |c, p| SkbCell {
                count: c.count.saturating_sub(p.count),
                ..c.clone()
            },
            |c| c.count > 0,
        ),
        skb_sites: rows(
            &prev.skb_sites,
            &cur.skb_sites,
            |s| (s.function.clone(), s.caller.clone(), s.cpu, s.tid),
            |c, p| SkbSite {
                count: c.count.saturating_sub(p.count),
                remote: c.remote.saturating_sub(p.remote),
                cross_node: c.cross_node.saturating_sub(p.cross_node),
                ..c.clone()
            },
            |s| s.count > 0,
        ),
        skb_defer: rows(
            &prev.skb_defer,
            &cur.skb_defer,
            |d| d.cpu,
            |c, p| skb_defer(c, p, u64::saturating_sub),
            |d| {
                *d != SkbDefer {
                    cpu: d.cpu,
                    ..Default::default()
                }
            },
        ),
        page_matrix: rows(
            &prev.page_matrix,
            &cur.page_matrix,
            |c| (c.alloc_cpu, c.free_cpu),
            |c, p| PageCell {
                pages: c.pages.saturating_sub(p.pages),
                ..c.clone()
            },
            |c| c.pages > 0,
        ),
        page_tracking: match (&prev.page_tracking, &cur.page_tracking) {
            (Some(p), Some(c)) => Some(page_tracking(p, c)),
            (_, c) => c.clone(),
        },
        observer: match (&prev.observer, &cur.observer) {
            (Some(p), Some(c)) => Some(observer(p, c)),
            (_, c) => c.clone(),
        },
        ..cur.clone()
    })
}

/// `rec` with every count times `num / den` (rounded down, so a count never shrinks as
/// `num` grows) and its duration `duration_ns`: the recording of a session that ran
/// `num / den` times as long at the same rates. Maxima (`max_ns`) and labels are kept.
/// `den` 0 is taken as 1.
pub fn scaled(rec: &Recording, num: u64, den: u64, duration_ns: u64) -> Recording {
    let den = u128::from(den.max(1));
    let k = |v: &mut u64| {
        *v = u64::try_from(u128::from(*v) * u128::from(num) / den).unwrap_or(u64::MAX);
    };
    // The row helpers combine two rows; here both are the one row.
    let f = |v: u64, _: u64| {
        let mut v = v;
        k(&mut v);
        v
    };
    let mut r = rec.clone();
    r.duration_ns = duration_ns;
    for w in &mut r.lock_waits {
        k(&mut w.count);
        k(&mut w.total_ns);
    }
    r.wait_hist.iter_mut().for_each(|h| k(&mut h.count));
    for p in &mut r.pcp {
        *p = cpu_pages(p, p, f);
    }
    r.counters = counters(&r.counters, &r.counters, f);
    r.skb_matrix.iter_mut().for_each(|c| k(&mut c.count));
    for s in &mut r.skb_sites {
        k(&mut s.count);
        k(&mut s.remote);
        k(&mut s.cross_node);
    }
    for d in &mut r.skb_defer {
        *d = skb_defer(d, d, f);
    }
    r.page_matrix.iter_mut().for_each(|c| k(&mut c.pages));
    if let Some(t) = &mut r.page_tracking {
        t.pages_by_order.iter_mut().for_each(k);
        t.lifetime_hist.iter_mut().for_each(|(_, n)| k(n));
        k(&mut t.map_full);
    }
    if let Some(o) = &mut r.observer {
        for p in &mut o.programs {
            k(&mut p.runs);
            k(&mut p.run_ns);
        }
    }
    r
}

/// The rows of `cur` less the row of `prev` with the same key (none: all of it), kept when
/// `keep` says they moved. `cur`'s order is kept.
fn rows<T: Clone, K: std::hash::Hash + Eq>(
    prev: &[T],
    cur: &[T],
    key: impl Fn(&T) -> K,
    sub: impl Fn(&T, &T) -> T,
    keep: impl Fn(&T) -> bool,
) -> Vec<T> {
    let before: HashMap<K, &T> = prev.iter().map(|p| (key(p), p)).collect();
    cur.iter()
        .map(|c| match before.get(&key(c)) {
            Some(p) => sub(c, p),
            None => c.clone(),
        })
        .filter(|r| keep(r))
        .collect()
}

fn lock_waits(prev: &[LockWait], cur: &[LockWait]) -> Vec<LockWait> {
    let mut out = rows(
        prev,
        cur,
        |w| (w.stack, w.stack_error, w.cpu, w.lock_addr, w.tid),
        |c, p| LockWait {
            count: c.count.saturating_sub(p.count),
            total_ns: c.total_ns.saturating_sub(p.total_ns),
            ..c.clone()
        },
        |w| w.count > 0 || w.total_ns > 0,
    );
    // The readback's order, by this interval's wait.
    out.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.cpu.cmp(&b.cpu)));
    out
}

/// `f(cur, prev)` of every count of a row (`u64::saturating_sub` for a delta).
fn cpu_pages(c: &CpuPages, p: &CpuPages, d: impl Fn(u64, u64) -> u64) -> CpuPages {
    CpuPages {
        cpu: c.cpu,
        refill_events: d(c.refill_events, p.refill_events),
        refill_pages: d(c.refill_pages, p.refill_pages),
        buddy_events: d(c.buddy_events, p.buddy_events),
        buddy_pages: d(c.buddy_pages, p.buddy_pages),
        drain_events: d(c.drain_events, p.drain_events),
        drain_pages: d(c.drain_pages, p.drain_pages),
        rmqueue_calls: d(c.rmqueue_calls, p.rmqueue_calls),
        rmqueue_ns: d(c.rmqueue_ns, p.rmqueue_ns),
        bulk_free_calls: d(c.bulk_free_calls, p.bulk_free_calls),
        bulk_free_pages: d(c.bulk_free_pages, p.bulk_free_pages),
        refill_batch_pages: d(c.refill_batch_pages, p.refill_batch_pages),
        refill_batches: d(c.refill_batches, p.refill_batches),
    }
}

fn skb_defer(c: &SkbDefer, p: &SkbDefer, d: impl Fn(u64, u64) -> u64) -> SkbDefer {
    SkbDefer {
        cpu: c.cpu,
        calls: d(c.calls, p.calls),
        deferred: d(c.deferred, p.deferred),
        immediate: d(c.immediate, p.immediate),
        flushed: d(c.flushed, p.flushed),
        ipis: d(c.ipis, p.ipis),
    }
}

fn counters(c: &Counters, p: &Counters, d: impl Fn(u64, u64) -> u64) -> Counters {
    Counters {
        contention_begin: d(c.contention_begin, p.contention_begin),
        contention_end: d(c.contention_end, p.contention_end),
        end_without_begin: d(c.end_without_begin, p.end_without_begin),
        nest_overflow: d(c.nest_overflow, p.nest_overflow),
        begin_without_end: d(c.begin_without_end, p.begin_without_end),
        stack_collisions: d(c.stack_collisions, p.stack_collisions),
        stack_errors: d(c.stack_errors, p.stack_errors),
        lock_map_full: d(c.lock_map_full, p.lock_map_full),
        lost_wait_ns: d(c.lost_wait_ns, p.lost_wait_ns),
        hist_map_full: d(c.hist_map_full, p.hist_map_full),
        task_map_full: d(c.task_map_full, p.task_map_full),
        zone_cache_full: d(c.zone_cache_full, p.zone_cache_full),
        zone_wait_ns: d(c.zone_wait_ns, p.zone_wait_ns),
        zone_contentions: d(c.zone_contentions, p.zone_contentions),
        total_wait_ns: d(c.total_wait_ns, p.total_wait_ns),
        page_read_errors: d(c.page_read_errors, p.page_read_errors),
        unsymbolized_frames: d(c.unsymbolized_frames, p.unsymbolized_frames),
        skb_frees: d(c.skb_frees, p.skb_frees),
        skb_read_errors: d(c.skb_read_errors, p.skb_read_errors),
        skb_map_full: d(c.skb_map_full, p.skb_map_full),
        skb_defer_ipis: d(c.skb_defer_ipis, p.skb_defer_ipis),
        page_track_full: d(c.page_track_full, p.page_track_full),
        page_matrix_full: d(c.page_matrix_full, p.page_matrix_full),
        rmqueue_unmatched: d(c.rmqueue_unmatched, p.rmqueue_unmatched),
        bulk_free_unmatched: d(c.bulk_free_unmatched, p.bulk_free_unmatched),
        pcp_count_errors: d(c.pcp_count_errors, p.pcp_count_errors),
        task_info_full: d(c.task_info_full, p.task_info_full),
    }
}

fn page_tracking(p: &PageTracking, c: &PageTracking) -> PageTracking {
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let before: HashMap<u32, u64> = p.lifetime_hist.iter().copied().collect();
    PageTracking {
        sample_one_in: c.sample_one_in,
        pages_by_order: c
            .pages_by_order
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(at(&p.pages_by_order, i)))
            .collect(),
        lifetime_hist: c
            .lifetime_hist
            .iter()
            .map(|&(b, n)| (b, n.saturating_sub(before.get(&b).copied().unwrap_or(0))))
            .filter(|(_, n)| *n > 0)
            .collect(),
        map_full: c.map_full.saturating_sub(p.map_full),
    }
}

fn observer(p: &ObserverStats, c: &ObserverStats) -> ObserverStats {
    ObserverStats {
        programs: rows(
            &p.programs,
            &c.programs,
            |r| (r.probe.clone(), r.program.clone()),
            |c, p| ProgramRunStats {
                runs: c.runs.saturating_sub(p.runs),
                run_ns: c.run_ns.saturating_sub(p.run_ns),
                ..c.clone()
            },
            // A program that did not run is still attached: keep its row.
            |_| true,
        ),
        ..c.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{sample, tests::distinct_counters};

    /// A later snapshot of `sample()`: every count doubled, one new row of each kind.
    fn later(prev: &Recording) -> Recording {
        let mut c = prev.clone();
        c.duration_ns *= 3;
        for w in &mut c.lock_waits {
            w.count *= 2;
            w.total_ns *= 2;
        }
        c.lock_waits.push(LockWait {
            cpu: 7,
            ..prev.lock_waits[0].clone()
        });
        for h in &mut c.wait_hist {
            h.count += 5;
        }
        for p in &mut c.pcp {
            p.refill_pages *= 2;
            p.drain_pages *= 2;
        }
        c.skb_matrix[0].count += 3;
        c
    }

    #[test]
    fn counts_are_the_later_less_the_earlier_and_new_rows_whole() {
        let prev = sample();
        let cur = later(&prev);
        let d = delta(&prev, &cur).expect("delta");
        assert_eq!(d.duration_ns, 2 * prev.duration_ns);
        assert_eq!(d.start_unix_ms, prev.start_unix_ms + 2_000);
        // Every old row moved by its own size; the new CPU 7 row is whole.
        assert_eq!(d.lock_waits.len(), prev.lock_waits.len() + 1);
        for w in &prev.lock_waits {
            let got = d
                .lock_waits
                .iter()
                .find(|x| {
                    (x.stack, x.stack_error, x.cpu, x.lock_addr, x.tid)
                        == (w.stack, w.stack_error, w.cpu, w.lock_addr, w.tid)
                })
                .expect("row kept");
            assert_eq!((got.count, got.total_ns), (w.count, w.total_ns));
        }
        assert!(d.lock_waits.iter().any(|w| w.cpu == 7));
        assert!(
            d.lock_waits
                .windows(2)
                .all(|p| p[0].total_ns >= p[1].total_ns)
        );
        assert_eq!(d.wait_hist[0].count, 5);
        assert_eq!(d.pcp[0].refill_pages, prev.pcp[0].refill_pages);
        assert_eq!(d.pcp[1].drain_pages, prev.pcp[1].drain_pages);
        assert_eq!(d.skb_matrix[0].count, 3);
        // Labels and tables are the later snapshot's.
        assert_eq!(d.stacks, cur.stacks);
        assert_eq!(d.zones, cur.zones);
    }

    #[test]
    fn rows_that_did_not_move_are_dropped() {
        let prev = sample();
        let d = delta(&prev, &prev).expect("delta");
        assert_eq!(d.duration_ns, 0);
        assert!(d.lock_waits.is_empty() && d.wait_hist.is_empty() && d.pcp.is_empty());
        assert!(d.skb_matrix.is_empty());
    }

    /// Every counter is subtracted: one left out would keep its total.
    #[test]
    fn every_counter_and_page_field_is_subtracted() {
        let (c, _) = distinct_counters();
        assert_eq!(counters(&c, &Counters::default(), u64::saturating_sub), c);
        assert_eq!(counters(&c, &c, u64::saturating_sub), Counters::default());
        let mut v = serde_json::to_value(CpuPages::default()).expect("json");
        if let Some(o) = v.as_object_mut() {
            for (i, (_, x)) in o.iter_mut().enumerate() {
                *x = serde_json::json!(100 + i);
            }
        }
        let p: CpuPages = serde_json::from_value(v).expect("pages");
        let zero = CpuPages {
            cpu: p.cpu,
            ..Default::default()
        };
        assert_eq!(cpu_pages(&p, &zero, u64::saturating_sub), p);
        assert_eq!(cpu_pages(&p, &p, u64::saturating_sub), zero);
        let d = SkbDefer {
            cpu: 3,
            calls: 1,
            deferred: 2,
            immediate: 3,
            flushed: 4,
            ipis: 5,
        };
        let z = SkbDefer {
            cpu: 3,
            ..Default::default()
        };
        assert_eq!(skb_defer(&d, &z, u64::saturating_sub), d);
        assert_eq!(skb_defer(&d, &d, u64::saturating_sub), z);
    }

    #[test]
    fn snapshots_of_another_session_or_out_of_order_are_refused() {
        let prev = sample();
        let mut other = prev.clone();
        other.stacks.pop();
        assert!(matches!(
            delta(&prev, &other),
            Err(DeltaError::NotOneSession { .. })
        ));
        let mut older = prev.clone();
        older.duration_ns -= 1;
        assert_eq!(delta(&prev, &older), Err(DeltaError::WrongOrder));
    }

    #[test]
    fn scaled_multiplies_every_count_and_keeps_maxima_and_tables() {
        let rec = sample();
        let s = scaled(&rec, 3, 2, 7);
        assert_eq!(s.duration_ns, 7);
        for (a, b) in rec.lock_waits.iter().zip(&s.lock_waits) {
            assert_eq!(
                (b.count, b.total_ns, b.max_ns),
                (a.count * 3 / 2, a.total_ns * 3 / 2, a.max_ns)
            );
        }
        assert_eq!(s.wait_hist[0].count, rec.wait_hist[0].count * 3 / 2);
        assert_eq!(s.pcp[0].refill_pages, rec.pcp[0].refill_pages * 3 / 2);
        assert_eq!(s.skb_matrix[0].count, rec.skb_matrix[0].count * 3 / 2);
        assert_eq!(
            (&s.stacks, &s.frames, &s.zones),
            (&rec.stacks, &rec.frames, &rec.zones)
        );
        // Every counter is scaled: one left out would keep its value.
        let (c, values) = distinct_counters();
        let r = Recording {
            counters: c,
            ..rec.clone()
        };
        let got = serde_json::to_value(scaled(&r, 3, 1, 1).counters).expect("json");
        for (key, v) in values {
            assert_eq!(got[&key], serde_json::json!(v * 3), "{key}");
        }
        // Zero times: every count is 0; no overflow past u64::MAX.
        let z = scaled(&rec, 0, 1, 0);
        assert!(z.lock_waits.iter().all(|w| w.count == 0 && w.total_ns == 0));
        let mut big = rec.clone();
        big.lock_waits[0].total_ns = u64::MAX;
        assert_eq!(scaled(&big, 2, 1, 1).lock_waits[0].total_ns, u64::MAX);
    }

    #[test]
    fn the_delta_of_two_scalings_is_the_scaling_of_the_difference() {
        let rec = sample();
        let d = delta(&scaled(&rec, 1, 1, 1_000), &scaled(&rec, 3, 1, 3_000)).expect("delta");
        assert_eq!(d.duration_ns, 2_000);
        let want = scaled(&rec, 2, 1, 2_000);
        assert_eq!(d.pcp, want.pcp);
        assert_eq!(d.counters, want.counters);
        let total = |r: &Recording| r.lock_waits.iter().map(|w| w.total_ns).sum::<u64>();
        assert_eq!(total(&d), total(&want));
    }
}
