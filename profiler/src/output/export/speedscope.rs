//! speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json): one
//! "sampled" profile per flamegraph view, built from the same folded stacks as
//! `zoneprof flamegraph`, so each profile is that view's flamegraph. Frames are shared
//! between profiles; each profile's weights are in its view's unit (nanoseconds waited, or
//! "none" for SKB frees and pages). Views with no data are left out, and said so.
use std::{collections::HashMap, io::Write as _, path::Path};

use serde::Serialize;

use super::ExportError;
use crate::{
    model::recording::Recording,
    output::flamegraph::{self as fg, FoldOptions, View},
};

pub const SCHEMA_URL: &str = "https://www.speedscope.app/file-format-schema.json";

/// Every view, in the order the file lists them (the first is shown on opening).
pub const ALL_VIEWS: &[View] = &[
    View::ZoneWait,
    View::ZoneAlloc,
    View::ZoneFree,
    View::Locks,
    View::SkbFree,
    View::Pages,
];

#[derive(Debug, Serialize)]
pub struct File {
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub shared: Shared,
    pub profiles: Vec<SampledProfile>,
    pub name: String,
    #[serde(rename = "activeProfileIndex")]
    pub active_profile_index: usize,
    pub exporter: String,
}

#[derive(Debug, Serialize)]
pub struct Shared {
    pub frames: Vec<Frame>,
}

#[derive(Debug, Serialize)]
pub struct Frame {
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct SampledProfile {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub unit: &'static str,
    #[serde(rename = "startValue")]
    pub start_value: u64,
    #[serde(rename = "endValue")]
    pub end_value: u64,
    /// Frame indices, root first.
    pub samples: Vec<Vec<usize>>,
    pub weights: Vec<u64>,
}

/// A speedscope file, and the views left out with why.
pub struct Export {
    pub file: File,
    pub skipped: Vec<(View, String)>,
}

fn unit(view: View) -> &'static str {
    match view {
        View::SkbFree | View::Pages => "none",
        _ => "nanoseconds",
    }
}

/// One profile per view of `views` that has data; [`ExportError::NoData`] when none has.
pub fn build(
    rec: &Recording,
    views: &[View],
    opts: &FoldOptions,
    source: &str,
) -> Result<Export, ExportError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut frame_idx: HashMap<String, usize> = HashMap::new();
    let mut profiles = Vec::new();
    let mut skipped = Vec::new();
    for &view in views {
        let flame = match fg::build(rec, view, opts, source) {
            Ok(f) => f,
            Err(fg::FlameError::NoData(why)) => {
                skipped.push((view, why));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut samples = Vec::with_capacity(flame.folded.stacks.len());
        let mut weights = Vec::with_capacity(flame.folded.stacks.len());
        for (stack, &w) in flame.folded.stacks.iter().filter(|(_, w)| **w > 0) {
            // Folded frames cannot hold ';' (display_frame replaces it), so split is exact.
            let ids = stack
                .split(';')
                .map(|name| match frame_idx.get(name) {
                    Some(&i) => i,
                    None => {
                        let i = frames.len();
                        frames.push(Frame {
                            name: name.to_string(),
                        });
                        frame_idx.insert(name.to_string(), i);
                        i
                    }
                })
                .collect();
            samples.push(ids);
            weights.push(w);
        }
        profiles.push(SampledProfile {
            kind: "sampled",
            name: flame.title,
            unit: unit(view),
            start_value: 0,
            end_value: flame.folded.total(),
            samples,
            weights,
        });
    }
    if profiles.is_empty() {
        let why: Vec<String> = skipped.into_iter().map(|(_, w)| w).collect();
        return Err(ExportError::NoData(why.join("; ")));
    }
    let meta = fg::Meta::of(rec, source);
    Ok(Export {
        file: File {
            schema: SCHEMA_URL,
            shared: Shared { frames },
            profiles,
            name: format!("zoneprof: {}", meta.describe()),
            active_profile_index: 0,
            exporter: format!("zoneprof {}", env!("CARGO_PKG_VERSION")),
        },
        skipped,
    })
}

/// Writes the file (compact JSON) to `path` atomically.
pub fn write(file: &File, path: &Path) -> Result<(), ExportError> {
    crate::output::atomic::write_with(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer(&mut w, file).map_err(std::io::Error::other)?;
        w.write_all(b"\n")?;
        w.flush()
    })
    .map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::{SkbSite, sample};

    #[test]
    fn one_profile_per_view_with_data_and_reasons_for_the_rest() {
        let rec = sample();
        let e = build(&rec, ALL_VIEWS, &FoldOptions::default(), "t").expect("export");
        let names: Vec<&str> = e.file.profiles.iter().map(|p| p.name.as_str()).collect();
        // zone-wait, zone-alloc, zone-free, locks and pages have data; skb-free has none.
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(names[0].starts_with("zone->lock wait:"), "{names:?}");
        assert_eq!(e.skipped.len(), 1);
        assert_eq!(e.skipped[0].0, View::SkbFree);
        assert!(e.skipped[0].1.contains("no SKB frees"));
        let units: Vec<&str> = e.file.profiles.iter().map(|p| p.unit).collect();
        assert_eq!(
            units,
            [
                "nanoseconds",
                "nanoseconds",
                "nanoseconds",
                "nanoseconds",
                "none"
            ]
        );
    }

    #[test]
    fn samples_rebuild_the_folded_stacks() {
        let mut rec = sample();
        rec.skb_sites = vec![SkbSite {
            function: "consume_skb".into(),
            caller: "tun_do_read".into(),
            cpu: 1,
            count: 10,
            remote: 9,
            cross_node: 0,
            tid: None,
        }];
        let opts = FoldOptions {
            per_cpu: true,
            cpus: None,
            roots: None,
        };
        let e = build(&rec, ALL_VIEWS, &opts, "t").expect("export");
        assert!(e.skipped.is_empty());
        for (p, &view) in e.file.profiles.iter().zip(ALL_VIEWS) {
            let folded = fg::build(&rec, view, &opts, "t").expect("view").folded;
            let mut rebuilt = fg::Folded::default();
            for (s, &w) in p.samples.iter().zip(&p.weights) {
                let names: Vec<&str> = s
                    .iter()
                    .map(|&i| e.file.shared.frames[i].name.as_str())
                    .collect();
                *rebuilt.stacks.entry(names.join(";")).or_default() += w;
            }
            assert_eq!(rebuilt, folded, "{view:?}");
            assert_eq!(p.end_value, folded.total());
            assert_eq!(p.start_value, 0);
        }
        // Frames are shared: each name once.
        let mut names: Vec<&str> = e
            .file
            .shared
            .frames
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn no_view_with_data_is_an_error() {
        let e = build(&sample(), &[View::SkbFree], &FoldOptions::default(), "t");
        assert!(matches!(e, Err(ExportError::NoData(_))));
    }

    #[test]
    fn json_uses_speedscope_key_names() {
        let e = build(&sample(), &[View::ZoneWait], &FoldOptions::default(), "t").expect("x");
        let v = serde_json::to_value(&e.file).expect("json");
        assert_eq!(v["$schema"], SCHEMA_URL);
        assert_eq!(v["activeProfileIndex"], 0);
        let p = &v["profiles"][0];
        assert_eq!(p["type"], "sampled");
        assert!(p["startValue"].is_u64() && p["endValue"].is_u64());
        assert_eq!(p["endValue"], 18_500_000);
    }
}
