//! Host programs copied into the guest with the shared libraries they load.
//!
//! The tap workload needs iproute2's `ip` (`ip netns add`, `ip -n NS -batch -`); busybox's
//! `ip` has no netns support. Debian's `ip` is dynamically linked, so the guest gets the
//! binary, every library `ldd` resolves (at the same paths, which Debian's loader searches
//! without an ld.so.cache: /lib/x86_64-linux-gnu is a built-in system directory) and the
//! dynamic loader at its `PT_INTERP` path.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use super::GuestFile;
use crate::cmd::{Cmd, describe};

/// Where the guest finds iproute2's `ip`: first on the init script's PATH, ahead of
/// busybox's `/sbin/ip` applet.
pub const GUEST_IP: &str = "/usr/sbin/ip";

/// Host locations of iproute2's `ip`, in the order tried.
const HOST_IP: &[&str] = &["/usr/bin/ip", "/sbin/ip", "/usr/sbin/ip", "/bin/ip"];

/// One object `ldd` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LddEntry {
    /// The name the binary asks for (`libbpf.so.1`), or the loader's path.
    pub name: String,
    /// Where it was found on the host.
    pub path: PathBuf,
}

/// Parses `ldd` output: `name => /path (0x…)` and the loader's `/path (0x…)` lines; the
/// vDSO (no file) is skipped. A `name => not found` line is an error naming the library.
pub fn parse_ldd(text: &str) -> Result<Vec<LddEntry>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        let (name, rest) = match line.split_once("=>") {
            Some((n, r)) => (n.trim(), r.trim()),
            None => ("", line),
        };
        if rest.starts_with("not found") {
            bail!("ldd: {name} not found");
        }
        let path = rest.split_whitespace().next().unwrap_or("");
        if !path.starts_with('/') {
            // linux-vdso.so.1 (0x…), or `name =>  (0x…)`: nothing to copy.
            continue;
        }
        out.push(LddEntry {
            name: if name.is_empty() { path } else { name }.to_owned(),
            path: PathBuf::from(path),
        });
    }
    Ok(out)
}

/// The first existing host `ip` that is iproute2's (not a busybox link).
pub fn host_ip() -> Result<PathBuf> {
    for p in HOST_IP {
        let path = Path::new(p);
        let Ok(canon) = path.canonicalize() else {
            continue;
        };
        if canon.file_name().is_some_and(|n| n == "busybox") {
            continue;
        }
        return Ok(path.to_path_buf());
    }
    bail!(
        "iproute2's ip is not installed (looked at {}); run `cargo xtask setup` \
         (apt-get install iproute2)",
        HOST_IP.join(", ")
    )
}

/// Guest files for `host` placed at `guest`, plus every library and the loader `ldd` lists.
pub fn with_libraries(host: &Path, guest: &str) -> Result<Vec<GuestFile>> {
    let cmd = Cmd::new("ldd").arg(host);
    let shown = cmd.shown().to_owned();
    let out = cmd
        .capture()?
        .ok_or_else(|| anyhow!("`{shown}`: ldd not found (libc-bin)"))?;
    let mut files = vec![GuestFile::from_host(host, guest, 0o755)?];
    if !out.status.success() {
        // ldd fails for static binaries ("not a dynamic executable"): nothing to add.
        if out.stderr.contains("not a dynamic executable")
            || out.stdout.contains("not a dynamic executable")
        {
            return Ok(files);
        }
        bail!(
            "`{shown}` failed ({}): {}",
            describe(out.status),
            out.stderr.trim()
        );
    }
    let entries = parse_ldd(&out.stdout).with_context(|| format!("`{shown}`"))?;
    if !entries.iter().any(|e| is_loader(&e.path)) {
        bail!("`{shown}` lists no dynamic loader (ld-linux*.so*)");
    }
    for e in entries {
        let guest_path = e.path.to_string_lossy().into_owned();
        // fs::read follows symlinks: the guest gets a plain file at the path asked for.
        files.push(
            GuestFile::from_host(&e.path, &guest_path, 0o755)
                .with_context(|| format!("{} needs {}", host.display(), e.name))?,
        );
    }
    Ok(files)
}

fn is_loader(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("ld-linux") && n.contains(".so"))
}

/// iproute2's `ip` at [`GUEST_IP`] with its libraries.
pub fn iproute2() -> Result<Vec<GuestFile>> {
    let host = host_ip()?;
    with_libraries(&host, GUEST_IP)
        .with_context(|| format!("bringing {} into the guest", host.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd6b5f2000)\n\
                    \tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f0e1a0a7000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e19e7e000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1a20a000)\n";
        let e = parse_ldd(text).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "libbpf.so.1");
        assert_eq!(e[0].path, Path::new("/lib/x86_64-linux-gnu/libbpf.so.1"));
        assert_eq!(e[2].name, "/lib64/ld-linux-x86-64.so.2");
        assert!(is_loader(&e[2].path));
        assert!(!is_loader(&e[1].path));
    }

    #[test]
    fn missing_library_is_an_error_naming_it() {
        let e = parse_ldd("\tlibmnl.so.0 => not found\n").unwrap_err();
        assert_eq!(e.to_string(), "ldd: libmnl.so.0 not found");
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }
}
