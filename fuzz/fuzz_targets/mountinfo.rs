//! `/proc/self/mountinfo` lines, read to find the cgroup2 mount that names cgroup ids
//! (`record --tasks`). Whatever the text, a found mount point is an absolute path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::kernel::cgroup::cgroup2_mount;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(p) = cgroup2_mount(text) {
        // Field 5 of a line: never empty, as split_whitespace yields no empty field.
        assert!(!p.as_os_str().is_empty());
    }
});
