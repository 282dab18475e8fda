//! The dashboard's sink: rolls `reviews.enriched` and snapshots of the
//! recommender's Cassandra tables up into PostgreSQL/CockroachDB (schema
//! `dashboard`), where Superset reads them (it has no Cassandra engine).
//!
//! Two tasks:
//! * the **consumer** (its own group on `reviews.enriched`), an operator on
//!   the at-least-once runtime ([`cinerec_stream`], without a cache: it
//!   dedups in its own ledger): batches of events → one transaction each
//!   ([`store::Store::apply`]: ledger of event ids + counter upserts) → the
//!   runtime stores the offsets after the commit. At-least-once delivery,
//!   exactly-once counts; redeliveries are counted as dedup skips; an
//!   undecodable record goes to the sink's DLQ.
//! * the **snapshotter**: every interval, reads `recommendations_by_user` and
//!   `trending_by_genre` ([`snapshot`]) and replaces the snapshot tables
//!   ([`store::Store::write_snapshot`]); prunes old ids and history.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod config;
pub mod kafka;
pub mod snapshot;
pub mod store;
pub mod telemetry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cinerec_events::EnrichedReview;
use cinerec_service_kit::Shutdown;
use cinerec_stream::{Abandoned, Claimed, Decoded, Operator, Outcome, Runtime};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;

pub use config::Config;
pub use kafka::BrokerProbe;
pub use store::Store;
pub use telemetry::Stats;

use crate::store::EventFate;

/// First backoff after a failed batch transaction; doubles up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: u64 = 100;
/// Longest backoff between attempts of one batch transaction.
pub const MAX_BACKOFF_MS: u64 = 5_000;

/// One sink instance.
#[derive(Debug)]
pub struct Rollup {
    config: Config,
    store: Store,
    stats: Arc<Stats>,
}

impl Rollup {
    /// Connects to the database and migrates the schema (Kafka and Cassandra
    /// are connected by [`Rollup::run`]).
    pub async fn new(config: Config) -> anyhow::Result<Rollup> {
        let store = Store::connect(&config).await?;
        Ok(Rollup {
            config,
            store,
            stats: Arc::default(),
        })
    }

    /// The instance's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The rollup store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Consumes and snapshots until `shutdown`; a batch in flight is either
    /// committed with its offsets stored or abandoned (redelivered later).
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let runtime = Runtime::new(
            cinerec_stream::Config {
                kafka: self.config.kafka.clone(),
                // The ledger in the batch's transaction is the dedup.
                cache: None,
            },
            Roll {
                store: self.store.clone(),
                stats: self.stats.clone(),
            },
        )
        .await?;
        let stop_snapshots = Shutdown::new();
        let snapshots = tokio::spawn(snapshot_loop(
            self.config.clone(),
            self.store.clone(),
            self.stats.clone(),
            stop_snapshots.clone(),
        ));
        let outcome = runtime.run(shutdown).await;
        stop_snapshots.trigger();
        let _ = snapshots.await;
        Ok(outcome?)
    }
}

/// The sink's effect: one transaction per batch.
#[derive(Debug)]
pub struct Roll {
    store: Store,
    stats: Arc<Stats>,
}

impl Operator for Roll {
    type Event = EnrichedReview;
    const NAME: &'static str = "rollup";
    const SKIP_REASONS: &'static [&'static str] = &["invalid"];

    fn decode(&self, record: &OwnedMessage) -> Result<Decoded<EnrichedReview>, String> {
        match EnrichedReview::decode(record.payload().unwrap_or_default()) {
            Ok(event) => Ok(Decoded {
                key: event.event_id.to_string(),
                event,
            }),
            Err(e) => {
                telemetry::undecodable(&self.stats, record.partition(), record.offset(), &e);
                Err(format!("undecodable EnrichedReview: {e}"))
            }
        }
    }

    /// The batch's transaction, retried with backoff for as long as the
    /// database is down (the partition waits rather than lose); only
    /// shutdown abandons it, and then nothing of it was committed.
    async fn process(
        &self,
        batch: Vec<Claimed<EnrichedReview>>,
        shutdown: &Shutdown,
    ) -> Result<Vec<Outcome>, Abandoned> {
        let started = Instant::now();
        let events: Vec<EnrichedReview> = batch.into_iter().map(|c| c.event).collect();
        let mut backoff = FIRST_BACKOFF_MS;
        let applied = loop {
            match self.store.apply(&events).await {
                Ok(applied) => break applied,
                Err(e) => {
                    telemetry::db_retry(&e, backoff);
                    tokio::select! {
                        () = shutdown.wait() => return Err(Abandoned),
                        () = tokio::time::sleep(Duration::from_millis(backoff)) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF_MS);
                }
            }
        };
        telemetry::batch_applied(
            &self.stats,
            applied.applied,
            applied.duplicates,
            started.elapsed().as_secs_f64(),
        );
        telemetry::invalid_counted(&self.stats, applied.invalid);
        Ok(applied
            .fates
            .iter()
            .map(|f| match f {
                EventFate::Applied => Outcome::Done,
                EventFate::Duplicate => Outcome::Skipped("duplicate"),
                EventFate::Invalid => Outcome::Skipped("invalid"),
            })
            .collect())
    }
}

use cinerec_service_kit::clock::now_micros;

async fn snapshot_loop(config: Config, store: Store, stats: Arc<Stats>, shutdown: Shutdown) {
    let interval = config.snapshot_interval();
    let interval_us = interval.as_micros() as i64;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut session = None;
    loop {
        // One last snapshot on the way out, so what the recommender wrote
        // since the previous tick is on the dashboard after a stop.
        let stopping = tokio::select! {
            () = shutdown.wait() => true,
            _ = tick.tick() => false,
        };
        if session.is_none() {
            match snapshot::connect(&config.cql.cql_nodes).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    telemetry::snapshot_failed(&stats, &e);
                    if stopping {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(s) = session.as_ref() else { continue };
        let now = now_micros();
        // Keyed by the interval's bucket: a snapshot repeated within one
        // interval (a restart) replaces the first instead of adding to it.
        let at = now - now.rem_euclid(interval_us);
        let outcome = async {
            let snap = snapshot::read(s, &config.cql.keyspace).await?;
            store.write_snapshot(&snap, at).await?;
            store
                .prune(config.dedup_retention_hours, config.history_retention_hours)
                .await?;
            anyhow::Ok(snap)
        }
        .await;
        match outcome {
            Ok(snap) => telemetry::snapshot_written(
                &stats,
                at,
                snap.recommended.len(),
                snap.trending.len(),
                snap.malformed,
            ),
            Err(e) => telemetry::snapshot_failed(&stats, &e),
        }
        if stopping {
            return;
        }
    }
}
