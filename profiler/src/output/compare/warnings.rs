//! What makes two recordings compare less well: different hosts, kernels, CPU counts,
//! probes, counting methods, lost data, short recordings. Also printed on stderr.
use super::{
    observable::Observable,
    pair::{Pair, Side},
};
use crate::model::{
    recording::{PcpCount, PcpMethod, Recording},
    units::fmt_ns,
};

/// Recordings shorter than this give noisy per-second rates.
const SHORT_NS: u64 = 500_000_000;

pub fn warnings(recs: Pair<&Recording>) -> Vec<String> {
    let (b, a) = (recs.before, recs.after);
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
    w.extend(observable_warnings(recs.map(Observable::of)));
    w.extend(pcp_method_warnings(recs.map(|r| PcpMethod::of(&r.probes))));
    for (side, r) in recs.sides() {
        let side = side.label();
        if r.counters.lost_wait_ns > 0 {
            w.push(format!(
                "the {side} recording lost {} of lock wait (map full): its totals are lower bounds",
                fmt_ns(r.counters.lost_wait_ns)
            ));
        }
        if r.duration_ns < SHORT_NS {
            w.push(format!(
                "the {side} recording is only {:.2} s long: per-second rates are noisy",
                r.duration_s()
            ));
        }
    }
    w
}

/// A kind of data one recording could observe and the other could not.
fn observable_warnings(o: Pair<Observable>) -> Vec<String> {
    let mut w = Vec::new();
    for (what, seen) in [
        ("lock contention", o.map(|o| o.locks)),
        ("PCP refills", o.map(|o| o.refill)),
        ("PCP drains", o.map(|o| o.drain)),
        ("SKB free sites", o.map(|o| o.skb)),
        ("skb_attempt_defer_free outcomes", o.map(|o| o.defer)),
    ] {
        if seen.before != seen.after {
            let only = if seen.before {
                Side::Before
            } else {
                Side::After
            };
            w.push(format!(
                "{what} observable only in the {} recording: those metrics are null on the other side",
                only.label()
            ));
        }
    }
    w
}

/// PCP pages counted per page (a program inside zone->lock) on one side and per batch (or
/// not at all) on the other: the observer cost under the lock differs between the two.
pub(super) fn pcp_method_warnings(m: Pair<PcpMethod>) -> Vec<String> {
    let mut w = Vec::new();
    for (what, x, y) in [
        ("refill", m.before.refill, m.after.refill),
        ("drain", m.before.drain, m.after.drain),
    ] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_pcp_methods_warn_per_side() {
        let m = |refill, drain| PcpMethod { refill, drain };
        let w = |b, a| pcp_method_warnings(Pair::new(b, a));
        let (page, batch, off) = (PcpCount::Page, PcpCount::Batch, PcpCount::Off);
        assert!(w(m(page, page), m(page, page)).is_empty());
        assert_eq!(
            w(m(page, page), m(batch, page)),
            vec![
                "PCP refill counted per page in before, per batch in after: page counts compare, \
                 the observer cost under the lock does not"
                    .to_string()
            ]
        );
        let w = w(m(batch, page), m(batch, off));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "PCP drain counted per page in before, not counted in after: the observer"
            ),
            "{w:?}"
        );
    }
}
