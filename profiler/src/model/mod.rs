//! What a recording is and what it means, independent of how it is shown: the on-disk
//! format (`recording`), which lock and side a stack is (`classify`), classified views
//! (`analysis`), zone-lock wait attributed to (alloc CPU, free CPU) pairs (`blame`), per-node
//! and per-zone wait and node-pair flows (`numa`),
//! zoneprof's own cost under zone->lock (`observer`), human units (`units`), synthetic
//! recordings of large hosts for the benchmark (`synth`, with the `synth` feature only), the
//! redacted copy of a recording that can be shared (`redact`), and the interval between two
//! live snapshots (`delta`), and lock waits and SKB frees per thread and cgroup (`tasks`).
pub mod analysis;
pub mod blame;
pub mod classify;
pub mod delta;
pub mod numa;
pub mod observer;
pub mod recording;
pub mod redact;
#[cfg(feature = "synth")]
pub mod synth;
pub mod tasks;
pub mod units;
