//! The parent side of `cross-cpu-pages`: one child process per pair.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{
    CrossCpuPagesOpts, MAX_PAIRS, PAIR_RESULT_PREFIX, PairCounts, PairOpts, WorkloadError,
    WorkloadResult, validate_common,
};
use crate::kernel::cpulist::format_cpu_list;

/// Time allowed beyond the run duration for exec, start-up, draining and exit.
const GRACE: Duration = Duration::from_secs(30);
/// How often the parent checks on its children.
const POLL: Duration = Duration::from_millis(20);
/// Most output kept per child stream; the rest is read and discarded.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Expands the options into pairs: `alloc_cpus[i % a]` with `free_cpus[i % f]` for
/// `i < max(a, f)`. In same-CPU mode each pair frees on its alloc CPU and `free_cpus` may be
/// empty (then there are `a` pairs).
pub fn plan_pairs(opts: &CrossCpuPagesOpts) -> Result<Vec<PairOpts>, WorkloadError> {
    validate_common(opts.duration, opts.chunk_kib)?;
    let a = &opts.alloc_cpus;
    if a.is_empty() {
        return Err(WorkloadError::NoCpus("alloc"));
    }
    let f: &[u32] = if opts.same_cpu {
        a
    } else if opts.free_cpus.is_empty() {
        return Err(WorkloadError::NoCpus("free"));
    } else {
        &opts.free_cpus
    };
    let n = if opts.same_cpu {
        a.len().max(opts.free_cpus.len())
    } else {
        a.len().max(f.len())
    };
    if n > MAX_PAIRS {
        return Err(WorkloadError::TooManyPairs(n));
    }
    Ok((0..n)
        .map(|i| {
            let alloc_cpu = a[i % a.len()];
            PairOpts {
                alloc_cpu,
                free_cpu: if opts.same_cpu {
                    alloc_cpu
                } else {
                    f[i % f.len()]
                },
                same_cpu: opts.same_cpu,
                duration: opts.duration,
                chunk_kib: opts.chunk_kib,
            }
        })
        .collect())
}

/// The arguments after the subcommand prefix that reach [`super::run_pair`]:
/// `--alloc-cpu A --free-cpu F --duration-ms N --chunk-kib K`. Same-CPU mode is passed
/// as `F == A` (run_pair treats equal CPUs as same-CPU mode), so no extra flag is needed.
pub fn pair_args(p: &PairOpts) -> Vec<String> {
    let free = if p.is_same_cpu() {
        p.alloc_cpu
    } else {
        p.free_cpu
    };
    vec![
        "--alloc-cpu".into(),
        p.alloc_cpu.to_string(),
        "--free-cpu".into(),
        free.to_string(),
        "--duration-ms".into(),
        p.duration.as_millis().max(1).to_string(),
        "--chunk-kib".into(),
        p.chunk_kib.to_string(),
    ]
}

/// Finds and parses the result line in a child's stdout: (alloc_cpu, free_cpu, counts).
pub fn parse_pair_result(stdout: &str) -> Option<(u32, u32, PairCounts)> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(PAIR_RESULT_PREFIX))?;
    let (mut a, mut f, mut ab, mut fb, mut ns) = (None, None, None, None, None);
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        match k {
            "alloc_cpu" => a = v.parse().ok(),
            "free_cpu" => f = v.parse().ok(),
            "alloc_bytes" => ab = v.parse().ok(),
            "freed_bytes" => fb = v.parse().ok(),
            "elapsed_ns" => ns = v.parse().ok(),
            _ => {} // forward compatible
        }
    }
    Some((
        a?,
        f?,
        PairCounts {
            alloc_bytes: ab?,
            freed_bytes: fb?,
            elapsed: Duration::from_nanos(ns?),
        },
    ))
}

/// Runs `cross-cpu-pages`: one child per pair, re-executing this binary with
/// `self_exe_args` (e.g. `["workload", "__pair"]`) followed by [`pair_args`]. Blocks until
/// every child has exited. If one fails, the others are killed and the error names the pair.
///
/// Children get `PR_SET_PDEATHSIG = SIGKILL`, tied to the calling thread; the call blocks that
/// thread until all children are gone, so they die with it if the parent is killed.
pub fn run_cross_cpu_pages(
    opts: &CrossCpuPagesOpts,
    self_exe_args: &[&str],
) -> Result<WorkloadResult, WorkloadError> {
    let pairs = plan_pairs(opts)?;
    check_online(&pairs)?;
    let exe = std::env::current_exe().map_err(WorkloadError::CurrentExe)?;
    run_pairs_with(&exe, self_exe_args, &pairs, GRACE)
}

