//! The two flush tasks: the direct one writes a batch's own users as soon
//! as its changelog records are acknowledged (the latency that counts); the
//! background one, on the tick and on rebalances, takes and releases
//! partition leases and writes the owned dirty rows, bounded per tick. Both
//! write a row only when its value differs from the last one Cassandra
//! acknowledged (see the module docs of [`pipeline`](super)).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cinerec_service_kit::Shutdown;
use cinerec_service_kit::clock::now_micros;
use futures::FutureExt as _;
use tracing::Instrument as _;

use super::state::{Move, Moves, RowKey, Stamps, State, lock_queue};
use super::{SHUTDOWN_GRACE, lock};
use crate::config::Config;
use crate::model::{MovieId, UserId};
use crate::ownership::{Lease, Leases};
use crate::store::{self, Store, Write};
use crate::telemetry::{self, Stats};

/// What the flush tasks need.
#[derive(Clone)]
pub(super) struct Flusher {
    pub(super) config: Config,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) moves: Arc<Moves>,
    pub(super) store: Store,
    pub(super) leases: Leases,
    pub(super) stats: Arc<Stats>,
    pub(super) shutdown: Shutdown,
}

/// One serving row to write: its key, value digest, value and fenced timestamp.
struct Row {
    key: RowKey,
    digest: u64,
    write: Write,
    ts: i64,
}

/// Runs a row computation off the async workers (it holds the model lock and
/// may take milliseconds).
async fn compute<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, store::Abandoned> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        tracing::error!("flush computation panicked");
        store::Abandoned
    })
}

/// As soon as a batch's changelog records are acknowledged: its users' rows
/// (the latency that counts), never waiting behind the background refresh,
/// whose writes may stall on a slow Cassandra write.
pub(super) async fn direct_loop(f: Flusher) {
    loop {
        tokio::select! {
            _ = f.shutdown.wait() => return,
            () = f.moves.direct.notified() => {}
        }
        if f.flush_once(f.shutdown.wait(), false).await.is_err() {
            return;
        }
    }
}

/// Every flush interval (or at once on a rebalance): take leases of new
/// partitions, write the owned dirty rows, drain and release revoked ones.
pub(super) async fn flush_loop(f: Flusher) {
    let mut tick = tokio::time::interval(f.config.refresh_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A batch's users are written as soon as its changelog records are
        // acknowledged (latency); the background refresh runs on the tick
        // (and with rebalances), bounded.
        tokio::select! {
            _ = f.shutdown.wait() => break,
            _ = tick.tick() => {}
            () = f.moves.wake.notified() => {}
        };
        if f.flush_once(f.shutdown.wait(), true).await.is_err() {
            break;
        }
    }
    // The last rows of a graceful stop, within a grace period.
    let _ = f.flush_once(tokio::time::sleep(SHUTDOWN_GRACE), true).await;
    f.moves.flushing.store(false, Ordering::Release);
    // A revoke still waiting must not wait for a task that is gone.
    for m in lock_queue(&f.moves.queue).drain(..) {
        if let Move::Revoke(_, Some(ack)) = m {
            let _ = ack.try_send(());
        }
    }
}

impl Flusher {
    async fn flush_once<S>(&self, stop: S, background: bool) -> Result<(), store::Abandoned>
    where
        S: std::future::Future<Output = ()>,
    {
        let started = Instant::now();
        // Rebalances are the background flush's: one task takes and lets go
        // of leases, so their order is the queue's.
        let moves: Vec<Move> = if background {
            std::mem::take(&mut *lock_queue(&self.moves.queue))
        } else {
            Vec::new()
        };
        // The last move of each partition decides; every assignment takes a
        // fresh lease (another owner may have held the partition in between,
        // with a higher generation), every final revoke drains, then releases.
        let mut last: HashMap<i32, bool> = HashMap::new();
        let mut acks = Vec::new();
        for m in moves {
            match m {
                Move::Assign(p) => {
                    last.insert(p, true);
                }
                Move::Revoke(p, ack) => {
                    last.insert(p, false);
                    acks.extend(ack);
                }
            }
        }
        let mut revoked = Vec::new();
        let pending: Vec<i32> = {
            let mut st = lock(&self.state);
            for (p, assigned) in last {
                if assigned {
                    st.own.leases.remove(&p);
                    st.own.pending.insert(p);
                } else {
                    st.own.pending.remove(&p);
                    if st.own.leases.contains_key(&p) {
                        revoked.push(p);
                    }
                }
            }
            st.own.pending.iter().copied().collect()
        };
        if background {
            for p in pending {
                self.take_lease(p).await;
            }
            self.renew_leases().await;
        }
        let stop = stop.shared();
        // (1) The rows of users whose own events advanced: their latency is
        // the pipeline's, so they go first and alone.
        let st = self.state.clone();
        let (direct, latencies) = compute(move || direct_rows(&st)).await?;
        let written = direct.len();
        self.write_rows(direct, stop.clone()).await?;
        let now_ms = now_micros() / 1_000;
        let since =
            |then_ms: i64| Duration::from_millis(u64::try_from(now_ms - then_ms).unwrap_or(0));
        for stamps in latencies {
            telemetry::event_latency(since(stamps.kafka_ms));
            telemetry::review_latency(since(stamps.accepted_ms));
        }
        // (2) The background refresh: neighbours whose similarities moved,
        // movies, genres — at most `refresh_max_users` rows recomputed.
        let written = if background {
            let (st, max) = (self.state.clone(), self.config.refresh_max_users);
            let rows = compute(move || background_rows(&st, max)).await?;
            let n = rows.len();
            self.write_rows(rows, stop).await?;
            written + n
        } else {
            written
        };
        let mut st = lock(&self.state);
        for p in revoked {
            st.own.leases.remove(&p);
            telemetry::lease_released(p, written, st.own.leases.len());
        }
        let left = st.pending();
        drop(st);
        for ack in acks {
            let _ = ack.try_send(());
        }
        telemetry::refreshed(&self.stats, written, 0, left, started.elapsed());
        Ok(())
    }

