//! The servers are plain detached processes, tracked only by the pid files xtask writes.
//! A process counts as ours when `/proc/<pid>/cmdline` holds the marker argument we gave it
//! (`-Dauditflow.stack=<dir>`), so a recycled pid or a server started some other way is never
//! signalled. Stopping goes by that pid — SIGTERM, a grace period, then SIGKILL — never by
//! process name, since other checkouts and other people's servers may share the machine.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result, bail};

/// Starts `cmd` in its own process group (Ctrl-C in the terminal that ran xtask does not reach
/// it), with no stdin and stdout/stderr appended to `log`, and records its pid in `pid_file`.
pub fn spawn_detached(cmd: &mut Command, log: &Path, pid_file: &Path) -> Result<Child> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    fs::write(pid_file, format!("{}\n", child.id()))
        .with_context(|| format!("writing {}", pid_file.display()))?;
    Ok(child)
}

/// The pid recorded in `pid_file` when that process is alive and carries `marker`; a pid file
/// left behind by a dead process is removed.
pub fn running_pid(pid_file: &Path, marker: &str) -> Option<u32> {
    let pid = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    if is_ours(pid, marker) {
        Some(pid)
    } else {
        let _ = fs::remove_file(pid_file);
        None
    }
}

/// Whether `pid` is a live (not zombie) process whose command line contains `marker`.
pub fn is_ours(pid: u32, marker: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    if matches!(state, None | Some('Z' | 'X')) {
        return false;
    }
    let Some(cmdline) = command_line(pid) else {
        return false;
    };
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == marker.as_bytes())
}

/// `/proc/<pid>/cmdline` of a live process. A process in the middle of `execve` reads as an
/// empty command line (seen: `(sleep) R` in its stat, `""` in its cmdline, just after
/// `Command::spawn` returned), so whether it is ours is not known yet: an empty one is read
/// again for up to a second before it counts as "no marker".
fn command_line(pid: u32) -> Option<Vec<u8>> {
    let path = format!("/proc/{pid}/cmdline");
    for _ in 0..100 {
        let cmdline = fs::read(&path).ok()?;
        if !cmdline.is_empty() {
            return Some(cmdline);
        }
        thread::sleep(Duration::from_millis(10));
    }
    Some(Vec::new())
}

/// Stops our process `pid`: SIGTERM, up to `grace` for a clean shutdown, then SIGKILL.
/// Returns whether it had to be killed.
pub fn stop(pid: u32, marker: &str, grace: Duration) -> Result<bool> {
    signal(pid, "TERM")?;
    if wait_gone(pid, marker, grace) {
        return Ok(false);
    }
    signal(pid, "KILL")?;
    if wait_gone(pid, marker, Duration::from_secs(10)) {
        return Ok(true);
    }
    bail!("process {pid} is still alive 10 s after SIGKILL")
}

fn signal(pid: u32, signal: &str) -> Result<()> {
    // std has no kill(2); the kill binary (procps) is everywhere we run. A failure means the
    // process is already gone, which is what the caller wants anyway, so only a missing
    // binary is an error.
    Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    Ok(())
}

fn wait_gone(pid: u32, marker: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !is_ours(pid, marker) {
            return true;
        }
        thread::sleep(Duration::from_millis(200));
    }
    !is_ours(pid, marker)
}

/// Waits for `child` to exit, printing `still <doing> … Ns` now and then so a long first run
/// does not look hung. Returns whether it exited successfully.
pub fn wait_with_progress(child: &mut Child, doing: &str) -> Result<bool> {
    let start = Instant::now();
    let mut next_note = Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(status.success());
        }
        if start.elapsed() >= next_note {
            println!("  still {doing} … {}s", start.elapsed().as_secs());
            next_note += Duration::from_secs(15);
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// The last `lines` lines of a (possibly large) log file, or a note that it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Keeps the previous run's log as `<name>.previous.log` and starts a fresh one.
pub fn rotate_log(log: &Path) {
    if log.exists() {
        let _ = fs::rename(log, log.with_extension("previous.log"));
    }
}
