//! Loads the synthetic user base (`cinerec-catalog`) into the store: same
//! seed, same users, so re-running is idempotent and the load generator's
//! activity and taste model matches what is stored.

use cinerec_catalog::Catalog;
use cinerec_service_kit::db::load_in_batches;

use crate::store::{INSERT_BATCH, StoreError, User, UserStore};

/// The catalogue's user `id` as a store row: the one place the generated
/// world's user (with its activity and tastes) becomes the stored one.
pub fn user_row(catalog: &Catalog, id: i64) -> User {
    let u = catalog.user(id);
    User {
        id: u.id,
        display_name: u.display_name,
        country: u.country,
        zone: u.zone,
        signup_date: u.signup_date,
        preferred_genres: u.preferred_genres,
        tier: u.tier,
        updated_at: 0,
    }
}

/// Upserts users `1..=catalog.users()`, printing progress every
/// `progress_every` rows. Returns the rows written.
pub async fn seed(
    store: &UserStore,
    catalog: &Catalog,
    progress_every: u64,
) -> Result<u64, StoreError> {
    load_in_batches(
        "users",
        catalog.users(),
        INSERT_BATCH,
        progress_every,
        |id| user_row(catalog, id),
        |rows| async move { store.upsert(&rows).await },
    )
    .await
}
