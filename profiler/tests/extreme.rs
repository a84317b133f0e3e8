//! Every view of a recording whose numbers sit at the top of their types. The format allows
//! any u64 in its tables and the views add them up: sums saturate at u64::MAX instead of
//! panicking (overflow checks: debug builds, the fuzz targets) or wrapping (release builds)
//! into wrong totals. docs/fuzzing.md, "Bugs found and fixed".
//!
//! The recordings are the committed fuzz seeds (fuzz/corpus/recording/*.json) with one table
//! at a time made extreme, as `fuzz/extreme-recordings.py` writes them, and all tables at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use zoneprof::{
    model::recording::Recording,
    output::{
        compare::{self, Pair},
        export,
        flamegraph::{self as fg, FoldOptions, View},
        html, report,
    },
};

const VIEWS: [View; 6] = [
    View::ZoneWait,
    View::ZoneAlloc,
    View::ZoneFree,
    View::Locks,
    View::SkbFree,
    View::Pages,
];

/// The tables whose numbers are made extreme (those of `fuzz/extreme-recordings.py`).
const TABLES: [&str; 10] = [
    "lock_waits",
    "wait_hist",
    "pcp",
    "counters",
    "skb_sites",
    "skb_matrix",
    "skb_defer",
    "page_matrix",
    "page_tracking",
    "observer",
];

/// Indices and identifiers, not quantities: left alone.
const KEEP: [&str; 10] = [
    "cpu",
    "alloc_cpu",
    "free_cpu",
    "stack",
    "bucket",
    "node",
    "zone_idx",
    "lock_addr",
    "lock_flags",
    "stack_error",
];

const SEEDS: [&str; 2] = ["synthetic-4cpu", "real-2cpu"];

fn seed_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/recording")
        .join(format!("{name}.json"))
}

fn seed(name: &str) -> Value {
    let p = seed_path(name);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read(doc: &Value, name: &str) -> Result<Recording, String> {
    let bytes = serde_json::to_vec(doc).expect("serialise");
    Recording::from_bytes(&bytes, Path::new(name)).map_err(|e| e.to_string())
}

/// JSON pointers of the unsigned integers under `v` (at `at`) that are quantities.
fn quantities(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if !(x.is_u64() && KEEP.contains(&k.as_str())) {
                    quantities(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                quantities(x, &format!("{at}/{i}"), out);
            }
        }
        Value::Number(n) if n.is_u64() => out.push(at.to_string()),
        _ => {}
    }
}

/// Sets every quantity of `table` to the largest value the format lets it hold: u64::MAX,
/// or u32::MAX where the field is a u32 (the recording must still parse).
fn saturate(doc: &mut Value, table: &str) {
    let mut leaves = Vec::new();
    quantities(&doc[table], &format!("/{table}"), &mut leaves);
    for p in leaves {
        let old = doc.pointer(&p).cloned().expect("leaf");
        for max in [u64::MAX, u64::from(u32::MAX)] {
            *doc.pointer_mut(&p).expect("leaf") = max.into();
            if read(doc, &p).is_ok() {
                break;
            }
            *doc.pointer_mut(&p).expect("leaf") = old.clone();
        }
    }
}

/// The tables of `doc` that hold something.
fn filled(doc: &Value) -> Vec<&'static str> {
    TABLES
        .into_iter()
        .filter(|t| match &doc[*t] {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            _ => true,
        })
        .collect()
}

/// Lengths and start times the rates and percentages divide by or scale with.
const HEADERS: [(&str, u64); 4] = [
    ("duration_ns", 0),
    ("duration_ns", 1),
    ("duration_ns", u64::MAX),
    ("start_unix_ms", u64::MAX),
];

/// (name, recording) for each filled table of each seed made extreme alone, each seed with
/// all of them at once, and that again with each of `HEADERS`.
fn extreme_recordings() -> Vec<(String, Recording)> {
    let mut out = Vec::new();
    for s in SEEDS {
        let base = seed(s);
        let mut all = base.clone();
        for table in filled(&base) {
            let mut doc = base.clone();
            saturate(&mut doc, table);
            saturate(&mut all, table);
            assert_ne!(doc, base, "{s}: nothing in {table} to make extreme");
            let name = format!("{s}/{table}.json");
            out.push((name.clone(), read(&doc, &name).expect("still parses")));
        }
        for (key, v) in HEADERS {
            let mut doc = all.clone();
            doc[key] = v.into();
            let name = format!("{s}/all-{key}-{v}.json");
            out.push((name.clone(), read(&doc, &name).expect("still parses")));
        }
        let name = format!("{s}/all.json");
        out.push((name.clone(), read(&all, &name).expect("still parses")));
    }
    out
}

