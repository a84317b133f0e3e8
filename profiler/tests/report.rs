//! `zoneprof report` text and JSON checked against committed golden files: a recording that
//! fills every section, a sparse one that takes the "nothing here" branches, and one built
//! from a real contention fixture.
//!
//! `ZONEPROF_BLESS=1 cargo test -p profiler --test report` rewrites the golden files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use common::{check_golden, probe};
use zoneprof::{
    kernel::host::{HostInfo, Settings},
    model::recording::{
        AttachAttempt, CommandInfo, Counters, CpuPages, DispatchCost, HistEntry, LockWait,
        ObserverStats, PageCell, PageTracking, ProbeStatus, ProgramRunStats, Recording, SkbCell,
        SkbDefer, SkbSite, StackInterner, ZoneLabel,
    },
    output::report,
};

const ZONE_N0: u64 = 0xffff_8880_3ffd_6b08;
const ZONE_N1: u64 = 0xffff_8881_3ffd_6b08;

fn host(ncpus: u32, nodes: u32) -> HostInfo {
    let cpus: Vec<u32> = (0..ncpus).collect();
    let per_node = ncpus.div_ceil(nodes);
    HostInfo {
        hostname: "golden".into(),
        kernel_release: "6.18.0-golden".into(),
        kernel_version: "#1 SMP".into(),
        arch: "x86_64".into(),
        online_cpus: cpus.clone(),
        possible_cpus: ncpus,
        cpu_node: cpus.iter().map(|&c| (c, c / per_node)).collect(),
        numa_nodes: (0..nodes).collect(),
    }
}

fn empty(host: HostInfo) -> Recording {
    Recording {
        format: "zoneprof-recording".into(),
        version: 1,
        zoneprof_version: "golden".into(),
        cpus: host.online_cpus.clone(),
        host,
        settings: Settings::default(),
        start_unix_ms: 1_764_140_000_000,
        duration_ns: 3_000_000_000,
        end_reason: "duration".into(),
        command: None,
        probes: vec![],
        frames: vec![],
        stacks: vec![],
        lock_waits: vec![],
        wait_hist: vec![],
        zones: vec![],
        pcp: vec![],
        counters: Counters::default(),
        skb_matrix: vec![],
        skb_sites: vec![],
        skb_defer: vec![],
        page_matrix: vec![],
        page_tracking: None,
        observer: None,
        tasks: Vec::new(),
        cgroups: Vec::new(),
    }
}

/// Leaf-first stacks; the lock frames lead.
fn stack(i: &mut StackInterner, frames: &[&str]) -> u32 {
    let lock = [
        "native_queued_spin_lock_slowpath+0x2a1",
        "_raw_spin_lock_irqsave+0x4d",
    ];
    let ids = lock
        .iter()
        .chain(frames)
        .map(|f| i.frame((*f).to_string()))
        .collect();
    i.stack(ids)
}

fn wait(stack: Option<u32>, cpu: u32, lock_addr: u64, count: u64, total_ns: u64) -> LockWait {
    LockWait {
        stack,
        stack_error: stack.is_none().then_some(-14),
        cpu,
        lock_addr,
        lock_flags: 1,
        count,
        total_ns,
        max_ns: total_ns / count.max(1) * 3,
        tid: None,
    }
}

fn attached_after(name: &str, method: &str, target: &str, failed: &[(&str, &str)]) -> ProbeStatus {
    ProbeStatus {
        method: method.into(),
        attempts: failed
            .iter()
            .map(|(m, e)| AttachAttempt {
                method: (*m).into(),
                target: target.into(),
                error: Some((*e).into()),
            })
            .collect(),
        ..probe(name, target, true)
    }
}

