//! `zoneprof compare BEFORE AFTER`: every headline of two recordings side by side, normalised
//! per second of recording, each one's zone-lock wait blamed on (alloc CPU, free CPU) pairs
//! (`blame`), a verdict in words that only states what moved materially (`verdict`), the
//! stacks that grew and shrank most, and differential flamegraphs both ways.
//!
//! The model is typed ([`Pair`]s of rates keyed by [`Total`], [`CpuMetric`] and CPU
//! number); the JSON document, a contract (docs/compare-json.md), is laid out only when
//! serialised (`json`). A value a recording cannot show (its probe did not attach) is
//! `None` here and `null` there, never 0.
mod blame;
mod flames;
mod json;
mod material;
mod metrics;
mod nodes;
mod observable;
mod pair;
mod rates;
mod rows;
mod text;
mod verdict;
mod warnings;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use blame::{BlameComparison, BlameSide};
pub use flames::{DiffFlamegraph, Direction, diff_flamegraphs, folded_per_s, write_flamegraphs};
pub use json::to_json;
pub use metrics::{CpuMetric, MetricKey, MetricRow, Total, Unit};
pub use nodes::NodeRow;
pub use observable::Observable;
pub use pair::{Pair, Side};
pub use rates::{CpuRates, Rates};
pub use rows::{CellRow, SiteRow, StackDelta, StackMoves, is_zone_stack};
pub use text::{observer_lines, to_text};
pub use verdict::short_stack;

use crate::{
    model::{
        analysis, blame as model_blame, observer::ObserverCost, recording::PcpMethod,
        recording::Recording,
    },
    output::flamegraph::View,
};

pub const COMPARE_FORMAT: &str = "zoneprof-compare";
pub const COMPARE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct RecInfo {
    pub file: String,
    pub host: String,
    pub kernel: String,
    pub duration_s: f64,
    pub online_cpus: usize,
    pub recorded_cpus: usize,
}

impl RecInfo {
    fn of(rec: &Recording, file: &str) -> RecInfo {
        RecInfo {
            file: file.to_string(),
            host: rec.host.hostname.clone(),
            kernel: rec.host.kernel_release.clone(),
            duration_s: rec.duration_s(),
            online_cpus: rec.host.online_cpus.len(),
            recorded_cpus: rec.cpus.len(),
        }
    }
}

/// Two recordings compared. Serialises as the documented JSON.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub recordings: Pair<RecInfo>,
    pub warnings: Vec<String>,
    pub verdict: Vec<String>,
    /// How each recording counted PCP pages (per page inside zone->lock, per batch, off).
    pub pcp_method: Pair<PcpMethod>,
    /// What each recording's own programs added under zone->lock.
    pub observer_cost: Pair<ObserverCost>,
    pub rates: Pair<Rates>,
    /// Each recording's zone-lock wait attributed to (alloc CPU, free CPU) pairs.
    pub blame: BlameComparison,
    /// Zone-lock wait per NUMA node of either recording.
    pub zone_nodes: Vec<NodeRow>,
    pub skb_sites: Vec<SiteRow>,
    pub skb_matrix: Vec<CellRow>,
    pub page_matrix: Vec<CellRow>,
    pub stacks_grew: Vec<StackDelta>,
    pub stacks_shrank: Vec<StackDelta>,
    /// The zone-lock stack that shrank most and the one that grew most (the verdict puts
    /// zone-lock first; the lists above may hold other locks only).
    pub zone_stack_shrank: Option<StackDelta>,
    pub zone_stack_grew: Option<StackDelta>,
    /// Differential flamegraph files written, when asked for.
    pub flamegraphs: Vec<String>,
}

/// Builds the comparison of `recs` (read from `files`). `top` bounds the grew/shrank stack
/// lists.
pub fn compare(recs: Pair<&Recording>, files: Pair<&str>, top: usize) -> Comparison {
    // The rates, blame and stacks of one recording do not depend on the other's: one
    // thread each, classifying its waits once.
    let (rates_cost_blame, folded_nodes) = recs
        .par_map(|r| {
            let waits = analysis::classify_waits(r);
            let (rates, cost) = Rates::of(r, &waits);
            let blame = model_blame::attribute(r, &waits);
            let nodes = nodes::NodeSide::of(r, &waits);
            (
                (rates, (cost, blame)),
                (folded_per_s(r, View::Locks), nodes),
            )
        })
        .unzip();
    let (rates, cost_blame) = rates_cost_blame.unzip();
    let (observer_cost, blame) = cost_blame.unzip();
    let (folded, node_sides) = folded_nodes.unzip();
    let moves = rows::stack_deltas(folded.as_ref(), top);
    let mut c = Comparison {
        recordings: recs.zip(files).map(|(r, f)| RecInfo::of(r, f)),
        warnings: warnings::warnings(recs),
        verdict: Vec::new(),
        pcp_method: recs.map(|r| PcpMethod::of(&r.probes)),
        observer_cost,
        rates,
        blame: blame::compare(blame.as_ref(), recs.map(|r| r.duration_s())),
        zone_nodes: nodes::node_rows(node_sides),
        skb_sites: rows::site_rows(recs),
        skb_matrix: rows::cell_rows(recs.map(rows::Matrix::skb)),
        page_matrix: rows::cell_rows(recs.map(rows::Matrix::pages)),
        stacks_grew: moves.grew,
        stacks_shrank: moves.shrank,
        zone_stack_shrank: moves.zone_shrank,
        zone_stack_grew: moves.zone_grew,
        flamegraphs: Vec::new(),
    };
    c.verdict = verdict::verdict(&c);
    c
}

/// Where `-o PATH` sends the report and the differential flamegraphs.
#[derive(Debug, PartialEq)]
pub struct OutputPlan {
    /// Report file; None = stdout.
    pub report: Option<PathBuf>,
    /// Directory for the differential flamegraphs; None = not written.
    pub dir: Option<PathBuf>,
}

impl OutputPlan {
    /// `-o DIR` (an existing directory, or a path ending in `/`) receives `compare.<ext>` and
    /// the flamegraphs; `-o FILE` is the report file alone.
    pub fn new(output: Option<&Path>, ext: &str) -> OutputPlan {
        match output {
            None => OutputPlan {
                report: None,
                dir: None,
            },
            Some(p) if p.is_dir() || p.as_os_str().to_string_lossy().ends_with('/') => OutputPlan {
                report: Some(p.join(format!("compare.{ext}"))),
                dir: Some(p.to_path_buf()),
            },
            Some(p) => OutputPlan {
                report: Some(p.to_path_buf()),
                dir: None,
            },
        }
    }
}
