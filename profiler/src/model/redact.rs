//! Redaction: a copy of a recording that can go to a mailing list. Every view (report,
//! compare, flamegraph, HTML) works on it as on the original.
//!
//! What leaks, and what is done about it:
//! - Kernel addresses (zone-lock addresses from the kernel heap, unsymbolized stack frames,
//!   unresolved call sites, addresses quoted in error messages) give away where the kernel
//!   and its heap are, i.e. defeat KASLR. Each distinct address becomes a pseudonym: a small
//!   number, the same for the same address throughout the recording (so locks and zones
//!   still match up, and distinct frames stay distinct). Numeric `*_addr` fields get the
//!   number itself (shown `0x3`); text gets `[addr 3]`. Pseudonyms are numbered in address
//!   order, per recording: the same address in two recordings redacted apart can get two
//!   numbers.
//! - `symbol+0xoff` offsets are kept: an offset into a named function reveals nothing
//!   without the base address, and the views classify stacks by them.
//! - The hostname becomes `redacted-` and the first 12 hex digits of its SHA-256: stable
//!   (two recordings of one host still compare as one host), keyless, not reversible except
//!   by guessing the name. Where the command line or a message quotes the hostname as a
//!   word, it is replaced too.
//!
//! - cgroup paths (`record --tasks`) name VMs and services (`machine-qemu\x2d1\x2ddb.scope`):
//!   each path component becomes `cg-` and 12 hex digits of its SHA-256, its systemd unit
//!   suffix (`.slice`, `.scope`, `.service`) kept, so the tree's shape stays readable and
//!   one cgroup keeps one name. Thread names (`comm`) are kept: they name programs
//!   (`vhost-1234`, `ksoftirqd/3`), which the views need.
//!
//! Text is scanned in every string of the document (walked as JSON), so a field added to
//! the recording later is covered without a change here; numbers are addresses when their
//! field name ends in `_addr`. Redacting a redacted recording changes nothing.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::recording::Recording;

/// Prefix of a redacted hostname.
pub const HOST_PREFIX: &str = "redacted-";

/// Values at or below this are not kernel addresses (and pseudonyms stay below it).
const MAX_NON_ADDRESS: u64 = u32::MAX as u64;

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// Only a bug could cause it: the document is built from a valid recording.
    #[error("redacting the recording: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a redaction replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Distinct kernel addresses replaced by pseudonyms.
    pub addresses: usize,
    /// Whether the hostname was hashed (false when it already was).
    pub hostname_hashed: bool,
    /// cgroup paths whose names were hashed.
    pub cgroups: usize,
}

/// The redacted copy of `rec`, and what was replaced.
pub fn redact(rec: &Recording) -> Result<(Recording, Summary), RedactError> {
    let mut doc = serde_json::to_value(rec)?;
    let host = (!is_redacted_host(&rec.host.hostname)).then(|| rec.host.hostname.clone());

    let mut found = BTreeSet::new();
    let mut small = 0;
    collect(&doc, None, &mut found, &mut small);
    // Pseudonyms start above any small value already in an address field, so they cannot
    // collide with it (and a redacted recording maps onto itself).
    let names: BTreeMap<u64, u64> = found
        .iter()
        .zip(small + 1..)
        .map(|(&a, n)| (a, n))
        .collect();

    let r = Rewrite {
        names: &names,
        host: host.as_deref().map(|h| (h, hashed_host(h))),
    };
    r.value(&mut doc, None);
    let mut out: Recording = serde_json::from_value(doc)?;
    if let Some(h) = &host {
        out.host.hostname = hashed_host(h);
    }
    let mut cgroups = 0;
    for c in &mut out.cgroups {
        if let Some(p) = &c.path {
            let red = redact_cgroup_path(p);
            cgroups += usize::from(red != *p);
            c.path = Some(red);
        }
    }
    Ok((
        out,
        Summary {
            addresses: names.len(),
            hostname_hashed: host.is_some(),
            cgroups,
        },
    ))
}

/// Prefix of a hashed cgroup path component.
const CGROUP_PREFIX: &str = "cg-";

/// Each component of a cgroup path hashed, its unit suffix kept; hashed ones stay.
pub fn redact_cgroup_path(path: &str) -> String {
    let parts: Vec<String> = path
        .split('/')
        .map(|c| {
            if c.is_empty() {
                return String::new();
            }
            let (stem, suffix) = match c.rsplit_once('.') {
                Some((s, x)) if ["slice", "scope", "service"].contains(&x) => (s, Some(x)),
                _ => (c, None),
            };
            let hashed = stem
                .strip_prefix(CGROUP_PREFIX)
                .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            let stem = if hashed {
                stem.to_string()
            } else {
                let d = Sha256::digest(stem.as_bytes());
                let hex: String = d[..6].iter().map(|b| format!("{b:02x}")).collect();
                format!("{CGROUP_PREFIX}{hex}")
            };
            match suffix {
                Some(x) => format!("{stem}.{x}"),
                None => stem,
            }
        })
        .collect();
    parts.join("/")
}

