//! Loading: TOML text plus `AUDITFLOW_<SECTION>__<KEY>` overrides → a validated [`Config`].
//!
//! Every failure is one line that names the key (`limits.max_record_bytes: ...`), because the
//! operator reading it has a file and an environment to fix, not a stack trace. Overrides are
//! merged into the TOML tree before it is deserialized, so they obey the same schema (unknown
//! keys are errors there too) and the same checks as the file.

use toml::{Table, Value};

use super::{Config, Limits, RetentionPeriods, Topics};
use crate::error::{ConfigError, key_path};

/// Environment variables starting with this (and holding a `__`) override configuration keys.
pub const ENV_PREFIX: &str = "AUDITFLOW_";

/// serde_json's own recursion guard; a larger depth limit could never be reached.
const MAX_JSON_DEPTH: usize = 128;

impl Config {
    /// Parses a TOML document (possibly empty, possibly a single table) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::load(text, std::iter::empty::<(String, String)>())
    }

    /// Parses `text`, applies environment overrides from `env` (all variables may be passed;
    /// those not of the form `AUDITFLOW_<SECTION>__<KEY>[__<KEY>...]` are ignored), and
    /// validates the result.
    ///
    /// Names are lowercased: `AUDITFLOW_KAFKA__PROPERTIES__SECURITY.PROTOCOL=SSL` sets
    /// `kafka.properties."security.protocol"`. A value is read as a TOML value when it parses as
    /// one (`5`, `true`, `0.25`, `["a", "b"]`) and as a string otherwise; a value that parses
    /// but is given to a string key is taken as the string it was (a password `12345`).
    pub fn load<K: AsRef<str>, V: AsRef<str>>(
        text: &str,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut table: Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let mut overrides = Vec::new();
        for (name, value) in env {
            if let Some(o) = EnvOverride::parse(name.as_ref(), value.as_ref())? {
                o.apply(&mut table)?;
                overrides.push(o);
            }
        }
        let config = deserialize(table, &mut overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: ranges, patterns, names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.sampling.compile()?;
        self.topics.validate()?;
        let id = &self.kafka.instance_id;
        let legal = id.len() <= 128 && id.bytes().all(legal_name_byte);
        if !id.is_empty() && !legal {
            return Err(ConfigError::invalid(
                "kafka.instance_id",
                "not an instance name (1 to 128 of [A-Za-z0-9._-])",
            ));
        }
        self.limits.validate()?;
        self.retention.validate()?;
        if self.integrity.checkpoint_every == 0 {
            return Err(ConfigError::invalid(
                "integrity.checkpoint_every",
                "must be at least 1",
            ));
        }
        self.security
            .validate()
            .map_err(|crate::detect::DetectError::InvalidSettings(why)| {
                ConfigError::invalid("security", why)
            })?;
        Ok(())
    }
}

impl Topics {
    fn validate(&self) -> Result<(), ConfigError> {
        let topics = [
            ("user_action", &self.user_action),
            ("data_access", &self.data_access),
            ("security_event", &self.security_event),
            ("dead_letter", &self.dead_letter),
            ("alerts", &self.alerts),
            ("actions", &self.actions),
            ("blocklist", &self.blocklist),
            ("checkpoints", &self.checkpoints),
            ("operator", &self.operator),
            ("sampling", &self.sampling),
            ("ocsf", &self.ocsf),
        ];
        for (key, name) in topics {
            let legal = !name.is_empty()
                && name.len() <= 249
                && name != "."
                && name != ".."
                && name.bytes().all(legal_name_byte);
            if !legal {
                return Err(ConfigError::invalid(
                    key_path(&["topics", key]),
                    "not a Kafka topic name (1 to 249 of [A-Za-z0-9._-])",
                ));
            }
        }
        // Each output has a topic of its own: the sink and the indexer tell records apart by
        // topic, and the blocklist and the checkpoints topics have settings of their own.
        for (i, (key, name)) in topics.iter().enumerate() {
            if let Some((other, _)) = topics[..i].iter().find(|(_, n)| n == name) {
                return Err(ConfigError::invalid(
                    key_path(&["topics", key]),
                    format!("the same topic as topics.{other}: every output needs its own"),
                ));
            }
        }
        Ok(())
    }
}

