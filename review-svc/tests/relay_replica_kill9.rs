//! Three relay replicas run as child processes (the review-svc binary, the
//! default lease flags); one is SIGKILLed mid-stream, without releasing
//! anything. Its shards are owned by the survivors after the lease TTL,
//! writes go on throughout, and every acknowledged change reaches Kafka (at
//! least once: the survivors re-send the dead replica's unsettled window and
//! count it). Prints the takeover time, from the kill to the survivors
//! owning all shards.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Harness, content, poll_until, receive_until, relay_command};
use review_svc::config::{CqlArgs, KafkaArgs};
use review_svc::store::CHANGE_SHARDS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use uuid::Uuid;

const REPLICAS: usize = 3;
const WRITERS: usize = 4;
const REVIEWS_PER_WRITER: usize = 10;

struct Replica {
    member: Uuid,
    admin: std::net::SocketAddr,
    child: Child,
}

fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn spawn_replica(cql: &CqlArgs, kafka: &KafkaArgs) -> anyhow::Result<Replica> {
    let (member, admin) = (Uuid::new_v4(), free_port()?);
    let child = relay_command(env!("CARGO_BIN_EXE_review-svc"), cql, kafka)
        .env("REVIEW_SVC_RELAY_MEMBER_ID", member.to_string())
        .env("CINEREC_ADMIN_ADDR", admin.to_string())
        .spawn()?;
    Ok(Replica {
        member,
        admin,
        child,
    })
}

/// One counter of a replica's `/metrics` (0 if absent).
async fn scrape(admin: std::net::SocketAddr, name: &str) -> anyhow::Result<f64> {
    let mut stream = tokio::net::TcpStream::connect(admin).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

#[tokio::test]
async fn a_sigkilled_replica_hands_its_shards_over_and_nothing_is_lost() -> anyhow::Result<()> {
    let h = Harness::new("rv_replica_kill9").await?;
    let consumer = h.consumer()?;
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|_| spawn_replica(&h.cql, &h.kafka))
        .collect::<anyhow::Result<_>>()?;
    let members: Vec<Uuid> = replicas.iter().map(|r| r.member).collect();

    // Owners per member, from the lease table.
    let owners = |store: Arc<review_svc::store::ReviewStore>| async move {
        let mut by: HashMap<Uuid, usize> = HashMap::new();
        let rows = store.leases().await?;
        let free = rows.iter().filter(|r| r.owner.is_none()).count();
        for owner in rows.iter().filter_map(|r| r.owner) {
            *by.entry(owner).or_default() += 1;
        }
        anyhow::Ok((by, free))
    };
    poll_until("all three replicas own shards", || {
        let (store, members) = (h.store.clone(), members.clone());
        async move {
            let (by, free) = owners(store).await?;
            Ok((free == 0 && members.iter().all(|m| by.contains_key(m))).then_some(()))
        }
    })
    .await?;

    // Writers run until told to stop: before, during and after the kill.
    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (store, writing) = (h.store.clone(), writing.clone());
        writers.spawn(async move {
            let user = 300 + w as i64;
            let (mut ids, mut acked) = (Vec::new(), Vec::new());
            let mut i = 0;
            while writing.load(Ordering::Relaxed) {
                let outcome = if i < REVIEWS_PER_WRITER {
                    let o = store.create(user, 1 + i as i64, content(i)?, None).await?;
                    ids.push(o.review.review_id);
                    o
                } else {
                    let id = ids[rand::random_range(0..ids.len())];
                    store.update(id, Some(content(i)?), None, |_| true).await?
                };
                acked.push((outcome.review.review_id, outcome.review.version));
                i += 1;
                tokio::time::sleep(Duration::from_millis(rand::random_range(5..20))).await;
            }
            anyhow::Ok(acked)
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut victim = replicas.remove(0);
    victim.child.start_kill()?; // SIGKILL: no release, no goodbye
    let killed = Instant::now();
    victim.child.wait().await?;
    let survivors: Vec<Uuid> = replicas.iter().map(|r| r.member).collect();
    let taken_over = poll_until("the survivors own every shard", || {
        let (store, survivors) = (h.store.clone(), survivors.clone());
        async move {
            let (by, free) = owners(store).await?;
            let theirs: usize = survivors.iter().filter_map(|m| by.get(m)).sum();
            Ok((free == 0 && theirs == CHANGE_SHARDS as usize).then(|| killed.elapsed()))
        }
    })
    .await?;
    // Keep writing a little after the hand-over, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.store(false, Ordering::Relaxed);
    let mut want = HashSet::new();
    while let Some(joined) = writers.join_next().await {
        want.extend(joined??);
    }

    let received = receive_until(&consumer, |r| {
        let got: HashSet<(Uuid, i64)> = r
            .iter()
            .map(|x| (x.event.review_id, x.event.version))
            .collect();
        want.is_subset(&got)
    })
    .await?;
    let mut takeovers = 0.0;
    let mut duplicates = 0.0;
    for replica in &replicas {
        takeovers += scrape(replica.admin, "review_svc_relay_lease_takeovers_total").await?;
        duplicates += scrape(
            replica.admin,
            "review_svc_relay_duplicates_republished_total",
        )
        .await?;
    }
    assert!(takeovers >= 1.0, "no takeover counted by the survivors");
    let distinct: HashSet<(Uuid, i64)> = received
        .iter()
        .map(|r| (r.event.review_id, r.event.version))
        .collect();
    eprintln!(
        "takeover after kill -9: {:.2} s (survivors own all {CHANGE_SHARDS} shards); \
         {} acknowledged writes, {} records ({} distinct), {takeovers} takeovers, \
         {duplicates} duplicates counted",
        taken_over.as_secs_f64(),
        want.len(),
        received.len(),
        distinct.len()
    );
    for mut replica in replicas {
        replica.child.start_kill()?;
        replica.child.wait().await?;
    }
    h.cleanup().await
}
