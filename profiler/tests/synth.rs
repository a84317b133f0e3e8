//! The synthetic large-host recording (`zoneprof-synth`, for `cargo xtask bench`) checked
//! against a committed golden file: the same arguments give the same recording, byte for
//! byte.
//!
//! `ZONEPROF_BLESS=1 cargo test -p profiler --test synth` rewrites the golden file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is the test failing (helpers too, not only #[test] fns)"
)]
mod common;

use common::check_golden;
use zoneprof::model::synth::{SynthArgs, build};

const FOLDED: &str = "\
cpu0;do_idle+0x1;free_unref_folios+0x346;free_frozen_page_commit+0x19d;free_pcppages_bulk+0x37;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 100
cpu1;ret_from_fork+0x1;handle_mm_fault+0x10;get_page_from_freelist+0x2fe;__rmqueue_pcplist+0x233;_raw_spin_lock_irqsave+0x4d;__pv_queued_spin_lock_slowpath+0x15b 200
cpu1;ret_from_fork+0x1;sched_tick+0x43;_raw_spin_lock+0x3b;__pv_queued_spin_lock_slowpath+0x15b 300
";

#[test]
fn small_synthetic_recording_matches_the_golden_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folded = dir.path().join("x.folded");
    std::fs::write(&folded, FOLDED).expect("write folded");
    let rec = build(&SynthArgs {
        output: dir.path().join("unused.zprof"),
        cpus: 6,
        nodes: 2,
        stacks: 10,
        skb_cells: 8,
        folded: vec![folded],
        seed: 3,
        wait_scale: 0.5,
    })
    .expect("build");
    let json = serde_json::to_string_pretty(&rec).expect("serialize") + "\n";
    check_golden("synth-6cpu.json", &json);
}
