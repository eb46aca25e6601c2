//! `docker-compose.yml` cannot run here (no Docker engine), so its security properties are
//! checked on the text: nothing is published beyond 127.0.0.1, no default password, and no
//! secret in an environment variable (visible in `docker inspect`), only Docker secrets.

use std::path::Path;

fn compose() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML lines of the file, comments dropped.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or(l))
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect()
}

#[test]
fn published_ports_bind_to_loopback_only() {
    let text = compose();
    let lines = lines(&text);
    let mut published = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "ports:" {
            for entry in lines[i + 1..]
                .iter()
                .take_while(|l| l.trim_start().starts_with("- "))
            {
                published += 1;
                let mapping = entry
                    .trim_start()
                    .trim_start_matches("- ")
                    .trim_matches('"');
                assert!(
                    mapping.starts_with("127.0.0.1:"),
                    "published on every interface: {entry}"
                );
            }
        }
    }
    assert!(published >= 2, "Prometheus and Grafana are published");
}

#[test]
fn no_default_password_and_no_secret_in_the_environment() {
    let text = compose();
    for line in lines(&text) {
        let key = line.trim_start().split(':').next().unwrap_or_default();
        assert_ne!(
            key, "GF_SECURITY_ADMIN_PASSWORD",
            "a password in the file: {line}"
        );
        assert_ne!(
            key, "AUDITFLOW_MASTER_KEY",
            "the master key in the environment: {line}"
        );
        assert!(
            !line.contains("admin/admin") && !line.contains(": admin"),
            "{line}"
        );
    }
    for needed in [
        "AUDITFLOW_STORE__MASTER_KEY_FILE: /run/secrets/auditflow_master_key",
        "AUDITFLOW_STORE__INSECURE_DEV_KEY: \"false\"",
        "GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana_admin_password",
        "file: ./secrets/auditflow_master_key",
    ] {
        assert!(text.contains(needed), "missing: {needed}");
    }
}
