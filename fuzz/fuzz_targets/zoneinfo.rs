//! /proc/zoneinfo: the per-CPU pageset settings a recording keeps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::kernel::host::parse_zoneinfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_zoneinfo(text);
});
