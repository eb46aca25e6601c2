//! `cargo xtask cassandra-node`: a private single-node Cassandra in the foreground, for a test
//! that must stop the database for real (tests/sink_outage.rs) without touching the shared
//! node on 9042 that other tests use at the same time.
//!
//! It is the shared node's launch (`cassandra.rs`: same jars, templates and JVM flags) with
//! its own folder, cluster name, ports and heap. Once the jars are there (fetched like `up`
//! does) the command *becomes* the JVM (`exec`), so the caller's child process is Cassandra
//! itself: killing it stops the database, and running the command again on the same folder
//! starts it again on the same data. Logs go to stdout; no pid file is written, since whoever
//! started the node stops it.

use std::convert::Infallible;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cassandra::{self, Cassandra, Node};
use crate::error::{Context, Error, Result, bail};
use crate::layout::Layout;
use crate::server::Prepare;
use crate::stack;
use crate::{fetch, java, probe};

pub const USAGE: &str =
    "cassandra-node --dir DIR --cql-port PORT --storage-port PORT [--heap SIZE]";

/// What `cassandra-node` was asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// The node's folder: configs, `data/`; its name (`auditflow-<folder name>`) is the cluster
    /// name, so the data of one folder always belongs to the same cluster.
    pub dir: PathBuf,
    pub cql_port: u16,
    pub storage_port: u16,
    pub heap: String,
}

/// `--dir DIR --cql-port PORT --storage-port PORT [--heap SIZE]`, in any order.
pub fn parse_args(args: &[String]) -> Result<Args> {
    let (mut dir, mut cql_port, mut storage_port, mut heap) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| Error::new(format!("{flag} needs a value; usage: {USAGE}")))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--cql-port" => cql_port = Some(port(flag, value)?),
            "--storage-port" => storage_port = Some(port(flag, value)?),
            "--heap" => heap = Some(heap_size(value)?),
            _ => bail!("unknown argument {flag:?}; usage: {USAGE}"),
        }
    }
    let (Some(dir), Some(cql_port), Some(storage_port)) = (dir, cql_port, storage_port) else {
        bail!("--dir, --cql-port and --storage-port are required; usage: {USAGE}");
    };
    if cql_port == storage_port {
        bail!("--cql-port and --storage-port must differ (both {cql_port})");
    }
    for p in [cql_port, storage_port] {
        let shared = cassandra::SHARED;
        if p == shared.cql_port || p == shared.storage_port {
            bail!("port {p} belongs to the shared stack's Cassandra: pick another");
        }
    }
    Ok(Args {
        dir,
        cql_port,
        storage_port,
        heap: heap.unwrap_or_else(|| "512m".to_string()),
    })
}

fn port(flag: &str, value: &str) -> Result<u16> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("{flag} {value}: not a TCP port"),
    }
}

/// A JVM heap size as `-Xmx` takes it: digits and an optional k, m or g.
fn heap_size(value: &str) -> Result<String> {
    let digits = value.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    let unit_len = value.len() - digits.len();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || unit_len > 1 {
        bail!("--heap {value}: expected a size like 512m or 1g");
    }
    Ok(value.to_string())
}

/// The cluster name of a node kept in `dir`: `auditflow-<folder name>`, YAML-safe.
fn cluster_name(dir: &Path) -> String {
    let folder = dir.file_name().unwrap_or_default().to_string_lossy();
    let safe: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("auditflow-{safe}")
}

/// `path` made absolute, with the links and `..` of its existing part resolved, creating
/// nothing (a refused folder is not left behind).
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return Ok(missing.iter().rev().fold(resolved, |p, part| p.join(part)));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name);
                existing = parent;
            }
            _ => bail!("cannot resolve {}", path.display()),
        }
    }
}

