//! Duration arguments ("10s", "1.5m", "250us"), and the unit formatters on any value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::model::units::{fmt_bytes, fmt_count, fmt_ns, fmt_pct, fmt_rate_gbs, parse_duration};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 16 {
        // Both slices are 8 bytes: data holds at least 16.
        let a = u64::from_le_bytes(data[..8].try_into().unwrap());
        let b = f64::from_le_bytes(data[8..16].try_into().unwrap());
        let _ = (
            fmt_ns(a),
            fmt_count(a),
            fmt_bytes(a),
            fmt_pct(b),
            fmt_rate_gbs(a, b),
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert!(!d.is_zero(), "{text:?} parsed to zero");
    }
});