    /// Writes the rows, then records their digests as durable — only now,
    /// after Cassandra acknowledged them: the next value is compared with these.
    async fn write_rows<S>(&self, rows: Vec<Row>, stop: S) -> Result<(), store::Abandoned>
    where
        S: std::future::Future<Output = ()>,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let writes: Vec<(Write, i64)> = rows.iter().map(|r| (r.write.clone(), r.ts)).collect();
        let span = tracing::info_span!(
            "cassandra.write",
            otel.name = "cassandra write",
            otel.kind = "client",
            db.system.name = "cassandra",
            db.namespace = %self.config.cql.keyspace,
            cinerec.writes = writes.len(),
        );
        self.store
            .write_all(
                &writes,
                self.config.write_concurrency,
                self.config.backoff(),
                stop,
            )
            .instrument(span)
            .await?;
        let mut st = lock(&self.state);
        for r in rows {
            if let Some(n) = st.inflight.get_mut(&r.key) {
                *n -= 1;
                if *n == 0 {
                    st.inflight.remove(&r.key);
                }
            }
            // The direct and the background flush write concurrently: the
            // row holds the value with the highest timestamp.
            if st.durable.get(&r.key).is_none_or(|(ts, _)| *ts < r.ts) {
                st.durable.insert(r.key, (r.ts, r.digest));
            }
        }
        Ok(())
    }

    async fn take_lease(&self, partition: i32) {
        match self.leases.take(self.store.session(), partition).await {
            Ok(lease) => {
                let mut st = lock(&self.state);
                st.take_partition(partition, lease);
                telemetry::lease_taken(partition, lease.generation, st.own.leases.len());
            }
            // Still pending: retried at the next flush.
            Err(e) => telemetry::lease_failed(partition, &e),
        }
    }

    async fn renew_leases(&self) {
        let now = now_micros();
        let due: Vec<i32> = lock(&self.state)
            .own
            .leases
            .iter()
            .filter(|(_, l)| l.needs_renewal(now))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            match self.leases.take(self.store.session(), p).await {
                Ok(lease) => {
                    lock(&self.state).own.leases.insert(p, lease);
                }
                Err(e) => telemetry::lease_failed(p, &e),
            }
        }
    }
}

/// Collects the rows whose value differs from the last one durably written,
/// counting both kinds per table.
#[derive(Default)]
struct Emitter {
    out: Vec<Row>,
    written: HashMap<&'static str, u64>,
    unchanged: HashMap<&'static str, u64>,
}

impl Emitter {
    /// Stamps the row now (under the lock, so stamps follow the model's
    /// order) and keeps it unless it equals what the row durably holds.
    fn emit(&mut self, st: &mut State, key: RowKey, write: Write, lease: Lease) {
        let digest = write.digest();
        let table = write.table();
        let settled = !st.inflight.contains_key(&key)
            && st.durable.get(&key).is_some_and(|(_, d)| *d == digest);
        if settled {
            *self.unchanged.entry(table).or_default() += 1;
        } else {
            *self.written.entry(table).or_default() += 1;
            *st.inflight.entry(key.clone()).or_default() += 1;
            self.out.push(Row {
                key,
                digest,
                write,
                ts: lease.timestamp(now_micros()),
            });
        }
    }

