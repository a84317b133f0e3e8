//! zoneprof: find out who spins on the page allocator's `zone->lock`, and why.
//!
//! Imports flow one way, kernel → capture → model → output:
//! - `kernel`: what the running kernel offers (tracefs, BTF, kallsyms, host facts), the probe
//!   catalog, attaching with fallbacks, `doctor`
//! - `capture`: a recording session and reading the eBPF maps back
//! - `model`: the recording format and its analyses (lock classes, sides, observer cost)
//! - `output`: report, flamegraph, compare, HTML, atomic writes
//! - `serve`: a live session's metrics over HTTP (Prometheus); `top`: a live session on the
//!   terminal
//! - `workload`: built-in reproducers; `par`: two independent jobs on two threads
pub mod capture;
pub mod kernel;
pub mod model;
pub mod output;
pub mod par;
pub mod serve;
pub mod top;
pub mod workload;
