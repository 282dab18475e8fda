//! Snapshots of the recommender's Cassandra tables (`recommendations_by_user`,
//! `trending_by_genre`, see the recommender's table contract): Superset has
//! no Cassandra engine, so the sink reads them every snapshot interval and
//! rolls them up into PostgreSQL.
//!
//! `recommendations_by_user` is read with a paged full scan: its cost grows
//! with the users, which is why the interval is a minute by default.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// Per movie: in how many users' lists it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recommended {
    /// Users whose list holds the movie.
    pub users: i64,
    /// Of those, users whose model part (the first `from_model`) holds it.
    pub model_users: i64,
}

/// One genre's trending ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Trending {
    /// The genre.
    pub genre: String,
    /// (movie, reviews in the window), best first.
    pub movies: Vec<(i64, i64)>,
    /// Window start, µs of event time.
    pub window_start_us: i64,
    /// Window end, µs of event time.
    pub window_end_us: i64,
}

/// What one snapshot read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per movie.
    pub recommended: BTreeMap<i64, Recommended>,
    /// Users with a recommendations row.
    pub users: u64,
    /// List entries over all users.
    pub recommendations: u64,
    /// Of those, from the model.
    pub from_model: u64,
    /// Per genre.
    pub trending: Vec<Trending>,
    /// Rows whose lists disagree in length (read up to the shorter).
    pub malformed: u64,
}

type RecRow = (i64, Option<Vec<i64>>, Option<i32>);
type TrendRow = (
    String,
    Option<Vec<i64>>,
    Option<Vec<i32>>,
    Option<i64>,
    Option<i64>,
);

/// Connects to the cluster.
pub async fn connect(nodes: &[String]) -> anyhow::Result<Session> {
    SessionBuilder::new()
        .known_nodes(nodes)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("Cassandra at {} unreachable: {e}", nodes.join(",")))
}

/// Checks a keyspace name before it is spliced into CQL (service-kit's rule).
pub fn check_keyspace(keyspace: &str) -> anyhow::Result<()> {
    cinerec_service_kit::cql::check_keyspace(keyspace).map_err(anyhow::Error::msg)
}

/// Reads both tables of `keyspace`.
pub async fn read(session: &Session, keyspace: &str) -> anyhow::Result<Snapshot> {
    check_keyspace(keyspace)?;
    let mut snap = Snapshot::default();
    let mut rows = session
        .query_iter(
            format!(
                "SELECT user_id, movie_ids, from_model FROM {keyspace}.recommendations_by_user"
            ),
            (),
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading {keyspace}.recommendations_by_user: {e}"))?
        .rows_stream::<RecRow>()?;
    while let Some((_user, movies, from_model)) = rows.try_next().await? {
        let movies = movies.unwrap_or_default();
        let from_model = usize::try_from(from_model.unwrap_or(0)).unwrap_or(0);
        if from_model > movies.len() {
            snap.malformed += 1;
        }
        snap.users += 1;
        for (i, movie) in movies.iter().enumerate() {
            let entry = snap.recommended.entry(*movie).or_default();
            entry.users += 1;
            snap.recommendations += 1;
            if i < from_model {
                entry.model_users += 1;
                snap.from_model += 1;
            }
        }
    }
    let mut rows = session
        .query_iter(
            format!(
                "SELECT genre, movie_ids, counts, window_start, window_end FROM {keyspace}.trending_by_genre"
            ),
            (),
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading {keyspace}.trending_by_genre: {e}"))?
        .rows_stream::<TrendRow>()?;
    while let Some((genre, movies, counts, start, end)) = rows.try_next().await? {
        let (movies, counts) = (movies.unwrap_or_default(), counts.unwrap_or_default());
        if movies.len() != counts.len() {
            snap.malformed += 1;
        }
        snap.trending.push(Trending {
            genre,
            movies: movies
                .into_iter()
                .zip(counts)
                .map(|(m, c)| (m, i64::from(c)))
                .collect(),
            window_start_us: start.unwrap_or(0),
            window_end_us: end.unwrap_or(0),
        });
    }
    snap.trending.sort_by(|a, b| a.genre.cmp(&b.genre));
    Ok(snap)
}

/// The contract's DDL of the two tables this sink reads, for tests and the
/// demo seeder that stand in for the recommender.
pub fn contract_ddl(keyspace: &str) -> anyhow::Result<[String; 3]> {
    check_keyspace(keyspace)?;
    Ok([
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.recommendations_by_user (user_id bigint PRIMARY KEY, \
             movie_ids list<bigint>, scores list<double>, from_model int, computed_at bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.trending_by_genre (genre text PRIMARY KEY, \
             movie_ids list<bigint>, counts list<int>, window_start bigint, window_end bigint, \
             computed_at bigint)"
        ),
    ])
}
