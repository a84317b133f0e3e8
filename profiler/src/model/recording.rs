//! The recording file: one self-describing, versioned document (gzip-compressed JSON).
//!
//! Stacks are interned (`frames` + `stacks` as frame indices) so a host with tens of
//! thousands of distinct stacks stays small. The layout is documented in
//! `docs/recording-format.md`; bump `FORMAT_VERSION` on any incompatible change.
use std::{
    fs::File,
    io::{BufReader, BufWriter, Read},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::kernel::host::{HostInfo, Settings};

pub const FORMAT_NAME: &str = "zoneprof-recording";
pub const FORMAT_VERSION: u32 = 1;

/// Largest recording a reader accepts, as a file and as JSON once decompressed: 256 MiB.
/// The 640-CPU, 50,000-stack synthetic recording of `cargo xtask bench` (more stacks than
/// the kernel maps can hold) is about 4 MB of gzip, so this leaves room for any real one,
/// while a gzip bomb stops here with an error instead of taking the host's memory.
pub const MAX_RECORDING_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read recording {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write recording {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a zoneprof recording")]
    NotARecording { path: PathBuf },
    #[error(
        "{path} is truncated (the file ends mid-stream); was the recording interrupted while being copied?"
    )]
    Truncated { path: PathBuf },
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} is larger than {} MiB {}; no zoneprof recording is that large",
        .limit >> 20,
        if *.decompressed { "once decompressed" } else { "as a file" }
    )]
    TooLarge {
        path: PathBuf,
        limit: u64,
        decompressed: bool,
    },
    #[error("{path} is recording format version {found}; this zoneprof reads version {supported}")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

/// The command `zoneprof record -- CMD` ran, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    /// Signal that ended the command, when it did not exit normally.
    pub signal: Option<i32>,
}

/// How one attempt to attach a probe went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachAttempt {
    pub method: String,
    pub target: String,
    /// None when it attached.
    pub error: Option<String>,
}

/// A logical probe and how it was (or was not) attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub name: String,
    /// Method that attached ("tracepoint", ...), or the one preferred when none did.
    pub method: String,
    /// What it attached to, e.g. "lock:contention_begin".
    pub target: String,
    pub attached: bool,
    /// Why it did not attach (None when attached).
    pub reason: Option<String>,
    #[serde(default)]
    pub attempts: Vec<AttachAttempt>,
}

/// How a recording counted PCP pages on one side: per batch (outside `zone->lock`), per
/// page (the `kmem:` tracepoints, inside it), or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PcpCount {
    Batch,
    Page,
    Off,
}

impl PcpCount {
    /// As the text outputs say it.
    pub fn words(self) -> &'static str {
        match self {
            PcpCount::Page => "per page",
            PcpCount::Batch => "per batch",
            PcpCount::Off => "not counted",
        }
    }
}

/// The PCP counting method of each side (`totals.pcp_method` in the JSON report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcpMethod {
    pub refill: PcpCount,
    pub drain: PcpCount,
}

/// Whether probe `name` (a `probes::name` constant) attached.
pub fn attached(probes: &[ProbeStatus], name: &str) -> bool {
    probes.iter().any(|p| p.name == name && p.attached)
}

impl PcpMethod {
    /// Read from which probes attached: the per-page probe attaches only when asked for
    /// (`--pcp page`) or when the batch probe could not, so it wins when present.
    pub fn of(probes: &[ProbeStatus]) -> PcpMethod {
        use crate::kernel::probes::name;
        let on = |n: &str| attached(probes, n);
        let side = |page: &str, batch: &str| {
            if on(page) {
                PcpCount::Page
            } else if on(batch) {
                PcpCount::Batch
            } else {
                PcpCount::Off
            }
        };
        PcpMethod {
            refill: side(name::PCP_REFILL, name::RMQUEUE_PCPLIST),
            drain: side(name::PCP_DRAIN, name::FREE_PCPPAGES_BULK),
        }
    }
}

/// Wait on one lock address, from one kernel stack, on one CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    /// Index into `Recording::stacks`; None when the kernel could not give a stack.
    pub stack: Option<u32>,
    /// The errno of the failed stack capture (e.g. -17 collision) when `stack` is None.
    pub stack_error: Option<i32>,
    pub cpu: u32,
    pub lock_addr: u64,
    /// `lock:contention_begin` flags seen (SPIN=1, READ=2, WRITE=4, RT=8, PERCPU=16, MUTEX=32).
    pub lock_flags: u32,
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Thread id of the waiter (`record --tasks`; see `Recording::tasks`); absent without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
}

/// Log2 histogram bucket of waits from one stack: waits in [2^bucket, 2^(bucket+1)) ns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistEntry {
    pub stack: Option<u32>,
    pub bucket: u32,
    pub count: u64,
}

/// A lock address proven, in the kernel, to be `&zone->lock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneLabel {
    pub lock_addr: u64,
    pub node: u32,
    pub zone_idx: u32,
    pub name: String,
}

