//! HTML reports: structure and escaping checked on the raw file always, and the page as a
//! browser builds it (headless Chromium's DOM) when `chromium` is installed (Debian package
//! `chromium`; `apt-get install -y chromium`). ZONEPROF_REQUIRE_CHROMIUM=1 turns the skip
//! into a failure, so CI cannot pass by skipping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use zoneprof::model::recording::{
    CpuPages, ObserverStats, ProgramRunStats, Recording, SkbCell, SkbSite,
};

const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");

fn chromium(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let why = "chromium not installed (Debian package `chromium`: apt-get install -y chromium)";
        if std::env::var("ZONEPROF_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("{test}: {why}, and ZONEPROF_REQUIRE_CHROMIUM=1");
        }
        eprintln!("SKIPPED {test} (browser part): {why}");
    }
    found
}

/// Runs headless Chromium on `file` with `args`; returns stdout. No network, throwaway profile.
fn headless(chrome: &Path, file: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("timeout")
        .arg("120")
        .arg(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn zoneprof(args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"));
    assert!(
        out.status.success(),
        "zoneprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_tables(mut r: Recording, cross: bool) -> Recording {
    r.probes.iter_mut().for_each(|p| p.attached = true);
    let secs = r.duration_s();
    r.pcp = (0..16)
        .map(|cpu| CpuPages {
            cpu,
            refill_pages: if cpu < 8 {
                (if cross { 180_000.0 } else { 500.0 } * secs) as u64
            } else {
                0
            },
            drain_pages: if cpu >= 8 && cross {
                (175_000.0 * secs) as u64
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
            count: 1_000_000,
        })
        .collect();
    r.skb_sites = vec![SkbSite {
        function: "consume_skb".into(),
        caller: "tun_do_read".into(),
        cpu: 8,
        count: 8_000_000,
        remote: if cross { 7_900_000 } else { 100_000 },
        cross_node: 0,
        tid: None,
    }];
    r
}

fn assert_no_network_refs(html: &str) {
    for bad in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(bad), "HTML references the network: {bad}");
    }
}

fn section_order(html: &str, ids: &[&str]) {
    let mut last = 0;
    for id in ids {
        let pos = html
            .find(&format!("<section id=\"{id}\""))
            .unwrap_or_else(|| panic!("section {id} missing"));
        assert!(pos >= last, "section {id} out of order");
        last = pos;
    }
}

#[test]
fn report_html_is_self_contained_escaped_and_renders() {
    let t = "report_html";
    let Some(text) = common::fixture(t, "vm16-6.18-cross-cpu-free.folded") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = with_tables(common::recording_from_folded(&text, "vm16", 4.0, 16), true);
    rec.host.hostname = "<b id=\"pwn\">evil</b>".into();
    let p = common::write_recording(dir.path(), "cross.zprof", &rec);
    zoneprof(&["report", "--format", "html", p.to_str().expect("utf8")]);
    let out = dir.path().join("cross.html"); // default: <stem>.html beside the recording
    let html = std::fs::read_to_string(&out).expect("report html written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_no_network_refs(&html);
    assert!(!html.contains("<b id=\"pwn\">"), "host name not escaped");
    assert!(html.contains("&lt;b id=&quot;pwn&quot;&gt;evil&lt;/b&gt;"));
    section_order(
        &html,
        &[
            "summary",
            "per-cpu",
            "flamegraphs",
            "matrix",
            "pcp",
            "tables",
            "facts",
        ],
    );
    assert!(
        html.matches("<iframe class=\"flame\"").count() >= 3,
        "zone-wait, locks, skb-free"
    );
    assert!(html.contains("data:image/svg+xml;base64,"));
    // A recording without run-time stats still gets the line, saying why the time is unknown.
    assert!(
        html.contains("<p class=\"note\" id=\"observer-cost\">Observer cost under zone-&gt;lock: ")
            && html.contains("time unknown: this recording has no run-time stats"),
        "observer-cost line"
    );
    assert_eq!(
        html.matches("class=\"bar-row\"").count(),
        16 + 16,
        "wait + PCP rows"
    );

    let Some(chrome) = chromium(t) else {
        return;
    };
    let dom = headless(&chrome, &out, &["--dump-dom"]);
    section_order(
        &dom,
        &[
            "summary",
            "per-cpu",
            "flamegraphs",
            "matrix",
            "pcp",
            "tables",
            "facts",
        ],
    );
    assert!(dom.contains("Zone-lock wait per CPU"));
    assert!(dom.contains("alloc ↓ / free →"), "heatmap rendered");
    // Serialised text nodes keep quotes but escape `<`: an element would show as `<b id=`.
    assert!(
        !dom.contains("<b id=\"pwn\">"),
        "injected element in the DOM"
    );
    assert!(
        dom.contains("&lt;b id=\"pwn\"&gt;evil"),
        "host name shown as text"
    );
    let png = dir.path().join("report.png");
    headless(
        &chrome,
        &out,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,2000",
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "screenshot looks empty"
    );
    if let Ok(keep) = std::env::var("ZONEPROF_KEEP_SCREENSHOTS") {
        std::fs::copy(&png, Path::new(&keep).join("report.png")).ok();
        std::fs::copy(&out, Path::new(&keep).join("report.html")).ok();
    }
}

#[test]
fn compare_html_puts_the_verdict_first_and_renders() {
    let t = "compare_html";
    let (Some(bt), Some(at)) = (
        common::fixture(t, "vm16-6.18-cross-cpu-free.folded"),
        common::fixture(t, "vm16-6.18-same-cpu-free.folded"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = with_tables(common::recording_from_folded(&bt, "vm16", 4.0, 16), true);
    b.observer = Some(ObserverStats {
        programs: vec![ProgramRunStats {
            probe: "pcp_refill".into(),
            program: "raw_page_alloc_zone_locked".into(),
            runs: 1_000_000,
            run_ns: 31_000_000,
        }],
        // Made before zoneprof measured the dispatch: program time only.
        ..Default::default()
    });
    let a = with_tables(common::recording_from_folded(&at, "vm16b", 4.0, 16), false);
    let bp = common::write_recording(dir.path(), "before.zprof", &b);
    let ap = common::write_recording(dir.path(), "after.zprof", &a);
    let out = dir.path().join("cmp.html");
    zoneprof(&[
        "compare",
        bp.to_str().expect("utf8"),
        ap.to_str().expect("utf8"),
        "--format",
        "html",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    let html = std::fs::read_to_string(&out).expect("compare html");
    assert_no_network_refs(&html);
    let order = [
        "verdict",
        "metrics",
        "per-cpu",
        "flamegraphs",
        "matrix",
        "pcp",
        "skb",
        "stacks",
        "facts",
    ];
    section_order(&html, &order);
    assert!(
        html.contains(
            "Observer cost under zone-&gt;lock, before: 1,000,000 program runs × 31 ns (program \
             time only: dispatch not measured) = 31.0 ms"
        ),
        "before's observer cost"
    );
    assert!(
        html.contains("Observer cost under zone-&gt;lock, after: "),
        "after's observer cost"
    );
    assert!(html.contains("zone-lock wait on the allocation side fell 92 %"));
    assert!(html.contains("remote SKB frees at tun_do_read fell from 99 % to 1 %"));
    assert!(
        html.contains("different hosts (vm16 vs vm16b)"),
        "warning shown"
    );
    assert_eq!(
        html.matches("<iframe class=\"flame\"").count(),
        2,
        "both diff directions"
    );

    let Some(chrome) = chromium(t) else {
        return;
    };
    let dom = headless(&chrome, &out, &["--dump-dom"]);
    section_order(&dom, &order);
    assert!(dom.contains("Differential flamegraphs"));
    let png = dir.path().join("compare.png");
    headless(
        &chrome,
        &out,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,2000",
        ],
    );
    assert!(std::fs::read(&png).is_ok_and(|b| b.starts_with(b"\x89PNG")));
    if let Ok(keep) = std::env::var("ZONEPROF_KEEP_SCREENSHOTS") {
        std::fs::copy(&png, Path::new(&keep).join("compare.png")).ok();
        std::fs::copy(&out, Path::new(&keep).join("compare.html")).ok();
    }
}

#[test]
fn html_on_640_cpus_groups_rows() {
    let t = "html_640";
    let Some(text) = common::fixture(t, "vm16-6.18-cross-cpu-free.folded") else {
        return;
    };
    let mut rec = common::recording_from_folded(&text, "big", 4.0, 640);
    rec.probes.iter_mut().for_each(|p| p.attached = true);
    rec.pcp = (0..640)
        .map(|cpu| CpuPages {
            cpu,
            refill_pages: u64::from(cpu) * 100,
            drain_pages: u64::from(640 - cpu) * 100,
            ..Default::default()
        })
        .collect();
    rec.skb_matrix = (0..320)
        .map(|i| SkbCell {
            alloc_cpu: i,
            free_cpu: i + 320,
            count: 1000,
        })
        .collect();
    let html = zoneprof::output::html::report_html(&rec, 10, "big.zprof").expect("html");
    // 40 groups of 16 for the wait bars and the PCP bars; two 40x40 heatmaps: the SKB
    // matrix, and the zone-lock wait blamed on CPU pairs (weighted by that matrix).
    assert_eq!(html.matches("class=\"bar-row\"").count(), 80);
    assert!(html.contains("cpu 624-639"));
    assert_eq!(
        html.matches("<td style=\"background:rgba").count()
            + html.matches("<td class=\"diag\"").count(),
        2 * 1600
    );
    assert!(html.len() < 3_000_000, "HTML is {} bytes", html.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("big.html");
    std::fs::write(&out, &html).expect("write");
    let Some(chrome) = chromium(t) else {
        return;
    };
    let png = dir.path().join("big.png");
    headless(
        &chrome,
        &out,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,2000",
        ],
    );
    if let Ok(keep) = std::env::var("ZONEPROF_KEEP_SCREENSHOTS") {
        std::fs::copy(&png, Path::new(&keep).join("big.png")).ok();
    }
}
