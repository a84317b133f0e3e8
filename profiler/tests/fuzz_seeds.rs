//! The committed fuzz seed corpora (fuzz/corpus/<target>/) are real inputs: each parses with
//! the parser its target fuzzes, on stable, in `cargo test`. A seed that stopped parsing would
//! leave its fuzz target starting from nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test: a failed expectation is the test failing"
)]
use std::fs;
use std::path::{Path, PathBuf};

use zoneprof::kernel::btf::Btf;
use zoneprof::kernel::cpulist::parse_cpu_list;
use zoneprof::kernel::host::parse_zoneinfo;
use zoneprof::kernel::symbolize::Kallsyms;
use zoneprof::kernel::tracefs::parse_format;
use zoneprof::model::recording::Recording;
use zoneprof::model::units::parse_duration;
use zoneprof::output::flamegraph::lock_stacks_from_folded;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("dir entry").path();
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn text(p: &Path, bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn recording_seeds_parse() {
    for target in ["recording", "recording_views"] {
        for (p, b) in seeds(target) {
            let rec = Recording::from_bytes(&b, &p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!rec.lock_waits.is_empty(), "{}", p.display());
        }
    }
}

#[test]
fn kallsyms_seeds_parse() {
    for (p, b) in seeds("kallsyms") {
        let k = Kallsyms::parse(&text(&p, &b)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let addr = k
            .address_of("free_pcppages_bulk")
            .expect("free_pcppages_bulk listed");
        assert_eq!(
            k.format_frame(addr + 0x37),
            "free_pcppages_bulk+0x37",
            "{}",
            p.display()
        );
    }
}

#[test]
fn tracefs_format_seeds_parse() {
    for (p, b) in seeds("tracefs_format") {
        let f = parse_format(&text(&p, &b)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(f.field("common_pid").is_some(), "{}", p.display());
    }
}

#[test]
fn btf_seeds_parse_and_the_cut_answers_zoneprofs_lookups() {
    for (p, b) in seeds("btf") {
        let btf = Btf::parse(&b).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(btf.type_count() > 10, "{}", p.display());
    }
    // The cut of a kernel's BTF (fuzz/cut-btf.py) still holds what attach and doctor look up.
    let (_, cut) = seeds("btf")
        .into_iter()
        .find(|(p, _)| p.ends_with("vmlinux-cut"))
        .expect("fuzz/corpus/btf/vmlinux-cut");
    let btf = Btf::parse(&cut).expect("parses");
    for (s, m) in [
        ("zone", "lock"),
        ("zone", "name"),
        ("zone", "zone_pgdat"),
        ("pglist_data", "node_zones"),
        ("pglist_data", "node_id"),
        ("per_cpu_pages", "count"),
        ("sk_buff", "alloc_cpu"),
    ] {
        assert!(
            matches!(btf.member_offset(s, m), Ok(Some(_))),
            "{s}.{m}: {:?}",
            btf.member_offset(s, m)
        );
    }
    assert!(btf.struct_size("zone").expect("zone") > 0);
    assert!(
        btf.member_array_len("pglist_data", "node_zones")
            .expect("array")
            .is_some()
    );
    let args = btf
        .tracepoint_arg_types("contention_begin")
        .expect("reads")
        .expect("btf_trace_contention_begin");
    assert_eq!(args, ["void *", "unsigned int"]);
    assert!(btf.has_func("free_pcppages_bulk"));
    let args = btf
        .func_arg_types("free_pcppages_bulk")
        .expect("reads")
        .expect("free_pcppages_bulk");
    assert_eq!(args[0], "struct zone *");
}

#[test]
fn cpulist_seeds_parse() {
    for (p, b) in seeds("cpulist") {
        parse_cpu_list(&text(&p, &b)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn units_seeds_parse() {
    for (p, b) in seeds("units") {
        parse_duration(&text(&p, &b)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn folded_seeds_parse() {
    for (p, b) in seeds("folded") {
        let s = lock_stacks_from_folded(&text(&p, &b), "seed")
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!s.is_empty(), "{}", p.display());
    }
}

#[test]
fn zoneinfo_seeds_parse() {
    for (p, b) in seeds("zoneinfo") {
        assert!(!parse_zoneinfo(&text(&p, &b)).is_empty(), "{}", p.display());
    }
}

#[test]
fn mountinfo_seeds_find_cgroup2_where_they_have_it() {
    for (p, b) in seeds("mountinfo") {
        let t = text(&p, &b);
        let has = t.lines().any(|l| l.contains(" - cgroup2 "));
        assert_eq!(
            zoneprof::kernel::cgroup::cgroup2_mount(&t).is_some(),
            has,
            "{}",
            p.display()
        );
    }
}
