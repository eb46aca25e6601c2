//! The command line surface, exactly as docs/cli.md documents it (a test below checks that).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::format::Format;
use crate::services::Target;

#[derive(Debug, Parser)]
#[command(
    name = "auditflow",
    version,
    about = "Audit every user action: Kafka in, ScyllaDB out."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file; every key has a default.
    #[arg(long, short = 'c', global = true, env = "AUDITFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON output instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who runs this, for the operator log; default: `[operator] name`, else the OS user.
    #[arg(long, global = true, env = "AUDITFLOW_OPERATOR")]
    pub operator: Option<String>,
    /// Run a command on audit data without recording it in the operator log (local use only).
    #[arg(long, global = true)]
    pub no_operator_log: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify NDJSON CloudEvents from stdin to NDJSON records on stdout, without Kafka.
    Classify,
    /// Run the security monitor offline over what `classify` writes.
    Detect,
    /// Turn what `classify` and `detect` write into OCSF events (NDJSON), without Kafka.
    Ocsf,
    /// Run a service (or all of the pipeline in one process).
    Run {
        #[arg(value_parser = crate::services::target_parser())]
        service: Target,
    },
    /// Create or migrate the CQL schema (idempotent).
    Migrate,
    /// Manage Kafka topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// A user's audit trail, newest first, across every retention class.
    Query(QueryArgs),
    /// The causal chain of an event: ancestors to the root, and descendants.
    Trail(TrailArgs),
    /// GDPR requests: export, delete (crypto-shred) or anonymize a user.
    Gdpr {
        #[command(subcommand)]
        command: GdprCommand,
    },
    /// Activity, security and compliance reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Publish the recipe's user lifecycle to the running pipeline and show what it made.
    Demo,
    /// Publish synthetic traffic at a given rate.
    Loadgen(LoadgenArgs),
    /// Check every stored record against the tamper-evident log and its signed checkpoints.
    Verify(VerifyArgs),
    /// One record's inclusion proof under a signed checkpoint, and a consistency proof, as
    /// JSON.
    Prove {
        /// The record's event id.
        event_id: String,
    },
    /// Check a proof `prove` printed, offline, with the public key alone.
    VerifyProof {
        /// The proof's file (`-` for standard input).
        file: String,
        /// The checkpoint signing key's public half, 64 hex digits (`auditflow keys public`).
        #[arg(long)]
        public_key: String,
    },
    /// The checkpoint signing key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub range: TimeRange,
    /// Where the checkpoints are checked against: the Kafka anchor topic too, or the store
    /// alone.
    #[arg(long, value_enum, default_value_t = Anchor::Kafka)]
    pub anchor: Anchor,
    /// The checkpoint signing key's public half (64 hex digits); default: derived from the
    /// configured signing key.
    #[arg(long)]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Anchor {
    /// The checkpoints of the anchor topic, outside the database, and the stored ones.
    Kafka,
    /// The stored checkpoints only.
    Store,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the public key checkpoints are verified with (64 hex digits).
    Public,
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every topic auditflow reads or writes (idempotent).
    Create,
}

