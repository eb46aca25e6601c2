//! Topic administration: every topic of docs/topics-and-records.md that auditflow writes, created
//! idempotently by `auditflow topics create` and by each service on start.
//!
//! Input topics (`user.*`, `system.*`) belong to the producers and are not created here.
//!
//! The load harnesses also clean up after a run here: [`delete_topics`] and [`delete_group`].

use std::time::Duration;

use auditflow_core::config::{KafkaSettings, Topics};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::KafkaContext;
use crate::kafka::client;
use crate::{Error, Result};

/// One topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name.
    pub name: String,
    /// How many partitions it gets.
    pub partitions: i32,
    /// How many replicas of each partition.
    pub replication_factor: i32,
    /// Topic-level configuration, e.g. `cleanup.policy=compact`.
    pub config: Vec<(&'static str, String)>,
}

/// What creating a topic found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicStatus {
    /// The topic was created now.
    Created,
    /// The topic was there already (left as it is).
    AlreadyExisted,
}

/// The topics auditflow writes, from `[topics]`.
pub fn planned_topics(topics: &Topics) -> Vec<TopicSpec> {
    let spec = |name: &str, config: Vec<(&'static str, String)>| TopicSpec {
        name: name.to_owned(),
        partitions: topics.partitions,
        replication_factor: topics.replication_factor,
        config,
    };
    let dlq_retention_ms = u64::from(topics.dead_letter_retention_days) * 24 * 3600 * 1000;
    vec![
        spec(&topics.user_action, vec![]),
        spec(&topics.data_access, vec![]),
        spec(&topics.security_event, vec![]),
        spec(
            &topics.dead_letter,
            vec![("retention.ms", dlq_retention_ms.to_string())],
        ),
        spec(&topics.alerts, vec![]),
        spec(&topics.actions, vec![]),
        // The blocklist is a table (ip → entry, tombstone on expiry): keep the latest per key.
        spec(
            &topics.blocklist,
            vec![("cleanup.policy", "compact".to_owned())],
        ),
        // The tamper-evident log's anchor: every checkpoint kept for good, none compacted away.
        spec(
            &topics.checkpoints,
            vec![
                ("cleanup.policy", "delete".to_owned()),
                ("retention.ms", "-1".to_owned()),
                ("retention.bytes", "-1".to_owned()),
            ],
        ),
        // The operator log: the sink stores it, under the security retention class.
        spec(&topics.operator, vec![]),
        // What the classifier sampled out, summarised: the sink stores it.
        spec(&topics.sampling, vec![]),
        // The OCSF exporter's output, for SIEMs and data lakes.
        spec(&topics.ocsf, vec![]),
    ]
}

/// Creates `specs`; a topic that already exists is fine (its settings are left as they are).
pub async fn ensure_topics(
    settings: &KafkaSettings,
    specs: &[TopicSpec],
) -> Result<Vec<(String, TopicStatus)>> {
    let admin: AdminClient<DefaultClientContext> = client::admin_config(settings)
        .create()
        .during("creating the admin client")?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            s.config.iter().fold(
                NewTopic::new(
                    &s.name,
                    s.partitions,
                    TopicReplication::Fixed(s.replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .during("creating topics")?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(name) => Ok((name, TopicStatus::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                Ok((name, TopicStatus::AlreadyExisted))
            }
            Err((topic, code)) => Err(Error::Topic {
                topic,
                reason: code.to_string(),
            }),
        })
        .collect()
}

/// The broker's record size limit for `topic` (its `max.message.bytes`, which defaults to the
/// broker's `message.max.bytes`), or `None` when it cannot be read — the topic does not exist
/// yet, or this principal may not describe its configuration. A record over it is refused by
/// the broker however small the producer's own limit says it is.
pub async fn max_message_bytes(settings: &KafkaSettings, topic: &str) -> Option<usize> {
    let admin: AdminClient<DefaultClientContext> = client::admin_config(settings).create().ok()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await;
    let limit = described
        .ok()?
        .into_iter()
        .next()?
        .ok()?
        .get("max.message.bytes")?
        .value
        .clone()?;
    limit.parse().ok()
}

/// Deletes `names` (the load harnesses' clean-up). Each topic's failure is reported on its own:
/// the first one is the error.
pub async fn delete_topics(settings: &KafkaSettings, names: &[&str]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client::admin_config(settings)
        .create()
        .during("creating the admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .delete_topics(names, &options)
        .await
        .during("deleting topics")?;
    for result in results {
        if let Err((topic, code)) = result {
            return Err(Error::Topic {
                topic,
                reason: code.to_string(),
            });
        }
    }
    Ok(())
}

/// Deletes consumer group `group` and its committed offsets (the load harnesses' clean-up).
pub async fn delete_group(settings: &KafkaSettings, group: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client::admin_config(settings)
        .create()
        .during("creating the admin client")?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .delete_groups(&[group], &options)
        .await
        .during("deleting a consumer group")?;
    for result in results {
        if let Err((_, code)) = result {
            return Err(Error::Group {
                group: group.to_owned(),
                reason: code.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_every_output_topic_of_section_one() {
        let plan = planned_topics(&Topics::default());
        let names: Vec<&str> = plan.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "audit.user.action",
                "audit.data.access",
                "audit.security.event",
                "audit.dlq",
                "security.alerts",
                "security.actions",
                "security.blocklist",
                "audit.checkpoints",
                "audit.operator.action",
                "audit.sampling.summary",
                "audit.ocsf"
            ]
        );
        let anchor = plan.iter().find(|s| s.name == "audit.checkpoints").unwrap();
        assert_eq!(
            anchor.config,
            [
                ("cleanup.policy", "delete".to_owned()),
                ("retention.ms", "-1".to_owned()),
                ("retention.bytes", "-1".to_owned())
            ]
        );
        let blocklist = plan
            .iter()
            .find(|s| s.name == "security.blocklist")
            .unwrap();
        assert_eq!(blocklist.config, [("cleanup.policy", "compact".to_owned())]);
        let dlq = plan.iter().find(|s| s.name == "audit.dlq").unwrap();
        assert_eq!(
            dlq.config,
            [("retention.ms", (30u64 * 86_400_000).to_string())]
        );
        assert!(
            plan.iter()
                .all(|s| s.partitions == 6 && s.replication_factor == 1)
        );
    }
}
