//! The seeded fault schedule of a chaos run and the faults themselves.
//!
//! | fault | what is done | lifted when |
//! |---|---|---|
//! | `kill` | `kill -9` of a random live instance | it is started again, 1–3 s later, in its slot |
//! | `term` | SIGTERM of a random live instance (it finishes, commits and leaves its group) | it has exited and is started again |
//! | `storm` | two extra instances of random services join their groups | both are stopped (SIGTERM) 15 s later |
//! | `broker` | `kill -9` of the Kafka broker | `cargo xtask up` has started it again and it answers |
//! | `database` | the Cassandra node is stopped (SIGSTOP: connections hang, nothing is refused) | SIGCONT, 30 s later |
//!
//! The broker and the database are the local stack's own processes (`.stack/kafka.pid`,
//! `.stack/cassandra.pid`, checked against their command lines): a run against servers this
//! checkout did not start cannot inject those faults, and says so instead of pretending.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::fleet::{self, Fleet, SERVICES};
use super::probe::measure_stall;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `kill -9` of an instance.
    Kill,
    /// SIGTERM of an instance.
    Term,
    /// Extra instances joining, then leaving.
    Storm,
    /// `kill -9` of the broker.
    Broker,
    /// The database stopped for 30 s.
    Database,
}

impl Kind {
    /// Every kind, in schedule-table order.
    pub const ALL: [Kind; 5] = [
        Kind::Kill,
        Kind::Term,
        Kind::Storm,
        Kind::Broker,
        Kind::Database,
    ];

    /// The name the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Term => "term",
            Kind::Storm => "storm",
            Kind::Broker => "broker",
            Kind::Database => "database",
        }
    }
}

/// How long the database stays stopped.
pub const DATABASE_PAUSE: Duration = Duration::from_secs(30);
/// How long a storm's extra instances stay.
const STORM_STAY: Duration = Duration::from_secs(15);
/// How long the broker stays dead before it is started again.
const BROKER_DOWN: Duration = Duration::from_secs(5);

/// The schedule for `duration` of production: `(when, kind)` in time order. A `short` run
/// (the test suite's) has each kind once or a few times; a long one has a `kill` every ~20 s,
/// a `term` every ~60 s, a storm every ~90 s, and the broker and database faults every ~3 min.
pub fn schedule(rng: &mut ChaCha8Rng, duration: Duration, short: bool) -> Vec<(Duration, Kind)> {
    let d = duration.as_secs_f64();
    let mut out = Vec::new();
    let jitter = |rng: &mut ChaCha8Rng, s: f64, j: f64| {
        Duration::from_secs_f64((s + rng.random_range(-j..=j)).max(1.0))
    };
    if short {
        for s in [8.0, 28.0, 48.0] {
            if s < d {
                out.push((jitter(rng, s, 2.0), Kind::Kill));
            }
        }
        out.push((jitter(rng, (d * 0.3).min(18.0), 1.0), Kind::Term));
        // Before the broker fault: extras asked to stop while the broker is away wait for it.
        out.push((jitter(rng, (d * 0.2).min(12.0), 1.0), Kind::Storm));
        out.push((jitter(rng, (d * 0.55).min(34.0), 1.0), Kind::Broker));
        out.push((jitter(rng, (d * 0.7).min(42.0), 1.0), Kind::Database));
    } else {
        let mut every =
            |kind: Kind, first: f64, period: f64, j: f64, until: f64, out: &mut Vec<_>| {
                let mut s = first;
                while s < until {
                    out.push((jitter(rng, s, j), kind));
                    s += period;
                }
            };
        every(Kind::Kill, 10.0, 20.0, 5.0, d - 5.0, &mut out);
        every(Kind::Term, 30.0, 60.0, 10.0, d - 10.0, &mut out);
        every(Kind::Storm, 45.0, 90.0, 10.0, d - 20.0, &mut out);
        every(Kind::Database, 60.0, 180.0, 10.0, d - 30.0, &mut out);
        every(Kind::Broker, 100.0, 180.0, 10.0, d - 20.0, &mut out);
    }
    out.sort();
    out
}

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct Injected {
    /// Its kind.
    pub kind: Kind,
    /// What it hit (`sink-2`, `kafka`, `cassandra`, `classifier-3 + sink-4`).
    pub target: String,
    /// When it was injected, seconds into production.
    pub at_s: f64,
    /// When it was lifted, seconds into production.
    pub lifted_s: f64,
    /// For a `kill` of a transactional instance: how long the last stable offsets of its
    /// output topics stayed held back (see [`measure_stall`]); `None` when not measured or
    /// not decided within two minutes.
    pub stall_s: Option<f64>,
    /// What went wrong injecting or lifting it, if anything.
    pub error: Option<String>,
}

