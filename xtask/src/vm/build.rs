//! `cargo xtask vm-kernel`: builds the two 6.12.117 test kernels `vm-compare` boots when
//! `../shared/kernels` is not there: Debian's `linux-source-6.12` with the committed
//! `xtask/kernel/config-6.12.117` (`make olddefconfig`), once as released and once with
//! `xtask/kernel/tun-defer.patch` (`tun_do_read` frees with `skb_attempt_defer_free`).
//! The images, a `SHA256SUMS`, the config and the patch are cached in
//! `<target>/vm/kernels/built-6.12.117/`.
//!
//! Cost on 2 cores: about 1-2 min to unpack the source, about 15 min for the first
//! `make bzImage`, about 1 min for the patched rebuild (only tun.o and the link).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};

use super::Dirs;
use crate::cmd::{Cmd, describe, find_in_path};
use crate::setup;

/// The kernel release the committed config is for.
pub const VERSION: &str = "6.12.117";
/// Debian package with the source tarball.
pub const SOURCE_PKG: &str = "linux-source-6.12";
/// Where that package puts the tarball.
pub const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
/// The directory the tarball unpacks to.
const SOURCE_DIR: &str = "linux-source-6.12";
/// The two variants, in build order; images are `bzImage-<VERSION>-<variant>`.
pub const VARIANTS: [&str; 2] = ["unpatched", "tun-defer"];

/// The config of `../shared/kernels` (see its README for how it was made).
pub const CONFIG: &str = include_str!("../../kernel/config-6.12.117");
/// The tun part of the seed patch.
pub const PATCH: &str = include_str!("../../kernel/tun-defer.patch");

/// Options the VM tasks need; `make olddefconfig` must leave every one of them `=y`.
pub const REQUIRED_OPTIONS: &[&str] = &[
    "BPF_SYSCALL",
    "BPF_JIT",
    "BPF_EVENTS",
    "DEBUG_INFO_BTF",
    "KPROBES",
    "KPROBE_EVENTS",
    "FTRACE",
    "FUNCTION_TRACER",
    "DYNAMIC_FTRACE",
    "TUN",
    "NET_NS",
    "VETH",
    "DEVTMPFS",
    "BLK_DEV_INITRD",
    "RD_GZIP",
    "SERIAL_8250",
    "SERIAL_8250_CONSOLE",
];

/// (program, Debian package) needed to build a kernel.
const BUILD_TOOLS: &[(&str, &str)] = &[
    ("gcc", "gcc"),
    ("make", "make"),
    ("bc", "bc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("perl", "perl"),
    ("pahole", "dwarves"),
    ("xz", "xz-utils"),
    ("patch", "patch"),
    ("tar", "tar"),
];
/// (header, Debian package).
const BUILD_HEADERS: &[(&str, &str)] = &[
    ("/usr/include/libelf.h", "libelf-dev"),
    ("/usr/include/openssl/ssl.h", "libssl-dev"),
];

pub fn image_name(variant: &str) -> String {
    format!("bzImage-{VERSION}-{variant}")
}

/// Where built kernels are cached.
pub fn cache_dir(dirs: &Dirs) -> PathBuf {
    dirs.kernels().join(format!("built-{VERSION}"))
}

/// The cached images (unpatched, tun-defer) when both exist and `SHA256SUMS` lists them.
pub fn cached(dirs: &Dirs) -> Option<[PathBuf; 2]> {
    let dir = cache_dir(dirs);
    let sums = fs::read_to_string(dir.join("SHA256SUMS")).ok()?;
    let [a, b] = VARIANTS.map(|v| dir.join(image_name(v)));
    let listed = |p: &Path| {
        p.is_file()
            && p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| super::kernel::expected_sha256(&sums, n))
                .is_some()
    };
    (listed(&a) && listed(&b)).then_some([a, b])
}

pub struct Opts {
    /// Stop after unpacking, `make olddefconfig`, the option check and `patch --dry-run`.
    pub prepare_only: bool,
    /// `make -j`; default: the CPUs available.
    pub jobs: Option<usize>,
}

