//! The dashboard's sink: rolls `reviews.enriched` and snapshots of the
//! recommender's Cassandra tables up into PostgreSQL/CockroachDB (schema
//! `dashboard`), where Superset reads them (it has no Cassandra engine).
//!
//! Two tasks:
//! * the **consumer** (its own group on `reviews.enriched`): batches of
//!   events → one transaction each ([`store::Store::apply`]: ledger of event
//!   ids + counter upserts) → offsets stored after the commit. At-least-once
//!   delivery, exactly-once counts; redeliveries are counted as dedup skips.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cinerec_events::EnrichedReview;
use cinerec_service_kit::Shutdown;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};

pub use config::Config;
pub use kafka::BrokerProbe;
pub use store::Store;
pub use telemetry::Stats;

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
        let stop_snapshots = Shutdown::new();
        let snapshots = tokio::spawn(snapshot_loop(
            self.config.clone(),
            self.store.clone(),
            self.stats.clone(),
            stop_snapshots.clone(),
        ));
        let outcome = consume(&self.config, &self.store, &self.stats, &shutdown).await;
        stop_snapshots.trigger();
        let _ = snapshots.await;
        outcome
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

async fn consume(
    config: &Config,
    store: &Store,
    stats: &Stats,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let consumer = kafka::consumer(config)?;
    tracing::info!(topic = %config.topic, group = %config.group, "consuming");
    loop {
        let first = tokio::select! {
            () = shutdown.wait() => return Ok(()),
            m = consumer.recv() => m,
        };
        let started = Instant::now();
        let mut batch: Vec<OwnedMessage> = match first {
            Ok(m) => vec![m.detach()],
            Err(e) => {
                tracing::warn!(error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let deadline = tokio::time::Instant::now() + config.batch_linger();
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
        let events = decode(&batch, stats);
        let mut backoff = FIRST_BACKOFF_MS;
        let applied = loop {
            match store.apply(&events).await {
                Ok(applied) => break applied,
                Err(e) => {
                    telemetry::db_retry(&e, backoff);
                    tokio::select! {
                        // Abandoned: no offset stored, the batch comes back.
                        () = shutdown.wait() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_millis(backoff)) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF_MS);
                }
            }
        };
        telemetry::batch_applied(
            stats,
            applied.applied,
            applied.duplicates,
            started.elapsed().as_secs_f64(),
        );
        telemetry::invalid_counted(stats, applied.invalid);
        if let Err(e) = consumer.store_offsets(&next_offsets(&batch)?) {
            telemetry::offset_store_failed(&e);
        }
    }
}

fn decode(batch: &[OwnedMessage], stats: &Stats) -> Vec<EnrichedReview> {
    batch
        .iter()
        .filter_map(
            |m| match EnrichedReview::decode(m.payload().unwrap_or_default()) {
                Ok(e) => Some(e),
                Err(e) => {
                    telemetry::undecodable(stats, m.partition(), m.offset(), &e);
                    None
                }
            },
        )
        .collect()
}

/// The offsets to store: one past the highest of each partition in the batch.
fn next_offsets(batch: &[OwnedMessage]) -> anyhow::Result<TopicPartitionList> {
    let mut highest: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let e = highest
            .entry((m.topic(), m.partition()))
            .or_insert(m.offset());
        *e = (*e).max(m.offset());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in highest {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(tpl)
}

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
            match snapshot::connect(&config.cql_nodes).await {
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
        let now = now_us();
        // Keyed by the interval's bucket: a snapshot repeated within one
        // interval (a restart) replaces the first instead of adding to it.
        let at = now - now.rem_euclid(interval_us);
        let outcome = async {
            let snap = snapshot::read(s, &config.keyspace).await?;
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
