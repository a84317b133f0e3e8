//! Every view of a recording that parsed: a recording file from someone else may hold any
//! values the format allows, and the report, JSON and flamegraph folding must cope.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zoneprof::model::{recording::Recording, tasks::By};
use zoneprof::output::{flamegraph, report};

const VIEWS: [flamegraph::View; 6] = [
    flamegraph::View::ZoneWait,
    flamegraph::View::ZoneAlloc,
    flamegraph::View::ZoneFree,
    flamegraph::View::Locks,
    flamegraph::View::SkbFree,
    flamegraph::View::Pages,
];

fuzz_target!(|data: &[u8]| {
    let Ok(rec) = Recording::from_bytes(data, Path::new("fuzz.zprof")) else {
        return;
    };
    let r = report::build(&rec, 10);
    let _ = report::to_json(&r);
    for by in [By::Cpu, By::Task, By::Cgroup] {
        let _ = report::to_text_by(&r, 10, by);
    }
    // Thread roots whether or not the recording says it has thread keys: the file may lie.
    let roots = [
        None,
        Some(flamegraph::TaskRoots::per_task(&rec)),
        Some(flamegraph::TaskRoots::per_cgroup(&rec)),
    ];
    for view in VIEWS {
        for per_cpu in [false, true] {
            for roots in &roots {
                let opts = flamegraph::FoldOptions {
                    per_cpu,
                    cpus: None,
                    roots: roots.clone(),
                };
                if let Ok(flame) = flamegraph::build(&rec, view, &opts, "fuzz.zprof") {
                    let _ = flame.folded.to_text();
                }
            }
        }
    }
});
