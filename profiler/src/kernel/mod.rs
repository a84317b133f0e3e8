//! What the running kernel offers and how zoneprof hooks into it: event formats (`tracefs`),
//! struct layouts (`btf`), kernel symbols (`symbolize`), host facts (`host`, `cpulist`), the
//! probe catalog (`probes`), loading and attaching with per-probe fallback (`attach`), the
//! maps' sizes (`map_entries`), and the checks of `zoneprof doctor` (`doctor`).
pub mod attach;
pub mod btf;
pub mod cgroup;
pub mod cpulist;
#[allow(
    clippy::let_underscore_must_use,
    reason = "write! into a String cannot fail"
)]
pub mod doctor;
pub mod host;
pub mod map_entries;
pub mod probes;
pub mod symbolize;
pub mod tracefs;