    fn finish(mut self) -> Vec<Row> {
        for (table, n) in &self.written {
            telemetry::serving_rows(table, *n, self.unchanged.remove(table).unwrap_or(0));
        }
        for (table, n) in self.unchanged {
            telemetry::serving_rows(table, 0, n);
        }
        self.out
    }
}

/// The rows of the owned users whose own events advanced, and those events'
/// [`Stamps`]. The lock is taken per row, so a batch waiting to
/// apply never waits for a whole flush's computation.
fn direct_rows(state: &Mutex<State>) -> (Vec<Row>, Vec<Stamps>) {
    let direct: Vec<(UserId, Vec<Stamps>)> = {
        let mut st = lock(state);
        st.fallback.clear();
        st.direct.drain().collect()
    };
    let mut e = Emitter::default();
    let mut latencies = Vec::new();
    for (u, ts) in direct {
        let mut st = lock(state);
        if let Some(lease) = st.own.user(u) {
            st.dirty_users.remove(&u);
            let row = st.recommendations(u);
            e.emit(&mut st, RowKey::User(u), row, lease);
            latencies.extend(ts);
        } else if st.own.user_pending(u) {
            // Its partition's lease is being taken: next tick.
            st.direct.entry(u).or_default().extend(ts);
        }
    }
    (e.finish(), latencies)
}

/// Expands the dirty sets and computes up to this instance's share of
/// `max` rows of them (`max` × owned partitions / partitions; movies first,
/// then users), plus the dirty genres' trending rows; the lock is taken per
/// row.
fn background_rows(state: &Mutex<State>, mut max: usize) -> Vec<Row> {
    let mut e = Emitter::default();
    let movies: Vec<MovieId> = {
        let mut st = lock(state);
        st.fallback.clear();
        // The budget is the group's: each instance spends its share, so the
        // background writes per event stay flat as instances are added.
        let (owned, parts) = (st.own.leases.len(), st.own.partitions.max(1) as usize);
        max = (max * owned).div_ceil(parts);
        // A changed N(m) changes similarity(m, j) for every current neighbour j.
        let changed: Vec<MovieId> = st.changed_n.drain().collect();
        for m in changed {
            let neighbours: Vec<MovieId> = st.model.co_liked(m).collect();
            st.dirty_movies.insert(m);
            st.dirty_movies.extend(neighbours);
        }
        let movies: Vec<MovieId> = st.dirty_movies.iter().copied().take(max).collect();
        for m in &movies {
            st.dirty_movies.remove(m);
            st.dirty_similar.remove(m);
        }
        movies
    };
    let mut budget = max;
    for m in movies {
        let mut st = lock(state);
        if let Some(lease) = st.own.movie(m) {
            let row = st.similar(m);
            e.emit(&mut st, RowKey::Movie(m), row, lease);
            budget = budget.saturating_sub(1);
        }
        // Whoever likes a movie whose similarities changed may see new
        // scores: the ones this instance owns.
        let likers: Vec<UserId> = st
            .model
            .likers(m)
            .filter(|u| st.own.user(*u).is_some())
            .collect();
        st.dirty_users.extend(likers);
    }
    let similar: Vec<MovieId> = {
        let mut st = lock(state);
        let similar: Vec<MovieId> = st.dirty_similar.iter().copied().take(budget).collect();
        for m in &similar {
            st.dirty_similar.remove(m);
        }
        similar
    };
    for m in similar {
        let mut st = lock(state);
        if let Some(lease) = st.own.movie(m) {
            let row = st.similar(m);
            e.emit(&mut st, RowKey::Movie(m), row, lease);
            budget = budget.saturating_sub(1);
        }
    }
    let users: Vec<UserId> = {
        let mut st = lock(state);
        let users: Vec<UserId> = st.dirty_users.iter().copied().take(budget).collect();
        for u in &users {
            st.dirty_users.remove(u);
        }
        users
    };
    for u in users {
        let mut st = lock(state);
        if let Some(lease) = st.own.user(u) {
            let row = st.recommendations(u);
            e.emit(&mut st, RowKey::User(u), row, lease);
        }
    }
    let mut st = lock(state);
    let genres: Vec<String> = st.dirty_genres.drain().collect();
    for g in genres {
        if let (Some(lease), Some(row)) = (st.own.genre(&g), st.trending_row(&g)) {
            e.emit(&mut st, RowKey::Genre(g), row, lease);
        }
    }
    telemetry::model_size(
        st.model.reviews(),
        st.model.like_count(),
        st.model.pair_count(),
    );
    drop(st);
    e.finish()
}
