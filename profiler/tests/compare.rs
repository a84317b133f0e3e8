//! `zoneprof compare` on synthetic recordings built from the real contention fixtures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use std::process::Command;

use serde_json::Value;
use zoneprof::{
    model::recording::{CpuPages, Recording, SkbDefer, SkbSite},
    output::compare::{self, Comparison, CpuMetric, Pair, Total},
};

const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");

fn vm16(test: &str, name: &str, host: &str) -> Option<Recording> {
    let text = common::fixture(test, &format!("{name}.folded"))?;
    Some(common::recording_from_folded(&text, host, 4.0, 16))
}

/// (before, after, change %) of a total.
fn total(c: &Comparison, t: Total) -> (Option<f64>, Option<f64>, Option<f64>) {
    let v = c.rates.total(t);
    (v.before, v.after, v.change_pct())
}

/// (before, after, change %) of one CPU's rate.
fn cpu_metric(c: &Comparison, cpu: u32, m: CpuMetric) -> (Option<f64>, Option<f64>, Option<f64>) {
    let v = c.rates.cpu(cpu, m);
    (v.before, v.after, v.change_pct())
}

fn compare(b: &Recording, a: &Recording, files: (&str, &str)) -> Comparison {
    compare::compare(Pair::new(b, a), Pair::new(files.0, files.1), 5)
}

#[test]
fn cross_vs_same_cpu_shows_alloc_side_wait_falling_over_90_pct() {
    let t = "cross_vs_same_cpu";
    let (Some(b), Some(a)) = (
        vm16(t, "vm16-6.18-cross-cpu-free", "vm16"),
        vm16(t, "vm16-6.18-same-cpu-free", "vm16"),
    ) else {
        return;
    };
    let c = compare(&b, &a, ("cross.zprof", "same.zprof"));
    let (before, after, change) = total(&c, Total::ZoneWaitAllocNs);
    // 724 ms in 4 s before, 55 ms after (fixture README).
    let before = before.expect("observable");
    assert!((before - 181e6).abs() < 181e6 * 0.03, "{before}");
    assert!(after.expect("observable") < before);
    let change = change.expect("before > 0");
    assert!(change < -90.0, "alloc-side change {change} %");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // The verdict says it in words, with the number.
    let v = c
        .verdict
        .iter()
        .find(|v| v.starts_with("zone-lock wait on the allocation side fell"))
        .unwrap_or_else(|| panic!("no alloc verdict in {:?}", c.verdict));
    assert!(v.contains("fell 92 %"), "{v}");
    // Free side fell too, but less (382 -> 224 ms).
    let (_, _, free_change) = total(&c, Total::ZoneWaitFreeNs);
    let fc = free_change.expect("free change");
    assert!((-50.0..-30.0).contains(&fc), "{fc}");
    // Per CPU: CPU 0 allocated on both sides; CPU 8 freed only before.
    let (b8, a8, _) = cpu_metric(&c, 8, CpuMetric::ZoneWaitFreeNs);
    assert!(b8.expect("cpu8") > 5e6 && a8.expect("cpu8") < 1e6);
    // No page counts in the fixtures: null, not 0.
    let (pb, pa, pc) = total(&c, Total::PcpRefill);
    assert_eq!((pb, pa, pc), (None, None, None));
    assert_eq!(cpu_metric(&c, 0, CpuMetric::PcpRefill).0, None);
    assert_eq!(total(&c, Total::SkbRemoteRatio).0, None);
    // The alloc stacks shrank most.
    assert!(
        c.stacks_shrank
            .iter()
            .any(|s| s.stack.starts_with("[zone->lock alloc]")),
        "{:?}",
        c.stacks_shrank
    );
}

#[test]
fn different_host_kernel_and_cpus_warn_but_still_compare() {
    let t = "different_host_warns";
    let (Some(b), Some(text)) = (
        vm16(t, "vm16-6.18-cross-cpu-free", "vm16"),
        common::fixture(t, "vm2-6.18-cross-cpu-free.folded"),
    ) else {
        return;
    };
    let mut a = common::recording_from_folded(&text, "vm2", 3.0, 2);
    a.host.kernel_release = "6.12.117".into();
    let c = compare(&b, &a, ("b", "a"));
    let w = c.warnings.join("\n");
    assert!(w.contains("different hosts (vm16 vs vm2)"), "{w}");
    assert!(w.contains("different kernels"), "{w}");
    assert!(w.contains("different CPU counts"), "{w}");
    // Still compared: CPU 0 on both sides; CPU 8 only before (after is null, not 0).
    assert!(total(&c, Total::ZoneWaitAllocNs).2.is_some());
    let (b8, a8, c8) = cpu_metric(&c, 8, CpuMetric::ZoneWaitFreeNs);
    assert!(b8.is_some());
    assert_eq!((a8, c8), (None, None));
}

