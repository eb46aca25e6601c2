//! A leaf of the tamper-evident log: the canonical bytes of what was stored for one record.
//!
//! The bytes name the record's place in its log (topic, partition, offset, the Kafka
//! timestamp), every clear column the queries and reports read (kind, class, type, labels,
//! event time), the coordinates of each of its rows (key id and day of `records_by_id`, the
//! partition pseudonym of its per-user row, the shard of its by-time rows, the hour of an
//! hourly subject, whether a `user_days` row leads to it), the TTL its rows were written with,
//! and the SHA-256 of each ciphertext it stored — never plaintext, so after `gdpr delete`
//! destroys a key the record's rows still hash to the same leaf.
//!
//! Encoding (docs/integrity.md): the label `auditflow leaf v1\n`, then each field in a fixed
//! order — integers big-endian, strings and byte strings prefixed by their length (u32),
//! optional fields by a presence byte (0 absent, 1 present), booleans as one byte, floats as
//! their IEEE-754 bits — so no two different leaves encode alike, and a verifier needs no
//! JSON, no schema and no database to recompute one.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use auditflow_core::RetentionClass;
use auditflow_core::checkpoint::LogId;
use auditflow_core::merkle::Hash;

use crate::stored::{Labels, RecordKind};

const LABEL: &[u8] = b"auditflow leaf v1\n";

/// Where a record sits in its log: the Kafka record the sink stored it from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogPosition {
    /// The log: the record's topic and partition.
    pub log: LogId,
    /// The record's offset.
    pub offset: i64,
    /// The record's Kafka timestamp (ms since the epoch): checkpoint times, and from when a
    /// record's rows may have expired.
    pub time_ms: i64,
}

/// Everything a leaf binds, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    /// The record's place in its log.
    pub position: LogPosition,
    /// The CloudEvent id (`records_by_id`'s key).
    pub event_id: String,
    /// Which audit topic it came from.
    pub kind: RecordKind,
    /// Its retention class: its per-user table.
    pub class: RetentionClass,
    /// The CloudEvent type.
    pub event_type: String,
    /// The clear columns, as every one of its rows holds them.
    pub labels: Labels,
    /// The event time (ms since the epoch), a clustering column of every time-ordered row.
    pub event_time_ms: i64,
    /// The key id `records_by_id` names (the subject's, or a shredded record's own).
    pub key_id: Uuid,
    /// The day partition.
    pub day: NaiveDate,
    /// The hour of an hourly subject's row.
    pub hour: Option<i32>,
    /// The partition pseudonym of the per-user row.
    pub pseudonym: Uuid,
    /// The shard of the by-time rows (`records_by_time`, and `security_by_time` for security).
    pub shard: i32,
    /// SHA-256 of the per-user row's ciphertext (of nothing for a shredded record).
    pub event_digest: Hash,
    /// SHA-256 of the `security_by_time` row's ciphertext, for security events and alerts.
    pub time_event_digest: Option<Hash>,
    /// Whether a `user_days` row leads to the record (false for a shredded one).
    pub indexed: bool,
    /// The TTL the rows were written with (seconds): the record may be gone, legitimately,
    /// from `position.time_ms` plus this on.
    pub ttl_secs: i32,
}

/// SHA-256 of a stored ciphertext, as a leaf binds it.
pub fn digest(sealed: &[u8]) -> Hash {
    Sha256::digest(sealed).into()
}

