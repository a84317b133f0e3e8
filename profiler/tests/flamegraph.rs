//! Flamegraph output checked against committed golden folded files built from the real
//! contention fixtures, the fixtures' documented totals, and the CLI's behaviour.
//!
//! `ZONEPROF_BLESS=1 cargo test -p profiler --test flamegraph` rewrites the golden files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use common::check_golden;

use std::{collections::BTreeMap, process::Command};

use zoneprof::output::flamegraph::{self as fg, FoldOptions, View};

const FIXTURES: &[&str] = &[
    "vm16-6.18-cross-cpu-free",
    "vm16-6.18-same-cpu-free",
    "vm16-6.18-tap32k-cross-cpu",
    "vm16-6.18-tap32k-same-cpu",
    "vm2-6.18-cross-cpu-free",
];
const LOCK_VIEWS: &[View] = &[View::ZoneWait, View::ZoneAlloc, View::ZoneFree];
const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");

fn stacks(test: &str, name: &str) -> Option<Vec<fg::WeightedStack>> {
    let text = common::fixture(test, &format!("{name}.folded"))?;
    Some(fg::lock_stacks_from_folded(&text, name).expect("fixture parses"))
}

fn view_fold(stacks: &[fg::WeightedStack], view: View, opts: &FoldOptions) -> fg::Folded {
    let v: Vec<_> = stacks
        .iter()
        .filter(|s| s.class.as_ref().is_some_and(|c| view.accepts(c)))
        .cloned()
        .collect();
    fg::fold(&v, opts)
}

#[test]
fn folded_views_match_golden_files() {
    for name in FIXTURES {
        let Some(st) = stacks("folded_views_match_golden_files", name) else {
            return;
        };
        for &view in LOCK_VIEWS {
            let f = view_fold(&st, view, &FoldOptions::default());
            check_golden(&format!("{name}.{}.folded", view.name()), &f.to_text());
        }
    }
    // One per-CPU golden: the cpuN root and the CPU filter.
    if let Some(st) = stacks("folded_views_match_golden_files", "vm2-6.18-cross-cpu-free") {
        let f = view_fold(
            &st,
            View::ZoneWait,
            &FoldOptions {
                per_cpu: true,
                cpus: None,
                roots: None,
            },
        );
        check_golden(
            "vm2-6.18-cross-cpu-free.zone-wait.per-cpu.folded",
            &f.to_text(),
        );
    }
}

#[test]
fn folded_lines_are_root_first_and_start_with_the_lock_class() {
    let Some(st) = stacks("folded_lines_are_root_first", "vm16-6.18-cross-cpu-free") else {
        return;
    };
    let f = view_fold(&st, View::ZoneAlloc, &FoldOptions::default());
    assert!(!f.is_empty());
    for line in f.to_text().lines() {
        let (stack, count) = line.rsplit_once(' ').expect("count");
        count.parse::<u64>().expect("integer count");
        let frames: Vec<&str> = stack.split(';').collect();
        assert_eq!(frames[0], "[zone->lock alloc]", "{line}");
        // Root first: the slowpath (leaf) is last, no offsets remain.
        assert!(
            frames
                .last()
                .is_some_and(|f| f.contains("queued_spin_lock_slowpath")),
            "{line}"
        );
        assert!(!stack.contains("+0x"), "{line}");
    }
}

/// ns per CPU for `view`.
fn per_cpu(st: &[fg::WeightedStack], view: View) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for s in st
        .iter()
        .filter(|s| s.class.as_ref().is_some_and(|c| view.accepts(c)))
    {
        *m.entry(s.cpu.expect("cpu")).or_default() += s.value;
    }
    m
}

fn assert_near(what: &str, got_ns: u64, want_ms: f64, tol: f64) {
    let got_ms = got_ns as f64 / 1e6;
    assert!(
        (got_ms - want_ms).abs() <= want_ms * tol,
        "{what}: {got_ms:.1} ms, expected {want_ms} ms ±{:.0} %",
        tol * 100.0
    );
}

