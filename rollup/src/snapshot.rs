//! Snapshots of the recommender's Cassandra tables (`recommendations_by_user`,
//! `trending_by_genre`, see the recommender's table contract): Superset has
//! no Cassandra engine, so the sink reads them every snapshot interval and
//! rolls them up into PostgreSQL.
//!
//! Both are read whole, by token range, through the serving contract's
//! readers (`cinerec-serving`): the cost grows with the users, which is why
//! the interval is a minute by default.

use std::collections::BTreeMap;

use cinerec_serving::read;
use scylla::client::session::Session;
use scylla::statement::Consistency;

/// Snapshot reads pair with the recommender's LOCAL_QUORUM writes.
const CONSISTENCY: Consistency = Consistency::LocalQuorum;

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
    /// Rows that break the serving contract (lists of unequal length, a
    /// movie twice, `from_model` outside the list, a null column the
    /// recommender always writes): left out.
    pub malformed: u64,
}

/// Connects to the cluster.
pub async fn connect(nodes: &[String]) -> anyhow::Result<Session> {
    Ok(cinerec_service_kit::cql::connect(nodes, None).await?)
}

/// Checks a keyspace name before it is spliced into CQL (service-kit's rule).
pub fn check_keyspace(keyspace: &str) -> anyhow::Result<()> {
    cinerec_service_kit::cql::check_keyspace(keyspace).map_err(anyhow::Error::msg)
}

/// Reads both tables of `keyspace`, as the serving contract's checked rows
/// ([`cinerec_serving::read`]): a row that breaks the contract is counted in
/// [`Snapshot::malformed`] and left out.
pub async fn read(session: &Session, keyspace: &str) -> anyhow::Result<Snapshot> {
    check_keyspace(keyspace)?;
    let mut snap = Snapshot::default();
    for (_user, row) in read::all_recommendations(session, keyspace, CONSISTENCY).await? {
        let Ok(row) = row else {
            snap.malformed += 1;
            continue;
        };
        snap.users += 1;
        for (movie, _score, from_model) in row.entries() {
            let entry = snap.recommended.entry(movie).or_default();
            entry.users += 1;
            snap.recommendations += 1;
            if from_model {
                entry.model_users += 1;
                snap.from_model += 1;
            }
        }
    }
    for row in read::all_trending(session, keyspace, CONSISTENCY).await? {
        let Ok(row) = row else {
            snap.malformed += 1;
            continue;
        };
        snap.trending.push(Trending {
            genre: row.genre,
            movies: row
                .movies
                .into_iter()
                .map(|(m, c)| (m, i64::from(c)))
                .collect(),
            window_start_us: row.window_start_us,
            window_end_us: row.window_end_us,
        });
    }
    snap.trending.sort_by(|a, b| a.genre.cmp(&b.genre));
    Ok(snap)
}

/// The keyspace and the serving contract's tables ([`cinerec_serving::schema`]),
/// for tests and the demo seeder that stand in for the recommender.
pub fn contract_ddl(keyspace: &str) -> anyhow::Result<Vec<String>> {
    check_keyspace(keyspace)?;
    let mut ddl = vec![format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )];
    ddl.extend(cinerec_serving::schema::tables(keyspace).map_err(anyhow::Error::msg)?);
    Ok(ddl)
}
