//! `cargo xtask fuzz [--seconds N] [--target T]`: runs each cargo-fuzz target of `fuzz/`
//! (nightly, AddressSanitizer, debug assertions) for N seconds from its committed seed
//! corpus, then prints executions, corpus and crashes per target. Any crash fails the task;
//! its input is left under target/fuzz/artifacts/<target>/ (docs/fuzzing.md).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;
use crate::setup;
use crate::workspace::Workspace;

/// What one target's run came to, read from libFuzzer's output.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub executions: Option<u64>,
    /// Seconds spent fuzzing (`Done N runs in S second(s)`), without build and start-up.
    pub seconds: Option<u64>,
    /// Inputs in the corpus at the end (`corp: N/SIZE`), seeds included.
    pub corpus: Option<u64>,
    pub corpus_bytes: Option<String>,
    /// Crash, timeout, out-of-memory and leak inputs written by this run.
    pub crashes: usize,
}

/// The fuzz targets: the `[[bin]]` names of fuzz/Cargo.toml, in file order.
pub fn targets(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin
            && let Some(v) = line.strip_prefix("name").map(str::trim_start)
            && let Some(v) = v.strip_prefix('=')
        {
            out.push(v.trim().trim_matches('"').to_string());
        }
    }
    out
}

/// Reads libFuzzer's log: `stat::number_of_executed_units` (printed at exit, crash or
/// not, with -print_final_stats=1), the last `corp: N/SIZE` status, and the artifacts it
/// says it wrote (`Test unit written to PATH`).
pub fn parse_log(log: &str) -> Outcome {
    let mut o = Outcome::default();
    for line in log.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            o.executions = v.trim().parse().ok();
        }
        if let Some(rest) = line.split(" corp: ").nth(1)
            && let Some((n, size)) = rest
                .split_whitespace()
                .next()
                .and_then(|c| c.split_once('/'))
        {
            o.corpus = n.parse().ok();
            o.corpus_bytes = Some(size.to_string());
        }
        if let Some(rest) = line.strip_prefix("Done ")
            && let Some((_, secs)) = rest.split_once(" runs in ")
        {
            o.seconds = secs.split_whitespace().next().and_then(|s| s.parse().ok());
        }
        if line.contains("Test unit written to ") {
            o.crashes += 1;
        }
    }
    o
}

pub struct Opts {
    pub seconds: u64,
    pub targets: Vec<String>,
}

pub fn run(ws: &Workspace, opts: &Opts) -> Result<()> {
    let fuzz_dir = ws.root.join("fuzz");
    let manifest = fs::read_to_string(fuzz_dir.join("Cargo.toml"))
        .with_context(|| format!("reading {}", fuzz_dir.join("Cargo.toml").display()))?;
    let all = targets(&manifest);
    let chosen: Vec<String> = if opts.targets.is_empty() {
        all.clone()
    } else {
        for t in &opts.targets {
            if !all.contains(t) {
                bail!("no fuzz target `{t}`; the targets are: {}", all.join(", "));
            }
        }
        opts.targets.clone()
    };
    setup::ensure_cargo_fuzz()?;

    println!("==> fuzz: building the targets (nightly, AddressSanitizer, debug assertions)");
    cargo_fuzz(ws).arg("build").run()?;

    let work = ws.target_dir()?.join("fuzz");
    let mut rows = Vec::new();
    for t in &chosen {
        let seeds = seed_dir(&ws.root, t);
        let corpus = work.join("corpus").join(t);
        let artifacts = work.join("artifacts").join(t);
        let logs = work.join("logs");
        for d in [&corpus, &artifacts, &logs] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let log_path = logs.join(format!("{t}.log"));
        println!(
            "==> fuzz: {t} for {} s (log: {})",
            opts.seconds,
            log_path.display()
        );
        let log = fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let started = Instant::now();
        // The first corpus directory receives new inputs; the committed seeds stay as they are.
        let mut cmd = cargo_fuzz(ws)
            .args(["run", t.as_str()])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--");
        if let Some(dict) = dict_for(&fuzz_dir, t) {
            cmd = cmd.arg(format!("-dict={}", dict.display()));
        }
        let status = cmd
            .arg(format!("-max_total_time={}", opts.seconds))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            // A slow input is a bug here too (every parser is linear); 2 GB is libFuzzer's
            // default memory limit, said out loud.
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .status_to(log)?;
        let wall = started.elapsed().as_secs();
        let text = fs::read_to_string(&log_path)
            .with_context(|| format!("reading {}", log_path.display()))?;
        let mut o = parse_log(&text);
        if !status.success() && o.crashes == 0 {
            // Failed without saying it wrote an input: count it, and show why.
            o.crashes = 1;
        }
        if o.crashes > 0 {
            println!(
                "    {t} failed ({}); the end of its log:",
                crate::cmd::describe(status)
            );
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(30)..] {
                println!("    | {l}");
            }
        }
        let secs = o.seconds.unwrap_or(wall);
        rows.push((t.clone(), secs, o, corpus_files(&seeds)));
    }

    println!("==> fuzz: summary");
    println!(
        "    {:<16} {:>7} {:>14} {:>7} {:>12} {:>8}",
        "target", "seconds", "executions", "seeds", "corpus", "crashes"
    );
    let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    for (t, secs, o, seeds) in &rows {
        let corpus = match (&o.corpus, &o.corpus_bytes) {
            (Some(n), Some(b)) => format!("{n} / {b}"),
            _ => "?".to_string(),
        };
        println!(
            "    {t:<16} {secs:>7} {:>14} {seeds:>7} {corpus:>12} {:>8}",
            show(o.executions),
            o.crashes
        );
    }
    let crashed: Vec<&str> = rows
        .iter()
        .filter(|r| r.2.crashes > 0)
        .map(|r| r.0.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzz: {} crashed; inputs under {}",
            crashed.join(", "),
            work.join("artifacts").display()
        );
    }
    println!("==> fuzz: no crashes");
    Ok(())
}

