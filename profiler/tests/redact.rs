//! `zoneprof redact` and `--redact`: every view works on a redacted recording, no kernel
//! address and no hostname reaches any output, and every file written is private (0600).
//!
//! `ZONEPROF_BLESS=1 cargo test -p profiler --test redact` rewrites the golden files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;
use zoneprof::model::recording::{AttachAttempt, CpuPages, Recording, SkbCell, SkbSite, ZoneLabel};

const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");
const HOST: &str = "prod-db-17";
const ZONE_LOCK: u64 = 0xffff_0000_0000_1000; // common::recording_from_folded's lock
const JIT_FRAME: &str = "0xffffffffc0a01410";

/// Zone-lock waits (one with an unsymbolized JIT frame), PCP and SKB tables, a zone label,
/// an unresolved SKB call site and a probe error that quotes an address and the host.
fn recording(host: &str, scale: u64) -> Recording {
    let folded = format!(
        "cpu0;do_idle+0x1;free_unref_folios+0x346;free_frozen_page_commit+0x19d;free_pcppages_bulk+0x37;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b {}\n\
         cpu1;ret_from_fork+0x1;handle_mm_fault+0x10;get_page_from_freelist+0x2fe;__rmqueue_pcplist+0x233;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b {}\n\
         cpu1;{JIT_FRAME};sched_tick+0x43;_raw_spin_lock+0x3b;__pv_queued_spin_lock_slowpath+0x15b 300\n",
        100 * scale,
        200 * scale
    );
    let mut r = common::recording_from_folded(&folded, host, 2.0, 2);
    r.probes.iter_mut().for_each(|p| p.attached = true);
    r.probes[0].attempts = vec![AttachAttempt {
        method: "raw_tracepoint".into(),
        target: "contention_begin".into(),
        error: Some(format!(
            "first try on {host} hit {ZONE_LOCK:#x} (ffff000000001000)"
        )),
    }];
    r.zones = vec![ZoneLabel {
        lock_addr: ZONE_LOCK,
        node: 0,
        zone_idx: 2,
        name: "Normal".into(),
    }];
    r.pcp = (0..2)
        .map(|cpu| CpuPages {
            cpu,
            refill_pages: 1000 * scale,
            drain_pages: 900 * scale,
            ..Default::default()
        })
        .collect();
    r.skb_matrix = vec![SkbCell {
        alloc_cpu: 0,
        free_cpu: 1,
        count: 50,
    }];
    r.skb_sites = vec![
        SkbSite {
            function: "consume_skb".into(),
            caller: "tun_do_read".into(),
            cpu: 1,
            count: 40,
            remote: 39,
            cross_node: 0,
            tid: None,
        },
        SkbSite {
            function: "kfree_skb".into(),
            caller: "0xffffffff81a00123".into(),
            cpu: 1,
            count: 10,
            remote: 2,
            cross_node: 0,
            tid: None,
        },
    ];
    r.command = Some(zoneprof::model::recording::CommandInfo {
        argv: vec!["ssh".into(), host.into(), "uptime".into()],
        exit_code: Some(0),
        signal: None,
    });
    r
}

fn assert_clean(what: &str, text: &str) {
    let a = common::kernel_addresses(text);
    assert!(a.is_empty(), "{what} still shows kernel addresses {a:?}");
    assert!(!text.contains(HOST), "{what} still names the host {HOST}");
}

