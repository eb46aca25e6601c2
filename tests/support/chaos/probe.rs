//! What the chaos harness measures on Kafka while it runs: each group's committed lag (records
//! below the high watermark that the group has not committed), and the stall a killed
//! transactional instance leaves behind (how long its open transaction holds back the last
//! stable offset of the partitions it wrote).
//!
//! One client per group and two for watermarks, made once: asked every second, the probe must
//! not itself load a two-core machine. Calls time out after [`CALL`]; while the broker is down
//! a sample is simply missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Timeout of one broker call.
const CALL: Duration = Duration::from_secs(3);

/// A consumer group and the topics it reads.
#[derive(Debug, Clone)]
pub struct Group {
    /// The service, as the report names it.
    pub service: &'static str,
    /// Its group id.
    pub id: String,
    /// Its input topics.
    pub topics: Vec<String>,
}

/// Lag of every group, from committed offsets.
pub struct LagProbe {
    groups: Vec<(Group, BaseConsumer)>,
    watermarks: BaseConsumer,
    partitions: BTreeMap<String, Vec<i32>>,
}

fn client(bootstrap: &str, group: &str, isolation: &str) -> Result<BaseConsumer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .map_err(|e| format!("a Kafka client: {e}"))
}

impl LagProbe {
    /// A probe of `groups`, whose topics must exist.
    pub fn new(bootstrap: &str, groups: &[Group]) -> Result<Self, String> {
        let watermarks = client(bootstrap, "chaos-probe", "read_uncommitted")?;
        let mut partitions = BTreeMap::new();
        for g in groups {
            for t in &g.topics {
                if !partitions.contains_key(t) {
                    let metadata = watermarks
                        .fetch_metadata(Some(t), CALL)
                        .map_err(|e| format!("metadata of {t}: {e}"))?;
                    let ps = metadata.topics()[0]
                        .partitions()
                        .iter()
                        .map(|p| p.id())
                        .collect();
                    partitions.insert(t.clone(), ps);
                }
            }
        }
        let mut clients = Vec::new();
        for g in groups {
            clients.push((g.clone(), client(bootstrap, &g.id, "read_committed")?));
        }
        Ok(Self {
            groups: clients,
            watermarks,
            partitions,
        })
    }

    /// Each group's lag (`service` → records), or why the broker did not answer.
    pub fn lag(&self) -> Result<BTreeMap<&'static str, u64>, String> {
        let mut ends: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for (topic, ps) in &self.partitions {
            for p in ps {
                let (_, high) = self
                    .watermarks
                    .fetch_watermarks(topic, *p, CALL)
                    .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
                ends.insert((topic.as_str(), *p), high);
            }
        }
        let mut out = BTreeMap::new();
        for (group, consumer) in &self.groups {
            let mut list = TopicPartitionList::new();
            for t in &group.topics {
                for p in &self.partitions[t] {
                    list.add_partition(t, *p);
                }
            }
            let committed = consumer
                .committed_offsets(list, CALL)
                .map_err(|e| format!("committed offsets of {}: {e}", group.id))?;
            let mut lag = 0u64;
            for e in committed.elements() {
                let end = ends.get(&(e.topic(), e.partition())).copied().unwrap_or(0);
                let done = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                lag += u64::try_from(end - done).unwrap_or(0);
            }
            out.insert(group.service, lag);
        }
        Ok(out)
    }
}

/// How long the partitions of `topics` kept a last stable offset below the high watermark
/// they had when this was called: the time until every transaction open then was decided
/// (those of live instances commit within milliseconds; a killed instance's waits for its
/// successor to fence it, or for the broker's transaction timeout). `Ok(None)` if not decided
/// within `bound`; `Err` if the broker could not be asked.
pub fn measure_stall(
    bootstrap: &str,
    topics: &[String],
    bound: Duration,
) -> Result<Option<f64>, String> {
    let started = Instant::now();
    let high = client(bootstrap, "chaos-stall", "read_uncommitted")?;
    let stable = client(bootstrap, "chaos-stall", "read_committed")?;
    let mut targets: Vec<(String, i32, i64)> = Vec::new();
    for t in topics {
        let metadata = high
            .fetch_metadata(Some(t), CALL)
            .map_err(|e| format!("metadata of {t}: {e}"))?;
        for p in metadata.topics()[0].partitions() {
            let (_, h) = high
                .fetch_watermarks(t, p.id(), CALL)
                .map_err(|e| format!("watermarks of {t}/{}: {e}", p.id()))?;
            targets.push((t.clone(), p.id(), h));
        }
    }
    while started.elapsed() < bound {
        targets.retain(|(t, p, h)| {
            stable
                .fetch_watermarks(t, *p, CALL)
                .map_or(true, |(_, lso)| lso < *h)
        });
        if targets.is_empty() {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(None)
}
