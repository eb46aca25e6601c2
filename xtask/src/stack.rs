//! The local stack as a whole: the lifecycle commands (`up`, `down`, `status`, `logs`,
//! `reset`) over both servers. Where their files live is the `layout` module; what a server
//! must provide, the `server` module.
//!
//! Several people (or agents) may drive one checkout at once, so the commands that start or
//! stop servers take a file lock, and `up` on a running stack only reports it.

use std::fs;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result, bail};
use crate::java;
use crate::layout::Layout;
use crate::server::{Prepare, Server};
use crate::{cassandra, fetch, kafka, probe, process, prometheus};

/// Both servers, in start order.
pub fn servers() -> [&'static dyn Server; 2] {
    [&kafka::Kafka, &cassandra::Cassandra]
}

/// The server called `name`, or a usage error listing the names.
pub fn server_named(name: &str) -> Result<&'static dyn Server> {
    match servers().into_iter().find(|s| s.name() == name) {
        Some(server) => Ok(server),
        None => bail!("unknown server {name:?}: expected kafka or cassandra"),
    }
}

/// A server after `launch`: started by this command (with its child handle) or found running.
pub struct Launched {
    server: &'static dyn Server,
    /// None for a server found answering that this stack did not start.
    pid: Option<u32>,
    child: Option<Child>,
    /// When it was started (or found running), for the "ready after" note.
    since: Instant,
}

impl Launched {
    pub fn started_here(&self) -> bool {
        self.child.is_some()
    }
}

/// Starts every server that is not running, without waiting for readiness (see
/// [`await_ready`]), so callers can do other work while the JVMs boot.
pub fn launch(layout: &Layout) -> Result<Vec<Launched>> {
    let _lock = layout.lock()?;
    fs::create_dir_all(layout.logs_dir())
        .with_context(|| format!("creating {}", layout.logs_dir().display()))?;
    let mut java = None;
    let mut launched = Vec::new();
    for server in servers() {
        let pid_file = layout.pid_file(server.name());
        let marker = layout.marker(server.name());
        if let Some(pid) = process::running_pid(&pid_file, &marker) {
            println!("{} is already running (pid {pid})", server.title());
            launched.push(Launched {
                server,
                pid: Some(pid),
                child: None,
                since: Instant::now(),
            });
            continue;
        }
        if probe::port_open(server.addr()) {
            // Someone else's server (another checkout, Docker): use it if it is the real thing.
            match server.probe() {
                Ok(answer) => {
                    println!(
                        "{} already answers on {} but was not started from {} ({answer}); \
                         using it as it is",
                        server.title(),
                        server.addr(),
                        layout.shown(layout.dir())
                    );
                    launched.push(Launched {
                        server,
                        pid: None,
                        child: None,
                        since: Instant::now(),
                    });
                    continue;
                }
                Err(e) => bail!(
                    "{} is taken by a process that is not {} ({e}) and that this stack did not \
                     start (no live pid in {}): stop it, or point the tests elsewhere with \
                     AUDITFLOW_STACK=external",
                    server.addr(),
                    server.title(),
                    layout.shown(&pid_file)
                ),
            }
        }
        let java = match &java {
            Some(java) => java,
            None => java.insert(java::find()?),
        };
        let jars = fetch::ensure_jars(layout, server, java)?;
        let dir = layout.service_dir(server.name());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cmd = Command::new(&java.bin);
        cmd.current_dir(&dir).arg(&marker);
        let ctx = Prepare {
            layout,
            java,
            jars: &jars,
            dir,
        };
        server.prepare(&ctx, &mut cmd)?;
        let log = layout.log_file(server.name());
        process::rotate_log(&log);
        let child = process::spawn_detached(&mut cmd, &log, &pid_file)
            .with_context(|| format!("starting {}", server.title()))?;
        println!(
            "{} starting (pid {}), log {}",
            server.title(),
            child.id(),
            layout.shown(&log)
        );
        launched.push(Launched {
            server,
            pid: Some(child.id()),
            child: Some(child),
            since: Instant::now(),
        });
    }
    Ok(launched)
}

/// Waits until every launched server answers its probe, or fails naming the log to read.
pub fn await_ready(layout: &Layout, launched: &mut [Launched]) -> Result<()> {
    for l in launched.iter_mut() {
        wait_ready(layout, l)?;
    }
    Ok(())
}