fn zoneprof(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"));
    assert!(
        out.status.success(),
        "zoneprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The recording document as JSON text (decompressed).
fn document(p: &Path) -> String {
    let rec = Recording::read(p).expect("reads back");
    serde_json::to_string(&rec).expect("json")
}

const VIEWS: &[&str] = &[
    "zone-wait",
    "zone-alloc",
    "zone-free",
    "locks",
    "skb-free",
    "pages",
];

/// Runs every view on `rec` (report text/JSON/HTML, every flamegraph as SVG and folded, a
/// compare with `other` in every format with its differential flamegraphs), with `extra`
/// flags, into `out`. Returns every output: (what, text). Files must be 0600.
fn every_view(rec: &Path, other: &Path, extra: &[&str], out: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(out).expect("mkdir");
    let (r, o) = (rec.to_str().expect("utf8"), other.to_str().expect("utf8"));
    let mut outputs = Vec::new();
    let file = |what: String, p: PathBuf, outputs: &mut Vec<(String, String)>| {
        assert_eq!(mode(&p), 0o600, "{what}: {} is not private", p.display());
        outputs.push((what, std::fs::read_to_string(&p).expect("read output")));
    };
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        zoneprof(&a)
    };
    for fmt in ["text", "json"] {
        let o = run(with(&["report", r, "--format", fmt]));
        outputs.push((
            format!("report {fmt}"),
            String::from_utf8_lossy(&o.stdout).into(),
        ));
        outputs.push((
            format!("report {fmt} stderr"),
            String::from_utf8_lossy(&o.stderr).into(),
        ));
    }
    let html = out.join("report.html");
    run(with(&[
        "report",
        r,
        "--format",
        "html",
        "-o",
        html.to_str().expect("utf8"),
    ]));
    file("report html".into(), html, &mut outputs);
    for view in VIEWS {
        let svg = out.join(format!("{view}.svg"));
        run(with(&[
            "flamegraph",
            r,
            "--view",
            view,
            "-o",
            svg.to_str().expect("utf8"),
        ]));
        file(format!("flamegraph {view} svg"), svg, &mut outputs);
        let folded = out.join(format!("{view}.folded"));
        run(with(&[
            "flamegraph",
            r,
            "--view",
            view,
            "--folded",
            "--per-cpu",
            "-o",
            folded.to_str().expect("utf8"),
        ]));
        file(format!("flamegraph {view} folded"), folded, &mut outputs);
    }
    let flames = out.join("diff");
    for fmt in ["text", "json", "html"] {
        let doc = out.join(format!("compare.{fmt}"));
        let o = run(with(&[
            "compare",
            r,
            o,
            "--format",
            fmt,
            "-o",
            doc.to_str().expect("utf8"),
            "--flamegraphs",
            flames.to_str().expect("utf8"),
        ]));
        outputs.push((
            format!("compare {fmt} stderr"),
            String::from_utf8_lossy(&o.stderr).into(),
        ));
        file(format!("compare {fmt}"), doc, &mut outputs);
    }
    for e in std::fs::read_dir(&flames)
        .expect("diff flamegraphs written")
        .flatten()
    {
        file(
            format!("diff flamegraph {:?}", e.file_name()),
            e.path(),
            &mut outputs,
        );
    }
    outputs
}

#[test]
fn every_view_works_on_a_redacted_recording_and_shows_no_address_or_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Under a directory named after the host: --redact names recordings by file name.
    let hostdir = dir.path().join(HOST);
    std::fs::create_dir(&hostdir).expect("mkdir");
    let orig = common::write_recording(&hostdir, "before.zprof", &recording(HOST, 1));
    let other = common::write_recording(&hostdir, "after.zprof", &recording(HOST, 3));
    assert!(
        !common::kernel_addresses(&document(&orig)).is_empty(),
        "the test recording has addresses"
    );
    assert!(document(&orig).contains(HOST));

    // zoneprof redact: private, clean, and still a recording with every table.
    let red = dir.path().join("before.redacted.zprof");
    let red_other = dir.path().join("after.redacted.zprof");
    for (from, to) in [(&orig, &red), (&other, &red_other)] {
        let out = zoneprof(&[
            "redact",
            from.to_str().expect("utf8"),
            "-o",
            to.to_str().expect("utf8"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("3 kernel address(es) replaced, hostname hashed"),
            "{err}"
        );
        assert_eq!(mode(to), 0o600);
    }
    let doc = document(&red);
    assert_clean("redacted recording", &doc);
    let (o, r) = (
        Recording::read(&orig).expect("read"),
        Recording::read(&red).expect("read"),
    );
    assert_eq!(
        (
            r.lock_waits.len(),
            &r.stacks,
            r.pcp.len(),
            r.skb_sites.len(),
            r.zones.len()
        ),
        (
            o.lock_waits.len(),
            &o.stacks,
            o.pcp.len(),
            o.skb_sites.len(),
            o.zones.len()
        )
    );
    assert!(
        r.zone_by_addr(r.lock_waits[0].lock_addr).is_some(),
        "zone label still matches"
    );

    // Every view, on the redacted files and on the originals with --redact.
    let redacted_views = every_view(&red, &red_other, &[], &dir.path().join("a"));
    let flag_views = every_view(&orig, &other, &["--redact"], &dir.path().join("b"));
    for (what, text) in redacted_views.iter().chain(&flag_views) {
        assert_clean(what, text);
    }
    // The two routes give the same views (file names aside, which differ by design).
    let get = |v: &[(String, String)], k: &str| {
        v.iter()
            .find(|(w, _)| w == k)
            .map(|(_, t)| t.clone())
            .expect(k)
    };
    for k in [
        "report text",
        "report json",
        "flamegraph zone-wait folded",
        "flamegraph skb-free folded",
    ] {
        assert_eq!(get(&redacted_views, k), get(&flag_views, k), "{k}");
    }
    // What redaction keeps: symbols with offsets, the zone label, the counts.
    let report = get(&redacted_views, "report text");
    assert!(
        report.contains(&zoneprof::model::redact::hashed_host(HOST)),
        "{report}"
    );
    assert!(report.contains("node 0 / zone Normal"), "{report}");
    let locks = get(&redacted_views, "flamegraph locks folded");
    assert!(locks.contains(";sched_tick;"), "{locks}");
    assert!(
        locks.contains("[addr "),
        "the JIT frame is a pseudonym: {locks}"
    );
    // And the unredacted views do show what redaction removes (the check can fail).
    let plain = zoneprof(&["report", orig.to_str().expect("utf8")]);
    assert!(!common::kernel_addresses(&String::from_utf8_lossy(&plain.stdout)).is_empty());
}

#[test]
fn redacted_folded_stacks_match_golden_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = common::write_recording(dir.path(), "r.zprof", &recording(HOST, 1));
    let (red, _) =
        zoneprof::model::redact::redact(&Recording::read(&orig).expect("read")).expect("redact");
    let red_path = common::write_recording(dir.path(), "r.redacted.zprof", &red);
    for view in ["locks", "skb-free"] {
        let out = zoneprof(&[
            "flamegraph",
            red_path.to_str().expect("utf8"),
            "--view",
            view,
            "--folded",
        ]);
        common::check_golden(
            &format!("redacted.{view}.folded"),
            &String::from_utf8_lossy(&out.stdout),
        );
    }
}

#[test]
fn redact_refuses_bad_input_in_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.zprof");
    let out_file = dir.path().join("out.zprof");
    let out = Command::new(BIN)
        .args(["redact"])
        .arg(&missing)
        .arg("-o")
        .arg(&out_file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The OS error once, not twice.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(!out_file.exists());
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[test]
fn default_output_is_beside_the_recording_and_redacting_twice_is_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = common::write_recording(dir.path(), "r.zprof", &recording(HOST, 1));
    zoneprof(&["redact", orig.to_str().expect("utf8")]);
    let red = dir.path().join("r.redacted.zprof");
    let once = Recording::read(&red).expect("read");
    let out = zoneprof(&["redact", red.to_str().expect("utf8")]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("0 kernel address(es) replaced, hostname already hashed")
    );
    let twice = Recording::read(&dir.path().join("r.redacted.redacted.zprof")).expect("read");
    assert_eq!(once, twice);
    let v: Value = serde_json::from_str(&document(&red)).expect("json");
    assert!(
        v["lock_waits"]
            .as_array()
            .is_some_and(|w| w.iter().all(|w| w["lock_addr"]
                .as_u64()
                .is_some_and(|a| a <= u32::MAX as u64)))
    );
}

/// The pprof, speedscope and CSV exports of `rec` (with `extra` flags) into `out`, each as
/// text: the pprof's strings (decompressed) with its numeric addresses in hex, the others
/// as written.
fn exports(rec: &Path, extra: &[&str], out: &Path) -> Vec<(String, String)> {
    use prost::Message as _;
    use std::io::Read as _;
    std::fs::create_dir_all(out).expect("mkdir");
    let r = rec.to_str().expect("utf8");
    let run = |fmt: &str, view: Option<&str>, o: &Path| {
        let mut args = vec![
            "export",
            r,
            "--format",
            fmt,
            "-o",
            o.to_str().expect("utf8"),
        ];
        if let Some(v) = view {
            args.extend(["--view", v]);
        }
        args.extend_from_slice(extra);
        zoneprof(&args)
    };
    let mut texts = Vec::new();
    for view in ["zone-wait", "locks"] {
        let p = out.join(format!("{view}.pb.gz"));
        let o = run("pprof", Some(view), &p);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::read(&p).expect("read").as_slice())
            .read_to_end(&mut raw)
            .expect("gzip");
        let prof = zoneprof::output::export::pprof::proto::Profile::decode(raw.as_slice())
            .expect("profile.proto");
        let mut text = prof.string_table.join("\n");
        for l in &prof.location {
            text += &format!("\n{:#x}", l.address);
        }
        texts.push((format!("pprof {view}"), text));
        texts.push((
            format!("pprof {view} stderr"),
            String::from_utf8_lossy(&o.stderr).into(),
        ));
    }
    let p = out.join("r.speedscope.json");
    run("speedscope", None, &p);
    texts.push((
        "speedscope".into(),
        std::fs::read_to_string(&p).expect("read"),
    ));
    let csv = out.join("csv");
    run("csv", None, &csv);
    for e in std::fs::read_dir(&csv).expect("csv dir").flatten() {
        texts.push((
            format!("csv {:?}", e.file_name()),
            std::fs::read_to_string(e.path()).expect("read"),
        ));
    }
    texts
}

