//! Sizes of the in-kernel aggregation maps: the defaults of `profiler_common`, and the
//! `--map-entries MAP=N,...` overrides of `record`, `serve` and `top`, applied when the
//! eBPF object is loaded. Raised on large hosts (more stacks × CPUs than the defaults
//! hold); shrunk to force the map-full losses in tests. A map that fills loses entries,
//! never silently: each has a loss counter ([`MapSpec::losses`]).
use serde::{Deserialize, Serialize};
use thiserror::Error;

use profiler_common as pc;

/// One resizable map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSpec {
    /// The name users give (`lock-stats`).
    pub name: &'static str,
    /// The map in the eBPF object (`LOCK_STATS`).
    pub map: &'static str,
    pub default: u32,
    /// What one entry is, for `--help` and the docs.
    pub entry: &'static str,
    /// The `Counters` fields (loss keys) that count what did not fit.
    pub losses: &'static [&'static str],
}

/// Every map `--map-entries` can size, in the order the docs list them.
pub const MAPS: &[MapSpec] = &[
    MapSpec {
        name: "lock-stats",
        map: "LOCK_STATS",
        default: pc::LOCK_STATS_ENTRIES,
        entry: "(lock, stack, CPU) of lock waits",
        losses: &["lock_map_full", "lost_wait_ns"],
    },
    MapSpec {
        name: "stacks",
        map: "STACKS",
        default: pc::STACK_ENTRIES,
        entry: "kernel stack of a contended wait",
        losses: &["stack_collisions"],
    },
    MapSpec {
        name: "hist",
        map: "WAIT_HIST",
        default: pc::HIST_ENTRIES,
        entry: "(stack, log2 bucket) of the wait histograms",
        losses: &["hist_map_full"],
    },
    MapSpec {
        name: "task-wait",
        map: "TASK_WAIT",
        default: pc::TASK_WAIT_ENTRIES,
        entry: "thread waiting on a sleeping lock now",
        losses: &["task_map_full"],
    },
    MapSpec {
        name: "zone-cache",
        map: "ZONE_CACHE",
        default: pc::ZONE_CACHE_ENTRIES,
        entry: "contended lock address checked for being a zone lock",
        losses: &["zone_cache_full"],
    },
    MapSpec {
        name: "skb-matrix",
        map: "SKB_MATRIX",
        default: pc::SKB_MATRIX_ENTRIES,
        entry: "(alloc CPU, free CPU) of SKB frees",
        losses: &["skb_map_full"],
    },
    MapSpec {
        name: "skb-sites",
        map: "SKB_SITES",
        default: pc::SKB_SITE_ENTRIES,
        entry: "(free function, call site, CPU) of SKB frees",
        losses: &["skb_map_full"],
    },
    MapSpec {
        name: "tasks",
        map: "TASKS",
        default: pc::TASK_INFO_ENTRIES,
        entry: "thread seen waiting or freeing SKBs: its process, cgroup and name (--tasks)",
        losses: &["task_info_full"],
    },
    MapSpec {
        name: "page-track",
        map: "PAGE_TRACK",
        default: pc::PAGE_TRACK_ENTRIES,
        entry: "sampled page between allocation and free (--page-flows)",
        losses: &["page_track_full"],
    },
    MapSpec {
        name: "page-matrix",
        map: "PAGE_MATRIX",
        default: pc::PAGE_MATRIX_ENTRIES,
        entry: "(alloc CPU, free CPU) of sampled pages (--page-flows)",
        losses: &["page_matrix_full"],
    },
];

/// Entries a map may be given. The kernel preallocates them when the map is created
/// (a stack entry holds 127 frames: 1 KiB), so the top stays within what a host can
/// afford for one map: 2^24 stacks are 16 GiB.
pub const MIN_ENTRIES: u32 = 1;
pub const MAX_ENTRIES: u32 = 1 << 24;

