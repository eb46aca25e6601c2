//! Which failed librdkafka calls are worth repeating, and repeating them with backoff.
//!
//! A retriable error (a leader moving, a topic just created, a coordinator loading, a
//! timeout) is retried with backoff until a deadline the caller chooses ([`is_retriable`]
//! decides); any other error stops the caller with what it was doing.

use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

use crate::{Error, Result};

/// Pause after the first of consecutive failures, and the most it grows to.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a failed call is worth repeating: the cluster is moving (leader elections, a topic
/// just created and not yet known everywhere, a coordinator loading) or slow (timeouts, lost
/// connections). Anything else — authorisation, invalid requests, a broken client — will not
/// heal by waiting.
pub fn is_retriable(err: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    if let KafkaError::Transaction(e) = err {
        return e.is_retriable();
    }
    matches!(
        err.rdkafka_error_code(),
        Some(
            C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::PreferredLeaderNotAvailable
                | C::EligibleLeadersNotAvailable
                | C::FencedLeaderEpoch
                | C::UnknownLeaderEpoch
                | C::UnknownTopicOrPartition
                | C::UnknownPartition
                | C::UnknownTopic
                | C::ReplicaNotAvailable
                | C::NotEnoughReplicas
                | C::KafkaStorageError
                | C::OffsetNotAvailable
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::TimedOutQueue
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::BrokerNotAvailable
                | C::NetworkException
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::WaitingForCoordinator
                | C::ThrottlingQuotaExceeded
                | C::Retry
                // An open transaction holds the committed offset (KIP-447); it ends with the
                // transaction, at the latest when the broker expires it.
                | C::UnstableOffsetCommit
        )
    )
}

/// Calls `call` until it succeeds, fails for good ([`is_retriable`] says no), or `deadline`
/// has passed; waits between attempts from [`MIN_BACKOFF`], doubling up to [`MAX_BACKOFF`].
/// Logs librdkafka's error, which names codes, brokers and topics, never record contents.
pub(crate) fn retry_retriable<T>(
    service: &str,
    during: &'static str,
    deadline: Duration,
    mut call: impl FnMut() -> KafkaResult<T>,
) -> Result<T> {
    let started = Instant::now();
    let mut backoff = MIN_BACKOFF;
    let mut attempt = 1u32;
    loop {
        match call() {
            Ok(value) => return Ok(value),
            Err(source) if is_retriable(&source) && started.elapsed() < deadline => {
                tracing::warn!(%service, during, error = %source, attempt, "retriable Kafka error; retrying");
                std::thread::sleep(backoff.min(deadline.saturating_sub(started.elapsed())));
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            Err(source) => return Err(Error::Kafka { during, source }),
        }
    }
}

/// The first per-partition error of a looked-up list: librdkafka reports some failures (a
/// partition's leader moved) there rather than for the whole call.
pub(crate) fn first_partition_error(list: &TopicPartitionList) -> KafkaResult<()> {
    list.elements().iter().try_for_each(|e| e.error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_or_slow_cluster_is_retriable_and_a_refusal_is_not() {
        use RDKafkaErrorCode as C;
        for code in [
            C::NotLeaderForPartition,
            C::LeaderNotAvailable,
            C::UnknownTopicOrPartition,
            C::UnknownPartition,
            C::RequestTimedOut,
            C::OperationTimedOut,
            C::BrokerTransportFailure,
            C::CoordinatorLoadInProgress,
            C::UnstableOffsetCommit,
        ] {
            assert!(is_retriable(&KafkaError::MetadataFetch(code)), "{code:?}");
            assert!(is_retriable(&KafkaError::OffsetFetch(code)), "{code:?}");
        }
        for code in [
            C::TopicAuthorizationFailed,
            C::GroupAuthorizationFailed,
            C::InvalidArgument,
            C::UnsupportedVersion,
            C::Fatal,
        ] {
            assert!(!is_retriable(&KafkaError::MetadataFetch(code)), "{code:?}");
        }
        assert!(!is_retriable(&KafkaError::Canceled));
    }

    #[test]
    fn retriable_errors_are_retried_and_others_are_not() {
        let mut attempts = 0;
        let got = retry_retriable(
            "test",
            "looking up",
            crate::kafka::transactional::LOOKUP_DEADLINE,
            || {
                attempts += 1;
                match attempts {
                    1 => Err(KafkaError::MetadataFetch(
                        RDKafkaErrorCode::NotLeaderForPartition,
                    )),
                    2 => Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OperationTimedOut)),
                    _ => Ok(attempts),
                }
            },
        );
        assert_eq!(got.unwrap(), 3);

        let mut attempts = 0;
        let refused: Result<()> = retry_retriable(
            "test",
            "looking up",
            crate::kafka::transactional::LOOKUP_DEADLINE,
            || {
                attempts += 1;
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::TopicAuthorizationFailed,
                ))
            },
        );
        assert_eq!(attempts, 1);
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("looking up"), "{message}");

        // Past the deadline a retriable error is given up on too.
        let mut attempts = 0;
        let given_up: Result<()> = retry_retriable("test", "looking up", Duration::ZERO, || {
            attempts += 1;
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::NotLeaderForPartition,
            ))
        });
        assert_eq!(attempts, 1);
        assert!(given_up.is_err());
    }
}
