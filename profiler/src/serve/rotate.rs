//! `serve --rotate D --keep N --dir DIR`: every D, the interval since the last one is
//! written as a recording (`DIR/zoneprof-<unix ms at its start>.zprof`, atomically), for a
//! later `report` or `compare`; only the newest N are kept. The last, shorter interval is
//! written when serve stops.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{capture::live::Snapshot, model::delta::delta};

pub struct Rotate {
    pub every: Duration,
    pub keep: usize,
    pub dir: PathBuf,
}

const PREFIX: &str = "zoneprof-";
const SUFFIX: &str = ".zprof";

impl Rotate {
    /// Fails now, before any probe is loaded, when DIR cannot be written.
    pub fn check(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        crate::output::atomic::check_writable(&self.dir.join("probe.zprof"))
            .with_context(|| format!("cannot write to {}", self.dir.display()))
    }

    /// Writes the interval from `prev` to `cur` and prunes; returns the file written.
    pub fn write(&self, prev: &Snapshot, cur: &Snapshot) -> Result<PathBuf> {
        let mut rec = delta(&prev.rec, &cur.rec)?;
        rec.end_reason = "rotate".into();
        let path = self
            .dir
            .join(format!("{PREFIX}{}{SUFFIX}", rec.start_unix_ms));
        rec.write_atomic(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        prune(&self.dir, self.keep)?;
        Ok(path)
    }
}

/// Removes all but the newest `keep` rotated recordings in `dir` (by the time in their
/// names; other files are left alone).
fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut ours: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let ms = name
                .strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse()
                .ok()?;
            Some((ms, e.path()))
        })
        .collect();
    ours.sort();
    let extra = ours.len().saturating_sub(keep);
    for (_, p) in ours.into_iter().take(extra) {
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_and_leaves_other_files() {
        let d = tempfile::tempdir().expect("tempdir");
        for name in [
            "zoneprof-100.zprof",
            "zoneprof-30.zprof",
            "zoneprof-2000.zprof",
            "zoneprof-x.zprof",
            "notes.txt",
        ] {
            std::fs::write(d.path().join(name), b"").expect("write");
        }
        prune(d.path(), 2).expect("prune");
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "notes.txt",
                "zoneprof-100.zprof",
                "zoneprof-2000.zprof",
                "zoneprof-x.zprof"
            ]
        );
    }
}
