//! Who and why: zone-lock wait attributed to (alloc CPU, free CPU) pairs.
//!
//! Free-side wait on CPU f is divided among the CPUs that allocated the pages freed on f,
//! in proportion to those pages; alloc-side wait on CPU a among the CPUs where a's pages
//! were freed. The weights are the recording's sampled page flows (`page_matrix`), or the
//! SKB alloc-CPU × free-CPU matrix when page tracking was off. The off-diagonal share of
//! the result is the wait "explained by pages freed away from their allocating CPU".
//!
//! On a host of several NUMA nodes the cells are also summed per (alloc node, free node):
//! the wait explained by pages freed on another node than the one that allocated them.
//!
//! The model's limits (docs/blame.md): wait is assumed to scale with the pages each pair
//! moved; the weights are a sample (page flows: 1 page in N); pages freed on a CPU stand
//! in for the pages drained from its PCP lists; zone-lock wait of neither side
//! (compaction, readers) and wait on CPUs without flow samples are not attributed.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{
    analysis::{self, ClassifiedWait},
    numa::{self, NodeOf},
    recording::Recording,
    units::{SatSum, fmt_count, fmt_ns, fmt_pct},
};

/// Below this many samples a cell's weight is a rough estimate (±20 % or worse).
pub const FEW_SAMPLES: u64 = 30;

/// Where the pair weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Sampled page tracking: pages per (alloc CPU, free CPU).
    PageFlows,
    /// SKBs per (alloc CPU, free CPU): every SKB free, used when page tracking was off.
    SkbMatrix,
}

impl Source {
    /// What moved between the CPUs, as the headline says it.
    pub fn moved(self) -> &'static str {
        match self {
            Source::PageFlows => "pages",
            Source::SkbMatrix => "SKBs",
        }
    }

    /// The source in words, with its sampling.
    pub fn describe(self, sample_one_in: Option<u32>) -> String {
        match (self, sample_one_in) {
            (Source::PageFlows, Some(n)) if n > 1 => {
                format!("sampled page flows, 1 page in {n}")
            }
            (Source::PageFlows, _) => "page flows, every page".to_string(),
            (Source::SkbMatrix, _) => "SKB alloc/free CPU matrix (page flows were off)".to_string(),
        }
    }
}

/// Zone-lock wait attributed to one (alloc CPU, free CPU) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlameCell {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    /// `alloc_side_ns + free_side_ns`.
    pub wait_ns: u64,
    /// Alloc-side wait on `alloc_cpu` given to this pair.
    pub alloc_side_ns: u64,
    /// Free-side wait on `free_cpu` given to this pair.
    pub free_side_ns: u64,
    /// Samples behind the pair's weight: sampled base pages (page flows) or SKB frees.
    pub samples: u64,
}

impl BlameCell {
    pub fn is_cross_cpu(&self) -> bool {
        self.alloc_cpu != self.free_cpu
    }
}

/// Zone-lock wait attributed to one (alloc node, free node) pair: its CPU pairs summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlameNodeCell {
    pub alloc_node: u32,
    pub free_node: u32,
    pub wait_ns: u64,
    pub alloc_side_ns: u64,
    pub free_side_ns: u64,
    pub samples: u64,
}

impl BlameNodeCell {
    pub fn is_cross_node(&self) -> bool {
        self.alloc_node != self.free_node
    }
}

/// One recording's zone-lock wait, attributed to CPU pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Blame {
    /// None: no page flows and no SKB matrix, nothing attributed.
    pub source: Option<Source>,
    /// Page flows: one page in this many was tracked.
    pub sample_one_in: Option<u32>,
    /// Pairs with attributed wait, most wait first.
    pub cells: Vec<BlameCell>,
    /// All zone-lock wait of the recording (alloc, free and other side).
    pub zone_wait_ns: u64,
    /// Attributed to pairs whose CPUs differ / are the same.
    pub cross_cpu_ns: u64,
    pub same_cpu_ns: u64,
    /// Zone-lock wait of neither side (compaction, readers, no stack): not attributed.
    pub other_side_ns: u64,
    /// Alloc- or free-side wait on CPUs the flows never saw: not attributed.
    pub no_flows_ns: u64,
    /// Samples in the whole source matrix.
    pub samples: u64,
    /// The host has more than one NUMA node: the node views below say something.
    pub multi_node: bool,
    /// The cells summed per (alloc node, free node), most wait first.
    pub nodes: Vec<BlameNodeCell>,
    /// Attributed to pairs whose CPUs are on different nodes.
    pub cross_node_ns: u64,
}