#[test]
fn fixture_totals_by_view_match_the_readme() {
    // (fixture, alloc ms, free ms) from shared/fixtures/contention/README.md.
    let cases = [
        ("vm16-6.18-cross-cpu-free", 724.0, 382.0),
        ("vm16-6.18-same-cpu-free", 55.0, 224.0),
        ("vm16-6.18-tap32k-cross-cpu", 1860.0, 1408.0),
        ("vm16-6.18-tap32k-same-cpu", 141.0, 141.0),
    ];
    for (name, alloc_ms, free_ms) in cases {
        let Some(st) = stacks("fixture_totals_by_view", name) else {
            return;
        };
        let o = FoldOptions::default();
        let alloc = view_fold(&st, View::ZoneAlloc, &o).total();
        let free = view_fold(&st, View::ZoneFree, &o).total();
        let wait = view_fold(&st, View::ZoneWait, &o).total();
        let locks = view_fold(&st, View::Locks, &o).total();
        assert_near(&format!("{name} alloc"), alloc, alloc_ms, 0.03);
        assert_near(&format!("{name} free"), free, free_ms, 0.03);
        // zone-wait = alloc + free + other zone takers; locks = everything.
        assert!(wait >= alloc + free, "{name}: zone-wait below alloc+free");
        assert!(locks > wait, "{name}: other locks exist in every fixture");
        assert_eq!(
            locks,
            st.iter().map(|s| s.value).sum::<u64>(),
            "{name}: locks view loses nothing"
        );
    }
}

#[test]
fn cross_cpu_fixture_splits_sides_by_cpu() {
    let Some(st) = stacks(
        "cross_cpu_fixture_splits_sides_by_cpu",
        "vm16-6.18-cross-cpu-free",
    ) else {
        return;
    };
    let alloc = per_cpu(&st, View::ZoneAlloc);
    let free = per_cpu(&st, View::ZoneFree);
    for cpu in 0..8 {
        assert_near(
            &format!("cpu{cpu} alloc"),
            alloc.get(&cpu).copied().unwrap_or(0),
            90.0,
            0.25,
        );
        assert_near(
            &format!("cpu{} free", cpu + 8),
            free.get(&(cpu + 8)).copied().unwrap_or(0),
            47.0,
            0.25,
        );
    }
    // The CPU filter keeps exactly those CPUs.
    let f = view_fold(
        &st,
        View::ZoneAlloc,
        &FoldOptions {
            per_cpu: false,
            cpus: Some(vec![0]),
            roots: None,
        },
    );
    assert_eq!(f.total(), alloc[&0]);
}

/// Well-formedness: every tag closes in order (a real XML parser, quick-xml).
fn assert_well_formed_xml(svg: &str) {
    let mut r = quick_xml::Reader::from_str(svg);
    let mut depth = 0i64;
    let mut elements = 0;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => {
                depth += 1;
                elements += 1;
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Empty(_)) => elements += 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("SVG is not well-formed at {}: {e}", r.buffer_position()),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    assert!(elements > 10, "suspiciously small SVG");
}

#[test]
fn svg_is_well_formed_and_titled() {
    let Some(st) = stacks("svg_is_well_formed_and_titled", "vm16-6.18-cross-cpu-free") else {
        return;
    };
    let f = view_fold(&st, View::ZoneWait, &FoldOptions::default());
    let meta = fg::Meta {
        source: "vm16-6.18-cross-cpu-free".into(),
        duration_s: Some(4.0),
        ..Default::default()
    };
    let title = fg::title(View::ZoneWait, &meta, f.total());
    assert!(title.contains("zone->lock wait"), "{title}");
    assert!(title.contains("4.00 s"), "{title}");
    assert!(
        title.contains(" ms waited") || title.contains(" s waited"),
        "{title}"
    );
    let svg = fg::render_svg(&f, View::ZoneWait, &title, "sub").expect("render");
    let svg = String::from_utf8(svg).expect("utf8");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(&title.replace('>', "&gt;")), "title in SVG");
    assert!(svg.contains("__rmqueue_pcplist"));
    assert_well_formed_xml(&svg);
}

