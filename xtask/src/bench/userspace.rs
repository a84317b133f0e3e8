//! Time and peak RSS of `report`, `compare` and `flamegraph` on a synthetic recording of a
//! large host (`zoneprof-synth`, built with the profiler's `synth` feature).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::child;
use super::stats::Summary;

/// The synthetic host.
#[derive(Debug, Clone, Copy)]
pub struct SynthSpec {
    pub cpus: u32,
    /// NUMA nodes (zone locks per node, cross-node flows).
    pub nodes: u32,
    pub stacks: u32,
    pub skb_cells: u32,
}

#[derive(Debug, Clone)]
pub struct Timed {
    pub label: String,
    pub command: String,
    pub wall_s: Summary,
    pub max_rss_mb: Summary,
}

#[derive(Debug, Clone)]
pub struct Userspace {
    pub spec: SynthSpec,
    pub recording_bytes: u64,
    /// Line `zoneprof-synth` printed (stacks, frames, entries).
    pub synth_summary: String,
    pub synth_s: f64,
    pub timed: Vec<Timed>,
}

/// `*.folded` files of `dir`, sorted.
pub fn folded_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "folded"))
        .collect();
    v.sort();
    if v.is_empty() {
        bail!("no *.folded files in {}", dir.display());
    }
    Ok(v)
}

fn synth(
    synth_bin: &Path,
    spec: SynthSpec,
    folded: &[PathBuf],
    out: &Path,
    seed: u64,
    wait_scale: f64,
) -> Result<child::Outcome> {
    let mut argv = vec![
        synth_bin.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--cpus".into(),
        spec.cpus.to_string(),
        "--nodes".into(),
        spec.nodes.to_string(),
        "--stacks".into(),
        spec.stacks.to_string(),
        "--skb-cells".into(),
        spec.skb_cells.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--wait-scale".into(),
        wait_scale.to_string(),
    ];
    for f in folded {
        argv.push("--folded".into());
        argv.push(f.display().to_string());
    }
    child::run_ok(&argv, Duration::from_secs(300))
}

/// `zoneprof` runs the timed commands on recordings `synth_bin` (`zoneprof-synth`) writes.
pub fn run(
    zoneprof: &Path,
    synth_bin: &Path,
    spec: SynthSpec,
    fixtures: &Path,
    scratch: &Path,
    reps: u32,
    log: &mut dyn FnMut(&str),
) -> Result<Userspace> {
    let folded = folded_files(fixtures)?;
    let before = scratch.join("synth-before.zprof");
    let after = scratch.join("synth-after.zprof");
    let o = synth(synth_bin, spec, &folded, &before, 1, 1.0)?;
    let synth_summary = o.stderr.trim().to_string();
    let synth_s = o.wall.as_secs_f64();
    log(&format!("  {synth_summary} in {synth_s:.1} s"));
    synth(synth_bin, spec, &folded, &after, 2, 0.3)?;
    let recording_bytes = std::fs::metadata(&before)
        .with_context(|| format!("stat {}", before.display()))?
        .len();
    let z = zoneprof.display().to_string();
    let (b, a) = (before.display().to_string(), after.display().to_string());
    let out = |name: &str| scratch.join(name).display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "report (text)",
            vec![
                z.clone(),
                "report".into(),
                b.clone(),
                "-o".into(),
                out("r.txt"),
            ],
        ),
        (
            "report --format json",
            vec![
                z.clone(),
                "report".into(),
                b.clone(),
                "--format".into(),
                "json".into(),
                "-o".into(),
                out("r.json"),
            ],
        ),
        (
            "compare (text)",
            vec![
                z.clone(),
                "compare".into(),
                b.clone(),
                a.clone(),
                "-o".into(),
                out("c.txt"),
            ],
        ),
        (
            "flamegraph (zone-wait SVG)",
            vec![
                z.clone(),
                "flamegraph".into(),
                b.clone(),
                "-o".into(),
                out("f.svg"),
            ],
        ),
        (
            "flamegraph --view locks (every stack)",
            vec![
                z.clone(),
                "flamegraph".into(),
                b.clone(),
                "--view".into(),
                "locks".into(),
                "-o".into(),
                out("fl.svg"),
            ],
        ),
    ];
    let mut timed = Vec::new();
    for (label, argv) in cases {
        let mut walls = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..reps {
            let o = child::run_ok(&argv, Duration::from_secs(120))?;
            walls.push(o.wall.as_secs_f64());
            rss.push(o.max_rss_kib as f64 * 1024.0 / 1e6);
        }
        let (Some(wall_s), Some(max_rss_mb)) = (Summary::of(&walls), Summary::of(&rss)) else {
            bail!("no runs of {label}");
        };
        log(&format!(
            "  {label:<40} {:.2} s (min {:.2}, max {:.2}), peak RSS {:.0} MB",
            wall_s.median, wall_s.min, wall_s.max, max_rss_mb.median
        ));
        timed.push(Timed {
            label: label.to_string(),
            command: child::shown(&argv),
            wall_s,
            max_rss_mb,
        });
    }
    for f in [&before, &after] {
        std::fs::remove_file(f).ok();
    }
    Ok(Userspace {
        spec,
        recording_bytes,
        synth_summary,
        synth_s,
        timed,
    })
}