/// `cargo fuzz` on nightly, from the workspace root (cargo-fuzz finds fuzz/ from there).
fn cargo_fuzz(ws: &Workspace) -> Cmd {
    Cmd::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(&ws.root)
}

fn corpus_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count())
}

/// fuzz/dict/<target>.dict, else the dictionary of the target's family (`recording_views`
/// uses recording.dict): values libFuzzer's mutations rarely reach on their own.
fn dict_for(fuzz_dir: &Path, target: &str) -> Option<PathBuf> {
    let family = target.split('_').next().unwrap_or(target);
    [target, family]
        .iter()
        .map(|n| fuzz_dir.join("dict").join(format!("{n}.dict")))
        .find(|p| p.is_file())
}

/// The committed seed corpus of `target`: fuzz/corpus/<target>/.
pub fn seed_dir(root: &Path, target: &str) -> PathBuf {
    root.join("fuzz").join("corpus").join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_bin_names() {
        let m = "[package]\nname = \"zoneprof-fuzz\"\n\n[[bin]]\nname = \"recording\"\npath = \"x\"\n\
                 [dependencies]\nname = 1\n[[bin]]\nname=\"btf\"\n";
        assert_eq!(targets(m), ["recording", "btf"]);
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
        let all = targets(&manifest);
        assert!(all.len() >= 9, "{all:?}");
        for t in &all {
            let src = root.join("fuzz/fuzz_targets").join(format!("{t}.rs"));
            assert!(src.is_file(), "{} missing", src.display());
            assert!(corpus_files(&seed_dir(&root, t)) > 0, "no seeds for {t}");
        }
    }

    #[test]
    fn recording_targets_share_a_dictionary() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let d = dict_for(&fuzz, "recording_views").expect("recording.dict");
        assert!(d.ends_with("dict/recording.dict"));
        assert_eq!(dict_for(&fuzz, "recording"), Some(d));
        assert_eq!(dict_for(&fuzz, "cpulist"), None);
    }

    #[test]
    fn reads_libfuzzer_figures() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 4/120b exec/s: 0 rss: 30Mb\n\
                   #8192\tpulse  cov: 20 ft: 30 corp: 9/1033b lim: 80 exec/s: 4096 rss: 40Mb\n\
                   Done 9000 runs in 2 second(s)\nstat::number_of_executed_units: 9000\n\
                   stat::average_exec_per_sec:     4500\n";
        assert_eq!(
            parse_log(log),
            Outcome {
                executions: Some(9000),
                seconds: Some(2),
                corpus: Some(9),
                corpus_bytes: Some("1033b".into()),
                crashes: 0,
            }
        );
        let crash = "==1== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='a/'; Test unit written to a/crash-da39a3ee\n\
                     stat::number_of_executed_units: 77\n";
        let o = parse_log(crash);
        assert_eq!((o.executions, o.crashes), (Some(77), 1));
    }
}