#[derive(Debug, Args)]
pub struct TimeRange {
    /// Start of the range (RFC 3339), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range (RFC 3339), exclusive.
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long)]
    pub user: String,
    #[command(flatten)]
    pub range: TimeRange,
    /// Only these actions (repeatable).
    #[arg(long = "action")]
    pub actions: Vec<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue from the token a previous page printed.
    #[arg(long)]
    pub page: Option<String>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct TrailArgs {
    /// An input event id, an audit record id or an alert id.
    pub event_id: Option<String>,
    /// The whole conversation of a correlation id, in time order.
    #[arg(long, conflicts_with = "event_id")]
    pub correlation: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GdprCommand {
    /// Everything stored about a user, as JSON.
    Export {
        #[arg(long)]
        user: String,
    },
    /// Erase a user by destroying their key.
    Delete {
        #[arg(long)]
        user: String,
    },
    /// Anonymize a user: here the same key destruction as `delete` (their records stay,
    /// countable by non-personal labels only).
    Anonymize {
        #[arg(long)]
        user: String,
    },
    /// The receipt of a `delete` or `anonymize`, as JSON, from the operator log.
    Receipt {
        /// The request id the erasure printed.
        request_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One user's activity: actions, risk, timeline, security events.
    UserActivity {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        range: TimeRange,
        #[command(flatten)]
        output: Output,
    },
    /// Security events and alerts, threat sources, recommendations.
    Security {
        #[command(flatten)]
        range: TimeRange,
        #[command(flatten)]
        output: Output,
    },
    /// GDPR requests, commands on audit data, retention, audit completeness.
    Compliance {
        #[command(flatten)]
        range: TimeRange,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct Output {
    /// Output format; default: a table (JSON with `--json`).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the output to this file instead of standard output (required for `html`).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Events per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Total events to publish.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `docs/cli.md`, split at its `## ` headings: heading → body.
    fn reference_sections() -> Vec<(String, String)> {
        let page = include_str!("../../../docs/cli.md");
        let mut sections: Vec<(String, String)> = Vec::new();
        for line in page.lines() {
            if let Some(heading) = line.strip_prefix("## ") {
                sections.push((heading.trim().to_owned(), String::new()));
            } else if let Some((_, body)) = sections.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        sections
    }

    /// Every leaf subcommand, as its path (`gdpr export`) and its definition.
    fn leaves(command: &clap::Command, prefix: &str) -> Vec<(String, clap::Command)> {
        let mut found = Vec::new();
        for sub in command.get_subcommands() {
            let path = format!("{prefix}{}", sub.get_name()).trim().to_owned();
            if sub.has_subcommands() {
                found.extend(leaves(sub, &format!("{path} ")));
            } else {
                found.push((path, sub.clone()));
            }
        }
        found
    }

    /// How the reference writes an argument: `--flag`, or `<name>` for a positional one.
    fn spelled(arg: &clap::Arg) -> String {
        match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => format!("<{}>", arg.get_id().as_str().replace('_', "-")),
        }
    }

    /// The `--flags` a text names.
    fn flags_named(text: &str) -> Vec<String> {
        let mut flags = Vec::new();
        for (at, _) in text.match_indices("--") {
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if !name.is_empty() && !text[..at].ends_with(['-', '<']) {
                flags.push(format!("--{name}"));
            }
        }
        flags
    }

    #[test]
    fn the_reference_documents_every_command_and_flag() {
        let sections = reference_sections();
        let root = Cli::command();
        let global: Vec<String> = root
            .get_arguments()
            .map(spelled)
            .chain(["--help".into(), "--version".into()])
            .collect();
        let (_, options) = sections
            .iter()
            .find(|(heading, _)| heading == "Global options")
            .expect("docs/cli.md has a Global options section");
        for arg in root.get_arguments() {
            assert!(
                options.contains(&format!("`{}", spelled(arg))),
                "{}",
                spelled(arg)
            );
            if let Some(short) = arg.get_short() {
                assert!(options.contains(&format!("`-{short}")), "-{short}");
            }
        }
        let leaves = leaves(&root, "");
        let paths: Vec<&str> = leaves.iter().map(|(path, _)| path.as_str()).collect();
        assert!(paths.len() >= 15, "every command: {paths:?}");
        for (path, command) in &leaves {
            let heading = format!("`auditflow {path}`");
            let (_, body) = sections
                .iter()
                .find(|(h, _)| *h == heading)
                .unwrap_or_else(|| panic!("docs/cli.md has no section ## {heading}"));
            let own: Vec<String> = command.get_arguments().map(spelled).collect();
            for arg in command.get_arguments() {
                let name = spelled(arg);
                assert!(body.contains(&name), "## {heading} does not name {name}");
                for value in arg.get_possible_values() {
                    assert!(
                        body.contains(value.get_name()),
                        "## {heading} does not name {name}'s value {}",
                        value.get_name()
                    );
                }
            }
            for flag in flags_named(body) {
                assert!(
                    own.contains(&flag) || global.contains(&flag),
                    "## {heading} names {flag}, which `auditflow {path}` does not take"
                );
            }
        }
        for (heading, _) in &sections {
            if let Some(path) = heading
                .strip_prefix("`auditflow ")
                .and_then(|h| h.strip_suffix('`'))
            {
                assert!(
                    leaves.iter().any(|(p, _)| p == path),
                    "docs/cli.md documents `auditflow {path}`, which is no command"
                );
            }
        }
    }
}
