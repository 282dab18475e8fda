//! Loads the synthetic catalogue (`cinerec-catalog`) into the store: same seed,
//! same movies, so re-running is idempotent (rows are upserted) and the load
//! generator's popularity model matches what is stored.

use cinerec_catalog::Catalog;
use cinerec_service_kit::db::load_in_batches;

use crate::store::{INSERT_BATCH, Movie, MovieStore, StoreError};

/// The catalogue's movie `id` as a store row.
pub fn movie_row(catalog: &Catalog, id: i64) -> Movie {
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

/// Upserts movies `1..=catalog.movies()`, printing progress every
/// `progress_every` rows. Returns the rows written.
pub async fn seed(
    store: &MovieStore,
    catalog: &Catalog,
    progress_every: u64,
) -> Result<u64, StoreError> {
    load_in_batches(
        "movies",
        catalog.movies(),
        INSERT_BATCH,
        progress_every,
        |id| movie_row(catalog, id),
        |rows| async move { store.upsert(&rows).await },
    )
    .await
}
