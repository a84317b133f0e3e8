//! `zoneprof export` end to end, on recordings built from the real contention fixtures and
//! read back by the real consumers: `go tool pprof` (Debian's golang-go, installed by
//! `cargo xtask setup`; without it the pprof test skips, unless ZONEPROF_REQUIRE_GO=1, which
//! `cargo xtask test` sets as root), speedscope's own JSON schema, and the report's JSON for
//! the numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use prost::Message as _;
use zoneprof::output::export::pprof::proto::Profile;

const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");
const FIXTURES: &[&str] = &[
    "vm16-6.18-cross-cpu-free",
    "vm16-6.18-tap32k-cross-cpu",
    "vm2-6.18-cross-cpu-free",
];

fn zoneprof(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"))
}

fn ok(args: &[&str]) -> Output {
    let out = zoneprof(args);
    assert!(
        out.status.success(),
        "zoneprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A recording of fixture `name` in `dir`, or None (skipped) when the fixture is missing.
fn fixture_recording(test: &str, dir: &Path, name: &str) -> Option<PathBuf> {
    let text = common::fixture(test, &format!("{name}.folded"))?;
    let rec = common::recording_from_folded(&text, name, 4.0, 16);
    Some(common::write_recording(dir, &format!("{name}.zprof"), &rec))
}

fn report_json(rec: &Path) -> serde_json::Value {
    let out = ok(&["report", s(rec), "--format", "json"]);
    serde_json::from_slice(&out.stdout).expect("report JSON")
}

fn read_pprof(path: &Path) -> Profile {
    let gz = std::fs::read(path).expect("read pprof");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut raw)
        .expect("pprof files are gzip");
    Profile::decode(raw.as_slice()).expect("profile.proto")
}

/// (contentions, delay ns) summed over the samples.
fn pprof_totals(p: &Profile) -> (i64, i64) {
    p.sample
        .iter()
        .fold((0, 0), |(c, d), s| (c + s.value[0], d + s.value[1]))
}

fn u(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn pprof_delay_total_equals_the_report_wait_total() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in FIXTURES {
        let Some(rec) = fixture_recording("pprof_delay_total", dir.path(), name) else {
            return;
        };
        let r = report_json(&rec);
        let zone = &r["totals"]["zone_lock_wait_ns"];
        let zone_total = u(&zone["alloc"]) + u(&zone["free"]) + u(&zone["other"]);
        let other = u(&r["totals"]["other_lock_wait_ns"]);
        assert!(zone_total > 0, "{name}: the fixture has zone-lock wait");
        for (view, want) in [
            ("zone-wait", zone_total),
            ("zone-alloc", u(&zone["alloc"])),
            ("zone-free", u(&zone["free"])),
            ("locks", zone_total + other),
        ] {
            let out = dir.path().join(format!("{name}.{view}.pb.gz"));
            ok(&[
                "export",
                s(&rec),
                "--format",
                "pprof",
                "--view",
                view,
                "-o",
                s(&out),
            ]);
            let (contentions, delay) = pprof_totals(&read_pprof(&out));
            assert_eq!(delay, want, "{name} {view}: delay/nanoseconds total");
            if view == "locks" {
                // Every wait is one contention in these recordings.
                assert_eq!(contentions, u(&r["totals"]["contentions"]), "{name}");
            }
        }
        // The default view is zone-wait.
        let out = dir.path().join(format!("{name}.pb.gz"));
        ok(&["export", s(&rec), "--format", "pprof", "-o", s(&out)]);
        assert_eq!(pprof_totals(&read_pprof(&out)).1, zone_total, "{name}");
    }
}

#[test]
fn go_tool_pprof_lists_the_zone_lock_takers() {
    let Some(go) = common::go_or_skip("go_tool_pprof_lists_the_zone_lock_takers") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(rec) = fixture_recording("go_tool_pprof", dir.path(), "vm16-6.18-cross-cpu-free")
    else {
        return;
    };
    let file = dir.path().join("zone.pb.gz");
    ok(&["export", s(&rec), "--format", "pprof", "-o", s(&file)]);
    let f = s(&file);

    // Sorted by cumulative delay: the takers (alloc: __rmqueue_pcplist, free:
    // free_pcppages_bulk) carry most of it, above the noise.
    let top = common::go_pprof(&go, dir.path(), &["-top", "-cum", "-nodecount=40", f]);
    assert!(top.contains("Type: delay"), "{top}");
    for taker in ["__rmqueue_pcplist", "free_pcppages_bulk"] {
        let line = top
            .lines()
            .find(|l| l.split_whitespace().last() == Some(taker))
            .unwrap_or_else(|| panic!("{taker} missing from go tool pprof -top:\n{top}"));
        // cum% (5th column) of a taker is well above zero.
        let cum_pct: f64 = line
            .split_whitespace()
            .nth(4)
            .and_then(|c| c.trim_end_matches('%').parse().ok())
            .unwrap_or_else(|| panic!("no cum% in {line:?}"));
        assert!(cum_pct > 10.0, "{taker}: {line}");
    }

    // pprof's own total, in ns, is the report's zone-lock wait.
    let r = report_json(&rec);
    let zone = &r["totals"]["zone_lock_wait_ns"];
    let want = u(&zone["alloc"]) + u(&zone["free"]) + u(&zone["other"]);
    let top_ns = common::go_pprof(&go, dir.path(), &["-top", "-unit=ns", "-nodecount=1", f]);
    assert!(
        top_ns.contains(&format!("of {want}ns total")),
        "expected a total of {want}ns:\n{top_ns}"
    );

    // The contentions sample type, and the labels.
    let contentions = common::go_pprof(&go, dir.path(), &["-top", "-sample_index=contentions", f]);
    assert!(contentions.contains("Type: contentions"), "{contentions}");
    let tags = common::go_pprof(&go, dir.path(), &["-tags", f]);
    for want in [
        "cpu:",
        "side:",
        "lock_class:",
        "zone->lock alloc",
        "alloc",
        "free",
    ] {
        assert!(tags.contains(want), "{want} missing from -tags:\n{tags}");
    }
    // Focusing on the free side leaves the free taker and drops the alloc one.
    let free = common::go_pprof(
        &go,
        dir.path(),
        &["-top", "-cum", "-nodecount=40", "-tagfocus=side=free", f],
    );
    assert!(free.contains("free_pcppages_bulk"), "{free}");
    assert!(!free.contains("__rmqueue_pcplist"), "{free}");
}

fn speedscope_validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/speedscope-file-format-schema.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vendored schema"))
            .expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON schema")
}

