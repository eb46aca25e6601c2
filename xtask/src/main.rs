//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! It owns the local stack — real Apache Kafka and Apache Cassandra started as plain JVM
//! processes, no Docker — and the one test command that CI also runs. It depends on std only
//! so it compiles in seconds, before the heavy workspace crates.
//!
//! Where to read on: `stack.rs` (the lifecycle), `layout.rs` (where the files live),
//! `server.rs` (what a server provides) and `kafka.rs` / `cassandra.rs` (each server),
//! `fetch.rs` (jars via Maven), `probe.rs` (readiness over the wire), `testrun.rs`, `chaos.rs` (the chaos harness, run in release mode), `bench.rs` (every benchmark harness, one table), `node.rs`
//! (a private Cassandra node for a test that stops the database).

mod bench;
mod cassandra;
mod chaos;
mod demo;
mod error;
mod fetch;
mod java;
mod kafka;
mod layout;
mod node;
mod pipeline;
mod probe;
mod process;
mod prometheus;
mod server;
mod stack;
mod testrun;

use std::process::ExitCode;

use error::{Context, Result};
use layout::Layout;

const USAGE: &str = "\
usage: cargo xtask <command>

  up                 fetch (first run) and start Kafka (127.0.0.1:9092) and Cassandra (127.0.0.1:9042)
  down               stop the demo's pipeline (if running), then both servers
  status             whether each runs and answers (exit 1 when one does not)
  logs [kafka|cassandra] [-n LINES]
                     the end of a server's log, and its path
  reset              stop both and delete their data (the jars stay)
  test [ARGS]        start the stack if needed, run `cargo test --workspace ARGS`, then leave the
                     stack as it was (e.g. `cargo xtask test -- -p auditflow-integration-tests`)
  chaos [--minutes M] [--rate R] [--seed S] [--short] [--fresh-transactional-ids] [--only SERVICE]
                     start the stack, build auditflow and the chaos harness (release), and run
                     the pipeline under faults, several instances of every service (default 10
                     minutes at 200/s); prints the ledger, writes target/chaos/<run>/report.json,
                     exits 1 on any loss or duplicate (RELIABILITY.md)
  bench [--quick]    start the stack, build auditflow and the benchmark harnesses (release), run
                     criterion for the classify core and every load harness in turn, and print
                     one table (figure, value, baseline, ratio, peak RSS, machine, commit);
                     --quick sizes each run for a few minutes (BENCHMARKS.md)
  demo               start the stack, build auditflow, run the pipeline (`auditflow run all`,
                     left running) and `auditflow demo` against it
  cassandra-node --dir DIR --cql-port PORT --storage-port PORT [--heap SIZE]
                     a private single-node Cassandra (cluster auditflow-<DIR's name>, default
                     heap 512m) on its own folder and ports, in the foreground: the process
                     becomes the JVM, for a test to stop and start again (tests/sink_outage.rs)

Files live in .stack/ at the workspace root (override: AUDITFLOW_STACK_DIR).
Tests read AUDITFLOW_KAFKA_BOOTSTRAP and AUDITFLOW_CQL_NODES; with AUDITFLOW_STACK=external
`test` uses those addresses and starts nothing. `test` also gives them AUDITFLOW_XTASK (this
program) and AUDITFLOW_STACK_DIR (absolute).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    let layout = Layout::from_env()?;
    match (command.as_str(), rest) {
        ("up", []) => {
            stack::up(&layout)?;
            println!("stack is up; `cargo xtask down` stops it");
        }
        ("down", []) => stack::down(&layout)?,
        ("status", []) => {
            let ready = stack::status(&layout)?;
            return Ok(if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        ("logs", rest) => {
            let (server, lines) = parse_logs_args(rest)?;
            stack::logs(&layout, server, lines);
        }
        ("reset", []) => stack::reset(&layout)?,
        ("test", rest) => return testrun::run(&layout, rest),
        ("demo", []) => demo::run(&layout)?,
        ("chaos", rest) => return chaos::run(&layout, rest),
        ("bench", rest) => return bench::run(&layout, rest),
        ("cassandra-node", rest) => match node::run(&layout, &node::parse_args(rest)?)? {},
        ("help" | "-h" | "--help", _) => println!("{USAGE}"),
        _ => {
            eprintln!("{USAGE}");
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `[kafka|cassandra] [-n LINES]`, in any order.
fn parse_logs_args(args: &[String]) -> Result<(Option<&'static dyn server::Server>, usize)> {
    let mut server = None;
    let mut lines = 40;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-n" {
            let n = it
                .next()
                .ok_or_else(|| error::Error::new("-n needs a number of lines"))?;
            lines = n
                .parse()
                .with_context(|| format!("-n {n}: not a number of lines"))?;
        } else {
            server = Some(stack::server_named(arg)?);
        }
    }
    Ok((server, lines))
}
