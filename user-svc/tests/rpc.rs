//! UserService over real Avro RPC (socket and HTTP) against the stack's
//! PostgreSQL: get, multi-get with missing ids, declared errors, upsert with
//! validation and cache invalidation.

use std::time::Duration;

use avro_rpc::codegen::CallError;
use avro_rpc::transport::http::HttpTransport;
use avro_rpc::transport::socket::SocketTransport;
use cinerec_events::Tier;
use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use cinerec_service_kit::{Shutdown, telemetry};
use cinerec_tests::{Stack, unique_name};
use user_svc::rpc::proto::{GetUserError, GetUsersError, UpsertUserError, UserServiceClient};
use user_svc::service;
use user_svc::store::UserStore;

const SEED: u64 = 31;

async fn start(
    users: u64,
) -> (
    RpcAddrs,
    Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    telemetry::init("user-svc-test", "warn", telemetry::LogFormat::Text).expect("telemetry");
    let args = DbArgs {
        database_url: Stack::from_env().database_url,
        db_pool_size: 4,
    };
    let pool = db::connect(&args, &unique_name("user_rpc"))
        .await
        .expect("PostgreSQL from `dev/stack up`");
    let store = UserStore::new(pool);
    store.migrate().await.expect("migrate");
    let catalog = cinerec_catalog::Catalog::new(SEED, 1, users);
    user_svc::seed::seed(&store, &catalog, u64::MAX)
        .await
        .expect("seed");
    let (responder, metrics) =
        user_svc::rpc::responder(service::users(store, 1_000, Duration::from_secs(600)))
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
    (addrs, shutdown, task)
}

#[tokio::test]
async fn get_multi_get_and_errors_over_both_transports() {
    let (addrs, shutdown, task) = start(50).await;
    let catalog = cinerec_catalog::Catalog::new(SEED, 1, 50);
    let socket = UserServiceClient::new(
        SocketTransport::connect(addrs.socket)
            .await
            .expect("connect"),
    )
    .expect("client");
    let http = UserServiceClient::new(
        HttpTransport::new(&format!("http://{}/", addrs.http)).expect("uri"),
    )
    .expect("client");
    for client in [socket, http] {
        let u = client.get_user(9).await.expect("getUser");
        let expected = catalog.user(9);
        assert_eq!(u.display_name, expected.display_name);
        assert_eq!(
            (u.country.as_str(), u.zone.as_str()),
            (expected.country.as_str(), expected.zone.as_str())
        );
        assert_eq!(u.signup_date, expected.signup_date);
        assert_eq!(u.preferred_genres, expected.preferred_genres);
        assert_eq!(u.tier, expected.tier);

        let batch = client
            .get_users(vec![50, 51, 3, 50])
            .await
            .expect("getUsers");
        assert_eq!(
            batch.users.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![50, 3]
        );
        assert_eq!(batch.missing, vec![51]);

        match client.get_user(51).await {
            Err(CallError::Declared(GetUserError::NotFound(e))) => assert_eq!(e.id, 51),
            other => panic!("expected NotFound, got {other:?}"),
        }
        match client.get_users(vec![-4]).await {
            Err(CallError::Declared(GetUsersError::InvalidArgument(e))) => {
                assert!(e.reason.contains("-4"), "{}", e.reason)
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    shutdown.trigger();
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn upsert_validates_and_invalidates_the_cache() {
    let (addrs, shutdown, task) = start(5).await;
    let client = UserServiceClient::new(
        SocketTransport::connect(addrs.socket)
            .await
            .expect("connect"),
    )
    .expect("client");
    let mut user = client.get_user(2).await.expect("cached now");

    let mut bad = user.clone();
    bad.country = "Narnia".to_owned();
    match client.upsert_user(bad).await {
        Err(CallError::Declared(UpsertUserError::InvalidArgument(e))) => {
            assert!(e.reason.contains("Narnia"), "{}", e.reason)
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    user.display_name = "Renamed Person".to_owned();
    user.tier = Tier::Premium;
    let stored = client.upsert_user(user).await.expect("upsertUser");
    assert_eq!(stored.tier, Tier::Premium);
    let again = client.get_user(2).await.expect("getUser");
    assert_eq!(
        again.display_name, "Renamed Person",
        "the write invalidated the cached copy"
    );
    shutdown.trigger();
    task.await.expect("join").expect("clean stop");
}