/// `redacted-` and the first 12 hex digits of the name's SHA-256.
pub fn hashed_host(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{HOST_PREFIX}{hex}")
}

/// Whether `name` is already a redacted hostname.
pub fn is_redacted_host(name: &str) -> bool {
    name.strip_prefix(HOST_PREFIX)
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the recording was redacted (its hostname is a hash).
pub fn is_redacted(rec: &Recording) -> bool {
    is_redacted_host(&rec.host.hostname)
}

fn is_address_field(key: Option<&str>) -> bool {
    key.is_some_and(|k| k.ends_with("_addr"))
}

/// Gathers every address in `v`; `small` becomes the largest non-address value found in an
/// address field.
fn collect(v: &Value, key: Option<&str>, found: &mut BTreeSet<u64>, small: &mut u64) {
    match v {
        Value::Number(n) if is_address_field(key) => match n.as_u64() {
            Some(a) if a > MAX_NON_ADDRESS => {
                found.insert(a);
            }
            Some(a) => *small = (*small).max(a),
            None => {}
        },
        Value::String(s) => {
            for (_, _, a) in addresses_in(s) {
                found.insert(a);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, key, found, small)),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, i)| collect(i, Some(k.as_str()), found, small)),
        _ => {}
    }
}

struct Rewrite<'a> {
    names: &'a BTreeMap<u64, u64>,
    /// (hostname, its hash) when the hostname is to be replaced.
    host: Option<(&'a str, String)>,
}

/// Free-text fields that may quote the hostname (the command line, messages). Symbols,
/// probe and zone names are left alone: a short hostname ("vm", "tun") is also a word there.
const MAY_QUOTE_HOST: &[&str] = &["argv", "end_reason", "reason", "error", "stats_error"];

impl Rewrite<'_> {
    fn value(&self, v: &mut Value, key: Option<&str>) {
        match v {
            Value::Number(n) if is_address_field(key) => {
                if let Some(p) = n.as_u64().and_then(|a| self.names.get(&a)) {
                    *n = (*p).into();
                }
            }
            Value::String(s) => {
                let mut t = self.text(s);
                if let Some((h, hashed)) = &self.host
                    && key.is_some_and(|k| MAY_QUOTE_HOST.contains(&k))
                {
                    t = replace_word(&t, h, hashed);
                }
                *s = t;
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.value(i, key)),
            Value::Object(m) => m
                .iter_mut()
                .for_each(|(k, i)| self.value(i, Some(k.as_str()))),
            _ => {}
        }
    }

    fn text(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for (start, end, a) in addresses_in(s) {
            out.push_str(&s[last..start]);
            match self.names.get(&a) {
                Some(n) => out.push_str(&format!("[addr {n}]")),
                None => out.push_str(&s[start..end]),
            }
            last = end;
        }
        out.push_str(&s[last..]);
        out
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Kernel addresses written in `s`: (start, end, value) of each `0x` hex number above 32
/// bits, and of each bare 16-digit hex word with a letter in it (`ffff88863ffd6b08`), as
/// error messages write them. `sym+0x1b` offsets are small and stay.
fn addresses_in(s: &str) -> Vec<(usize, usize, u64)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Only at the start of a word: `bpf_prog_6deef7357e7b4530_name` is a tag, not an address.
        if i > 0 && is_word_byte(b[i - 1]) {
            i += 1;
            continue;
        }
        let prefixed = b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X'));
        let digits_at = if prefixed { i + 2 } else { i };
        let mut end = digits_at;
        while end < b.len() && b[end].is_ascii_hexdigit() {
            end += 1;
        }
        let word_ends = end == b.len() || !is_word_byte(b[end]);
        let digits = &s[digits_at..end];
        let value = u64::from_str_radix(digits, 16).ok();
        let is_addr = word_ends
            && value.is_some_and(|v| v > MAX_NON_ADDRESS)
            && (prefixed
                || (digits.len() == 16 && digits.bytes().any(|c| c.is_ascii_alphabetic())));
        match value {
            Some(v) if is_addr => {
                out.push((i, end, v));
                i = end;
            }
            _ => i = end.max(i + 1),
        }
    }
    out
}