/// A byte of a Kafka topic name or of a `transactional.id` part we build: `[A-Za-z0-9._-]`.
fn legal_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_record_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_record_bytes",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_JSON_DEPTH).contains(&self.max_json_depth) {
            return Err(ConfigError::invalid(
                "limits.max_json_depth",
                format!("{} is outside [1, {MAX_JSON_DEPTH}]", self.max_json_depth),
            ));
        }
        Ok(())
    }
}

impl RetentionPeriods {
    fn validate(&self) -> Result<(), ConfigError> {
        let periods = [
            ("security_days", self.security_days),
            ("financial_days", self.financial_days),
            ("marketing_days", self.marketing_days),
            ("general_days", self.general_days),
        ];
        for (key, days) in periods {
            if days == 0 {
                return Err(ConfigError::invalid(
                    key_path(&["retention", key]),
                    "must be at least 1 day",
                ));
            }
        }
        Ok(())
    }
}

/// One `AUDITFLOW_...` variable, as a key path and a value.
#[derive(Debug)]
struct EnvOverride {
    var: String,
    path: Vec<String>,
    raw: String,
    /// Read as a non-string TOML value (may be retried as a string).
    typed: bool,
    value: Value,
}

impl EnvOverride {
    fn parse(name: &str, raw: &str) -> Result<Option<Self>, ConfigError> {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            return Ok(None);
        };
        if !rest.contains("__") {
            // AUDITFLOW_CONFIG and friends: not a key.
            return Ok(None);
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                name,
                "empty key between `__` separators",
            ));
        }
        let value = toml_value(raw).unwrap_or_else(|| Value::String(raw.to_owned()));
        let typed = !value.is_str();
        Ok(Some(Self {
            var: name.to_owned(),
            path,
            raw: raw.to_owned(),
            typed,
            value,
        }))
    }

    fn apply(&self, table: &mut Table) -> Result<(), ConfigError> {
        set(table, &self.path, self.value.clone()).map_err(|at| {
            ConfigError::invalid(
                &self.var,
                format!("{} is not a table", key_path(&self.path[..at])),
            )
        })
    }
}

/// `raw` as a single TOML value, if it is one.
fn toml_value(raw: &str) -> Option<Value> {
    let mut table: Table = toml::from_str(&format!("v = {raw}")).ok()?;
    if table.len() != 1 {
        return None;
    }
    table.remove("v")
}

