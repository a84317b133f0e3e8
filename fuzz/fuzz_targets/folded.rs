//! Folded stacks (`cpuN;root;...;leaf VALUE`, the contention fixtures' format): each line
//! parsed and its lock classified, then folded back as the flamegraph does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::output::flamegraph::{FoldOptions, fold, lock_stacks_from_folded};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(stacks) = lock_stacks_from_folded(text, "fuzz.folded") else {
        return;
    };
    for per_cpu in [false, true] {
        let folded = fold(
            &stacks,
            &FoldOptions {
                per_cpu,
                cpus: None,
                roots: None,
            },
        );
        let _ = (folded.total(), folded.to_text());
    }
});
