//! The services of a chaos run as separate `auditflow run <service>` processes, several per
//! service, each in a *slot*: `<service>-<n>`, its metrics port, its log file and (unless the
//! run asks for fresh ids) its `[kafka] instance_id`, which a restart in the same slot keeps.
//!
//! The fleet is also the run's orchestrator: a process that exits without the harness having
//! stopped it is recorded as an unexpected exit and started again a second later, as
//! Kubernetes or systemd would.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The four services, in pipeline order.
pub const SERVICES: [&str; 4] = [
    "classifier",
    "security-monitor",
    "sink",
    "causality-indexer",
];

/// Whether `service` commits through Kafka transactions (its kill can leave one open).
pub fn is_transactional(service: &str) -> bool {
    matches!(service, "classifier" | "security-monitor")
}

/// One slot and the process in it, if any.
pub struct Slot {
    /// The service it runs.
    pub service: &'static str,
    /// Its number among the service's slots.
    pub n: u32,
    /// Where it serves `/metrics`.
    pub port: u16,
    /// Whether the slot is one of the run's base instances (not a storm's extra).
    pub base: bool,
    child: Option<Child>,
    /// Set when the harness stopped it: its exit is expected.
    stopping: bool,
    /// How often it was started.
    pub starts: u32,
    /// The largest peak RSS (VmHWM, KiB) any of its processes reached.
    pub peak_rss_kib: u64,
}

impl Slot {
    /// `<service>-<n>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.service, self.n)
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether a process runs in it that the harness has not asked to stop.
    pub fn live(&self) -> bool {
        self.child.is_some() && !self.stopping
    }
}

/// A process that exited on its own.
#[derive(Debug, Clone)]
pub struct Exit {
    /// The slot, `<service>-<n>`.
    pub slot: String,
    /// Seconds into the run.
    pub at_s: f64,
    /// How it exited.
    pub status: String,
}

/// Every slot of the run.
pub struct Fleet {
    binary: PathBuf,
    config_file: PathBuf,
    logs: PathBuf,
    stable_ids: bool,
    started: Instant,
    /// Every slot ever made, base and extra.
    pub slots: Vec<Slot>,
    /// Processes that exited without being asked to.
    pub exits: Vec<Exit>,
    /// When each slot whose process died on its own may be started again.
    restart_due: Vec<(usize, Instant)>,
}

impl Fleet {
    /// A fleet of `binary` processes reading `config_file`, logging under `logs`.
    pub fn new(binary: &Path, config_file: &Path, logs: &Path, stable_ids: bool) -> Self {
        Self {
            binary: binary.to_owned(),
            config_file: config_file.to_owned(),
            logs: logs.to_owned(),
            stable_ids,
            started: Instant::now(),
            slots: Vec::new(),
            exits: Vec::new(),
            restart_due: Vec::new(),
        }
    }

    /// Makes a new slot for `service` and starts it; returns the slot's index.
    pub fn add(&mut self, service: &'static str, base: bool) -> std::io::Result<usize> {
        let n = self.slots.iter().filter(|s| s.service == service).count() as u32;
        self.slots.push(Slot {
            service,
            n,
            port: crate::metrics::free_port(),
            base,
            child: None,
            stopping: false,
            starts: 0,
            peak_rss_kib: 0,
        });
        let i = self.slots.len() - 1;
        self.start(i)?;
        Ok(i)
    }

    /// Starts slot `i`'s process (it must have none).
    pub fn start(&mut self, i: usize) -> std::io::Result<()> {
        let slot = &self.slots[i];
        let log = self.logs.join(format!("{}.log", slot.name()));
        let out = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut command = Command::new(&self.binary);
        command
            .args(["run", slot.service])
            .env("AUDITFLOW_CONFIG", &self.config_file)
            .env(
                "AUDITFLOW_METRICS__LISTEN",
                format!("127.0.0.1:{}", slot.port),
            )
            .env(
                "RUST_LOG",
                std::env::var("AUDITFLOW_CHAOS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // Overrides in the harness's own environment must not reach the services: the run's
        // configuration file says everything.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AUDITFLOW_")
                && name.to_string_lossy().contains("__")
            {
                command.env_remove(&name);
            }
        }
        if self.stable_ids {
            command.env("AUDITFLOW_KAFKA__INSTANCE_ID", slot.name());
        }
        let child = command.spawn()?;
        let slot = &mut self.slots[i];
        slot.child = Some(child);
        slot.stopping = false;
        slot.starts += 1;
        Ok(())
    }

    /// `kill -9` of slot `i`'s process; its exit is expected. Returns whether one ran.
    pub fn kill(&mut self, i: usize) -> bool {
        self.sample_rss();
        let slot = &mut self.slots[i];
        let Some(mut child) = slot.child.take() else {
            return false;
        };
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    /// SIGTERM to slot `i`'s process (a graceful stop); [`Fleet::poll`] reaps it.
    pub fn terminate(&mut self, i: usize) -> bool {
        let slot = &mut self.slots[i];
        let Some(pid) = slot.pid() else { return false };
        slot.stopping = true;
        signal(pid, "TERM")
    }

    /// Whether slot `i` has no process (a stop it was asked for has finished).
    pub fn is_down(&self, i: usize) -> bool {
        self.slots[i].child.is_none()
    }

    /// Reaps exited processes: expected exits free their slot; any other is recorded and its
    /// slot started again a second later. Also samples every process's peak RSS.
    pub fn poll(&mut self) {
        self.sample_rss();
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let exited = match self.slots[i].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status),
                _ => None,
            };
            let Some(status) = exited else { continue };
            let slot = &mut self.slots[i];
            slot.child = None;
            if !std::mem::take(&mut slot.stopping) {
                let exit = Exit {
                    slot: slot.name(),
                    at_s: self.started.elapsed().as_secs_f64(),
                    status: status.to_string(),
                };
                eprintln!("chaos: {} exited on its own ({})", exit.slot, exit.status);
                self.exits.push(exit);
                self.restart_due.push((i, now + Duration::from_secs(1)));
            }
        }
        let (due, later): (Vec<_>, Vec<_>) =
            self.restart_due.drain(..).partition(|(_, at)| *at <= now);
        self.restart_due = later;
        for (i, _) in due {
            // A fresh port, in case the old one was what it could not bind.
            self.slots[i].port = crate::metrics::free_port();
            if self.slots[i].child.is_none()
                && let Err(e) = self.start(i)
            {
                eprintln!("chaos: restarting {}: {e}", self.slots[i].name());
            }
        }
    }

    fn sample_rss(&mut self) {
        for slot in &mut self.slots {
            if let Some(kib) = slot.pid().and_then(peak_rss_kib) {
                slot.peak_rss_kib = slot.peak_rss_kib.max(kib);
            }
        }
    }

    /// Indices of the slots with a live process, optionally only `service`'s.
    pub fn live(&self, service: Option<&str>) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].live() && service.is_none_or(|s| self.slots[i].service == s))
            .collect()
    }

    /// Stops every process gracefully (SIGTERM), waits up to `grace` for them, then kills what
    /// is left.
    pub fn stop_all(&mut self, grace: Duration) {
        for i in 0..self.slots.len() {
            self.terminate(i);
        }
        let until = Instant::now() + grace;
        while Instant::now() < until && self.slots.iter().any(|s| s.child.is_some()) {
            self.poll();
            std::thread::sleep(Duration::from_millis(100));
        }
        for i in 0..self.slots.len() {
            self.kill(i);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `kill -<signal> <pid>`; whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A process's peak resident set (`VmHWM`), KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
