//! Both recordings' zone-lock wait blame (model/blame.rs): each one's share of the wait
//! explained by cross-CPU frees and its top pair, and the pair BEFORE blamed most followed
//! into AFTER, so a fix reads as that pair's share falling.
use super::{
    pair::Pair,
    rows::{self, CellRow, Matrix},
};
use crate::model::blame::{Blame, Source};

/// One recording's blame.
#[derive(Debug, Clone, PartialEq)]
pub struct BlameSide {
    /// Where the weights came from; None: nothing attributed.
    pub source: Option<Source>,
    pub sample_one_in: Option<u32>,
    /// The recording's headline, as its report says it.
    pub headline: String,
    /// Percent of its zone-lock wait attributed to pairs of different CPUs.
    pub explained_pct: Option<f64>,
    /// That wait per second; None without a source.
    pub cross_cpu_ns_per_s: Option<f64>,
    /// Its own top cross-CPU pair (alloc CPU, free CPU).
    pub top_pair: Option<(u32, u32)>,
    pub top_pair_share_pct: Option<f64>,
    /// Samples in its source matrix.
    pub samples: u64,
    /// Percent of its zone-lock wait attributed to pairs of CPUs on different NUMA nodes;
    /// None on a single-node host or without a source.
    pub cross_node_pct: Option<f64>,
}

/// The blame of both recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct BlameComparison {
    pub sides: Pair<BlameSide>,
    /// The pair followed on both sides: BEFORE's top pair, else AFTER's.
    pub pair: Option<(u32, u32)>,
    /// That pair's percent of each recording's zone-lock wait; None where the recording has
    /// no zone-lock wait or nothing to attribute it with.
    pub pair_share_pct: Pair<Option<f64>>,
    /// Attributed wait per (alloc CPU, free CPU) of either recording, ns per second.
    pub cells: Vec<CellRow>,
}

fn side(b: &Blame, secs: f64) -> BlameSide {
    let top = b.top_pair();
    BlameSide {
        source: b.source,
        sample_one_in: b.sample_one_in,
        headline: b.headline(),
        explained_pct: b.explained_pct(),
        cross_cpu_ns_per_s: b
            .source
            .map(|_| super::rates::PerS(secs).of(b.cross_cpu_ns)),
        top_pair: top.map(|c| (c.alloc_cpu, c.free_cpu)),
        top_pair_share_pct: top.and_then(|c| b.share_pct(c)),
        samples: b.samples,
        cross_node_pct: b.cross_node_pct(),
    }
}

/// Percent of `b`'s zone-lock wait attributed to `pair`.
fn pair_share(b: &Blame, (a, f): (u32, u32)) -> Option<f64> {
    b.source?;
    (b.zone_wait_ns > 0).then(|| 100.0 * b.pair_ns(a, f) as f64 / b.zone_wait_ns as f64)
}

/// The comparison of `blame` of recordings `secs` long.
pub fn compare(blame: Pair<&Blame>, secs: Pair<f64>) -> BlameComparison {
    let sides = blame.zip(secs).map(|(b, s)| side(b, s));
    let pair = sides.before.top_pair.or(sides.after.top_pair);
    let pair_share_pct = blame.map(|b| pair.and_then(|p| pair_share(b, p)));
    let cells = rows::cell_rows(blame.zip(secs).map(|(b, secs)| {
        Matrix {
            cells: b
                .cells
                .iter()
                .map(|c| ((c.alloc_cpu, c.free_cpu), c.wait_ns))
                .collect(),
            observable: b.source.is_some(),
            secs,
        }
    }));
    BlameComparison {
        sides,
        pair,
        pair_share_pct,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        blame,
        recording::{PageCell, PageTracking, sample},
    };

    fn blame_of(cells: &[(u32, u32, u64)]) -> Blame {
        let mut rec = sample();
        rec.page_matrix = cells
            .iter()
            .map(|&(alloc_cpu, free_cpu, samples)| PageCell {
                alloc_cpu,
                free_cpu,
                pages: samples * 64,
            })
            .collect();
        rec.page_tracking = Some(PageTracking {
            sample_one_in: 64,
            pages_by_order: vec![],
            lifetime_hist: vec![],
            map_full: 0,
        });
        blame::of(&rec)
    }

    #[test]
    fn before_top_pair_is_followed_into_after() {
        let b = blame_of(&[(0, 1, 900), (0, 0, 100)]);
        // After, CPU 0's pages go to CPU 5 when they leave it at all.
        let a = blame_of(&[(0, 0, 900), (0, 5, 100), (1, 1, 900)]);
        let c = compare(Pair::new(&b, &a), Pair::new(2.0, 2.0));
        assert_eq!(c.pair, Some((0, 1)));
        assert_eq!(c.sides.after.top_pair, Some((0, 5)));
        let share = c.pair_share_pct;
        assert!(share.before.is_some_and(|x| x > 90.0), "{share:?}");
        // AFTER attributes nothing to 0 -> 1: its share is 0, not unknown.
        assert_eq!(share.after, Some(0.0));
        assert_eq!(c.sides.before.source, Some(Source::PageFlows));
        let cross = c.sides.before.cross_cpu_ns_per_s.expect("per s");
        assert!((cross - b.cross_cpu_ns as f64 / 2.0).abs() < 1.0, "{cross}");
        assert!(c.cells.iter().any(|r| (r.alloc_cpu, r.free_cpu) == (0, 1)));
    }

    #[test]
    fn a_side_without_source_is_unknown_not_zero() {
        let b = blame_of(&[(0, 1, 900)]);
        let mut rec = sample();
        rec.skb_matrix.clear();
        let a = blame::of(&rec);
        let c = compare(Pair::new(&b, &a), Pair::new(2.0, 2.0));
        assert_eq!(c.pair_share_pct.after, None);
        assert_eq!(c.sides.after.explained_pct, None);
        assert_eq!(c.sides.after.cross_cpu_ns_per_s, None);
        assert!(c.cells.iter().all(|r| r.per_s.after.is_none()));
    }
}
