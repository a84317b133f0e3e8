//! Raw BTF (/sys/kernel/btf/vmlinux, or a file given with --btf): parsed, then every lookup
//! zoneprof makes (struct layouts for the zone-lock proof, prototypes for attach checks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoneprof::kernel::btf::Btf;

const MEMBERS: &[(&str, &str)] = &[
    ("zone", "lock"),
    ("zone", "name"),
    ("zone", "zone_pgdat"),
    ("pglist_data", "node_zones"),
    ("pglist_data", "node_id"),
    ("per_cpu_pages", "count"),
    ("sk_buff", "alloc_cpu"),
    ("sk_buff", "len"),
];
const FUNCS: &[&str] = &[
    "free_pcppages_bulk",
    "rmqueue_bulk",
    "__rmqueue_pcplist",
    "skb_attempt_defer_free",
];
const EVENTS: &[&str] = &[
    "contention_begin",
    "contention_end",
    "mm_page_alloc_zone_locked",
    "mm_page_pcpu_drain",
    "kfree_skb",
    "consume_skb",
];

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    let _ = btf.type_count();
    for &(s, m) in MEMBERS {
        let _ = btf.struct_size(s);
        let _ = btf.member_offset(s, m);
        let _ = btf.member_array_len(s, m);
    }
    for &f in FUNCS {
        let _ = btf.has_func(f);
        let _ = btf.func_arg_types(f);
    }
    for &e in EVENTS {
        let _ = btf.tracepoint_arg_types(e);
    }
});
