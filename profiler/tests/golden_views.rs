//! Every compare output (JSON, text, HTML) and the report HTML, byte for byte against
//! committed golden files, on synthetic recordings built to reach each section: a
//! refactor of the comparison model or of the views must leave them unchanged.
//!
//! HTML goldens hold each inlined flamegraph as its length and FNV-1a hash instead of the
//! base64 (hundreds of KB each): the page around it is compared as is, the SVG bytes by hash.
//!
//! `ZONEPROF_BLESS=1 cargo test -p profiler --test golden_views` rewrites the golden files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use std::path::PathBuf;

use zoneprof::{
    kernel::host::PcpSetting,
    model::recording::{
        CommandInfo, CpuPages, ObserverStats, PageCell, PageTracking, ProgramRunStats, Recording,
        SkbCell, SkbDefer, SkbSite, ZoneLabel,
    },
    output::{compare, html},
};

fn check_golden(file: &str, actual: &str) {
    common::check_golden(&format!("views/{file}"), actual);
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The HTML with every `data:…;base64,PAYLOAD` replaced by the payload's length and hash,
/// one line per page element boundary so a diff points at the section that changed.
fn html_golden(html: &str) -> String {
    const MARK: &str = ";base64,";
    let mut out = String::with_capacity(html.len().min(1 << 20));
    let mut rest = html;
    while let Some(i) = rest.find(MARK) {
        let start = i + MARK.len();
        let len = rest[start..].find('"').unwrap_or(rest.len() - start);
        let payload = &rest[start..start + len];
        out.push_str(&rest[..start]);
        out.push_str(&format!(
            "[{} base64 chars, fnv1a64 {:016x}]",
            payload.len(),
            fnv1a64(payload.as_bytes())
        ));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    // Break after each section/table/heading close, so lines stay short enough to diff.
    out.replace("</section>", "</section>\n")
        .replace("</table>", "</table>\n")
        .replace("</h3>", "</h3>\n")
}

fn vm16(test: &str, name: &str, host: &str, ncpus: u32) -> Option<Recording> {
    let text = common::fixture(test, &format!("{name}.folded"))?;
    Some(common::recording_from_folded(&text, host, 4.0, ncpus))
}

/// PCP counts, SKB matrix, sites and page matrix on 16 CPUs: cross-CPU frees or same-CPU.
fn with_tables(mut r: Recording, cross: bool) -> Recording {
    r.probes.iter_mut().for_each(|p| p.attached = true);
    let secs = r.duration_s();
    r.pcp = (0..16)
        .map(|cpu| CpuPages {
            cpu,
            refill_pages: if cpu < 8 {
                (if cross { 180_000.0 } else { 500.0 } * secs) as u64 + u64::from(cpu) * 7
            } else {
                0
            },
            drain_pages: if cpu >= 8 && cross {
                (175_000.0 * secs) as u64 + u64::from(cpu) * 3
            } else if cpu == 3 {
                1_234
            } else {
                0
            },
            ..Default::default()
        })
        .collect();
    r.skb_matrix = (0..8)
        .map(|i| SkbCell {
            alloc_cpu: i,
            free_cpu: if cross { i + 8 } else { i },
            count: 1_000_000 + u64::from(i) * 1_111,
        })
        .collect();
    r.page_matrix = (0..6)
        .map(|i| PageCell {
            alloc_cpu: i,
            free_cpu: if cross { 15 - i } else { i },
            pages: 40_000 + u64::from(i) * 999,
        })
        .collect();
    r.page_tracking = Some(PageTracking {
        sample_one_in: 64,
        pages_by_order: vec![1000, 20, 3],
        lifetime_hist: vec![(10, 500), (20, 30)],
        map_full: 0,
    });
    r.skb_sites = vec![
        SkbSite {
            function: "consume_skb".into(),
            caller: "tun_do_read".into(),
            cpu: 8,
            count: 8_000_000,
            remote: if cross { 7_900_000 } else { 100_000 },
            cross_node: if cross { 1_000 } else { 0 },
            tid: None,
        },
        SkbSite {
            function: "kfree_skb".into(),
            caller: "<ip_rcv_finish & \"x\">".into(),
            cpu: 2,
            count: if cross { 5_000 } else { 90_000 },
            remote: 40,
            cross_node: 0,
            tid: None,
        },
    ];
    r.zones = vec![ZoneLabel {
        lock_addr: 0xffff_0000_0000_1000,
        node: 0,
        zone_idx: 2,
        name: "Normal".into(),
    }];
    r.settings.skb_defer_max = Some(64);
    r.settings.pcp = (0..16)
        .map(|cpu| PcpSetting {
            node: 0,
            zone: "Normal".into(),
            cpu,
            count: 10,
            high: 500 + u64::from(cpu % 2) * 100,
            batch: 63,
            high_min: None,
            high_max: None,
        })
        .collect();
    r.command = Some(CommandInfo {
        argv: vec!["zoneprof".into(), "workload".into(), "pair".into()],
        exit_code: Some(0),
        signal: None,
    });
    r
}

fn observer(runs: u64, run_ns: u64) -> ObserverStats {
    ObserverStats {
        programs: vec![ProgramRunStats {
            probe: "pcp_refill".into(),
            program: "raw_page_alloc_zone_locked".into(),
            runs,
            run_ns,
        }],
        // As made before zoneprof measured the dispatch: program time only.
        ..Default::default()
    }
}

/// JSON, text and HTML of one comparison, and its flamegraph file names as the JSON lists them.
fn check_compare(name: &str, b: &Recording, a: &Recording, top: usize) {
    let recs = compare::Pair::new(b, a);
    let mut c = compare::compare(recs, compare::Pair::new("before.zprof", "after.zprof"), top);
    let dir = tempfile::tempdir().expect("tempdir");
    c.flamegraphs = compare::write_flamegraphs(recs, dir.path())
        .expect("flamegraphs")
        .into_iter()
        .map(|p| {
            let p = PathBuf::from(p);
            let file = p.file_name().expect("file name").to_string_lossy();
            format!("out/{file}")
        })
        .collect();
    check_golden(
        &format!("{name}.compare.json"),
        &(compare::to_json(&c) + "\n"),
    );
    check_golden(&format!("{name}.compare.txt"), &compare::to_text(&c));
    let page = html::compare_html(&c, b, a).expect("compare html");
    check_golden(&format!("{name}.compare.html"), &html_golden(&page));
}

fn check_report(name: &str, rec: &Recording, top: usize) {
    let page = html::report_html(rec, top, "rec<1>.zprof").expect("report html");
    check_golden(&format!("{name}.report.html"), &html_golden(&page));
}

/// vm16 cross-CPU frees vs same-CPU frees, every table present on both sides.
#[test]
fn cross_vs_same_cpu() {
    let t = "golden cross_vs_same_cpu";
    let (Some(b), Some(a)) = (
        vm16(t, "vm16-6.18-cross-cpu-free", "vm16", 16),
        vm16(t, "vm16-6.18-same-cpu-free", "vm16b", 16),
    ) else {
        return;
    };
    let mut b = with_tables(b, true);
    b.observer = Some(observer(1_000_000, 31_000_000));
    b.skb_defer = vec![SkbDefer {
        cpu: 8,
        calls: 10,
        deferred: 4,
        immediate: 6,
        flushed: 3,
        ipis: 2,
    }];
    let mut a = with_tables(a, false);
    a.observer = Some(observer(2_000, 70_000));
    a.skb_defer = vec![SkbDefer {
        cpu: 8,
        calls: 1_000,
        deferred: 990,
        immediate: 10,
        flushed: 900,
        ipis: 40,
    }];
    check_compare("cross-vs-same", &b, &a, 5);
    check_report("cross", &b, 5);
}

/// The tun patch: `tun_do_read` frees directly before and hands SKBs to
/// skb_attempt_defer_free after; scheduler-lock stacks only.
#[test]
fn handoff_with_other_locks_only() {
    let site = |function: &str, caller: &str, cpu, count, remote| SkbSite {
        function: function.into(),
        caller: caller.into(),
        cpu,
        count,
        remote,
        cross_node: 0,
        tid: None,
    };
    let skb_probes = |r: &mut Recording| {
        for (name, target) in [
            ("consume_skb", "skb:consume_skb"),
            ("skb_attempt_defer_free", "skb_attempt_defer_free"),
            ("skb_defer_ipi", "csd:csd_queue_cpu"),
        ] {
            r.probes.push(common::probe(name, target, true));
        }
    };
    // Only scheduler-lock waits: no zone-lock diff, the all-locks one instead.
    let rq = |n: u64| {
        format!(
            "cpu0;worker_thread+0x1;schedule+0x2;__schedule+0x3;_raw_spin_lock+0x3b;\
             __pv_queued_spin_lock_slowpath+0x15b {n}\n\
             cpu1;tun_do_read+0x9;schedule+0x2;__schedule+0x3;_raw_spin_lock+0x3b;\
             __pv_queued_spin_lock_slowpath+0x15b {}\n",
            n / 3
        )
    };
    let mut b = common::recording_from_folded(&rq(9_000_000), "zpvm", 2.0, 2);
    skb_probes(&mut b);
    b.skb_sites = vec![
        site("consume_skb", "tun_do_read", 1, 10_000, 10_000),
        site("consume_skb", "netlink_recvmsg", 0, 10, 0),
    ];
    let mut a = common::recording_from_folded(&rq(2_000_000), "zpvm", 2.0, 2);
    skb_probes(&mut a);
    a.skb_sites = vec![
        site("skb_attempt_defer_free", "tun_do_read", 1, 15_000, 15_000),
        site("consume_skb", "net_rx_action", 0, 13_800, 0),
        site("consume_skb", "netlink_recvmsg", 0, 10, 0),
    ];
    a.skb_defer = vec![
        SkbDefer {
            cpu: 0,
            flushed: 13_800,
            ..Default::default()
        },
        SkbDefer {
            cpu: 1,
            calls: 15_000,
            deferred: 15_000,
            ..Default::default()
        },
    ];
    check_compare("handoff", &b, &a, 5);
    check_report("handoff-after", &a, 5);
}

/// Lock stacks only before (one diff direction), different kernel and CPU count, a short
/// after recording that lost wait, PCP counted on one side only.
#[test]
fn one_sided() {
    let t = "golden one_sided";
    let Some(text) = common::fixture(t, "vm2-6.18-cross-cpu-free.folded") else {
        return;
    };
    let mut b = common::recording_from_folded(&text, "vm2", 3.0, 2);
    b.probes.iter_mut().for_each(|p| p.attached = true);
    b.pcp = vec![
        CpuPages {
            cpu: 0,
            refill_pages: 300_000,
            drain_pages: 12,
            ..Default::default()
        },
        CpuPages {
            cpu: 1,
            refill_pages: 300_000,
            drain_pages: 290_000,
            ..Default::default()
        },
    ];
    let mut a = common::recording_from_folded("", "vm2", 0.4, 4);
    a.host.kernel_release = "6.12.117".into();
    a.counters.lost_wait_ns = 1_234_567;
    a.page_matrix = vec![PageCell {
        alloc_cpu: 3,
        free_cpu: 0,
        pages: 77,
    }];
    check_compare("one-sided", &b, &a, 3);
    // And the other way round: stacks only after, the other diff direction.
    check_compare("one-sided-reversed", &a, &b, 3);
    check_report("one-sided-before", &b, 3);
}

/// 80 CPUs: rows and heatmap cells grouped by CPU range; no lock stacks anywhere.
#[test]
fn grouped_cpus() {
    let big = |refill: u64, cross: bool| {
        let mut r = common::recording_from_folded("", "big", 2.0, 80);
        r.probes.iter_mut().for_each(|p| p.attached = true);
        r.pcp = (0..80)
            .map(|cpu| CpuPages {
                cpu,
                refill_pages: u64::from(cpu) * refill,
                drain_pages: u64::from(80 - cpu) * 100,
                ..Default::default()
            })
            .collect();
        r.skb_matrix = (0..40)
            .map(|i| SkbCell {
                alloc_cpu: i,
                free_cpu: if cross { i + 40 } else { i },
                count: 1000 + u64::from(i),
            })
            .collect();
        r
    };
    let (b, a) = (big(1_000, true), big(10, false));
    let files = compare::Pair::new("before.zprof", "after.zprof");
    let c = compare::compare(compare::Pair::new(&b, &a), files, 5);
    check_golden("grouped.compare.txt", &compare::to_text(&c));
    let page = html::compare_html(&c, &b, &a).expect("compare html");
    check_golden("grouped.compare.html", &html_golden(&page));
    check_report("grouped", &b, 5);
}

/// 4 CPUs on two nodes (0-1, 2-3): pages of node 0 allocated on CPU 0 and freed on CPU 2
/// (node 1), whose drains wait on node 0's zone; after, freed on CPU 1 (node 0). The NUMA
/// views: per-node and per-zone wait, node-pair flows and the cross-node blame share.
#[test]
fn numa_nodes() {
    const N0: u64 = 0xffff_0000_0000_1000;
    const N1: u64 = 0xffff_0000_0001_1000;
    let rec = |free_cpu: u32, scale: u64| {
        let text = format!(
            "cpu0;do_anonymous_page+0x1b7;get_page_from_freelist+0x2fe;__rmqueue_pcplist+0x233;\
             _raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b {}\n\
             cpu{free_cpu};folios_put_refs+0xe2;free_unref_folios+0x346;free_frozen_page_commit+0x19d;\
             free_pcppages_bulk+0x37;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b {}\n\
             cpu3;do_anonymous_page+0x1b7;get_page_from_freelist+0x2fe;__rmqueue_pcplist+0x233;\
             _raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 1000000\n",
            6_000_000 * scale,
            9_000_000 * scale
        );
        let mut r = common::recording_from_folded(&text, "numa4", 2.0, 4);
        r.probes.iter_mut().for_each(|p| p.attached = true);
        r.host.cpu_node = vec![(0, 0), (1, 0), (2, 1), (3, 1)];
        r.host.numa_nodes = vec![0, 1];
        // CPU 3's own allocations wait on node 1's zone; the rest on node 0's.
        for w in &mut r.lock_waits {
            if w.cpu == 3 {
                w.lock_addr = N1;
            }
        }
        r.zones = [(N0, 0), (N1, 1)]
            .into_iter()
            .map(|(lock_addr, node)| ZoneLabel {
                lock_addr,
                node,
                zone_idx: 2,
                name: "Normal".into(),
            })
            .collect();
        r.page_matrix = vec![
            PageCell {
                alloc_cpu: 0,
                free_cpu,
                pages: 64 * 900,
            },
            PageCell {
                alloc_cpu: 3,
                free_cpu: 3,
                pages: 64 * 100,
            },
        ];
        r.page_tracking = Some(PageTracking {
            sample_one_in: 64,
            pages_by_order: vec![1000],
            lifetime_hist: vec![],
            map_full: 0,
        });
        r.skb_matrix = vec![SkbCell {
            alloc_cpu: 0,
            free_cpu,
            count: 5_000,
        }];
        r
    };
    let (b, a) = (rec(2, 1), rec(1, 0));
    check_compare("numa", &b, &a, 5);
    check_report("numa", &b, 5);
    let r = zoneprof::output::report::build(&b, 5);
    check_golden("numa.report.txt", &zoneprof::output::report::to_text(&r, 5));
}
