//! Loads the synthetic catalogue (`cinerec-catalog`) into the store: same seed,
//! same movies, so re-running is idempotent (rows are upserted) and the load
//! generator's popularity model matches what is stored.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};

use crate::store::{INSERT_BATCH, Movie, MovieStore, StoreError};

/// Statements in flight while seeding: enough to keep the database busy
/// while the next batch is generated, few enough to leave it room.
const CONCURRENT_BATCHES: usize = 4;

/// The catalogue's movie `id` as a store row.
pub fn movie_row(catalog: &cinerec_catalog::Catalog, id: i64) -> Movie {
    let m = catalog.movie(id);
    Movie {
        id: m.id,
        title: m.title,
        year: m.year,
        genres: m.genres,
        runtime_minutes: m.runtime_minutes,
        popularity: m.popularity,
        updated_at_ms: 0,
    }
}

/// Upserts movies `1..=catalog.movies()`, printing progress to stderr every
/// `progress_every` rows. Returns the rows written.
pub async fn seed(
    store: &MovieStore,
    catalog: &cinerec_catalog::Catalog,
    progress_every: u64,
) -> Result<u64, StoreError> {
    let total = catalog.movies();
    let started = Instant::now();
    let batches = (1..=total as i64)
        .collect::<Vec<_>>()
        .chunks(INSERT_BATCH)
        .map(|ids| ids.to_vec())
        .collect::<Vec<_>>();
    let mut written = 0_u64;
    let mut next_report = progress_every;
    let mut results = stream::iter(batches)
        .map(|ids| async move {
            let rows: Vec<Movie> = ids.iter().map(|&id| movie_row(catalog, id)).collect();
            store.upsert(&rows).await
        })
        .buffer_unordered(CONCURRENT_BATCHES);
    while let Some(n) = results.try_next().await? {
        written += n;
        if written >= next_report || written == total {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "movies: {written}/{total} ({:.0} rows/s)",
                written as f64 / secs.max(1e-9)
            );
            next_report += progress_every;
        }
    }
    Ok(written)
}