/// 20 CPUs on two nodes: every table and every optional section has rows.
fn rich() -> Recording {
    let mut rec = empty(host(20, 2));
    rec.command = Some(CommandInfo {
        argv: vec!["stress-ng".into(), "--vm".into(), "2".into()],
        exit_code: Some(0),
        signal: None,
    });
    let mut i = StackInterner::default();
    let alloc = stack(
        &mut i,
        &[
            "__rmqueue_pcplist+0x233",
            "get_page_from_freelist+0x2fe",
            "__alloc_frozen_pages_noprof+0x10f",
            "alloc_pages_mpol+0x8c",
            "folio_alloc_mpol_noprof+0x14",
            "vma_alloc_folio_noprof+0x6e",
            "do_anonymous_page+0x1b7",
            "__handle_mm_fault+0x6b2",
            "handle_mm_fault+0x10c",
            "do_user_addr_fault+0x1ee",
            "exc_page_fault+0x6a",
            "asm_exc_page_fault+0x26",
            "[user]",
            "[user+1]",
        ],
    );
    let free_high = stack(
        &mut i,
        &[
            "free_pcppages_bulk+0x37",
            "free_frozen_page_commit+0x19d",
            "free_unref_folios+0x346",
            "folios_put_refs+0xe2",
        ],
    );
    let free_drain = stack(
        &mut i,
        &[
            "free_pcppages_bulk+0x37",
            "drain_pages_zone+0x48",
            "drain_pages+0x3d",
        ],
    );
    let direct = stack(&mut i, &["free_one_page+0x61", "__free_pages_ok+0x1d0"]);
    let compaction = stack(
        &mut i,
        &["isolate_freepages_block+0x2c4", "compact_zone+0x7e1"],
    );
    let rq = stack(&mut i, &["raw_spin_rq_lock_nested+0x1c", "sched_tick+0x43"]);
    let lru = stack(
        &mut i,
        &[
            "folio_lruvec_lock_irqsave+0x4e",
            "folio_batch_move_lru+0x8f",
        ],
    );
    let mmap = stack(
        &mut i,
        &["rwsem_down_write_slowpath+0x21d", "vm_mmap_pgoff+0xd0"],
    );
    let slab = stack(&mut i, &["get_partial_node+0x3a", "___slab_alloc+0x4cf"]);
    let (frames, stacks) = i.finish();
    rec.frames = frames;
    rec.stacks = stacks;
    rec.zones = vec![
        ZoneLabel {
            lock_addr: ZONE_N0,
            node: 0,
            zone_idx: 2,
            name: "Normal".into(),
        },
        ZoneLabel {
            lock_addr: ZONE_N1,
            node: 1,
            zone_idx: 2,
            name: "Normal".into(),
        },
    ];
    rec.lock_waits = vec![
        wait(Some(alloc), 0, ZONE_N0, 400, 48_000_000),
        wait(Some(alloc), 12, ZONE_N1, 100, 9_000_000),
        wait(Some(free_high), 1, ZONE_N0, 700, 91_000_000),
        wait(Some(free_high), 11, ZONE_N1, 30, 2_100_000),
        wait(Some(free_drain), 2, ZONE_N0, 12, 1_300_000),
        wait(Some(direct), 3, ZONE_N0, 5, 420_000),
        wait(Some(compaction), 4, ZONE_N0, 3, 95_000),
        wait(None, 5, ZONE_N0, 2, 31_000),
        wait(Some(rq), 6, 0xffff_8882_0000_1000, 80, 7_700_000),
        wait(Some(lru), 7, 0xffff_8882_0000_2000, 60, 5_200_000),
        wait(Some(mmap), 8, 0xffff_8882_0000_3000, 20, 3_900_000),
        wait(Some(slab), 9, 0xffff_8882_0000_4000, 9, 610_000),
    ];
    rec.wait_hist = [
        (alloc, 12, 50),
        (alloc, 16, 400),
        (alloc, 17, 50),
        (free_high, 15, 90),
        (free_high, 17, 640),
        (free_drain, 16, 12),
        (rq, 14, 80),
        (lru, 13, 60),
        (mmap, 18, 20),
        (slab, 11, 9),
    ]
    .into_iter()
    .map(|(s, bucket, count)| HistEntry {
        stack: Some(s),
        bucket,
        count,
    })
    .collect();
    rec.pcp = (0..20)
        .filter(|c| ![5, 6, 7, 8, 9, 10].contains(c))
        .map(|cpu| {
            let c = u64::from(cpu);
            CpuPages {
                cpu,
                refill_events: 10 * c + 1,
                refill_pages: 630 * (c + 1),
                drain_events: 9 * c,
                drain_pages: 510 * c,
                rmqueue_calls: 10 * c + 1,
                rmqueue_ns: 4_000 * (c + 1),
                refill_batch_pages: 630 * (c + 1),
                refill_batches: 10 * c + 1,
                ..Default::default()
            }
        })
        .collect();
    rec.probes = vec![
        attached_after(
            "contention_begin",
            "raw_tracepoint",
            "lock:contention_begin",
            &[],
        ),
        probe("contention_end", "lock:contention_end", true),
        attached_after(
            "rmqueue_pcplist",
            "tracepoint",
            "rmqueue_pcplist",
            &[
                ("fentry", "fentry is denied on this host (EPERM)"),
                ("kprobe", "kprobes are not available on this kernel"),
            ],
        ),
        probe("pcp_drain", "kmem:mm_page_pcpu_drain", true),
        probe("consume_skb", "skb:consume_skb", true),
        probe("kfree_skb", "skb:kfree_skb", true),
        attached_after(
            "skb_attempt_defer_free",
            "kprobe",
            "skb_attempt_defer_free",
            &[("fentry", "fentry is denied on this host (EPERM)")],
        ),
        ProbeStatus {
            reason: Some("trigger_rx_softirq is not in kallsyms".into()),
            ..probe("skb_defer_ipi", "csd:csd_queue_cpu", false)
        },
    ];
    rec.counters = Counters {
        contention_begin: 1_421,
        contention_end: 1_421,
        stack_collisions: 3,
        lost_wait_ns: 12_345,
        zone_wait_ns: 151_000_000,
        zone_contentions: 1_255,
        total_wait_ns: 170_000_000,
        skb_frees: 2_000_000,
        ..Default::default()
    };
    rec.observer = Some(ObserverStats {
        programs: vec![
            ProgramRunStats {
                probe: "pcp_drain".into(),
                program: "raw_mm_page_pcpu_drain".into(),
                runs: 60_000,
                run_ns: 2_400_000,
            },
            ProgramRunStats {
                probe: "contention_end".into(),
                program: "raw_contention_end".into(),
                runs: 1_421,
                run_ns: 700_000,
            },
        ],
        stats_error: None,
        dispatch: vec![DispatchCost {
            method: "tracepoint".into(),
            ns_per_run: 45.0,
            min_ns: 41.5,
            max_ns: 52.0,
            rounds: 15,
            calls_per_round: 8_000,
        }],
        dispatch_error: None,
    });
    let site = |function: &str, caller: &str, cpu, count, remote, cross_node| SkbSite {
        function: function.into(),
        caller: caller.into(),
        cpu,
        count,
        remote,
        cross_node,
        tid: None,
    };
    rec.skb_sites = vec![
        site("consume_skb", "tun_do_read+0x5b", 1, 900_000, 880_000, 0),
        site(
            "consume_skb",
            "tun_do_read+0x5b",
            13,
            600_000,
            590_000,
            590_000,
        ),
        site("kfree_skb", "tcp_data_queue+0x3a1", 1, 40_000, 1_000, 0),
        site("consume_skb", "skb_defer_free_flush+0x2e", 0, 20_000, 0, 0),
        site(
            "skb_attempt_defer_free",
            "tcp_recvmsg_locked+0x2c1",
            1,
            300_000,
            250_000,
            0,
        ),
    ];
    let cell = |alloc_cpu, free_cpu, count| SkbCell {
        alloc_cpu,
        free_cpu,
        count,
    };
    rec.skb_matrix = vec![
        cell(0, 1, 880_000),
        cell(1, 1, 60_000),
        cell(0, 13, 590_000),
        cell(13, 13, 10_000),
        cell(2, 1, 1_000),
        cell(0, 0, 20_000),
    ];
    rec.skb_defer = vec![
        SkbDefer {
            cpu: 0,
            flushed: 250_000,
            ipis: 4_000,
            ..Default::default()
        },
        SkbDefer {
            cpu: 1,
            calls: 300_000,
            deferred: 250_000,
            immediate: 50_000,
            ..Default::default()
        },
    ];
    rec.page_matrix = vec![
        PageCell {
            alloc_cpu: 0,
            free_cpu: 1,
            pages: 640_000,
        },
        PageCell {
            alloc_cpu: 1,
            free_cpu: 1,
            pages: 64_000,
        },
        PageCell {
            alloc_cpu: 12,
            free_cpu: 3,
            pages: 6_400,
        },
    ];
    rec.page_tracking = Some(PageTracking {
        sample_one_in: 64,
        pages_by_order: vec![11_000, 0, 0, 40],
        lifetime_hist: vec![(20, 700), (24, 300)],
        map_full: 17,
    });
    rec
}

