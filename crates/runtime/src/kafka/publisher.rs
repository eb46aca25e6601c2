//! Publishing for the operator's tools (`auditflow demo`, `auditflow loadgen`), the load
//! harnesses, and the sink's checkpoints of its tamper-evident log, none of them a loop's
//! output: a [`Publisher`] sends records with the
//! idempotent producer settings of [`client::producer_config`] and hands back each record's
//! acknowledgement. (Looking at topics and groups from outside is [`inspect`](super::inspect).)
//! Nothing outside the runtime needs to speak librdkafka for that.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use auditflow_core::config::KafkaSettings;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::error::KafkaContext;
use crate::kafka::client;
use crate::{Error, Result};

/// A producer for tools. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl Publisher {
    /// A producer with `[kafka]`'s bootstrap servers and passthrough properties.
    pub fn new(settings: &KafkaSettings) -> Result<Self> {
        let producer = client::producer_config(settings)
            .create()
            .during("creating a producer")?;
        Ok(Self { producer })
    }

    /// Sends one record and waits until the brokers acknowledge it (or `timeout` passes).
    pub async fn publish(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        timeout: Duration,
    ) -> Result<()> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        self.producer
            .send(record, timeout)
            .await
            .map(|_| ())
            .map_err(|(source, _)| Error::Kafka {
                during: "publishing",
                source,
            })
    }

    /// Queues one record without waiting: its [`Delivery`], or `None` when the local queue
    /// is full (await some deliveries, then try again).
    pub fn enqueue(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<Option<Delivery>> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.producer.send_result(record) {
            Ok(delivery) => Ok(Some(Delivery(delivery))),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(None),
            Err((source, _)) => Err(Error::Kafka {
                during: "publishing",
                source,
            }),
        }
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).during("flushing the producer")
    }
}

/// The acknowledgement of one queued record: resolves once the brokers have it, or with why
/// they do not.
pub struct Delivery(DeliveryFuture);

impl Future for Delivery {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|result| match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((source, _))) => Err(Error::Kafka {
                during: "delivering",
                source,
            }),
            // The producer was dropped before it heard back.
            Err(_) => Err(Error::Kafka {
                during: "delivering",
                source: KafkaError::Canceled,
            }),
        })
    }
}
