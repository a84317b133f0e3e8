//! Where the workspace is, which cargo to use, and where its build output goes.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::cmd::Cmd;

/// `cargo` arguments that build the synthetic-recording generator for the bench: the
/// profiler crate's `synth` feature, which the user binary `zoneprof` is built without.
pub const SYNTH_BUILD: &[&str] = &[
    "build",
    "--release",
    "-p",
    "profiler",
    "--features",
    "synth",
    "--bin",
    "zoneprof-synth",
];

pub struct Workspace {
    /// The workspace root (parent of the xtask crate); every command runs from here.
    pub root: PathBuf,
    /// `$CARGO` as set by `cargo run`, else `cargo` from PATH.
    cargo: OsString,
}

impl Workspace {
    pub fn locate() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .ok_or_else(|| {
                anyhow!(
                    "xtask manifest dir {} has no parent",
                    manifest_dir.display()
                )
            })?
            .to_path_buf();
        if !root.join("Cargo.toml").is_file() {
            bail!("no Cargo.toml in workspace root {}", root.display());
        }
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Ok(Self { root, cargo })
    }

    /// `cargo` with the working directory set to the workspace root.
    pub fn cargo(&self) -> Cmd {
        Cmd::new(&self.cargo).current_dir(&self.root)
    }

    /// The target directory as cargo resolves it (honours `CARGO_TARGET_DIR` and
    /// `build.target-dir`), from `cargo metadata`.
    pub fn target_dir(&self) -> Result<PathBuf> {
        let cmd = self
            .cargo()
            .args(["metadata", "--format-version", "1", "--no-deps"]);
        let shown = cmd.shown().to_owned();
        let out = cmd
            .capture()?
            .ok_or_else(|| anyhow!("cargo not found (tried `{shown}`)"))?;
        if !out.status.success() {
            bail!(
                "`{shown}` failed ({}): {}",
                crate::cmd::describe(out.status),
                out.stderr.trim()
            );
        }
        let dir = json_string_field(&out.stdout, "target_directory")
            .with_context(|| format!("no target_directory in the output of `{shown}`"))?;
        Ok(PathBuf::from(dir))
    }

    /// Absolute path of the release `zoneprof` binary.
    pub fn release_bin(&self) -> Result<PathBuf> {
        Ok(self.target_dir()?.join("release").join("zoneprof"))
    }

    /// Absolute path of the release `zoneprof-synth` binary (`SYNTH_BUILD` builds it).
    pub fn release_synth_bin(&self) -> Result<PathBuf> {
        Ok(self.target_dir()?.join("release").join("zoneprof-synth"))
    }
}

/// Value of the first `"key": "string"` pair in a JSON document. Enough for the
/// top-level `target_directory` of `cargo metadata` without a JSON dependency.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let after_key = &json[json.find(&needle)? + needle.len()..];
    let rest = after_key.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = rest.strip_prefix('"')?.chars();
    let mut value = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                '"' => value.push('"'),
                '\\' => value.push('\\'),
                '/' => value.push('/'),
                'b' => value.push('\u{8}'),
                'f' => value.push('\u{c}'),
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    value.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json_string_field;

    #[test]
    fn reads_target_directory() {
        let json = r#"{"packages":[],"target_directory" : "/work/target-shared","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/work/target-shared")
        );
    }

    #[test]
    fn unescapes_and_rejects_non_strings() {
        let json = r#"{"target_directory":"C:\\t \"x\" \u00e9\/y"}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("C:\\t \"x\" é/y")
        );
        assert_eq!(json_string_field(r#"{"version":1}"#, "version"), None);
        assert_eq!(json_string_field(r#"{"a":"unterminated"#, "a"), None);
        assert_eq!(json_string_field("{}", "target_directory"), None);
    }
}