impl ZoneLabel {
    pub fn label(&self) -> String {
        format!("node {} / zone {}", self.node, self.name)
    }
}

/// PCP list refills (buddy -> PCP) and drains (PCP -> buddy) on one CPU.
/// `refill_pages` / `drain_pages` are counted by the recording's PCP method
/// ([`PcpMethod::of`] its probes); the `*_events` are per-page tracepoint events (0 when
/// counted per batch); `refill_batch_pages` and `bulk_free_pages` are the per-batch
/// counts whenever the batch probes ran (with `--pcp page` too, to check one by the other).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuPages {
    pub cpu: u32,
    pub refill_events: u64,
    pub refill_pages: u64,
    pub buddy_events: u64,
    pub buddy_pages: u64,
    pub drain_events: u64,
    pub drain_pages: u64,
    /// `__rmqueue_pcplist` (PCP refill slow path) calls and time inside it (kprobe/fentry).
    #[serde(default)]
    pub rmqueue_calls: u64,
    #[serde(default)]
    pub rmqueue_ns: u64,
    /// `free_pcppages_bulk` calls and the pages they freed (kprobe/fentry).
    #[serde(default)]
    pub bulk_free_calls: u64,
    #[serde(default)]
    pub bulk_free_pages: u64,
    /// Pages refilled counted per batch outside `zone->lock` by `rmqueue_pcplist`, and
    /// the calls that refilled.
    #[serde(default)]
    pub refill_batch_pages: u64,
    #[serde(default)]
    pub refill_batches: u64,
}

/// What a loss counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossUnit {
    /// Events, entries or calls lost (a count).
    Count,
    /// Nanoseconds of wait not attributed.
    Nanoseconds,
}

/// One way a recording can lose data: the one list every view (text, HTML, JSON, and
/// later metrics) shows, so none can be forgotten in one of them.
#[derive(Debug, Clone, Copy)]
pub struct Loss {
    /// The `Counters` field (and JSON key under `losses`).
    pub key: &'static str,
    /// What it means, as the views say it.
    pub label: &'static str,
    pub unit: LossUnit,
    pub get: fn(&Counters) -> u64,
}

const fn loss(key: &'static str, label: &'static str, get: fn(&Counters) -> u64) -> Loss {
    Loss {
        key,
        label,
        unit: LossUnit::Count,
        get,
    }
}

/// Every loss counter, in the order the views list them.
pub const LOSSES: &[Loss] = &[
    loss(
        "end_without_begin",
        "lock ends without a begin (began before recording)",
        |c| c.end_without_begin,
    ),
    loss("begin_without_end", "begins without an end", |c| {
        c.begin_without_end
    }),
    loss(
        "nest_overflow",
        "nested waits beyond the per-CPU depth",
        |c| c.nest_overflow,
    ),
    loss("stack_collisions", "stack-id collisions", |c| {
        c.stack_collisions
    }),
    loss("stack_errors", "stack-id errors", |c| c.stack_errors),
    loss(
        "lock_map_full",
        "lock-wait map full (wait kept in lost_wait_ns)",
        |c| c.lock_map_full,
    ),
    Loss {
        key: "lost_wait_ns",
        label: "wait not attributed to a stack (map full)",
        unit: LossUnit::Nanoseconds,
        get: |c| c.lost_wait_ns,
    },
    loss("hist_map_full", "histogram map full", |c| c.hist_map_full),
    loss("task_map_full", "sleeping-lock task map full", |c| {
        c.task_map_full
    }),
    loss("zone_cache_full", "zone-address cache full", |c| {
        c.zone_cache_full
    }),
    loss("page_read_errors", "page tracepoint read errors", |c| {
        c.page_read_errors
    }),
    loss("unsymbolized_frames", "unsymbolized frames", |c| {
        c.unsymbolized_frames
    }),
    loss(
        "skb_read_errors",
        "SKB frees whose allocating CPU was unreadable",
        |c| c.skb_read_errors,
    ),
    loss(
        "skb_map_full",
        "SKB frees missing from the matrix or site table (map full)",
        |c| c.skb_map_full,
    ),
    loss(
        "page_track_full",
        "sampled pages not followed (page-tracking map full)",
        |c| c.page_track_full,
    ),
    loss(
        "page_matrix_full",
        "page-flow matrix updates lost (map full)",
        |c| c.page_matrix_full,
    ),
    loss(
        "rmqueue_unmatched",
        "PCP allocation calls whose entry or exit was not seen",
        |c| c.rmqueue_unmatched,
    ),
    loss(
        "bulk_free_unmatched",
        "PCP drain calls whose entry or exit was not seen",
        |c| c.bulk_free_unmatched,
    ),
    loss(
        "pcp_count_errors",
        "PCP batches not counted (pcp->count unreadable or inconsistent)",
        |c| c.pcp_count_errors,
    ),
    loss(
        "task_info_full",
        "threads left unnamed (task-name map full)",
        |c| c.task_info_full,
    ),
];

