//! A live session: the probes attached as `zoneprof record` attaches them, the in-kernel
//! aggregates read back as often as asked, without detaching (`serve`, `top`).
//!
//! Each [`Live::snapshot`] is a [`Recording`] of everything since attach: the maps only
//! grow, so every count in it is a counter. [`crate::model::delta`] turns two snapshots
//! into the recording of the interval between them. Nothing is streamed per event.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::{
    capture::{
        readback::{self, AggregateError, StackResolver},
        session::{self, Prepared, RunStats, Tables},
    },
    kernel::{attach, cgroup::PathCache},
    model::recording::{FORMAT_NAME, FORMAT_VERSION, PcpMethod, Recording},
};

/// What a live session records.
#[derive(Default)]
pub struct LiveOpts {
    /// Only these CPUs (None: every online CPU).
    pub cpus: Option<Vec<u32>>,
    /// Optional probes and their settings, as for `record`.
    pub plan: attach::PlanOpts,
}

/// `end_reason` of a live snapshot: the probes are still attached.
pub const LIVE: &str = "live";

/// Probes attached and read back on demand; detached by [`Live::detach`] or when dropped.
pub struct Live {
    prep: Prepared,
    run_stats: RunStats,
    /// Stacks read so far: each kernel stack id is symbolized once per session.
    resolver: StackResolver,
    /// cgroup ids named so far: the cgroup tree is walked once per new id, not per snapshot.
    cgroup_paths: PathCache,
    attached_at: Instant,
    attached_unix_ms: u64,
    pcp_method: PcpMethod,
}

/// A snapshot and when it was taken.
pub struct Snapshot {
    /// Everything since attach (`duration_ns` is the time since attach).
    pub rec: Recording,
    pub taken: Instant,
}

impl Live {
    /// Checks privileges, loads and attaches the probes (warnings on stderr, as `record`).
    pub fn attach(opts: &LiveOpts) -> Result<Live> {
        let (prep, run_stats) = session::prepare(opts.cpus.as_deref(), &opts.plan)?;
        let pcp_method = PcpMethod::of(&prep.attached.probes);
        Ok(Live {
            prep,
            run_stats,
            resolver: StackResolver::default(),
            cgroup_paths: PathCache::default(),
            attached_at: Instant::now(),
            attached_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            pcp_method,
        })
    }

    /// Every probe and how it attached.
    pub fn probes(&self) -> &[crate::model::recording::ProbeStatus] {
        &self.prep.attached.probes
    }

    pub fn since_attach(&self) -> Duration {
        self.attached_at.elapsed()
    }

    /// Everything the maps hold now, as a recording of the time since attach.
    pub fn snapshot(&mut self) -> Result<Snapshot, AggregateError> {
        let taken = Instant::now();
        // Read first, so the programs' runs cover at least what the maps show.
        let observer = self.run_stats.read(&self.prep.attached);
        let pcp = readback::read_pages(&self.prep.attached.ebpf, &self.prep.cpus, self.pcp_method)?;
        let Tables {
            counters,
            lock,
            skb,
            page_matrix,
            page_tracking,
            tasks,
            cgroups,
        } = session::read_tables(&self.prep, &mut self.resolver, &mut self.cgroup_paths)?;
        let (frames, stacks) = self.resolver.tables();
        let p = &self.prep;
        let rec = Recording {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            zoneprof_version: env!("CARGO_PKG_VERSION").into(),
            host: p.host.clone(),
            settings: p.settings.clone(),
            start_unix_ms: self.attached_unix_ms,
            duration_ns: u64::try_from(taken.duration_since(self.attached_at).as_nanos())
                .unwrap_or(u64::MAX),
            cpus: p.cpus.clone(),
            end_reason: LIVE.into(),
            command: None,
            probes: p.attached.probes.clone(),
            frames,
            stacks,
            lock_waits: lock.lock_waits,
            wait_hist: lock.wait_hist,
            zones: lock.zones,
            pcp,
            counters,
            skb_matrix: skb.matrix,
            skb_sites: skb.sites,
            skb_defer: skb.defer,
            page_matrix,
            page_tracking,
            observer: Some(observer),
            tasks,
            cgroups,
        };
        Ok(Snapshot { rec, taken })
    }

    /// Detaches every program (again: nothing). The maps and the run-time stats stay until
    /// the session is dropped; snapshots after this see nothing new.
    pub fn detach(&mut self) {
        self.prep.attached.detach();
    }
}