/// Sets `path` in `table`, creating tables on the way; on a non-table in the way, the length
/// of the path prefix that is not a table.
fn set(table: &mut Table, path: &[String], value: Value) -> Result<(), usize> {
    let (last, parents) = path
        .split_last()
        .expect("override paths have two or more keys");
    let mut current = table;
    for (depth, key) in parents.iter().enumerate() {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        current = entry.as_table_mut().ok_or(depth + 1)?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Deserializes, retrying an override that was read as a number (or bool, ...) as the string
/// it was when its key wants a string. At most one retry per override.
fn deserialize(mut table: Table, overrides: &mut [EnvOverride]) -> Result<Config, ConfigError> {
    loop {
        let err = match serde_path_to_error::deserialize(Value::Table(table.clone())) {
            Ok(config) => return Ok(config),
            Err(err) => err,
        };
        let path: Vec<String> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let message = err.into_inner().message().to_owned();
        let key = if path.is_empty() {
            "config".to_owned()
        } else {
            key_path(&path)
        };
        // The override that set this key, or (for an unknown key) one below it.
        match overrides
            .iter_mut()
            .find(|o| !path.is_empty() && o.path.starts_with(&path))
        {
            Some(o) if o.typed && o.path == path => {
                o.typed = false;
                let _ = set(&mut table, &o.path, Value::String(o.raw.clone()));
            }
            Some(o) => {
                return Err(ConfigError::invalid(
                    key,
                    format!("{message} (set by {})", o.var),
                ));
            }
            None => return Err(ConfigError::invalid(key, message)),
        }
    }
}

fn syntax_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let line = err.span().map_or(1, |span| {
        text.get(..span.start)
            .map_or(1, |before| before.matches('\n').count() + 1)
    });
    ConfigError::Syntax {
        line,
        message: crate::error::one_line(err.message().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(text, env.iter().copied())
    }

    fn error(text: &str, env: &[(&str, &str)]) -> String {
        load(text, env).expect_err("should be rejected").to_string()
    }

    #[test]
    fn contradictory_security_settings_are_rejected_at_load() {
        assert_eq!(
            error("[security]\nwindow_secs = 0\n", &[]),
            "security: window_secs must be positive"
        );
    }

    #[test]
    fn an_instance_id_is_a_name_or_nothing() {
        assert_eq!(
            error("[kafka]\ninstance_id = \"pod 1\"\n", &[]),
            "kafka.instance_id: not an instance name (1 to 128 of [A-Za-z0-9._-])"
        );
        let config = load("", &[("AUDITFLOW_KAFKA__INSTANCE_ID", "sink-1")]).unwrap();
        assert_eq!(config.kafka.instance_id, "sink-1");
        assert_eq!(Config::from_toml_str("").unwrap().kafka.instance_id, "");
    }

    #[test]
    fn an_empty_document_is_all_defaults() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.topics.user_action, "audit.user.action");
        assert_eq!(config.topics.data_access, "audit.data.access");
        assert_eq!(config.topics.security_event, "audit.security.event");
        assert_eq!(config.topics.dead_letter, "audit.dlq");
        assert_eq!(config.limits.max_record_bytes, 1024 * 1024);
        assert_eq!(config.limits.max_json_depth, 64);
        assert!(config.sampling.iter().next().is_none());
    }

    #[test]
    fn a_file_may_hold_one_table_and_keeps_declaration_order() {
        let config = Config::from_toml_str(
            "[sampling]\n\"user.page.*\" = 0.2\n\"user.*.view\" = 0.1\n\"a.b\" = 1\n",
        )
        .unwrap();
        let rates: Vec<_> = config.sampling.iter().collect();
        assert_eq!(
            rates,
            [("user.page.*", 0.2), ("user.*.view", 0.1), ("a.b", 1.0)]
        );
        assert_eq!(config.topics.user_action, "audit.user.action");
    }

    #[test]
    fn invalid_values_name_the_key_in_one_line() {
        assert_eq!(
            error("[sampling]\n\"user.page.view\" = 1.5\n", &[]),
            "sampling.\"user.page.view\": rate 1.5 is outside [0, 1]"
        );
        assert_eq!(
            error("[sampling]\n\"x\" = -0.1\n", &[]),
            "sampling.x: rate -0.1 is outside [0, 1]"
        );
        assert_eq!(
            error("[sampling]\n\"x\" = nan\n", &[]),
            "sampling.x: rate NaN is outside [0, 1]"
        );
        let bad_pattern = error("[sampling]\n\"user..view\" = 0.5\n", &[]);
        assert!(
            bad_pattern.starts_with("sampling.\"user..view\": "),
            "{bad_pattern}"
        );
        let bad_type = error("[sampling]\n\"user.x\" = \"half\"\n", &[]);
        assert!(bad_type.starts_with("sampling.\"user.x\": "), "{bad_type}");
        let bad_limit = error("[limits]\nmax_record_bytes = \"big\"\n", &[]);
        assert!(
            bad_limit.starts_with("limits.max_record_bytes: "),
            "{bad_limit}"
        );
        assert_eq!(
            error("[limits]\nmax_record_bytes = 0\n", &[]),
            "limits.max_record_bytes: must be at least 1"
        );
        assert!(
            error("[limits]\nmax_json_depth = 500\n", &[]).starts_with("limits.max_json_depth: ")
        );
        assert!(error("[topics]\ndead_letter = \"\"\n", &[]).starts_with("topics.dead_letter: "));
        assert_eq!(
            error("[topics]\nactions = \"security.alerts\"\n", &[]),
            "topics.actions: the same topic as topics.alerts: every output needs its own"
        );
        assert!(
            error("[retention]\ngeneral_days = 0\n", &[]).starts_with("retention.general_days: ")
        );
        for message in [bad_pattern, bad_type, bad_limit] {
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn unknown_keys_and_sections_are_errors() {
        let unknown_key = error("[limits]\nmax_bytes = 1\n", &[]);
        assert!(unknown_key.contains("max_bytes"), "{unknown_key}");
        let unknown_section = error("[sampler]\n", &[]);
        assert!(unknown_section.contains("sampler"), "{unknown_section}");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let message = error("[limits]\nmax_record_bytes = = 3\n", &[]);
        assert!(message.starts_with("line 2: "), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = load(
            "[limits]\nmax_record_bytes = 10\n[kafka]\nbootstrap_servers = \"file:9092\"\n",
            &[
                ("AUDITFLOW_LIMITS__MAX_RECORD_BYTES", "2048"),
                ("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS", "broker:9092"),
                ("AUDITFLOW_SAMPLING__USER.PAGE.VIEW", "0.25"),
                ("AUDITFLOW_KAFKA__PROPERTIES__LINGER.MS", "5"),
                ("AUDITFLOW_STORE__PASSWORD", "12345"),
                ("AUDITFLOW_STORE__NODES", "[\"a:9042\", \"b:9042\"]"),
                ("AUDITFLOW_CONFIG", "/etc/auditflow.toml"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(config.limits.max_record_bytes, 2048);
        assert_eq!(config.kafka.bootstrap_servers, "broker:9092");
        assert_eq!(
            config.sampling.iter().collect::<Vec<_>>(),
            [("user.page.view", 0.25)]
        );
        assert_eq!(config.kafka.properties["linger.ms"], "5");
        assert_eq!(config.store.password.as_deref(), Some("12345"));
        assert_eq!(config.store.nodes, ["a:9042", "b:9042"]);
    }

    #[test]
    fn hourly_subjects_default_to_the_classifiers_non_persons_and_can_be_overridden() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.store.hourly_subjects, ["unknown", "system"]);
        let config = load(
            "[store]\nhourly_subjects = [\"unknown\"]\n",
            &[(
                "AUDITFLOW_STORE__HOURLY_SUBJECTS",
                "[\"unknown\", \"batch\"]",
            )],
        )
        .unwrap();
        assert_eq!(config.store.hourly_subjects, ["unknown", "batch"]);
        let cleared = load("[store]\nhourly_subjects = []\n", &[]).unwrap();
        assert!(cleared.store.hourly_subjects.is_empty());
    }

    #[test]
    fn bad_environment_overrides_name_the_variable_or_key() {
        let unknown = error("", &[("AUDITFLOW_LIMITS__NOPE", "1")]);
        assert!(
            unknown.contains("nope") && unknown.ends_with("(set by AUDITFLOW_LIMITS__NOPE)"),
            "{unknown}"
        );
        let unknown_section = error("", &[("AUDITFLOW_NOPE__X", "1")]);
        assert!(
            unknown_section.ends_with("(set by AUDITFLOW_NOPE__X)"),
            "{unknown_section}"
        );
        assert_eq!(
            error("", &[("AUDITFLOW_SAMPLING__USER.X", "2")]),
            "sampling.\"user.x\": rate 2 is outside [0, 1]"
        );
        let not_a_number = error("", &[("AUDITFLOW_LIMITS__MAX_RECORD_BYTES", "lots")]);
        assert!(
            not_a_number.starts_with("limits.max_record_bytes: ")
                && not_a_number.ends_with("(set by AUDITFLOW_LIMITS__MAX_RECORD_BYTES)"),
            "{not_a_number}"
        );
        let below_a_string = error("", &[("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS__X", "1")]);
        assert!(
            below_a_string.starts_with("kafka.bootstrap_servers: "),
            "{below_a_string}"
        );
        let below_a_file_string = error(
            "[kafka]\nbootstrap_servers = \"b:9092\"\n",
            &[("AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS__X", "1")],
        );
        assert_eq!(
            below_a_file_string,
            "AUDITFLOW_KAFKA__BOOTSTRAP_SERVERS__X: kafka.bootstrap_servers is not a table"
        );
        assert!(error("", &[("AUDITFLOW_KAFKA____X", "1")]).starts_with("AUDITFLOW_KAFKA____X: "));
    }
}
