//! Where the local stack's files live.
//!
//! Everything — jars, data, generated configs, logs, pid files — lives under one git-ignored
//! folder, `.stack/` at the workspace root (or `$AUDITFLOW_STACK_DIR`), so `rm -rf .stack` is
//! a complete uninstall. The locks that keep two commands from starting or stopping servers
//! at once are files there too.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::process;

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

    /// The workspace root.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// Stops the process recorded as `name` (its pid in [`pid_file`](Self::pid_file)) if it
    /// still runs with `marker` on its command line: SIGTERM, SIGKILL after 60 s without a
    /// clean shutdown. Removes the pid file and says how it went, as `<title> stopped`.
    /// Returns whether such a process was running. Used for the servers and for the demo's
    /// pipeline alike.
    pub fn stop_recorded(&self, name: &str, marker: &str, title: &str) -> Result<bool> {
        let pid_file = self.pid_file(name);
        let Some(pid) = process::running_pid(&pid_file, marker) else {
            return Ok(false);
        };
        let start = Instant::now();
        let killed = process::stop(pid, marker, Duration::from_secs(60))
            .with_context(|| format!("stopping {title} (pid {pid})"))?;
        let _ = fs::remove_file(&pid_file);
        let how = if killed {
            "killed after 60 s without a clean shutdown"
        } else {
            "stopped"
        };
        println!(
            "{title} {how} (pid {pid}, {:.1}s)",
            start.elapsed().as_secs_f32()
        );
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A real process, recorded as the stack records its servers and the demo's pipeline.
    #[test]
    fn stop_recorded_stops_the_recorded_process_only_and_forgets_it() {
        let dir = std::env::temp_dir().join(format!("xtask-layout-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let layout = Layout {
            root: dir.clone(),
            dir: dir.clone(),
        };
        assert!(!layout.stop_recorded("sleeper", "x", "sleeper").unwrap());

        // `sleep`'s own argument is the marker: unique to this test run.
        let marker = format!("600.{}", std::process::id());
        let mut child = Command::new("sleep").arg(&marker).spawn().unwrap();
        let pid = child.id();
        let record = || fs::write(layout.pid_file("sleeper"), format!("{pid}\n")).unwrap();
        record();
        // A recorded pid whose command line lacks the marker is not ours: never signalled.
        assert!(!layout.stop_recorded("sleeper", "600.0", "sleeper").unwrap());
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process still runs"
        );

        record();
        assert!(layout.stop_recorded("sleeper", &marker, "sleeper").unwrap());
        let status = child.wait().unwrap();
        assert!(!status.success(), "stopped by a signal: {status}");
        assert!(
            !layout.pid_file("sleeper").exists(),
            "the pid file is removed"
        );
        assert!(!layout.stop_recorded("sleeper", &marker, "sleeper").unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}