fn assert_valid(v: &jsonschema::Validator, doc: &serde_json::Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{what} is not a speedscope file: {errors:?}"
    );
}

#[test]
fn speedscope_file_validates_against_its_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(rec_path) =
        fixture_recording("speedscope_schema", dir.path(), "vm2-6.18-cross-cpu-free")
    else {
        return;
    };
    // Add SKB and page data so every view has a profile.
    let mut rec = zoneprof::model::recording::Recording::read(&rec_path).expect("read");
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
    let rec_path = common::write_recording(dir.path(), "full.zprof", &rec);
    let v = speedscope_validator();

    let out = dir.path().join("all.speedscope.json");
    let run = ok(&[
        "export",
        s(&rec_path),
        "--format",
        "speedscope",
        "-o",
        s(&out),
    ]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("6 profile(s)"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("read")).expect("JSON");
    assert_valid(&v, &doc, "the export");
    let profiles = doc["profiles"].as_array().expect("profiles");
    assert_eq!(profiles.len(), 6, "one profile per view");
    let names: Vec<&str> = profiles.iter().filter_map(|p| p["name"].as_str()).collect();
    for prefix in [
        "zone->lock wait:",
        "zone->lock wait, allocation side:",
        "zone->lock wait, free side:",
        "contended-lock wait:",
        "SKB frees by site:",
        "PCP page traffic:",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "{prefix}: {names:?}"
        );
    }
    // The zone-wait profile weighs what the folded export does.
    let folded = dir.path().join("w.folded");
    ok(&[
        "export",
        s(&rec_path),
        "--format",
        "folded",
        "-o",
        s(&folded),
    ]);
    let folded_total: i64 = std::fs::read_to_string(&folded)
        .expect("read")
        .lines()
        .map(|l| {
            l.rsplit_once(' ')
                .expect("count")
                .1
                .parse::<i64>()
                .expect("int")
        })
        .sum();
    let weights: i64 = profiles[0]["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(u)
        .sum();
    assert_eq!(weights, folded_total);
    assert_eq!(u(&profiles[0]["endValue"]), folded_total);

    // The validator is not lenient: a broken document fails it.
    let mut bad = doc.clone();
    bad["profiles"][0]["unit"] = "furlongs".into();
    assert!(!v.is_valid(&bad), "an unknown unit must fail the schema");
    let mut bad = doc.clone();
    if let Some(p) = bad["profiles"][0].as_object_mut() {
        p.remove("weights");
    }
    assert!(
        !v.is_valid(&bad),
        "a sampled profile without weights must fail"
    );

    // One view, per CPU, on one CPU: still a valid file, with cpuN roots.
    let one = dir.path().join("one.speedscope.json");
    ok(&[
        "export",
        s(&rec_path),
        "--format",
        "speedscope",
        "--view",
        "zone-free",
        "--per-cpu",
        "--cpu",
        "1",
        "-o",
        s(&one),
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&one).expect("read")).expect("JSON");
    assert_valid(&v, &doc, "the one-view export");
    assert_eq!(doc["profiles"].as_array().map(Vec::len), Some(1));
    let roots: Vec<&str> = doc["profiles"][0]["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| u(&s[0]) as usize)
        .map(|i| doc["shared"]["frames"][i]["name"].as_str().expect("name"))
        .collect();
    assert!(
        !roots.is_empty() && roots.iter().all(|r| *r == "cpu1"),
        "{roots:?}"
    );
}

#[test]
fn folded_export_is_flamegraph_folded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(rec) = fixture_recording("folded_export", dir.path(), "vm16-6.18-tap32k-cross-cpu")
    else {
        return;
    };
    for args in [
        &["--view", "zone-wait"][..],
        &["--view", "locks", "--per-cpu"][..],
        &["--view", "zone-alloc", "--cpu", "0-3"][..],
    ] {
        let out = dir.path().join("x.folded");
        let mut export = vec!["export", s(&rec), "--format", "folded", "-o", s(&out)];
        export.extend_from_slice(args);
        ok(&export);
        let mut fg = vec!["flamegraph", s(&rec), "--folded"];
        fg.extend_from_slice(args);
        let stdout = ok(&fg).stdout;
        assert_eq!(
            std::fs::read(&out).expect("read"),
            stdout,
            "export --format folded {args:?} differs from flamegraph --folded"
        );
    }
}

