//! Shard leases: which relay replica publishes which change-log shard.
//!
//! Every process running the relay is a **member**. Each tick
//! ([`RelayArgs::lease_tick`](crate::config::RelayArgs::lease_tick), 500 ms
//! by default) a member:
//!
//! 1. **renews** every lease it holds: an LWT `SET renewed = now ... IF owner
//!    = me AND generation = g`. Applied: the shard may be published until
//!    `start of that renewal + TTL − tick`. Not applied: the lease was taken,
//!    the shard stops at once. Failed (Cassandra slow): nothing changes, so
//!    the shard stops when that validity runs out — before anyone else may
//!    take it (below);
//! 2. **beats** its `relay_members` row (TTL ≈ the lease TTL) and counts the
//!    live members `m`;
//! 3. **balances**: it holds at most `⌈shards / m⌉` leases. Above that it
//!    releases the extra ones (stops their publishers, then an LWT sets
//!    `owner = null`), so a newcomer gets its share within a tick or two;
//!    below it, it **takes** free leases, and leases whose row it has seen
//!    unchanged for a whole TTL (their owner stopped renewing: killed, hung,
//!    cut off). A take is an LWT `SET owner = me, generation = g + 1 ... IF
//!    generation = g AND renewed = r` naming the row as seen, so a renewal
//!    or another taker in between makes it fail.
//!
//! # Why expiry is safe without synchronised clocks
//!
//! A taker never compares timestamps written by another host: it waits a
//! TTL on its *own* monotonic clock from the moment it first read the
//! current `renewed` value. That value was written after the holder started
//! the renewal that wrote it, so the taker takes no earlier than a TTL
//! after that start, while the holder stopped a tick before that.
//! Only clock *rates* must agree (they do, to parts per million), not wall
//! clocks. The cost: a process that just started waits a full TTL before
//! taking a dead member's shards, so a takeover after `kill -9` takes
//! between TTL and TTL + 2 ticks from the last renewal.
//!
//! # Fencing
//!
//! A holder learns that its lease is gone only at its next renewal, so the
//! checkpoint is fenced too: a new owner first raises
//! `relay_checkpoints.generation` to its lease generation (LWT), then reads
//! the position at SERIAL; every checkpoint save is `IF generation = mine`.
//! A zombie (paused past its lease, e.g. a stalled VM) can therefore never
//! move the checkpoint after the new owner started, and stops the shard at
//! its first failed save or renewal, whichever comes first. Changes it sends
//! meanwhile are duplicates of what the new owner re-sends from the
//! checkpoint, never gaps.
//!
//! # Why this and not Kafka consumer-group assignment
//!
//! The shards are Cassandra partitions, not Kafka partitions: a consumer
//! group would need a dummy topic with one partition per shard and would
//! still not fence the checkpoint, which lives in Cassandra. The lease row
//! and the fenced checkpoint live in the same store, with the same LWT.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cinerec_service_kit::Shutdown;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::shard::{ShardEnd, ShardRelay};
use super::{Relay, RelayError};
use crate::store::{CHANGE_SHARDS, LeaseRow};
use crate::telemetry;

/// How long a shard being given up may finish its step in flight before it
/// is abandoned (its lease is released either way).
pub const RELEASE_GRACE: Duration = Duration::from_secs(1);

/// The most leases one of `members` live members should hold.
pub fn fair_share(shards: i32, members: usize) -> usize {
    let shards = shards.max(0) as usize;
    shards.div_ceil(members.max(1))
}

/// A lease row as last read, and since when it has looked like that.
#[derive(Debug)]
struct Seen {
    row: LeaseRow,
    since: Instant,
}

/// A lease this member holds and the publisher running under it.
#[derive(Debug)]
struct Held {
    generation: i64,
    /// Until when the publisher may publish (`None`: revoked).
    valid_until: watch::Sender<Option<Instant>>,
    stop: Shutdown,
    /// `None` once its end was collected ([`Members::reap`]): a finished
    /// handle must not be polled again.
    task: Option<JoinHandle<Result<ShardEnd, RelayError>>>,
    /// The newest change the publisher had acked, reported on renewal.
    published_to: Arc<AtomicI64>,
}

/// This process's membership: its leases and their publishers.
#[derive(Debug)]
pub(super) struct Members {
    relay: Relay,
    seen: HashMap<i32, Seen>,
    held: HashMap<i32, Held>,
    /// Shards being given up (publisher stopping, then the release LWT).
    releasing: JoinSet<i32>,
    releasing_shards: HashSet<i32>,
    ticks: u64,
}

