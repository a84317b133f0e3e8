//! Built-in reproducers.
//!
//! `cross-cpu-pages`: anonymous pages are faulted in (allocated) by a thread pinned to an
//! alloc CPU and unmapped (freed) by a thread pinned to a free CPU. The alloc CPU's PCP list
//! keeps running empty (refills under `zone->lock`) and the free CPU's keeps overflowing
//! `pcp->high` (drains under `zone->lock`): the same pattern as NAPI allocating SKBs on one
//! CPU and a vhost thread freeing them on another. Same-CPU mode frees on the alloc CPU,
//! the shape of the upstream fix.
//!
//! Each (alloc, free) pair runs in its own process ([`run_cross_cpu_pages`] re-executes the
//! current binary), so pairs do not serialize on one `mmap_lock`.
//!
//! `tap`: SKBs built on a sender CPU and freed on a reader CPU in `tun_do_read`, the
//! vhost-net pattern, with tap devices in a network namespace of its own ([`tap`]).

mod pair;
mod spawn;
pub mod tap;

use std::io;
use std::time::Duration;

use thiserror::Error;

use crate::kernel::host::HostError;

pub use pair::{PairCounts, measure_pair, pin_current_thread, run_pair};
pub use spawn::{pair_args, parse_pair_result, plan_pairs, run_cross_cpu_pages};

/// Chunks in flight between the alloc and free thread. Small, so the free CPU trails the
/// alloc CPU closely and the process footprint stays at ~depth x chunk.
pub const CHANNEL_DEPTH: usize = 8;
/// Default chunk size: 4 MiB = 1024 pages per mmap/munmap.
pub const DEFAULT_CHUNK_KIB: u32 = 4096;
/// Longest accepted run; runs are bounded in time, and this bounds the bound.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Largest accepted chunk (1 GiB).
pub const MAX_CHUNK_KIB: u32 = 1 << 20;
/// Most pairs (child processes) one run may start; guards against runaway CPU lists.
pub const MAX_PAIRS: usize = 4096;
/// First word of the line a pair child prints on stdout.
pub const PAIR_RESULT_PREFIX: &str = "zoneprof-pair-result";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossCpuPagesOpts {
    pub alloc_cpus: Vec<u32>,
    /// Ignored in same-CPU mode (each pair frees on its alloc CPU).
    pub free_cpus: Vec<u32>,
    pub same_cpu: bool,
    pub duration: Duration,
    pub chunk_kib: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadResult {
    /// Bytes allocated and freed again, summed over all pairs.
    pub bytes: u64,
    /// Longest run time any pair reported (its own alloc/free loop, without exec start-up).
    pub elapsed: Duration,
    pub pairs: usize,
}

impl WorkloadResult {
    /// Aggregate throughput in decimal GB/s; 0 for a zero elapsed time.
    pub fn gb_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / secs / 1e9
        } else {
            0.0
        }
    }
}

/// One (alloc CPU, free CPU) pair. Same-CPU mode when `same_cpu` or both CPUs are equal:
/// then `free_cpu` is ignored and chunks are unmapped by the thread that faulted them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairOpts {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    pub same_cpu: bool,
    pub duration: Duration,
    pub chunk_kib: u32,
}

impl PairOpts {
    pub fn is_same_cpu(&self) -> bool {
        self.same_cpu || self.alloc_cpu == self.free_cpu
    }
}

#[derive(Debug, Error)]
pub enum WorkloadError {
    #[error("no {0} CPUs given")]
    NoCpus(&'static str),
    #[error("{0} pairs requested, at most {MAX_PAIRS} allowed")]
    TooManyPairs(usize),
    #[error("CPU {0} is out of range (at most {max})", max = crate::kernel::cpulist::MAX_CPUS - 1)]
    CpuOutOfRange(u32),
    #[error("CPU {cpu} is not online (online: {online})")]
    CpuOffline { cpu: u32, online: String },
    #[error("cannot pin thread to CPU {cpu}: {source}")]
    Pin { cpu: u32, source: io::Error },
    #[error("duration must be between 1 ms and {max:?}, got {0:?}", max = MAX_DURATION)]
    BadDuration(Duration),
    #[error("chunk size must be between 4 KiB and {MAX_CHUNK_KIB} KiB, got {0} KiB")]
    BadChunk(u32),
    #[error("mmap of {bytes} bytes failed: {source}")]
    Mmap { bytes: usize, source: io::Error },
    #[error("munmap failed: {0}")]
    Munmap(io::Error),
    #[error("cannot start {role} thread: {source}")]
    Thread {
        role: &'static str,
        source: io::Error,
    },
    #[error("{0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("cannot write the pair result: {0}")]
    Output(io::Error),
    #[error("cannot read online CPUs: {0}")]
    Host(#[from] HostError),
    #[error("cannot find own executable: {0}")]
    CurrentExe(io::Error),
    #[error("cannot start pair {pair} (CPU {alloc_cpu} -> {free_cpu}): {source}")]
    Spawn {
        pair: usize,
        alloc_cpu: u32,
        free_cpu: u32,
        source: io::Error,
    },
    #[error("pair {pair} (CPU {alloc_cpu} -> {free_cpu}) failed: {detail}")]
    PairFailed {
        pair: usize,
        alloc_cpu: u32,
        free_cpu: u32,
        detail: String,
    },
    #[error("pairs {pairs} still running {waited:?} after start; killed them")]
    Timeout { pairs: String, waited: Duration },
    #[error("waiting for pair processes failed: {0}")]
    Wait(io::Error),
}

pub(crate) fn validate_common(duration: Duration, chunk_kib: u32) -> Result<(), WorkloadError> {
    if duration < Duration::from_millis(1) || duration > MAX_DURATION {
        return Err(WorkloadError::BadDuration(duration));
    }
    if !(4..=MAX_CHUNK_KIB).contains(&chunk_kib) {
        return Err(WorkloadError::BadChunk(chunk_kib));
    }
    Ok(())
}
