//! Sends a [`Workload`]'s operations to review-svc's HTTP API on schedule.
//!
//! Open loop: each operation is sent at its scheduled time whether or not
//! earlier ones have answered (closed-loop clients hide server slowness by
//! slowing down with it), with at most `concurrency` requests outstanding;
//! when that cap is reached, sending falls behind schedule and the report
//! says by how much. Every write carries an `Idempotency-Key`, so retries
//! (connection errors, 5xx, 429, and 409 while another writer holds the
//! review) never create a second review, and
//! `duplicate_share` of creations is deliberately sent twice to exercise that.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, Semaphore};

use crate::workload::{Op, OpKind, Workload};

/// Attempts per operation (the first send included).
pub const ATTEMPTS: u32 = 4;
/// Largest response body read (a review is well under this).
const MAX_RESPONSE: usize = 64 * 1024;

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// review-svc's API base, e.g. `http://127.0.0.1:8083`.
    pub api: String,
    /// A bearer token review-svc accepts for every user (admin scope).
    pub token: String,
    /// Requests outstanding at most.
    pub concurrency: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many operations.
    pub max_ops: u64,
    /// Share of creations sent a second time with the same key.
    pub duplicate_share: f64,
    /// Prefix of idempotency keys: distinct per run, so runs don't replay each other.
    pub run_id: String,
}

/// Counters and latencies of a run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Operations sent, by kind (`create`, `edit`, `delete`, `duplicate`).
    pub sent: HashMap<&'static str, u64>,
    /// Answers by kind and status code.
    pub answers: HashMap<(&'static str, u16), u64>,
    /// Operations that never got an answer within [`ATTEMPTS`].
    pub failed: u64,
    /// Edits/deletes skipped because their review was not created (yet).
    pub skipped: u64,
    /// Retries sent.
    pub retries: u64,
    /// Latency of each answered operation, by kind (retries included).
    pub latencies: HashMap<&'static str, Vec<Duration>>,
    /// How far behind schedule the last operation was sent.
    pub max_lag: Duration,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Review ids of successful creations, in creation order (None: failed).
    pub created: Vec<Option<String>>,
    /// The latest version review-svc acknowledged (2xx) for each review the
    /// run wrote, by review id: what the pipeline must end up reflecting.
    pub acked: HashMap<String, Acked>,
}

/// One acknowledged write, as review-svc answered it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acked {
    /// The version the answer carried.
    pub version: i64,
    /// Whether that version is a tombstone.
    pub deleted: bool,
    /// Its stars (`None` on a tombstone).
    pub rating: Option<f32>,
    /// Its author.
    pub user_id: i64,
    /// Its movie.
    pub movie_id: i64,
}

impl Report {
    /// Records an acknowledged answer, keeping the highest version per review.
    fn ack(&mut self, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let (Some(id), Some(version)) = (v["review_id"].as_str(), v["version"].as_i64()) else {
            return;
        };
        let acked = Acked {
            version,
            deleted: v["deleted"].as_bool().unwrap_or(false),
            rating: v["rating"].as_f64().map(|r| r as f32),
            user_id: v["user_id"].as_i64().unwrap_or_default(),
            movie_id: v["movie_id"].as_i64().unwrap_or_default(),
        };
        let slot = self.acked.entry(id.to_owned()).or_insert(acked);
        if acked.version > slot.version {
            *slot = acked;
        }
    }
}

impl Report {
    /// Answers with a 2xx status.
    pub fn accepted(&self) -> u64 {
        self.answers
            .iter()
            .filter(|((_, s), _)| (200..300).contains(s))
            .map(|(_, n)| n)
            .sum()
    }

    /// The `p`-quantile (0..=1) latency of `kind`, if any answered.
    pub fn quantile(&self, kind: &str, p: f64) -> Option<Duration> {
        let mut l = self.latencies.get(kind)?.clone();
        if l.is_empty() {
            return None;
        }
        l.sort();
        Some(l[((l.len() as f64 * p) as usize).min(l.len() - 1)])
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} operations in {:.1}s ({:.0}/s), {} accepted, {} failed, {} skipped, {} retries, max lag {:?}\n",
            self.sent.values().sum::<u64>(),
            self.elapsed.as_secs_f64(),
            self.sent.values().sum::<u64>() as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.accepted(),
            self.failed,
            self.skipped,
            self.retries,
            self.max_lag
        );
        let mut answers: Vec<_> = self.answers.iter().collect();
        answers.sort();
        for ((kind, status), n) in answers {
            out.push_str(&format!("  {kind:<9} {status}: {n}\n"));
        }
        for kind in ["create", "edit", "delete", "duplicate"] {
            if let (Some(p50), Some(p99)) = (self.quantile(kind, 0.5), self.quantile(kind, 0.99)) {
                out.push_str(&format!("  {kind:<9} p50 {p50:?} p99 {p99:?}\n"));
            }
        }
        out
    }
}

struct Shared {
    client: Client<HttpConnector, Full<Bytes>>,
    config: DriverConfig,
    report: Mutex<Report>,
}

