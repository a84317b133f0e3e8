//! NUMA views of a recording: zone-lock wait per zone and per memory node, split by side,
//! and the alloc-node × free-node view of an alloc-CPU × free-CPU matrix.
//!
//! A zone's node is the node of its memory (the kernel's proof by lock address,
//! [`ZoneLabel`]), not the node of the CPU that waited: a CPU of node 1 freeing pages of
//! node 0 drains them under node 0's zone lock. The wait such CPUs put on a zone is counted
//! as `remote_cpu_wait_ns`. Zone-lock wait on addresses the kernel did not prove to be a
//! zone (classified by its stack alone) has no node and is in no row here.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    kernel::host::HostInfo,
    model::{
        analysis::{ClassifiedWait, SideNs},
        recording::ZoneLabel,
    },
};

/// CPU → node of one host, looked up in O(log n) (a matrix may have thousands of cells).
#[derive(Debug, Clone, Default)]
pub struct NodeOf(BTreeMap<u32, u32>);

impl NodeOf {
    pub fn new(host: &HostInfo) -> NodeOf {
        NodeOf(host.cpu_node.iter().copied().collect())
    }

    /// The CPU's node; 0 for a CPU the topology does not list (as `HostInfo::node_of`).
    pub fn of(&self, cpu: u32) -> u32 {
        self.0.get(&cpu).copied().unwrap_or(0)
    }
}

/// Whether the host has more than one NUMA node (the node views say something).
pub fn is_multi_node(host: &HostInfo) -> bool {
    host.numa_nodes.len() > 1
}

/// Zone-lock wait on one proven zone lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneWait {
    pub lock_addr: u64,
    pub node: u32,
    /// Zone name (`Normal`, `DMA32`, …).
    pub zone: String,
    pub wait_ns: SideNs,
    pub contentions: u64,
    /// Wait by CPUs of another node than the zone's.
    pub remote_cpu_wait_ns: u64,
}

/// Zone-lock wait on the zones of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeWait {
    pub node: u32,
    pub wait_ns: SideNs,
    pub contentions: u64,
    /// Wait by CPUs of other nodes on this node's zones.
    pub remote_cpu_wait_ns: u64,
    /// Names of the node's zones the recording proved, in zone order.
    pub zones: Vec<String>,
}

