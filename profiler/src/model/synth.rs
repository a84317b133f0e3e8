//! `zoneprof-synth` (feature `synth`, not in `zoneprof`): writes a synthetic recording of a
//! large host, for benchmarking `report`, `compare` and `flamegraph` (`cargo xtask bench`).
//!
//! Stacks are spliced from real folded stacks (`cpuN;root;...;leaf WAIT_NS` files, e.g.
//! `shared/fixtures/contention/*.folded`): the leaf part of one real stack (lock frames and
//! the lock taker) joined to the root part of another, until the wanted number of distinct
//! stacks exists. Everything is deterministic for a given seed.
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{
    kernel::host::{HostInfo, PcpSetting, Settings},
    model::recording::{
        Counters, CpuPages, FORMAT_NAME, FORMAT_VERSION, HistEntry, LockWait, PageCell,
        PageTracking, ProbeStatus, Recording, SkbCell, SkbDefer, SkbSite, StackInterner, ZoneLabel,
    },
};

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Recording file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Possible (and online) CPUs of the synthetic host.
    #[arg(long, default_value_t = 640)]
    pub cpus: u32,
    /// NUMA nodes (CPUs are split evenly; 8 as on a real 640-CPU host). Each has a DMA32
    /// and a Normal zone; a quarter of the zone-lock waits are on another node's zone, and
    /// the SKB and page flows go mostly within a node, else to the next node.
    #[arg(long, default_value_t = 8)]
    pub nodes: u32,
    /// Distinct kernel stacks.
    #[arg(long, default_value_t = 50_000)]
    pub stacks: u32,
    /// Non-zero cells of the SKB alloc-CPU x free-CPU matrix.
    #[arg(long, default_value_t = 3_000)]
    pub skb_cells: u32,
    /// Folded-stack files to take frames from (repeatable).
    #[arg(long = "folded", required = true)]
    pub folded: Vec<PathBuf>,
    /// Seed of the generator; a different seed gives a different (e.g. "after") recording.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scale every lock wait by this factor (an "after" recording of a fix: e.g. 0.3).
    #[arg(long, default_value_t = 1.0)]
    pub wait_scale: f64,
}

/// splitmix64: small, fast, good enough to spread synthetic values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Real stacks, leaf first, without the `cpuN` root.
fn load_folded(paths: &[PathBuf]) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for p in paths {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        for line in text.lines() {
            let Some((stack, _value)) = line.rsplit_once(' ') else {
                continue;
            };
            let mut frames: Vec<String> = stack
                .split(';')
                .filter(|f| !f.is_empty() && !is_cpu_frame(f))
                .map(str::to_string)
                .collect();
            if frames.len() < 2 {
                continue;
            }
            frames.reverse();
            out.push(frames);
        }
    }
    if out.is_empty() {
        bail!("no stacks in {:?}", paths);
    }
    Ok(out)
}

