//! "Does this user / movie exist?" — asked before a review is accepted.
//!
//! In the final design the answer comes from user-svc and movie-svc over
//! Avro RPC (`getUsers`/`getMovies` in `protocols/user.avpr` and
//! `protocols/movie.avpr`). Their typed clients come from the `avro-rpc-build`
//! code generator, which is not ready yet.
//!
//! **Seam for the Avro RPC client:** an `AvroRpcDirectory` implementing
//! [`Directory`] over those generated clients plugs in here, selected by a
//! new [`crate::config::DirectoryKind`] variant in [`from_args`]. Until then
//! the service uses [`CatalogDirectory`]: the seeded synthetic catalogue the
//! metadata services load (ids `1..=N` exist), which gives the same answers
//! as user-svc/movie-svc after their `seed`.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::config::{DirectoryArgs, DirectoryKind};

/// The directory could not answer (a dependency is down): the request fails
/// with 503, never "does not exist".
#[derive(Debug, thiserror::Error)]
#[error("directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// Existence checks of users and movies.
pub trait Directory: Send + Sync + std::fmt::Debug + 'static {
    /// Whether user `id` exists.
    fn user_exists(&self, id: i64) -> BoxFuture<'_, Result<bool, DirectoryError>>;
    /// Whether movie `id` exists.
    fn movie_exists(&self, id: i64) -> BoxFuture<'_, Result<bool, DirectoryError>>;
}

/// The seeded catalogue: users `1..=users` and movies `1..=movies` exist.
#[derive(Debug, Clone, Copy)]
pub struct CatalogDirectory {
    users: u64,
    movies: u64,
}

impl CatalogDirectory {
    /// A catalogue of `users` users and `movies` movies (as seeded).
    pub fn new(users: u64, movies: u64) -> CatalogDirectory {
        CatalogDirectory { users, movies }
    }
}

fn in_range(id: i64, n: u64) -> bool {
    id >= 1 && (id as u64) <= n
}

impl Directory for CatalogDirectory {
    fn user_exists(&self, id: i64) -> BoxFuture<'_, Result<bool, DirectoryError>> {
        futures::future::ready(Ok(in_range(id, self.users))).boxed()
    }
    fn movie_exists(&self, id: i64) -> BoxFuture<'_, Result<bool, DirectoryError>> {
        futures::future::ready(Ok(in_range(id, self.movies))).boxed()
    }
}

/// An explicit set of ids, for unit tests.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDirectory {
    /// Existing users.
    pub users: HashSet<i64>,
    /// Existing movies.
    pub movies: HashSet<i64>,
}

impl Directory for InMemoryDirectory {
    fn user_exists(&self, id: i64) -> BoxFuture<'_, Result<bool, DirectoryError>> {
        futures::future::ready(Ok(self.users.contains(&id))).boxed()
    }
    fn movie_exists(&self, id: i64) -> BoxFuture<'_, Result<bool, DirectoryError>> {
        futures::future::ready(Ok(self.movies.contains(&id))).boxed()
    }
}

/// The directory `args` select.
pub fn from_args(args: &DirectoryArgs) -> Arc<dyn Directory> {
    match args.directory {
        DirectoryKind::Catalog => Arc::new(CatalogDirectory::new(
            args.catalog_users,
            args.catalog_movies,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catalogue_ids_start_at_one() {
        let d = CatalogDirectory::new(10, 5);
        assert!(d.user_exists(1).await.is_ok_and(|e| e));
        assert!(d.user_exists(10).await.is_ok_and(|e| e));
        assert!(d.user_exists(11).await.is_ok_and(|e| !e));
        assert!(d.movie_exists(0).await.is_ok_and(|e| !e));
        assert!(d.movie_exists(6).await.is_ok_and(|e| !e));
    }

    #[tokio::test]
    async fn in_memory_answers_from_its_sets() {
        let d = InMemoryDirectory {
            users: [3].into(),
            movies: [9].into(),
        };
        assert!(d.user_exists(3).await.is_ok_and(|e| e));
        assert!(d.movie_exists(3).await.is_ok_and(|e| !e));
    }
}
