//! A trace event `format` file from tracefs (events/<category>/<name>/format).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::kernel::tracefs::parse_format;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = parse_format(text) {
        assert!(!f.fields.is_empty(), "a parsed format has fields");
        for field in &f.fields {
            assert!(f.field(&field.name).is_some());
        }
    }
});
