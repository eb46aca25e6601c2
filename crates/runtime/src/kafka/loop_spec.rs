//! [`LoopSpec`]: who a consumer loop is and what it reads and writes, the one description
//! both loops ([`transactional`](crate::kafka::transactional),
//! [`at_least_once`](crate::kafka::at_least_once)) start from.

use auditflow_core::Config;
use auditflow_core::config::KafkaSettings;

/// Who the loop is and what it reads and writes.
#[derive(Debug, Clone)]
pub struct LoopSpec {
    /// The service name: metric label, `auditflow.service` header, group id suffix.
    pub service: String,
    /// Topic names, or regular expressions starting with `^`.
    pub inputs: Vec<String>,
    /// Where records the service cannot process go (`[topics] dead_letter`).
    pub dead_letter_topic: String,
    /// The `[kafka]` settings: bootstrap servers, group prefix, batch and in-flight bounds.
    pub kafka: KafkaSettings,
}

impl LoopSpec {
    /// A service's loop as configured: `[kafka]` and the `[topics]` dead-letter topic.
    pub fn for_service(service: &str, inputs: Vec<String>, config: &Config) -> Self {
        Self {
            service: service.to_owned(),
            inputs,
            dead_letter_topic: config.topics.dead_letter.clone(),
            kafka: config.kafka.clone(),
        }
    }
}
