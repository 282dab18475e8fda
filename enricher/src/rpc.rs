//! The Avro RPC clients of review-svc, movie-svc and user-svc, and the
//! batched, retried fetches the enricher makes with them.
//!
//! Each client is one stack (built in [`connect`]): the typed generated client
//! over [`RpcClientMetrics`] (each attempt counted and timed by message and
//! outcome) over the client span over `Deadline` (each attempt bounded, the
//! time left carried to the server) over [`Reconnecting`] (one multiplexed socket connection shared by
//! every clone, replaced on the next call after a transport failure). Retries with
//! exponential backoff sit *outside* the stack, in [`Retry`], because the
//! enricher decides per batch when the budget is spent and the events go to
//! the DLQ instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use avro_rpc::codegen::CallError;
use avro_rpc::export::BoxFuture;
use avro_rpc::layer::deadline::Deadline;
use avro_rpc::layer::deadline::DeadlineLayer;
use avro_rpc::layer::trace::Trace;
use avro_rpc::transport::socket::SocketConnector;
use avro_rpc::{Call, Reply};
use cinerec_backoff::ExponentialBackoff;
use cinerec_service_kit::rpc::{RpcClientMetrics, RpcClientMetricsLayer};
use tower::{ServiceBuilder, ServiceExt};
use uuid::Uuid;

/// Generated from `protocols/review.avpr`.
#[allow(missing_docs, dead_code)]
pub mod review {
    avro_rpc::include_protocol!("review_service");
}
/// Generated from `protocols/movie.avpr`.
#[allow(missing_docs, dead_code)]
pub mod movie {
    avro_rpc::include_protocol!("movie_service");
}
/// Generated from `protocols/user.avpr`.
#[allow(missing_docs, dead_code)]
pub mod user {
    avro_rpc::include_protocol!("user_service");
}

/// Largest id list one multi-get may carry (the contracts' limit).
pub const MAX_IDS_PER_CALL: usize = 1_000;

/// The service under every typed client: metrics per call, a client span
/// per call (trace context in the call metadata), a deadline per call, over
/// one shared, reconnecting socket connection.
pub type RpcService = RpcClientMetrics<Trace<Deadline<Reconnecting>>>;

/// One multiplexed socket connection shared by every clone, replaced on the
/// next call after a transport failure. (Stock `Buffer<Reconnect>` would do
/// the same, but rustc cannot prove the generated client's futures Send over
/// a `Buffer` of boxed futures — a higher-ranked lifetime limitation, "not
/// general enough" — so the shared state is an `Arc<Mutex>` here instead.)
#[derive(Debug, Clone)]
pub struct Reconnecting {
    connector: SocketConnector,
    /// `host:port`, resolved at each connect.
    addr: String,
    /// The live connection; `None` before the first call and after a
    /// transport failure.
    current: Arc<tokio::sync::Mutex<Option<avro_rpc::Client>>>,
}

impl Reconnecting {
    /// Connects lazily to `addr` speaking `protocol`.
    pub fn new(protocol: avro_rpc::Protocol, addr: String) -> Reconnecting {
        Reconnecting {
            connector: SocketConnector::new(protocol),
            addr,
            current: Arc::default(),
        }
    }

    async fn client(&self) -> Result<avro_rpc::Client, avro_rpc::Error> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref() {
            return Ok(c.clone());
        }
        let client = self.connector.clone().oneshot(self.addr.clone()).await?;
        *current = Some(client.clone());
        Ok(client)
    }

    async fn forget(&self) {
        *self.current.lock().await = None;
    }
}

impl tower::Service<Call> for Reconnecting {
    type Response = Reply;
    type Error = avro_rpc::Error;
    type Future = BoxFuture<'static, Result<Reply, avro_rpc::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), avro_rpc::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let client = this.client().await?;
            let reply = client.call(call).await;
            if let Err(e) = &reply
                && e.kind() == avro_rpc::Kind::Transport
            {
                this.forget().await;
            }
            reply
        })
    }
}

/// Where the three services listen (socket transport).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// review-svc's ReviewService (`host:port`).
    pub review: String,
    /// movie-svc's MovieService (`host:port`).
    pub movie: String,
    /// user-svc's UserService (`host:port`).
    pub user: String,
}

