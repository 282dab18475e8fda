//! loadgen against a real review-svc (its API served over TCP in this
//! process, its store in the stack's Cassandra): every creation answered is
//! a stored review, duplicates replay instead of creating, edits and deletes
//! reach the reviews they target.

use std::sync::Arc;
use std::time::Duration;

use cinerec_service_kit::telemetry;
use cinerec_tests::{Stack, unique_name};
use loadgen::driver::{self, DriverConfig};
use loadgen::workload::{Workload, WorkloadConfig};
use review_svc::api::{self, AppState};
use review_svc::auth::Authenticator;
use review_svc::config::{AuthArgs, CqlArgs};
use review_svc::directory::CatalogDirectory;
use review_svc::store::{self, ReviewStore};

const ISSUER: &str = "cinerec-test";
const AUDIENCE: &str = "review-svc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_edits_deletes_and_duplicates_land_once() {
    telemetry::init("loadgen-test", "warn", telemetry::LogFormat::Text).expect("telemetry");
    let stack = Stack::from_env();
    let cql = CqlArgs::local(stack.cql_nodes.clone(), &unique_name("loadgen"));
    let session = store::connect(&cql)
        .await
        .expect("Cassandra from `dev/stack up`");
    store::migrate(&session, &cql).await.expect("migrate");
    let store = Arc::new(ReviewStore::new(session, &cql).await.expect("store"));
    let secret = unique_name("secret");
    let state = AppState {
        store: store.clone(),
        auth: Arc::new(
            Authenticator::from_args(&AuthArgs {
                jwt_issuer: ISSUER.into(),
                jwt_audience: AUDIENCE.into(),
                jwt_hs256_secret: Some(secret.clone()),
                jwt_rs256_public_key: None,
            })
            .expect("auth"),
        ),
        directory: Arc::new(CatalogDirectory::new(500, 200)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });

    let workload = Workload::new(WorkloadConfig {
        movies: 200,
        users: 500,
        mean_rate: 400.0,
        day_length: Duration::from_secs(10),
        edit_share: 0.15,
        delete_share: 0.05,
        ..WorkloadConfig::default()
    })
    .expect("workload");
    let token = loadgen::token::admin_token(&secret, ISSUER, AUDIENCE, Duration::from_secs(600))
        .expect("token");
    let report = driver::run(
        workload,
        DriverConfig {
            api: format!("http://{addr}"),
            token,
            concurrency: 16,
            duration: Duration::from_secs(60),
            max_ops: 300,
            duplicate_share: 0.2,
            run_id: unique_name("run"),
        },
        std::future::pending(),
    )
    .await;
    eprint!("{}", report.summary());

    assert_eq!(report.failed, 0, "every operation answered");
    let statuses: Vec<u16> = report.answers.keys().map(|(_, s)| *s).collect();
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "only 2xx: {statuses:?}"
    );
    assert_eq!(
        report.answers.get(&("create", 201)).copied().unwrap_or(0),
        report.sent["create"]
    );
    assert!(
        report.sent.get("duplicate").copied().unwrap_or(0) > 0,
        "duplicates were sent"
    );
    assert_eq!(
        report
            .answers
            .get(&("duplicate", 200))
            .copied()
            .unwrap_or(0),
        report.sent.get("duplicate").copied().unwrap_or(0),
        "a duplicate replays the first answer instead of creating"
    );
    assert!(
        report.sent.get("edit").copied().unwrap_or(0) > 0
            && report.sent.get("delete").copied().unwrap_or(0) > 0
    );

    // Every created review exists once, and the user's listing holds no duplicate.
    let ids: Vec<String> = report.created.iter().flatten().cloned().collect();
    assert_eq!(ids.len() as u64, report.sent["create"]);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "one review per creation");

    // The report keeps each review's latest acknowledged version, and it is
    // what the store holds.
    assert_eq!(report.acked.len(), ids.len(), "every written review acked");
    let deletes = report.answers.get(&("delete", 200)).copied().unwrap_or(0);
    assert_eq!(
        report.acked.values().filter(|a| a.deleted).count() as u64,
        deletes,
        "each delete acknowledged a tombstone"
    );
    assert!(
        report.acked.values().any(|a| a.version > 1),
        "edits moved versions"
    );
    for (id, acked) in &report.acked {
        let id = id.parse().expect("review id");
        let stored = store.get(id).await.expect("get").expect("stored");
        assert_eq!(
            (stored.version, stored.deleted),
            (acked.version, acked.deleted),
            "{id}"
        );
    }
}
