//! Dead letters: a record a consumer cannot process (undecodable, or its
//! enrichment failed past every retry) is copied unchanged — key, payload,
//! `traceparent` — to the consumer's DLQ topic, with headers that say why
//! and where it came from, before its offset is stored. Nothing is lost and
//! the partition moves on.

use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::trace_context::TRACEPARENT;

/// Why the record is dead (a decoder's or the last attempt's error).
pub const HEADER_ERROR: &str = "cinerec.error";
/// How many times processing was attempted (when the consumer counts them).
pub const HEADER_ATTEMPTS: &str = "cinerec.attempts";
/// The topic the record was read from.
pub const HEADER_TOPIC: &str = "cinerec.source.topic";
/// Its partition there.
pub const HEADER_PARTITION: &str = "cinerec.source.partition";
/// Its offset there.
pub const HEADER_OFFSET: &str = "cinerec.source.offset";

/// The dead-letter topic of `source` (DESIGN.md §2: `<source>.dlq`): every
/// consumer's and the CDC relay's.
pub fn topic_for(source: &str) -> String {
    format!("{source}.dlq")
}

/// `headers` with why the record is dead ([`HEADER_ERROR`]): the one header
/// every dead letter of the pipeline carries, whoever writes it, so one tool
/// reads them all.
pub fn with_error(headers: OwnedHeaders, error: &str) -> OwnedHeaders {
    headers.insert(Header {
        key: HEADER_ERROR,
        value: Some(error.as_bytes()),
    })
}

/// A new header set carrying `m`'s W3C `traceparent`, if it has one: what a
/// record derived from `m` (its enriched form, its dead letter) starts from.
pub fn traceparent_of(m: &OwnedMessage) -> OwnedHeaders {
    let headers = OwnedHeaders::new();
    let Some(source) = m.headers() else {
        return headers;
    };
    match source
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(TRACEPARENT))
        .and_then(|h| h.value)
    {
        Some(v) => headers.insert(Header {
            key: TRACEPARENT,
            value: Some(v),
        }),
        None => headers,
    }
}

/// What went wrong in one dead-letter write.
pub type SendError = String;

/// A consumer's dead-letter topic, the producer that writes it, and how many
/// times to try one record before giving up.
#[derive(Clone, Copy)]
pub struct DeadLetters<'a> {
    /// An idempotent producer ([`super::idempotent_producer`]).
    pub producer: &'a FutureProducer,
    /// The DLQ topic.
    pub topic: &'a str,
    /// Tries per record before [`DeadLetters::send_with_retries`] gives up.
    pub max_attempts: u32,
}

impl std::fmt::Debug for DeadLetters<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl DeadLetters<'_> {
    /// Writes `m` as a dead letter and waits for the broker's ack: one
    /// attempt. `attempts`, when given, becomes [`HEADER_ATTEMPTS`].
    pub async fn send(
        &self,
        m: &OwnedMessage,
        error: &str,
        attempts: Option<u32>,
    ) -> Result<(), SendError> {
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        let attempts = attempts.map(|a| a.to_string());
        let mut headers = with_error(traceparent_of(m), error);
        if let Some(a) = &attempts {
            headers = headers.insert(Header {
                key: HEADER_ATTEMPTS,
                value: Some(a.as_bytes()),
            });
        }
        let headers = headers
            .insert(Header {
                key: HEADER_TOPIC,
                value: Some(m.topic().as_bytes()),
            })
            .insert(Header {
                key: HEADER_PARTITION,
                value: Some(partition.as_bytes()),
            })
            .insert(Header {
                key: HEADER_OFFSET,
                value: Some(offset.as_bytes()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(self.topic).headers(headers);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(p) = m.payload() {
            record = record.payload(p);
        }
        match self.producer.send_result(record) {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("producer dropped the delivery".into()),
            },
            Err((e, _)) => Err(e.to_string()),
        }
    }

    /// [`DeadLetters::send`] until it lands, at most `max_attempts` times,
    /// sleeping `backoff(failures)` between tries and telling
    /// `on_retry(failures, error)`. After the last failure the error says the
    /// DLQ is unreachable: the caller should stop without storing the offset,
    /// so a restart redelivers the record.
    pub async fn send_with_retries(
        &self,
        m: &OwnedMessage,
        error: &str,
        attempts: Option<u32>,
        backoff: impl Fn(u32) -> Duration,
        on_retry: impl Fn(u32, &str),
    ) -> Result<(), SendError> {
        let mut failures = 0;
        loop {
            match self.send(m, error, attempts).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    failures += 1;
                    if failures >= self.max_attempts.max(1) {
                        return Err(format!(
                            "cannot write to the DLQ {} ({e}); stopping so a restart redelivers partition {} offset {}",
                            self.topic,
                            m.partition(),
                            m.offset()
                        ));
                    }
                    on_retry(failures, &e);
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}