/// Exponential backoff with a budget of attempts.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (the first included); at least 1.
    pub attempts: u32,
    /// The waits between attempts.
    pub backoff: ExponentialBackoff,
    /// Longest one attempt may take (also the RPC deadline).
    pub attempt_timeout: Duration,
}

impl Retry {
    /// Runs `op` until it succeeds, fails permanently, or the budget is spent.
    ///
    /// `op` makes each attempt as a boxed `'static` future: rustc then sees
    /// the whole loop as Send without reasoning about the closure's future
    /// over higher-ranked lifetimes.
    pub async fn run<T, F>(&self, what: &str, mut op: F) -> Result<T, Failure>
    where
        F: FnMut() -> BoxFuture<'static, Result<T, Attempt>>,
    {
        let mut failures = 0;
        loop {
            let outcome = match tokio::time::timeout(self.attempt_timeout, op()).await {
                Ok(r) => r,
                Err(_) => Err(Attempt::Transient(format!(
                    "no answer within {:?}",
                    self.attempt_timeout
                ))),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(Attempt::Permanent(e)) => {
                    return Err(Failure {
                        error: format!("{what}: {e}"),
                        attempts: failures + 1,
                    });
                }
                Err(Attempt::Transient(e)) => {
                    failures += 1;
                    if failures >= self.attempts.max(1) {
                        return Err(Failure {
                            error: format!("{what}: {e}"),
                            attempts: failures,
                        });
                    }
                    crate::telemetry::retrying(what, failures, &e);
                    tokio::time::sleep(self.backoff.delay(failures)).await;
                }
            }
        }
    }
}

/// How one attempt failed.
#[derive(Debug)]
pub enum Attempt {
    /// Worth retrying: transport, timeout, a server-side system error.
    Transient(String),
    /// The server's declared answer: retrying cannot change it.
    Permanent(String),
}

impl<E: std::fmt::Debug> From<CallError<E>> for Attempt {
    fn from(e: CallError<E>) -> Attempt {
        match e {
            CallError::Declared(d) => Attempt::Permanent(format!("{d:?}")),
            other => Attempt::Transient(other.to_string()),
        }
    }
}

/// A fetch that failed for good, after `attempts` attempts.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What failed and why (goes to the DLQ header `cinerec.error`).
    pub error: String,
    /// Attempts made (goes to `cinerec.attempts`).
    pub attempts: u32,
}

fn stack(
    service: &'static str,
    protocol: avro_rpc::Protocol,
    addr: String,
    deadline: Duration,
) -> RpcService {
    // Metrics outermost: a call the deadline ends counts as a `timeout`, and
    // the latency is what the batch waited. (Retries are above the stack, in
    // `Retry`, so each attempt counts once.)
    // The deadline wraps each call on the shared connection and travels to
    // the server, which abandons work nobody waits for.
    // The client span is outside the deadline, so its context (sent in the
    // call metadata) is the server span's parent.
    ServiceBuilder::new()
        .layer(RpcClientMetricsLayer::new(service))
        .layer(cinerec_service_kit::trace_context::rpc_client_layer(
            &protocol,
        ))
        .layer(DeadlineLayer::new(deadline))
        .service(Reconnecting::new(protocol, addr))
}

