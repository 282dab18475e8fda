//! CQL helpers every Cassandra user of cinerec (review-svc, the recommender,
//! reconcile, rollup, the tests) shares: the keyspace-name check run before a
//! keyspace name goes into a statement, and (feature `cql`) the one way to
//! open a session ([`connect`]) and whole-table reads split by token range
//! ([`scan`]).

/// Checks a keyspace name before it is spliced into CQL (keyspaces cannot be
/// bound as parameters): 1–48 of `[a-z0-9_]`, starting with a letter. That is
/// Cassandra's unquoted-identifier rule, in lowercase because unquoted names
/// are folded to lowercase: `Recs` in a statement would name keyspace `recs`.
pub fn check_keyspace(keyspace: &str) -> Result<(), String> {
    let ok = keyspace.len() <= 48
        && keyspace
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_lowercase)
        && keyspace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "keyspace name {keyspace:?} must be 1-48 of [a-z0-9_], starting with a letter"
        ))
    }
}

#[cfg(feature = "cql")]
pub use connect::{ConnectError, connect};
#[cfg(feature = "cql")]
pub use scan::{ScanError, TOKEN_SLICES, scan, token_ranges};

#[cfg(feature = "cql")]
mod connect {
    use std::time::Duration;

    use scylla::client::execution_profile::ExecutionProfile;
    use scylla::client::session::Session;
    use scylla::client::session_builder::SessionBuilder;
    use scylla::statement::Consistency;

    /// No node of the cluster answered.
    #[derive(Debug, thiserror::Error)]
    #[error("Cassandra at {nodes} unreachable: {source}")]
    pub struct ConnectError {
        /// The contact points tried, comma-separated.
        pub nodes: String,
        /// The driver's error.
        #[source]
        pub source: Box<dyn std::error::Error + Send + Sync>,
    }

    /// A session to the cluster behind `nodes` (`host:port` contact points).
    ///
    /// Every statement defaults to `LOCAL_QUORUM` (a write acknowledged at
    /// it is read back by any later `LOCAL_QUORUM` read) and, when
    /// `request_timeout` is given, fails after it instead of the driver's
    /// 30 s. Routing is the driver's default, token-aware: each statement
    /// goes to a replica of its partition key.
    pub async fn connect(
        nodes: &[String],
        request_timeout: Option<Duration>,
    ) -> Result<Session, ConnectError> {
        let mut profile = ExecutionProfile::builder().consistency(Consistency::LocalQuorum);
        if let Some(timeout) = request_timeout {
            // `None` here would mean no timeout at all, not the default.
            profile = profile.request_timeout(Some(timeout));
        }
        let profile = profile.build().into_handle();
        SessionBuilder::new()
            .known_nodes(nodes)
            .default_execution_profile_handle(profile)
            .build()
            .await
            .map_err(|e| ConnectError {
                nodes: nodes.join(","),
                source: Box::new(e),
            })
    }
}

#[cfg(feature = "cql")]
mod scan {
    use std::sync::Arc;

    use futures::{StreamExt, TryStreamExt};
    use scylla::client::session::Session;
    use scylla::deserialize::row::DeserializeRow;
    use scylla::statement::Consistency;

    /// Token ranges each table scan is split into.
    pub const TOKEN_SLICES: usize = 16;
    /// Token ranges read at the same time.
    const SCAN_CONCURRENCY: usize = 4;
    /// Rows per page of a scan.
    const PAGE_SIZE: i32 = 5_000;

    /// A whole-table read failed.
    #[derive(Debug, thiserror::Error)]
    #[error("reading {table}: {source}")]
    pub struct ScanError {
        /// `keyspace.table`.
        pub table: String,
        /// The driver's error.
        #[source]
        pub source: Box<dyn std::error::Error + Send + Sync>,
    }

    /// `n` contiguous inclusive token ranges covering every Murmur3 token.
    pub fn token_ranges(n: usize) -> Vec<(i64, i64)> {
        let n = n.max(1) as i128;
        let (lo, hi) = (i128::from(i64::MIN), i128::from(i64::MAX));
        let width = (hi - lo + 1) / n;
        (0..n)
            .map(|k| {
                let start = lo + k * width;
                let end = if k == n - 1 { hi } else { start + width - 1 };
                // Both ends lie within i64 by construction.
                (start as i64, end as i64)
            })
            .collect()
    }

    /// Every row of `ks.table` (columns `columns`, partition key `key`) at
    /// `consistency`, read as [`TOKEN_SLICES`] token ranges a few at a time:
    /// many short paged queries instead of one long one, so no coordinator
    /// holds the whole table. `ks` must have passed
    /// [`check_keyspace`](super::check_keyspace); `table`, `columns` and
    /// `key` are the caller's constants.
    pub async fn scan<T>(
        session: &Session,
        ks: &str,
        table: &str,
        columns: &str,
        key: &str,
        consistency: Consistency,
    ) -> Result<Vec<T>, ScanError>
    where
        T: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let name = format!("{ks}.{table}");
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| ScanError {
            table: name.clone(),
            source,
        };
        let mut prepared = session
            .prepare(format!(
                "SELECT {columns} FROM {ks}.{table} WHERE token({key}) >= ? AND token({key}) <= ?"
            ))
            .await
            .map_err(|e| fail(e.into()))?;
        prepared.set_consistency(consistency);
        prepared.set_page_size(PAGE_SIZE);
        prepared.set_is_idempotent(true);
        let prepared = Arc::new(prepared);
        let slices: Vec<Vec<T>> = futures::stream::iter(token_ranges(TOKEN_SLICES))
            .map(|range| {
                let prepared = prepared.clone();
                let fail = &fail;
                async move {
                    let pager = session
                        .execute_iter((*prepared).clone(), range)
                        .await
                        .map_err(|e| fail(e.into()))?;
                    pager
                        .rows_stream::<T>()
                        .map_err(|e| fail(e.into()))?
                        .try_collect::<Vec<T>>()
                        .await
                        .map_err(|e| fail(e.into()))
                }
            })
            .buffer_unordered(SCAN_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(slices.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::check_keyspace;

    #[test]
    fn accepts_unquoted_lowercase_names_only() {
        for ok in ["recommender", "review_svc", "k1", &"a".repeat(48)] {
            assert!(check_keyspace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1ks",
            "_ks",
            "Recs",
            "ks-1",
            "ks;DROP",
            "ks.t",
            "ks name",
            "ké",
            &"a".repeat(49),
        ] {
            let e = check_keyspace(bad).expect_err(bad);
            assert!(e.contains("keyspace name"), "{e}");
        }
    }

    #[cfg(feature = "cql")]
    #[test]
    fn token_ranges_cover_every_token_once() {
        for n in [1, 2, 3, 16, 17] {
            let r = super::token_ranges(n);
            assert_eq!(r.len(), n);
            assert_eq!(r[0].0, i64::MIN);
            assert_eq!(r[n - 1].1, i64::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].1.checked_add(1), Some(w[1].0), "contiguous");
            }
            assert!(r.iter().all(|(a, b)| a <= b));
        }
    }
}