/// The local stack's servers, found by their pid files.
pub struct Stack {
    dir: PathBuf,
    xtask: Option<PathBuf>,
}

impl Stack {
    /// The stack in `dir` (`AUDITFLOW_STACK_DIR`), restarted with `xtask` (`AUDITFLOW_XTASK`).
    pub fn new(dir: &Path, xtask: Option<PathBuf>) -> Self {
        Self {
            dir: dir.to_owned(),
            xtask,
        }
    }

    /// The pid of the stack's `server` (`kafka`, `cassandra`), if this stack started it and it
    /// runs: the pid file's process must carry the stack's marker on its command line.
    pub fn pid(&self, server: &str) -> Result<u32, String> {
        let file = self.dir.join(format!("{server}.pid"));
        let pid: u32 = std::fs::read_to_string(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a pid", file.display()))?;
        let marker = format!("-Dauditflow.stack={}", self.dir.join(server).display());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == marker.as_bytes());
        if ours {
            Ok(pid)
        } else {
            Err(format!(
                "pid {pid} of {} is not this stack's {server}",
                file.display()
            ))
        }
    }

    /// Whether both servers are this stack's own, so that every fault can be injected.
    pub fn check(&self) -> Result<(), String> {
        self.pid("kafka")?;
        self.pid("cassandra")?;
        if self.xtask.is_none() {
            return Err("AUDITFLOW_XTASK is not set: the broker could not be restarted".into());
        }
        Ok(())
    }

