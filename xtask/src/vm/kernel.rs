//! Kernels to boot: Debian cloud kernels fetched with `apt-get download` and cached, or a
//! local bzImage (checked against a `SHA256SUMS` next to it when there is one).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::cmd::{Cmd, describe};

/// Stamp written once a package is fully extracted; its absence means "fetch again".
const COMPLETE: &str = ".zpvm-complete";

/// A kernel image plus, for packaged kernels, its module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Short name used in tables and log file names ("6.12", "6.12.117-tun-defer").
    pub label: String,
    pub image: PathBuf,
    /// `lib/modules/<release>` of a packaged kernel; `None` for a bzImage (built-in only).
    pub modules: Option<PathBuf>,
    /// Where it came from, for the report ("Debian linux-image-… (cached)").
    pub origin: String,
}

/// Debian kernel series `vm-test` knows how to fetch.
pub const DEBIAN_SERIES: &[&str] = &["6.1", "6.12"];

/// Fetches (or finds cached) the newest Debian cloud kernel of `series` ("6.1", "6.12")
/// into `cache` (`<target>/vm/kernels`).
pub fn debian(series: &str, cache: &Path) -> Result<Kernel> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let (pkg, resolved) = match newest_package(series) {
        Ok(pkg) => (pkg, true),
        Err(e) => match newest_cached(series, cache)? {
            Some(cached) => {
                println!("    apt-cache could not resolve {series} ({e:#}); using cached {cached}");
                (cached, false)
            }
            None => {
                return Err(e.context(format!(
                    "no cached Debian {series} kernel in {} either",
                    cache.display()
                )));
            }
        },
    };
    let dir = cache.join(&pkg);
    let root = dir.join("root");
    let cached = root.join(COMPLETE).is_file();
    if !cached {
        fetch_and_extract(&pkg, &dir, &root)?;
    }
    let (image, modules) = locate(&root).with_context(|| format!("in {}", root.display()))?;
    let version = fs::read_to_string(root.join(COMPLETE)).unwrap_or_default();
    Ok(Kernel {
        label: series.to_owned(),
        image,
        modules: Some(modules),
        origin: format!(
            "Debian {pkg} {}{}",
            version.trim(),
            match (cached, resolved) {
                (true, true) => " (cached)",
                (true, false) => " (cached; apt-cache unavailable)",
                _ => " (downloaded)",
            }
        ),
    })
}

/// The newest `linux-image-<series>.*-cloud-amd64` package apt knows (no network access:
/// it reads apt's package lists).
fn newest_package(series: &str) -> Result<String> {
    let pattern = format!("^linux-image-{}\\.", series.replace('.', "\\."));
    let cmd = Cmd::new("apt-cache").args(["search", "--names-only", &pattern]);
    let shown = cmd.shown().to_owned();
    let out = cmd
        .capture()?
        .ok_or_else(|| anyhow!("`{shown}`: apt-cache not found"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            describe(out.status),
            out.stderr.trim()
        );
    }
    let names = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    pick_newest(series, &names).ok_or_else(|| {
        anyhow!(
            "`{shown}` lists no linux-image-{series}.*-cloud-amd64 package (run apt-get update?)"
        )
    })
}

/// Of package names, the newest signed cloud image of `series` (numeric comparison of the
/// name's number groups: 6.1.0-56 > 6.1.0-9, 6.12.117 > 6.12.99).
pub fn pick_newest(series: &str, names: &[String]) -> Option<String> {
    let prefix = format!("linux-image-{series}.");
    names
        .iter()
        .filter(|n| n.starts_with(&prefix) && n.ends_with("-cloud-amd64"))
        .max_by_key(|n| number_groups(n))
        .cloned()
}

fn number_groups(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|g| g.parse().ok())
        .collect()
}

fn newest_cached(series: &str, cache: &Path) -> Result<Option<String>> {
    let entries = fs::read_dir(cache).with_context(|| format!("reading {}", cache.display()))?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("root").join(COMPLETE).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    Ok(pick_newest(series, &names))
}