/// Fetches the jars if needed, writes the node's configs and replaces this process with the
/// node's JVM. Returns only on failure.
pub fn run(layout: &Layout, args: &Args) -> Result<Infallible> {
    let dir = resolve(&args.dir)?;
    for server in stack::servers() {
        let shared = layout.service_dir(server.name());
        if shared
            .canonicalize()
            .is_ok_and(|shared| dir.starts_with(shared))
        {
            bail!(
                "{} is inside the shared {}'s folder: give the node a folder of its own",
                dir.display(),
                server.title()
            );
        }
    }
    for p in [args.cql_port, args.storage_port] {
        if probe::port_open(&format!("127.0.0.1:{p}")) {
            bail!("127.0.0.1:{p} is already in use (by an earlier node still running?)");
        }
    }

    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let java = java::find()?;
    let jars = fetch::ensure_jars(layout, &Cassandra, &java)?;
    let cluster_name = cluster_name(&dir);
    let node = Node {
        cluster_name: &cluster_name,
        cql_port: args.cql_port,
        storage_port: args.storage_port,
        heap: &args.heap,
    };
    let mut cmd = Command::new(&java.bin);
    cmd.current_dir(&dir);
    let ctx = Prepare {
        layout,
        java: &java,
        jars: &jars,
        dir: dir.clone(),
    };
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    cassandra::configure(&ctx, &node, &logs, &mut cmd)?;
    eprintln!(
        "cassandra-node: cluster {cluster_name}, CQL 127.0.0.1:{}, storage port {}, heap {}, \
         data {}",
        node.cql_port,
        node.storage_port,
        node.heap,
        dir.join("data").display()
    );
    let e = cmd.exec();
    bail!("starting {}: {e}", java.bin.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags_in_any_order_with_a_default_heap() {
        let parsed =
            parse_args(&args("--storage-port 17000 --dir /tmp/n --cql-port 19042")).unwrap();
        assert_eq!(
            parsed,
            Args {
                dir: PathBuf::from("/tmp/n"),
                cql_port: 19042,
                storage_port: 17000,
                heap: "512m".into()
            }
        );
        let parsed = parse_args(&args(
            "--dir n --cql-port 19042 --storage-port 17000 --heap 1g",
        ))
        .unwrap();
        assert_eq!(parsed.heap, "1g");
    }

    #[test]
    fn refuses_missing_bad_or_shared_values() {
        for line in [
            "--dir n --cql-port 19042",
            "--dir n --cql-port 19042 --storage-port",
            "--dir n --cql-port 0 --storage-port 17000",
            "--dir n --cql-port 70000 --storage-port 17000",
            "--dir n --cql-port 19042 --storage-port 19042",
            "--dir n --cql-port 9042 --storage-port 17000",
            "--dir n --cql-port 19042 --storage-port 7000",
            "--dir n --cql-port 19042 --storage-port 17000 --heap big",
            "--dir n --cql-port 19042 --storage-port 17000 --heap 512mm",
            "--dir n --cql-port 19042 --storage-port 17000 --heap m",
            "--dir n --cql-port 19042 --storage-port 17000 --verbose yes",
        ] {
            assert!(parse_args(&args(line)).is_err(), "accepted {line:?}");
        }
    }

    #[test]
    fn resolves_folders_that_do_not_exist_yet_without_creating_them() {
        let base = std::env::temp_dir().canonicalize().unwrap();
        let missing = base.join("auditflow-xtask-missing");
        assert_eq!(resolve(&missing.join("a/b")).unwrap(), missing.join("a/b"));
        assert!(!missing.exists());
        // `..` over folders that exist is resolved; over ones that do not, refused.
        let name = base.file_name().unwrap();
        let roundabout = base.join("..").join(name).join("new");
        assert_eq!(resolve(&roundabout).unwrap(), base.join("new"));
        assert!(resolve(&missing.join("a/../b")).is_err());
    }

    #[test]
    fn cluster_names_come_from_the_folder_name() {
        let name = cluster_name(Path::new("/x/.stack/cassandra-outage"));
        assert_eq!(name, "auditflow-cassandra-outage");
        assert_eq!(cluster_name(Path::new("/x/a b:#c")), "auditflow-a-b--c");
    }
}