fn with_pages_and_skb(mut r: Recording, refill0: u64, drain1: u64, remote: u64) -> Recording {
    r.probes.iter_mut().for_each(|p| p.attached = true);
    r.pcp = vec![
        CpuPages {
            cpu: 0,
            refill_pages: refill0,
            ..Default::default()
        },
        CpuPages {
            cpu: 1,
            drain_pages: drain1,
            ..Default::default()
        },
    ];
    r.skb_sites = vec![SkbSite {
        function: "consume_skb".into(),
        caller: "tun_do_read".into(),
        cpu: 1,
        count: 1000,
        remote,
        cross_node: 0,
        tid: None,
    }];
    r
}

#[test]
fn pcp_and_skb_headlines_and_verdict() {
    let t = "pcp_and_skb";
    let Some(text) = common::fixture(t, "vm2-6.18-cross-cpu-free.folded") else {
        return;
    };
    let b = with_pages_and_skb(
        common::recording_from_folded(&text, "vm", 2.0, 2),
        400_000,
        390_000,
        980,
    );
    let mut a = with_pages_and_skb(
        common::recording_from_folded("", "vm", 2.0, 2),
        2_000,
        1_000,
        20,
    );
    a.skb_defer = vec![SkbDefer {
        cpu: 1,
        calls: 100,
        deferred: 95,
        immediate: 5,
        ..Default::default()
    }];
    let c = compare(&b, &a, ("b", "a"));
    assert_eq!(total(&c, Total::PcpRefill).0, Some(200_000.0));
    assert_eq!(cpu_metric(&c, 0, CpuMetric::PcpRefill).1, Some(1_000.0));
    assert_eq!(total(&c, Total::SkbRemoteRatio).0, Some(0.98));
    assert_eq!(total(&c, Total::SkbRemoteRatio).1, Some(0.02));
    // Before has no defer table and no defer probe: null, and a warning says so.
    assert_eq!(total(&c, Total::DeferDeferredRatio).0, None);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("skb_attempt_defer_free"))
    );
    let v = c.verdict.join("\n");
    assert!(v.contains("PCP refills on CPU 0 fell 99.5 %"), "{v}");
    assert!(
        v.contains("remote SKB frees at tun_do_read fell from 98 % to 2 %"),
        "{v}"
    );
    // The after side had no lock waits at all: 0, observable (probe attached), change -100 %.
    assert_eq!(total(&c, Total::ZoneWaitAllocNs).1, Some(0.0));
    assert_eq!(c.skb_sites.len(), 1);
}

/// The tun patch as the VM comparison records it (figures from a 6.12.117 qemu run, 2 s):
/// before, `tun_do_read` frees with consume_skb on CPU 1 (all remote); after, it calls
/// skb_attempt_defer_free and CPU 0 frees most of them from its deferred-list flush.
#[test]
fn handoff_to_skb_attempt_defer_free_reads_as_moved_not_as_remote() {
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
    let mut b = common::recording_from_folded("", "zpvm", 2.0, 2);
    skb_probes(&mut b);
    b.skb_sites = vec![
        site("consume_skb", "tun_do_read", 1, 10_000, 10_000),
        site("consume_skb", "netlink_recvmsg", 0, 10, 0),
    ];
    let mut a = common::recording_from_folded("", "zpvm", 2.0, 2);
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
    let c = compare(&b, &a, ("b", "a"));
    let v = c.verdict.join("\n");
    assert!(
        v.contains(
            "SKB frees at tun_do_read moved to the allocating CPU: its direct frees fell from \
             5,000/s (100 % on another CPU than allocated) to 0/s; it calls \
             skb_attempt_defer_free 7,500/s, 100 % queued back to the allocating CPU; the \
             deferred-list flush freed 6,900/s there (92 % of the calls;"
        ),
        "{v}"
    );
    // The deferral calls are not counted as remote frees at tun_do_read.
    assert!(!v.contains("remote SKB frees at tun_do_read"), "{v}");
    assert_eq!(total(&c, Total::DeferFlushed).1, Some(6_900.0));
    // Every deferral flushed: no "the rest" clause.
    a.skb_defer[0].flushed = 15_000;
    let v = compare(&b, &a, ("b", "a")).verdict.join("\n");
    assert!(
        v.contains("the deferred-list flush freed 7,500/s there (100 % of the calls)"),
        "{v}"
    );
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"))
}

