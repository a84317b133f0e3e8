//! `zoneprof export`: a recording in the formats other tools read, one module per format:
//! pprof (`go tool pprof`, Grafana Pyroscope, Parca), speedscope's JSON, folded stacks (as
//! `flamegraph --folded`) and CSV tables for spreadsheets and scripts. The numbers come from
//! the model layer (`model::analysis`, `model::classify`) and the flamegraph folding, so
//! every export agrees with `report` and `flamegraph`. Every file is written atomically.
pub mod csv;
pub mod folded;
pub mod pprof;
pub mod speedscope;

use std::path::{Path, PathBuf};

use crate::output::flamegraph::FlameError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Nothing to export; the message says what is missing and why.
    #[error("{0}")]
    NoData(String),
    /// An option the format cannot honour (the CLI refuses these before reading).
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Flame(#[from] FlameError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// gzip-compressed profile.proto (go tool pprof, Pyroscope, Parca): lock waits with
    /// `contentions/count` and `delay/nanoseconds`, like Go's mutex profile.
    Pprof,
    /// speedscope's JSON file format: one profile per flamegraph view.
    Speedscope,
    /// Folded stacks, exactly as `zoneprof flamegraph --folded`.
    Folded,
    /// CSV tables (per CPU, SKB matrix, page matrix, SKB free sites) in the directory OUT.
    Csv,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pprof => "pprof",
            Format::Speedscope => "speedscope",
            Format::Folded => "folded",
            Format::Csv => "csv",
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    crate::output::atomic::write(path, bytes).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
