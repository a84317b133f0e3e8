//! Atomic file writes: a temporary file beside the target, fsync, then rename, so no reader
//! (a report, a browser, a CI artifact upload) ever sees half a file, and a failed write
//! leaves no debris.
use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
};

/// Creates the temporary file, lets `fill` write it, syncs it and renames it to `path`.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |f| io::Write::write_all(f, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_leaves_no_temp_file_on_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.txt");
        write(&p, b"hello").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"hello");
        let err = write_with(&p, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        // The old content survives a failed write, and no temp file is left.
        assert_eq!(std::fs::read(&p).expect("read"), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
