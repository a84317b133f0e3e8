//! The documented JSON (docs/compare-json.md): the typed comparison laid out as the contract
//! says, names and field order included. Nothing else builds these names.
use serde::{Serialize, Serializer};

use super::{
    COMPARE_FORMAT, COMPARE_VERSION, Comparison, RecInfo,
    blame::{BlameComparison, BlameSide},
    metrics::{MetricRow, Unit},
    nodes::NodeRow,
    pair::Pair,
    rows::{CellRow, SiteRow, StackDelta},
};
use crate::model::{blame::Source, observer::ObserverCost, recording::PcpMethod};

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    version: u32,
    before: &'a RecInfo,
    after: &'a RecInfo,
    warnings: &'a [String],
    verdict: &'a [String],
    pcp_method: &'a Pair<PcpMethod>,
    observer_cost: &'a Pair<ObserverCost>,
    metrics: Vec<Metric<'a>>,
    skb_sites: Vec<Site<'a>>,
    skb_matrix: Vec<Cell>,
    page_matrix: Vec<Cell>,
    zone_wait_blame: Blame<'a>,
    zone_nodes: Vec<Node>,
    stacks_grew: Vec<Stack<'a>>,
    stacks_shrank: Vec<Stack<'a>>,
    flamegraphs: &'a [String],
}

#[derive(Serialize)]
struct Metric<'a> {
    name: std::borrow::Cow<'a, str>,
    unit: Unit,
    before: Option<f64>,
    after: Option<f64>,
    /// `100 * (after - before) / before`; null when either is null or before is 0.
    change_pct: Option<f64>,
}

impl<'a> From<MetricRow<'a>> for Metric<'a> {
    fn from(m: MetricRow<'a>) -> Self {
        Metric {
            name: m.key.name(),
            unit: m.key.unit(),
            before: m.values.before,
            after: m.values.after,
            change_pct: m.values.change_pct(),
        }
    }
}

#[derive(Serialize)]
struct Site<'a> {
    function: &'a str,
    caller: &'a str,
    before_frees_per_s: Option<f64>,
    after_frees_per_s: Option<f64>,
    before_remote_ratio: Option<f64>,
    after_remote_ratio: Option<f64>,
}

impl<'a> From<&'a SiteRow> for Site<'a> {
    fn from(s: &'a SiteRow) -> Self {
        Site {
            function: &s.function,
            caller: &s.caller,
            before_frees_per_s: s.frees_per_s.before,
            after_frees_per_s: s.frees_per_s.after,
            before_remote_ratio: s.remote_ratio.before,
            after_remote_ratio: s.remote_ratio.after,
        }
    }
}

#[derive(Serialize)]
struct Cell {
    alloc_cpu: u32,
    free_cpu: u32,
    before_per_s: Option<f64>,
    after_per_s: Option<f64>,
}

impl From<&CellRow> for Cell {
    fn from(c: &CellRow) -> Self {
        Cell {
            alloc_cpu: c.alloc_cpu,
            free_cpu: c.free_cpu,
            before_per_s: c.per_s.before,
            after_per_s: c.per_s.after,
        }
    }
}

#[derive(Serialize)]
struct CpuPair {
    alloc_cpu: u32,
    free_cpu: u32,
}

fn cpu_pair(p: Option<(u32, u32)>) -> Option<CpuPair> {
    p.map(|(alloc_cpu, free_cpu)| CpuPair {
        alloc_cpu,
        free_cpu,
    })
}

#[derive(Serialize)]
struct BlameOne<'a> {
    source: Option<Source>,
    sample_one_in: Option<u32>,
    headline: &'a str,
    explained_pct: Option<f64>,
    cross_cpu_wait_ns_per_s: Option<f64>,
    top_pair: Option<CpuPair>,
    top_pair_share_pct: Option<f64>,
    /// The followed pair's share (`zone_wait_blame.pair`).
    pair_share_pct: Option<f64>,
    samples: u64,
    cross_node_pct: Option<f64>,
}

impl<'a> BlameOne<'a> {
    fn of(s: &'a BlameSide, pair_share_pct: Option<f64>) -> Self {
        BlameOne {
            source: s.source,
            sample_one_in: s.sample_one_in,
            headline: &s.headline,
            explained_pct: s.explained_pct,
            cross_cpu_wait_ns_per_s: s.cross_cpu_ns_per_s,
            top_pair: cpu_pair(s.top_pair),
            top_pair_share_pct: s.top_pair_share_pct,
            pair_share_pct,
            samples: s.samples,
            cross_node_pct: s.cross_node_pct,
        }
    }
}