/// A strict RFC 4180 split for the numbers here (no quoted fields in these tables).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    assert!(text.ends_with("\r\n"), "CRLF line ends");
    text.split_terminator("\r\n")
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn csv_tables_match_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(rec_path) = fixture_recording("csv_tables", dir.path(), "vm16-6.18-cross-cpu-free")
    else {
        return;
    };
    let mut rec = zoneprof::model::recording::Recording::read(&rec_path).expect("read");
    rec.skb_matrix = vec![zoneprof::model::recording::SkbCell {
        alloc_cpu: 0,
        free_cpu: 9,
        count: 77,
    }];
    let rec_path = common::write_recording(dir.path(), "m.zprof", &rec);
    let out = dir.path().join("tables");
    ok(&["export", s(&rec_path), "--format", "csv", "-o", s(&out)]);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "page-matrix.csv",
            "per-cpu.csv",
            "skb-free-sites.csv",
            "skb-matrix.csv"
        ]
    );
    let r = report_json(&rec_path);
    let rows = csv_rows(&std::fs::read_to_string(out.join("per-cpu.csv")).expect("read"));
    let col = |h: &str| rows[0].iter().position(|c| c == h).expect(h);
    let per_cpu = r["per_cpu"].as_array().expect("per_cpu");
    assert_eq!(rows.len() - 1, per_cpu.len());
    for (row, cpu) in rows[1..].iter().zip(per_cpu) {
        assert_eq!(row[col("cpu")], cpu["cpu"].to_string());
        for side in ["alloc", "free", "other"] {
            assert_eq!(
                row[col(&format!("zone_lock_wait_{side}_ns"))],
                cpu["zone_lock_wait_ns"][side].to_string(),
                "cpu {} {side}",
                cpu["cpu"]
            );
        }
        assert_eq!(
            row[col("other_lock_wait_ns")],
            cpu["other_lock_wait_ns"].to_string()
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("skb-matrix.csv")).expect("read"),
        "alloc_cpu,alloc_node,free_cpu,free_node,count\r\n0,0,9,0,77\r\n"
    );
    // No page tracking in this recording: the header alone.
    assert_eq!(
        csv_rows(&std::fs::read_to_string(out.join("page-matrix.csv")).expect("read")).len(),
        1
    );
}

