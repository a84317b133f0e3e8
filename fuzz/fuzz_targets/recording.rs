//! A recording file (gzip or plain JSON) as `zoneprof report/compare/flamegraph` read it:
//! any bytes give a recording or a one-line error, never a panic, a hang or unbounded memory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zoneprof::model::recording::{PcpMethod, Recording};

fuzz_target!(|data: &[u8]| {
    let Ok(rec) = Recording::from_bytes(data, Path::new("fuzz.zprof")) else {
        return;
    };
    // What every reader does first: stacks by index, the PCP method.
    for i in 0..rec.stacks.len() {
        let _ = rec.stack_frames(i as u32);
    }
    let _ = PcpMethod::of(&rec.probes);
    // What was read can be written and read back.
    let json = serde_json::to_vec(&rec).expect("a parsed recording serializes");
    if let Err(e) = Recording::from_bytes(&json, Path::new("again.zprof")) {
        panic!("a recording that parsed does not parse once written again: {e}");
    }
});