fn fetch_and_extract(pkg: &str, dir: &Path, root: &Path) -> Result<()> {
    println!("==> vm: fetching Debian package {pkg}");
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing stale {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Cmd::new("apt-get")
        .args(["download", pkg])
        .current_dir(dir)
        .run()
        .with_context(|| format!("downloading {pkg} (network and apt lists needed once)"))?;
    let deb = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| anyhow!("`apt-get download {pkg}` left no .deb in {}", dir.display()))?;
    let version = deb
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').nth(1))
        .unwrap_or("")
        .to_owned();
    let tmp = dir.join("root.tmp");
    Cmd::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp).run()?;
    fs::rename(&tmp, root)
        .with_context(|| format!("renaming {} to {}", tmp.display(), root.display()))?;
    fs::write(root.join(COMPLETE), format!("{version}\n"))
        .with_context(|| format!("writing {}", root.join(COMPLETE).display()))?;
    // The extracted tree is the cache; the .deb is not needed again.
    fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
    Ok(())
}

/// `boot/vmlinuz-<release>` and `lib/modules/<release>` of an extracted package.
fn locate(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let mods = root.join("lib/modules");
    let release = fs::read_dir(&mods)
        .with_context(|| format!("reading {}", mods.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| root.join("boot").join(format!("vmlinuz-{n}")).is_file())
        .ok_or_else(|| anyhow!("no boot/vmlinuz-<release> matching lib/modules/<release>"))?;
    Ok((
        root.join("boot").join(format!("vmlinuz-{release}")),
        mods.join(release),
    ))
}

/// A local bzImage. When the directory holds a `SHA256SUMS` listing the file, the image
/// must match it; the label is the file name without a leading `bzImage-`.
pub fn bzimage(path: &Path) -> Result<Kernel> {
    let meta = fs::metadata(path).with_context(|| format!("bzImage {}", path.display()))?;
    if !meta.is_file() {
        bail!("bzImage {} is not a file", path.display());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("bzImage path {} has no file name", path.display()))?;
    let label = name.strip_prefix("bzImage-").unwrap_or(name).to_owned();
    let sums = path.with_file_name("SHA256SUMS");
    let check = if sums.is_file() {
        let text =
            fs::read_to_string(&sums).with_context(|| format!("reading {}", sums.display()))?;
        match expected_sha256(&text, name) {
            Some(want) => {
                let got = sha256(path)?;
                if got != want {
                    bail!(
                        "{} has SHA-256 {got}, but {} says {want}",
                        path.display(),
                        sums.display()
                    );
                }
                "SHA-256 verified"
            }
            None => "not listed in SHA256SUMS",
        }
    } else {
        "no SHA256SUMS to check"
    };
    Ok(Kernel {
        label,
        image: path.to_path_buf(),
        modules: None,
        origin: format!("local {} ({check})", path.display()),
    })
}

/// The hash `sha256sum`-format text gives for `name` (`<hex>  <name>` or `<hex> *<name>`).
pub fn expected_sha256(sums: &str, name: &str) -> Option<String> {
    sums.lines().find_map(|l| {
        let (hash, file) = l.trim().split_once(char::is_whitespace)?;
        let file = file.trim_start();
        let file = file.strip_prefix('*').unwrap_or(file);
        (file == name && hash.len() == 64).then(|| hash.to_ascii_lowercase())
    })
}

fn sha256(path: &Path) -> Result<String> {
    let cmd = Cmd::new("sha256sum").arg(path);
    let shown = cmd.shown().to_owned();
    let out = cmd
        .capture()?
        .ok_or_else(|| anyhow!("`{shown}`: sha256sum not found"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            describe(out.status),
            out.stderr.trim()
        );
    }
    out.stdout
        .split_whitespace()
        .next()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| anyhow!("`{shown}` printed nothing"))
}

/// A module to load in the guest: its name and its uncompressed `.ko` bytes.
pub struct Module {
    pub name: String,
    pub ko: Vec<u8>,
}