fn check_online(pairs: &[PairOpts]) -> Result<(), WorkloadError> {
    let online = crate::kernel::host::online_cpus()?;
    for p in pairs {
        for cpu in [p.alloc_cpu, p.free_cpu] {
            if !online.contains(&cpu) {
                return Err(WorkloadError::CpuOffline {
                    cpu,
                    online: format_cpu_list(&online),
                });
            }
        }
    }
    Ok(())
}

/// A running child plus threads draining its pipes (so it can never block on a full pipe).
struct Running {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

/// Kills and reaps every child still running when dropped: on every error path, including
/// a panic in the parent, no pair outlives the call.
struct Children(Vec<Running>);

impl Drop for Children {
    fn drop(&mut self) {
        for r in &mut self.0 {
            if r.status.is_none() {
                // Errors mean it already exited; wait() reaps it either way.
                r.child.kill().ok();
                r.child.wait().ok();
            }
        }
    }
}

fn drain<R: Read + Send + 'static>(r: R) -> io::Result<JoinHandle<String>> {
    thread::Builder::new()
        .name("zp-pair-pipe".into())
        .spawn(move || {
            let mut r = r;
            let mut kept = Vec::new();
            r.by_ref().take(MAX_OUTPUT).read_to_end(&mut kept).ok();
            // Discard the rest until EOF (the child exits or is killed).
            io::copy(&mut r, &mut io::sink()).ok();
            String::from_utf8_lossy(&kept).into_owned()
        })
}

fn take_output(h: &mut Option<JoinHandle<String>>) -> String {
    h.take().and_then(|h| h.join().ok()).unwrap_or_default()
}

/// Last non-empty line of a child's stderr, shortened, for a one-line error message.
fn last_line(s: &str) -> String {
    let line = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut line: String = line.trim().chars().take(300).collect();
    if line.is_empty() {
        line.push_str("no message");
    }
    line
}

fn spawn_one(
    exe: &Path,
    prefix: &[&str],
    idx: usize,
    p: &PairOpts,
) -> Result<Running, WorkloadError> {
    let spawn_err = |source| WorkloadError::Spawn {
        pair: idx,
        alloc_cpu: p.alloc_cpu,
        free_cpu: p.free_cpu,
        source,
    };
    let parent = std::process::id();
    let mut cmd = Command::new(exe);
    cmd.args(prefix)
        .args(pair_args(p))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let die_with_parent = move || {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent died before prctl took effect: nobody would kill us.
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } as u32 != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec; it only calls prctl and
    // getppid (async-signal-safe), reads errno, and neither allocates nor takes locks.
    unsafe { cmd.pre_exec(die_with_parent) };
    let child = cmd.spawn().map_err(spawn_err)?;
    let mut running = Running {
        child,
        stdout: None,
        stderr: None,
        status: None,
    };
    // Pipes were requested above, so both are present; a missing one is just not read.
    let out: Option<ChildStdout> = running.child.stdout.take();
    let err: Option<ChildStderr> = running.child.stderr.take();
    let started = (|| -> io::Result<()> {
        if let Some(o) = out {
            running.stdout = Some(drain(o)?);
        }
        if let Some(e) = err {
            running.stderr = Some(drain(e)?);
        }
        Ok(())
    })();
    if let Err(e) = started {
        running.child.kill().ok();
        running.child.wait().ok();
        return Err(spawn_err(e));
    }
    Ok(running)
}