/// The three typed clients.
#[derive(Clone)]
pub struct Clients {
    reviews: review::ReviewServiceClient<RpcService>,
    movies: movie::MovieServiceClient<RpcService>,
    users: user::UserServiceClient<RpcService>,
    retry: Retry,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Builds the clients; connections open lazily on the first call, so a
/// service that is down at start-up does not stop the enricher.
///
/// Must run inside a tokio runtime (the buffers spawn their workers).
pub fn connect(endpoints: Endpoints, retry: Retry) -> anyhow::Result<Clients> {
    let (rp, mp, up) = (review::protocol()?, movie::protocol()?, user::protocol()?);
    Ok(Clients {
        reviews: review::ReviewServiceClient::with_service(
            rp.clone(),
            stack("review-svc", rp, endpoints.review, retry.attempt_timeout),
        ),
        movies: movie::MovieServiceClient::with_service(
            mp.clone(),
            stack("movie-svc", mp, endpoints.movie, retry.attempt_timeout),
        ),
        users: user::UserServiceClient::with_service(
            up.clone(),
            stack("user-svc", up, endpoints.user, retry.attempt_timeout),
        ),
        retry,
    })
}

/// What a multi-get found: by id, plus the ids that do not exist.
#[derive(Debug)]
pub struct Found<K, V> {
    /// Found items by id.
    pub found: HashMap<K, V>,
    /// Ids the service does not know.
    pub missing: Vec<K>,
}

impl Clients {
    /// The latest versions of `ids` (tombstones included), in chunks of
    /// [`MAX_IDS_PER_CALL`], each chunk retried.
    pub async fn reviews(&self, ids: &[Uuid]) -> Result<Found<Uuid, review::Review>, Failure> {
        let mut out = Found {
            found: HashMap::with_capacity(ids.len()),
            missing: Vec::new(),
        };
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let wire: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            let (client, ids) = (self.reviews.clone(), wire);
            let batch = self
                .retry
                .run("getReviews", move || {
                    let (client, ids) = (client.clone(), ids.clone());
                    Box::pin(async move { client.get_reviews(ids).await.map_err(Attempt::from) })
                })
                .await?;
            for r in batch.reviews {
                let id = Uuid::parse_str(&r.review_id).map_err(|e| Failure {
                    error: format!("getReviews answered a bad review_id {:?}: {e}", r.review_id),
                    attempts: 1,
                })?;
                out.found.insert(id, r);
            }
            for m in batch.missing {
                if let Ok(id) = Uuid::parse_str(&m) {
                    out.missing.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Movies by id, chunked and retried.
    pub async fn movies(&self, ids: &[i64]) -> Result<Found<i64, movie::Movie>, Failure> {
        let mut out = Found {
            found: HashMap::with_capacity(ids.len()),
            missing: Vec::new(),
        };
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let (client, ids) = (self.movies.clone(), chunk.to_vec());
            let batch = self
                .retry
                .run("getMovies", move || {
                    let (client, ids) = (client.clone(), ids.clone());
                    Box::pin(async move { client.get_movies(ids).await.map_err(Attempt::from) })
                })
                .await?;
            out.found
                .extend(batch.movies.into_iter().map(|m| (m.id, m)));
            out.missing.extend(batch.missing);
        }
        Ok(out)
    }

    /// Users by id, chunked and retried.
    pub async fn users(&self, ids: &[i64]) -> Result<Found<i64, user::User>, Failure> {
        let mut out = Found {
            found: HashMap::with_capacity(ids.len()),
            missing: Vec::new(),
        };
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let (client, ids) = (self.users.clone(), chunk.to_vec());
            let batch = self
                .retry
                .run("getUsers", move || {
                    let (client, ids) = (client.clone(), ids.clone());
                    Box::pin(async move { client.get_users(ids).await.map_err(Attempt::from) })
                })
                .await?;
            out.found.extend(batch.users.into_iter().map(|u| (u.id, u)));
            out.missing.extend(batch.missing);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: u32) -> Retry {
        Retry {
            attempts,
            backoff: ExponentialBackoff::new(Duration::from_millis(1), Duration::from_millis(4)),
            attempt_timeout: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_the_budget() {
        let mut calls = 0;
        let out: Result<(), Failure> = retry(3)
            .run("op", || {
                calls += 1;
                Box::pin(async { Err(Attempt::Transient("down".into())) })
            })
            .await;
        let failure = out.expect_err("budget spent");
        assert_eq!((calls, failure.attempts), (3, 3));
        assert!(failure.error.contains("op: down"), "{}", failure.error);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried_and_success_ends_the_loop() {
        let mut calls = 0;
        let out: Result<(), Failure> = retry(5)
            .run("op", || {
                calls += 1;
                Box::pin(async { Err(Attempt::Permanent("invalid".into())) })
            })
            .await;
        assert_eq!((calls, out.expect_err("permanent").attempts), (1, 1));

        let mut calls = 0;
        let out = retry(5)
            .run("op", || {
                calls += 1;
                let n = calls;
                Box::pin(async move {
                    if n < 3 {
                        Err(Attempt::Transient("flaky".into()))
                    } else {
                        Ok(n)
                    }
                })
            })
            .await;
        assert_eq!(out.expect("third try"), 3);
    }

    #[tokio::test]
    async fn a_hung_attempt_counts_as_a_transient_failure() {
        let out: Result<(), Failure> = retry(2)
            .run("op", || Box::pin(std::future::pending()))
            .await;
        assert!(out.expect_err("timed out").error.contains("no answer"));
    }
}
