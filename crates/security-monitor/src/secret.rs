//! Loading the secret alert and action ids are derived under (docs/security-rules.md).
//!
//! Every monitor instance must derive the same ids for the same evidence (so a replay or
//! another instance reproduces them), and nobody else may: a public function of an ip and a
//! window is reversible by brute force. So ids are keyed by a secret the instances share,
//! loaded as the store loads its master key: the environment variable `[security]
//! id_secret_env` (default `$AUDITFLOW_ID_SECRET`), else the file `[security] id_secret_file`,
//! 64 hex digits either way. Without either, the built-in development secret — public, so it
//! protects nothing — is used only where it cannot matter: when every `[kafka]` bootstrap
//! server is a loopback address (the local stack), or offline (`auditflow detect`). Anywhere
//! else the monitor refuses to start, naming the setting.

use auditflow_core::Config;
use auditflow_core::config::is_loopback_address;
use auditflow_core::detect::IdSecret;
use zeroize::Zeroizing;

/// Where the secret came from; logged at start (never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// The variable `[security] id_secret_env` names (default `$AUDITFLOW_ID_SECRET`).
    Environment,
    /// `[security] id_secret_file`.
    File,
    /// The built-in, publicly known development secret.
    Development,
}

/// When the development secret may stand in for a missing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevelopmentSecret {
    /// Only when every Kafka bootstrap server is a loopback address (the service).
    IfLoopback,
    /// Always (`auditflow detect`, which reads files, not a cluster).
    Allowed,
}

/// Why no secret could be loaded; one line, naming the setting, never echoing a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[security] id secret: {0}")]
pub struct SecretError(String);

/// Loads the id secret `config` names (see the module doc).
pub fn load(
    config: &Config,
    development: DevelopmentSecret,
) -> Result<(IdSecret, SecretSource), SecretError> {
    let security = &config.security;
    if !security.id_secret_env.is_empty()
        && let Ok(value) = std::env::var(&security.id_secret_env)
    {
        let value = Zeroizing::new(value);
        let secret = IdSecret::from_hex(&value)
            .map_err(|why| SecretError(format!("${}: {why}", security.id_secret_env)))?;
        return Ok((secret, SecretSource::Environment));
    }
    if let Some(path) = &security.id_secret_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| SecretError(format!("cannot read {}: {e}", path.display())))?,
        );
        let secret = IdSecret::from_hex(&text)
            .map_err(|why| SecretError(format!("{}: {why}", path.display())))?;
        return Ok((secret, SecretSource::File));
    }
    let loopback = all_loopback(&config.kafka.bootstrap_servers);
    if development == DevelopmentSecret::Allowed || loopback {
        return Ok((IdSecret::development(), SecretSource::Development));
    }
    Err(SecretError(format!(
        "none configured: set ${} or [security] id_secret_file (64 hex digits, the same for \
         every monitor instance); the public development secret is only used when every \
         [kafka] bootstrap_servers entry is a loopback address",
        security.id_secret_env
    )))
}

/// Whether every server of a librdkafka `bootstrap.servers` list (`host:port`, `[v6]:port`,
/// optionally `PROTOCOL://`) is a loopback address or `localhost`
/// ([`is_loopback_address`], as the store decides for its nodes). An empty list is not.
pub fn all_loopback(bootstrap_servers: &str) -> bool {
    let servers: Vec<&str> = bootstrap_servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    !servers.is_empty()
        && servers.iter().all(|server| {
            let address = server.rsplit_once("://").map_or(*server, |(_, rest)| rest);
            is_loopback_address(address)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_only() {
        for yes in [
            "127.0.0.1:9092",
            "localhost:9092,127.0.0.2:9093",
            "[::1]:9092",
            "::1",
            "PLAINTEXT://127.0.0.1:9092",
            "LocalHost",
        ] {
            assert!(all_loopback(yes), "{yes}");
        }
        for no in [
            "",
            "broker:9092",
            "127.0.0.1:9092,10.0.0.5:9092",
            "10.0.0.5:9092",
            "[2001:db8::1]:9092",
            "localhost.example.com:9092",
            "SSL://kafka.internal:9093",
        ] {
            assert!(!all_loopback(no), "{no}");
        }
    }

    fn config(bootstrap: &str, env: &str) -> Config {
        let mut config = Config::default();
        config.kafka.bootstrap_servers = bootstrap.into();
        // A variable no test sets, so the environment of the machine cannot interfere.
        config.security.id_secret_env = env.into();
        config
    }

    #[test]
    fn the_development_secret_needs_a_loopback_cluster_or_offline_use() {
        let env = "AUDITFLOW_TEST_UNSET_ID_SECRET";
        let (_, source) = load(
            &config("127.0.0.1:9092", env),
            DevelopmentSecret::IfLoopback,
        )
        .unwrap();
        assert_eq!(source, SecretSource::Development);
        let err = load(&config("kafka-1:9092", env), DevelopmentSecret::IfLoopback).unwrap_err();
        let line = err.to_string();
        assert!(
            line.contains("id_secret_file") && line.contains(env) && !line.contains('\n'),
            "{line}"
        );
        let (_, source) = load(&config("kafka-1:9092", env), DevelopmentSecret::Allowed).unwrap();
        assert_eq!(source, SecretSource::Development);
    }

    #[test]
    fn a_secret_file_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("auditflow-id-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        let mut c = config("kafka-1:9092", "AUDITFLOW_TEST_UNSET_ID_SECRET");
        c.security.id_secret_file = Some(path.clone());
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let (secret, source) = load(&c, DevelopmentSecret::IfLoopback).unwrap();
        assert_eq!(source, SecretSource::File);
        assert_eq!(format!("{secret:?}"), "IdSecret(..)");
        std::fs::write(&path, "not hex, and secret-looking text").unwrap();
        let err = load(&c, DevelopmentSecret::IfLoopback)
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("secret-looking"),
            "never echoes the file: {err}"
        );
        std::fs::remove_dir_all(&dir).ok();
        let err = load(&c, DevelopmentSecret::Allowed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
