//! Claiming a consumer's whole batch: the loop every at-least-once consumer
//! runs around [`Cache::claim_many`].
//!
//! A consumer polls a batch of events and must settle each one before doing
//! any effect: done before → skip it; free → claim it; held by another
//! consumer (a replica that got the same partition during a rebalance, or one
//! that crashed mid-batch) → wait, because skipping would lose the event if
//! the holder dies, and processing now would do the effect twice while the
//! holder is alive. [`Cache::claim_batch`] claims the keys still pending,
//! waits with backoff while some are held elsewhere, and gives up waiting
//! after a bound (the holder's in-flight marker should have expired by then:
//! the event is taken over, counted as degraded). A cache that cannot be
//! asked never stalls the batch: every key is claimed degraded.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::cache::{Cache, Claim};
use crate::error::{Error, ErrorKind, Result};

/// What [`Cache::claim_batch`] settled for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Ours: do the effect, then commit. `degraded`: the claim is not safely
    /// recorded (a zone did not answer, the cache failed, or another holder's
    /// marker outlived the wait and the key was taken over).
    Claimed {
        /// Whether a concurrent duplicate is possible.
        degraded: bool,
    },
    /// Done within its done TTL: skip the event.
    AlreadyDone,
}

/// How long and how often [`Cache::claim_batch`] waits for keys held
/// elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchWait {
    /// Stop waiting after this long and take the still-held keys over
    /// (degraded). Pick it above the holders' in-flight TTL (twice is a good
    /// default), so a crashed holder's marker has expired by then.
    pub give_up_after: Duration,
    /// The first pause between rounds; it doubles each round.
    pub first_backoff: Duration,
    /// The longest pause between rounds.
    pub max_backoff: Duration,
}

impl BatchWait {
    /// Waits up to `give_up_after`, pausing 50 ms, doubling up to 1 s.
    pub fn up_to(give_up_after: Duration) -> Self {
        BatchWait {
            give_up_after,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// Why keys were claimed degraded, for [`BatchEvents::degraded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DegradedBy {
    /// `claim_many` failed: every pending key is claimed degraded.
    ClaimFailed,
    /// Some zone did not record the claim.
    ZoneMissed,
    /// Held elsewhere past [`BatchWait::give_up_after`]: taken over.
    TakenOver,
}

impl DegradedBy {
    /// A short description for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DegradedBy::ClaimFailed => "claim failed",
            DegradedBy::ZoneMissed => "claim not recorded on every zone",
            DegradedBy::TakenOver => "held elsewhere past the wait limit: taken over",
        }
    }
}

/// What [`Cache::claim_batch`] reports as it goes, for the caller's metrics
/// and logs (the cache's own counters see every claim already).
pub trait BatchEvents {
    /// `keys` were claimed degraded, for `why`.
    fn degraded(&self, keys: usize, why: DegradedBy);
    /// `keys` are in flight at another consumer: the batch waits a round.
    fn held_elsewhere(&self, keys: usize);
}

/// Reports nothing.
impl BatchEvents for () {
    fn degraded(&self, _: usize, _: DegradedBy) {}
    fn held_elsewhere(&self, _: usize) {}
}

impl Cache {
    /// Claims every key of a batch (distinct keys; a repeat is an
    /// [`ErrorKind::InvalidKey`] error, nothing sent): one [`Settled`] per
    /// key, in order, once every key is claimed or known done. Keys held by
    /// another caller are claimed again each round, after a backoff, until
    /// they settle or `wait.give_up_after` has passed (then they are taken
    /// over, degraded). `Ok(None)` when `cancel` completes first (shutdown):
    /// the claims this batch took are released first, so whoever gets these
    /// events next claims them at once.
    pub async fn claim_batch<K: AsRef<str>>(
        &self,
        keys: &[K],
        in_flight_ttl: Duration,
        wait: BatchWait,
        cancel: impl Future<Output = ()>,
        events: &impl BatchEvents,
    ) -> Result<Option<Vec<Settled>>> {
        let mut distinct = std::collections::HashSet::with_capacity(keys.len());
        for k in keys {
            if !distinct.insert(k.as_ref()) {
                return Err(Error::new(
                    ErrorKind::InvalidKey,
                    format!("key {:?} appears twice in one batch", k.as_ref()),
                ));
            }
        }
        let give_up = Instant::now() + wait.give_up_after;
        let mut backoff = wait.first_backoff;
        let mut settled: Vec<Option<Settled>> = vec![None; keys.len()];
        tokio::pin!(cancel);
        loop {
            let pending: Vec<usize> = (0..keys.len()).filter(|&i| settled[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let pending_keys: Vec<&str> = pending.iter().map(|&i| keys[i].as_ref()).collect();
            let claims = match self.claim_many(&pending_keys, in_flight_ttl).await {
                Ok(c) if c.len() == pending.len() => c,
                Ok(_) | Err(_) => {
                    // Only invalid keys error (nothing was sent): treat it as
                    // an outage rather than stall the consumer.
                    events.degraded(pending.len(), DegradedBy::ClaimFailed);
                    for &i in &pending {
                        settled[i] = Some(Settled::Claimed { degraded: true });
                    }
                    break;
                }
            };
            let overdue = Instant::now() >= give_up;
            let (mut missed, mut taken_over, mut held) = (0, 0, 0);
            for (&i, claim) in pending.iter().zip(claims) {
                settled[i] = match claim {
                    Claim::Claimed { degraded } => {
                        missed += usize::from(degraded);
                        Some(Settled::Claimed { degraded })
                    }
                    Claim::AlreadyDone => Some(Settled::AlreadyDone),
                    Claim::InFlight if overdue => {
                        taken_over += 1;
                        Some(Settled::Claimed { degraded: true })
                    }
                    Claim::InFlight => {
                        held += 1;
                        None
                    }
                };
            }
            if missed > 0 {
                events.degraded(missed, DegradedBy::ZoneMissed);
            }
            if taken_over > 0 {
                events.degraded(taken_over, DegradedBy::TakenOver);
            }
            if held == 0 {
                break;
            }
            events.held_elsewhere(held);
            tokio::select! {
                _ = &mut cancel => {
                    self.release_claimed(keys, &settled).await;
                    return Ok(None);
                }
                _ = tokio::time::sleep(backoff.min(give_up.saturating_duration_since(Instant::now()))) => {}
            }
            backoff = (backoff * 2).min(wait.max_backoff);
        }
        Ok(Some(settled.into_iter().flatten().collect()))
    }

    /// Gives back the claims a cancelled batch took, so the next consumer of
    /// these events need not wait out their in-flight TTL. A failed release
    /// leaves markers that expire by that TTL.
    async fn release_claimed<K: AsRef<str>>(&self, keys: &[K], settled: &[Option<Settled>]) {
        let ours: Vec<&str> = keys
            .iter()
            .zip(settled)
            .filter(|(_, s)| matches!(s, Some(Settled::Claimed { .. })))
            .map(|(k, _)| k.as_ref())
            .collect();
        if !ours.is_empty()
            && let Err(e) = self.release_many(&ours).await
        {
            tracing::warn!(error = %e, keys = ours.len(), "releasing a cancelled batch's claims");
        }
    }
}

#[cfg(test)]
mod tests;
