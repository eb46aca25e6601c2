//! `cargo xtask bench [--quick]`: every benchmark harness in turn, one table at the end.
//!
//! It starts the stack, builds the release binary and the harnesses, runs criterion for the
//! classify core and each load harness (BENCHMARKS.md says what each measures), and collects
//! the lines each harness prints as `BENCH|figure|value|baseline|ratio|peak RSS MiB` into one
//! table with the machine and the commit. Every harness's whole output goes to
//! `target/bench/<unix time>/<harness>.log`. `--quick` runs each at a size that fits in a few
//! minutes (figures for a smoke check, not for BENCHMARKS.md). Nothing here asserts a timing:
//! a harness fails only when its run is wrong (records missing, a child exiting early).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::error::{Context, Error, Result};
use crate::layout::Layout;
use crate::stack;

/// One harness: which package's example, its arguments (full, quick) and environment.
struct Harness {
    name: &'static str,
    package: &'static str,
    full: &'static [&'static str],
    quick: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// The load harnesses, in the order they run; `BINARY` is replaced by the release binary.
const HARNESSES: &[Harness] = &[
    Harness {
        name: "classifier_load",
        package: "auditflow-classifier",
        // A million: at 300,000 the later instances were still joining when most events
        // were done (BENCHMARKS.md, "Latest full run").
        full: &["1000000", "BINARY"],
        quick: &["100000", "BINARY"],
        env: &[("LOAD_INSTANCES", "2,3")],
    },
    Harness {
        name: "monitor_load",
        package: "auditflow-security-monitor",
        full: &["1000000", "BINARY"],
        quick: &["30000", "BINARY"],
        env: &[],
    },
    Harness {
        name: "detector_spray",
        package: "auditflow-core",
        full: &["1000000"],
        quick: &["50000"],
        env: &[],
    },
    Harness {
        name: "indexer_load",
        package: "auditflow-causality-indexer",
        full: &["1000000", "BINARY"],
        quick: &["5000", "BINARY"],
        env: &[],
    },
    Harness {
        name: "sink_load",
        package: "auditflow-sink",
        full: &["1000000", "BINARY"],
        quick: &["20000", "BINARY"],
        env: &[],
    },
    Harness {
        name: "key_creation",
        package: "auditflow-store",
        full: &["20000"],
        quick: &["2000"],
        env: &[],
    },
    Harness {
        name: "pipeline_latency",
        package: "auditflow-cli",
        full: &["300000", "60", "BINARY"],
        quick: &["10000", "20", "BINARY"],
        env: &[],
    },
];

/// The classify core's criterion groups: (group, events per iteration).
const CRITERION_GROUPS: &[(&str, f64)] = &[("lifecycle", 7.0), ("mix", 14.0)];

