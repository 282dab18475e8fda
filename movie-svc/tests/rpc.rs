//! MovieService over real Avro RPC (socket and HTTP transports) against the
//! stack's PostgreSQL: get, multi-get with missing ids, declared errors, the
//! metrics the admin port shows, a graceful stop, and a restart that keeps
//! the data.

use std::time::Duration;

use avro_rpc::codegen::CallError;
use avro_rpc::transport::http::HttpTransport;
use avro_rpc::transport::socket::SocketTransport;
use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use cinerec_service_kit::{Shutdown, telemetry};
use cinerec_tests::{Stack, unique_name};
use movie_svc::rpc::proto::{GetMovieError, GetMoviesError, MovieServiceClient};
use movie_svc::service::movies;
use movie_svc::store::MovieStore;

struct Running {
    addrs: RpcAddrs,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(schema: &str, seed_movies: u64) -> Running {
    telemetry::init("movie-svc-test", "warn", telemetry::LogFormat::Text).expect("telemetry");
    let args = DbArgs {
        database_url: Stack::from_env().database_url,
        db_pool_size: 4,
    };
    let store = MovieStore::new(
        db::connect(&args, schema)
            .await
            .expect("PostgreSQL from `dev/stack up`"),
    );
    store.migrate().await.expect("migrate");
    if seed_movies > 0 {
        let catalog = cinerec_catalog::Catalog::new(21, seed_movies, 1);
        movie_svc::seed::seed(&store, &catalog, u64::MAX)
            .await
            .expect("seed");
    }
    let (responder, metrics) =
        movie_svc::rpc::responder(movies(store, 1_000, Duration::from_secs(30)))
            .expect("responder");
    let listeners = RpcListeners::bind(RpcAddrs {
        socket: "127.0.0.1:0".parse().unwrap(),
        http: "127.0.0.1:0".parse().unwrap(),
    })
    .await
    .expect("bind");
    let addrs = listeners.local_addrs().expect("addrs");
    let shutdown = Shutdown::new();
    let task = listeners.serve(responder, metrics, shutdown.clone());
    Running {
        addrs,
        shutdown,
        task,
    }
}

async fn socket_client(addrs: RpcAddrs) -> MovieServiceClient {
    MovieServiceClient::new(
        SocketTransport::connect(addrs.socket)
            .await
            .expect("connect"),
    )
    .expect("client")
}

fn http_client(addrs: RpcAddrs) -> MovieServiceClient {
    MovieServiceClient::new(HttpTransport::new(&format!("http://{}/", addrs.http)).expect("uri"))
        .expect("client")
}

#[tokio::test]
async fn get_and_multi_get_over_both_transports() {
    let server = start(&unique_name("movie_rpc"), 200).await;
    let catalog = cinerec_catalog::Catalog::new(21, 200, 1);
    for client in [socket_client(server.addrs).await, http_client(server.addrs)] {
        let m = client.get_movie(42).await.expect("getMovie");
        let expected = catalog.movie(42);
        assert_eq!(
            (m.id, m.title.as_str(), m.year),
            (42, expected.title.as_str(), expected.year)
        );
        assert_eq!(m.genres, expected.genres);
        assert!(m.updated_at > 0);

        let batch = client
            .get_movies(vec![5, 999, 5, 200, 1])
            .await
            .expect("getMovies");
        let ids: Vec<i64> = batch.movies.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![5, 200, 1]);
        assert_eq!(batch.missing, vec![999]);
    }
    server.shutdown.trigger();
    server.task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn declared_errors_reach_the_client() {
    let server = start(&unique_name("movie_rpc"), 10).await;
    let client = socket_client(server.addrs).await;
    match client.get_movie(11).await {
        Err(CallError::Declared(GetMovieError::NotFound(e))) => assert_eq!(e.id, 11),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match client.get_movie(0).await {
        Err(CallError::Declared(GetMovieError::InvalidArgument(e))) => {
            assert!(e.reason.contains("not positive"), "{}", e.reason)
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match client.get_movies((1..=1_001).collect()).await {
        Err(CallError::Declared(GetMoviesError::InvalidArgument(e))) => {
            assert!(e.reason.contains("at most 1000"), "{}", e.reason)
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // The connection survives declared errors.
    assert_eq!(client.get_movie(1).await.expect("still serving").id, 1);

    let metrics = cinerec_service_kit::telemetry::metrics_handle().render();
    assert!(
        metrics.contains(r#"cinerec_rpc_server_requests_total{service="movie-svc",message="getMovie",outcome="declared_error"}"#),
        "declared errors are counted per message:\n{metrics}"
    );
    server.shutdown.trigger();
    server.task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn upsert_then_restart_keeps_the_data() {
    let schema = unique_name("movie_rpc");
    let server = start(&schema, 0).await;
    let client = http_client(server.addrs);
    let catalog = cinerec_catalog::Catalog::new(21, 3, 1);
    let m = catalog.movie(3);
    let stored = client
        .upsert_movie(movie_svc::rpc::proto::Movie {
            id: 3,
            title: m.title.clone(),
            year: m.year,
            genres: m.genres.clone(),
            runtime_minutes: m.runtime_minutes,
            popularity: m.popularity,
            updated_at: 0,
        })
        .await
        .expect("upsertMovie");
    assert!(stored.updated_at > 0, "the server sets updated_at");
    server.shutdown.trigger();
    server.task.await.expect("join").expect("clean stop");

    let again = start(&schema, 0).await;
    let got = socket_client(again.addrs)
        .await
        .get_movie(3)
        .await
        .expect("after restart");
    assert_eq!(got.title, m.title);
    again.shutdown.trigger();
    again.task.await.expect("join").expect("clean stop");
}
