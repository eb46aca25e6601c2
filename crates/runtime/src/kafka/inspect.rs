//! Looking at topics and consumer groups from outside, for the operator's tools and the load
//! harnesses: whether a group has members ([`GroupProbe`]), how far a group has committed
//! ([`CommittedOffsets`]), and what a topic holds, read as the loops read it ([`TopicReader`],
//! or the whole of it at once: [`read_to_end`]). None of them joins a group or commits
//! anything.

use std::time::Duration;

use auditflow_core::config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};

use crate::Result;
use crate::error::KafkaContext;
use crate::kafka::client;
use crate::kafka::records::InputRecord;

/// Asks Kafka about consumer groups (ListGroups/DescribeGroups). It never subscribes, so it
/// never joins a group itself.
pub struct GroupProbe {
    consumer: BaseConsumer,
}

impl GroupProbe {
    /// A client with `[kafka]`'s bootstrap servers and passthrough properties.
    pub fn new(settings: &KafkaSettings) -> Result<Self> {
        let consumer = client::consumer_config(settings, "auditflow-group-probe")
            .create()
            .during("creating a Kafka client")?;
        Ok(Self { consumer })
    }

    /// How many members `group` has now (0 for a group Kafka does not know).
    pub fn members(&self, group: &str, timeout: Duration) -> Result<usize> {
        self.describe(group, timeout, |g| g.members().len())
            .map(|sizes| sizes.iter().sum())
    }

    /// Whether `group` is stable (no rebalance under way) with exactly `members` members.
    pub fn stable_with(&self, group: &str, members: usize, timeout: Duration) -> Result<bool> {
        self.describe(group, timeout, |g| {
            g.state() == "Stable" && g.members().len() == members
        })
        .map(|stable| stable.contains(&true))
    }

    /// `read` of each description Kafka returns for `group` (none for a group it does not know).
    fn describe<T>(
        &self,
        group: &str,
        timeout: Duration,
        read: impl Fn(&GroupInfo) -> T,
    ) -> Result<Vec<T>> {
        let list = self
            .consumer
            .fetch_group_list(Some(group), timeout)
            .during("describing a consumer group")?;
        Ok(list
            .groups()
            .iter()
            .filter(|g| g.name() == group)
            .map(read)
            .collect())
    }
}

/// The offsets a consumer group has committed, read with its group id (never committing).
pub struct CommittedOffsets {
    consumer: BaseConsumer,
}

impl CommittedOffsets {
    /// A client that reads `group`'s commits.
    pub fn of(settings: &KafkaSettings, group: &str) -> Result<Self> {
        let consumer = client::consumer_config(settings, group)
            .create()
            .during("creating a Kafka client")?;
        Ok(Self { consumer })
    }

    /// The sum over partitions `0..partitions` of `topic` of the group's committed offsets
    /// (a partition without a commit counts 0): how many records the group has finished.
    pub fn total(&self, topic: &str, partitions: i32, timeout: Duration) -> Result<i64> {
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let committed = self
            .consumer
            .committed_offsets(list, timeout)
            .during("reading committed offsets")?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum())
    }
}

/// Reads a topic from its beginning with the loops' consumer settings, in a group of its own,
/// detaching each record as the loops do; it commits nothing.
pub struct TopicReader {
    consumer: BaseConsumer,
}

impl TopicReader {
    /// A reader of `topic` in consumer group `group`.
    pub fn new(settings: &KafkaSettings, group: &str, topic: &str) -> Result<Self> {
        let consumer: BaseConsumer = client::consumer_config(settings, group)
            .create()
            .during("creating a consumer")?;
        consumer.subscribe(&[topic]).during("subscribing")?;
        Ok(Self { consumer })
    }

    /// The next record, waiting up to `timeout`; `None` when none came.
    pub fn next(&self, timeout: Duration) -> Option<Result<InputRecord>> {
        self.consumer.poll(timeout).map(|polled| {
            polled
                .map(|m| InputRecord::from_message(&m))
                .during("consuming")
        })
    }
}

/// Every record `topic` holds now, each partition read from its beginning to the end offset it
/// had when the read began (`auditflow verify` reading the anchor topic, `report security` the
/// monitor's actions and blocklist). Blocking; fails when the end is not reached within
/// `timeout`. A partition is done when a record at its end is read *or* the consumer's
/// position is past it: a transactional topic's last offset is a commit marker, which no
/// `read_committed` reader is ever handed (the position steps over it).
pub fn read_to_end(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<InputRecord>> {
    let consumer: BaseConsumer = client::consumer_config(settings, "auditflow-topic-reader")
        .create()
        .during("creating a consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .during("reading the topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .during("reading the topic's end offsets")?;
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .during("assigning the topic")?;
        }
    }
    consumer.assign(&assignment).during("assigning the topic")?;
    let started = std::time::Instant::now();
    let mut records = Vec::new();
    while !ends.is_empty() {
        if started.elapsed() > timeout {
            return Err(crate::Error::Topic {
                topic: topic.to_owned(),
                reason: format!(
                    "its end was not reached within {} s of reading",
                    timeout.as_secs()
                ),
            });
        }
        if let Some(polled) = consumer.poll(Duration::from_millis(200)) {
            let record = InputRecord::from_message(&polled.during("consuming")?);
            if let Some(end) = ends.get(&record.partition) {
                if record.offset + 1 >= *end {
                    ends.remove(&record.partition);
                }
                records.push(record);
            }
        }
        if let Ok(position) = consumer.position() {
            ends.retain(|p, end| {
                !matches!(
                    position.find_partition(topic, *p).map(|e| e.offset()),
                    Some(Offset::Offset(at)) if at >= *end
                )
            });
        }
    }
    Ok(records)
}