/// (weight, samples) of one flow cell.
type Flows = BTreeMap<(u32, u32), (u64, u64)>;

/// Per CPU, its flow cells along one axis: (pair, weight).
type Lines = BTreeMap<u32, Vec<((u32, u32), u64)>>;

/// The flow matrix the weights come from, and its source: page flows first.
fn flows(rec: &Recording) -> Option<(Source, Option<u32>, Flows)> {
    let mut m = Flows::new();
    if rec.page_matrix.iter().any(|c| c.pages > 0) {
        // Cells hold sampled base pages × N: the samples are the cell / N.
        let n = rec
            .page_tracking
            .as_ref()
            .map_or(1, |t| t.sample_one_in.max(1));
        for c in rec.page_matrix.iter().filter(|c| c.pages > 0) {
            let e = m.entry((c.alloc_cpu, c.free_cpu)).or_default();
            e.0 = e.0.saturating_add(c.pages);
            e.1 = e.1.saturating_add(c.pages / u64::from(n));
        }
        return Some((Source::PageFlows, Some(n), m));
    }
    if rec.skb_matrix.iter().any(|c| c.count > 0) {
        for c in rec.skb_matrix.iter().filter(|c| c.count > 0) {
            let e = m.entry((c.alloc_cpu, c.free_cpu)).or_default();
            e.0 = e.0.saturating_add(c.count);
            e.1 = e.1.saturating_add(c.count);
        }
        return Some((Source::SkbMatrix, None, m));
    }
    None
}

/// `total` divided in proportion to `weights` (all > 0): each share rounded down, the
/// remainder to the first largest weight, so the shares add up to `total` exactly.
fn split(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    // total × w / sum ≤ total: the quotient fits in u64.
    let mut shares: Vec<u64> = weights
        .iter()
        .map(|&w| (u128::from(total) * u128::from(w) / sum) as u64)
        .collect();
    let given: u64 = shares.iter().copied().sat_sum();
    let biggest = (0..weights.len()).max_by(|&x, &y| weights[x].cmp(&weights[y]).then(y.cmp(&x)));
    if let Some(i) = biggest {
        shares[i] = shares[i].saturating_add(total.saturating_sub(given));
    }
    shares
}

