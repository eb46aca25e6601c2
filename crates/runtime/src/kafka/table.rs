//! Following a compacted topic as a table: every committed record from the beginning, then
//! each new one, handed to a callback on a thread of its own.
//!
//! The security monitor's instances share their blocks through the compacted blocklist
//! topic; each keeps a view of it this way. The reader is in no consumer group (it assigns
//! itself every partition and commits nothing), reads `read_committed` (a record of an aborted
//! transaction is never seen), and says once when it has read the topic to the end offsets it
//! had when reading began ([`TableEvent::CaughtUp`]). Partitions added to the topic later are
//! not followed (the blocklist's partition count is fixed when it is created).
//!
//! What this module is not: it does not interpret keys or values; the callback does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditflow_core::config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::Result;
use crate::error::KafkaContext;
use crate::kafka::client;

/// How long one poll waits before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(200);
/// Timeout of the metadata and watermark calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before retrying when the topic cannot be looked up (not created yet, broker away).
const RETRY: Duration = Duration::from_secs(1);

/// What the follower hands its callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableEvent<'a> {
    /// A committed record: its key and value (`None`: a tombstone).
    Record {
        /// The record's key.
        key: &'a [u8],
        /// Its value; `None` is a tombstone.
        value: Option<&'a [u8]>,
    },
    /// Every partition has been read to the end offset it had when reading began. Sent once.
    CaughtUp,
}

/// A running follower; dropping it stops its thread (and waits for it).
pub struct TableFollower {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TableFollower {
    /// Starts following `topic` with `[kafka]`'s connection settings.
    pub fn start(
        settings: &KafkaSettings,
        topic: &str,
        apply: impl FnMut(TableEvent<'_>) + Send + 'static,
    ) -> Result<TableFollower> {
        let consumer: BaseConsumer = client::table_reader_config(settings)
            .create()
            .during("creating the table reader")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (topic, stop) = (topic.to_owned(), stop.clone());
            std::thread::Builder::new()
                .name(format!("table-{topic}"))
                .spawn(move || follow(&consumer, &topic, apply, &stop))
                .map_err(|e| crate::Error::Task(e.to_string()))?
        };
        Ok(TableFollower {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TableFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn follow(
    consumer: &BaseConsumer,
    topic: &str,
    mut apply: impl FnMut(TableEvent<'_>),
    stop: &AtomicBool,
) {
    // The end offsets to reach before saying `CaughtUp`; `None` once said.
    let mut ends: Option<HashMap<i32, i64>> = None;
    let mut assigned = false;
    while !stop.load(Ordering::Relaxed) {
        if !assigned {
            match assign_all(consumer, topic) {
                Ok(found) => {
                    assigned = true;
                    ends = Some(found);
                }
                Err(err) => {
                    tracing::warn!(%topic, error = %err, "cannot follow the topic yet; retrying");
                    std::thread::sleep(RETRY);
                    continue;
                }
            }
        }
        match consumer.poll(POLL) {
            Some(Ok(message)) => apply(TableEvent::Record {
                key: message.key().unwrap_or_default(),
                value: message.payload(),
            }),
            Some(Err(err)) => tracing::warn!(%topic, error = %err, "table reader error"),
            None => {}
        }
        if let Some(targets) = &ends
            && reached(consumer, topic, targets)
        {
            ends = None;
            apply(TableEvent::CaughtUp);
        }
    }
}

/// Assigns every partition of `topic` from its beginning; returns each one's end offset.
fn assign_all(
    consumer: &BaseConsumer,
    topic: &str,
) -> rdkafka::error::KafkaResult<HashMap<i32, i64>> {
    let metadata = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(rdkafka::error::KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for p in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, CALL_TIMEOUT)?;
        ends.insert(p, high);
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    Ok(ends)
}

/// Whether the reader's position has reached every target. A `read_committed` position stops
/// at the last stable offset, so an open transaction holds this back until it ends.
fn reached(consumer: &BaseConsumer, topic: &str, targets: &HashMap<i32, i64>) -> bool {
    let Ok(position) = consumer.position() else {
        return false;
    };
    targets.iter().all(|(p, end)| {
        *end == 0
            || matches!(
                position.find_partition(topic, *p).map(|e| e.offset()),
                Some(Offset::Offset(at)) if at >= *end
            )
    })
}