/// Two CPUs, nothing recorded: the "none" and "not observable" branches.
fn sparse() -> Recording {
    let mut rec = empty(host(2, 1));
    rec.end_reason = "command exited".into();
    rec.command = Some(CommandInfo {
        argv: vec!["sleep".into(), "1".into()],
        exit_code: None,
        signal: Some(9),
    });
    rec.probes = vec![
        probe("contention_begin", "lock:contention_begin", true),
        probe("contention_end", "lock:contention_end", true),
        probe("pcp_refill", "kmem:mm_page_alloc_zone_locked", false),
        probe("kfree_skb", "skb:kfree_skb", true),
    ];
    rec.counters.skb_frees = 5;
    rec.skb_defer = vec![SkbDefer {
        cpu: 1,
        flushed: 3,
        ipis: 1,
        ..Default::default()
    }];
    rec
}

fn check_both(name: &str, rec: &Recording, top: usize) {
    let r = report::build(rec, top);
    check_golden(&format!("report-{name}.txt"), &report::to_text(&r, top));
    check_golden(
        &format!("report-{name}.json"),
        &(report::to_json(&r) + "\n"),
    );
}

#[test]
fn every_section_matches_the_golden_report() {
    check_both("rich", &rich(), 10);
    // A small --top cuts the stack, SKB pair, site and page-flow lists.
    let r = report::build(&rich(), 2);
    check_golden("report-rich-top2.txt", &report::to_text(&r, 2));
}

#[test]
fn empty_sections_match_the_golden_report() {
    check_both("sparse", &sparse(), 10);
}

#[test]
fn fixture_report_matches_the_golden_report() {
    let name = "vm2-6.18-cross-cpu-free";
    let Some(text) = common::fixture(
        "fixture_report_matches_the_golden_report",
        &format!("{name}.folded"),
    ) else {
        return;
    };
    let rec = common::recording_from_folded(&text, "vm2", 5.0, 2);
    let r = report::build(&rec, 5);
    check_golden(&format!("report-{name}.txt"), &report::to_text(&r, 5));
}