#[derive(Serialize)]
struct BlameCell {
    alloc_cpu: u32,
    free_cpu: u32,
    before_ns_per_s: Option<f64>,
    after_ns_per_s: Option<f64>,
}

impl From<&CellRow> for BlameCell {
    fn from(c: &CellRow) -> Self {
        BlameCell {
            alloc_cpu: c.alloc_cpu,
            free_cpu: c.free_cpu,
            before_ns_per_s: c.per_s.before,
            after_ns_per_s: c.per_s.after,
        }
    }
}

#[derive(Serialize)]
struct Blame<'a> {
    pair: Option<CpuPair>,
    before: BlameOne<'a>,
    after: BlameOne<'a>,
    cells: Vec<BlameCell>,
}

impl<'a> From<&'a BlameComparison> for Blame<'a> {
    fn from(b: &'a BlameComparison) -> Self {
        Blame {
            pair: cpu_pair(b.pair),
            before: BlameOne::of(&b.sides.before, b.pair_share_pct.before),
            after: BlameOne::of(&b.sides.after, b.pair_share_pct.after),
            cells: all(&b.cells),
        }
    }
}

#[derive(Serialize)]
struct Node {
    node: u32,
    before_wait_ns_per_s: Option<f64>,
    after_wait_ns_per_s: Option<f64>,
    before_alloc_ns_per_s: Option<f64>,
    after_alloc_ns_per_s: Option<f64>,
    before_free_ns_per_s: Option<f64>,
    after_free_ns_per_s: Option<f64>,
    before_remote_cpu_ns_per_s: Option<f64>,
    after_remote_cpu_ns_per_s: Option<f64>,
}

impl From<&NodeRow> for Node {
    fn from(n: &NodeRow) -> Self {
        Node {
            node: n.node,
            before_wait_ns_per_s: n.wait_ns_per_s.before,
            after_wait_ns_per_s: n.wait_ns_per_s.after,
            before_alloc_ns_per_s: n.alloc_ns_per_s.before,
            after_alloc_ns_per_s: n.alloc_ns_per_s.after,
            before_free_ns_per_s: n.free_ns_per_s.before,
            after_free_ns_per_s: n.free_ns_per_s.after,
            before_remote_cpu_ns_per_s: n.remote_cpu_ns_per_s.before,
            after_remote_cpu_ns_per_s: n.remote_cpu_ns_per_s.after,
        }
    }
}

#[derive(Serialize)]
struct Stack<'a> {
    stack: &'a str,
    before_ns_per_s: f64,
    after_ns_per_s: f64,
    change_ns_per_s: f64,
}

impl<'a> From<&'a StackDelta> for Stack<'a> {
    fn from(d: &'a StackDelta) -> Self {
        Stack {
            stack: &d.stack,
            before_ns_per_s: d.ns_per_s.before,
            after_ns_per_s: d.ns_per_s.after,
            change_ns_per_s: d.change(),
        }
    }
}

fn all<'a, T: 'a, U: From<&'a T>>(rows: &'a [T]) -> Vec<U> {
    rows.iter().map(U::from).collect()
}

impl Serialize for Comparison {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Document {
            format: COMPARE_FORMAT,
            version: COMPARE_VERSION,
            before: &self.recordings.before,
            after: &self.recordings.after,
            warnings: &self.warnings,
            verdict: &self.verdict,
            pcp_method: &self.pcp_method,
            observer_cost: &self.observer_cost,
            metrics: self.rates.rows().into_iter().map(Metric::from).collect(),
            skb_sites: all(&self.skb_sites),
            skb_matrix: all(&self.skb_matrix),
            page_matrix: all(&self.page_matrix),
            zone_wait_blame: Blame::from(&self.blame),
            zone_nodes: all(&self.zone_nodes),
            stacks_grew: all(&self.stacks_grew),
            stacks_shrank: all(&self.stacks_shrank),
            flamegraphs: &self.flamegraphs,
        }
        .serialize(s)
    }
}

pub fn to_json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