// ---- CLI ----

fn zoneprof(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"))
}

#[test]
fn cli_writes_svg_folded_and_refuses_empty_views() {
    let Some(text) = common::fixture("cli_flamegraph", "vm2-6.18-cross-cpu-free.folded") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = common::recording_from_folded(&text, "vm2", 3.0, 2);
    let path = common::write_recording(dir.path(), "run.zprof", &rec);
    let p = path.to_str().expect("utf8 path");

    let out = zoneprof(&["flamegraph", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg_path = dir.path().join("run.zone-wait.svg");
    let svg = std::fs::read_to_string(&svg_path).expect("default output written");
    assert!(svg.contains("zone-&gt;lock wait: vm2 (Linux 6.18.44), 3.00 s"));
    assert_well_formed_xml(&svg);

    let out = zoneprof(&[
        "flamegraph",
        p,
        "--view",
        "zone-free",
        "--folded",
        "--per-cpu",
    ]);
    assert!(out.status.success());
    let folded = String::from_utf8(out.stdout).expect("utf8");
    assert!(!folded.is_empty());
    assert!(
        folded
            .lines()
            .all(|l| l.starts_with("cpu1;[zone->lock free")),
        "{folded}"
    );

    // A view with no data: one line, non-zero exit, no file.
    for view in ["skb-free", "pages"] {
        let out_svg = dir.path().join(format!("{view}.svg"));
        let out = zoneprof(&[
            "flamegraph",
            p,
            "--view",
            view,
            "-o",
            out_svg.to_str().expect("utf8"),
        ]);
        assert_eq!(out.status.code(), Some(1), "{view}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("no "), "{err}");
        assert!(!out_svg.exists(), "no picture for an empty view");
    }
    // A CPU with nothing on it is an empty view too.
    let out = zoneprof(&[
        "flamegraph",
        p,
        "--view",
        "zone-alloc",
        "--cpu",
        "1",
        "--folded",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("on CPUs 1"));

    // Not a recording: one line, exit 1, no panic.
    let junk = dir.path().join("junk.zprof");
    std::fs::write(&junk, "hello").expect("write");
    let out = zoneprof(&["flamegraph", junk.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a zoneprof recording"));
}

#[test]
fn cli_skb_and_page_views_draw_recorded_tables() {
    let Some(text) = common::fixture("cli_skb_pages", "vm2-6.18-cross-cpu-free.folded") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec = common::recording_from_folded(&text, "vm2", 3.0, 2);
    rec.skb_sites = vec![zoneprof::model::recording::SkbSite {
        function: "consume_skb".into(),
        caller: "tun_do_read".into(),
        cpu: 1,
        count: 100,
        remote: 98,
        cross_node: 0,
        tid: None,
    }];
    rec.pcp = vec![zoneprof::model::recording::CpuPages {
        cpu: 0,
        refill_pages: 500,
        drain_pages: 3,
        ..Default::default()
    }];
    let path = common::write_recording(dir.path(), "r.zprof", &rec);
    let p = path.to_str().expect("utf8");
    let out = zoneprof(&["flamegraph", p, "--view", "skb-free", "--folded"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "tun_do_read;consume_skb;{} 98\ntun_do_read;consume_skb;{} 2\n",
            fg::SKB_REMOTE,
            fg::SKB_LOCAL
        )
    );
    let out = zoneprof(&["flamegraph", p, "--view", "pages", "--folded"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{};cpu0 3\n{};cpu0 500\n", fg::PCP_DRAIN, fg::PCP_REFILL)
    );
    let out = zoneprof(&["flamegraph", p, "--view", "pages"]);
    assert!(out.status.success());
    assert!(dir.path().join("r.pages.svg").exists());
}