/// Packages missing for a kernel build (deduplicated, in table order).
fn missing_packages() -> Vec<&'static str> {
    let mut pkgs: Vec<&'static str> = BUILD_TOOLS
        .iter()
        .filter(|(tool, _)| find_in_path(tool).is_none())
        .map(|(_, p)| *p)
        .chain(
            BUILD_HEADERS
                .iter()
                .filter(|(h, _)| !Path::new(h).is_file())
                .map(|(_, p)| *p),
        )
        .collect();
    if !Path::new(SOURCE_TARBALL).is_file() {
        pkgs.push(SOURCE_PKG);
    }
    pkgs.dedup();
    pkgs
}

/// Installs what is missing (as root, with apt-get), or fails naming the command.
fn ensure_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        println!("    build tools and {SOURCE_TARBALL}: present");
        return Ok(());
    }
    let cmd = format!("apt-get install -y {}", missing.join(" "));
    if setup::effective_uid() != Some(0) || find_in_path("apt-get").is_none() {
        bail!(
            "a kernel build needs {}: run `{cmd}` as root",
            missing.join(", ")
        );
    }
    println!("==> vm-kernel: installing {}", missing.join(" "));
    Cmd::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .with_context(|| format!("installing the kernel build dependencies (`{cmd}`)"))?;
    if !Path::new(SOURCE_TARBALL).is_file() {
        bail!("{SOURCE_PKG} is installed but {SOURCE_TARBALL} is missing");
    }
    Ok(())
}

