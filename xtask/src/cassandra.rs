//! Apache Cassandra 5.0 as one node on 127.0.0.1:9042, standing in for ScyllaDB locally.
//! Config comes from `deploy/stack/cassandra/` (cassandra.yaml, logback.xml and the Java 17
//! flags in jvm17-server.options); the rest of what the release's `bin/cassandra` script
//! would add — heap, jamm agent, paths, fast single-node start — is set here.
//!
//! The same launch, with another [`Node`] (cluster name, ports, heap) and folder, is
//! `cargo xtask cassandra-node`: a private node a test may stop and start again (see
//! `node.rs`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::error::{Context, Result, bail};
use crate::server::{Prepare, Server};
use crate::{fetch, probe};

/// What tells one local Cassandra node from another: its cluster and its ports.
pub struct Node<'a> {
    pub cluster_name: &'a str,
    pub cql_port: u16,
    /// Gossip and streaming; the node is its own seed there.
    pub storage_port: u16,
    /// `-Xms`/`-Xmx` (`1g`, `512m`).
    pub heap: &'a str,
}

/// The shared stack's node, the one `cargo xtask up` starts.
pub const SHARED: Node<'static> = Node {
    cluster_name: "auditflow-local",
    cql_port: 9042,
    storage_port: 7000,
    heap: "1g",
};

pub struct Cassandra;

impl Server for Cassandra {
    fn name(&self) -> &'static str {
        "cassandra"
    }

    fn title(&self) -> &'static str {
        "Cassandra"
    }

    fn artifact(&self) -> &'static str {
        "cassandra-all"
    }

    fn addr(&self) -> &'static str {
        "127.0.0.1:9042" // SHARED.cql_port
    }

    fn ready_timeout(&self) -> Duration {
        // A first boot creates the system keyspaces; on two busy cores that takes minutes.
        Duration::from_secs(300)
    }

    fn prepare(&self, ctx: &Prepare<'_>, cmd: &mut Command) -> Result<()> {
        configure(ctx, &SHARED, &ctx.layout.logs_dir(), cmd)
    }

    fn probe(&self) -> Result<String> {
        probe::cql(self.addr())
    }
}

/// Writes `node`'s config files into `ctx.dir` (data under `ctx.dir/data`) and completes `cmd`
/// with its JVM options, class path and main class; `logs` is Cassandra's log dir.
pub fn configure(ctx: &Prepare<'_>, node: &Node<'_>, logs: &Path, cmd: &mut Command) -> Result<()> {
    let name = Cassandra.name();
    let data = ctx.dir.join("data");
    // Cassandra warns about a missing triggers folder on every start; give it an empty one.
    let triggers = ctx.dir.join("triggers");
    for dir in [&data, &triggers] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let yaml = ctx.dir.join("cassandra.yaml");
    let text = render_yaml(&ctx.layout.read_template(name, "cassandra.yaml")?, node)?;
    fs::write(&yaml, text).with_context(|| format!("writing {}", yaml.display()))?;
    let logback = ctx.dir.join("logback.xml");
    fs::write(&logback, ctx.layout.read_template(name, "logback.xml")?)
        .with_context(|| format!("writing {}", logback.display()))?;

    let options = ctx.layout.read_template(name, "jvm17-server.options")?;
    let jamm = fetch::find_jar(ctx.jars, "jamm-")?;

    cmd.args(jvm_options(&options))
        .arg(format!("-Xms{}", node.heap))
        .arg(format!("-Xmx{}", node.heap))
        .arg(format!("-javaagent:{}", jamm.display()))
        .arg(format!("-Dcassandra.config=file://{}", yaml.display()))
        .arg(format!("-Dcassandra.storagedir={}", data.display()))
        .arg(format!("-Dcassandra.logdir={}", logs.display()))
        .arg(format!("-Dcassandra.triggers_dir={}", triggers.display()))
        .arg(format!("-Dlogback.configurationFile={}", logback.display()))
        .arg("-Dcassandra-foreground=yes")
        // One node, its own seed: nothing to gossip with or wait for.
        .arg("-Dcassandra.skip_wait_for_gossip_to_settle=0")
        .arg("-Dcassandra.ring_delay_ms=1000")
        .arg("-Dcassandra.superuser_setup_delay_ms=0")
        .arg("-cp")
        .arg(ctx.jars.join("*"))
        .arg("org.apache.cassandra.service.CassandraDaemon");
    Ok(())
}

/// The `cassandra.yaml` template with `node`'s name and ports and the authentication classes.
fn render_yaml(template: &str, node: &Node<'_>) -> Result<String> {
    let (authenticator, authorizer) = auth_classes()?;
    Ok(template
        .replace("@CLUSTER_NAME@", node.cluster_name)
        .replace("@STORAGE_PORT@", &node.storage_port.to_string())
        .replace("@CQL_PORT@", &node.cql_port.to_string())
        .replace("@AUTHENTICATOR@", authenticator)
        .replace("@AUTHORIZER@", authorizer))
}

/// `AUDITFLOW_CASSANDRA_AUTH`: unset or `none` → no authentication (the local default);
/// `password` → PasswordAuthenticator, as in production (superuser cassandra / cassandra).
fn auth_classes() -> Result<(&'static str, &'static str)> {
    match std::env::var("AUDITFLOW_CASSANDRA_AUTH").as_deref() {
        Err(_) | Ok("" | "none") => Ok(("AllowAllAuthenticator", "AllowAllAuthorizer")),
        Ok("password") => Ok(("PasswordAuthenticator", "CassandraAuthorizer")),
        Ok(other) => bail!("AUDITFLOW_CASSANDRA_AUTH={other:?}: expected `none` or `password`"),
    }
}

/// The flags of a `jvm*.options` file: one per line, `#` comments and blank lines skipped.
fn jvm_options(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

    #[test]
    fn the_shared_node_renders_the_names_and_ports_it_always_had() {
        let template = Layout::from_env()
            .unwrap()
            .read_template("cassandra", "cassandra.yaml")
            .unwrap();
        let yaml = render_yaml(&template, &SHARED).unwrap();
        assert!(!yaml.contains("@"), "a placeholder is left:\n{yaml}");
        for line in [
            "cluster_name: auditflow-local",
            "      - seeds: \"127.0.0.1:7000\"",
            "storage_port: 7000",
            "native_transport_port: 9042",
        ] {
            assert!(yaml.lines().any(|l| l == line), "no `{line}` in:\n{yaml}");
        }
        assert_eq!(Cassandra.addr(), format!("127.0.0.1:{}", SHARED.cql_port));
    }

    #[test]
    fn options_file_skips_comments_and_blanks() {
        let text = "# comment\n\n-XX:+UseG1GC\n  --add-opens=java.base/java.io=ALL-UNNAMED  \n";
        let flags: Vec<&str> = jvm_options(text).collect();
        assert_eq!(
            flags,
            ["-XX:+UseG1GC", "--add-opens=java.base/java.io=ALL-UNNAMED"]
        );
    }
}