    fn restart_broker(&self) -> Result<(), String> {
        let xtask = self.xtask.as_ref().ok_or("AUDITFLOW_XTASK is not set")?;
        let out = Command::new(xtask)
            .arg("up")
            .env("AUDITFLOW_STACK_DIR", &self.dir)
            .output()
            .map_err(|e| format!("{}: {e}", xtask.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "xtask up: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// A stopped database is always started again, even when the harness fails meanwhile.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        fleet::signal(self.0, "CONT");
    }
}

/// What a fault needs to reach.
pub struct Targets {
    /// The run's processes.
    pub fleet: Arc<Mutex<Fleet>>,
    /// The servers.
    pub stack: Stack,
    /// For stall measurements.
    pub bootstrap: String,
    /// The output topics of each transactional service: `(service, topics)`.
    pub outputs: Vec<(&'static str, Vec<String>)>,
    /// When production started.
    pub started: Instant,
    /// Kill and SIGTERM only instances of this service (`--only`), e.g. to measure the stall
    /// of killed classifiers.
    pub only: Option<&'static str>,
}

fn lock(fleet: &Mutex<Fleet>) -> std::sync::MutexGuard<'_, Fleet> {
    fleet
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `schedule`, each fault on a thread of its own (a database stop does not delay the next
/// kill), and returns them all as they happened once every one is lifted.
pub fn run(targets: Arc<Targets>, schedule: Vec<(Duration, Kind)>, seed: u64) -> Vec<Injected> {
    let mut threads = Vec::new();
    for (n, (at, kind)) in schedule.into_iter().enumerate() {
        let wait = at.saturating_sub(targets.started.elapsed());
        std::thread::sleep(wait);
        let targets = targets.clone();
        // Each fault draws from its own stream, so threads do not race for one generator.
        let mut rng =
            <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ ((n as u64 + 1) * 0x9e37));
        threads.push(std::thread::spawn(move || inject(&targets, kind, &mut rng)));
    }
    threads
        .into_iter()
        .map(|t| t.join().expect("a fault thread"))
        .collect()
}

fn inject(targets: &Targets, kind: Kind, rng: &mut ChaCha8Rng) -> Injected {
    let secs = || targets.started.elapsed().as_secs_f64();
    let at_s = secs();
    let mut stall_s = None;
    let mut error = None;
    let target = match kind {
        Kind::Kill | Kind::Term => {
            let picked = {
                let fleet = lock(&targets.fleet);
                fleet.live(targets.only).choose(rng).copied()
            };
            match picked {
                None => {
                    error = Some("no live instance".into());
                    "-".into()
                }
                Some(i) => {
                    let (name, service) = {
                        let fleet = lock(&targets.fleet);
                        (fleet.slots[i].name(), fleet.slots[i].service)
                    };
                    if kind == Kind::Kill {
                        lock(&targets.fleet).kill(i);
                        let outputs = targets
                            .outputs
                            .iter()
                            .find(|(s, _)| *s == service)
                            .map(|(_, t)| t.clone());
                        let stall =
                            outputs
                                .filter(|_| fleet::is_transactional(service))
                                .map(|topics| {
                                    let bootstrap = targets.bootstrap.clone();
                                    std::thread::spawn(move || {
                                        measure_stall(&bootstrap, &topics, Duration::from_secs(120))
                                    })
                                });
                        std::thread::sleep(Duration::from_millis(rng.random_range(1000..3000)));
                        if let Err(e) = lock(&targets.fleet).start(i) {
                            error = Some(format!("restarting {name}: {e}"));
                        }
                        match stall.map(|t| t.join()) {
                            Some(Ok(Ok(Some(s)))) => stall_s = Some(s),
                            Some(Ok(Ok(None))) => {
                                error = Some(format!(
                                    "{name}'s open transaction held the last stable offsets for over 120 s"
                                ));
                            }
                            Some(Ok(Err(e))) => {
                                eprintln!("chaos: measuring the stall after killing {name}: {e}")
                            }
                            Some(Err(_)) => eprintln!("chaos: the stall measurement panicked"),
                            None => {}
                        }
                    } else {
                        lock(&targets.fleet).terminate(i);
                        let until = Instant::now() + Duration::from_secs(90);
                        while !lock(&targets.fleet).is_down(i) && Instant::now() < until {
                            lock(&targets.fleet).poll();
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        if !lock(&targets.fleet).is_down(i) {
                            error = Some(format!("{name} did not stop within 90 s of SIGTERM"));
                            lock(&targets.fleet).kill(i);
                        }
                        std::thread::sleep(Duration::from_secs(1));
                        if let Err(e) = lock(&targets.fleet).start(i) {
                            error = Some(format!("restarting {name}: {e}"));
                        }
                    }
                    name
                }
            }
        }
        Kind::Storm => {
            let picks: Vec<&'static str> = (0..2)
                .map(|_| *SERVICES.choose(rng).expect("services"))
                .collect();
            let mut added = Vec::new();
            for service in picks {
                match lock(&targets.fleet).add(service, false) {
                    Ok(i) => added.push(i),
                    Err(e) => error = Some(format!("starting an extra {service}: {e}")),
                }
            }
            let names: Vec<String> = {
                let fleet = lock(&targets.fleet);
                added.iter().map(|&i| fleet.slots[i].name()).collect()
            };
            std::thread::sleep(STORM_STAY);
            for &i in &added {
                lock(&targets.fleet).terminate(i);
            }
            let until = Instant::now() + Duration::from_secs(90);
            while added.iter().any(|&i| !lock(&targets.fleet).is_down(i)) && Instant::now() < until
            {
                lock(&targets.fleet).poll();
                std::thread::sleep(Duration::from_millis(100));
            }
            names.join(" + ")
        }
        Kind::Broker => {
            match targets.stack.pid("kafka") {
                Err(e) => error = Some(e),
                Ok(pid) => {
                    fleet::signal(pid, "KILL");
                    std::thread::sleep(BROKER_DOWN);
                    if let Err(e) = targets.stack.restart_broker() {
                        error = Some(e);
                    }
                }
            }
            "kafka".into()
        }
        Kind::Database => {
            match targets.stack.pid("cassandra") {
                Err(e) => error = Some(e),
                Ok(pid) => {
                    if fleet::signal(pid, "STOP") {
                        let resume = Resume(pid);
                        std::thread::sleep(DATABASE_PAUSE);
                        drop(resume);
                    } else {
                        error = Some("SIGSTOP to cassandra failed".into());
                    }
                }
            }
            "cassandra".into()
        }
    };
    if let Some(e) = &error {
        eprintln!("chaos: {} fault: {e}", kind.name());
    }
    Injected {
        kind,
        target,
        at_s,
        lifted_s: secs(),
        stall_s,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_short_schedule_has_every_kind_and_a_long_one_has_them_repeatedly() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let short = schedule(&mut rng, Duration::from_secs(60), true);
        for kind in Kind::ALL {
            assert!(short.iter().any(|(_, k)| *k == kind), "{kind:?}");
        }
        assert!(short.windows(2).all(|w| w[0].0 <= w[1].0));
        let long = schedule(&mut rng, Duration::from_secs(600), false);
        let count = |kind| long.iter().filter(|(_, k)| *k == kind).count();
        assert!(count(Kind::Kill) >= 25, "{}", count(Kind::Kill));
        assert!(count(Kind::Broker) >= 3 && count(Kind::Database) >= 3);
        assert!(long.iter().all(|(at, _)| *at < Duration::from_secs(600)));
    }
}