/// `Counters` fields that are not losses: what was seen, and cross-checks. With
/// [`LOSSES`], they name every field (a unit test holds the two lists to the struct).
pub const NOT_LOSSES: &[&str] = &[
    "contention_begin",
    "contention_end",
    "zone_wait_ns",
    "zone_contentions",
    "total_wait_ns",
    "skb_frees",
    "skb_defer_ipis",
];

impl Counters {
    /// The losses this recording had: (what, how many), non-zero only.
    pub fn losses(&self) -> impl Iterator<Item = (&'static Loss, u64)> + '_ {
        LOSSES
            .iter()
            .map(move |l| (l, (l.get)(self)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Event counts and every way an event can be lost, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub contention_begin: u64,
    pub contention_end: u64,
    pub end_without_begin: u64,
    pub nest_overflow: u64,
    pub begin_without_end: u64,
    pub stack_collisions: u64,
    pub stack_errors: u64,
    pub lock_map_full: u64,
    pub lost_wait_ns: u64,
    pub hist_map_full: u64,
    pub task_map_full: u64,
    pub zone_cache_full: u64,
    /// Zone-lock wait summed in the kernel for addresses proven to be zone locks.
    pub zone_wait_ns: u64,
    pub zone_contentions: u64,
    /// Every lock's wait summed in the kernel (cross-check of `lock_waits`).
    pub total_wait_ns: u64,
    pub page_read_errors: u64,
    /// Stack frames that no kallsyms symbol covered.
    pub unsymbolized_frames: u64,
    /// SKB frees seen (every free function), and those whose alloc CPU was unreadable.
    #[serde(default)]
    pub skb_frees: u64,
    #[serde(default)]
    pub skb_read_errors: u64,
    /// SKB frees missing from the matrix or site table (map full).
    #[serde(default)]
    pub skb_map_full: u64,
    #[serde(default)]
    pub skb_defer_ipis: u64,
    /// Sampled pages not tracked (tracking map full) and matrix updates lost.
    #[serde(default)]
    pub page_track_full: u64,
    #[serde(default)]
    pub page_matrix_full: u64,
    /// `__rmqueue_pcplist` exits without a matching entry.
    #[serde(default)]
    pub rmqueue_unmatched: u64,
    /// `free_pcppages_bulk` exits without a matching entry.
    #[serde(default)]
    pub bulk_free_unmatched: u64,
    /// PCP batches not counted: `pcp->count` unreadable or moved the wrong way.
    #[serde(default)]
    pub pcp_count_errors: u64,
    /// Threads left unnamed (`--tasks`): the task-name map was full.
    #[serde(default)]
    pub task_info_full: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub format: String,
    pub version: u32,
    pub zoneprof_version: String,
    pub host: HostInfo,
    pub settings: Settings,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    pub duration_ns: u64,
    /// CPUs whose events were recorded.
    pub cpus: Vec<u32>,
    /// Why recording stopped: "duration", "signal", "command exited".
    pub end_reason: String,
    pub command: Option<CommandInfo>,
    pub probes: Vec<ProbeStatus>,
    /// Symbolized frames, `symbol+0xoff` (or `symbol+0xoff [module]`), interned.
    pub frames: Vec<String>,
    /// Kernel stacks as indices into `frames`, leaf first (the lock slowpath first).
    pub stacks: Vec<Vec<u32>>,
    pub lock_waits: Vec<LockWait>,
    pub wait_hist: Vec<HistEntry>,
    pub zones: Vec<ZoneLabel>,
    pub pcp: Vec<CpuPages>,
    pub counters: Counters,
    /// SKB frees per (alloc CPU, free CPU), non-zero cells only.
    #[serde(default)]
    pub skb_matrix: Vec<SkbCell>,
    /// SKB frees per (free function, caller, free CPU).
    #[serde(default)]
    pub skb_sites: Vec<SkbSite>,
    /// `skb_attempt_defer_free` outcomes per CPU (empty when the probe was not attached).
    #[serde(default)]
    pub skb_defer: Vec<SkbDefer>,
    /// Sampled page alloc CPU -> free CPU flows (empty when page tracking was off).
    #[serde(default)]
    pub page_matrix: Vec<PageCell>,
    /// How page tracking ran; None when it was off.
    #[serde(default)]
    pub page_tracking: Option<PageTracking>,
    /// What zoneprof's own programs cost while recording (BPF run-time stats); None in
    /// recordings made before zoneprof measured it.
    #[serde(default)]
    pub observer: Option<ObserverStats>,
    /// The threads of `LockWait::tid` and `SkbSite::tid` (`record --tasks`), by tid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
    /// The cgroups of `tasks`, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<CgroupInfo>,
}

/// Run counts and run time of zoneprof's programs over the recording, from the kernel's
/// BPF run-time stats (enabled only while recording).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObserverStats {
    /// One entry per attached program.
    pub programs: Vec<ProgramRunStats>,
    /// Why run-time stats are missing or incomplete; None when every program was measured.
    pub stats_error: Option<String>,
    /// What the kernel adds around each program run beyond the program's own time, per
    /// attach method, measured at the start of the recording (`capture::calibrate`). Empty
    /// in recordings made before zoneprof measured it.
    #[serde(default)]
    pub dispatch: Vec<DispatchCost>,
    /// Why `dispatch` is empty or lacks a method the in-lock programs used.
    #[serde(default)]
    pub dispatch_error: Option<String>,
}

/// The time the kernel spends around one run of a program attached by `method`: the
/// tracepoint's dispatch and the run-time stats' own clock reads, which the stats leave out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchCost {
    /// `raw_tracepoint` or `tracepoint`, as in `ProbeStatus::method`.
    pub method: String,
    /// Median over the rounds.
    pub ns_per_run: f64,
    /// Smallest and largest round's estimate: the spread of the measurement.
    pub min_ns: f64,
    pub max_ns: f64,
    pub rounds: u32,
    /// Calls timed per round, without and with the empty program.
    pub calls_per_round: u32,
}

/// One program's runs and time spent in it between attach and detach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramRunStats {
    /// Probe name, as in `Recording::probes`.
    pub probe: String,
    /// eBPF program name, e.g. `raw_page_alloc_zone_locked`.
    pub program: String,
    pub runs: u64,
    pub run_ns: u64,
}

impl Recording {
    /// Whether probe `name` (a `probes::name` constant) attached in this recording.
    pub fn attached(&self, name: &str) -> bool {
        attached(&self.probes, name)
    }
}

/// SKBs allocated on `alloc_cpu` (`skb->alloc_cpu`) and freed on `free_cpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkbCell {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    pub count: u64,
}

