//! zoneprof: find out who spins on the page allocator's `zone->lock`, and why.
//!
//! One concern per module:
//! - `tracefs`, `btf`: what the running kernel offers (event formats, struct layouts)
//! - `probes`: the probe catalog; `attach`: loading and attaching with per-probe fallback
//! - `aggregate`: reading the in-kernel aggregates back; `analysis`: classified views of a recording
//! - `record`: a recording session (load, attach, poll, collect)
//! - `symbolize`: kernel addresses to `symbol+0xoff` from /proc/kallsyms
//! - `classify`: which lock a contention stack waits on, and on which side (alloc/free)
//! - `recording`: the on-disk recording format
//! - `observer`: what zoneprof's own programs cost under zone->lock
//! - `report`: text and JSON reports
//! - `flamegraph`: folded stacks and SVG flamegraphs of a recording
//! - `compare`: two recordings side by side, verdict, differential flamegraphs
//! - `html`: self-contained HTML for report and compare
//! - `host`: host facts (topology, sysctls, PCP settings)
//! - `workload`: built-in reproducers
//! - `synth`: synthetic recordings of large hosts (for `cargo xtask bench`)
//! - `par`: two independent jobs on two threads
pub mod aggregate;
pub mod analysis;
pub mod atomic;
pub mod attach;
pub mod btf;
pub mod classify;
pub mod compare;
pub mod cpulist;
pub mod doctor;
pub mod flamegraph;
pub mod host;
pub mod html;
pub mod observer;
pub mod par;
pub mod probes;
pub mod record;
pub mod recording;
pub mod report;
pub mod symbolize;
pub mod synth;
pub mod tracefs;
pub mod units;
pub mod workload;
