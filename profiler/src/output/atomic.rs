//! Atomic, private file writes: every file zoneprof writes (recordings, reports, HTML, SVG,
//! folded stacks) goes through here.
//!
//! - Private: created mode 0600 (the umask can only narrow it). Recordings and reports hold
//!   kernel addresses, which defeat KASLR for anyone who can read them; `zoneprof redact`
//!   makes a copy fit to share.
//! - Atomic: written in full and fsynced before it replaces `path` by rename, so no reader
//!   (a report, a browser, a CI upload) sees half a file, a failed write (disk full,
//!   read-only) leaves the previous file at `path` as it was, and no debris is left.
//! - Unnamed while written: an `O_TMPFILE` inode in the target's directory, given a name
//!   only once complete, so even SIGKILL mid-write leaves nothing behind. Filesystems without
//!   `O_TMPFILE` get a named temporary file (`.NAME.tmp.PID`), created exclusively so that a
//!   link planted at that name in a shared directory is never followed.
use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// Mode of every file zoneprof creates.
pub const MODE: u32 = 0o600;

/// Creates the file unnamed, lets `fill` write it, syncs it and renames it to `path`.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    match open_unnamed(&dir) {
        Some(Ok(mut f)) => {
            fill(&mut f)?;
            f.sync_all()?;
            publish_unnamed(&f, &dir, &name, path)
        }
        Some(Err(e)) => Err(e),
        None => write_named(&dir, &name, path, fill),
    }
}

/// Whether a file can be created beside `path` (directory exists, writable, not on a
/// read-only filesystem): checked before a long recording, so that it fails at once rather
/// than at the end. Leaves nothing behind. A full disk shows only when the file is written.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match open_unnamed(&dir) {
        Some(r) => r.map(drop),
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".into());
            write_named_probe(&dir, &name)
        }
    }
}

/// `check_writable` where there is no `O_TMPFILE`: create and remove a temporary file.
fn write_named_probe(dir: &Path, name: &str) -> io::Result<()> {
    let tmp = temp_name(dir, name, 99);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&tmp)?;
    std::fs::remove_file(&tmp)
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |f| io::Write::write_all(f, bytes))
}

/// An `O_TMPFILE` file in `dir`; None when this filesystem or kernel cannot make one, or
/// `/proc` (needed to give it a name) is missing: then a named temporary file is used.
fn open_unnamed(dir: &Path) -> Option<io::Result<File>> {
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let r = OpenOptions::new()
        .write(true)
        .mode(MODE)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match r {
        Ok(f) => Some(Ok(f)),
        // EOPNOTSUPP: the filesystem has no O_TMPFILE; EISDIR/EINVAL: a kernel that does
        // not know the flag (it then reads as O_DIRECTORY).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            None
        }
        Err(e) => Some(Err(e)),
    }
}

/// Links the complete unnamed file at a temporary name, then renames it over `path` (a
/// link cannot replace an existing file). Only a kill between the two calls can leave the
/// temporary name behind.
fn publish_unnamed(f: &File, dir: &Path, name: &str, path: &Path) -> io::Result<()> {
    use std::os::{fd::AsRawFd, unix::ffi::OsStrExt};
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(io::Error::other)?;
    for attempt in 0..16 {
        let tmp = temp_name(dir, name, attempt);
        let to = std::ffi::CString::new(tmp.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::AlreadyExists {
                continue; // debris of a killed run with our pid: take another name
            }
            return Err(e);
        }
        return rename_or_remove(&tmp, path);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free temporary name beside {}", path.display()),
    ))
}

/// Fallback for filesystems without `O_TMPFILE`: an exclusively created temporary file.
fn write_named(
    dir: &Path,
    name: &str,
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let mut attempt = 0;
    let (tmp, mut f) = loop {
        let tmp = temp_name(dir, name, attempt);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        fill(&mut f)?;
        f.sync_all()
    })();
    match result {
        Ok(()) => rename_or_remove(&tmp, path),
        Err(e) => {
            std::fs::remove_file(&tmp).ok();
            Err(e)
        }
    }
}

fn temp_name(dir: &Path, name: &str, attempt: u32) -> PathBuf {
    let pid = std::process::id();
    match attempt {
        0 => dir.join(format!(".{name}.tmp.{pid}")),
        n => dir.join(format!(".{name}.tmp.{pid}.{n}")),
    }
}

fn rename_or_remove(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path).inspect_err(|_| {
        std::fs::remove_file(tmp).ok();
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

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

    #[test]
    fn files_are_private_whatever_was_there_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("r.zprof");
        write(&p, b"one").expect("write");
        assert_eq!(mode(&p), 0o600);
        // Replacing a world-readable file leaves a private one.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write(&p, b"two").expect("write");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
    }

    #[test]
    fn named_fallback_is_private_and_never_follows_a_planted_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").expect("write");
        let p = dir.path().join("out.svg");
        // A symlink planted at the first temporary name, as another user could in /tmp.
        std::os::unix::fs::symlink(&victim, temp_name(dir.path(), "out.svg", 0)).expect("ln");
        write_named(dir.path(), "out.svg", &p, |f| {
            io::Write::write_all(f, b"svg")
        })
        .expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        assert_eq!(std::fs::read(&p).expect("read"), b"svg");
        assert_eq!(mode(&p), 0o600);
        // A failed fill leaves neither a temporary file nor a changed target.
        let before: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert!(write_named(dir.path(), "out.svg", &p, |_| Err(io::Error::other("x"))).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            before.len()
        );
        assert_eq!(std::fs::read(&p).expect("read"), b"svg");
    }

    #[test]
    fn writability_is_checked_without_leaving_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_writable(&dir.path().join("r.zprof")).expect("writable");
        write_named_probe(dir.path(), "r.zprof").expect("named probe");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        let missing = dir.path().join("no/such/dir/r.zprof");
        let e = check_writable(&missing).expect_err("no directory");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn unnamed_publish_skips_a_taken_temporary_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("rec.zprof");
        std::fs::write(temp_name(dir.path(), "rec.zprof", 0), b"debris").expect("write");
        write(&p, b"data").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"data");
        // Only the target and the older debris: the second temporary name was renamed away.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
    }
}
