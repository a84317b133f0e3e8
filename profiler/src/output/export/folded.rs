//! Folded stacks: the very text `zoneprof flamegraph --folded` prints (the same
//! `flamegraph::build`), so `export --format folded` and the flamegraph never disagree.
use std::path::Path;

use super::{ExportError, write_file};
use crate::{
    model::recording::Recording,
    output::flamegraph::{self as fg, FoldOptions, View},
};

/// `frame;frame;… count` lines of `view`, root first; an error when the view is empty.
pub fn to_text(
    rec: &Recording,
    view: View,
    opts: &FoldOptions,
    source: &str,
) -> Result<String, ExportError> {
    Ok(fg::build(rec, view, opts, source)?.folded.to_text())
}

/// Writes the folded stacks of `view` to `path`; returns the stacks' total.
pub fn write(
    rec: &Recording,
    view: View,
    opts: &FoldOptions,
    source: &str,
    path: &Path,
) -> Result<u64, ExportError> {
    let flame = fg::build(rec, view, opts, source)?;
    write_file(path, flame.folded.to_text().as_bytes())?;
    Ok(flame.folded.total())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recording::sample;

    #[test]
    fn folded_export_is_the_flamegraph_text() {
        let rec = sample();
        let opts = FoldOptions::default();
        let text = to_text(&rec, View::ZoneWait, &opts, "t").expect("folded");
        let flame = fg::build(&rec, View::ZoneWait, &opts, "t").expect("build");
        assert_eq!(text, flame.folded.to_text());
        // alloc 6 ms + free 12 ms + the stackless wait on the proven zone address.
        assert_eq!(flame.folded.total(), 18_500_000);
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("w.folded");
        let total = write(&rec, View::ZoneWait, &opts, "t", &p).expect("write");
        assert_eq!(total, 18_500_000);
        assert_eq!(std::fs::read_to_string(&p).expect("read"), text);
    }

    #[test]
    fn an_empty_view_is_an_error_and_writes_nothing() {
        let rec = sample();
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("skb.folded");
        let err = write(&rec, View::SkbFree, &FoldOptions::default(), "t", &p).unwrap_err();
        assert!(err.to_string().contains("no SKB frees"), "{err}");
        assert!(!p.exists());
    }
}
