//! Root integration tests: load and attach the real probes, run the built-in reproducers,
//! and check what the recording says against the kernel's own counts.
//!
//! They skip, saying why, when not root or with fewer than 2 CPUs. `cargo xtask test` sets
//! ZONEPROF_REQUIRE_ROOT_TESTS=1 when it runs as root, which turns a skip into a failure,
//! so CI cannot pass by skipping.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use serde_json::Value;

/// Recordings see the whole host: never run two at once.
static HOST: Mutex<()> = Mutex::new(());

const BIN: &str = env!("CARGO_BIN_EXE_zoneprof");

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to load eBPF programs".into());
    }
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    if online.trim() == "0" {
        return Some("needs at least 2 online CPUs".into());
    }
    None
}

/// Returns true when the test should return early (skipped).
fn skip(test: &str) -> bool {
    let Some(why) = skip_reason() else {
        return false;
    };
    if std::env::var("ZONEPROF_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("{test}: root test would be skipped ({why}) but ZONEPROF_REQUIRE_ROOT_TESTS=1");
    }
    eprintln!("SKIPPED {test}: {why}");
    true
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running zoneprof {args:?}: {e}"));
    assert!(
        out.status.success(),
        "zoneprof {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn record_workload(dir: &Path, name: &str, workload: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.zprof"));
    let p = path.to_string_lossy().into_owned();
    let mut args = vec!["record", "--no-progress", "-o", &p, "--", BIN];
    args.extend_from_slice(workload);
    let out = run(&args);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    path
}

fn report_json(path: &Path) -> Value {
    let out = run(&["report", "--format", "json", &path.to_string_lossy()]);
    serde_json::from_slice(&out.stdout).expect("report JSON parses")
}

fn cpu<'a>(r: &'a Value, cpu: u64) -> &'a Value {
    r["per_cpu"]
        .as_array()
        .expect("per_cpu is a list")
        .iter()
        .find(|c| c["cpu"].as_u64() == Some(cpu))
        .unwrap_or_else(|| panic!("per_cpu has no CPU {cpu}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The kernel's own per-CPU count of PCP refills, from a tracefs hist trigger: an
/// independent tracer on the same tracepoint. Removed on drop, also when a test fails.
struct HistTrigger {
    file: PathBuf,
    spec: &'static str,
}

impl HistTrigger {
    fn new() -> HistTrigger {
        let root = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("events").is_dir())
            .expect("tracefs is mounted (zoneprof record mounts it)");
        let file = root.join("events/kmem/mm_page_alloc_zone_locked/trigger");
        let spec = "hist:keys=common_cpu:vals=hitcount if percpu_refill == 1";
        std::fs::write(&file, spec).expect("hist trigger (CONFIG_HIST_TRIGGERS)");
        HistTrigger { file, spec }
    }

    fn counts(&self) -> std::collections::BTreeMap<u64, u64> {
        let hist = std::fs::read_to_string(self.file.with_file_name("hist")).expect("read hist");
        let mut out = std::collections::BTreeMap::new();
        for line in hist.lines().filter(|l| l.starts_with("{ common_cpu:")) {
            let num = |key: &str| -> u64 {
                let rest = &line[line.find(key).expect("key") + key.len()..];
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("number")
            };
            out.insert(num("common_cpu:"), num("hitcount:"));
        }
        out
    }
}

impl Drop for HistTrigger {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.file, format!("!{}", self.spec));
    }
}

#[test]
fn cross_cpu_pages_refill_on_alloc_cpu_drain_on_free_cpu() {
    let _g = HOST.lock().unwrap_or_else(|e| e.into_inner());
    if skip("cross_cpu_pages_refill_on_alloc_cpu_drain_on_free_cpu") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");

    let trigger = HistTrigger::new();
    let cross = record_workload(
        dir.path(),
        "cross",
        &[
            "workload",
            "cross-cpu-pages",
            "--alloc-cpus",
            "0",
            "--free-cpus",
            "1",
            "-d",
            "2s",
        ],
    );
    let kernel_counts = trigger.counts();
    drop(trigger);
    let same = record_workload(
        dir.path(),
        "same",
        &[
            "workload",
            "cross-cpu-pages",
            "--alloc-cpus",
            "0",
            "--free-cpus",
            "1",
            "--same-cpu",
            "-d",
            "2s",
        ],
    );
    let rc = report_json(&cross);
    let rs = report_json(&same);

    for p in rc["probes"].as_array().expect("probes list") {
        assert_eq!(p["attached"], Value::Bool(true), "probe not attached: {p}");
        assert_eq!(p["method"], "tracepoint");
    }

    let refill0 = u(&cpu(&rc, 0)["pcp_refill_pages"]);
    let refill1 = u(&cpu(&rc, 1)["pcp_refill_pages"]);
    let drain0 = u(&cpu(&rc, 0)["pcp_drain_pages"]);
    let drain1 = u(&cpu(&rc, 1)["pcp_drain_pages"]);
    eprintln!("cross-CPU: refill cpu0 {refill0} cpu1 {refill1}; drain cpu0 {drain0} cpu1 {drain1}");
    assert!(
        refill0 > 10_000,
        "too few refills on the alloc CPU: {refill0}"
    );
    assert!(
        refill0 > 10 * refill1.max(1),
        "refills should land on CPU 0"
    );
    assert!(drain1 > 10_000, "too few drains on the free CPU: {drain1}");
    assert!(drain1 > 10 * drain0.max(1), "drains should land on CPU 1");

    // Independent tracer: the kernel's hist trigger saw the same refill events.
    let ev0 = u(&cpu(&rc, 0)["pcp_refill_events"]);
    let k0 = kernel_counts.get(&0).copied().unwrap_or(0);
    let diff = (ev0 as f64 - k0 as f64).abs() / (k0.max(1) as f64);
    eprintln!(
        "refill events on CPU 0: zoneprof {ev0}, kernel hist trigger {k0} ({:.2} % apart)",
        diff * 100.0
    );
    assert!(
        diff < 0.05,
        "zoneprof {ev0} vs hist trigger {k0}: more than 5 % apart"
    );

    let s_refill0 = u(&cpu(&rs, 0)["pcp_refill_pages"]);
    let s_drain1 = u(&cpu(&rs, 1)["pcp_drain_pages"]);
    eprintln!("same-CPU: refill cpu0 {s_refill0}; drain cpu1 {s_drain1}");
    assert!(
        s_refill0 * 5 < refill0,
        "same-CPU refills {s_refill0} not far below cross-CPU {refill0}"
    );
    assert!(
        s_drain1 * 5 < drain1,
        "same-CPU drains on CPU 1 {s_drain1} not far below {drain1}"
    );

    // Zone-lock attribution: whatever zone-lock wait there is sits on the expected sides.
    let z0 = &cpu(&rc, 0)["zone_lock_wait_ns"];
    let z1 = &cpu(&rc, 1)["zone_lock_wait_ns"];
    eprintln!("zone-lock wait cross-CPU: cpu0 {z0}, cpu1 {z1}");
    assert!(
        u(&z0["alloc"]) >= u(&z1["alloc"]),
        "alloc-side wait should be on CPU 0"
    );
    assert!(
        u(&z1["free"]) >= u(&z0["free"]),
        "free-side wait should be on CPU 1"
    );
}

#[test]
fn record_reports_bad_cpu_and_report_rejects_garbage() {
    // No root needed: the CPU list is checked before anything is loaded.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["record", "--cpus", "4000", "-d", "1s", "-o"])
        .arg(dir.path().join("x.zprof"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CPU 4000"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(!dir.path().join("x.zprof").exists());
}
