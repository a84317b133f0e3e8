//! Runs a child with a hard time limit, capturing its output and resource usage.
//!
//! The child gets its own process group, so a timeout kills it and everything it started
//! (the reproducers' helper processes), and is reaped with `wait4` for its rusage (peak
//! RSS, CPU time).

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How a finished child ran.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code, or None when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub wall: Duration,
    /// Peak resident set of the child itself (not of its children), KiB.
    pub max_rss_kib: u64,
    /// User + system CPU seconds of the child and every descendant it waited for.
    pub cpu_s: f64,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exit status 1" / "killed by signal 9".
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "unknown status".into(),
        }
    }

    /// The last `n` lines of stderr, for error messages.
    pub fn stderr_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

/// A printable form of `argv`, for messages.
pub fn shown(argv: &[String]) -> String {
    argv.join(" ")
}

fn timeval_s(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// Runs `argv` with stdin closed, until it exits or `timeout` passes (then its process
/// group is killed and this fails). `tick(pid, elapsed)` is called about every 50 ms
/// while it runs.
pub fn run_with(
    argv: &[String],
    timeout: Duration,
    mut tick: impl FnMut(u32, Duration),
) -> Result<Outcome> {
    let Some((program, args)) = argv.split_first() else {
        bail!("empty command");
    };
    let what = shown(argv);
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("could not start `{what}`"))?;
    let pid = child.id();
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                p.read_to_end(&mut buf).ok();
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );

    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: waiting on our own child's pid with valid out-pointers.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).with_context(|| format!("waiting for `{what}`"));
        }
        if started.elapsed() > timeout {
            timed_out = true;
            // SAFETY: kill(2) of the process group this function created for its child.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
            // SAFETY: as above; blocking wait for the killed child.
            unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
            break;
        }
        tick(pid, started.elapsed());
        thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed();
    // The pipes close when every process holding them is gone; a grandchild that outlives
    // the child would keep them open, so give the readers a bounded time.
    let join = |h: thread::JoinHandle<String>| -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            String::from("[output not collected: a process kept the pipe open]")
        }
    };
    let outcome = Outcome {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        wall,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu_s: timeval_s(usage.ru_utime) + timeval_s(usage.ru_stime),
        stdout: join(out),
        stderr: join(err),
    };
    if timed_out {
        bail!(
            "`{what}` timed out after {:.0} s and was killed; stderr: {}",
            timeout.as_secs_f64(),
            outcome.stderr_tail(5)
        );
    }
    Ok(outcome)
}

/// [`run_with`] without a tick.
pub fn run(argv: &[String], timeout: Duration) -> Result<Outcome> {
    run_with(argv, timeout, |_, _| {})
}

/// Runs and fails unless it exits 0, naming the command and its stderr.
pub fn run_ok(argv: &[String], timeout: Duration) -> Result<Outcome> {
    let o = run(argv, timeout)?;
    if !o.success() {
        bail!(
            "`{}` failed ({}): {}",
            shown(argv),
            o.describe(),
            o.stderr_tail(5)
        );
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn captures_output_and_status() {
        let o = run(
            &sv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("run");
        assert_eq!(o.code, Some(3));
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
        assert!(o.max_rss_kib > 0);
        let busy = run(
            &sv(&[
                "sh",
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done",
            ]),
            Duration::from_secs(60),
        )
        .expect("busy loop");
        assert!(busy.cpu_s > 0.01, "{}", busy.cpu_s);
        let e = run_ok(
            &sv(&["sh", "-c", "echo bad >&2; exit 1"]),
            Duration::from_secs(10),
        )
        .expect_err("must fail");
        let msg = format!("{e:#}");
        assert!(
            msg.contains("exit status 1") && msg.contains("bad"),
            "{msg}"
        );
    }

    #[test]
    fn timeout_kills_the_group() {
        let started = Instant::now();
        let e = run(
            &sv(&["sh", "-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .expect_err("must time out");
        assert!(format!("{e:#}").contains("timed out"), "{e:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_program_names_it() {
        let e = run(
            &sv(&["zoneprof-bench-no-such-program"]),
            Duration::from_secs(1),
        )
        .expect_err("must fail");
        assert!(format!("{e:#}").contains("zoneprof-bench-no-such-program"));
    }

    #[test]
    fn tick_sees_the_pid() {
        let mut seen = 0u32;
        run_with(&sv(&["sleep", "0.3"]), Duration::from_secs(10), |pid, _| {
            seen = pid;
        })
        .expect("run");
        assert!(seen > 0);
    }
}
