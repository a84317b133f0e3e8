//! A recording's lock waits as a pprof profile (gzip-compressed `profile.proto`), the
//! shape of Go's mutex profile: sample types `contentions/count` and `delay/nanoseconds`,
//! so `go tool pprof`, Grafana Pyroscope and Parca read it as lock contention.
//!
//! Mapping (docs/pprof-export.md says it for users):
//! - one sample per (stack, CPU, lock class, proven zone), values summed over its waits;
//! - labels: `cpu`, `lock_class` (as the report names it), `side` (`alloc`, `free` or
//!   `other`, zone->lock only) and `zone` (`node N / zone NAME`, where the kernel proved the
//!   address to be a zone lock); from a recording made with `--tasks`, also `thread`
//!   (`comm-tid`) and `cgroup` (its path), one sample per thread;
//! - each kernel frame `sym+0xoff [mod]` is a Location with one Line: its Function is
//!   `sym` (filename `[mod]`, or `[kernel.kallsyms]` for the core kernel), `Line.line` is
//!   the offset `0xoff` into it; an unsymbolized frame (`0xffff…`) keeps its address;
//! - one Mapping, `[kernel.kallsyms]`, with `has_functions` set (pprof symbolizes nothing).
//!
//! Encoding: `prost` with the messages declared by hand in `proto` (no `protoc` at build
//! time): a maintained encoder, and the tests decode what was written with the same types.
pub mod proto;

use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    path::Path,
};

use prost::Message as _;

use super::{ExportError, write_file};
use crate::{
    model::analysis,
    model::classify::Side,
    model::recording::Recording,
    model::tasks,
    output::flamegraph::{self as fg, FoldOptions, View},
};
use proto::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};

/// The core kernel's "file", as perf names it.
pub const KERNEL_FILE: &str = "[kernel.kallsyms]";
/// The frame given to waits whose stack the kernel could not capture (as the flamegraph).
pub const NO_STACK: &str = "[stack unavailable]";

/// Whether pprof can export `view`: its samples are lock waits.
pub fn supports(view: View) -> bool {
    !matches!(view, View::SkbFree | View::Pages)
}

/// A kernel frame as the recording spells it: `sym+0xoff`, `sym+0xoff [mod]`, or a bare
/// `0xaddress` when no symbol covered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFrame<'a> {
    pub name: &'a str,
    pub offset: Option<u64>,
    pub module: Option<&'a str>,
    /// The address of an unsymbolized frame.
    pub address: Option<u64>,
}

pub fn parse_frame(frame: &str) -> KernelFrame<'_> {
    let frame = frame.trim();
    let (sym, module) = match frame.find(" [") {
        Some(i) if frame.ends_with(']') => (
            frame[..i].trim_end(),
            Some(frame[i + 2..frame.len() - 1].trim()).filter(|m| !m.is_empty()),
        ),
        _ => (frame, None),
    };
    let (name, offset) = match sym.rfind("+0x") {
        Some(i) if i > 0 => match u64::from_str_radix(&sym[i + 3..], 16) {
            Ok(off) => (&sym[..i], Some(off)),
            Err(_) => (sym, None),
        },
        _ => (sym, None),
    };
    let address = name
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    KernelFrame {
        name: if name.is_empty() { "[unknown]" } else { name },
        offset,
        module,
        address,
    }
}

/// Sums of an exported profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub contentions: u64,
    pub delay_ns: u64,
}

impl Totals {
    /// Sums the two sample values of `p` (as written by [`build`]).
    pub fn of(p: &Profile) -> Totals {
        let mut t = Totals::default();
        for s in &p.sample {
            let value = |i: usize| s.value.get(i).map_or(0, |&v| v.max(0) as u64);
            t.contentions = t.contentions.saturating_add(value(0));
            t.delay_ns = t.delay_ns.saturating_add(value(1));
        }
        t
    }
}

