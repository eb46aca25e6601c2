//! Apache Cassandra 5.0 as one node on 127.0.0.1:9042, standing in for ScyllaDB locally.
//! Config comes from `deploy/stack/cassandra/` (cassandra.yaml, logback.xml and the Java 17
//! flags in jvm17-server.options); the rest of what the release's `bin/cassandra` script
//! would add — heap, jamm agent, paths, fast single-node start — is set here.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::error::{Context, Result, bail};
use crate::stack::{Prepare, Server};
use crate::{fetch, probe};

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
        "127.0.0.1:9042"
    }

    fn ready_timeout(&self) -> Duration {
        // A first boot creates the system keyspaces; on two busy cores that takes minutes.
        Duration::from_secs(300)
    }

    fn prepare(&self, ctx: &Prepare<'_>, cmd: &mut Command) -> Result<()> {
        let data = ctx.dir.join("data");
        // Cassandra warns about a missing triggers folder on every start; give it an empty one.
        let triggers = ctx.dir.join("triggers");
        for dir in [&data, &triggers] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }

        let (authenticator, authorizer) = auth_classes()?;
        let yaml = ctx.dir.join("cassandra.yaml");
        let text = ctx
            .layout
            .read_template(self.name(), "cassandra.yaml")?
            .replace("@AUTHENTICATOR@", authenticator)
            .replace("@AUTHORIZER@", authorizer);
        fs::write(&yaml, text).with_context(|| format!("writing {}", yaml.display()))?;
        let logback = ctx.dir.join("logback.xml");
        fs::write(
            &logback,
            ctx.layout.read_template(self.name(), "logback.xml")?,
        )
        .with_context(|| format!("writing {}", logback.display()))?;

        let options = ctx
            .layout
            .read_template(self.name(), "jvm17-server.options")?;
        let jamm = fetch::find_jar(ctx.jars, "jamm-")?;

        cmd.args(jvm_options(&options))
            .args(["-Xms1g", "-Xmx1g"])
            .arg(format!("-javaagent:{}", jamm.display()))
            .arg(format!("-Dcassandra.config=file://{}", yaml.display()))
            .arg(format!("-Dcassandra.storagedir={}", data.display()))
            .arg(format!(
                "-Dcassandra.logdir={}",
                ctx.layout.logs_dir().display()
            ))
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

    fn probe(&self) -> Result<String> {
        probe::cql(self.addr())
    }
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
    use super::jvm_options;

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