impl Members {
    pub(super) fn new(relay: Relay) -> Members {
        Members {
            relay,
            seen: HashMap::new(),
            held: HashMap::new(),
            releasing: JoinSet::new(),
            releasing_shards: HashSet::new(),
            ticks: 0,
        }
    }

    /// Ticks until `shutdown` (or a fatal error), then stops every
    /// publisher, releases every lease and leaves the member table, so the
    /// survivors take the shards over at their next tick instead of after
    /// the TTL.
    pub(super) async fn run(mut self, shutdown: Shutdown) -> Result<(), RelayError> {
        let mut tick = tokio::time::interval(self.relay.args.lease_tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.wait() => break Ok(()),
            }
            if let Err(e) = self.reap().await {
                break Err(e);
            }
            self.tick().await;
        };
        let shards: Vec<i32> = self.held.keys().copied().collect();
        for shard in shards {
            self.release(shard);
        }
        while self.releasing.join_next().await.is_some() {}
        if let Err(e) = self.relay.store.member_leave(self.relay.member).await {
            telemetry::lease_store_error(&e);
        }
        result
    }

    /// One tick: renew, beat, balance.
    async fn tick(&mut self) {
        self.ticks += 1;
        self.renew().await;
        let ttl = self.relay.args.lease_ttl();
        let ttl_secs = i32::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
        let store = &self.relay.store;
        let me = self.relay.member;
        if let Err(e) = store.member_beat(me, ttl_secs.max(1)).await {
            telemetry::lease_store_error(&e);
        }
        let members = match store.members().await {
            Ok(members) => members,
            Err(e) => {
                telemetry::lease_store_error(&e);
                return;
            }
        };
        let live = members.len() + usize::from(!members.contains(&me));
        let rows = match store.leases().await {
            Ok(rows) => rows,
            Err(e) => {
                telemetry::lease_store_error(&e);
                return;
            }
        };
        self.relay.health.leases_answered();
        let now = Instant::now();
        for row in &rows {
            match self.seen.get_mut(&row.shard) {
                Some(seen) if seen.row == *row => {}
                _ => {
                    self.seen.insert(
                        row.shard,
                        Seen {
                            row: *row,
                            since: now,
                        },
                    );
                }
            }
        }
        let fair = fair_share(CHANGE_SHARDS, live);
        if self.held.len() > fair {
            // Give up the highest shards first: members converge on
            // contiguous ranges, which keeps the moves few.
            let mut mine: Vec<i32> = self.held.keys().copied().collect();
            mine.sort_unstable();
            for shard in mine.into_iter().skip(fair) {
                self.release(shard);
            }
            return;
        }
        // A newcomer lets one tick pass so its heartbeat is seen before it
        // takes anything: members starting together then split the shards
        // instead of the first taking all and handing most back.
        if self.ticks < 2 {
            return;
        }
        for row in rows {
            if self.held.len() >= fair {
                break;
            }
            if self.held.contains_key(&row.shard) || self.releasing_shards.contains(&row.shard) {
                continue;
            }
            let takeable = match row.owner {
                None => true,
                Some(owner) if owner == me => true,
                Some(_) => self
                    .seen
                    .get(&row.shard)
                    .is_some_and(|seen| seen.since.elapsed() >= ttl),
            };
            if !takeable {
                continue;
            }
            let started = Instant::now();
            match self.relay.store.take_lease(&row, me).await {
                Ok(true) => {
                    let takeover = row.owner.is_some_and(|owner| owner != me);
                    telemetry::lease_taken(row.shard, row.generation + 1, takeover);
                    self.start(&row, started);
                }
                Ok(false) => {}
                Err(e) => telemetry::lease_store_error(&e),
            }
        }
    }

    /// Until when a lease renewed (or taken) by a statement sent at `sent`
    /// may be used: a TTL after it, less a tick of margin for the publisher
    /// to notice and for the clocks' rates to differ.
    fn valid_until(&self, sent: Instant) -> Instant {
        sent + self
            .relay
            .args
            .lease_ttl()
            .saturating_sub(self.relay.args.lease_tick())
    }

    /// Renews every held lease (concurrently: one slow LWT must not make
    /// the others late).
    async fn renew(&mut self) {
        let me = self.relay.member;
        let renewals = self.held.iter().map(|(&shard, held)| {
            let store = self.relay.store.clone();
            let (generation, published_to) =
                (held.generation, held.published_to.load(Ordering::Relaxed));
            async move {
                let sent = Instant::now();
                let result = store.renew_lease(shard, me, generation, published_to).await;
                (shard, sent, result)
            }
        });
        for (shard, sent, result) in futures::future::join_all(renewals).await {
            match result {
                Ok(true) => {
                    let until = self.valid_until(sent);
                    if let Some(held) = self.held.get(&shard) {
                        held.valid_until.send_replace(Some(until));
                    }
                }
                Ok(false) => {
                    if let Some(held) = self.held.remove(&shard) {
                        held.valid_until.send_replace(None);
                        held.stop.trigger();
                        self.relay.health.set_owned(shard, false);
                        telemetry::lease_lost(shard, held.generation, "taken by another relay");
                    }
                }
                // The lease may or may not have been renewed: the publisher
                // keeps the validity it had and stops when that runs out.
                Err(e) => telemetry::lease_store_error(&e),
            }
        }
    }

    /// Starts publishing the shard of `row`, whose lease this member just
    /// took (the take was sent at `sent`).
    fn start(&mut self, row: &LeaseRow, sent: Instant) {
        let generation = row.generation + 1;
        let (valid_until, lease) = watch::channel(Some(self.valid_until(sent)));
        let stop = Shutdown::new();
        let published_to = Arc::new(AtomicI64::new(row.published_to));
        let task = {
            let (relay, stop, published_to) =
                (self.relay.clone(), stop.clone(), published_to.clone());
            let (shard, republish_until) = (row.shard, row.published_to);
            tokio::spawn(async move {
                ShardRelay::start(relay, shard, generation, republish_until, published_to)
                    .await?
                    .run(stop, lease)
                    .await
            })
        };
        self.relay.health.set_owned(row.shard, true);
        self.held.insert(
            row.shard,
            Held {
                generation,
                valid_until,
                stop,
                task: Some(task),
                published_to,
            },
        );
    }

    /// Gives up `shard`: stops its publisher (abandoning its step after
    /// [`RELEASE_GRACE`]), then frees the lease, in the background.
    fn release(&mut self, shard: i32) {
        let Some(held) = self.held.remove(&shard) else {
            return;
        };
        self.releasing_shards.insert(shard);
        let relay = self.relay.clone();
        self.releasing.spawn(async move {
            held.stop.trigger();
            if let Some(mut task) = held.task
                && tokio::time::timeout(RELEASE_GRACE, &mut task)
                    .await
                    .is_err()
            {
                task.abort();
            }
            held.valid_until.send_replace(None);
            relay.health.set_owned(shard, false);
            let published_to = held.published_to.load(Ordering::Relaxed);
            match relay
                .store
                .release_lease(shard, relay.member, held.generation, published_to)
                .await
            {
                Ok(true) => telemetry::lease_released(shard, held.generation),
                Ok(false) => telemetry::lease_lost(shard, held.generation, "taken before release"),
                // It expires after the TTL instead.
                Err(e) => telemetry::lease_store_error(&e),
            }
            shard
        });
    }

    /// Collects publishers that ended on their own and finished releases.
    /// A publisher that lost its lease is released (if it is still ours, the
    /// next tick may take it again under a new generation); a fatal error
    /// (keyspace not migrated, a panic) is returned.
    async fn reap(&mut self) -> Result<(), RelayError> {
        while let Some(done) = self.releasing.try_join_next() {
            if let Ok(shard) = done {
                self.releasing_shards.remove(&shard);
            }
        }
        let ended: Vec<i32> = self
            .held
            .iter()
            .filter(|(_, held)| held.task.as_ref().is_some_and(JoinHandle::is_finished))
            .map(|(&shard, _)| shard)
            .collect();
        for shard in ended {
            let Some(held) = self.held.get_mut(&shard) else {
                continue;
            };
            let generation = held.generation;
            let Some(task) = held.task.take() else {
                continue;
            };
            let outcome = task.await;
            match outcome {
                Ok(Ok(ShardEnd::LeaseLost) | Err(RelayError::LeaseLost(_))) => {
                    telemetry::lease_lost(shard, generation, "past due or fenced");
                }
                Ok(Ok(ShardEnd::Stopped)) => {}
                Ok(Err(e @ RelayError::NotMigrated(_))) => return Err(e),
                // Could not start (Cassandra or Kafka failing): give the
                // lease back and try again later.
                Ok(Err(e)) => telemetry::relay_store_error(shard, &e),
                Err(join) => return Err(RelayError::Panicked(shard, join.to_string())),
            }
            self.release(shard);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_share_rounds_up_and_survives_zero_members() {
        assert_eq!(fair_share(8, 1), 8);
        assert_eq!(fair_share(8, 2), 4);
        assert_eq!(fair_share(8, 3), 3);
        assert_eq!(fair_share(8, 8), 1);
        assert_eq!(fair_share(8, 20), 1);
        assert_eq!(fair_share(8, 0), 8);
    }
}