/// SKB frees at one site: `function` (consume_skb, kfree_skb, skb_attempt_defer_free)
/// called from `caller` (symbol of the call site), on `cpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkbSite {
    pub function: String,
    pub caller: String,
    pub cpu: u32,
    pub count: u64,
    /// Freed on another CPU than the one that allocated it.
    pub remote: u64,
    /// Freed on another NUMA node than the allocating CPU's.
    pub cross_node: u64,
    /// Thread id of the freeing task (`record --tasks`); absent without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
}

/// Who a thread was when zoneprof first saw it (`record --tasks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Thread id, as in `LockWait::tid` and `SkbSite::tid`.
    pub tid: u32,
    /// Process (thread group) id.
    pub pid: u32,
    /// The thread's name (`comm`), e.g. `vhost-1234` or `ksoftirqd/3`.
    pub comm: String,
    /// cgroup v2 id; None when the kernel gave none.
    pub cgroup_id: Option<u64>,
}

/// A cgroup v2 id and its path under the cgroup2 mount, e.g. `/machine.slice/vm1.scope`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupInfo {
    pub id: u64,
    /// None when the cgroup was gone (or unreadable) when the recording was read back.
    pub path: Option<String>,
}

/// `skb_attempt_defer_free` on one CPU, and the flush/IPI cost it caused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkbDefer {
    pub cpu: u32,
    /// Calls made on this CPU.
    pub calls: u64,
    /// Queued to the allocating CPU's defer list.
    pub deferred: u64,
    /// Freed at once (local, offline CPU, list full, or deferral disabled).
    pub immediate: u64,
    /// SKBs freed on this CPU by the deferred-list flush (`skb_defer_free_flush`).
    pub flushed: u64,
    /// IPIs sent to kick another CPU's deferred-list flush.
    pub ipis: u64,
}

/// Sampled pages allocated on `alloc_cpu` and freed on `free_cpu`, scaled back to an
/// estimate of all pages (see `PageTracking::sample_one_in`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageCell {
    pub alloc_cpu: u32,
    pub free_cpu: u32,
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageTracking {
    /// One page in N (by pfn hash, so alloc and free agree) was tracked.
    pub sample_one_in: u32,
    /// Estimated freed blocks by order (index = order; a block is 2^order pages).
    pub pages_by_order: Vec<u64>,
    /// Log2 histogram of page lifetimes: (bucket, estimated pages), bucket b = [2^b, 2^(b+1)) ns.
    pub lifetime_hist: Vec<(u32, u64)>,
    /// Tracked allocations dropped because the tracking map was full.
    pub map_full: u64,
}

#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u32>,
}

/// A zoneprof recording of the version this build reads.
fn check_header(
    format: Option<&str>,
    version: Option<u32>,
    path: &Path,
) -> Result<(), RecordingError> {
    if format != Some(FORMAT_NAME) {
        return Err(RecordingError::NotARecording {
            path: path.to_path_buf(),
        });
    }
    match version {
        Some(FORMAT_VERSION) => Ok(()),
        found => Err(RecordingError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: found.unwrap_or(0),
            supported: FORMAT_VERSION,
        }),
    }
}

impl Recording {
    pub fn duration_s(&self) -> f64 {
        self.duration_ns as f64 / 1e9
    }