/// Runs `workload` against the API until the duration or operation limit,
/// or until `stop` resolves; returns the report once every request answered.
pub async fn run(
    workload: Workload,
    config: DriverConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Report {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let shared = Arc::new(Shared {
        client: Client::builder(TokioExecutor::new()).build(http),
        report: Mutex::new(Report::default()),
        config: config.clone(),
    });
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.max_ops ^ 0x5eed);
    let mut creations = 0_u64;
    tokio::pin!(stop);
    for (n, op) in workload.enumerate() {
        if n as u64 >= config.max_ops || op.at >= config.duration {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep_until(start + op.at) => {}
        }
        let permit = tokio::select! {
            () = &mut stop => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let lag = start.elapsed().saturating_sub(op.at);
        let nth = if matches!(op.kind, OpKind::Create { .. }) {
            creations += 1;
            Some(creations - 1)
        } else {
            None
        };
        let duplicate = nth.is_some() && rng.random_bool(config.duplicate_share.clamp(0.0, 1.0));
        let shared = shared.clone();
        tasks.spawn(async move {
            {
                let mut r = shared.report.lock().await;
                r.max_lag = r.max_lag.max(lag);
            }
            send(&shared, n as u64, op, nth, duplicate).await;
            drop(permit);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut report = shared.report.lock().await.clone();
    report.elapsed = started.elapsed();
    report
}

async fn send(shared: &Shared, n: u64, op: Op, nth: Option<u64>, duplicate: bool) {
    let key = format!("{}-{n}", shared.config.run_id);
    let (kind, method, path, body) = match op.kind {
        OpKind::Create {
            user_id,
            movie_id,
            rating,
        } => (
            "create",
            Method::POST,
            "/v1/reviews".to_owned(),
            serde_json::json!({
                "user_id": user_id, "movie_id": movie_id, "rating": rating,
                "text": format!("loadgen review {n}: {rating} stars"),
            })
            .to_string(),
        ),
        OpKind::Edit { nth, rating } => {
            let Some(id) = created_id(shared, nth).await else {
                shared.report.lock().await.skipped += 1;
                return;
            };
            (
                "edit",
                Method::PUT,
                format!("/v1/reviews/{id}"),
                serde_json::json!({ "rating": rating, "text": format!("loadgen edit {n}: {rating} stars") })
                    .to_string(),
            )
        }
        OpKind::Delete { nth } => {
            let Some(id) = created_id(shared, nth).await else {
                shared.report.lock().await.skipped += 1;
                return;
            };
            (
                "delete",
                Method::DELETE,
                format!("/v1/reviews/{id}"),
                String::new(),
            )
        }
    };
    let answer = request(shared, kind, &method, &path, &key, &body).await;
    if let Some(slot) = nth {
        let id = answer.as_ref().and_then(|(status, body)| {
            status
                .is_success()
                .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
                .flatten()
                .and_then(|v| v["review_id"].as_str().map(str::to_owned))
        });
        let mut r = shared.report.lock().await;
        let slot = slot as usize;
        if r.created.len() <= slot {
            r.created.resize(slot + 1, None);
        }
        r.created[slot] = id;
    }
    if duplicate && answer.is_some() {
        request(shared, "duplicate", &method, &path, &key, &body).await;
    }
}

// Edits and deletes of a review whose creation failed or has not answered yet
// are skipped (and counted) rather than sent to a made-up id.
async fn created_id(shared: &Shared, nth: u64) -> Option<String> {
    shared
        .report
        .lock()
        .await
        .created
        .get(nth as usize)
        .cloned()
        .flatten()
}

/// Sends with retries; returns the final status and body, or None when every
/// attempt failed to get an answer worth keeping.
async fn request(
    shared: &Shared,
    kind: &'static str,
    method: &Method,
    path: &str,
    key: &str,
    body: &str,
) -> Option<(StatusCode, Bytes)> {
    shared
        .report
        .lock()
        .await
        .sent
        .entry(kind)
        .and_modify(|n| *n += 1)
        .or_insert(1);
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            shared.report.lock().await.retries += 1;
            // Jitter spreads retries of requests that failed together.
            let jitter = Duration::from_millis(rand::rng().random_range(0..50));
            tokio::time::sleep(backoff + jitter).await;
            backoff *= 2;
        }
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", shared.config.api))
            .header("authorization", format!("Bearer {}", shared.config.token))
            .header("idempotency-key", key);
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        let Ok(req) = builder.body(Full::new(Bytes::from(body.to_owned()))) else {
            break;
        };
        let Ok(resp) = shared.client.request(req).await else {
            continue;
        };
        let status = resp.status();
        let Ok(collected) = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
        else {
            continue;
        };
        // 5xx and 429 are transient by definition; review-svc answers 409 while
        // another writer holds the review's version (it clears in milliseconds).
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::CONFLICT
        {
            continue;
        }
        let body = collected.to_bytes();
        let mut r = shared.report.lock().await;
        *r.answers.entry((kind, status.as_u16())).or_insert(0) += 1;
        r.latencies.entry(kind).or_default().push(started.elapsed());
        if status.is_success() {
            r.ack(&body);
        }
        return Some((status, body));
    }
    shared.report.lock().await.failed += 1;
    None
}