/// Attributes the zone-lock wait of `rec` (classified as `waits`) to CPU pairs.
pub fn attribute(rec: &Recording, waits: &[ClassifiedWait<'_>]) -> Blame {
    let per_cpu = analysis::per_cpu_wait(waits);
    let zone = analysis::zone_totals(waits);
    let mut b = Blame {
        source: None,
        sample_one_in: None,
        cells: Vec::new(),
        zone_wait_ns: zone.total(),
        cross_cpu_ns: 0,
        same_cpu_ns: 0,
        other_side_ns: zone.other,
        no_flows_ns: 0,
        samples: 0,
        multi_node: numa::is_multi_node(&rec.host),
        nodes: Vec::new(),
        cross_node_ns: 0,
    };
    let Some((source, sample_one_in, flows)) = flows(rec) else {
        b.no_flows_ns = zone.alloc.saturating_add(zone.free);
        return b;
    };
    b.source = Some(source);
    b.sample_one_in = sample_one_in;
    b.samples = flows.values().map(|&(_, s)| s).sat_sum();
    // Each CPU's row (where its pages were freed) and column (where the pages freed on it
    // were allocated), built once: (pair, weight).
    let (mut rows, mut cols) = (Lines::new(), Lines::new());
    for (&k, &(w, _)) in &flows {
        rows.entry(k.0).or_default().push((k, w));
        cols.entry(k.1).or_default().push((k, w));
    }
    // (alloc side, free side) per pair.
    let mut given: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for (&cpu, w) in &per_cpu {
        for (ns, cells, alloc_side) in [
            (w.zone.alloc, rows.get(&cpu), true),
            (w.zone.free, cols.get(&cpu), false),
        ] {
            if ns == 0 {
                continue;
            }
            let Some(cells) = cells else {
                b.no_flows_ns = b.no_flows_ns.saturating_add(ns);
                continue;
            };
            let weights: Vec<u64> = cells.iter().map(|&(_, w)| w).collect();
            for (&(k, _), share) in cells.iter().zip(split(ns, &weights)) {
                let e = given.entry(k).or_default();
                let side = if alloc_side { &mut e.0 } else { &mut e.1 };
                *side = side.saturating_add(share);
            }
        }
    }
    b.cells = given
        .into_iter()
        .map(|((alloc_cpu, free_cpu), (a, f))| BlameCell {
            alloc_cpu,
            free_cpu,
            wait_ns: a.saturating_add(f),
            alloc_side_ns: a,
            free_side_ns: f,
            samples: flows.get(&(alloc_cpu, free_cpu)).map_or(0, |&(_, s)| s),
        })
        .filter(|c| c.wait_ns > 0)
        .collect();
    b.cells.sort_by(|x, y| {
        y.wait_ns
            .cmp(&x.wait_ns)
            .then((x.alloc_cpu, x.free_cpu).cmp(&(y.alloc_cpu, y.free_cpu)))
    });
    let sum = |cross: bool| {
        let cells = b.cells.iter().filter(|c| c.is_cross_cpu() == cross);
        cells.map(|c| c.wait_ns).sat_sum()
    };
    b.cross_cpu_ns = sum(true);
    b.same_cpu_ns = sum(false);
    b.nodes = node_cells(&NodeOf::new(&rec.host), &b.cells);
    b.cross_node_ns = b
        .nodes
        .iter()
        .filter(|c| c.is_cross_node())
        .map(|c| c.wait_ns)
        .sat_sum();
    b
}

/// The CPU-pair cells summed per node pair, most wait first.
fn node_cells(nodes: &NodeOf, cells: &[BlameCell]) -> Vec<BlameNodeCell> {
    let mut m: BTreeMap<(u32, u32), BlameNodeCell> = BTreeMap::new();
    for c in cells {
        let (a, f) = (nodes.of(c.alloc_cpu), nodes.of(c.free_cpu));
        let e = m.entry((a, f)).or_insert(BlameNodeCell {
            alloc_node: a,
            free_node: f,
            wait_ns: 0,
            alloc_side_ns: 0,
            free_side_ns: 0,
            samples: 0,
        });
        e.wait_ns = e.wait_ns.saturating_add(c.wait_ns);
        e.alloc_side_ns = e.alloc_side_ns.saturating_add(c.alloc_side_ns);
        e.free_side_ns = e.free_side_ns.saturating_add(c.free_side_ns);
        e.samples = e.samples.saturating_add(c.samples);
    }
    let mut out: Vec<BlameNodeCell> = m.into_values().collect();
    out.sort_by(|x, y| {
        y.wait_ns
            .cmp(&x.wait_ns)
            .then((x.alloc_node, x.free_node).cmp(&(y.alloc_node, y.free_node)))
    });
    out
}

/// Percent of `whole`; None for an empty whole.
fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

impl Blame {
    /// Percent of all zone-lock wait attributed to pairs of different CPUs; None when there
    /// is no wait, or nothing to attribute it with.
    pub fn explained_pct(&self) -> Option<f64> {
        self.source?;
        pct(self.cross_cpu_ns, self.zone_wait_ns)
    }

    /// Percent of all zone-lock wait attributed to pairs of CPUs on different NUMA nodes;
    /// None on a single-node host, without wait, or with nothing to attribute it with.
    pub fn cross_node_pct(&self) -> Option<f64> {
        if !self.multi_node {
            return None;
        }
        self.source?;
        pct(self.cross_node_ns, self.zone_wait_ns)
    }

    /// The cross-node pair with the most wait.
    pub fn top_node_pair(&self) -> Option<&BlameNodeCell> {
        self.nodes.iter().find(|c| c.is_cross_node())
    }

    /// The cross-CPU pair with the most wait.
    pub fn top_pair(&self) -> Option<&BlameCell> {
        self.cells.iter().find(|c| c.is_cross_cpu())
    }

    /// Percent of all zone-lock wait attributed to `cell`.
    pub fn share_pct(&self, cell: &BlameCell) -> Option<f64> {
        pct(cell.wait_ns, self.zone_wait_ns)
    }

    /// Wait attributed to the pair (alloc CPU, free CPU), 0 when none.
    pub fn pair_ns(&self, alloc_cpu: u32, free_cpu: u32) -> u64 {
        self.cells
            .iter()
            .find(|c| (c.alloc_cpu, c.free_cpu) == (alloc_cpu, free_cpu))
            .map_or(0, |c| c.wait_ns)
    }

    /// Wait not attributed to any pair.
    pub fn not_attributed_ns(&self) -> u64 {
        self.other_side_ns.saturating_add(self.no_flows_ns)
    }

    /// The one-sentence answer: how much wait cross-CPU frees explain, and the top pair.
    pub fn headline(&self) -> String {
        if self.zone_wait_ns == 0 {
            return "no zone-lock wait to attribute".to_string();
        }
        let (Some(source), Some(x)) = (self.source, self.explained_pct()) else {
            return "no CPU pairs to attribute zone-lock wait to: this recording has no page \
                    flows (record with --page-flows) and no SKB matrix"
                .to_string();
        };
        let mut s = format!(
            "{} of zone-lock wait is explained by {} freed away from their allocating CPU",
            fmt_pct(x),
            source.moved()
        );
        if let Some(n) = self.cross_node_pct() {
            s.push_str(&format!(" ({} across NUMA nodes)", fmt_pct(n)));
        }
        match self.top_pair() {
            Some(c) => s.push_str(&format!(
                "; top pair {} → {} ({}, {} of the wait, {} samples)",
                c.alloc_cpu,
                c.free_cpu,
                fmt_ns(c.wait_ns),
                fmt_pct(self.share_pct(c).unwrap_or(0.0)),
                fmt_count(c.samples)
            )),
            None => s.push_str("; no pair of different CPUs"),
        }
        s
    }

    /// Where the weights came from, and what was left out, in one line.
    pub fn basis(&self) -> Option<String> {
        let source = self.source?;
        let mut s = format!(
            "weights: {}, {} samples",
            source.describe(self.sample_one_in),
            fmt_count(self.samples)
        );
        let left = self.not_attributed_ns();
        if left > 0 {
            s.push_str(&format!(
                "; not attributed: {} ({} of neither side, {} on CPUs without flows)",
                fmt_ns(left),
                fmt_ns(self.other_side_ns),
                fmt_ns(self.no_flows_ns)
            ));
        }
        Some(s)
    }
}

/// [`attribute`] with the recording's own classification.
pub fn of(rec: &Recording) -> Blame {
    attribute(rec, &analysis::classify_waits(rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{PageCell, PageTracking, SkbCell, sample};

    fn page(alloc_cpu: u32, free_cpu: u32, samples: u64) -> PageCell {
        PageCell {
            alloc_cpu,
            free_cpu,
            pages: samples * 64,
        }
    }

    fn with_pages(cells: Vec<PageCell>) -> Recording {
        let mut rec = sample();
        rec.page_matrix = cells;
        rec.page_tracking = Some(PageTracking {
            sample_one_in: 64,
            pages_by_order: vec![],
            lifetime_hist: vec![],
            map_full: 0,
        });
        rec
    }

    #[test]
    fn split_is_proportional_and_exact() {
        assert_eq!(split(100, &[1, 1, 2]), vec![25, 25, 50]);
        // 10 / 3: floors 3, 3, 3 and the remainder to the first largest weight.
        assert_eq!(split(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split(7, &[0, 5]), vec![0, 7]);
        assert_eq!(
            split(u64::MAX, &[u64::MAX, u64::MAX]).iter().sum::<u64>(),
            u64::MAX
        );
        assert_eq!(split(5, &[0, 0]), vec![0, 0]);
    }

    /// The sample: 6 ms alloc-side on CPU 0, 12 ms free-side on CPU 1, 0.5 ms other.
    #[test]
    fn alloc_wait_follows_rows_and_free_wait_follows_columns() {
        // CPU 0's pages: 3/4 freed on CPU 1, 1/4 on CPU 0. Pages freed on CPU 1: all from CPU 0.
        let b = of(&with_pages(vec![page(0, 1, 300), page(0, 0, 100)]));
        assert_eq!(b.source, Some(Source::PageFlows));
        assert_eq!(b.sample_one_in, Some(64));
        assert_eq!(b.samples, 400);
        let c01 = &b.cells[0];
        assert_eq!((c01.alloc_cpu, c01.free_cpu), (0, 1));
        assert_eq!(
            (c01.alloc_side_ns, c01.free_side_ns),
            (4_500_000, 12_000_000)
        );
        assert_eq!((c01.wait_ns, c01.samples), (16_500_000, 300));
        let c00 = &b.cells[1];
        assert_eq!(
            (c00.alloc_cpu, c00.free_cpu, c00.wait_ns),
            (0, 0, 1_500_000)
        );
        assert_eq!(b.zone_wait_ns, 18_500_000);
        assert_eq!((b.cross_cpu_ns, b.same_cpu_ns), (16_500_000, 1_500_000));
        assert_eq!((b.other_side_ns, b.no_flows_ns), (500_000, 0));
        let x = b.explained_pct().expect("explained");
        assert!((x - 100.0 * 16.5 / 18.5).abs() < 1e-9, "{x}");
        assert_eq!(b.top_pair().map(|c| c.free_cpu), Some(1));
        assert_eq!(
            b.headline(),
            "89.2 % of zone-lock wait is explained by pages freed away from their allocating \
             CPU; top pair 0 → 1 (16.5 ms, 89.2 % of the wait, 300 samples)"
        );
        assert_eq!(
            b.basis().as_deref(),
            Some(
                "weights: sampled page flows, 1 page in 64, 400 samples; not attributed: \
                 500.0 µs (500.0 µs of neither side, 0 ns on CPUs without flows)"
            )
        );
    }

    /// Four CPUs on two nodes (0-1 on node 0, 2-3 on node 1): a cross-CPU pair on one node
    /// explains wait without explaining any across nodes.
    #[test]
    fn cross_node_share_counts_only_pairs_on_different_nodes() {
        let mut rec = with_pages(vec![page(0, 1, 100), page(0, 2, 300)]);
        rec.host.cpu_node = vec![(0, 0), (1, 0), (2, 1), (3, 1)];
        rec.host.numa_nodes = vec![0, 1];
        // Sample's free-side wait is on CPU 1; move 6 ms of it to CPU 2 (node 1).
        rec.lock_waits[1].total_ns = 6_000_000;
        let mut on2 = rec.lock_waits[1].clone();
        on2.cpu = 2;
        rec.lock_waits.push(on2);
        let b = of(&rec);
        // CPU 0 alloc 6 ms: 1/4 to 0 -> 1, 3/4 to 0 -> 2; frees on 1 and 2 all from CPU 0.
        assert_eq!(b.pair_ns(0, 1), 1_500_000 + 6_000_000);
        assert_eq!(b.pair_ns(0, 2), 4_500_000 + 6_000_000);
        assert_eq!(b.cross_node_ns, 10_500_000);
        assert_eq!(b.cross_cpu_ns, 18_000_000);
        let n = b.cross_node_pct().expect("multi-node");
        assert!((n - 100.0 * 10.5 / 18.5).abs() < 1e-9, "{n}");
        assert_eq!(b.nodes.len(), 2);
        let top = b.top_node_pair().expect("a cross-node pair");
        assert_eq!((top.alloc_node, top.free_node), (0, 1));
        assert_eq!(
            (top.alloc_side_ns, top.free_side_ns, top.samples),
            (4_500_000, 6_000_000, 300)
        );
        let same = &b.nodes[1];
        assert_eq!(
            (same.alloc_node, same.free_node, same.wait_ns),
            (0, 0, 7_500_000)
        );
        // Node cells add up to the CPU cells.
        let sum: u64 = b.nodes.iter().map(|c| c.wait_ns).sum();
        assert_eq!(sum, b.cross_cpu_ns + b.same_cpu_ns);
        assert!(
            b.headline().contains("(56.8 % across NUMA nodes)"),
            "{}",
            b.headline()
        );
        // One node: no node share, and the headline does not mention nodes.
        rec.host.numa_nodes = vec![0];
        rec.host.cpu_node = vec![(0, 0), (1, 0), (2, 0), (3, 0)];
        let one = of(&rec);
        assert_eq!((one.cross_node_pct(), one.cross_node_ns), (None, 0));
        assert!(!one.headline().contains("NUMA"), "{}", one.headline());
    }

    #[test]
    fn same_cpu_flows_explain_nothing() {
        let b = of(&with_pages(vec![page(0, 0, 500), page(1, 1, 500)]));
        assert_eq!(b.cross_cpu_ns, 0);
        assert_eq!(b.explained_pct(), Some(0.0));
        assert!(b.top_pair().is_none());
        assert!(
            b.headline().ends_with("; no pair of different CPUs"),
            "{}",
            b.headline()
        );
    }

    #[test]
    fn wait_on_a_cpu_without_flows_is_not_attributed() {
        // Only CPU 1 -> 1 seen: CPU 0's alloc-side wait has no row.
        let b = of(&with_pages(vec![page(1, 1, 10)]));
        assert_eq!(b.no_flows_ns, 6_000_000);
        assert_eq!(b.same_cpu_ns, 12_000_000);
        assert_eq!(b.not_attributed_ns(), 6_500_000);
    }

    #[test]
    fn skb_matrix_stands_in_when_page_flows_are_off() {
        let mut rec = sample();
        rec.skb_matrix = vec![
            SkbCell {
                alloc_cpu: 0,
                free_cpu: 1,
                count: 900,
            },
            SkbCell {
                alloc_cpu: 1,
                free_cpu: 1,
                count: 100,
            },
        ];
        let b = of(&rec);
        assert_eq!((b.source, b.sample_one_in), (Some(Source::SkbMatrix), None));
        // CPU 0 alloc: all to 0 -> 1; CPU 1 free: 90 % from 0, 10 % from 1.
        assert_eq!(b.pair_ns(0, 1), 6_000_000 + 10_800_000);
        assert_eq!(b.pair_ns(1, 1), 1_200_000);
        assert!(b.headline().contains("SKBs freed away"), "{}", b.headline());
        assert!(
            b.basis().is_some_and(|s| s.contains("page flows were off")),
            "{:?}",
            b.basis()
        );
        // Page flows win over the SKB matrix when both are there.
        rec.page_matrix = vec![page(1, 0, 5)];
        assert_eq!(of(&rec).source, Some(Source::PageFlows));
    }

    #[test]
    fn no_source_or_no_wait_says_so() {
        let mut rec = sample();
        rec.skb_matrix.clear();
        let b = of(&rec);
        assert_eq!(b.source, None);
        assert_eq!(b.explained_pct(), None);
        assert_eq!(b.no_flows_ns, 18_000_000);
        assert!(b.headline().contains("--page-flows"), "{}", b.headline());
        rec.lock_waits.clear();
        assert_eq!(of(&rec).headline(), "no zone-lock wait to attribute");
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        let mut rec = with_pages(vec![
            PageCell {
                alloc_cpu: 0,
                free_cpu: 1,
                pages: u64::MAX,
            },
            PageCell {
                alloc_cpu: 0,
                free_cpu: 0,
                pages: u64::MAX,
            },
        ]);
        for w in &mut rec.lock_waits {
            w.total_ns = u64::MAX;
        }
        let b = of(&rec);
        assert_eq!(b.zone_wait_ns, u64::MAX);
        assert!(
            b.explained_pct()
                .is_some_and(|x| (0.0..=100.0).contains(&x))
        );
        assert!(!b.headline().is_empty());
    }
}