/// The Debian version of the source package ("6.12.117-1~deb12u1"), if dpkg knows it.
fn source_version() -> Option<String> {
    let out = Cmd::new("dpkg-query")
        .args(["-W", "-f=${Version}", SOURCE_PKG])
        .capture()
        .ok()??;
    out.status
        .success()
        .then(|| out.stdout.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from a kernel tree's top Makefile.
pub fn makefile_version(makefile: &str) -> Option<String> {
    let get = |key: &str| {
        makefile.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    Some(format!(
        "{}.{}.{}",
        get("VERSION")?,
        get("PATCHLEVEL")?,
        get("SUBLEVEL")?
    ))
}

/// Options of `REQUIRED_OPTIONS` that a `.config` does not set to `y`.
pub fn missing_options(config: &str) -> Vec<&'static str> {
    REQUIRED_OPTIONS
        .iter()
        .copied()
        .filter(|o| !config.lines().any(|l| l.trim() == format!("CONFIG_{o}=y")))
        .collect()
}

/// Unpacks the source once into `<work>/kernel-src/`; a marker records which tarball.
fn unpack(work: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(SOURCE_TARBALL).with_context(|| format!("reading {SOURCE_TARBALL}"))?;
    let stamp = format!(
        "{SOURCE_TARBALL} {} {:?}\n",
        meta.len(),
        meta.modified().ok()
    );
    let parent = work.join("kernel-src");
    let tree = parent.join(SOURCE_DIR);
    let marker = parent.join("unpacked-from");
    if fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str())
        && tree.join("Makefile").is_file()
    {
        println!("    source already unpacked in {}", tree.display());
        return Ok(tree);
    }
    if parent.exists() {
        fs::remove_dir_all(&parent)
            .with_context(|| format!("removing the stale {}", parent.display()))?;
    }
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let t = Instant::now();
    println!("==> vm-kernel: unpacking {SOURCE_TARBALL} (about 1-2 min)");
    Cmd::new("tar")
        .arg("-xJf")
        .arg(SOURCE_TARBALL)
        .arg("-C")
        .arg(&parent)
        .run()?;
    if !tree.join("Makefile").is_file() {
        bail!(
            "{SOURCE_TARBALL} did not unpack to {} (no Makefile there)",
            tree.display()
        );
    }
    fs::write(&marker, &stamp).with_context(|| format!("writing {}", marker.display()))?;
    println!("    unpacked in {:.0} s", t.elapsed().as_secs_f64());
    Ok(tree)
}

/// `patch -p1` in `tree` with the tun patch; `args` e.g. `--dry-run`, `-R`.
fn patch(tree: &Path, args: &[&str]) -> Cmd {
    Cmd::new("patch")
        .args(["-p1", "--batch", "-i", ".zpvm-tun-defer.patch"])
        .args(args)
        .current_dir(tree)
}

/// Whether the tun patch is applied in `tree` (it reverses cleanly).
fn is_patched(tree: &Path) -> Result<bool> {
    let out = Cmd::new("patch")
        .args(["-p1", "-R", "--dry-run", "--batch", "--silent", "-f"])
        .args(["-i", ".zpvm-tun-defer.patch"])
        .current_dir(tree)
        .capture()?
        .ok_or_else(|| anyhow!("patch not found"))?;
    Ok(out.status.success())
}

fn make(tree: &Path, jobs: usize, target: &str) -> Cmd {
    Cmd::new("make")
        .arg(format!("-j{jobs}"))
        .arg(target)
        .current_dir(tree)
}

/// `cargo xtask vm-kernel`.
pub fn vm_kernel(dirs: &Dirs, opts: &Opts) -> Result<Option<[PathBuf; 2]>> {
    let started = Instant::now();
    let jobs = opts.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    println!(
        "==> vm-kernel: {VERSION} unpatched and tun-defer from Debian's {SOURCE_PKG} \
         (a full build takes about 15 min on 2 cores, plus about 1 min for the patched rebuild; \
         {jobs} jobs here)"
    );
    ensure_packages()?;
    match source_version() {
        Some(v) => println!("    {SOURCE_PKG} {v}"),
        None => println!("    {SOURCE_PKG}: version unknown (dpkg-query)"),
    }
    let tree = unpack(&dirs.work())?;
    let makefile = fs::read_to_string(tree.join("Makefile"))
        .with_context(|| format!("reading {}/Makefile", tree.display()))?;
    let version = makefile_version(&makefile).ok_or_else(|| {
        anyhow!(
            "no VERSION/PATCHLEVEL/SUBLEVEL in {}/Makefile",
            tree.display()
        )
    })?;
    if version != VERSION {
        bail!(
            "{SOURCE_TARBALL} is Linux {version}, but the committed config and the images are \
             {VERSION}: install {SOURCE_PKG} 6.12.117-1~deb12u1 or update xtask/kernel/"
        );
    }
    println!("    source tree {} (Linux {version})", tree.display());
    fs::write(tree.join(".zpvm-tun-defer.patch"), PATCH)
        .with_context(|| format!("writing the patch into {}", tree.display()))?;
    // An interrupted earlier run may have left the patch applied.
    if is_patched(&tree)? {
        println!("    the tree has the tun patch applied (interrupted run?): reverting it");
        patch(&tree, &["-R"]).run()?;
    }

    println!("==> vm-kernel: config");
    fs::write(tree.join(".config"), CONFIG)
        .with_context(|| format!("writing {}/.config", tree.display()))?;
    make(&tree, 1, "olddefconfig").run()?;
    let config = fs::read_to_string(tree.join(".config"))
        .with_context(|| format!("reading {}/.config", tree.display()))?;
    let missing = missing_options(&config);
    if !missing.is_empty() {
        bail!(
            "after `make olddefconfig` these options are not =y: {} (DEBUG_INFO_BTF needs \
             pahole from dwarves; see {}/.config)",
            missing
                .iter()
                .map(|o| format!("CONFIG_{o}"))
                .collect::<Vec<_>>()
                .join(", "),
            tree.display()
        );
    }
    println!(
        "    config applied; all {} required options are =y",
        REQUIRED_OPTIONS.len()
    );
    patch(&tree, &["--forward", "--dry-run"])
        .run()
        .context("the tun patch does not apply to this source")?;
    println!("    tun-defer.patch applies (patch --dry-run)");
    if opts.prepare_only {
        println!(
            "==> vm-kernel: prepared in {:.0} s (--prepare-only: nothing compiled); without it \
             the two `make bzImage` runs take about 15 min + 1 min on 2 cores",
            started.elapsed().as_secs_f64()
        );
        return Ok(None);
    }

    let out = cache_dir(dirs);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    fs::remove_file(out.join("SHA256SUMS")).ok();
    let mut timings = Vec::new();
    let mut images = Vec::new();
    for variant in VARIANTS {
        let t = Instant::now();
        if variant == "tun-defer" {
            patch(&tree, &["--forward"]).run()?;
        }
        println!(
            "==> vm-kernel: make bzImage ({variant}; {})",
            if variant == "unpatched" {
                "about 15 min on 2 cores"
            } else {
                "only tun.o and the link: about 1 min"
            }
        );
        let built = make(&tree, jobs, "bzImage").run();
        if variant == "tun-defer" {
            // Leave the tree as released for the next run, also after a failed build.
            patch(&tree, &["-R"]).run()?;
        }
        built.with_context(|| format!("building the {variant} kernel"))?;
        let dst = out.join(image_name(variant));
        fs::copy(tree.join("arch/x86/boot/bzImage"), &dst)
            .with_context(|| format!("copying the {variant} bzImage to {}", dst.display()))?;
        timings.push(format!("{variant}: {:.0} s", t.elapsed().as_secs_f64()));
        images.push(dst);
    }
    fs::write(out.join("config-6.12.117"), CONFIG)?;
    fs::write(out.join("tun-defer.patch"), PATCH)?;
    let mut sums = String::new();
    for img in &images {
        let o = Cmd::new("sha256sum")
            .arg(img.file_name().unwrap_or_default())
            .current_dir(&out)
            .capture()?
            .ok_or_else(|| anyhow!("sha256sum not found"))?;
        if !o.status.success() {
            bail!(
                "sha256sum {} failed ({})",
                img.display(),
                describe(o.status)
            );
        }
        sums.push_str(&o.stdout);
    }
    // Written last: `cached` only trusts a directory with sums.
    fs::write(out.join("SHA256SUMS"), sums)
        .with_context(|| format!("writing {}/SHA256SUMS", out.display()))?;
    println!(
        "==> vm-kernel: built in {:.0} s ({}); images in {}",
        started.elapsed().as_secs_f64(),
        timings.join(", "),
        out.display()
    );
    cached(dirs)
        .map(Some)
        .ok_or_else(|| anyhow!("built kernels missing from {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_config_has_every_required_option() {
        assert_eq!(missing_options(CONFIG), Vec::<&str>::new());
        assert!(CONFIG.contains("# Linux/x86 6.12.117 Kernel Configuration"));
        assert_eq!(
            missing_options("CONFIG_TUN=m\nCONFIG_KPROBES=y\n# CONFIG_DEBUG_INFO_BTF is not set\n")
                .len(),
            REQUIRED_OPTIONS.len() - 1
        );
    }

    #[test]
    fn patch_is_the_tun_hunk() {
        assert!(PATCH.starts_with("--- a/drivers/net/tun.c\n+++ b/drivers/net/tun.c\n"));
        assert!(PATCH.contains("-\t\t\tconsume_skb(skb);\n+\t\t\tskb_attempt_defer_free(skb);"));
    }

    /// The committed copies are those of `../shared/kernels` when that is there.
    #[test]
    fn committed_inputs_match_shared_kernels() {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/kernels");
        for (name, ours) in [("config-6.12.117", CONFIG), ("tun-defer.patch", PATCH)] {
            match fs::read_to_string(shared.join(name)) {
                Ok(theirs) => assert_eq!(theirs, ours, "{name} differs from {}", shared.display()),
                Err(_) => eprintln!("skipped: {} not found", shared.join(name).display()),
            }
        }
    }

    #[test]
    fn cache_needs_both_images_and_their_sums() {
        let root = std::env::temp_dir().join(format!("zpvm-build-test-{}", std::process::id()));
        let dirs = Dirs { root: root.clone() };
        let dir = cache_dir(&dirs);
        fs::create_dir_all(&dir).unwrap();
        assert!(dir.ends_with("kernels/built-6.12.117"));
        for v in VARIANTS {
            fs::write(dir.join(image_name(v)), v).unwrap();
        }
        assert_eq!(cached(&dirs), None, "no SHA256SUMS yet");
        let line = |v: &str| format!("{}  {}\n", "a".repeat(64), image_name(v));
        fs::write(dir.join("SHA256SUMS"), line("unpatched")).unwrap();
        assert_eq!(cached(&dirs), None, "tun-defer not listed");
        fs::write(
            dir.join("SHA256SUMS"),
            line("unpatched") + &line("tun-defer"),
        )
        .unwrap();
        let [a, b] = cached(&dirs).unwrap();
        assert!(
            a.ends_with("bzImage-6.12.117-unpatched") && b.ends_with("bzImage-6.12.117-tun-defer")
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn version_from_makefile() {
        let mk = "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n";
        assert_eq!(makefile_version(mk).as_deref(), Some("6.12.117"));
        assert_eq!(makefile_version("VERSION = 6\n"), None);
        assert_eq!(image_name("tun-defer"), "bzImage-6.12.117-tun-defer");
    }
}
