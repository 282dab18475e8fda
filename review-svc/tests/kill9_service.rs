//! review-svc itself (`serve`: API and relay in one process) survives
//! `kill -9`: clients POST and then PUT reviews over HTTP, retrying with
//! their `Idempotency-Key` until answered, while the process is SIGKILLed
//! at random moments and restarted. Every answered write's version is on
//! Kafka afterwards, each review's changes first appearing in version order,
//! and retries never created a second review.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use common::{AUDIENCE, CATALOG_SIZE, Harness, ISSUER, receive_until};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use uuid::Uuid;

const WRITERS: usize = 4;
/// Reviews per writer; each is created, then edited once.
const REVIEWS_PER_WRITER: usize = 12;
const MIN_KILLS: u32 = 4;
/// How long one logical write may take across kills and stale reservations
/// (a write killed mid-way blocks its review for the 10 s lease).
const WRITE_DEADLINE: Duration = Duration::from_secs(90);

struct Service {
    h_env: Vec<(&'static str, String)>,
}

impl Service {
    fn spawn(&self) -> anyhow::Result<Child> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_review-svc"));
        cmd.arg("serve")
            .envs(self.h_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        Ok(cmd.spawn()?)
    }
}

/// One request on a fresh connection: status and JSON body, or an error if
/// the service is down or died mid-request.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    key: &str,
    body: String,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "review-svc")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(body)))?;
    let response =
        tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await??;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

/// Retries one write with its key until the service answers 200/201.
async fn write_until_answered(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    key: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    loop {
        match request(addr, method, path, token, key, body.to_string()).await {
            Ok((200 | 201, json)) => return Ok(json),
            // 409/503: busy or restarting dependencies; anything else is a bug.
            Ok((409 | 503, _)) | Err(_) => {}
            Ok((status, json)) => bail!("{method} {path}: {status} {json}"),
        }
        if Instant::now() > deadline {
            bail!("{method} {path} unanswered after {WRITE_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_answered_write_survives_service_sigkills() -> anyhow::Result<()> {
    let h = Harness::new("rv_kill9svc").await?;
    let consumer = h.consumer()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let service = Arc::new(Service {
        h_env: vec![
            ("CINEREC_CQL_NODES", h.cql.cql_nodes.join(",")),
            ("REVIEW_SVC_KEYSPACE", h.cql.keyspace.clone()),
            ("CINEREC_KAFKA_BROKERS", h.kafka.kafka_brokers.clone()),
            ("REVIEW_SVC_CHANGES_TOPIC", h.kafka.changes_topic.clone()),
            ("REVIEW_SVC_LISTEN", addr.clone()),
            ("CINEREC_ADMIN_ADDR", "127.0.0.1:0".into()),
            ("REVIEW_SVC_RPC_ADDR", "127.0.0.1:0".into()),
            ("REVIEW_SVC_RPC_HTTP_ADDR", "127.0.0.1:0".into()),
            ("REVIEW_SVC_JWT_HS256_SECRET", h.secret.clone()),
            ("REVIEW_SVC_JWT_ISSUER", ISSUER.into()),
            ("REVIEW_SVC_JWT_AUDIENCE", AUDIENCE.into()),
            // The seeded catalogue, not user-svc/movie-svc (not running here).
            ("REVIEW_SVC_DIRECTORY", "catalog".into()),
            ("CINEREC_CATALOG_USERS", CATALOG_SIZE.to_string()),
            ("CINEREC_CATALOG_MOVIES", CATALOG_SIZE.to_string()),
            ("REVIEW_SVC_RELAY_POLL_MS", "10".into()),
            ("REVIEW_SVC_RELAY_SETTLE_MS", "3000".into()),
            ("REVIEW_SVC_RELAY_SWEEP_MS", "200".into()),
            ("CINEREC_LOG", "warn".into()),
        ],
    });
    let child = Arc::new(Mutex::new(service.spawn()?));

    let answered: Arc<Mutex<Vec<(Uuid, i64)>>> = Arc::default();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (addr, answered) = (addr.clone(), answered.clone());
        let user = 300 + w as i64;
        let token = h.token(&user.to_string(), &[]);
        writers.spawn(async move {
            for i in 0..REVIEWS_PER_WRITER {
                let created = write_until_answered(
                    &addr,
                    "POST",
                    "/v1/reviews",
                    &token,
                    &format!("create-{w}-{i}"),
                    serde_json::json!({"user_id": user, "movie_id": 1 + i, "rating": 3.0}),
                )
                .await?;
                let id: Uuid = serde_json::from_value(created["review_id"].clone())?;
                let edited = write_until_answered(
                    &addr,
                    "PUT",
                    &format!("/v1/reviews/{id}"),
                    &token,
                    &format!("edit-{w}-{i}"),
                    serde_json::json!({"rating": 4.0, "text": "edited"}),
                )
                .await?;
                let mut answered = answered.lock().await;
                for json in [created, edited] {
                    answered.push((id, json["version"].as_i64().unwrap_or(-1)));
                }
            }
            anyhow::Ok(())
        });
    }

    let writing = Arc::new(AtomicBool::new(true));
    let killer = {
        let (child, writing, service) = (child.clone(), writing.clone(), service.clone());
        tokio::spawn(async move {
            let mut kills = 0_u32;
            while writing.load(Ordering::Relaxed) || kills < MIN_KILLS {
                tokio::time::sleep(Duration::from_millis(rand::random_range(300..2000))).await;
                let mut c = child.lock().await;
                c.start_kill()?; // SIGKILL
                c.wait().await?;
                kills += 1;
                *c = service.spawn()?;
            }
            anyhow::Ok(kills)
        })
    };
    while let Some(joined) = writers.join_next().await {
        joined??;
    }
    writing.store(false, Ordering::Relaxed);
    let kills = killer.await??;

    let answered = answered.lock().await.clone();
    let n = answered.len();
    assert_eq!(n, WRITERS * REVIEWS_PER_WRITER * 2);
    let want: HashSet<(Uuid, i64)> = answered.iter().copied().collect();
    let received = receive_until(&consumer, |r| {
        let got: HashSet<(Uuid, i64)> = r
            .iter()
            .map(|x| (x.event.review_id, x.event.version))
            .collect();
        want.is_subset(&got)
    })
    .await?;
    child.lock().await.start_kill()?;

    // Retries with a key never made a second review: one review per key.
    let reviews: HashSet<Uuid> = received.iter().map(|r| r.event.review_id).collect();
    assert_eq!(reviews.len(), WRITERS * REVIEWS_PER_WRITER);
    let mut first_seen: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in &received {
        if seen.insert((r.event.review_id, r.event.version)) {
            first_seen
                .entry(r.event.review_id)
                .or_default()
                .push(r.event.version);
        }
    }
    for (id, versions) in &first_seen {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{id}: {versions:?}"
        );
    }
    eprintln!(
        "{n} answered writes, {} records on Kafka ({} distinct changes), service killed {kills} times",
        received.len(),
        seen.len()
    );
    h.cleanup().await
}