#[test]
fn export_redact_leaves_no_address_or_host_in_pprof_speedscope_or_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Under a directory named after the host: --redact names the recording by file name.
    let hostdir = dir.path().join(HOST);
    std::fs::create_dir(&hostdir).expect("mkdir");
    let orig = common::write_recording(&hostdir, "r.zprof", &recording(HOST, 1));

    let redacted = exports(&orig, &["--redact"], &dir.path().join("red"));
    for (what, text) in &redacted {
        assert_clean(what, text);
    }
    // Without --redact the same exports do show them (the check above can fail): the JIT
    // frame's address in pprof and speedscope, the unresolved SKB caller in the CSV, the
    // host in the pprof's comment and the recording's path.
    let plain = exports(&orig, &[], &dir.path().join("plain"));
    let get = |v: &[(String, String)], k: &str| {
        v.iter()
            .find(|(w, _)| w == k)
            .map(|(_, t)| t.clone())
            .expect(k)
    };
    for k in ["pprof locks", "speedscope", "csv \"skb-free-sites.csv\""] {
        let text = get(&plain, k);
        assert!(
            !common::kernel_addresses(&text).is_empty(),
            "{k} shows no address without --redact"
        );
    }
    assert!(get(&plain, "pprof zone-wait").contains(HOST));
    // What redaction keeps: the waits, the symbols, the zone, the hashed host.
    let red_locks = get(&redacted, "pprof locks");
    assert!(red_locks.contains("sched_tick"), "{red_locks}");
    assert!(red_locks.contains("node 0 / zone Normal"), "{red_locks}");
    assert!(red_locks.contains(&zoneprof::model::redact::hashed_host(HOST)));
    assert_eq!(
        get(&redacted, "csv \"per-cpu.csv\""),
        get(&plain, "csv \"per-cpu.csv\"")
    );
}
