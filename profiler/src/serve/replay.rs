//! `serve --replay REC` (hidden; for `cargo xtask bench`): serves a recording as if its
//! session were live, with no probe attached. At `t` since serve started, every count is
//! the recording's times `t / its duration`: its rates go on, so the counters grow with
//! every scrape and rendering, HTTP and `/profile` cost what they cost on the host it was
//! recorded on (a synthetic 640-CPU one, from `zoneprof-synth`). What it leaves out is the
//! read-back of the eBPF maps.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    capture::live::{LIVE, Snapshot},
    model::{
        delta::scaled,
        recording::{Recording, RecordingError},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Read(#[from] RecordingError),
    #[error("cannot replay {path}: it lasts 0 s, so it has no rates")]
    NoDuration { path: PathBuf },
}

/// A recording played back at its own rates.
pub struct Replay {
    base: Recording,
    started: Instant,
    started_unix_ms: u64,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Replay, ReplayError> {
        let base = Recording::read(path)?;
        if base.duration_ns == 0 {
            return Err(ReplayError::NoDuration {
                path: path.to_path_buf(),
            });
        }
        Ok(Replay::new(base))
    }

    fn new(base: Recording) -> Replay {
        Replay {
            base,
            started: Instant::now(),
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// The recording replayed.
    pub fn recording(&self) -> &Recording {
        &self.base
    }

    pub fn since_start(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything since serve started, at the recording's rates.
    pub fn snapshot(&self) -> Snapshot {
        let taken = Instant::now();
        let t = u64::try_from(taken.duration_since(self.started).as_nanos()).unwrap_or(u64::MAX);
        let mut rec = scaled(&self.base, t, self.base.duration_ns, t);
        rec.start_unix_ms = self.started_unix_ms;
        rec.end_reason = LIVE.into();
        Snapshot { rec, taken }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::sample;

    #[test]
    fn counts_grow_at_the_recorded_rate() {
        let base = sample();
        let mut r = Replay::new(base.clone());
        // As if serve had run for one and a half times the recording.
        r.started = Instant::now() - Duration::from_nanos(base.duration_ns * 3 / 2);
        let s = r.snapshot();
        let total = |r: &Recording| r.lock_waits.iter().map(|w| w.total_ns).sum::<u64>();
        assert!(total(&s.rec) >= total(&base) * 3 / 2 - base.lock_waits.len() as u64);
        assert!(s.rec.duration_ns >= base.duration_ns * 3 / 2);
        assert_eq!(s.rec.end_reason, LIVE);
        let later = r.snapshot();
        assert!(later.rec.duration_ns >= s.rec.duration_ns);
        assert!(total(&later.rec) >= total(&s.rec));
        // Two snapshots are of one session: their delta is the interval between them.
        crate::model::delta::delta(&s.rec, &later.rec).expect("delta");
    }

    #[test]
    fn a_recording_of_no_time_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("z.zprof");
        let mut rec = sample();
        rec.duration_ns = 0;
        rec.write_atomic(&p).expect("write");
        let e = Replay::open(&p).err().expect("refused");
        assert!(e.to_string().contains("lasts 0 s"), "{e}");
        assert!(matches!(
            Replay::open(&dir.path().join("missing.zprof")),
            Err(ReplayError::Read(_))
        ));
    }
}
