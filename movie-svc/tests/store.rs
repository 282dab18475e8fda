//! movie-svc's store on the stack's PostgreSQL: migrations are idempotent,
//! seeding is idempotent and deterministic, multi-get reports what exists.

use cinerec_service_kit::db::{self, DbArgs};
use cinerec_tests::{Stack, unique_name};
use movie_svc::store::MovieStore;

async fn store(schema: &str) -> MovieStore {
    let args = DbArgs {
        database_url: Stack::from_env().database_url,
        db_pool_size: 4,
    };
    let pool = db::connect(&args, schema)
        .await
        .expect("PostgreSQL from `dev/stack up`");
    MovieStore::new(pool)
}

#[tokio::test]
async fn migrate_seed_get_and_multi_get() {
    let schema = unique_name("movie_svc_test");
    let store = store(&schema).await;
    store.migrate().await.expect("first migration");
    store.migrate().await.expect("migrations are idempotent");

    let catalog = cinerec_catalog::Catalog::new(11, 2_500, 1);
    let written = movie_svc::seed::seed(&store, &catalog, 1_000)
        .await
        .expect("seed");
    assert_eq!(written, 2_500);
    // Seeding again upserts the same rows: nothing doubles.
    movie_svc::seed::seed(&store, &catalog, 1_000)
        .await
        .expect("reseed");
    assert_eq!(store.count().await.expect("count"), 2_500);

    let m = store.get(42).await.expect("get").expect("movie 42 exists");
    let expected = movie_svc::seed::movie_row(&catalog, 42);
    assert_eq!(
        (m.id, &m.title, m.year, &m.genres, m.runtime_minutes),
        (
            42,
            &expected.title,
            expected.year,
            &expected.genres,
            expected.runtime_minutes
        )
    );
    assert!((m.popularity - expected.popularity).abs() < 1e-12);
    assert!(
        m.updated_at_ms > 1_700_000_000_000,
        "the database sets updated_at"
    );
    assert!(store.get(2_501).await.expect("get").is_none());

    let mut found = store
        .get_many(&[1, 2_500, 9_999, 17, -3])
        .await
        .expect("multi-get");
    found.sort_by_key(|m| m.id);
    assert_eq!(
        found.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![1, 17, 2_500]
    );
}

#[tokio::test]
async fn upsert_replaces_and_bumps_updated_at() {
    let schema = unique_name("movie_svc_test");
    let store = store(&schema).await;
    store.migrate().await.expect("migrate");
    let catalog = cinerec_catalog::Catalog::new(3, 10, 1);
    let mut m = movie_svc::seed::movie_row(&catalog, 5);
    store
        .upsert(std::slice::from_ref(&m))
        .await
        .expect("insert");
    let first = store.get(5).await.expect("get").expect("stored");

    m.title = "A New Title".to_owned();
    m.genres = vec!["Western".to_owned()];
    store
        .upsert(std::slice::from_ref(&m))
        .await
        .expect("replace");
    let second = store.get(5).await.expect("get").expect("stored");
    assert_eq!(second.title, "A New Title");
    assert_eq!(second.genres, vec!["Western".to_owned()]);
    assert!(second.updated_at_ms >= first.updated_at_ms);
    assert_eq!(store.count().await.expect("count"), 1);
}
