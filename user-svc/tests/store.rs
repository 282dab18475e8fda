//! user-svc's store on the stack's PostgreSQL: migrations are idempotent,
//! seeding is idempotent and deterministic, dates and tiers round-trip,
//! multi-get reports what exists. (A bad tier cannot be written: `tier` is
//! the typed `Tier`, and the table's CHECK guards other writers.)

use cinerec_service_kit::db::{self, DbArgs};
use cinerec_tests::{Stack, unique_name};
use user_svc::store::{User, UserStore};

async fn store() -> UserStore {
    let args = DbArgs {
        database_url: Stack::from_env().database_url,
        db_pool_size: 4,
    };
    let pool = db::connect(&args, &unique_name("user_svc_test"))
        .await
        .expect("PostgreSQL from `dev/stack up`");
    let store = UserStore::new(pool);
    store.migrate().await.expect("first migration");
    store.migrate().await.expect("migrations are idempotent");
    store
}

#[tokio::test]
async fn seed_get_and_multi_get() {
    let store = store().await;
    let catalog = cinerec_catalog::Catalog::new(11, 1, 3_000);
    assert_eq!(
        user_svc::seed::seed(&store, &catalog, 1_000)
            .await
            .expect("seed"),
        3_000
    );
    user_svc::seed::seed(&store, &catalog, 1_000)
        .await
        .expect("reseed");
    assert_eq!(store.count().await.expect("count"), 3_000);

    let got = store.get(77).await.expect("get").expect("user 77 exists");
    let expected = user_svc::seed::user_row(&catalog, 77);
    assert_eq!(
        User {
            updated_at: 0,
            ..got.clone()
        },
        expected,
        "every field round-trips, the sign-up date included"
    );
    assert!(got.updated_at > 1_700_000_000_000);
    assert!(store.get(3_001).await.expect("get").is_none());

    let mut found: Vec<i64> = store
        .get_many(&[3_000, 1, 5_000, 0])
        .await
        .expect("multi-get")
        .iter()
        .map(|u| u.id)
        .collect();
    found.sort();
    assert_eq!(found, vec![1, 3_000]);
}