#[test]
fn cli_json_contract_and_flamegraphs() {
    let t = "cli_json_contract";
    let (Some(b), Some(a)) = (
        vm16(t, "vm16-6.18-cross-cpu-free", "vm16"),
        vm16(t, "vm16-6.18-same-cpu-free", "vm16-other"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = common::write_recording(dir.path(), "before.zprof", &b);
    let ap = common::write_recording(dir.path(), "after.zprof", &a);
    let fl = dir.path().join("flames");
    let out = run(&[
        "compare",
        bp.to_str().expect("utf8"),
        ap.to_str().expect("utf8"),
        "--format",
        "json",
        "--flamegraphs",
        fl.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The host warning goes to stderr as well as into the document.
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: the recordings come from different hosts")
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("JSON parses");
    assert_eq!(j["format"], "zoneprof-compare");
    assert_eq!(j["version"], 1);
    for side in ["before", "after"] {
        for k in ["file", "host", "kernel", "duration_s"] {
            assert!(!j[side][k].is_null(), "{side}.{k}");
        }
    }
    assert_eq!(j["after"]["host"], "vm16-other");
    assert!(j["warnings"].as_array().is_some_and(|w| !w.is_empty()));
    for side in ["before", "after"] {
        for k in ["refill", "drain"] {
            assert!(
                j["pcp_method"][side][k].is_string(),
                "pcp_method.{side}.{k}"
            );
        }
        assert!(
            j["observer_cost"][side]["in_lock_program_runs"].is_u64(),
            "observer_cost.{side}"
        );
    }
    assert!(
        j["verdict"]
            .as_array()
            .is_some_and(|v| v.iter().all(Value::is_string))
    );
    let metrics = j["metrics"].as_array().expect("metrics");
    let names: Vec<&str> = metrics.iter().filter_map(|m| m["name"].as_str()).collect();
    for required in [
        "zone_lock_wait_alloc_ns_per_s",
        "zone_lock_wait_free_ns_per_s",
        "pcp_refill_pages_per_s",
        "pcp_drain_pages_per_s",
        "skb_remote_free_ratio",
        "cpu0.pcp_refill_pages_per_s",
        "cpu15.zone_lock_wait_free_ns_per_s",
    ] {
        assert!(names.contains(&required), "missing {required}");
    }
    for m in metrics {
        for k in ["name", "before", "after", "change_pct"] {
            assert!(m.get(k).is_some(), "{m} lacks {k}");
        }
    }
    let pcp = metrics
        .iter()
        .find(|m| m["name"] == "pcp_refill_pages_per_s")
        .expect("pcp");
    assert!(pcp["before"].is_null() && pcp["change_pct"].is_null());
    // Both directions of the differential flamegraph, for zone-wait and all locks.
    for f in [
        "zone-wait.before-vs-after.diff.svg",
        "zone-wait.after-vs-before.diff.svg",
        "locks.before-vs-after.diff.svg",
        "locks.after-vs-before.diff.svg",
    ] {
        let svg = std::fs::read_to_string(fl.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(svg.trim_end().ends_with("</svg>"), "{f}");
    }
    assert_eq!(j["flamegraphs"].as_array().map(Vec::len), Some(4));

    // Text to a directory: compare.txt plus the flamegraphs.
    let od = dir.path().join("out/");
    let out = run(&[
        "compare",
        bp.to_str().expect("utf8"),
        ap.to_str().expect("utf8"),
        "-o",
        od.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let txt = std::fs::read_to_string(od.join("compare.txt")).expect("compare.txt");
    assert!(txt.contains("Verdict"));
    assert!(txt.contains("WARNING: the recordings come from different hosts"));
    assert!(od.join("zone-wait.after-vs-before.diff.svg").exists());

    // A bad file: one line, exit 1.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, [0x1f, 0x8b, 0, 1]).expect("write");
    let out = run(&[
        "compare",
        bp.to_str().expect("utf8"),
        junk.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}