/// Wait per proven zone, in (node, zone index) order; zones without wait included.
pub fn zone_waits(
    host: &HostInfo,
    zones: &[ZoneLabel],
    waits: &[ClassifiedWait<'_>],
) -> Vec<ZoneWait> {
    let nodes = NodeOf::new(host);
    let mut by_addr: BTreeMap<u64, (&ZoneLabel, ZoneWait)> = zones
        .iter()
        .map(|z| {
            let row = ZoneWait {
                lock_addr: z.lock_addr,
                node: z.node,
                zone: z.name.clone(),
                wait_ns: SideNs::default(),
                contentions: 0,
                remote_cpu_wait_ns: 0,
            };
            (z.lock_addr, (z, row))
        })
        .collect();
    for cw in waits {
        let Some((_, row)) = by_addr.get_mut(&cw.wait.lock_addr) else {
            continue;
        };
        // A proven zone lock is a zone lock whatever its stack (analysis::classify_waits).
        row.wait_ns.add(&cw.class, cw.wait.total_ns);
        row.contentions = row.contentions.saturating_add(cw.wait.count);
        if nodes.of(cw.wait.cpu) != row.node {
            row.remote_cpu_wait_ns = row.remote_cpu_wait_ns.saturating_add(cw.wait.total_ns);
        }
    }
    let mut rows: Vec<(&ZoneLabel, ZoneWait)> = by_addr.into_values().collect();
    rows.sort_by_key(|(z, _)| (z.node, z.zone_idx, z.lock_addr));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Zone rows summed per node, in node order: every node of the host, and every node a
/// zone names.
pub fn node_waits(host: &HostInfo, zones: &[ZoneWait]) -> Vec<NodeWait> {
    let mut by_node: BTreeMap<u32, NodeWait> = host
        .numa_nodes
        .iter()
        .map(|&node| (node, empty_node(node)))
        .collect();
    for z in zones {
        let n = by_node.entry(z.node).or_insert_with(|| empty_node(z.node));
        n.wait_ns.alloc = n.wait_ns.alloc.saturating_add(z.wait_ns.alloc);
        n.wait_ns.free = n.wait_ns.free.saturating_add(z.wait_ns.free);
        n.wait_ns.other = n.wait_ns.other.saturating_add(z.wait_ns.other);
        n.contentions = n.contentions.saturating_add(z.contentions);
        n.remote_cpu_wait_ns = n.remote_cpu_wait_ns.saturating_add(z.remote_cpu_wait_ns);
        if !n.zones.contains(&z.zone) {
            n.zones.push(z.zone.clone());
        }
    }
    by_node.into_values().collect()
}

fn empty_node(node: u32) -> NodeWait {
    NodeWait {
        node,
        wait_ns: SideNs::default(),
        contentions: 0,
        remote_cpu_wait_ns: 0,
        zones: Vec::new(),
    }
}

/// An alloc-CPU × free-CPU matrix summed per (alloc node, free node), in node order.
pub fn node_matrix(
    host: &HostInfo,
    cells: impl IntoIterator<Item = (u32, u32, u64)>,
) -> Vec<(u32, u32, u64)> {
    let nodes = NodeOf::new(host);
    let mut m: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (alloc_cpu, free_cpu, n) in cells {
        let e = m
            .entry((nodes.of(alloc_cpu), nodes.of(free_cpu)))
            .or_default();
        *e = e.saturating_add(n);
    }
    m.into_iter().map(|((a, f), n)| (a, f, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{analysis::classify_waits, recording::sample};

    /// The sample on two nodes (CPU 0 on node 0, CPU 1 on node 1), with a second zone on
    /// node 1 and CPU 1's free-side wait on node 0's zone.
    fn two_nodes() -> crate::model::recording::Recording {
        let mut rec = sample();
        rec.host.cpu_node = vec![(0, 0), (1, 1)];
        rec.host.numa_nodes = vec![0, 1];
        rec.zones.push(ZoneLabel {
            lock_addr: 0xffff_8890_0000_0000,
            node: 1,
            zone_idx: 2,
            name: "Normal".into(),
        });
        rec
    }

    #[test]
    fn zone_and_node_totals_split_by_side_and_by_waiter_node() {
        let rec = two_nodes();
        let waits = classify_waits(&rec);
        let zones = zone_waits(&rec.host, &rec.zones, &waits);
        assert_eq!(zones.len(), 2);
        let z0 = &zones[0];
        assert_eq!((z0.node, z0.zone.as_str()), (0, "Normal"));
        // Sample: 6 ms alloc on CPU 0, 12 ms free on CPU 1, 0.5 ms stackless on CPU 0, all
        // on node 0's zone; the 1 ms rq lock is no zone's.
        assert_eq!(
            z0.wait_ns,
            SideNs {
                alloc: 6_000_000,
                free: 12_000_000,
                other: 500_000
            }
        );
        assert_eq!(z0.contentions, 30);
        assert_eq!(z0.remote_cpu_wait_ns, 12_000_000);
        assert_eq!(zones[1].wait_ns.total(), 0);
        let nodes = node_waits(&rec.host, &zones);
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].wait_ns.total(), 18_500_000);
        assert_eq!(nodes[0].remote_cpu_wait_ns, 12_000_000);
        assert_eq!(nodes[0].zones, vec!["Normal".to_string()]);
        assert_eq!((nodes[1].node, nodes[1].wait_ns.total()), (1, 0));
        assert_eq!(nodes[1].zones, vec!["Normal".to_string()]);
    }

    #[test]
    fn node_of_a_zone_wins_over_the_waiter_and_unproven_wait_has_no_node() {
        let mut rec = two_nodes();
        // All wait moved to an address no zone proof covers: no zone, no node has it.
        for w in &mut rec.lock_waits {
            w.lock_addr = 0xdead_0000;
        }
        let waits = classify_waits(&rec);
        let zones = zone_waits(&rec.host, &rec.zones, &waits);
        assert!(zones.iter().all(|z| z.wait_ns.total() == 0));
        let nodes = node_waits(&rec.host, &zones);
        assert!(nodes.iter().all(|n| n.contentions == 0));
        // A host whose zone names a node its topology lacks still gets that node's row.
        let mut host = rec.host.clone();
        host.numa_nodes = vec![0];
        let nodes = node_waits(&host, &zone_waits(&host, &rec.zones, &waits));
        assert_eq!(nodes.iter().map(|n| n.node).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn node_matrix_sums_cpu_pairs_per_node_pair() {
        let rec = two_nodes();
        let m = node_matrix(
            &rec.host,
            [
                (0, 1, 10),
                (0, 0, 5),
                (1, 1, 7),
                (0, 1, u64::MAX),
                (9, 1, 2),
            ],
        );
        // CPU 9 is in no node list: node 0, as HostInfo::node_of says.
        assert_eq!(m, vec![(0, 0, 5), (0, 1, u64::MAX), (1, 1, 7)]);
        assert!(is_multi_node(&rec.host));
        assert!(!is_multi_node(&sample().host));
    }
}