fn wait_ready(layout: &Layout, l: &mut Launched) -> Result<()> {
    let server = l.server;
    let log = layout.log_file(server.name());
    let marker = layout.marker(server.name());
    let timeout = server.ready_timeout();
    let start = Instant::now();
    let mut next_note = Duration::from_secs(10);
    loop {
        let exited = match &mut l.child {
            Some(child) => child
                .try_wait()
                .context("checking the server process")?
                .map(|status| status.to_string()),
            None => l
                .pid
                .filter(|pid| !process::is_ours(*pid, &marker))
                .map(|_| "it stopped".to_string()),
        };
        if let Some(how) = exited {
            let _ = fs::remove_file(layout.pid_file(server.name()));
            bail!(
                "{} exited during startup ({how}); last lines of {}:\n{}",
                server.title(),
                layout.shown(&log),
                process::tail(&log, 25)
            );
        }
        let probe = server.probe();
        match probe {
            Ok(answer) => {
                println!(
                    "{} ready on {} after {}s: {answer}",
                    server.title(),
                    server.addr(),
                    l.since.elapsed().as_secs()
                );
                return Ok(());
            }
            Err(e) if start.elapsed() >= timeout => {
                let still = match l.pid {
                    Some(pid) => format!(
                        "; it is still running (pid {pid}): stop it with `cargo xtask down`"
                    ),
                    None => String::new(),
                };
                bail!(
                    "{} did not become ready on {} within {}s (last probe: {e}); read {}{still}",
                    server.title(),
                    server.addr(),
                    timeout.as_secs(),
                    layout.shown(&log)
                )
            }
            Err(_) => {}
        }
        if start.elapsed() >= next_note {
            println!(
                "  waiting for {} on {} … {}s",
                server.title(),
                server.addr(),
                l.since.elapsed().as_secs()
            );
            next_note += Duration::from_secs(10);
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// `cargo xtask up`: start what is not running and wait until both servers answer; then
/// Prometheus beside them when one can be had (the `prometheus` module; the stack runs
/// without it otherwise, saying so).
pub fn up(layout: &Layout) -> Result<Vec<Launched>> {
    let mut launched = launch(layout)?;
    await_ready(layout, &mut launched)?;
    let _lock = layout.lock()?;
    prometheus::up(layout)?;
    Ok(launched)
}

/// Stops the servers this stack started (by their recorded pids).
pub fn down(layout: &Layout) -> Result<()> {
    let _lock = layout.lock()?;
    // The pipeline `cargo xtask demo` left running uses both servers: it goes first, and
    // Prometheus, which watches it, next.
    crate::pipeline::stop(layout)?;
    prometheus::down(layout)?;
    for server in servers().into_iter().rev() {
        stop_server(layout, server)?;
    }
    Ok(())
}

/// Stops only the servers in `launched` that this command started.
pub fn stop_started(layout: &Layout, launched: &[Launched]) -> Result<()> {
    let _lock = layout.lock()?;
    for l in launched.iter().rev().filter(|l| l.started_here()) {
        stop_server(layout, l.server)?;
    }
    Ok(())
}

fn stop_server(layout: &Layout, server: &dyn Server) -> Result<()> {
    let marker = layout.marker(server.name());
    if !layout.stop_recorded(server.name(), &marker, server.title())? {
        println!("{} is not running", server.title());
    }
    Ok(())
}

/// `cargo xtask status`: one line per server. Returns whether both answer.
pub fn status(layout: &Layout) -> Result<bool> {
    let mut all_ready = true;
    for server in servers() {
        let pid = process::running_pid(
            &layout.pid_file(server.name()),
            &layout.marker(server.name()),
        );
        let state = match pid {
            Some(pid) => format!("running (pid {pid})"),
            None => "stopped".to_string(),
        };
        let answer = match server.probe() {
            Ok(answer) => format!("answering: {answer}"),
            Err(e) => {
                all_ready = false;
                format!("not answering ({e})")
            }
        };
        println!(
            "{:<10} {:<20} {} {answer}",
            server.name(),
            state,
            server.addr()
        );
    }
    let prometheus = match prometheus::running(layout) {
        Some(pid) => format!("running (pid {pid})"),
        None => "stopped (optional)".to_string(),
    };
    println!(
        "{:<10} {:<20} {}",
        prometheus::NAME,
        prometheus,
        prometheus::ADDR
    );
    println!("logs: {}", layout.shown(&layout.logs_dir()));
    Ok(all_ready)
}

/// `cargo xtask logs [server]`: the log path and its last lines.
pub fn logs(layout: &Layout, only: Option<&'static dyn Server>, lines: usize) {
    for server in servers() {
        if only.is_some_and(|o| o.name() != server.name()) {
            continue;
        }
        let log = layout.log_file(server.name());
        println!("==> {} <==", log.display());
        println!("{}", process::tail(&log, lines));
    }
}

/// `cargo xtask reset`: stop, then delete the servers' data (jars stay).
pub fn reset(layout: &Layout) -> Result<()> {
    down(layout)?;
    let _lock = layout.lock()?;
    let names = servers().map(|s| s.name());
    for name in names.into_iter().chain([prometheus::NAME]) {
        let data = layout.service_dir(name).join("data");
        if data.exists() {
            fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
            println!("removed {}", layout.shown(&data));
        }
    }
    Ok(())
}
