//! Where the local stack's files live.
//!
//! Everything — jars, data, generated configs, logs, pid files — lives under one git-ignored
//! folder, `.stack/` at the workspace root (or `$AUDITFLOW_STACK_DIR`), so `rm -rf .stack` is
//! a complete uninstall. The locks that keep two commands from starting or stopping servers
//! at once are files there too.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// Where the stack's files are.
pub struct Layout {
    root: PathBuf,
    dir: PathBuf,
}

impl Layout {
    pub fn from_env() -> Result<Layout> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::new("xtask is not inside a workspace"))?;
        let dir = match std::env::var_os("AUDITFLOW_STACK_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => std::env::current_dir()
                .context("reading the current directory")?
                .join(dir),
            None => root.join(".stack"),
        };
        Ok(Layout { root, dir })
    }

    /// The stack's folder (`.stack/`), absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of `deploy/stack/<server>/`.
    pub fn template(&self, server: &str, file: &str) -> PathBuf {
        self.root.join("deploy/stack").join(server).join(file)
    }

    pub fn read_template(&self, server: &str, file: &str) -> Result<String> {
        let path = self.template(server, file);
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    pub fn service_dir(&self, server: &str) -> PathBuf {
        self.dir.join(server)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs_dir().join(format!("{name}.log"))
    }

    pub fn pid_file(&self, server: &str) -> PathBuf {
        self.dir.join(format!("{server}.pid"))
    }

    /// The JVM argument that identifies a server process as this stack's own.
    pub fn marker(&self, server: &str) -> String {
        format!("-Dauditflow.stack={}", self.service_dir(server).display())
    }

    /// `path` relative to the workspace root when inside it, for shorter messages.
    pub fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join(name);
        File::create(&path).with_context(|| format!("opening {}", path.display()))
    }

    /// Held while servers are being started or stopped, so two commands never race.
    pub fn lock(&self) -> Result<File> {
        let file = self.lock_file("xtask.lock")?;
        if file.try_lock().is_err() {
            println!("waiting for another xtask command on this stack to finish …");
            file.lock().context("locking .stack/xtask.lock")?;
        }
        Ok(file)
    }

    /// Held (shared) by every `cargo xtask test` while its tests run: the one that started
    /// the stack stops it afterwards only if no other test run still holds it.
    pub fn in_use(&self) -> Result<File> {
        let file = self.lock_file("in-use.lock")?;
        file.lock_shared().context("locking .stack/in-use.lock")?;
        Ok(file)
    }

    /// Whether no test run holds [`Layout::in_use`] (checked after releasing our own hold).
    pub fn unused(&self) -> Result<bool> {
        let file = self.lock_file("in-use.lock")?;
        Ok(file.try_lock().is_ok())
    }
}
