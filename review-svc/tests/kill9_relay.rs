//! The relay survives `kill -9` at any point: it runs as a child process (the
//! review-svc binary) that is SIGKILLed at random moments and restarted while
//! N reviews are written and edited. Afterwards Kafka holds every
//! acknowledged change at least once — ≥ N distinct events, none missing —
//! and each review's changes first appear in version order.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Harness, content, receive_until, relay_command};
use review_svc::config::{CqlArgs, KafkaArgs};
use tokio::process::Child;
use tokio::sync::Mutex;
use uuid::Uuid;

/// Writer tasks.
const WRITERS: usize = 4;
/// Acknowledged writes per writer (the first few create, the rest edit).
const WRITES_PER_WRITER: usize = 100;
/// SIGKILLs at least.
const MIN_KILLS: u32 = 4;
/// Reviews per writer.
const REVIEWS_PER_WRITER: usize = 10;

fn spawn_relay(cql: &CqlArgs, kafka: &KafkaArgs) -> anyhow::Result<Child> {
    Ok(relay_command(env!("CARGO_BIN_EXE_review-svc"), cql, kafka)
        .env("CINEREC_ADMIN_ADDR", "127.0.0.1:0")
        .spawn()?)
}

#[tokio::test]
async fn every_acknowledged_change_survives_relay_sigkills() -> anyhow::Result<()> {
    let h = Harness::new("rv_kill9").await?;
    let consumer = h.consumer()?;
    let child = Arc::new(Mutex::new(spawn_relay(&h.cql, &h.kafka)?));

    // Writers: create, then edit at random, pacing so the kills land mid-run.
    let acked: Arc<Mutex<Vec<(Uuid, i64)>>> = Arc::default();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = h.store.clone();
        let acked = acked.clone();
        writers.spawn(async move {
            let user = 100 + w as i64;
            let mut ids = Vec::new();
            for i in 0..WRITES_PER_WRITER {
                let outcome = if i < REVIEWS_PER_WRITER {
                    let o = store.create(user, 1 + i as i64, content(i)?, None).await?;
                    ids.push(o.review.review_id);
                    o
                } else {
                    let id = ids[rand::random_range(0..ids.len())];
                    store.update(id, Some(content(i)?), None, |_| true).await?
                };
                acked
                    .lock()
                    .await
                    .push((outcome.review.review_id, outcome.review.version));
                tokio::time::sleep(Duration::from_millis(rand::random_range(5..40))).await;
            }
            anyhow::Ok(())
        });
    }

    // The killer: SIGKILL at random moments (during start-up, polling,
    // publishing, checkpointing alike), then restart.
    let writing = Arc::new(AtomicBool::new(true));
    let killer = {
        let (child, writing) = (child.clone(), writing.clone());
        let (cql, kafka) = (h.cql.clone(), h.kafka.clone());
        tokio::spawn(async move {
            let mut kills = 0_u32;
            // At least MIN_KILLS, the later ones possibly while the backlog drains.
            while writing.load(Ordering::Relaxed) || kills < MIN_KILLS {
                tokio::time::sleep(Duration::from_millis(rand::random_range(50..1200))).await;
                let mut c = child.lock().await;
                c.start_kill()?; // SIGKILL
                c.wait().await?;
                kills += 1;
                *c = spawn_relay(&cql, &kafka)?;
            }
            anyhow::Ok(kills)
        })
    };
    while let Some(joined) = writers.join_next().await {
        joined??;
    }
    writing.store(false, Ordering::Relaxed);
    let kills = killer.await??;
    let acked = acked.lock().await.clone();
    let n = acked.len();
    assert_eq!(n, WRITERS * WRITES_PER_WRITER);

    // The relay left running (restarted by the last kill) must deliver all.
    let want: HashSet<(Uuid, i64)> = acked.iter().copied().collect();
    let received = receive_until(&consumer, |r| {
        let got: HashSet<(Uuid, i64)> = r
            .iter()
            .map(|x| (x.event.review_id, x.event.version))
            .collect();
        want.is_subset(&got)
    })
    .await?;
    child.lock().await.start_kill()?;

    let distinct: HashSet<(Uuid, i64)> = received
        .iter()
        .map(|r| (r.event.review_id, r.event.version))
        .collect();
    assert!(
        distinct.len() >= n,
        "{} distinct events for {n} writes",
        distinct.len()
    );
    // Duplicates are redeliveries of the same change: same event id.
    let mut event_of: HashMap<(Uuid, i64), Uuid> = HashMap::new();
    for r in &received {
        let first = event_of
            .entry((r.event.review_id, r.event.version))
            .or_insert(r.event.event_id);
        assert_eq!(*first, r.event.event_id, "one event id per change");
    }
    // Per review, first appearances are in version order.
    let mut first_seen: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in &received {
        if seen.insert((r.event.review_id, r.event.version)) {
            first_seen
                .entry(r.event.review_id)
                .or_default()
                .push(r.event.version);
        }
        assert_eq!(r.key, r.event.review_id.to_string());
    }
    for (id, versions) in &first_seen {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{id}: {versions:?}"
        );
    }
    eprintln!(
        "{n} acknowledged writes, {} records on Kafka ({} distinct), relay killed {} times",
        received.len(),
        distinct.len(),
        kills
    );
    h.cleanup().await
}