    /// Frames of stack `idx`, leaf first.
    pub fn stack_frames(&self, idx: u32) -> Vec<&str> {
        self.stacks
            .get(idx as usize)
            .map(|s| {
                s.iter()
                    .map(|&f| {
                        self.frames
                            .get(f as usize)
                            .map_or("[bad frame]", |s| s.as_str())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn zone_by_addr(&self, addr: u64) -> Option<&ZoneLabel> {
        self.zones.iter().find(|z| z.lock_addr == addr)
    }

    /// Writes atomically: a temporary file beside `path`, fsync, then rename, so a reader
    /// never sees a half-written recording and an interrupted write leaves no debris.
    pub fn write_atomic(&self, path: &Path) -> Result<(), RecordingError> {
        crate::output::atomic::write_with(path, |f| {
            let mut gz =
                flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::new(6));
            serde_json::to_writer(&mut gz, self).map_err(std::io::Error::other)?;
            let mut w = gz.finish()?;
            std::io::Write::flush(&mut w)
        })
        .map_err(|source| RecordingError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<Recording, RecordingError> {
        let f = File::open(path).map_err(|source| RecordingError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut raw = Vec::new();
        // One byte past the limit is enough to know it is too large.
        BufReader::new(f)
            .take(MAX_RECORDING_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(|source| RecordingError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_bytes(&raw, path)
    }

    /// Parses a recording held in memory; `path` only names it in errors.
    pub fn from_bytes(raw: &[u8], path: &Path) -> Result<Recording, RecordingError> {
        Self::from_bytes_within(raw, path, MAX_RECORDING_BYTES)
    }

    /// [`Recording::from_bytes`] with the size limit as a parameter, so tests can hit it
    /// without allocating 256 MiB.
    fn from_bytes_within(raw: &[u8], path: &Path, limit: u64) -> Result<Recording, RecordingError> {
        let p = || path.to_path_buf();
        let too_large = |decompressed| RecordingError::TooLarge {
            path: p(),
            limit,
            decompressed,
        };
        if raw.len() as u64 > limit {
            return Err(too_large(false));
        }
        let json: Vec<u8> = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(raw)
                .take(limit + 1)
                .read_to_end(&mut out)
            {
                Ok(_) if out.len() as u64 > limit => return Err(too_large(true)),
                Ok(_) => out,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(RecordingError::Truncated { path: p() });
                }
                Err(e) => {
                    return Err(RecordingError::Corrupt {
                        path: p(),
                        detail: e.to_string(),
                    });
                }
            }
        } else if raw.first() == Some(&b'{') {
            raw.to_vec()
        } else {
            return Err(RecordingError::NotARecording { path: p() });
        };
        // One parse of the whole document; its header is checked afterwards. Only a document
        // that does not parse is read again, as a bare header, to say why: not a recording,
        // another version, truncated, or else corrupt. (A header-first pass would skim the
        // whole document once more for every good recording.)
        let rec: Recording = match serde_json::from_slice(&json) {
            Ok(rec) => rec,
            Err(e) => {
                let header: Header = serde_json::from_slice(&json).map_err(|h| {
                    if h.is_eof() {
                        RecordingError::Truncated { path: p() }
                    } else {
                        RecordingError::NotARecording { path: p() }
                    }
                })?;
                check_header(header.format.as_deref(), header.version, path)?;
                return Err(RecordingError::Corrupt {
                    path: p(),
                    detail: e.to_string(),
                });
            }
        };
        check_header(Some(&rec.format), Some(rec.version), path)?;
        rec.validate()
            .map_err(|detail| RecordingError::Corrupt { path: p(), detail })?;
        Ok(rec)
    }

    /// Cross-references must hold, so reports can index without checks failing later.
    fn validate(&self) -> Result<(), String> {
        let nframes = self.frames.len() as u32;
        for (i, s) in self.stacks.iter().enumerate() {
            if let Some(bad) = s.iter().find(|&&f| f >= nframes) {
                return Err(format!(
                    "stack {i} names frame {bad}, but there are {nframes} frames"
                ));
            }
        }
        let nstacks = self.stacks.len() as u32;
        let bad_stack = |s: Option<u32>| s.is_some_and(|s| s >= nstacks);
        if self.lock_waits.iter().any(|w| bad_stack(w.stack))
            || self.wait_hist.iter().any(|h| bad_stack(h.stack))
        {
            return Err(format!(
                "an entry names a stack beyond the {nstacks} stacks"
            ));
        }
        Ok(())
    }
}

/// Builds the interned frame and stack tables.
#[derive(Default)]
pub struct StackInterner {
    frames: Vec<String>,
    frame_idx: std::collections::HashMap<String, u32>,
    stacks: Vec<Vec<u32>>,
    stack_idx: std::collections::HashMap<Vec<u32>, u32>,
}

impl StackInterner {
    pub fn frame(&mut self, f: String) -> u32 {
        if let Some(&i) = self.frame_idx.get(&f) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(f.clone());
        self.frame_idx.insert(f, i);
        i
    }

    pub fn stack(&mut self, frames: Vec<u32>) -> u32 {
        if let Some(&i) = self.stack_idx.get(&frames) {
            return i;
        }
        let i = self.stacks.len() as u32;
        self.stacks.push(frames.clone());
        self.stack_idx.insert(frames, i);
        i
    }

    pub fn frames(&self) -> &[String] {
        &self.frames
    }

    pub fn stacks(&self) -> &[Vec<u32>] {
        &self.stacks
    }

    pub fn finish(self) -> (Vec<String>, Vec<Vec<u32>>) {
        (self.frames, self.stacks)
    }
}

/// A small, fully-populated recording for unit tests of readers and reports.
#[cfg(test)]
pub(crate) fn sample() -> Recording {
    use crate::kernel::host::{PcpSetting, Settings};
    let mut i = StackInterner::default();
    let names = [
        "__pv_queued_spin_lock_slowpath+0x15b",
        "_raw_spin_lock_irqsave+0x4d",
        "__rmqueue_pcplist+0x233",
        "get_page_from_freelist+0x2fe",
        "free_pcppages_bulk+0x37",
        "free_frozen_page_commit+0x19d",
        "free_unref_folios+0x346",
        "_raw_spin_lock+0x3b",
        "sched_tick+0x43",
    ];
    let f: Vec<u32> = names.iter().map(|n| i.frame(n.to_string())).collect();
    let alloc = i.stack(vec![f[0], f[1], f[2], f[3]]);
    let free = i.stack(vec![f[0], f[1], f[4], f[5], f[6]]);
    let rq = i.stack(vec![f[0], f[7], f[8]]);
    let (frames, stacks) = i.finish();
    let zone = 0xffff_8886_3ffd_6b08;
    let w = |stack, cpu, lock_addr, total_ns| LockWait {
        stack: Some(stack),
        stack_error: None,
        cpu,
        lock_addr,
        lock_flags: 1,
        count: 10,
        total_ns,
        max_ns: total_ns / 5,
        tid: None,
    };
    Recording {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        zoneprof_version: "test".into(),
        host: HostInfo {
            hostname: "testhost".into(),
            kernel_release: "6.18.0-test".into(),
            kernel_version: "#1 SMP".into(),
            arch: "x86_64".into(),
            online_cpus: vec![0, 1],
            possible_cpus: 2,
            cpu_node: vec![(0, 0), (1, 0)],
            numa_nodes: vec![0],
        },
        settings: Settings {
            skb_defer_max: Some(64),
            percpu_pagelist_high_fraction: Some(0),
            stat_interval: Some(1),
            pcp: vec![PcpSetting {
                node: 0,
                zone: "Normal".into(),
                cpu: 0,
                count: 10,
                high: 500,
                batch: 63,
                high_min: Some(100),
                high_max: Some(500),
            }],
            map_entries: Vec::new(),
            tasks: false,
        },
        start_unix_ms: 1_764_140_000_000,
        duration_ns: 2_000_000_000,
        cpus: vec![0, 1],
        end_reason: "duration".into(),
        command: None,
        probes: vec![ProbeStatus {
            name: "contention_begin".into(),
            method: "tracepoint".into(),
            target: "lock:contention_begin".into(),
            attached: true,
            reason: None,
            attempts: vec![],
        }],
        frames,
        stacks,
        lock_waits: vec![
            w(alloc, 0, zone, 6_000_000),
            w(free, 1, zone, 12_000_000),
            w(rq, 1, 0xffff_0000_0000_1000, 1_000_000),
            LockWait {
                stack: None,
                stack_error: Some(-17),
                ..w(0, 0, zone, 500_000)
            },
        ],
        wait_hist: vec![HistEntry {
            stack: Some(alloc),
            bucket: 16,
            count: 10,
        }],
        zones: vec![ZoneLabel {
            lock_addr: zone,
            node: 0,
            zone_idx: 2,
            name: "Normal".into(),
        }],
        pcp: vec![
            CpuPages {
                cpu: 0,
                refill_events: 1000,
                refill_pages: 1000,
                ..Default::default()
            },
            CpuPages {
                cpu: 1,
                drain_events: 990,
                drain_pages: 990,
                ..Default::default()
            },
        ],
        counters: Counters {
            contention_end: 40,
            ..Default::default()
        },
        skb_matrix: vec![SkbCell {
            alloc_cpu: 0,
            free_cpu: 1,
            count: 5,
        }],
        skb_sites: vec![],
        skb_defer: vec![],
        page_matrix: vec![],
        page_tracking: None,
        observer: None,
        tasks: Vec::new(),
        cgroups: Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {

    /// Every counter with a distinct non-zero value, set through its JSON key so that the
    /// list follows the struct.
    pub(crate) fn distinct_counters() -> (Counters, Vec<(String, u64)>) {
        let keys: Vec<String> = match serde_json::to_value(Counters::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("Counters is not an object: {other:?}"),
        };
        let values: Vec<(String, u64)> = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, 1_000 + 7 * i as u64))
            .collect();
        let obj: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
            .collect();
        let c: Counters = serde_json::from_value(serde_json::Value::Object(obj)).expect("counters");
        (c, values)
    }

    /// A counter added to the recording must be listed as a loss or as not one, and each
    /// loss must read its own field.
    #[test]
    fn every_counter_is_a_listed_loss_or_listed_as_not_one() {
        let (c, values) = distinct_counters();
        for (key, v) in &values {
            let loss = LOSSES.iter().find(|l| l.key == key);
            match loss {
                Some(l) => assert_eq!((l.get)(&c), *v, "{key}: the loss reads another field"),
                None => assert!(
                    NOT_LOSSES.contains(&key.as_str()),
                    "counter {key} is neither in LOSSES nor in NOT_LOSSES"
                ),
            }
        }
        for l in LOSSES {
            assert!(
                values.iter().any(|(k, _)| k == l.key),
                "{}: no such counter",
                l.key
            );
        }
        assert_eq!(c.losses().count(), LOSSES.len());
        assert_eq!(Counters::default().losses().count(), 0);
    }

    use super::*;

    fn write_tmp(rec: &Recording) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("r.zprof");
        rec.write_atomic(&p).expect("write");
        (dir, p)
    }

    #[test]
    fn round_trip_is_lossless_and_leaves_no_temp_file() {
        let rec = sample();
        let (dir, p) = write_tmp(&rec);
        assert_eq!(Recording::read(&p).expect("read"), rec);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.zprof")]);
    }

    #[test]
    fn truncated_file_is_reported_as_truncated() {
        let (_d, p) = write_tmp(&sample());
        let bytes = std::fs::read(&p).expect("read");
        for cut in [bytes.len() / 2, bytes.len() - 4, 12] {
            let err = Recording::from_bytes(&bytes[..cut], &p).expect_err("must fail");
            assert!(
                matches!(err, RecordingError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
        // Truncated plain JSON too.
        let json = serde_json::to_vec(&sample()).expect("json");
        let err = Recording::from_bytes(&json[..json.len() / 2], &p).expect_err("must fail");
        assert!(matches!(err, RecordingError::Truncated { .. }), "{err}");
    }

    #[test]
    fn other_files_are_not_recordings() {
        let p = Path::new("x");
        for junk in [
            &b"hello world"[..],
            b"",
            b"{\"format\": \"something-else\", \"version\": 1}",
        ] {
            let err = Recording::from_bytes(junk, p).expect_err("must fail");
            assert!(matches!(err, RecordingError::NotARecording { .. }), "{err}");
        }
    }

    #[test]
    fn wrong_version_names_both_versions() {
        let mut v = serde_json::to_value(sample()).expect("json");
        v["version"] = serde_json::json!(99);
        let err = Recording::from_bytes(&serde_json::to_vec(&v).expect("json"), Path::new("x"))
            .expect_err("must fail");
        assert!(matches!(
            err,
            RecordingError::UnsupportedVersion { found: 99, .. }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains("99") && msg.contains(&FORMAT_VERSION.to_string()),
            "{msg}"
        );
        // A later version whose body no longer parses as this one's is still named as such.
        if let Some(o) = v.as_object_mut() {
            o.remove("lock_waits");
        }
        let err = Recording::from_bytes(&serde_json::to_vec(&v).expect("json"), Path::new("x"))
            .expect_err("must fail");
        assert!(
            matches!(err, RecordingError::UnsupportedVersion { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit_with_one_line() {
        use std::io::Write as _;
        // 8 MiB of padding gzips to a few KiB; a 1 MiB limit must stop inflating there.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"format": "zoneprof-recording", "version": 1, "pad": ""#)
            .expect("gzip");
        for _ in 0..8 {
            gz.write_all(&[b' '; 1 << 20]).expect("gzip");
        }
        gz.write_all(br#""}"#).expect("gzip");
        let bomb = gz.finish().expect("gzip");
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let p = Path::new("bomb.zprof");
        let err = Recording::from_bytes_within(&bomb, p, 1 << 20).expect_err("must fail");
        assert!(
            matches!(
                err,
                RecordingError::TooLarge {
                    decompressed: true,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert_eq!(
            msg,
            "bomb.zprof is larger than 1 MiB once decompressed; no zoneprof recording is that large"
        );

        // Plain JSON and the file itself are held to the same limit; at the limit is fine.
        let json = serde_json::to_vec(&sample()).expect("json");
        let n = json.len() as u64;
        let err = Recording::from_bytes_within(&json, p, n - 1).expect_err("must fail");
        assert!(
            matches!(
                err,
                RecordingError::TooLarge {
                    decompressed: false,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            Recording::from_bytes_within(&json, p, n).expect("fits"),
            sample()
        );
        let (_d, path) = write_tmp(&sample());
        let gz = std::fs::read(&path).expect("read");
        assert!((gz.len() as u64) < n);
        assert!(Recording::from_bytes_within(&gz, p, n).is_ok());
        assert!(matches!(
            Recording::from_bytes_within(&gz, p, n - 1),
            Err(RecordingError::TooLarge {
                decompressed: true,
                ..
            })
        ));
    }

    #[test]
    fn json_nesting_is_bounded() {
        // serde_json stops typed descent at depth 128 (its `unbounded_depth` feature, which
        // would lift that, is off): deep input is an error, not a stack overflow.
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let err = serde_json::from_str::<serde_json::Value>(&deep(200)).expect_err("too deep");
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
        // In a recording: nesting where the format has a list of lists, and under a key the
        // format does not have (skipped without recursing). Both are one-line errors.
        let p = Path::new("deep.zprof");
        for (key, depth) in [("stacks", 100_000), ("stacks", 129), ("unknown", 100_000)] {
            let doc = format!(
                r#"{{"format": "zoneprof-recording", "version": 1, "{key}": {}}}"#,
                deep(depth)
            );
            let err = Recording::from_bytes(doc.as_bytes(), p).expect_err("must fail");
            assert!(
                matches!(err, RecordingError::Corrupt { .. }),
                "{key}: {err}"
            );
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }

    #[test]
    fn dangling_indices_are_corrupt_not_a_panic() {
        let mut rec = sample();
        rec.stacks[0].push(9999);
        let json = serde_json::to_vec(&rec).expect("json");
        let err = Recording::from_bytes(&json, Path::new("x")).expect_err("must fail");
        assert!(matches!(err, RecordingError::Corrupt { .. }), "{err}");
        let mut rec = sample();
        rec.lock_waits[0].stack = Some(77);
        let json = serde_json::to_vec(&rec).expect("json");
        assert!(Recording::from_bytes(&json, Path::new("x")).is_err());
    }

    #[test]
    fn recordings_without_observer_stats_still_load() {
        let mut rec = sample();
        rec.observer = Some(ObserverStats {
            programs: vec![ProgramRunStats {
                probe: "pcp_refill".into(),
                program: "raw_page_alloc_zone_locked".into(),
                runs: 10,
                run_ns: 310,
            }],
            stats_error: None,
            dispatch: vec![DispatchCost {
                method: "raw_tracepoint".into(),
                ns_per_run: 41.5,
                min_ns: 39.0,
                max_ns: 47.25,
                rounds: 9,
                calls_per_round: 20_000,
            }],
            dispatch_error: None,
        });
        let json = serde_json::to_vec(&rec).expect("json");
        assert_eq!(
            Recording::from_bytes(&json, Path::new("x")).expect("read"),
            rec
        );
        // A recording from before the key existed.
        let mut v = serde_json::to_value(&rec).expect("json");
        // One from before the dispatch was measured.
        let observer = v.get_mut("observer").and_then(|o| o.as_object_mut());
        let observer = observer.expect("observer object");
        assert!(observer.remove("dispatch").is_some());
        assert!(observer.remove("dispatch_error").is_some());
        let older = Recording::from_bytes(&serde_json::to_vec(&v).expect("json"), Path::new("x"))
            .expect("a recording without dispatch loads");
        let stats = older.observer.expect("observer kept");
        assert!(stats.dispatch.is_empty() && stats.dispatch_error.is_none());
        let removed = v.as_object_mut().and_then(|o| o.remove("observer"));
        assert!(removed.is_some());
        let old = Recording::from_bytes(&serde_json::to_vec(&v).expect("json"), Path::new("x"))
            .expect("an old recording loads");
        assert_eq!(old.observer, None);
    }

    #[test]
    fn map_sizes_are_kept_and_older_recordings_have_none() {
        let mut rec = sample();
        let sizes = crate::kernel::map_entries::MapEntries::parse("lock-stats=4,stacks=8")
            .expect("parses")
            .effective(false, false);
        rec.settings.map_entries = sizes.clone();
        let json = serde_json::to_vec(&rec).expect("json");
        let back = Recording::from_bytes(&json, Path::new("x")).expect("read");
        assert_eq!(back.settings.map_entries, sizes);
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(v["settings"]["map_entries"][0]["map"], "lock-stats");
        assert_eq!(v["settings"]["map_entries"][0]["max_entries"], 4);
        // From before the key existed (and synthetic recordings, which leave it out).
        let old = serde_json::to_vec(&sample()).expect("json");
        assert!(!String::from_utf8_lossy(&old).contains("map_entries"));
        let old = Recording::from_bytes(&old, Path::new("x")).expect("an old recording loads");
        assert!(old.settings.map_entries.is_empty());
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = Recording::read(Path::new("/nonexistent/r.zprof")).expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/r.zprof"));
    }

    #[test]
    fn interner_dedups_frames_and_stacks() {
        let mut i = StackInterner::default();
        let a = i.frame("a".into());
        let b = i.frame("b".into());
        assert_eq!(i.frame("a".into()), a);
        let s1 = i.stack(vec![a, b]);
        assert_eq!(i.stack(vec![a, b]), s1);
        assert_ne!(i.stack(vec![b, a]), s1);
        let (frames, stacks) = i.finish();
        assert_eq!(frames, vec!["a", "b"]);
        assert_eq!(stacks.len(), 2);
    }
}
