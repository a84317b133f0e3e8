//! CPUs drawn one by one on small hosts, in groups on large ones.
use std::collections::BTreeMap;

use crate::{
    kernel::{cpulist::format_cpu_list, host::HostInfo},
    model::recording::Recording,
};

/// CPUs shown one by one up to this many; grouped beyond.
const MAX_SINGLE_CPUS: usize = 64;

/// A set of CPUs drawn as one row or one heatmap cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuGroup {
    pub label: String,
    pub cpus: Vec<u32>,
}

impl CpuGroup {
    /// Its heading in a heatmap: the CPU number, or the CPU list of a group.
    pub(super) fn short(&self) -> String {
        if self.cpus.len() == 1 {
            self.cpus[0].to_string()
        } else {
            format_cpu_list(&self.cpus)
        }
    }
}

/// One group per CPU on small hosts; on large ones by NUMA node (when that gives a readable
/// number of groups), else ranges of 16 or 32 CPUs.
pub fn group_cpus(cpus: &[u32], host: &HostInfo) -> Vec<CpuGroup> {
    let mut cpus: Vec<u32> = cpus.to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.len() <= MAX_SINGLE_CPUS {
        return cpus
            .iter()
            .map(|&c| CpuGroup {
                label: format!("cpu{c}"),
                cpus: vec![c],
            })
            .collect();
    }
    let mut by_node: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &c in &cpus {
        by_node.entry(host.node_of(c)).or_default().push(c);
    }
    if (2..=MAX_SINGLE_CPUS).contains(&by_node.len()) && by_node.values().all(|v| v.len() <= 128) {
        return by_node
            .into_iter()
            .map(|(n, v)| CpuGroup {
                label: format!("node {n} (cpu {})", format_cpu_list(&v)),
                cpus: v,
            })
            .collect();
    }
    let size = if cpus.len() <= 640 { 16 } else { 32 };
    // Ranges aligned to CPU ids, so "cpu 32-47" means the same on every host.
    let mut by_range: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &c in &cpus {
        by_range.entry(c / size).or_default().push(c);
    }
    by_range
        .into_values()
        .map(|v| CpuGroup {
            label: format!("cpu {}", format_cpu_list(&v)),
            cpus: v,
        })
        .collect()
}

/// Every CPU a recording names: recorded, or seen in its PCP counts, waits or matrices.
pub(super) fn all_cpus(rec: &Recording) -> Vec<u32> {
    let mut c: Vec<u32> = rec.cpus.clone();
    c.extend(rec.pcp.iter().map(|p| p.cpu));
    c.extend(rec.lock_waits.iter().map(|w| w.cpu));
    c.extend(
        rec.skb_matrix
            .iter()
            .flat_map(|x| [x.alloc_cpu, x.free_cpu]),
    );
    c.extend(
        rec.page_matrix
            .iter()
            .flat_map(|x| [x.alloc_cpu, x.free_cpu]),
    );
    c.sort_unstable();
    c.dedup();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ncpus: u32, nodes: u32) -> HostInfo {
        let cpus: Vec<u32> = (0..ncpus).collect();
        let per_node = ncpus.div_ceil(nodes.max(1));
        HostInfo {
            hostname: "h".into(),
            kernel_release: "k".into(),
            kernel_version: "v".into(),
            arch: "x86_64".into(),
            online_cpus: cpus.clone(),
            possible_cpus: ncpus,
            cpu_node: cpus.iter().map(|&c| (c, c / per_node)).collect(),
            numa_nodes: (0..nodes).collect(),
        }
    }

    #[test]
    fn cpus_are_grouped_on_big_hosts() {
        let small = group_cpus(&(0..2).collect::<Vec<_>>(), &host(2, 1));
        assert_eq!(small.len(), 2);
        assert_eq!(small[1].label, "cpu1");
        // 640 CPUs, one node: ranges of 16 -> 40 rows.
        let big = group_cpus(&(0..640).collect::<Vec<_>>(), &host(640, 1));
        assert_eq!(big.len(), 40);
        assert_eq!(big[1].label, "cpu 16-31");
        // 640 CPUs on 8 nodes: one row per node.
        let numa = group_cpus(&(0..640).collect::<Vec<_>>(), &host(640, 8));
        assert_eq!(numa.len(), 8);
        assert!(numa[0].label.starts_with("node 0 (cpu 0-79)"));
        // 2048 CPUs, one node: ranges of 32.
        assert_eq!(
            group_cpus(&(0..2048).collect::<Vec<_>>(), &host(2048, 1)).len(),
            64
        );
    }
}