fn is_cpu_frame(f: &str) -> bool {
    f.strip_prefix("cpu")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Does this (leaf-first) stack wait on the zone lock, by its taker?
fn zone_taker(frames: &[u32], names: &[String]) -> bool {
    frames.iter().take(4).any(|&f| {
        names.get(f as usize).is_some_and(|n| {
            n.starts_with("__rmqueue_pcplist")
                || n.starts_with("rmqueue_bulk")
                || n.starts_with("free_pcppages_bulk")
                || n.starts_with("free_one_page")
        })
    })
}

pub fn build(a: &SynthArgs) -> Result<Recording> {
    if a.cpus == 0 || a.nodes == 0 || a.stacks == 0 {
        bail!("--cpus, --nodes and --stacks must be at least 1");
    }
    let base = load_folded(&a.folded)?;
    let (frames, stacks) = distinct_stacks(&base, a.stacks as usize)?;
    let host = Topology::new(a.cpus, a.nodes);
    let zones = host.zones();
    // Values depend on the seed, and are drawn in this order.
    let mut rng = Rng(a.seed);
    let (lock_waits, wait_hist) = lock_tables(&mut rng, a, &host, &zones, &frames, &stacks);
    let pcp = pcp_pages(&mut rng, &host.cpus);
    let skb_matrix = cpu_pairs(&mut rng, &host, a.skb_cells as usize, 20)
        .into_iter()
        .map(|(alloc_cpu, free_cpu, count)| SkbCell {
            alloc_cpu,
            free_cpu,
            count,
        })
        .collect();
    let skb_sites = skb_sites(&mut rng, &host.cpus);
    let skb_defer = skb_defer(&mut rng, &host.cpus);
    let page_matrix = page_matrix(&mut rng, &host);
    let counters = counters(&lock_waits, &zones, &skb_sites);

    Ok(Recording {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        zoneprof_version: env!("CARGO_PKG_VERSION").into(),
        host: HostInfo {
            hostname: format!("synthetic-{}cpu", a.cpus),
            kernel_release: "6.18.0-synthetic".into(),
            kernel_version: "#1 SMP PREEMPT_DYNAMIC".into(),
            arch: "x86_64".into(),
            online_cpus: host.cpus.clone(),
            possible_cpus: a.cpus,
            cpu_node: host.cpus.iter().map(|&c| (c, host.node_of(c))).collect(),
            numa_nodes: (0..a.nodes).collect(),
        },
        settings: Settings {
            skb_defer_max: Some(64),
            percpu_pagelist_high_fraction: Some(0),
            stat_interval: Some(1),
            pcp: host.pcp_settings(),
            map_entries: Vec::new(),
            tasks: false,
        },
        start_unix_ms: 1_764_140_000_000 + a.seed * 1_000,
        duration_ns: 30_000_000_000,
        cpus: host.cpus,
        end_reason: "duration".into(),
        command: None,
        probes: every_probe_attached(),
        frames,
        stacks,
        lock_waits,
        wait_hist,
        zones,
        pcp,
        counters,
        skb_matrix,
        skb_sites,
        skb_defer,
        page_matrix,
        page_tracking: Some(PageTracking {
            sample_one_in: 64,
            pages_by_order: vec![1_000_000, 2_000, 500, 300, 0, 0, 0, 0, 0, 1, 0],
            lifetime_hist: (10..30).map(|b| (b, 1_000 * u64::from(b))).collect(),
            map_full: 0,
        }),
        // Synthetic: no program ran.
        observer: None,
        tasks: Vec::new(),
        cgroups: Vec::new(),
    })
}

/// `n` distinct stacks: the real ones first, then splices of two real ones, within a
/// bounded number of attempts. Stack shapes are the same for every seed (so before/after
/// share stacks, as two recordings of one host do). Returns (frames, stacks) as a
/// recording holds them.
fn distinct_stacks(base: &[Vec<String>], n: usize) -> Result<(Vec<String>, Vec<Vec<u32>>)> {
    let mut shape = Rng(0x5EED);
    let mut interner = StackInterner::default();
    let mut seen: HashSet<Vec<u32>> = HashSet::new();
    let mut order: Vec<Vec<u32>> = Vec::new();
    let max_attempts = n as u64 * 50 + 10_000;
    let mut attempts = 0u64;
    for s in base {
        let ids: Vec<u32> = s.iter().map(|f| interner.frame(f.clone())).collect();
        if seen.insert(ids.clone()) {
            order.push(ids);
        }
        if order.len() >= n {
            break;
        }
    }
    while order.len() < n {
        attempts += 1;
        if attempts > max_attempts {
            bail!(
                "could only make {} distinct stacks from {} real ones",
                order.len(),
                base.len()
            );
        }
        let ids: Vec<u32> = splice(&mut shape, base)
            .into_iter()
            .map(|f| interner.frame(f))
            .collect();
        if seen.insert(ids.clone()) {
            order.push(ids);
        }
    }
    for s in &order {
        interner.stack(s.clone());
    }
    Ok(interner.finish())
}

/// The leaf part of one real stack (lock frames and the lock taker) joined to the root part
/// of another.
fn splice(shape: &mut Rng, base: &[Vec<String>]) -> Vec<String> {
    let x = &base[shape.below(base.len() as u64) as usize];
    let y = &base[shape.below(base.len() as u64) as usize];
    let cut_x = 2 + shape.below(x.len().saturating_sub(2) as u64 + 1) as usize;
    let cut_y = shape.below(y.len() as u64) as usize;
    let mut frames: Vec<String> = x[..cut_x.min(x.len())].to_vec();
    frames.extend_from_slice(&y[cut_y..]);
    // A varied call-site offset on one middle frame, as different call paths give.
    if frames.len() > 3 && shape.below(3) == 0 {
        let i = 2 + shape.below(frames.len() as u64 - 2) as usize;
        let base_name = frames[i].split('+').next().unwrap_or("").to_string();
        frames[i] = format!("{base_name}+0x{:x}", 0x10 + shape.below(0x400));
    }
    frames.truncate(127);
    frames
}

/// CPUs split evenly over NUMA nodes, each node with a DMA32 and a Normal zone.
struct Topology {
    cpus: Vec<u32>,
    nodes: u32,
    per_node: u32,
}

const ZONE_NAMES: [&str; 2] = ["DMA32", "Normal"];

impl Topology {
    fn new(cpus: u32, nodes: u32) -> Self {
        Self {
            cpus: (0..cpus).collect(),
            nodes,
            per_node: cpus.div_ceil(nodes),
        }
    }

    fn node_of(&self, cpu: u32) -> u32 {
        (cpu / self.per_node).min(self.nodes - 1)
    }

    /// A CPU of `node` (its first when the even split leaves the node none).
    fn cpu_of(&self, rng: &mut Rng, node: u32) -> u32 {
        let first = node * self.per_node;
        let n = self
            .per_node
            .min(self.cpus.len() as u32 - first.min(self.cpus.len() as u32));
        first + rng.below(u64::from(n)) as u32
    }

    /// Where a flow that starts on `alloc_cpu` ends: 6 in 10 on a CPU of its node, else on
    /// a CPU of the next node (as NAPI on one node and vhost threads on another).
    fn free_cpu_for(&self, rng: &mut Rng, alloc_cpu: u32) -> u32 {
        let node = self.node_of(alloc_cpu);
        let to = if rng.below(10) < 6 {
            node
        } else {
            (node + 1) % self.nodes
        };
        self.cpu_of(rng, to)
    }

    /// Node by node, zone by zone: node n's Normal zone is at index 2n + 1.
    fn zones(&self) -> Vec<ZoneLabel> {
        (0..self.nodes)
            .flat_map(|n| {
                ZONE_NAMES
                    .iter()
                    .enumerate()
                    .map(move |(i, name)| ZoneLabel {
                        lock_addr: 0xffff_8880_0000_0000
                            + u64::from(n) * 0x1_0000_0000
                            + i as u64 * 0x1000,
                        node: n,
                        zone_idx: i as u32 + 1,
                        name: (*name).to_string(),
                    })
            })
            .collect()
    }

    fn pcp_settings(&self) -> Vec<PcpSetting> {
        self.cpus
            .iter()
            .flat_map(|&cpu| {
                ZONE_NAMES.iter().map(move |z| PcpSetting {
                    node: self.node_of(cpu),
                    zone: (*z).to_string(),
                    cpu,
                    count: 0,
                    high: 1_000,
                    batch: 63,
                    high_min: Some(250),
                    high_max: Some(1_000),
                })
            })
            .collect()
    }
}

/// Lock waits (each stack on 1-4 CPUs, zone takers on their node's Normal zone, plus a few
/// stackless waits as a real host has) and two histogram buckets per stack.
fn lock_tables(
    rng: &mut Rng,
    a: &SynthArgs,
    host: &Topology,
    zones: &[ZoneLabel],
    frames: &[String],
    stacks: &[Vec<u32>],
) -> (Vec<LockWait>, Vec<HistEntry>) {
    let normal_of = |node: u32| zones[(node as usize) * 2 + 1].lock_addr;
    let scale = |ns: u64| -> u64 { (ns as f64 * a.wait_scale).round() as u64 };
    let mut lock_waits = Vec::new();
    let mut wait_hist = Vec::new();
    for (i, s) in stacks.iter().enumerate() {
        let zone = zone_taker(s, frames);
        let ncpu = 1 + rng.below(4);
        for _ in 0..ncpu {
            let cpu = rng.below(u64::from(a.cpus)) as u32;
            let lock_addr = if zone {
                // A quarter on another node's zone: pages of that node freed (drained) or
                // allocated here.
                let own = host.node_of(cpu);
                let remote = host.nodes > 1 && rng.below(4) == 0;
                normal_of(if remote {
                    (own + 1 + rng.below(u64::from(host.nodes - 1)) as u32) % host.nodes
                } else {
                    own
                })
            } else {
                0xffff_8881_0000_0000 + rng.below(2_000) * 0x40
            };
            let count = 1 + rng.below(500);
            let avg = 500 + rng.below(20_000);
            lock_waits.push(LockWait {
                stack: Some(i as u32),
                stack_error: None,
                cpu,
                lock_addr,
                lock_flags: 1,
                count,
                total_ns: scale(count * avg),
                max_ns: scale(avg * (2 + rng.below(20))),
                tid: None,
            });
        }
        for _ in 0..2 {
            wait_hist.push(HistEntry {
                stack: Some(i as u32),
                bucket: 9 + rng.below(12) as u32,
                count: 1 + rng.below(2_000),
            });
        }
    }
    for cpu in (0..a.cpus).step_by(16) {
        lock_waits.push(LockWait {
            stack: None,
            stack_error: Some(-17),
            cpu,
            lock_addr: normal_of(host.node_of(cpu)),
            lock_flags: 1,
            count: 3,
            total_ns: scale(30_000),
            max_ns: scale(20_000),
            tid: None,
        });
    }
    (lock_waits, wait_hist)
}

fn pcp_pages(rng: &mut Rng, cpus: &[u32]) -> Vec<CpuPages> {
    cpus.iter()
        .map(|&cpu| {
            let refill = rng.below(2_000_000);
            let drain = rng.below(2_000_000);
            CpuPages {
                cpu,
                refill_events: refill / 8,
                refill_pages: refill,
                buddy_events: rng.below(10_000),
                buddy_pages: rng.below(40_000),
                drain_events: drain / 8,
                drain_pages: drain,
                ..Default::default()
            }
        })
        .collect()
}

/// Up to `n` distinct (alloc CPU, free CPU, count) cells, within `n * tries_per_cell` draws.
fn cpu_pairs(
    rng: &mut Rng,
    host: &Topology,
    n: usize,
    tries_per_cell: u64,
) -> Vec<(u32, u32, u64)> {
    let mut cells = HashSet::new();
    let mut out = Vec::new();
    let mut tries = 0u64;
    while out.len() < n && tries < n as u64 * tries_per_cell {
        tries += 1;
        let alloc_cpu = rng.below(host.cpus.len() as u64) as u32;
        let free_cpu = host.free_cpu_for(rng, alloc_cpu);
        if cells.insert((alloc_cpu, free_cpu)) {
            out.push((alloc_cpu, free_cpu, 1 + rng.below(1_000_000)));
        }
    }
    out
}

fn skb_sites(rng: &mut Rng, cpus: &[u32]) -> Vec<SkbSite> {
    let callers = [
        "tun_do_read+0x5b",
        "napi_consume_skb+0x45",
        "tcp_rcv_established+0x2f1",
        "skb_release_data+0x1a0",
    ];
    let mut sites = Vec::new();
    for &cpu in cpus {
        for (fi, func) in ["consume_skb", "kfree_skb"].iter().enumerate() {
            let count = rng.below(500_000);
            let remote = count / 2;
            sites.push(SkbSite {
                function: (*func).to_string(),
                caller: callers[(cpu as usize + fi) % callers.len()].to_string(),
                cpu,
                count,
                remote,
                cross_node: remote / 3,
                tid: None,
            });
        }
    }
    sites
}

fn skb_defer(rng: &mut Rng, cpus: &[u32]) -> Vec<SkbDefer> {
    cpus.iter()
        .map(|&cpu| {
            let calls = rng.below(100_000);
            SkbDefer {
                cpu,
                calls,
                deferred: calls / 2,
                immediate: calls - calls / 2,
                flushed: calls / 2,
                ipis: calls / 64,
            }
        })
        .collect()
}

/// Up to 2,000 page-flow cells, within 40,000 draws.
fn page_matrix(rng: &mut Rng, host: &Topology) -> Vec<PageCell> {
    let mut page_matrix = Vec::new();
    let mut pcells = HashSet::new();
    let mut tries = 0;
    while page_matrix.len() < 2_000 && tries < 40_000 {
        tries += 1;
        let alloc_cpu = rng.below(host.cpus.len() as u64) as u32;
        let free_cpu = host.free_cpu_for(rng, alloc_cpu);
        if pcells.insert((alloc_cpu, free_cpu)) {
            page_matrix.push(PageCell {
                alloc_cpu,
                free_cpu,
                pages: 64 * (1 + rng.below(10_000)),
            });
        }
    }
    page_matrix
}

/// The counters a recording of these tables would have, and a few stack collisions.
fn counters(lock_waits: &[LockWait], zones: &[ZoneLabel], skb_sites: &[SkbSite]) -> Counters {
    let zone_addrs: HashSet<u64> = zones.iter().map(|z| z.lock_addr).collect();
    let on_zone = || {
        lock_waits
            .iter()
            .filter(|w| zone_addrs.contains(&w.lock_addr))
    };
    let contentions: u64 = lock_waits.iter().map(|w| w.count).sum();
    Counters {
        contention_begin: contentions,
        contention_end: contentions,
        zone_wait_ns: on_zone().map(|w| w.total_ns).sum(),
        zone_contentions: on_zone().map(|w| w.count).sum(),
        total_wait_ns: lock_waits.iter().map(|w| w.total_ns).sum(),
        skb_frees: skb_sites.iter().map(|s| s.count).sum(),
        stack_collisions: 40,
        ..Default::default()
    }
}

/// Every catalog probe, attached with its preferred method.
fn every_probe_attached() -> Vec<ProbeStatus> {
    crate::kernel::probes::CATALOG
        .iter()
        .map(|p| {
            let m = p.methods[0];
            ProbeStatus {
                name: p.name.to_string(),
                method: m.kind().to_string(),
                target: m.target(),
                attached: true,
                reason: None,
                attempts: vec![],
            }
        })
        .collect()
}

/// Builds and writes the recording; prints one summary line on stderr.
pub fn run(a: &SynthArgs) -> Result<()> {
    let rec = build(a)?;
    write(&rec, &a.output)?;
    eprintln!(
        "zoneprof-synth: wrote synthetic {} ({} CPUs, {} NUMA nodes, {} stacks, {} frames, {} lock-wait entries, {} SKB cells)",
        a.output.display(),
        rec.cpus.len(),
        rec.host.numa_nodes.len(),
        rec.stacks.len(),
        rec.frames.len(),
        rec.lock_waits.len(),
        rec.skb_matrix.len()
    );
    Ok(())
}

fn write(rec: &Recording, path: &Path) -> Result<()> {
    rec.write_atomic(path)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(dir: &Path) -> PathBuf {
        let p = dir.join("x.folded");
        std::fs::write(
            &p,
            "cpu0;do_idle+0x1;free_unref_folios+0x346;free_frozen_page_commit+0x19d;free_pcppages_bulk+0x37;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 100\n\
             cpu1;ret_from_fork+0x1;handle_mm_fault+0x10;get_page_from_freelist+0x2fe;__rmqueue_pcplist+0x233;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 200\n\
             cpu1;ret_from_fork+0x1;sched_tick+0x43;_raw_spin_lock+0x3b;__pv_queued_spin_lock_slowpath+0x15b 300\n",
        )
        .expect("write");
        p
    }

    #[test]
    fn builds_distinct_stacks_that_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SynthArgs {
            output: dir.path().join("s.zprof"),
            cpus: 64,
            nodes: 2,
            stacks: 300,
            skb_cells: 100,
            folded: vec![folded(dir.path())],
            seed: 7,
            wait_scale: 1.0,
        };
        let rec = build(&a).expect("build");
        assert_eq!(rec.stacks.len(), 300);
        let distinct: HashSet<_> = rec.stacks.iter().collect();
        assert_eq!(distinct.len(), 300);
        assert_eq!(rec.skb_matrix.len(), 100);
        assert_eq!(rec.host.possible_cpus, 64);
        assert!(rec.lock_waits.iter().all(|w| w.cpu < 64));
        assert!(rec.page_matrix.iter().all(|c| c.free_cpu < 64));
        run(&a).expect("run");
        let back = Recording::read(&a.output).expect("read");
        assert_eq!(back, rec);
        // Same seed, same recording; other seed, same stacks, other values.
        assert_eq!(build(&a).expect("again"), rec);
        let b = build(&SynthArgs { seed: 8, ..a }).expect("seed 8");
        assert_eq!(b.stacks, rec.stacks);
        assert_ne!(b.lock_waits, rec.lock_waits);
    }

    /// 640 CPUs on 8 nodes (the bench's host): zone locks on every node, zone-lock wait
    /// on other nodes' zones, and flows within and across nodes, none to a missing CPU.
    #[test]
    fn many_nodes_have_zones_and_cross_node_flows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SynthArgs {
            output: dir.path().join("s.zprof"),
            cpus: 640,
            nodes: 8,
            stacks: 400,
            skb_cells: 500,
            folded: vec![folded(dir.path())],
            seed: 1,
            wait_scale: 1.0,
        };
        let rec = build(&a).expect("build");
        assert_eq!(rec.host.numa_nodes, (0..8).collect::<Vec<_>>());
        let zone_nodes: HashSet<u32> = rec.zones.iter().map(|z| z.node).collect();
        assert_eq!(zone_nodes.len(), 8);
        let node = |cpu: u32| rec.host.node_of(cpu);
        let zone_node = |addr: u64| {
            rec.zones
                .iter()
                .find(|z| z.lock_addr == addr)
                .map(|z| z.node)
        };
        let (mut local, mut remote) = (0, 0);
        for w in &rec.lock_waits {
            match zone_node(w.lock_addr) {
                Some(n) if n == node(w.cpu) => local += 1,
                Some(_) => remote += 1,
                None => {}
            }
        }
        assert!(
            remote > 0 && local > 2 * remote,
            "{local} local, {remote} remote"
        );
        for cells in [
            rec.page_matrix
                .iter()
                .map(|c| (c.alloc_cpu, c.free_cpu))
                .collect::<Vec<_>>(),
            rec.skb_matrix
                .iter()
                .map(|c| (c.alloc_cpu, c.free_cpu))
                .collect(),
        ] {
            assert!(cells.iter().all(|&(a, f)| a < 640 && f < 640));
            let cross = cells.iter().filter(|&&(a, f)| node(a) != node(f)).count();
            // 4 in 10 to the next node: well inside 20-60 %.
            assert!(
                cross * 5 > cells.len() && cross * 5 < cells.len() * 3,
                "{cross} of {} cross-node",
                cells.len()
            );
            assert!(
                cells
                    .iter()
                    .filter(|&&(a, f)| node(a) != node(f))
                    .all(|&(a, f)| node(f) == (node(a) + 1) % 8)
            );
        }
    }

    #[test]
    fn cpu_frames_are_dropped() {
        assert!(is_cpu_frame("cpu12"));
        assert!(!is_cpu_frame("cpu_startup_entry+0x29"));
        assert!(!is_cpu_frame("cpu"));
    }
}
