//! Building librdkafka clients from `[kafka]` configuration.
//!
//! Order of precedence: our defaults, then the operator's passthrough `properties` (TLS, SASL,
//! tuning), then the settings the delivery guarantees rest on, which no property overrides:
//! manual offset commits, `read_committed` reads, cooperative rebalancing, idempotent
//! transactional producers.

use auditflow_core::config::KafkaSettings;
use rdkafka::ClientConfig;

/// The consumer group id of `service` (`auditflow-classifier`, …).
pub fn group_id(settings: &KafkaSettings, service: &str) -> String {
    format!("{}{}", settings.group_prefix, service)
}

fn with_properties(settings: &KafkaSettings, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    config.set("bootstrap.servers", &settings.bootstrap_servers);
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    config
}

/// A group consumer that commits only what the service says is done.
pub fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = with_properties(
        settings,
        &[
            // A new group starts at the beginning: an audit pipeline must not skip history.
            ("auto.offset.reset", "earliest"),
            // Regex subscriptions pick up new `user.*` topics at metadata refresh; librdkafka's
            // default of 5 minutes is too slow for a topic a producer just created.
            ("topic.metadata.refresh.interval.ms", "10000"),
            // Feeds the consumer-lag gauge (see metrics).
            ("statistics.interval.ms", "5000"),
            // Bounds what librdkafka prefetches per consumer (default 64 MiB).
            ("queued.max.messages.kbytes", "16384"),
        ],
    );
    config
        .set("group.id", group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed");
    config
}

/// A reader of a whole (compacted) topic by assignment, in no group: `read_committed`, from
/// the beginning, committing nothing (the [`table`](crate::kafka::table) module). librdkafka wants a
/// `group.id` even to assign partitions; `<group_prefix>table-reader` never joins a group
/// (no subscription) and never fetches or commits offsets (they are given).
pub fn table_reader_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = with_properties(settings, &[("queued.max.messages.kbytes", "16384")]);
    config
        .set("group.id", group_id(settings, "table-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    config
}

/// A transactional producer (which implies idempotence and `acks=all`).
pub fn transactional_producer_config(
    settings: &KafkaSettings,
    transactional_id: &str,
) -> ClientConfig {
    let mut config = with_properties(
        settings,
        &[
            ("linger.ms", "5"),
            // A transaction must outlive a broker restart: one open when the broker dies is
            // expired by the coordinator after this long, which fences the producer (the
            // process exits; `cargo xtask chaos` saw it at 10 s on every broker restart). It
            // is also how long a crashed instance's open transaction holds back
            // `read_committed` readers of its partitions — unless its successor has the same
            // `transactional.id` (`[kafka] instance_id`) and fences it at once. 60 s is the
            // Java producer's default; name the instances to keep the stall after a `kill -9`
            // short (RELIABILITY.md measures both).
            ("transaction.timeout.ms", "60000"),
        ],
    );
    config
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true");
    config
}

/// A plain idempotent producer (dead letters of the at-least-once services, tools).
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = with_properties(settings, &[("linger.ms", "5")]);
    config.set("enable.idempotence", "true").set("acks", "all");
    config
}

/// The largest record our producers may send, as [`crate::kafka::records::wire_len`] counts it: the
/// passthrough `message.max.bytes`, else librdkafka's default (1 000 000), less room for the
/// record batch around it. Records above it are refused by the client, and one refused record
/// must not stall a partition (see the dead-letter module).
pub fn max_message_bytes(settings: &KafkaSettings) -> usize {
    max_message_bytes_to(settings, None)
}

/// [`max_message_bytes`] for records to a topic whose broker-side limit is
/// `topic_max_message_bytes` ([`crate::kafka::topics::max_message_bytes`]; `None` when unknown):
/// the smaller of the two limits, less the same room. The broker counts the record batch
/// (61 bytes of header around one record), librdkafka the record alone; 512 bytes cover both.
pub fn max_message_bytes_to(
    settings: &KafkaSettings,
    topic_max_message_bytes: Option<usize>,
) -> usize {
    const FRAMING: usize = 512;
    let producer = settings
        .properties
        .get("message.max.bytes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_000_000);
    topic_max_message_bytes
        .map_or(producer, |topic| topic.min(producer))
        .saturating_sub(FRAMING)
}

/// An admin client's configuration.
pub fn admin_config(settings: &KafkaSettings) -> ClientConfig {
    with_properties(settings, &[])
}

/// The `transactional.id` of `group`'s transactional producer in this instance.
///
/// With `[kafka] instance_id` set: `<group>-<instance_id>`, the same on every start. The
/// broker then fences a crashed predecessor as soon as its successor initialises transactions
/// (`InitProducerId` aborts the open transaction of that id), so `read_committed` readers of
/// its partitions go on at once instead of waiting out `transaction.timeout.ms`.
///
/// Without it: `<group>-<host>-<pid>-<random>`, unique per start. Correct all the same — with
/// KIP-447 (`send_offsets_to_transaction` with the consumer's group metadata) zombie fencing
/// comes from the group generation, not from the id — but after a `kill -9` the predecessor's
/// open transaction holds back readers until the broker times it out.
pub fn transactional_id(settings: &KafkaSettings, group_id: &str) -> String {
    if !settings.instance_id.is_empty() {
        return format!("{group_id}-{}", settings.instance_id);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{group_id}-{host}-{}-{}", std::process::id(), &random[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarantees_win_over_passthrough_properties() {
        let mut settings = KafkaSettings::default();
        settings
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        settings
            .properties
            .insert("isolation.level".into(), "read_uncommitted".into());
        settings
            .properties
            .insert("session.timeout.ms".into(), "12000".into());
        settings
            .properties
            .insert("auto.offset.reset".into(), "latest".into());
        let config = consumer_config(&settings, "auditflow-classifier");
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(
            config.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        // Tuning passes through, defaults can be changed.
        assert_eq!(config.get("session.timeout.ms"), Some("12000"));
        assert_eq!(config.get("auto.offset.reset"), Some("latest"));
        assert_eq!(config.get("group.id"), Some("auditflow-classifier"));
    }

    #[test]
    fn the_message_size_limit_follows_the_producer_setting() {
        let mut settings = KafkaSettings::default();
        assert_eq!(max_message_bytes(&settings), 1_000_000 - 512);
        settings
            .properties
            .insert("message.max.bytes".into(), "2000000".into());
        assert_eq!(max_message_bytes(&settings), 2_000_000 - 512);
        // A topic that takes less than the producer would send decides.
        assert_eq!(
            max_message_bytes_to(&settings, Some(200_000)),
            200_000 - 512
        );
        assert_eq!(
            max_message_bytes_to(&settings, Some(5_000_000)),
            2_000_000 - 512
        );
    }

    #[test]
    fn group_ids_follow_the_prefix() {
        assert_eq!(
            group_id(&KafkaSettings::default(), "classifier"),
            "auditflow-classifier"
        );
    }

    #[test]
    fn transactional_ids_are_unique_per_start_unless_the_instance_is_named() {
        let mut settings = KafkaSettings::default();
        let a = transactional_id(&settings, "auditflow-classifier");
        let b = transactional_id(&settings, "auditflow-classifier");
        assert!(a.starts_with("auditflow-classifier-"));
        assert_ne!(a, b);
        settings.instance_id = "classifier-0".into();
        assert_eq!(
            transactional_id(&settings, "auditflow-classifier"),
            "auditflow-classifier-classifier-0"
        );
    }
}
