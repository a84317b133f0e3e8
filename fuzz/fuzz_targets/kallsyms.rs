//! /proc/kallsyms text (or a copy someone passes): parsed, then every lookup zoneprof makes
//! on the addresses and names it lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::kernel::symbolize::{Kallsyms, base_name};

fuzz_target!(|data: &[u8]| {
    // zoneprof reads kallsyms with read_to_string: text that is not UTF-8 never gets here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(k) = Kallsyms::parse(text) else {
        return;
    };
    let mut addrs = Vec::new();
    for line in text.lines().take(256) {
        let mut fields = line.split_whitespace();
        if let Some(a) = fields.next().and_then(|a| u64::from_str_radix(a, 16).ok()) {
            addrs.extend([
                a,
                a.wrapping_sub(1),
                a.wrapping_add(1),
                a.wrapping_add(1 << 20),
            ]);
        }
        if let Some(name) = fields.nth(1) {
            let _ = k.address_of(name);
            let _ = k.symbol_range(name);
            let _ = k.variants_of(name);
            let _ = k.variants_of(base_name(name));
        }
    }
    for &a in &addrs {
        let _ = k.resolve(a);
        let _ = k.format_frame(a);
    }
    let _ = k.probe_glue_len(&addrs);
    let _ = (k.len(), k.is_empty());
});
