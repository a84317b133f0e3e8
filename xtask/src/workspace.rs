//! Where the workspace is and which cargo to use.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::cmd::Cmd;

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
}
