//! The tables' DDL and the writes' CQL. Every function takes a keyspace
//! name that has passed [`check_keyspace`] (keyspaces cannot be bound as
//! parameters) and refuses any other.

use cinerec_service_kit::cql::check_keyspace;

/// A user's recommendations.
pub const RECOMMENDATIONS: &str = "recommendations_by_user";
/// A movie's nearest neighbours.
pub const SIMILAR_MOVIES: &str = "similar_movies";
/// A genre's trending movies.
pub const TRENDING: &str = "trending_by_genre";

/// The `CREATE TABLE IF NOT EXISTS` of each serving table, in `ks`
/// (which must exist).
pub fn tables(ks: &str) -> Result<[String; 3], String> {
    check_keyspace(ks)?;
    Ok([
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{RECOMMENDATIONS} (user_id bigint PRIMARY KEY, \
             movie_ids list<bigint>, scores list<double>, from_model int, computed_at bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{SIMILAR_MOVIES} (movie_id bigint PRIMARY KEY, \
             movie_ids list<bigint>, scores list<double>, computed_at bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{TRENDING} (genre text PRIMARY KEY, \
             movie_ids list<bigint>, counts list<int>, window_start bigint, window_end bigint, \
             computed_at bigint)"
        ),
    ])
}

/// The writes, each a whole row at a client-side timestamp (the last bound
/// value), so replaying one is harmless and a later value wins whatever
/// order writes land in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserts {
    /// Binds `(user_id, movie_ids, scores, from_model, computed_at, timestamp)`.
    pub recommendations: String,
    /// Binds `(movie_id, movie_ids, scores, computed_at, timestamp)`.
    pub similar_movies: String,
    /// Binds `(genre, movie_ids, counts, window_start, window_end, computed_at, timestamp)`.
    pub trending: String,
}

/// The [`Inserts`] into `ks`.
pub fn inserts(ks: &str) -> Result<Inserts, String> {
    check_keyspace(ks)?;
    Ok(Inserts {
        recommendations: format!(
            "INSERT INTO {ks}.{RECOMMENDATIONS} (user_id, movie_ids, scores, from_model, \
             computed_at) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        ),
        similar_movies: format!(
            "INSERT INTO {ks}.{SIMILAR_MOVIES} (movie_id, movie_ids, scores, computed_at) \
             VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        ),
        trending: format!(
            "INSERT INTO {ks}.{TRENDING} (genre, movie_ids, counts, window_start, \
             window_end, computed_at) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_names_the_keyspace_and_refuses_bad_names() {
        let ddl = tables("recs").map_err(|e| e.to_string());
        assert!(ddl.is_ok_and(|t| t.iter().all(|s| s.contains(" recs."))));
        let ins = inserts("recs").map_err(|e| e.to_string());
        assert!(ins.is_ok_and(|i| {
            [i.recommendations, i.similar_movies, i.trending]
                .iter()
                .all(|s| s.starts_with("INSERT INTO recs.") && s.ends_with("USING TIMESTAMP ?"))
        }));
        for bad in ["", "Recs", "a;DROP TABLE x", "a.b"] {
            assert!(tables(bad).is_err(), "{bad}");
            assert!(inserts(bad).is_err(), "{bad}");
        }
    }
}