/// Strings, functions and locations, each added once.
struct Tables {
    strings: Vec<String>,
    string_idx: HashMap<String, i64>,
    functions: Vec<Function>,
    function_idx: HashMap<(String, Option<String>), u64>,
    locations: Vec<Location>,
    /// Location id per recording frame index (0: none yet).
    frame_location: Vec<u64>,
    no_stack_location: u64,
}

impl Tables {
    fn new(nframes: usize) -> Tables {
        Tables {
            // string_table[0] must be "".
            strings: vec![String::new()],
            string_idx: HashMap::from([(String::new(), 0)]),
            functions: Vec::new(),
            function_idx: HashMap::new(),
            locations: Vec::new(),
            frame_location: vec![0; nframes],
            no_stack_location: 0,
        }
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_idx.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_idx.insert(s.to_string(), i);
        i
    }

    fn function(&mut self, name: &str, module: Option<&str>) -> u64 {
        let key = (name.to_string(), module.map(str::to_string));
        if let Some(&id) = self.function_idx.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let file = match module {
            Some(m) => format!("[{m}]"),
            None => KERNEL_FILE.to_string(),
        };
        let (name_i, file_i) = (self.string(name), self.string(&file));
        self.functions.push(Function {
            id,
            name: name_i,
            system_name: name_i,
            filename: file_i,
            start_line: 0,
        });
        self.function_idx.insert(key, id);
        id
    }

    fn new_location(&mut self, f: KernelFrame<'_>) -> u64 {
        let function_id = self.function(f.name, f.module);
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            mapping_id: MAPPING_ID,
            address: f.address.unwrap_or(0),
            line: vec![Line {
                function_id,
                line: f.offset.map_or(0, to_i64),
                column: 0,
            }],
            is_folded: false,
        });
        id
    }

    /// The location of recording frame `idx` (`text` is its name).
    fn frame(&mut self, idx: u32, text: &str) -> u64 {
        match self.frame_location.get(idx as usize) {
            Some(&id) if id != 0 => id,
            _ => {
                let id = self.new_location(parse_frame(text));
                if let Some(slot) = self.frame_location.get_mut(idx as usize) {
                    *slot = id;
                }
                id
            }
        }
    }

    fn no_stack(&mut self) -> u64 {
        if self.no_stack_location == 0 {
            self.no_stack_location = self.new_location(parse_frame(NO_STACK));
        }
        self.no_stack_location
    }
}

const MAPPING_ID: u64 = 1;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What one sample gathers: a stack, on a CPU, of a lock class (and proven zone).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SampleKey {
    stack: Option<u32>,
    cpu: u32,
    class: String,
    side: Option<&'static str>,
    zone: Option<String>,
    /// The waiting thread (recorded with `--tasks`).
    tid: Option<u32>,
}

/// The lock waits of `view` (a lock view), on `cpus` when given, as a pprof profile.
/// [`ExportError::NoData`] when no wait is left.
pub fn build(
    rec: &Recording,
    view: View,
    cpus: Option<&[u32]>,
    source: &str,
) -> Result<Profile, ExportError> {
    let (p, empty) = build_any(rec, view, cpus, source)?;
    match empty {
        Some(why) => Err(ExportError::NoData(why)),
        None => Ok(p),
    }
}

/// As [`build`], but a recording without a wait in the view is a profile without samples
/// whose comment says why: what a quiet interval of a live session is (`serve`'s
/// `/profile`), not an error.
pub fn build_allow_empty(
    rec: &Recording,
    view: View,
    cpus: Option<&[u32]>,
    source: &str,
) -> Result<Profile, ExportError> {
    build_any(rec, view, cpus, source).map(|(p, _)| p)
}