pub fn run(layout: &Layout, args: &[String]) -> Result<ExitCode> {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => {
            eprintln!("usage: cargo xtask bench [--quick]");
            return Ok(ExitCode::from(2));
        }
    };
    stack::up(layout)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| layout.root().join("target"), PathBuf::from);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let logs = target.join("bench").join(stamp.to_string());
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    println!("building auditflow and the harnesses (release) …");
    let mut build = Command::new(&cargo);
    build.current_dir(layout.root()).args([
        "build",
        "--release",
        "-p",
        "auditflow-cli",
        "--bin",
        "auditflow",
    ]);
    let status = build.status().context("running cargo build")?;
    let mut examples = Command::new(&cargo);
    examples
        .current_dir(layout.root())
        .args(["build", "--release"]);
    for h in HARNESSES {
        examples.args(["-p", h.package, "--example", h.name]);
    }
    if !status.success() || !examples.status().context("running cargo build")?.success() {
        return Ok(ExitCode::FAILURE);
    }
    let binary = target.join("release").join("auditflow");

    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut failed = Vec::new();
    match criterion(layout, &cargo, &target, quick, &logs) {
        Ok(mut r) => rows.append(&mut r),
        Err(e) => {
            eprintln!("classify core: {e}");
            failed.push("criterion classify");
        }
    }
    for h in HARNESSES {
        let args: Vec<String> = if quick { h.quick } else { h.full }
            .iter()
            .map(|a| {
                if *a == "BINARY" {
                    binary.display().to_string()
                } else {
                    (*a).to_owned()
                }
            })
            .collect();
        println!("running {} {} …", h.name, args.join(" "));
        let exe = target.join("release").join("examples").join(h.name);
        let log = logs.join(format!("{}.log", h.name));
        match harness(&exe, &args, h.env, layout, &log) {
            Ok((true, mut r)) => rows.append(&mut r),
            Ok((false, mut r)) => {
                rows.append(&mut r);
                eprintln!("{} failed: see {}", h.name, log.display());
                failed.push(h.name);
            }
            Err(e) => {
                eprintln!("{}: {e}", h.name);
                failed.push(h.name);
            }
        }
    }

    println!();
    println!("{}", machine(layout));
    println!("logs: {}", logs.display());
    print_table(&rows);
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("failed: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// Runs one harness, its output to `log`; whether it succeeded, and its `BENCH|` rows.
fn harness(
    exe: &Path,
    args: &[String],
    env: &[(&str, &str)],
    layout: &Layout,
    log: &Path,
) -> Result<(bool, Vec<Vec<String>>)> {
    let mut file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(exe)
        .current_dir(layout.root())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(
            file.try_clone()
                .with_context(|| format!("opening {}", log.display()))?,
        )
        .spawn()
        .with_context(|| format!("running {}", exe.display()))?;
    let mut rows = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(std::io::Result::ok) {
            let _ = writeln!(file, "{line}");
            if let Some(row) = line.strip_prefix("BENCH|") {
                rows.push(row.split('|').map(str::to_owned).collect());
            } else {
                println!("  {line}");
            }
        }
    }
    let status = child.wait().context("waiting for a harness")?;
    Ok((status.success(), rows))
}

/// `cargo bench` of the classify core; a row per group from criterion's estimates.
fn criterion(
    layout: &Layout,
    cargo: &std::ffi::OsStr,
    target: &Path,
    quick: bool,
    logs: &Path,
) -> Result<Vec<Vec<String>>> {
    println!("running criterion (classify core) …");
    let times: &[&str] = if quick {
        &["--warm-up-time", "1", "--measurement-time", "2"]
    } else {
        &["--warm-up-time", "2", "--measurement-time", "5"]
    };
    let log = logs.join("classify.log");
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = Command::new(cargo)
        .current_dir(layout.root())
        .args(["bench", "-p", "auditflow-core", "--bench", "classify", "--"])
        .args(times)
        .stdout(
            file.try_clone()
                .with_context(|| format!("opening {}", log.display()))?,
        )
        .stderr(file)
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        return Err(Error::new(format!(
            "cargo bench failed: see {}",
            log.display()
        )));
    }
    let mut rows = Vec::new();
    for (group, events) in CRITERION_GROUPS {
        let mean = |function: &str| {
            let path = target
                .join("criterion")
                .join(group)
                .join(function)
                .join("new")
                .join("estimates.json");
            mean_ns(&path)
        };
        let classify = mean("classify_and_serialize")?;
        let baseline = mean("serde_json_parse_serialize")?;
        let rate = |ns: f64| events * 1e9 / ns;
        rows.push(vec![
            format!("classify core events/s ({group})"),
            format!("{:.0}", rate(classify)),
            format!("{:.0} (serde_json parse + serialize)", rate(baseline)),
            format!("{:.2}", baseline / classify),
            String::new(),
        ]);
    }
    Ok(rows)
}

/// The mean's point estimate (ns per iteration) in a criterion `estimates.json`.
fn mean_ns(path: &Path) -> Result<f64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.split("\"mean\"")
        .nth(1)
        .and_then(|rest| rest.split("\"point_estimate\":").nth(1))
        .and_then(|rest| rest.split([',', '}']).next()?.trim().parse().ok())
        .ok_or_else(|| Error::new(format!("no mean estimate in {}", path.display())))
}

fn print_table(rows: &[Vec<String>]) {
    let header = ["figure", "value", "baseline", "ratio", "peak RSS MiB"];
    let cell = |row: &[String], i: usize| row.get(i).cloned().unwrap_or_default();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| cell(r, i).chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line((0..header.len()).map(|i| cell(row, i)).collect());
    }
}

/// Cores, load and commit, for the record.
fn machine(layout: &Layout) -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = Command::new("git")
        .current_dir(layout.root())
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .current_dir(layout.root())
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    format!(
        "machine: {cores} cores, load average {}; commit {commit}{}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}