#[test]
fn bad_input_is_one_line_and_the_right_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(rec) = fixture_recording("export_bad_input", dir.path(), "vm2-6.18-cross-cpu-free")
    else {
        return;
    };
    let out = dir.path().join("out");
    let o = s(&out);
    let r = s(&rec);
    // Usage errors: clap's message, exit 2, nothing written. `ours`: a check zoneprof makes
    // after parsing, which prints export's usage line as clap's own checks do.
    for (args, ours) in [
        (&["export", r, "--format", "protobuf", "-o", o][..], false),
        (&["export", r, "-o", o][..], false),
        (&["export", r, "--format", "pprof"][..], false),
        (
            &["export", r, "--format", "csv", "--view", "locks", "-o", o][..],
            true,
        ),
        (
            &["export", r, "--format", "pprof", "--per-cpu", "-o", o][..],
            true,
        ),
        (
            &["export", r, "--format", "pprof", "--view", "pages", "-o", o][..],
            true,
        ),
        (
            &["export", r, "--format", "pprof", "--per-task", "-o", o][..],
            true,
        ),
        (
            &["export", r, "--format", "csv", "--per-cgroup", "-o", o][..],
            true,
        ),
        (
            &[
                "export",
                r,
                "--format",
                "folded",
                "--per-task",
                "--per-cgroup",
                "-o",
                o,
            ][..],
            false,
        ),
    ] {
        let res = zoneprof(args);
        assert_eq!(res.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        if ours {
            assert!(err.contains("Usage: zoneprof export"), "{args:?}: {err}");
        }
        assert!(!out.exists(), "{args:?} wrote something");
    }
    // A recording made without --tasks cannot have thread or cgroup roots: one line, exit 2.
    for flag in ["--per-task", "--per-cgroup"] {
        let res = zoneprof(&["export", r, "--format", "folded", flag, "-o", o]);
        assert_eq!(res.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{flag}: {err}");
        assert!(
            err.contains("record it with `zoneprof record --tasks`"),
            "{flag}: {err}"
        );
        assert!(!out.exists(), "{flag} wrote something");
    }
    // Runtime errors: one line, exit 1, nothing written.
    let junk = dir.path().join("junk.zprof");
    std::fs::write(&junk, "hello").expect("write");
    let missing = dir.path().join("missing.zprof");
    for (args, says) in [
        (
            vec!["export", s(&junk), "--format", "pprof", "-o", o],
            "not a zoneprof recording",
        ),
        (
            vec!["export", s(&missing), "--format", "csv", "-o", o],
            "missing.zprof",
        ),
        // This recording has no SKB frees: an empty view.
        (
            vec![
                "export", r, "--format", "folded", "--view", "skb-free", "-o", o,
            ],
            "no SKB frees",
        ),
        (
            vec![
                "export",
                r,
                "--format",
                "pprof",
                "--view",
                "zone-alloc",
                "--cpu",
                "1",
                "-o",
                o,
            ],
            "on CPUs 1",
        ),
    ] {
        let res = zoneprof(&args);
        assert_eq!(res.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote something");
    }
}

#[test]
fn doctor_mentions_export() {
    // Exit 0 or 1 (whether this host can record); the line is there either way.
    let out = zoneprof(&["doctor"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("zoneprof export r.zprof --format pprof|speedscope|folded|csv"),
        "{text}"
    );
}
