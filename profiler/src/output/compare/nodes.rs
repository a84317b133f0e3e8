//! Zone-lock wait per NUMA node (of the zone's memory, model/numa.rs) before and after, per
//! second of recording.
use std::collections::BTreeMap;

use super::{observable::Observable, pair::Pair, rates::PerS};
use crate::model::{
    analysis::ClassifiedWait,
    numa::{self, NodeWait},
    recording::Recording,
};

/// One node's zone-lock wait per second; None on a side that could not see lock waits.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub node: u32,
    pub wait_ns_per_s: Pair<Option<f64>>,
    pub alloc_ns_per_s: Pair<Option<f64>>,
    pub free_ns_per_s: Pair<Option<f64>>,
    /// Wait by CPUs of other nodes on this node's zones.
    pub remote_cpu_ns_per_s: Pair<Option<f64>>,
}

/// One recording's node totals, with what it takes to make rates of them.
pub struct NodeSide {
    pub nodes: Vec<NodeWait>,
    pub observable: bool,
    pub secs: f64,
}

impl NodeSide {
    pub fn of(rec: &Recording, waits: &[ClassifiedWait<'_>]) -> NodeSide {
        NodeSide {
            nodes: numa::node_waits(&rec.host, &numa::zone_waits(&rec.host, &rec.zones, waits)),
            observable: Observable::of(rec).locks,
            secs: rec.duration_s(),
        }
    }
}

/// Every node of either recording, in node order.
pub fn node_rows(sides: Pair<NodeSide>) -> Vec<NodeRow> {
    let by_node = sides.as_ref().map(|s| {
        s.nodes
            .iter()
            .map(|n| (n.node, n))
            .collect::<BTreeMap<u32, &NodeWait>>()
    });
    let mut nodes: Vec<u32> = by_node
        .before
        .keys()
        .chain(by_node.after.keys())
        .copied()
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
        .into_iter()
        .map(|node| {
            let rate = |f: fn(&NodeWait) -> u64| {
                sides.as_ref().zip(by_node.as_ref()).map(|(s, m)| {
                    s.observable
                        .then(|| PerS(s.secs).of(m.get(&node).map_or(0, |n| f(n))))
                })
            };
            NodeRow {
                node,
                wait_ns_per_s: rate(|n| n.wait_ns.total()),
                alloc_ns_per_s: rate(|n| n.wait_ns.alloc),
                free_ns_per_s: rate(|n| n.wait_ns.free),
                remote_cpu_ns_per_s: rate(|n| n.remote_cpu_wait_ns),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{analysis::classify_waits, recording::sample};

    #[test]
    fn nodes_of_either_side_with_rates_and_unobservable_sides_as_none() {
        let mut two = sample();
        two.host.cpu_node = vec![(0, 0), (1, 1)];
        two.host.numa_nodes = vec![0, 1];
        let one = sample();
        let rows = node_rows(Pair::new(
            NodeSide::of(&two, &classify_waits(&two)),
            NodeSide::of(&one, &classify_waits(&one)),
        ));
        assert_eq!(rows.iter().map(|r| r.node).collect::<Vec<_>>(), [0, 1]);
        // 18.5 ms over 2 s on node 0's zone; CPU 1 (node 1 before) waited 12 ms of it.
        assert_eq!(
            rows[0].wait_ns_per_s,
            Pair::new(Some(9_250_000.0), Some(9_250_000.0))
        );
        assert_eq!(
            rows[0].remote_cpu_ns_per_s,
            Pair::new(Some(6_000_000.0), Some(0.0))
        );
        // AFTER has no node 1: 0, as it could see lock waits.
        assert_eq!(rows[1].wait_ns_per_s, Pair::new(Some(0.0), Some(0.0)));
        let mut blind = sample();
        blind.lock_waits.clear();
        blind.probes.clear();
        let rows = node_rows(Pair::new(
            NodeSide::of(&two, &classify_waits(&two)),
            NodeSide::of(&blind, &classify_waits(&blind)),
        ));
        assert_eq!(rows[0].alloc_ns_per_s.after, None);
    }
}
