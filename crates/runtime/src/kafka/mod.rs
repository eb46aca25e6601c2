//! Everything that speaks Kafka: client configuration, topics, the two consumer loops and
//! what they share (rebalance bookkeeping, watermarks, the transaction committer, dead
//! letters, the records handed to and taken from a service), and a compacted topic followed
//! as a table.

pub mod at_least_once;
pub mod client;
pub mod cloudevents;
mod committer;
pub mod dead_letter;
pub mod inspect;
pub mod lag;
pub mod loop_spec;
pub mod publisher;
pub mod rebalance;
pub mod records;
pub mod retry;
pub mod table;
pub mod topics;
pub mod transactional;
pub mod watermark;
pub mod write_error;
