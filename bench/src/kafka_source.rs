//! `--source kafka`: the consumers alone, without review-svc's HTTP path
//! (whose lightweight transactions cap it far below the consumers).
//!
//! Before each step, every review the step will announce is written in bulk
//! into the run's review-svc keyspace (`reviews` table, version 1, plain
//! `INSERT`s — no version-counter LWT, no outbox row, so the relay never
//! publishes them). During the step one `ReviewChanged` (`CREATE`, version 1)
//! per review is produced straight to the run's `reviews.changed` at the
//! workload's arrival times. Each event is a review the consumers have never
//! seen: the enricher's `getReview` finds it, the recommender applies a new
//! review state (a new like when rating ≥ 4, new co-occurrences, the user's
//! recommendations and trending rewritten). Edits and deletes are not
//! produced: every event is a creation.

use cinerec_service_kit::clock::now_micros;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cinerec_events::{ChangeOp, ReviewChanged};
use futures::StreamExt;
use loadgen::workload::{Op, OpKind};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

/// Rows written at once while pre-creating.
const INSERT_CONCURRENCY: usize = 256;
/// Longest a step's pre-creation may take (its rows must also be newer than
/// the recommender's trending watermark, 120 s behind the newest event).
pub const PRECREATE_DEADLINE: Duration = Duration::from_secs(100);
/// How long after the step's end a producer still sending gives up.
const OVERRUN: Duration = Duration::from_secs(10);

/// One review pre-created for a step, and when to announce it.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Offset from the step's start.
    pub at: Duration,
    /// The review.
    pub review_id: Uuid,
    /// Its author.
    pub user_id: i64,
    /// When it was written (µs), its `changed_at`.
    pub changed_at_us: i64,
}

/// What a produced step did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Produced {
    /// Events handed to the producer.
    pub sent: u64,
    /// Events Kafka acknowledged.
    pub acked: u64,
    /// Events never sent (the producer fell more than the overrun behind).
    pub unsent: u64,
    /// How far behind its schedule the last event was sent.
    pub max_lag: Duration,
}

/// Writes a step's reviews, then announces them on `reviews.changed`.
pub struct KafkaSource {
    session: Arc<Session>,
    insert: PreparedStatement,
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Prepares the insert into `review_keyspace.reviews` and a producer to `topic`.
    pub async fn new(
        session: Arc<Session>,
        review_keyspace: &str,
        brokers: &str,
        topic: &str,
    ) -> anyhow::Result<KafkaSource> {
        let insert = session
            .prepare(format!(
                "INSERT INTO {review_keyspace}.reviews (review_id, version, user_id, movie_id, \
                 rating, text, deleted, created_at, changed_at) VALUES (?, 1, ?, ?, ?, ?, false, ?, ?)"
            ))
            .await
            .context("preparing the reviews insert")?;
        // Latency is what is measured: batch for at most 1 ms.
        let settings = [
            ("linger.ms", "1"),
            ("queue.buffering.max.messages", "1000000"),
        ];
        let producer: FutureProducer =
            cinerec_service_kit::kafka::idempotent_producer(brokers, &settings)
                .context("creating the Kafka producer")?;
        Ok(KafkaSource {
            session,
            insert,
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Writes one review per creation of `ops` (version 1) and returns the
    /// plan of events to produce.
    pub async fn precreate(&self, ops: &[Op]) -> anyhow::Result<Vec<Planned>> {
        let rows: Vec<_> = ops
            .iter()
            .filter_map(|op| match op.kind {
                OpKind::Create {
                    user_id,
                    movie_id,
                    rating,
                } => Some((op.at, user_id, movie_id, rating)),
                OpKind::Edit { .. } | OpKind::Delete { .. } => None,
            })
            .collect();
        let work = futures::stream::iter(rows.into_iter().enumerate())
            .map(|(n, (at, user_id, movie_id, rating))| async move {
                let review_id = Uuid::new_v4();
                let now = now_micros();
                self.session
                    .execute_unpaged(
                        &self.insert,
                        (
                            review_id,
                            user_id,
                            movie_id,
                            rating,
                            format!("bench review {n}: {rating} stars"),
                            now,
                            now,
                        ),
                    )
                    .await
                    .with_context(|| format!("inserting review {review_id}"))?;
                anyhow::Ok(Planned {
                    at,
                    review_id,
                    user_id,
                    changed_at_us: now,
                })
            })
            .buffered(INSERT_CONCURRENCY)
            .collect::<Vec<_>>();
        let written = tokio::time::timeout(PRECREATE_DEADLINE, work)
            .await
            .with_context(|| {
                format!(
                    "pre-creating {} reviews took longer than {PRECREATE_DEADLINE:?}; use lower --rates or --step-secs",
                    ops.len()
                )
            })?;
        written.into_iter().collect()
    }

    /// Produces one `CREATE` per planned review at its time (open loop:
    /// late events are sent at once; more than the overrun late, the rest
    /// are counted unsent) and waits for Kafka's acknowledgements.
    pub async fn produce(&self, plan: &[Planned]) -> anyhow::Result<Produced> {
        let start = tokio::time::Instant::now();
        let give_up = start + plan.last().map_or(Duration::ZERO, |p| p.at) + OVERRUN;
        let mut out = Produced::default();
        let mut pending = Vec::with_capacity(plan.len());
        for p in plan {
            let due = start + p.at;
            if due > tokio::time::Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due).await;
            }
            let now = tokio::time::Instant::now();
            if now > give_up {
                out.unsent += 1;
                continue;
            }
            out.max_lag = out.max_lag.max(now.saturating_duration_since(due));
            let event = ReviewChanged {
                event_id: Uuid::new_v4(),
                review_id: p.review_id,
                user_id: p.user_id,
                version: 1,
                op: ChangeOp::Create,
                changed_at_us: p.changed_at_us,
            };
            let payload = event.encode().context("encoding ReviewChanged")?;
            let key = event.key();
            let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        out.sent += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(e).context("enqueueing ReviewChanged"),
                }
            }
        }
        for delivery in pending {
            if matches!(delivery.await, Ok(Ok(_))) {
                out.acked += 1;
            }
        }
        Ok(out)
    }
}
