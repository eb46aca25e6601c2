//! The command line surface, exactly as SPEC section 8 names it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify NDJSON CloudEvents from stdin to NDJSON records on stdout, without Kafka.
    Classify,
    /// Run the security monitor offline over what `classify` writes.
    Detect,
    /// Run a service (or all four in one process).
    Run {
        #[arg(value_enum)]
        service: Service,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Classifier,
    SecurityMonitor,
    Sink,
    CausalityIndexer,
    All,
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
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One user's activity.
    UserActivity {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        range: TimeRange,
    },
    /// Security events and alerts.
    Security {
        #[command(flatten)]
        range: TimeRange,
    },
    /// Retention and compliance overview.
    Compliance {
        #[command(flatten)]
        range: TimeRange,
    },
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
}