/// The maps sized only when `--page-flows` is on: otherwise they get one entry, as no
/// program writes them (28 MB at 640 CPUs saved).
const PAGE_FLOW_MAPS: [&str; 2] = ["page-track", "page-matrix"];
/// The map sized only with `--tasks`.
const TASK_MAPS: [&str; 1] = ["tasks"];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MapEntriesError {
    #[error("expected MAP=N, e.g. lock-stats=65536 (maps: {names})", names = names())]
    Syntax,
    #[error("unknown map {0:?} (maps: {names})", names = names())]
    UnknownMap(String),
    #[error("{0:?} is not a number of entries")]
    NotANumber(String),
    #[error("{map} takes {MIN_ENTRIES} to {MAX_ENTRIES} entries, not {value}")]
    OutOfRange { map: &'static str, value: String },
    #[error("map {0} given twice")]
    Duplicate(&'static str),
}

fn names() -> String {
    MAPS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// The map a user's name stands for.
pub fn spec(name: &str) -> Option<&'static MapSpec> {
    MAPS.iter().find(|m| m.name == name)
}

/// One `MAP=N` of `--map-entries`.
pub fn parse_one(s: &str) -> Result<(&'static str, u32), MapEntriesError> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(MapEntriesError::Syntax);
    };
    let (name, value) = (name.trim(), value.trim());
    let spec = spec(name).ok_or_else(|| MapEntriesError::UnknownMap(name.to_string()))?;
    // Digits only: `u32::from_str` would take a leading `+`.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MapEntriesError::NotANumber(value.into()));
    }
    match value.parse::<u32>() {
        Ok(n) if (MIN_ENTRIES..=MAX_ENTRIES).contains(&n) => Ok((spec.name, n)),
        _ => Err(MapEntriesError::OutOfRange {
            map: spec.name,
            value: value.into(),
        }),
    }
}

/// The sizes asked for, by user name; every other map keeps its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapEntries {
    overrides: Vec<(&'static str, u32)>,
}