impl Leaf {
    /// The canonical bytes (see the module docs); what the log's leaf hash is taken over.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256));
        w.raw(LABEL);
        w.str(&self.position.log.topic);
        w.raw(&self.position.log.partition.to_be_bytes());
        w.raw(&self.position.offset.to_be_bytes());
        w.raw(&self.position.time_ms.to_be_bytes());
        w.str(&self.event_id);
        w.str(self.kind.as_str());
        w.str(self.class.as_str());
        w.str(&self.event_type);
        let l = &self.labels;
        w.opt(l.action.as_deref(), |w, v| w.str(v));
        w.opt(l.outcome.as_deref(), |w, v| w.str(v));
        w.opt(l.risk_level.as_deref(), |w, v| w.str(v));
        w.opt(l.severity.as_deref(), |w, v| w.str(v));
        w.opt(l.blocked, |w, v| w.bool(v));
        w.opt(l.data_type.as_deref(), |w, v| w.str(v));
        w.opt(l.record_count, |w, v| w.raw(&v.to_be_bytes()));
        w.opt(l.sensitive, |w, v| w.bool(v));
        w.opt(l.sample_rate, |w, v| w.raw(&v.to_bits().to_be_bytes()));
        w.raw(&self.event_time_ms.to_be_bytes());
        w.raw(self.key_id.as_bytes());
        w.str(&self.day.to_string());
        w.opt(self.hour, |w, v| w.raw(&v.to_be_bytes()));
        w.raw(self.pseudonym.as_bytes());
        w.raw(&self.shard.to_be_bytes());
        w.raw(&self.event_digest);
        w.opt(self.time_event_digest, |w, v| w.raw(&v));
        w.bool(self.indexed);
        w.raw(&self.ttl_secs.to_be_bytes());
        w.0
    }

    /// The leaf `bytes` encode, or why they do not encode one.
    pub fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut r = Reader(bytes);
        if r.take(LABEL.len())? != LABEL {
            return Err("not a leaf of format 1");
        }
        let topic = r.string()?;
        let partition = r.i32()?;
        let offset = r.i64()?;
        let time_ms = r.i64()?;
        let event_id = r.string()?;
        let kind = RecordKind::parse(&r.string()?).ok_or("unknown record kind")?;
        let class = RetentionClass::parse(&r.string()?).ok_or("unknown retention class")?;
        let event_type = r.string()?;
        let labels = Labels {
            action: r.opt(Reader::string)?,
            outcome: r.opt(Reader::string)?,
            risk_level: r.opt(Reader::string)?,
            severity: r.opt(Reader::string)?,
            blocked: r.opt(Reader::bool)?,
            data_type: r.opt(Reader::string)?,
            record_count: r.opt(Reader::i64)?,
            sensitive: r.opt(Reader::bool)?,
            sample_rate: r.opt(|r| r.i64().map(|bits| f64::from_bits(bits as u64)))?,
        };
        let event_time_ms = r.i64()?;
        let key_id = r.uuid()?;
        let day = r.string()?.parse::<NaiveDate>().map_err(|_| "bad day")?;
        let hour = r.opt(Reader::i32)?;
        let pseudonym = r.uuid()?;
        let shard = r.i32()?;
        let event_digest = r.hash()?;
        let time_event_digest = r.opt(Reader::hash)?;
        let indexed = r.bool()?;
        let ttl_secs = r.i32()?;
        if !r.0.is_empty() {
            return Err("bytes after the leaf");
        }
        Ok(Self {
            position: LogPosition {
                log: LogId { topic, partition },
                offset,
                time_ms,
            },
            event_id,
            kind,
            class,
            event_type,
            labels,
            event_time_ms,
            key_id,
            day,
            hour,
            pseudonym,
            shard,
            event_digest,
            time_event_digest,
            indexed,
            ttl_secs,
        })
    }

    /// The time (ms since the epoch) from which the record's rows may have expired.
    pub fn expires_from_ms(&self) -> i64 {
        self.position
            .time_ms
            .saturating_add(i64::from(self.ttl_secs).saturating_mul(1000))
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn str(&mut self, s: &str) {
        // Every string a leaf holds is bounded far below 4 GiB (ids 512 bytes, labels short).
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.raw(&len.to_be_bytes());
        self.raw(s.as_bytes());
    }

    fn bool(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }

    fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                write(self, v);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("leaf cut short");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, &'static str> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, &'static str> {
        self.array().map(i64::from_be_bytes)
    }

    fn hash(&mut self) -> Result<Hash, &'static str> {
        self.array()
    }

    fn uuid(&mut self) -> Result<Uuid, &'static str> {
        self.array().map(Uuid::from_bytes)
    }

    fn bool(&mut self) -> Result<bool, &'static str> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bad boolean"),
        }
    }

    fn string(&mut self) -> Result<String, &'static str> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string not UTF-8")
    }

    fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, &'static str>,
    ) -> Result<Option<T>, &'static str> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => read(self).map(Some),
            _ => Err("bad presence byte"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Leaf {
        Leaf {
            position: LogPosition {
                log: LogId {
                    topic: "audit.security.event".into(),
                    partition: 3,
                },
                offset: 41,
                time_ms: 1_764_000_000_000,
            },
            event_id: "evt-1".into(),
            kind: RecordKind::SecurityEvent,
            class: RetentionClass::Security,
            event_type: "audit.security.event".into(),
            labels: Labels {
                action: Some("failed_login".into()),
                severity: Some("medium".into()),
                blocked: Some(false),
                sample_rate: Some(0.25),
                record_count: Some(-7),
                ..Labels::default()
            },
            event_time_ms: 1_763_999_999_000,
            key_id: Uuid::from_u128(7),
            day: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            hour: Some(13),
            pseudonym: Uuid::from_u128(8),
            shard: 5,
            event_digest: digest(b"ciphertext"),
            time_event_digest: Some(digest(b"other ciphertext")),
            indexed: true,
            ttl_secs: 86_400,
        }
    }

    #[test]
    fn a_leaf_decodes_to_what_was_encoded() {
        let leaf = sample();
        assert_eq!(Leaf::decode(&leaf.encode()).unwrap(), leaf);
        let bare = Leaf {
            labels: Labels::default(),
            hour: None,
            time_event_digest: None,
            indexed: false,
            ..sample()
        };
        assert_eq!(Leaf::decode(&bare.encode()).unwrap(), bare);
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = sample().encode();
        let changes: Vec<fn(&mut Leaf)> = vec![
            |l| l.position.log.topic.push('x'),
            |l| l.position.log.partition += 1,
            |l| l.position.offset += 1,
            |l| l.position.time_ms += 1,
            |l| l.event_id.push('x'),
            |l| l.kind = RecordKind::Alert,
            |l| l.class = RetentionClass::General,
            |l| l.event_type.push('x'),
            |l| l.labels.action = None,
            |l| l.labels.outcome = Some(String::new()),
            |l| l.labels.blocked = Some(true),
            |l| l.labels.sample_rate = Some(0.5),
            |l| l.labels.record_count = Some(7),
            |l| l.labels.sensitive = Some(false),
            |l| l.event_time_ms -= 1,
            |l| l.key_id = Uuid::from_u128(9),
            |l| l.day = l.day.succ_opt().unwrap(),
            |l| l.hour = None,
            |l| l.pseudonym = Uuid::from_u128(9),
            |l| l.shard += 1,
            |l| l.event_digest[0] ^= 1,
            |l| l.time_event_digest = None,
            |l| l.indexed = false,
            |l| l.ttl_secs += 1,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut leaf = sample();
            change(&mut leaf);
            assert_ne!(leaf.encode(), base, "change {i} left the bytes alone");
        }
    }

    #[test]
    fn bad_bytes_are_refused_not_misread() {
        let bytes = sample().encode();
        for cut in [0, 5, LABEL.len(), bytes.len() - 1] {
            assert!(Leaf::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Leaf::decode(&longer).is_err());
        let mut other = bytes.clone();
        other[0] ^= 1;
        assert!(Leaf::decode(&other).is_err());
    }
}