/// `s` with every whole-word `word` (bounded by anything but letters, digits, `_` and `-`)
/// replaced by `with`.
fn replace_word(s: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return s.to_string();
    }
    let boundary =
        |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (at, _) in s.match_indices(word) {
        if at < last {
            continue;
        }
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        if boundary(before) && boundary(after) {
            out.push_str(&s[last..at]);
            out.push_str(with);
            last = at + word.len();
        }
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::host::{HostInfo, Settings};
    use crate::model::recording::{
        AttachAttempt, CommandInfo, Counters, LockWait, ProbeStatus, SkbSite, ZoneLabel,
    };

    const ZONE: u64 = 0xffff_8886_3ffd_6b08;
    const OTHER: u64 = 0xffff_8881_0000_1000;

    fn rec() -> Recording {
        let wait = |stack, lock_addr| LockWait {
            stack: Some(stack),
            stack_error: None,
            cpu: 0,
            lock_addr,
            lock_flags: 1,
            count: 2,
            total_ns: 100,
            max_ns: 60,
            tid: None,
        };
        Recording {
            format: crate::model::recording::FORMAT_NAME.into(),
            version: crate::model::recording::FORMAT_VERSION,
            zoneprof_version: "test".into(),
            host: HostInfo {
                hostname: "db7".into(),
                kernel_release: "6.18.44".into(),
                kernel_version: "#1 SMP".into(),
                arch: "x86_64".into(),
                online_cpus: vec![0, 1],
                possible_cpus: 2,
                cpu_node: vec![(0, 0), (1, 0)],
                numa_nodes: vec![0],
            },
            settings: Settings::default(),
            start_unix_ms: 0,
            duration_ns: 1_000_000_000,
            cpus: vec![0, 1],
            end_reason: "duration".into(),
            command: Some(CommandInfo {
                argv: vec!["ssh".into(), "db7".into(), "db7-backup".into()],
                exit_code: Some(0),
                signal: None,
            }),
            probes: vec![ProbeStatus {
                name: "skb_free".into(),
                method: "kprobe".into(),
                target: "kfree_skb".into(),
                attached: false,
                reason: Some(format!("lock {ZONE:#x} on db7")),
                attempts: vec![AttachAttempt {
                    method: "kprobe".into(),
                    target: "kfree_skb".into(),
                    error: Some("at ffff88863ffd6b08 failed".into()),
                }],
            }],
            frames: vec![
                "__pv_queued_spin_lock_slowpath+0x15b".into(),
                "0xffffffffc0a01410".into(),
                "bpf_prog_6deef7357e7b4530_sd_fw_ingress+0x10 [bpf]".into(),
            ],
            stacks: vec![vec![0, 1], vec![0, 2]],
            lock_waits: vec![wait(0, ZONE), wait(1, OTHER)],
            wait_hist: vec![],
            zones: vec![ZoneLabel {
                lock_addr: ZONE,
                node: 0,
                zone_idx: 2,
                name: "Normal".into(),
            }],
            pcp: vec![],
            counters: Counters::default(),
            skb_matrix: vec![],
            skb_sites: vec![SkbSite {
                function: "consume_skb".into(),
                caller: "0xffffffff81a00123".into(),
                cpu: 1,
                count: 3,
                remote: 1,
                cross_node: 0,
                tid: None,
            }],
            skb_defer: vec![],
            page_matrix: vec![],
            page_tracking: None,
            observer: None,
            tasks: Vec::new(),
            cgroups: Vec::new(),
        }
    }

    fn has_address(text: &str) -> bool {
        !addresses_in(text).is_empty()
    }

    #[test]
    fn finds_kernel_addresses_but_not_offsets_or_tags() {
        let found = |s: &str| {
            addresses_in(s)
                .into_iter()
                .map(|(_, _, a)| a)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("lock 0xffff88863ffd6b08."), vec![ZONE]);
        assert_eq!(found("at ffff88863ffd6b08"), vec![ZONE]);
        assert_eq!(found("0xFFFF88863FFD6B08"), vec![ZONE]);
        assert!(found("free_pcppages_bulk+0x37").is_empty());
        assert!(found("sym+0xffffffff").is_empty(), "32 bits is an offset");
        assert!(found("bpf_prog_6deef7357e7b4530_sd_fw_ingress+0x10 [bpf]").is_empty());
        assert!(
            found("id 1234567890123456").is_empty(),
            "decimal-looking words stay"
        );
        assert!(found("0xffff88863ffd6b08g").is_empty(), "not a whole word");
        assert_eq!(found("0x100000000"), vec![0x1_0000_0000]);
    }

    #[test]
    fn addresses_become_stable_pseudonyms_and_views_still_match_them() {
        let r = rec();
        let (red, sum) = redact(&r).expect("redact");
        // Two locks (one quoted in messages too), a frame and a call site.
        assert_eq!(sum.addresses, 4, "{red:?}");
        // Entries keep their order; pseudonyms follow address order (OTHER < ZONE).
        let (zone, other) = (red.lock_waits[0].lock_addr, red.lock_waits[1].lock_addr);
        assert!(zone <= MAX_NON_ADDRESS && other < zone, "{zone} {other}");
        // The zone label still names the zone lock's waits.
        assert_eq!(red.zones[0].lock_addr, zone);
        assert!(red.zone_by_addr(zone).is_some());
        // Frames: symbols and offsets kept, the unsymbolized one replaced, stacks unchanged.
        assert_eq!(red.frames[0], r.frames[0]);
        assert_eq!(red.frames[2], r.frames[2]);
        assert!(red.frames[1].starts_with("[addr ") && red.frames[1].ends_with(']'));
        assert_eq!(red.stacks, r.stacks);
        // The same address has the same pseudonym in a field and in text.
        assert_eq!(
            red.probes[0].reason.as_deref(),
            Some(format!("lock [addr {zone}] on {}", hashed_host("db7")).as_str())
        );
        assert_eq!(
            red.probes[0].attempts[0].error.as_deref(),
            Some(format!("at [addr {zone}] failed").as_str())
        );
        assert!(red.skb_sites[0].caller.starts_with("[addr "));
        let json = serde_json::to_string(&red).expect("json");
        assert!(!has_address(&json), "{json}");
        // Counts and everything else are untouched.
        assert_eq!(red.lock_waits[0].total_ns, 100);
        assert_eq!(red.skb_sites[0].count, 3);
    }

    #[test]
    fn hostname_is_hashed_where_it_is_a_word() {
        let (red, sum) = redact(&rec()).expect("redact");
        assert!(sum.hostname_hashed);
        let h = hashed_host("db7");
        assert_eq!(red.host.hostname, h);
        assert!(is_redacted(&red));
        // Stable and keyless.
        assert_eq!(h.len(), HOST_PREFIX.len() + 12);
        assert_eq!(hashed_host("db7"), h);
        assert_ne!(hashed_host("db8"), h);
        let argv = &red.command.as_ref().expect("command").argv;
        assert_eq!(
            argv,
            &vec!["ssh".to_string(), h.clone(), "db7-backup".to_string()]
        );
        let json = serde_json::to_string(&red).expect("json");
        assert!(!json.contains("\"db7\""), "{json}");
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let (once, _) = redact(&rec()).expect("redact");
        let (twice, sum) = redact(&once).expect("redact again");
        assert_eq!(twice, once);
        assert_eq!(
            sum,
            Summary {
                addresses: 0,
                hostname_hashed: false,
                cgroups: 0
            }
        );
    }

    #[test]
    fn pseudonyms_do_not_collide_with_small_values() {
        let mut r = rec();
        r.lock_waits[1].lock_addr = 7; // not an address: kept as it is
        let (red, _) = redact(&r).expect("redact");
        assert_eq!(red.lock_waits[1].lock_addr, 7);
        assert!(red.lock_waits[0].lock_addr > 7);
    }

    #[test]
    fn words_are_replaced_whole() {
        assert_eq!(
            replace_word("vm vmalloc vm.x a@vm: vm-2", "vm", "H"),
            "H vmalloc H.x a@H: vm-2"
        );
        assert_eq!(replace_word("abc", "", "H"), "abc");
        assert_eq!(replace_word("aaa", "aa", "H"), "aaa");
    }

    #[test]
    fn cgroup_paths_are_hashed_by_component_once() {
        let red = redact_cgroup_path("/machine.slice/machine-qemu\\x2d1\\x2ddb.scope/vcpu0");
        let parts: Vec<&str> = red.split('/').collect();
        assert_eq!(parts.len(), 4, "{red}");
        assert_eq!(parts[0], "");
        assert!(
            parts[1].starts_with("cg-") && parts[1].ends_with(".slice"),
            "{red}"
        );
        assert!(
            parts[2].ends_with(".scope") && !parts[2].contains("db"),
            "{red}"
        );
        assert!(
            parts[3].starts_with("cg-") && !parts[3].contains('.'),
            "{red}"
        );
        assert_eq!(
            redact_cgroup_path(&red),
            red,
            "redacting twice changes nothing"
        );
        assert_eq!(redact_cgroup_path("/"), "/");
        // One name, one pseudonym.
        assert_eq!(
            redact_cgroup_path("/a.slice/b").split('/').nth(1),
            redact_cgroup_path("/a.slice/c").split('/').nth(1)
        );
        let mut rec = crate::model::tasks::tests::sample_with_tasks();
        let (out, sum) = redact(&rec).expect("redacts");
        assert_eq!(sum.cgroups, 1);
        let path = out.cgroups[0].path.clone().expect("path");
        assert!(!path.contains("vm1"), "{path}");
        rec.cgroups[0].path = None;
        assert_eq!(redact(&rec).expect("redacts").1.cgroups, 0);
    }
}
