//! A minimal writer for the "newc" cpio format (`070701`, what the kernel unpacks as an
//! initramfs), so the archive can be built without root: device nodes and file owners are
//! just header fields.

use std::collections::BTreeSet;
use std::io::{self, Write};

use anyhow::{Result, bail};

/// File type bits of `st_mode`.
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

const TRAILER: &str = "TRAILER!!!";

/// Writes newc entries to `W`. Paths are archive paths without a leading `/`
/// (`bin/busybox`); parent directories must be added before their children (the kernel
/// does not create them), which [`Writer::file`] and friends check.
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    dirs: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
            dirs: BTreeSet::new(),
            names: BTreeSet::new(),
        }
    }

    /// A directory; its parents are added first when missing (mode 0755).
    pub fn dir_all(&mut self, path: &str) -> Result<()> {
        let path = normalize(path)?;
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !self.dirs.contains(&prefix) {
                self.entry(&prefix, S_IFDIR | 0o755, 0, 0, &[])?;
                self.dirs.insert(prefix.clone());
            }
        }
        Ok(())
    }

    /// A regular file with permission bits `perm` (e.g. 0o755); parents are created.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        let path = self.prepare(path)?;
        self.entry(&path, S_IFREG | (perm & 0o7777), 0, 0, data)
    }

    /// A symbolic link `path` -> `target`; parents are created.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let path = self.prepare(path)?;
        self.entry(&path, S_IFLNK | 0o777, 0, 0, target.as_bytes())
    }

    /// A character device node (e.g. `dev/console`, 5, 1); parents are created.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        let path = self.prepare(path)?;
        self.entry(&path, S_IFCHR | (perm & 0o7777), major, minor, &[])
    }

    /// Writes the trailer and padding; returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.entry(TRAILER, 0, 0, 0, &[])?;
        // Pad the archive to a 512-byte multiple, as cpio(1) does; the kernel ignores it.
        let pad = (512 - self.written % 512) % 512;
        self.write(&vec![0u8; pad as usize])?;
        Ok(self.out)
    }

    fn prepare(&mut self, path: &str) -> Result<String> {
        let path = normalize(path)?;
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir_all(parent)?;
        }
        Ok(path)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        rmajor: u32,
        rminor: u32,
        data: &[u8],
    ) -> Result<()> {
        if name != TRAILER && !self.names.insert(name.to_owned()) {
            bail!("cpio: {name} added twice");
        }
        let Ok(size) = u32::try_from(data.len()) else {
            bail!("cpio: {name} is too large for newc ({} bytes)", data.len());
        };
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        let name_size = name.len() + 1;
        let header = header(&[
            ino,
            mode,
            0, // uid
            0, // gid
            if name == TRAILER { 1 } else { nlink },
            0, // mtime: fixed, so the archive is reproducible
            size,
            0, // dev major
            0, // dev minor
            rmajor,
            rminor,
            name_size as u32,
            0, // check
        ]);
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad4()?;
        self.write(data)?;
        self.pad4()?;
        Ok(())
    }

    fn pad4(&mut self) -> Result<()> {
        let pad = (4 - self.written % 4) % 4;
        self.write(&[0u8; 3][..pad as usize])
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e: io::Error| anyhow::anyhow!("cpio: write failed: {e}"))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// `070701` followed by the 13 fields as 8 upper-case hex digits each.
fn header(fields: &[u32; 13]) -> String {
    let mut s = String::with_capacity(110);
    s.push_str("070701");
    for f in fields {
        s.push_str(&format!("{f:08X}"));
    }
    s
}

/// Strips leading `/` and `./`; rejects empty names, `..`, empty components and NULs.
fn normalize(path: &str) -> Result<String> {
    let p = path.trim_start_matches('/');
    let p = p.strip_prefix("./").unwrap_or(p);
    if p.is_empty()
        || p.contains('\0')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("cpio: bad archive path {path:?}");
    }
    Ok(p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed newc entry: (name, mode, rdev major, rdev minor, data).
    type Entry = (String, u32, u32, u32, Vec<u8>);

    /// A small independent newc reader for checking the writer.
    fn parse(mut b: &[u8]) -> Vec<Entry> {
        let total = b.len();
        let mut out = Vec::new();
        loop {
            let off = total - b.len();
            assert_eq!(off % 4, 0, "entry not 4-aligned");
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, rmaj, rmin, namesize) =
                (field(1), field(6), field(9), field(10), field(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&b[110..name_end - 1])
                .unwrap()
                .to_owned();
            assert_eq!(b[name_end - 1], 0);
            let data_start = (off + name_end).div_ceil(4) * 4 - off;
            let data = b[data_start..data_start + size as usize].to_vec();
            let next = (off + data_start + size as usize).div_ceil(4) * 4 - off;
            b = &b[next..];
            if name == TRAILER {
                assert!(b.iter().all(|&x| x == 0));
                assert_eq!(total % 512, 0);
                return out;
            }
            out.push((name, mode, rmaj, rmin, data));
        }
    }

    #[test]
    fn writes_parseable_newc_with_parents_first() {
        let mut w = Writer::new(Vec::new());
        w.file("/bin/busybox", 0o755, b"ELF...").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        w.dir_all("lib/modules/x").unwrap();
        let bytes = w.finish().unwrap();
        let entries = parse(&bytes);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/x"
            ]
        );
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(entries[1].1, S_IFREG | 0o755);
        assert_eq!(entries[1].4, b"ELF...");
        assert_eq!(entries[2].1, S_IFLNK | 0o777);
        assert_eq!(entries[2].4, b"busybox");
        assert_eq!(
            (entries[4].1, entries[4].2, entries[4].3),
            (S_IFCHR | 0o600, 5, 1)
        );
    }

    #[test]
    fn header_layout() {
        let h = header(&[1, S_IFREG | 0o644, 0, 0, 1, 0, 5, 0, 0, 0, 0, 6, 0]);
        assert_eq!(h.len(), 110);
        assert!(h.starts_with("07070100000001000081A4"));
    }

    #[test]
    fn rejects_bad_paths_and_duplicates() {
        let mut w = Writer::new(Vec::new());
        assert!(w.file("", 0o644, b"").is_err());
        assert!(w.file("a/../b", 0o644, b"").is_err());
        assert!(w.file("a//b", 0o644, b"").is_err());
        w.file("a/b", 0o644, b"x").unwrap();
        let err = w.file("/a/b", 0o644, b"y").unwrap_err().to_string();
        assert_eq!(err, "cpio: a/b added twice");
        // A directory may be requested again: it is written once.
        w.dir_all("a").unwrap();
        let entries = parse(&w.finish().unwrap());
        assert_eq!(entries.len(), 2);
    }
}