impl MapEntries {
    /// From parsed `MAP=N` pairs; a map named twice is an error (which size was meant?).
    pub fn new(pairs: &[(&'static str, u32)]) -> Result<MapEntries, MapEntriesError> {
        let mut overrides: Vec<(&'static str, u32)> = Vec::new();
        for &(name, n) in pairs {
            if overrides.iter().any(|(m, _)| *m == name) {
                return Err(MapEntriesError::Duplicate(name));
            }
            overrides.push((name, n));
        }
        Ok(MapEntries { overrides })
    }

    /// `MAP=N[,MAP=N...]`.
    pub fn parse(s: &str) -> Result<MapEntries, MapEntriesError> {
        let pairs = s.split(',').map(parse_one).collect::<Result<Vec<_>, _>>()?;
        MapEntries::new(&pairs)
    }

    /// What each map is loaded with: the override, else the default; the page-flow maps
    /// get one entry when `page_flows` is off, the task map when `tasks` is. In [`MAPS`]
    /// order.
    pub fn loaded(
        &self,
        page_flows: bool,
        tasks: bool,
    ) -> impl Iterator<Item = (&'static MapSpec, u32)> {
        MAPS.iter().map(move |m| {
            let asked = self
                .overrides
                .iter()
                .find(|(n, _)| *n == m.name)
                .map_or(m.default, |&(_, v)| v);
            if (!page_flows && PAGE_FLOW_MAPS.contains(&m.name))
                || (!tasks && TASK_MAPS.contains(&m.name))
            {
                (m, 1)
            } else {
                (m, asked)
            }
        })
    }

    /// [`Self::loaded`] as the recording keeps it.
    pub fn effective(&self, page_flows: bool, tasks: bool) -> Vec<MapSize> {
        self.loaded(page_flows, tasks)
            .map(|(m, max_entries)| MapSize {
                map: m.name.to_string(),
                max_entries,
            })
            .collect()
    }
}

/// A map's size as it was loaded, in the recording (`settings.map_entries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSize {
    /// The user's name (`lock-stats`), as `--map-entries` takes it.
    pub map: String,
    pub max_entries: u32,
}

/// The maps (and sizes) whose overflow `loss` (a `Counters` key) counts.
pub fn maps_of_loss<'a>(loss: &str, sizes: &'a [MapSize]) -> Vec<&'a MapSize> {
    sizes
        .iter()
        .filter(|s| spec(&s.map).is_some_and(|m| m.losses.contains(&loss)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_keeps_defaults() {
        let e = MapEntries::parse("lock-stats=4,stacks=8, hist = 16").unwrap();
        let eff = e.effective(true, true);
        let get = |n: &str| eff.iter().find(|s| s.map == n).unwrap().max_entries;
        assert_eq!(get("lock-stats"), 4);
        assert_eq!(get("stacks"), 8);
        assert_eq!(get("hist"), 16);
        assert_eq!(get("skb-matrix"), pc::SKB_MATRIX_ENTRIES);
        assert_eq!(get("page-track"), pc::PAGE_TRACK_ENTRIES);
        assert_eq!(eff.len(), MAPS.len());
        assert_eq!(
            MapEntries::parse(&format!("stacks={MAX_ENTRIES}"))
                .map(|e| e.effective(true, true)[1].max_entries),
            Ok(MAX_ENTRIES)
        );
    }

    #[test]
    fn page_flow_maps_take_one_entry_without_page_flows() {
        let e = MapEntries::parse("page-track=1000").unwrap();
        let off = e.effective(false, false);
        let on = e.effective(true, true);
        let get = |v: &[MapSize], n: &str| v.iter().find(|s| s.map == n).unwrap().max_entries;
        assert_eq!((get(&off, "page-track"), get(&off, "page-matrix")), (1, 1));
        assert_eq!(get(&on, "page-track"), 1000);
        assert_eq!(get(&on, "page-matrix"), pc::PAGE_MATRIX_ENTRIES);
    }

    #[test]
    fn the_task_map_takes_one_entry_without_tasks() {
        let e = MapEntries::parse("tasks=100").unwrap();
        let get = |v: &[MapSize]| v.iter().find(|s| s.map == "tasks").unwrap().max_entries;
        assert_eq!(get(&e.effective(true, false)), 1);
        assert_eq!(get(&e.effective(false, true)), 100);
        assert_eq!(
            get(&MapEntries::default().effective(false, true)),
            pc::TASK_INFO_ENTRIES
        );
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let err = |s: &str| MapEntries::parse(s).unwrap_err().to_string();
        let syntax = format!("expected MAP=N, e.g. lock-stats=65536 (maps: {})", names());
        assert_eq!(err("lock-stats"), syntax);
        assert_eq!(err(""), syntax);
        assert!(err("locks=4").starts_with("unknown map \"locks\" (maps: lock-stats, stacks,"));
        assert_eq!(err("stacks=0"), "stacks takes 1 to 16777216 entries, not 0");
        assert_eq!(
            err("stacks=16777217"),
            "stacks takes 1 to 16777216 entries, not 16777217"
        );
        assert_eq!(
            err("stacks=99999999999999999999"),
            "stacks takes 1 to 16777216 entries, not 99999999999999999999"
        );
        for v in ["-1", "+4", "4k", "", "0x10", "1.5"] {
            assert_eq!(
                err(&format!("hist={v}")),
                format!("{v:?} is not a number of entries")
            );
        }
        assert_eq!(err("hist=4,hist=8"), "map hist given twice");
        for e in ["x", "locks=4", "stacks=0", "hist=a", "hist=1,hist=2"] {
            assert!(!err(e).contains('\n'), "{e}: one line");
        }
    }

    #[test]
    fn every_map_has_a_loss_counter_that_the_views_show() {
        let losses: Vec<&str> = crate::model::recording::LOSSES
            .iter()
            .map(|l| l.key)
            .collect();
        for m in MAPS {
            assert!(!m.losses.is_empty(), "{}: its overflow is counted", m.name);
            for l in m.losses {
                assert!(losses.contains(l), "{}: {l} is a listed loss", m.name);
            }
        }
    }

    /// Every map named here is a map of the eBPF object: aya ignores a size given for a
    /// name it does not know, so a typo would size nothing, silently.
    #[test]
    fn every_map_is_in_the_ebpf_object() {
        let obj = crate::kernel::attach::EBPF_OBJ;
        for m in MAPS {
            let sym = [m.map.as_bytes(), b"\0"].concat();
            assert!(
                obj.windows(sym.len()).any(|w| w == sym.as_slice()),
                "map {} ({}) is not in the eBPF object",
                m.map,
                m.name
            );
        }
    }

    #[test]
    fn losses_name_their_maps() {
        let sizes = MapEntries::parse("skb-sites=2")
            .unwrap()
            .effective(false, false);
        let skb: Vec<(&str, u32)> = maps_of_loss("skb_map_full", &sizes)
            .into_iter()
            .map(|s| (s.map.as_str(), s.max_entries))
            .collect();
        assert_eq!(
            skb,
            [("skb-matrix", pc::SKB_MATRIX_ENTRIES), ("skb-sites", 2)]
        );
        assert_eq!(maps_of_loss("lost_wait_ns", &sizes).len(), 1);
        assert_eq!(maps_of_loss("end_without_begin", &sizes).len(), 0);
        assert_eq!(maps_of_loss("lock_map_full", &[]).len(), 0);
    }
}
