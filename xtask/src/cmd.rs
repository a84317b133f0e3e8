//! Running child commands with errors that name the command.

use std::env;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context as _, Result, anyhow, bail};

/// A child command plus a printable form of it (environment overrides included), used
/// in the `$ …` echo and in every error message about it.
pub struct Cmd {
    inner: Command,
    shown: String,
}

/// Captured result of a command run with [`Cmd::capture`].
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Self {
            inner: Command::new(program),
            shown: quote(program),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.shown.push(' ');
        self.shown.push_str(&quote(arg));
        self.inner.arg(arg);
        self
    }

    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Cmd::arg)
    }

    /// Sets an environment variable for the child; it is shown as a `K=V` prefix.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        let value = value.as_ref();
        self.shown = format!("{key}={} {}", quote(value), self.shown);
        self.inner.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// The command as printed, e.g. `cargo build --release -p profiler`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Echoes the command, runs it with inherited stdio (output streams through) and
    /// fails unless it exits 0.
    pub fn run(mut self) -> Result<()> {
        println!("    $ {}", self.shown);
        let status = self
            .inner
            .status()
            .with_context(|| format!("could not start `{}`", self.shown))?;
        if !status.success() {
            bail!("`{}` failed ({})", self.shown, describe(status));
        }
        Ok(())
    }

    /// Echoes the command and runs it with stdout and stderr going to `log`; its exit
    /// status is for the caller to judge.
    pub fn status_to(mut self, log: std::fs::File) -> Result<ExitStatus> {
        println!("    $ {}", self.shown);
        let err = log
            .try_clone()
            .with_context(|| format!("could not start `{}`", self.shown))?;
        self.inner
            .stdout(log)
            .stderr(err)
            .status()
            .with_context(|| format!("could not start `{}`", self.shown))
    }

    /// Runs the command quietly, capturing its output. `Ok(None)` when the program does
    /// not exist or may not be run; a non-zero exit is not an error here (see `status`).
    pub fn capture(mut self) -> Result<Option<Captured>> {
        match self.inner.output() {
            Ok(out) => Ok(Some(Captured {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(anyhow!(e).context(format!("could not start `{}`", self.shown))),
        }
    }

    /// Replaces this process with the command (Unix `exec`), so its exit status becomes
    /// ours. Only returns on failure to start it.
    pub fn exec(mut self) -> anyhow::Error {
        use std::os::unix::process::CommandExt as _;
        println!("    $ {}", self.shown);
        let err = self.inner.exec();
        anyhow!(err).context(format!("could not exec `{}`", self.shown))
    }
}

/// "exit status 101" / "killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// First `name` found in the directories of `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Prepends `dir` to this process's `PATH` unless it is already there or does not exist.
/// Must be called before any thread is started (see `main`).
pub fn prepend_to_path(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    let current = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&current).any(|d| d == dir) {
        return;
    }
    let dirs = std::iter::once(dir.to_path_buf()).chain(env::split_paths(&current));
    if let Ok(joined) = env::join_paths(dirs) {
        // SAFETY: called from `main` before any other thread exists, so nothing can be
        // reading the environment concurrently.
        unsafe { env::set_var("PATH", joined) };
    }
}

/// Shell-style quoting, only where needed, for display.
fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_command_with_env_and_quotes() {
        let c = Cmd::new("cargo")
            .args(["test", "--", "a b"])
            .env("ZONEPROF_BIN", "/t/release/zoneprof");
        assert_eq!(
            c.shown(),
            "ZONEPROF_BIN=/t/release/zoneprof cargo test -- 'a b'"
        );
        assert_eq!(quote(OsStr::new("${Status}")), "'${Status}'");
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn capture_missing_program_is_none() {
        let r = Cmd::new("zoneprof-xtask-no-such-program").capture();
        assert!(matches!(r, Ok(None)));
    }

    #[test]
    fn run_failure_names_the_command() {
        let err = Cmd::new("false").run().err().map(|e| format!("{e:#}"));
        assert_eq!(err.as_deref(), Some("`false` failed (exit status 1)"));
    }
}
