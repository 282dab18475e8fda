//! The API over the real Avro RPC directory: user-svc and movie-svc run
//! in-process on port 0 over fresh PostgreSQL schemas (as their own
//! `tests/rpc.rs` start them), review-svc asks them through `RpcDirectory`.
//! A review of an existing user and movie is accepted; an unknown movie or
//! user is a 422 with a reason; with movie-svc stopped the API answers 503
//! (never "does not exist") and stores nothing; once movie-svc is back on
//! its address the directory reconnects and reviews are accepted again.
//!
//! movie-svc runs on its own tokio runtime in its own thread, so stopping it
//! (dropping that runtime) closes its listeners *and* its open connections,
//! as a process exit would.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{Method, StatusCode};
use cinerec_service_kit::Shutdown;
use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use cinerec_tests::{Stack, unique_name};
use common::Harness;
use review_svc::directory::RpcDirectory;

/// Users and movies seeded: ids `1..=SEEDED` exist.
const SEEDED: u64 = 20;
const SEED: u64 = 17;

fn db_args() -> DbArgs {
    DbArgs {
        database_url: Stack::from_env().database_url,
        db_pool_size: 2,
    }
}

/// user-svc, served on this test's runtime until `shutdown`.
async fn start_user_svc(
    schema: &str,
) -> anyhow::Result<(
    RpcAddrs,
    Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let store = user_svc::store::UserStore::new(
        db::connect(&db_args(), schema)
            .await
            .context("PostgreSQL from `dev/stack up`")?,
    );
    store.migrate().await?;
    let catalog = cinerec_catalog::Catalog::new(SEED, 1, SEEDED);
    user_svc::seed::seed(&store, &catalog, u64::MAX).await?;
    let (responder, metrics) = user_svc::rpc::responder(user_svc::service::users(
        store,
        1_000,
        Duration::from_secs(600),
    ))?;
    let listeners = RpcListeners::bind(RpcAddrs {
        socket: "127.0.0.1:0".parse()?,
        http: "127.0.0.1:0".parse()?,
    })
    .await?;
    let addrs = listeners.local_addrs()?;
    let shutdown = Shutdown::new();
    let task = listeners.serve(responder, metrics, shutdown.clone());
    Ok((addrs, shutdown, task))
}

/// movie-svc on its own runtime and thread; dropping it stops everything
/// it runs, open connections included.
struct MovieSvc {
    socket: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MovieSvc {
    /// Serves the movies of `schema` (seeding it when `seed`) on `socket`
    /// (port 0: a free one).
    async fn start(schema: String, socket: SocketAddr, seed: bool) -> anyhow::Result<MovieSvc> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let started = async {
                    let store = movie_svc::store::MovieStore::new(
                        db::connect(&db_args(), &schema)
                            .await
                            .context("PostgreSQL from `dev/stack up`")?,
                    );
                    store.migrate().await?;
                    if seed {
                        let catalog = cinerec_catalog::Catalog::new(SEED, SEEDED, 1);
                        movie_svc::seed::seed(&store, &catalog, u64::MAX).await?;
                    }
                    let (responder, metrics) = movie_svc::rpc::responder(
                        movie_svc::service::movies(store, 1_000, Duration::from_secs(600)),
                    )?;
                    let listeners = RpcListeners::bind(RpcAddrs {
                        socket,
                        http: "127.0.0.1:0".parse()?,
                    })
                    .await?;
                    let bound = listeners.local_addrs()?.socket;
                    // Never triggered: the runtime is dropped instead.
                    let serving = listeners.serve(responder, metrics, Shutdown::new());
                    anyhow::Ok((bound, serving))
                };
                match started.await {
                    Ok((bound, _serving)) => {
                        let _ = ready_tx.send(Ok(bound));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            // Dropping the runtime cancels the listener and every connection task.
            drop(runtime);
        });
        let socket = ready_rx.await.context("movie-svc thread died")??;
        Ok(MovieSvc {
            socket,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops it like a process exit: listeners and connections closed.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow::anyhow!("movie-svc thread panicked"))?;
        }
        Ok(())
    }
}

async fn post(
    h: &Harness,
    user_id: i64,
    movie_id: i64,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let body = serde_json::json!({"user_id": user_id, "movie_id": movie_id, "rating": 4.0, "text": "seen it"});
    let (status, _, json) = h
        .call(
            Method::POST,
            "/v1/reviews",
            Some(&h.token(&user_id.to_string(), &[])),
            &[],
            Some(body.to_string()),
        )
        .await?;
    Ok((status, json))
}

async fn reviews_of(h: &Harness, user_id: i64) -> anyhow::Result<usize> {
    let (status, _, json) = h
        .call(
            Method::GET,
            &format!("/v1/users/{user_id}/reviews"),
            None,
            &[],
            None,
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "list: {status} {json}");
    json["reviews"]
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| anyhow::anyhow!("no reviews array in {json}"))
}

#[tokio::test]
async fn reviews_are_checked_against_user_svc_and_movie_svc() -> anyhow::Result<()> {
    let (user_addrs, user_shutdown, user_task) =
        start_user_svc(&unique_name("rv_dir_users")).await?;
    let movie_schema = unique_name("rv_dir_movies");
    let movies = MovieSvc::start(movie_schema.clone(), "127.0.0.1:0".parse()?, true).await?;
    let movie_addr = movies.socket;
    let directory = RpcDirectory::new(
        user_addrs.socket.to_string(),
        movie_addr.to_string(),
        Duration::from_secs(2),
    )?;
    let h = Harness::with_directory("rv_dir", Arc::new(directory)).await?;

    // Both exist.
    let (status, json) = post(&h, 3, 5).await?;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(
        (json["user_id"].as_i64(), json["movie_id"].as_i64()),
        (Some(3), Some(5))
    );

    // Unknown movie / user: movie-svc / user-svc answered NotFound.
    let unknown_movie = SEEDED as i64 + 1;
    let (status, json) = post(&h, 3, unknown_movie).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["error"], "unknown_movie", "{json}");
    assert_eq!(
        json["reason"],
        format!("movie {unknown_movie} does not exist"),
        "{json}"
    );
    let unknown_user = SEEDED as i64 + 1;
    let (status, json) = post(&h, unknown_user, 5).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["error"], "unknown_user", "{json}");

    // movie-svc gone: 503, not "does not exist", and nothing stored.
    movies.stop().await?;
    for movie in [6, unknown_movie] {
        let (status, json) = post(&h, 4, movie).await?;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "movie {movie}: {json}"
        );
        assert_eq!(json["error"], "directory_unavailable", "{json}");
        let reason = json["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("movie-svc") && reason.contains(&movie_addr.to_string()),
            "the reason names the dependency: {reason}"
        );
    }
    assert_eq!(
        reviews_of(&h, 4).await?,
        0,
        "nothing stored while movie-svc is down"
    );
    let metrics = common::metrics_text();
    assert!(
        metrics.contains(r#"review_svc_directory_unavailable_total{dependency="movie-svc"}"#),
        "counted:\n{metrics}"
    );

    // movie-svc back on the same address (its data kept): the directory
    // reconnects on its own.
    let movies = MovieSvc::start(movie_schema, movie_addr, false).await?;
    let (status, json) = post(&h, 4, 6).await?;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "after movie-svc's restart: {json}"
    );
    assert_eq!(reviews_of(&h, 4).await?, 1);

    movies.stop().await?;
    user_shutdown.trigger();
    user_task.await??;
    h.cleanup().await
}
