//! movie-svc's behaviour over the real store: multi-get keeps request order,
//! drops duplicates and lists missing ids; bad input is InvalidArgument; the
//! read-through cache serves repeat reads and an upsert invalidates it.

use std::time::Duration;

use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::metadata::MetadataError;
use cinerec_tests::{Stack, unique_name};
use movie_svc::service::{Movies, movies as movies_over};
use movie_svc::store::MovieStore;

async fn movies(count: u64) -> (Movies, cinerec_catalog::Catalog) {
    let args = DbArgs {
        database_url: Stack::from_env().database_url,
        db_pool_size: 4,
    };
    let pool = db::connect(&args, &unique_name("movie_svc_test"))
        .await
        .expect("PostgreSQL from `dev/stack up`");
    let store = MovieStore::new(pool);
    store.migrate().await.expect("migrate");
    let catalog = cinerec_catalog::Catalog::new(5, count, 1);
    movie_svc::seed::seed(&store, &catalog, u64::MAX)
        .await
        .expect("seed");
    (movies_over(store, 1_000, Duration::from_secs(600)), catalog)
}

#[tokio::test]
async fn multi_get_orders_dedupes_and_reports_missing() {
    let (movies, _) = movies(100).await;
    let batch = movies
        .get_many(&[7, 500, 3, 7, 100, 101])
        .await
        .expect("multi-get");
    let ids: Vec<i64> = batch.found.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![7, 3, 100]);
    assert_eq!(batch.missing, vec![500, 101]);
    assert!(movies.get_many(&[]).await.expect("empty").found.is_empty());
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_unknown_is_not_found() {
    let (movies, catalog) = movies(10).await;
    assert!(matches!(
        movies.get(0).await,
        Err(MetadataError::InvalidArgument(_))
    ));
    assert!(matches!(
        movies.get(-5).await,
        Err(MetadataError::InvalidArgument(_))
    ));
    assert!(matches!(
        movies.get(11).await,
        Err(MetadataError::NotFound(_, 11))
    ));
    let too_many: Vec<i64> = (1..=1001).collect();
    match movies.get_many(&too_many).await {
        Err(MetadataError::InvalidArgument(reason)) => assert!(reason.contains("1001"), "{reason}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let mut bad = movie_svc::seed::movie_row(&catalog, 1);
    bad.popularity = f64::NAN;
    assert!(matches!(
        movies.upsert(bad).await,
        Err(MetadataError::InvalidArgument(_))
    ));
    let mut bad = movie_svc::seed::movie_row(&catalog, 1);
    bad.genres.clear();
    assert!(matches!(
        movies.upsert(bad).await,
        Err(MetadataError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn repeat_reads_come_from_the_cache_and_upsert_invalidates() {
    let (movies, catalog) = movies(10).await;
    let first = movies.get(4).await.expect("get");

    // Change the row behind the cache's back: a cached read still sees the old
    // title, which proves the second read did not reach the database.
    let mut changed = movie_svc::seed::movie_row(&catalog, 4);
    changed.title = "Changed Behind The Cache".to_owned();
    movies
        .table()
        .upsert(std::slice::from_ref(&changed))
        .await
        .expect("direct write");
    assert_eq!(movies.get(4).await.expect("get").title, first.title);

    // A write through the service invalidates: the writer reads its own write.
    changed.title = "Written Through The Service".to_owned();
    let stored = movies.upsert(changed).await.expect("upsert");
    assert_eq!(stored.title, "Written Through The Service");
    assert_eq!(
        movies.get(4).await.expect("get").title,
        "Written Through The Service"
    );

    // Absent ids are cached as absent until a write creates them.
    assert!(matches!(
        movies.get(10_000).await,
        Err(MetadataError::NotFound(..))
    ));
    let mut new = movie_svc::seed::movie_row(&catalog, 1);
    new.id = 10_000;
    movies.upsert(new).await.expect("create");
    assert_eq!(movies.get(10_000).await.expect("now exists").id, 10_000);
}