/// The profile, and why it has no samples when it has none.
fn build_any(
    rec: &Recording,
    view: View,
    cpus: Option<&[u32]>,
    source: &str,
) -> Result<(Profile, Option<String>), ExportError> {
    if !supports(view) {
        return Err(ExportError::Unsupported(format!(
            "pprof exports lock waits; the {} view is not one (use speedscope, folded or csv)",
            view.name()
        )));
    }
    let mut sums: BTreeMap<SampleKey, (u64, u64)> = BTreeMap::new();
    for cw in analysis::classify_waits(rec) {
        if !view.accepts(&cw.class) || cpus.is_some_and(|c| !c.contains(&cw.wait.cpu)) {
            continue;
        }
        let side = match cw.class.side() {
            Some(Side::Alloc) => Some("alloc"),
            Some(Side::Free) => Some("free"),
            None if cw.class.is_zone() => Some("other"),
            None => None,
        };
        let key = SampleKey {
            stack: cw.wait.stack,
            cpu: cw.wait.cpu,
            class: cw.class.label(),
            side,
            zone: cw.zone,
            tid: cw.wait.tid,
        };
        let e = sums.entry(key).or_default();
        e.0 = e.0.saturating_add(cw.wait.count);
        e.1 = e.1.saturating_add(cw.wait.total_ns);
    }
    sums.retain(|_, (n, ns)| *n > 0 || *ns > 0);
    let empty = sums.is_empty().then(|| {
        let opts = FoldOptions {
            per_cpu: false,
            cpus: cpus.map(<[u32]>::to_vec),
            roots: None,
        };
        fg::no_data_reason(rec, view, &opts)
    });

    let mut t = Tables::new(rec.frames.len());
    let vt = |t: &mut Tables, ty: &str, unit: &str| ValueType {
        r#type: t.string(ty),
        unit: t.string(unit),
    };
    let sample_type = vec![
        vt(&mut t, "contentions", "count"),
        vt(&mut t, "delay", "nanoseconds"),
    ];
    let period_type = Some(vt(&mut t, "contentions", "count"));
    let default_sample_type = t.string("delay");
    let keys = [
        t.string("cpu"),
        t.string("lock_class"),
        t.string("side"),
        t.string("zone"),
        t.string("thread"),
        t.string("cgroup"),
    ];
    let names = tasks::Names::of(rec);
    let mut samples = Vec::with_capacity(sums.len());
    for (k, (count, ns)) in sums {
        let location_id = match k.stack.and_then(|s| rec.stacks.get(s as usize)) {
            Some(frames) if !frames.is_empty() => frames
                .iter()
                .map(|&f| {
                    let text = rec.frames.get(f as usize).map_or("[bad frame]", |s| s);
                    t.frame(f, text)
                })
                .collect(),
            _ => vec![t.no_stack()],
        };
        let mut label = vec![
            str_label(&mut t, keys[0], &k.cpu.to_string()),
            str_label(&mut t, keys[1], &k.class),
        ];
        if let Some(side) = k.side {
            label.push(str_label(&mut t, keys[2], side));
        }
        if let Some(zone) = &k.zone {
            label.push(str_label(&mut t, keys[3], zone));
        }
        if let Some(tid) = k.tid {
            let task = names.label(tid);
            label.push(str_label(&mut t, keys[4], &task.frame()));
            label.push(str_label(&mut t, keys[5], &task.cgroup_name()));
        }
        samples.push(Sample {
            location_id,
            value: vec![to_i64(count), to_i64(ns)],
            label,
        });
    }
    let mapping = vec![Mapping {
        id: MAPPING_ID,
        filename: t.string(KERNEL_FILE),
        has_functions: true,
        ..Default::default()
    }];
    let meta = fg::Meta::of(rec, source);
    let mut comment = vec![
        t.string(&format!(
            "zoneprof {} export of {source}",
            env!("CARGO_PKG_VERSION")
        )),
        t.string(&format!("{}: {}", view.describe(), meta.describe())),
        t.string("Line numbers are offsets into the function (sym+0xoff)"),
    ];
    if let Some(why) = &empty {
        comment.push(t.string(&format!("No samples: {why}")));
    }
    let p = Profile {
        sample_type,
        sample: samples,
        mapping,
        location: t.locations,
        function: t.functions,
        string_table: t.strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: to_i64(rec.start_unix_ms.saturating_mul(1_000_000)),
        duration_nanos: to_i64(rec.duration_ns),
        period_type,
        period: 1,
        comment,
        default_sample_type,
    };
    Ok((p, empty))
}