/// Resolves `wanted` modules (and what they depend on, dependencies first) in a packaged
/// kernel's module tree. Built-in modules (`modules.builtin`) need nothing and are skipped.
pub fn modules(tree: &Path, wanted: &[String]) -> Result<Vec<Module>> {
    let builtin = fs::read_to_string(tree.join("modules.builtin")).unwrap_or_default();
    let builtin: Vec<String> = builtin.lines().filter_map(module_name).collect();
    let mut index = Vec::new();
    walk(&tree.join("kernel"), &mut index)?;
    let mut out: Vec<Module> = Vec::new();
    for name in wanted {
        add_module(&canonical(name), &builtin, &index, &mut out, 0)?;
    }
    Ok(out)
}

fn add_module(
    name: &str,
    builtin: &[String],
    index: &[PathBuf],
    out: &mut Vec<Module>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        bail!("module dependency chain too deep at {name}");
    }
    if out.iter().any(|m| m.name == name) || builtin.iter().any(|b| b == name) {
        return Ok(());
    }
    let path = index
        .iter()
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).and_then(module_name) == Some(name.to_owned())
        })
        .ok_or_else(|| anyhow!("module {name} is neither built in nor in the module tree"))?;
    let ko = read_module(path)?;
    for dep in module_depends(&ko) {
        add_module(&canonical(&dep), builtin, index, out, depth + 1)?;
    }
    out.push(Module {
        name: name.to_owned(),
        ko,
    });
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out)?;
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(module_name)
            .is_some()
        {
            out.push(p);
        }
    }
    Ok(())
}

/// `drivers/net/tun.ko.xz` -> `tun`; `-` and `_` are the same in module names.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(canonical(stem))
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("reading {}", path.display()));
    };
    let shown = format!("{tool} -dc {}", path.display());
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            describe(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The `depends=` list of a module's `.modinfo` (NUL-separated `key=value` strings).
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"depends=";
    let mut from = 0;
    while let Some(at) = find(&ko[from..], KEY).map(|i| i + from) {
        from = at + 1;
        if at > 0 && ko[at - 1] != 0 {
            continue;
        }
        let value = &ko[at + KEY.len()..];
        let Some(end) = value.iter().position(|&b| b == 0) else {
            continue;
        };
        let value = &value[..end];
        if value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_-,".contains(b))
        {
            return String::from_utf8_lossy(value)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
    }
    Vec::new()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_newest_cloud_image_of_the_series() {
        let list = names(&[
            "linux-image-6.1.0-9-cloud-amd64",
            "linux-image-6.1.0-56-cloud-amd64",
            "linux-image-6.1.0-56-cloud-amd64-dbg",
            "linux-image-6.1.0-60-cloud-amd64-unsigned",
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.12.99+deb12-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12-cloud-amd64",
        ]);
        assert_eq!(
            pick_newest("6.1", &list).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(
            pick_newest("6.12", &list).as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
        assert_eq!(pick_newest("6.6", &list), None);
    }

    #[test]
    fn sha256sums_lookup() {
        let sums = "5cb1047ebcff50054d2208fd19b0dc8167be25bb3fdc11c6d05fb7ae0d49650c  bzImage-a\n\
                    73465AC54146EEEEDC10E024B1990CAF0C37BFAFA64C265C759E3C5C58FE79C6 *bzImage-b\n";
        assert_eq!(
            expected_sha256(sums, "bzImage-a").as_deref(),
            Some("5cb1047ebcff50054d2208fd19b0dc8167be25bb3fdc11c6d05fb7ae0d49650c")
        );
        assert!(
            expected_sha256(sums, "bzImage-b")
                .unwrap()
                .starts_with("73465ac5")
        );
        assert_eq!(expected_sha256(sums, "bzImage"), None);
    }

    #[test]
    fn module_names_and_depends() {
        assert_eq!(
            module_name("kernel/drivers/net/tun.ko.xz").as_deref(),
            Some("tun")
        );
        assert_eq!(module_name("nf-nat.ko").as_deref(), Some("nf_nat"));
        assert_eq!(module_name("modules.order"), None);
        let ko = b"\x7fELF..\0license=GPL\0depends=\0name=tun\0";
        assert!(module_depends(ko).is_empty());
        let ko = b"xdepends=bogus\0..\0alias=x\0depends=nf_conntrack,libcrc32c\0name=nf_nat\0";
        assert_eq!(module_depends(ko), ["nf_conntrack", "libcrc32c"]);
        assert!(module_depends(b"no modinfo here").is_empty());
    }
}