/// Spawns and supervises the pairs. `grace` is split out so tests can shorten it.
fn run_pairs_with(
    exe: &Path,
    prefix: &[&str],
    pairs: &[PairOpts],
    grace: Duration,
) -> Result<WorkloadResult, WorkloadError> {
    let mut children = Children(Vec::with_capacity(pairs.len()));
    for (i, p) in pairs.iter().enumerate() {
        children.0.push(spawn_one(exe, prefix, i, p)?);
    }
    let duration = pairs.iter().map(|p| p.duration).max().unwrap_or_default();
    let limit = duration.saturating_add(grace);
    let start = Instant::now();

    // Bounded by `limit`.
    loop {
        let mut still_running = Vec::new();
        for (i, r) in children.0.iter_mut().enumerate() {
            if r.status.is_some() {
                continue;
            }
            match r.child.try_wait().map_err(WorkloadError::Wait)? {
                Some(st) => {
                    r.status = Some(st);
                    if !st.success() {
                        let stderr = take_output(&mut r.stderr);
                        return Err(WorkloadError::PairFailed {
                            pair: i,
                            alloc_cpu: pairs[i].alloc_cpu,
                            free_cpu: pairs[i].free_cpu,
                            detail: format!("{st}: {}", last_line(&stderr)),
                        });
                    }
                }
                None => still_running.push(i),
            }
        }
        if still_running.is_empty() {
            break;
        }
        let waited = start.elapsed();
        if waited > limit {
            let list: Vec<String> = still_running.iter().map(|i| i.to_string()).collect();
            return Err(WorkloadError::Timeout {
                pairs: list.join(","),
                waited,
            });
        }
        thread::sleep(POLL);
    }

    let mut bytes = 0u64;
    let mut elapsed = Duration::ZERO;
    for (i, r) in children.0.iter_mut().enumerate() {
        let p = &pairs[i];
        let stdout = take_output(&mut r.stdout);
        let failed = |detail: String| WorkloadError::PairFailed {
            pair: i,
            alloc_cpu: p.alloc_cpu,
            free_cpu: p.free_cpu,
            detail,
        };
        let (a, f, counts) = parse_pair_result(&stdout)
            .ok_or_else(|| failed(format!("no result line in output: {}", last_line(&stdout))))?;
        let expect_free = if p.is_same_cpu() {
            p.alloc_cpu
        } else {
            p.free_cpu
        };
        if (a, f) != (p.alloc_cpu, expect_free) {
            return Err(failed(format!("result is for CPU {a} -> {f}")));
        }
        bytes = bytes.saturating_add(counts.freed_bytes);
        elapsed = elapsed.max(counts.elapsed);
    }
    Ok(WorkloadResult {
        bytes,
        elapsed,
        pairs: pairs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cco(a: &[u32], f: &[u32], same: bool) -> CrossCpuPagesOpts {
        CrossCpuPagesOpts {
            alloc_cpus: a.to_vec(),
            free_cpus: f.to_vec(),
            same_cpu: same,
            duration: Duration::from_millis(100),
            chunk_kib: 4096,
        }
    }

    fn cpus(pairs: &[PairOpts]) -> Vec<(u32, u32)> {
        pairs.iter().map(|p| (p.alloc_cpu, p.free_cpu)).collect()
    }

    #[test]
    fn pairing_rules() {
        let p = plan_pairs(&cco(&[0, 1, 2, 3], &[4, 5], false)).unwrap();
        assert_eq!(cpus(&p), vec![(0, 4), (1, 5), (2, 4), (3, 5)]);
        let p = plan_pairs(&cco(&[0], &[1, 2, 3], false)).unwrap();
        assert_eq!(cpus(&p), vec![(0, 1), (0, 2), (0, 3)]);
        let p = plan_pairs(&cco(&[0, 1], &[], true)).unwrap();
        assert_eq!(cpus(&p), vec![(0, 0), (1, 1)]);
        let p = plan_pairs(&cco(&[0, 1], &[2, 3], true)).unwrap();
        assert_eq!(cpus(&p), vec![(0, 0), (1, 1)]);
        assert!(p.iter().all(|p| p.is_same_cpu()));
    }

    #[test]
    fn plan_rejects_bad_opts() {
        assert!(matches!(
            plan_pairs(&cco(&[], &[1], false)),
            Err(WorkloadError::NoCpus("alloc"))
        ));
        assert!(matches!(
            plan_pairs(&cco(&[0], &[], false)),
            Err(WorkloadError::NoCpus("free"))
        ));
        let mut o = cco(&[0], &[1], false);
        o.duration = Duration::ZERO;
        assert!(matches!(plan_pairs(&o), Err(WorkloadError::BadDuration(_))));
        o.duration = Duration::from_secs(1);
        o.chunk_kib = 2;
        assert!(matches!(plan_pairs(&o), Err(WorkloadError::BadChunk(2))));
        let many = cco(&[0], &vec![1; MAX_PAIRS + 1], false);
        assert!(matches!(
            plan_pairs(&many),
            Err(WorkloadError::TooManyPairs(n)) if n == MAX_PAIRS + 1
        ));
    }

    #[test]
    fn offline_cpu_is_named() {
        let e = run_cross_cpu_pages(&cco(&[0], &[4095], false), &["x"]).unwrap_err();
        assert!(
            matches!(e, WorkloadError::CpuOffline { cpu: 4095, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("CPU 4095 is not online"), "{e}");
    }

    #[test]
    fn pair_args_and_result_round_trip() {
        let p = PairOpts {
            alloc_cpu: 3,
            free_cpu: 7,
            same_cpu: false,
            duration: Duration::from_millis(1500),
            chunk_kib: 4096,
        };
        assert_eq!(
            pair_args(&p).join(" "),
            "--alloc-cpu 3 --free-cpu 7 --duration-ms 1500 --chunk-kib 4096"
        );
        let same = PairOpts {
            same_cpu: true,
            ..p.clone()
        };
        assert!(pair_args(&same).join(" ").contains("--free-cpu 3 "));
        let out = "noise\nzoneprof-pair-result alloc_cpu=3 free_cpu=7 alloc_bytes=10 freed_bytes=8 elapsed_ns=5 new=1\n";
        let (a, f, c) = parse_pair_result(out).unwrap();
        assert_eq!((a, f, c.alloc_bytes, c.freed_bytes), (3, 7, 10, 8));
        assert_eq!(c.elapsed, Duration::from_nanos(5));
        assert!(parse_pair_result("").is_none());
        assert!(parse_pair_result("zoneprof-pair-result alloc_cpu=3").is_none());
        assert!(parse_pair_result("zoneprof-pair-result alloc_cpu=x free_cpu=1 alloc_bytes=1 freed_bytes=1 elapsed_ns=1").is_none());
    }

    /// A stand-in for the zoneprof binary: a shell script that answers like a pair child,
    /// or fails/hangs when its alloc CPU is 1 and the prefix asks for it.
    fn fake_exe(dir: &Path) -> std::path::PathBuf {
        let script = r#"#!/bin/sh
mode=$1; shift
while [ $# -gt 0 ]; do
  case $1 in
    --alloc-cpu) a=$2; shift 2;;
    --free-cpu) f=$2; shift 2;;
    --duration-ms) d=$2; shift 2;;
    --chunk-kib) k=$2; shift 2;;
    *) echo "unknown arg $1" >&2; exit 2;;
  esac
done
if [ "$mode" = fail ] && [ "$a" = 1 ]; then echo "warming up" >&2; echo "boom on $a" >&2; exit 3; fi
if [ "$mode" = fail ] || [ "$mode" = hang ]; then exec sleep 30; fi
if [ "$mode" = silent ]; then exit 0; fi
echo "zoneprof-pair-result alloc_cpu=$a free_cpu=$f alloc_bytes=$((k * 1024)) freed_bytes=$((k * 1024)) elapsed_ns=$((d * 1000000 + a))"
"#;
        let path = dir.join("fake-zoneprof");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn pairs(list: &[(u32, u32)]) -> Vec<PairOpts> {
        list.iter()
            .map(|&(a, f)| PairOpts {
                alloc_cpu: a,
                free_cpu: f,
                same_cpu: false,
                duration: Duration::from_millis(7),
                chunk_kib: 8,
            })
            .collect()
    }

    #[test]
    fn spawns_children_and_sums() {
        let d = tempfile::tempdir().unwrap();
        let exe = fake_exe(d.path());
        let r = run_pairs_with(&exe, &["ok"], &pairs(&[(0, 1), (1, 0), (2, 2)]), GRACE).unwrap();
        assert_eq!(r.pairs, 3);
        assert_eq!(r.bytes, 3 * 8 * 1024);
        assert_eq!(r.elapsed, Duration::from_nanos(7_000_002));
    }

    #[test]
    fn failing_child_kills_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let exe = fake_exe(d.path());
        let t = Instant::now();
        let e = run_pairs_with(&exe, &["fail"], &pairs(&[(0, 1), (1, 0)]), GRACE).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(
            matches!(
                e,
                WorkloadError::PairFailed {
                    pair: 1,
                    alloc_cpu: 1,
                    free_cpu: 0,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("pair 1 (CPU 1 -> 0) failed"), "{msg}");
        assert!(msg.contains("boom on 1"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn hanging_child_times_out() {
        let d = tempfile::tempdir().unwrap();
        let exe = fake_exe(d.path());
        let t = Instant::now();
        let e = run_pairs_with(
            &exe,
            &["hang"],
            &pairs(&[(0, 1)]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(e, WorkloadError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_result_line_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let exe = fake_exe(d.path());
        let e = run_pairs_with(&exe, &["silent"], &pairs(&[(0, 1)]), GRACE).unwrap_err();
        assert!(e.to_string().contains("no result line"), "{e}");
        let e = run_pairs_with(&d.path().join("nope"), &[], &pairs(&[(0, 1)]), GRACE).unwrap_err();
        assert!(matches!(e, WorkloadError::Spawn { pair: 0, .. }), "{e}");
    }
}