fn str_label(t: &mut Tables, key: i64, value: &str) -> Label {
    Label {
        key,
        str: t.string(value),
        num: 0,
        num_unit: 0,
    }
}

/// The profile serialized and gzip-compressed, as pprof files are stored.
pub fn encode_gz(p: &Profile) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&p.encode_to_vec())?;
    gz.finish()
}

/// Builds and writes the profile of `view` to `path` (atomically); returns its totals.
pub fn write(
    rec: &Recording,
    view: View,
    cpus: Option<&[u32]>,
    source: &str,
    path: &Path,
) -> Result<Totals, ExportError> {
    let p = build(rec, view, cpus, source)?;
    let bytes = encode_gz(&p).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    write_file(path, &bytes)?;
    Ok(Totals::of(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::sample;
    use crate::output::report;
    use std::io::Read as _;

    fn s(p: &Profile, i: i64) -> &str {
        &p.string_table[i as usize]
    }

    fn labels(p: &Profile, smp: &Sample) -> BTreeMap<String, String> {
        smp.label
            .iter()
            .map(|l| (s(p, l.key).to_string(), s(p, l.str).to_string()))
            .collect()
    }

    /// Function names of a sample, leaf first.
    fn names(p: &Profile, smp: &Sample) -> Vec<String> {
        smp.location_id
            .iter()
            .map(|id| {
                let loc = p.location.iter().find(|l| l.id == *id).expect("location");
                let f = p
                    .function
                    .iter()
                    .find(|f| f.id == loc.line[0].function_id)
                    .expect("function");
                s(p, f.name).to_string()
            })
            .collect()
    }

    #[test]
    fn frames_parse_into_symbol_offset_module_and_address() {
        assert_eq!(
            parse_frame("free_pcppages_bulk+0x39"),
            KernelFrame {
                name: "free_pcppages_bulk",
                offset: Some(0x39),
                module: None,
                address: None
            }
        );
        let f = parse_frame("tun_do_read+0x23 [tun]");
        assert_eq!(
            (f.name, f.offset, f.module),
            ("tun_do_read", Some(0x23), Some("tun"))
        );
        let f = parse_frame("0xffffffff81234567");
        assert_eq!(
            (f.name, f.address),
            ("0xffffffff81234567", Some(0xffff_ffff_8123_4567))
        );
        assert_eq!(parse_frame("foo.isra.0+0x1").name, "foo.isra.0");
        assert_eq!(parse_frame(NO_STACK).name, NO_STACK);
        assert_eq!(parse_frame("  ").name, "[unknown]");
        // A "+0x" that is not an offset stays part of the name.
        assert_eq!(parse_frame("odd+0xzz").offset, None);
    }

    #[test]
    fn delay_and_contentions_match_the_report_per_view() {
        let rec = sample();
        let r = report::build(&rec, 10);
        let z = r.totals.zone_lock_wait_ns;
        for (view, ns) in [
            (View::ZoneWait, z.total()),
            (View::ZoneAlloc, z.alloc),
            (View::ZoneFree, z.free),
            (View::Locks, z.total() + r.totals.other_lock_wait_ns),
        ] {
            let p = build(&rec, view, None, "t").expect("profile");
            let t = Totals::of(&p);
            assert_eq!(t.delay_ns, ns, "{view:?}");
            assert!(t.contentions > 0, "{view:?}");
        }
        let all = Totals::of(&build(&rec, View::Locks, None, "t").expect("profile"));
        assert_eq!(all.contentions, r.totals.contentions);
    }

    #[test]
    fn samples_carry_labels_and_leaf_first_functions() {
        let rec = sample();
        let p = build(&rec, View::ZoneWait, None, "t").expect("profile");
        assert_eq!(s(&p, p.sample_type[0].r#type), "contentions");
        assert_eq!(s(&p, p.sample_type[0].unit), "count");
        assert_eq!(s(&p, p.sample_type[1].r#type), "delay");
        assert_eq!(s(&p, p.sample_type[1].unit), "nanoseconds");
        assert_eq!(s(&p, p.default_sample_type), "delay");
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.time_nanos, 1_764_140_000_000_000_000);
        assert_eq!(p.duration_nanos, 2_000_000_000);
        let alloc = p
            .sample
            .iter()
            .find(|smp| labels(&p, smp).get("side").map(String::as_str) == Some("alloc"))
            .expect("an alloc sample");
        let l = labels(&p, alloc);
        assert_eq!(l["cpu"], "0");
        assert_eq!(l["lock_class"], "zone->lock alloc");
        assert_eq!(l["zone"], "node 0 / zone Normal");
        assert_eq!(
            names(&p, alloc),
            [
                "__pv_queued_spin_lock_slowpath",
                "_raw_spin_lock_irqsave",
                "__rmqueue_pcplist",
                "get_page_from_freelist"
            ]
        );
        assert_eq!(alloc.value, vec![10, 6_000_000]);
        // The offset is the line: __rmqueue_pcplist+0x233.
        let loc = p
            .location
            .iter()
            .find(|l| l.id == alloc.location_id[2])
            .expect("location");
        assert_eq!(loc.line[0].line, 0x233);
        assert_eq!(loc.mapping_id, 1);
        // The stackless wait on the proven zone address: zone lock, side other.
        let other = p
            .sample
            .iter()
            .find(|smp| labels(&p, smp).get("side").map(String::as_str) == Some("other"))
            .expect("the stackless sample");
        assert_eq!(names(&p, other), [NO_STACK]);
        // The rq lock is not zone->lock: not in this view.
        assert!(
            p.sample
                .iter()
                .all(|smp| labels(&p, smp)["lock_class"] != "rq lock")
        );
        // Shared frames make one location and one function each.
        let slowpath = p
            .function
            .iter()
            .filter(|f| s(&p, f.name) == "__pv_queued_spin_lock_slowpath")
            .count();
        assert_eq!(slowpath, 1);
    }

    /// A recording made with `--tasks`: every sample names its thread and cgroup, and the
    /// totals are the same as without; one made without has neither label.
    #[test]
    fn samples_of_a_tasks_recording_carry_thread_and_cgroup() {
        let p = build(&sample(), View::Locks, None, "t").expect("profile");
        assert!(p.sample.iter().all(|smp| {
            let l = labels(&p, smp);
            !l.contains_key("thread") && !l.contains_key("cgroup")
        }));
        let rec = crate::model::tasks::tests::sample_with_tasks();
        let with = build(&rec, View::Locks, None, "t").expect("profile");
        assert_eq!(Totals::of(&with), Totals::of(&p));
        assert!(with.sample.iter().all(|smp| {
            let l = labels(&with, smp);
            l.contains_key("thread") && l.contains_key("cgroup")
        }));
        let alloc = with
            .sample
            .iter()
            .find(|smp| labels(&with, smp).get("side").map(String::as_str) == Some("alloc"))
            .expect("an alloc sample");
        let l = labels(&with, alloc);
        assert_eq!(
            (l["thread"].as_str(), l["cgroup"].as_str()),
            ("tap-send-0-1001", "/machine.slice/vm1.scope")
        );
        // The thread the name map missed, and the one without a cgroup.
        let threads: Vec<String> = with
            .sample
            .iter()
            .map(|smp| labels(&with, smp)["cgroup"].clone())
            .collect();
        assert!(
            threads.iter().any(|c| c == "[unnamed thread]"),
            "{threads:?}"
        );
        assert!(threads.iter().any(|c| c == "[no cgroup]"), "{threads:?}");
    }

    #[test]
    fn non_zone_locks_have_no_side_label() {
        let p = build(&sample(), View::Locks, None, "t").expect("profile");
        let rq = p
            .sample
            .iter()
            .find(|smp| labels(&p, smp)["lock_class"] == "rq lock")
            .expect("rq lock sample");
        assert!(!labels(&p, rq).contains_key("side"));
    }

    #[test]
    fn cpu_filter_and_empty_views() {
        let rec = sample();
        let p = build(&rec, View::ZoneWait, Some(&[1]), "t").expect("profile");
        assert_eq!(Totals::of(&p).delay_ns, 12_000_000);
        let err = build(&rec, View::ZoneAlloc, Some(&[1]), "t").unwrap_err();
        assert!(matches!(err, ExportError::NoData(_)), "{err}");
        assert!(err.to_string().contains("on CPUs 1"), "{err}");
        let err = build(&rec, View::Pages, None, "t").unwrap_err();
        assert!(matches!(err, ExportError::Unsupported(_)), "{err}");
        // Allowed empty: no samples, the same reason in a comment; still a valid profile.
        let p = build_allow_empty(&rec, View::ZoneAlloc, Some(&[1]), "t").expect("empty");
        assert!(p.sample.is_empty());
        assert_eq!(s(&p, p.default_sample_type), "delay");
        let why = p.comment.last().map(|&i| s(&p, i)).expect("comment");
        assert!(
            why.starts_with("No samples: ") && why.contains("on CPUs 1"),
            "{why}"
        );
        let full = build_allow_empty(&rec, View::ZoneWait, None, "t").expect("profile");
        assert_eq!(
            full,
            build(&rec, View::ZoneWait, None, "t").expect("profile")
        );
        assert!(build_allow_empty(&rec, View::Pages, None, "t").is_err());
    }

    #[test]
    fn written_file_is_gzip_and_decodes_to_the_same_profile() {
        let rec = sample();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.pb.gz");
        let totals = write(&rec, View::ZoneWait, None, "t", &path).expect("write");
        let gz = std::fs::read(&path).expect("read");
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut raw)
            .expect("gunzip");
        let back = Profile::decode(raw.as_slice()).expect("decodes");
        assert_eq!(
            back,
            build(&rec, View::ZoneWait, None, "t").expect("profile")
        );
        assert_eq!(Totals::of(&back), totals);
        // Ids are 1.. and unique; every reference resolves.
        for (i, l) in back.location.iter().enumerate() {
            assert_eq!(l.id, i as u64 + 1);
            assert!(back.function.iter().any(|f| f.id == l.line[0].function_id));
        }
        for smp in &back.sample {
            assert_eq!(smp.value.len(), back.sample_type.len());
            assert!(
                smp.location_id
                    .iter()
                    .all(|id| *id as usize <= back.location.len())
            );
        }
    }

    /// The wire format itself, byte by byte, for one small message: what pprof's own
    /// decoder reads (field 1 varint, field 2 varint) does not depend on prost's output alone.
    #[test]
    fn value_type_encodes_as_protobuf_varints() {
        let v = ValueType {
            r#type: 1,
            unit: 300,
        };
        assert_eq!(v.encode_to_vec(), vec![0x08, 0x01, 0x10, 0xac, 0x02]);
        // Packed repeated uint64 (proto3 default) for location ids.
        let smp = Sample {
            location_id: vec![1, 2],
            value: vec![],
            label: vec![],
        };
        assert_eq!(smp.encode_to_vec(), vec![0x0a, 0x02, 0x01, 0x02]);
    }
}