/// Text for people (and SVG): no "NaN" or "inf" from a division that went wrong.
fn assert_finite(name: &str, text: &str) {
    let bad = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| ["NaN", "inf"].contains(w));
    assert!(bad.is_none(), "{name}: {bad:?} in\n{text}");
}

/// Every view of `rec`: report (text, JSON, HTML), each flamegraph view (folded and SVG,
/// whole and per CPU), every export. Returns the report's JSON.
fn every_view(name: &str, rec: &Recording) -> Value {
    let r = report::build(rec, 10);
    assert_finite(name, &report::to_text(&r, 10));
    html::report_html(rec, 10, name).unwrap_or_else(|e| panic!("{name}: html: {e}"));
    for view in VIEWS {
        for per_cpu in [false, true] {
            let opts = FoldOptions {
                per_cpu,
                cpus: None,
                roots: None,
            };
            // An empty view is a one-line error, not a failure of this test.
            if let Ok(flame) = fg::build(rec, view, &opts, name) {
                flame.folded.to_text();
                let svg = fg::render_svg(&flame.folded, view, &flame.title, &flame.subtitle)
                    .unwrap_or_else(|e| panic!("{name}: {}: {e}", view.name()));
                assert_finite(name, &String::from_utf8_lossy(&svg));
            }
            export::folded::to_text(rec, view, &opts, name).ok();
        }
        if export::pprof::supports(view)
            && let Ok(p) = export::pprof::build(rec, view, None, name)
        {
            export::pprof::encode_gz(&p).expect("gzip");
            export::pprof::Totals::of(&p);
        }
    }
    for per_cpu in [false, true] {
        let opts = FoldOptions {
            per_cpu,
            cpus: None,
            roots: None,
        };
        let e = export::speedscope::build(rec, export::speedscope::ALL_VIEWS, &opts, name)
            .unwrap_or_else(|e| panic!("{name}: speedscope: {e}"));
        serde_json::to_string(&e.file).expect("speedscope JSON");
    }
    assert_eq!(export::csv::tables(rec).len(), 4, "{name}");
    serde_json::from_str(&report::to_json(&r)).expect("report JSON")
}

/// `before` compared with `after`: text, JSON, HTML and the differential flamegraphs.
fn compare_views(name: &str, before: &Recording, after: &Recording) {
    let recs = Pair::new(before, after);
    let c = compare::compare(recs, Pair::new("before", "after"), 5);
    assert_finite(name, &compare::to_text(&c));
    serde_json::from_str::<Value>(&compare::to_json(&c)).expect("compare JSON");
    html::compare_html(&c, before, after).unwrap_or_else(|e| panic!("{name}: compare html: {e}"));
    for view in VIEWS {
        let diffs = compare::diff_flamegraphs(recs, view)
            .unwrap_or_else(|e| panic!("{name}: diff flamegraph {}: {e}", view.name()));
        for d in diffs {
            assert_finite(name, &String::from_utf8_lossy(&d.svg));
        }
    }
}

#[test]
fn every_view_of_extreme_recordings_saturates() {
    let normal = read(&seed("synthetic-4cpu"), "synthetic-4cpu.json").expect("seed parses");
    let recs = extreme_recordings();
    // Every table of the script, from one seed or the other.
    for table in TABLES {
        assert!(
            recs.iter()
                .any(|(n, _)| n.ends_with(&format!("/{table}.json"))),
            "no seed fills {table}"
        );
    }
    for (name, rec) in &recs {
        let json = every_view(name, rec);
        compare_views(name, rec, rec);
        compare_views(name, rec, &normal);
        compare_views(name, &normal, rec);
        // Totals of extreme tables are u64::MAX, not what a wrapped sum leaves.
        let totals = &json["totals"];
        if name.ends_with("/lock_waits.json") || name.contains("/all") {
            assert_eq!(totals["contentions"], u64::MAX, "{name}: {totals}");
            let z = &totals["zone_lock_wait_ns"];
            for ns in [
                &z["alloc"],
                &z["free"],
                &z["other"],
                &totals["other_lock_wait_ns"],
            ] {
                assert!(*ns == 0 || *ns == u64::MAX, "{name}: {totals}");
            }
        }
        if name.ends_with("/pcp.json") || name.contains("/all") {
            assert_eq!(totals["pcp_refill_pages"], u64::MAX, "{name}: {totals}");
            assert_eq!(totals["pcp_drain_pages"], u64::MAX, "{name}: {totals}");
        }
    }
}
