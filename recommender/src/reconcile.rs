//! The reconcile command (DESIGN.md §5, "exactly-once effect"; issue 7
//! point 4): recompute likes, `N`, `C` and every user's top-20 in batch from
//! the latest acknowledged reviews in review-svc's tables, and diff them
//! against what the recommender wrote.
//!
//! # What counts as a review's latest state
//!
//! review-svc keeps every version in `reviews` and a per-review head in
//! `review_heads` whose `committed` cell names the last version whose write
//! batch landed (the version counter `version` may be one ahead: reserved by
//! a writer that has not committed, or died). Only versions up to
//! `committed` were acknowledged, so the latest state of a review is its
//! `reviews` row with the highest `version ≤ committed`; a review whose head
//! has no `committed` (a create still in flight, or abandoned) does not
//! exist yet.
//!
//! # What is compared
//!
//! * the recommender's durable state — its changelog topic, read in full
//!   into a [`Model`] exactly as an instance restores it — against
//!   [`model::batch`] of those states, through [`model::diff`] (likes, `N`,
//!   `C`): what any instance restarted now would hold;
//! * for every user with expected likes or with a row, the model prefix
//!   (`from_model` entries) of `recommendations_by_user` against
//!   [`oracle::recommend_all`] of the states — an independent batch
//!   recomputation that shares no scoring code with [`Model::recommend`], so
//!   a scoring bug in the model cannot reconcile clean: the same
//!   movies in the same order with scores equal within [`SCORE_TOLERANCE`]
//!   (relative), where movies whose true scores are that close may appear in
//!   either order (summation order differs across processes). The trending
//!   top-up after the prefix is not compared.
//!
//! Tables are read whole, each split into [`TOKEN_SLICES`] token ranges read
//! a few at a time, so a scan is many short paged queries instead of one
//! long one, and no coordinator holds the whole table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;

use cinerec_service_kit::cql::check_keyspace;
use cinerec_service_kit::defaults::{DEFAULT_BROKERS, DEFAULT_CQL_NODES};
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::statement::Consistency;
use uuid::Uuid;

use crate::model::{self, Model, ModelState, MovieId, ReviewState, TOP_N, UserId};
use crate::oracle;

/// review-svc's keyspace (its own default).
pub const DEFAULT_REVIEW_KEYSPACE: &str = "review_svc";
/// The recommender's keyspace.
pub const DEFAULT_KEYSPACE: &str = "recommender";
/// The recommender's changelog topic (its default group's).
pub const DEFAULT_CHANGELOG_TOPIC: &str = "recommender-review-states-changelog";
/// Differences printed by default.
pub const DEFAULT_SHOW: usize = 20;
/// Relative tolerance of recommendation scores: the recommender sums
/// similarities in its own order, so equal models give scores equal only up
/// to floating-point rounding (a few ulps, far below this).
pub const SCORE_TOLERANCE: f64 = 1e-9;
/// Token ranges each table scan is split into.
pub const TOKEN_SLICES: usize = 16;
/// Token ranges read at the same time.
const SCAN_CONCURRENCY: usize = 4;
/// Rows per page of a scan.
const PAGE_SIZE: i32 = 5_000;
/// Reads pair with review-svc's and the recommender's LOCAL_QUORUM writes,
/// so every acknowledged write is seen.
const CONSISTENCY: Consistency = Consistency::LocalQuorum;

/// `recommender reconcile` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Cassandra/ScyllaDB contact points, comma-separated `host:port`.
    #[arg(long, env = "CINEREC_CQL_NODES", default_value = DEFAULT_CQL_NODES, value_delimiter = ',')]
    pub cql_nodes: Vec<String>,
    /// review-svc's keyspace (the reviews: the source of truth).
    #[arg(long, env = "REVIEW_SVC_KEYSPACE", default_value = DEFAULT_REVIEW_KEYSPACE)]
    pub review_keyspace: String,
    /// The recommender's keyspace (its serving tables are checked).
    #[arg(long, env = "RECOMMENDER_KEYSPACE", default_value = DEFAULT_KEYSPACE)]
    pub keyspace: String,
    /// Kafka bootstrap servers (the changelog's).
    #[arg(long, env = "RECOMMENDER_KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// The recommender's changelog topic (its durable model state).
    #[arg(long, env = "RECOMMENDER_CHANGELOG_TOPIC", default_value = DEFAULT_CHANGELOG_TOPIC)]
    pub changelog_topic: String,
    /// How many differences to print (all are counted).
    #[arg(long, default_value_t = DEFAULT_SHOW)]
    pub show: usize,
    /// Compare likes, N and C only, not `recommendations_by_user`.
    #[arg(long)]
    pub skip_recommendations: bool,
}

impl Args {
    /// Local-stack defaults for the given keyspaces and changelog (tests).
    pub fn local(
        cql_nodes: Vec<String>,
        review_keyspace: &str,
        keyspace: &str,
        brokers: &str,
        changelog_topic: &str,
    ) -> Args {
        Args {
            cql_nodes,
            review_keyspace: review_keyspace.to_owned(),
            keyspace: keyspace.to_owned(),
            brokers: brokers.to_owned(),
            changelog_topic: changelog_topic.to_owned(),
            show: DEFAULT_SHOW,
            skip_recommendations: false,
        }
    }
}

/// Why reconciliation could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// No contact point answered.
    #[error("Cassandra at {nodes} unreachable: {source}")]
    Connect {
        /// The contact points tried.
        nodes: String,
        /// The driver's error (boxed: it is large and rare).
        source: Box<scylla::errors::NewSessionError>,
    },
    /// A keyspace name that cannot be spliced into CQL.
    #[error("keyspace name {0:?} must be 1-48 of [a-z0-9_], starting with a letter")]
    BadKeyspace(String),
    /// The changelog could not be read.
    #[error("reading the changelog {topic}: {source}")]
    Changelog {
        /// The topic.
        topic: String,
        /// Kafka's error.
        source: rdkafka::error::KafkaError,
    },
    /// A table could not be read (missing, wrong shape, or the database failed).
    #[error("reading {table}: {source}")]
    Read {
        /// `keyspace.table`.
        table: String,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How the recommender's top-20 of one user is wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    /// No row, though the oracle recommends `expected` movies.
    MissingRow {
        /// Length of the expected list.
        expected: usize,
    },
    /// The model prefix has the wrong length.
    Length {
        /// The oracle's top-20 length.
        expected: usize,
        /// `from_model`.
        actual: usize,
    },
    /// A movie the expected list does not have at this position, nor a near tie of it.
    Movie {
        /// 0-based position.
        position: usize,
        /// The expected movie there.
        expected: MovieId,
        /// The movie written there.
        actual: MovieId,
    },
    /// The right movie with a wrong score.
    Score {
        /// 0-based position.
        position: usize,
        /// The movie.
        movie: MovieId,
        /// Its score in the expected model.
        expected: f64,
        /// The score written.
        actual: f64,
    },
    /// The row contradicts the table contract (list lengths, `from_model`, duplicates).
    Malformed(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::MissingRow { expected } => {
                write!(f, "no row, expected {expected} model recommendations")
            }
            Mismatch::Length { expected, actual } => write!(
                f,
                "{actual} model recommendations (from_model), expected {expected}"
            ),
            Mismatch::Movie {
                position,
                expected,
                actual,
            } => write!(
                f,
                "#{position} is movie {actual}, expected movie {expected}"
            ),
            Mismatch::Score {
                position,
                movie,
                expected,
                actual,
            } => write!(
                f,
                "#{position} movie {movie} scores {actual:e}, expected {expected:e}"
            ),
            Mismatch::Malformed(why) => write!(f, "malformed row: {why}"),
        }
    }
}

/// One way the recommender's tables differ from the batch recomputation.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// Likes, `N` or `C`.
    Model(model::Difference),
    /// A user's model recommendations.
    Recommendation(UserId, Mismatch),
    /// Stored data that cannot be model content: changelog records that do
    /// not decode.
    BadRow {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Model(d) => d.fmt(f),
            Difference::Recommendation(user, m) => write!(f, "recommendations of user {user}: {m}"),
            Difference::BadRow {
                table,
                key,
                problem,
            } => write!(f, "{table} row {key}: {problem}"),
        }
    }
}

/// What was read and compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows of `reviews` read (every version).
    pub review_rows: u64,
    /// Reviews with an acknowledged version (tombstones included).
    pub reviews: u64,
    /// Rows of `reviews` beyond their head's `committed` version, or without
    /// a committed head: writes in flight or abandoned, not counted.
    pub uncommitted_rows: u64,
    /// Reviews whose committed versions have no row in `reviews`.
    pub committed_without_row: u64,
    /// Rows of `reviews` review-svc could not have written (a live review
    /// without a rating, a null key column); left out.
    pub unreadable_review_rows: u64,
    /// Users with at least one like (expected).
    pub users: usize,
    /// Likes (expected).
    pub likes: usize,
    /// `N` entries (expected).
    pub n: usize,
    /// `C` entries (expected).
    pub c: usize,
    /// Changelog records read.
    pub changelog_records: u64,
    /// Reviews the restored model holds (tombstones included).
    pub changelog_reviews: usize,
    /// Likes, `N` and `C` entries of the restored model.
    pub actual: (usize, usize, usize),
    /// Rows of `recommendations_by_user` read.
    pub recommendation_rows: usize,
    /// Users whose recommendations were compared.
    pub recommendations_compared: usize,
}

/// The outcome of one reconciliation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What was read.
    pub counts: Counts,
    /// Every difference found: likes, `N`, `C`, bad rows, then recommendations.
    pub differences: Vec<Difference>,
}

impl Report {
    /// Whether the recommender's tables match the recomputation exactly.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// The counts and the first `show` differences, one per line.
    pub fn render(&self, show: usize) -> String {
        use std::fmt::Write;
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "reviews: {} rows read, {} reviews acknowledged, {} rows not committed, \
             {} committed without a row, {} unreadable rows",
            c.review_rows,
            c.reviews,
            c.uncommitted_rows,
            c.committed_without_row,
            c.unreadable_review_rows
        );
        let _ = writeln!(
            out,
            "expected: {} users with likes, {} likes, {} N, {} C",
            c.users, c.likes, c.n, c.c
        );
        let _ = writeln!(
            out,
            "recommender: {} changelog records → {} reviews, {} likes, {} N, {} C; \
             {} recommendations_by_user rows; {} users' recommendations compared",
            c.changelog_records,
            c.changelog_reviews,
            c.actual.0,
            c.actual.1,
            c.actual.2,
            c.recommendation_rows,
            c.recommendations_compared
        );
        let _ = writeln!(out, "differences: {}", self.differences.len());
        for d in self.differences.iter().take(show) {
            let _ = writeln!(out, "  {d}");
        }
        if self.differences.len() > show {
            let _ = writeln!(out, "  … and {} more", self.differences.len() - show);
        }
        out
    }

    /// 0 when clean, 1 when anything differs.
    pub fn exit_code(&self) -> u8 {
        if self.is_clean() { 0 } else { 1 }
    }
}

/// Exit code of a run that could not read what it compares.
pub const EXIT_ERROR: u8 = 2;

/// The `reconcile` subcommand: prints the report; exits 0 when clean, 1 on
/// any difference, 2 when something could not be read.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let outcome = async {
        let session = connect(&args.cql_nodes).await?;
        reconcile(&session, &args).await
    }
    .await;
    Ok(ExitCode::from(match outcome {
        Ok(report) => {
            print!("{}", report.render(args.show));
            report.exit_code()
        }
        Err(e) => {
            eprintln!("reconcile: {e}");
            EXIT_ERROR
        }
    }))
}

/// A session to `nodes`.
pub async fn connect(nodes: &[String]) -> Result<Session, ReconcileError> {
    SessionBuilder::new()
        .known_nodes(nodes)
        .build()
        .await
        .map_err(|source| ReconcileError::Connect {
            nodes: nodes.join(","),
            source: Box::new(source),
        })
}

/// Reads both sides and compares them (see the module docs).
pub async fn reconcile(session: &Session, args: &Args) -> Result<Report, ReconcileError> {
    let (rks, ks) = (&args.review_keyspace, &args.keyspace);
    check_keyspace(rks).map_err(|_| ReconcileError::BadKeyspace(rks.to_owned()))?;
    check_keyspace(ks).map_err(|_| ReconcileError::BadKeyspace(ks.to_owned()))?;
    let mut report = Report::default();

    let states = read_reviews(session, rks, &mut report.counts).await?;
    let expected = model::batch(states.iter().copied());
    let (actual, corrupt) =
        read_model(&args.brokers, &args.changelog_topic, &mut report.counts).await?;
    report.counts.users = expected.likes.len();
    report.counts.likes = expected.likes.values().map(BTreeSet::len).sum();
    report.counts.n = expected.n.len();
    report.counts.c = expected.c.len();
    report.differences.extend(
        model::diff(&expected, &actual)
            .into_iter()
            .map(Difference::Model),
    );
    if corrupt > 0 {
        report.differences.push(Difference::BadRow {
            table: "changelog",
            key: args.changelog_topic.clone(),
            problem: format!("{corrupt} records do not decode as EnrichedReview"),
        });
    }

    if !args.skip_recommendations {
        // The expected lists come from the oracle, not `Model::recommend`:
        // a scoring bug in the model must not be able to pass its own check.
        let expected_lists = oracle::recommend_all(states.iter().copied());
        let rows = read_recommendations(session, ks).await?;
        report.counts.recommendation_rows = rows.len();
        let users: BTreeSet<UserId> = expected.likes.keys().chain(rows.keys()).copied().collect();
        report.counts.recommendations_compared = users.len();
        for user in users {
            let full: &[(MovieId, f64)] = expected_lists.get(&user).map_or(&[], Vec::as_slice);
            let mismatch = match rows.get(&user) {
                None if full.is_empty() => None,
                None => Some(Mismatch::MissingRow {
                    expected: full.len().min(TOP_N),
                }),
                Some(row) => match row.model_prefix() {
                    Err(malformed) => Some(malformed),
                    Ok(prefix) => compare_recommendations(full, &prefix).err(),
                },
            };
            if let Some(m) = mismatch {
                report.differences.push(Difference::Recommendation(user, m));
            }
        }
    }
    Ok(report)
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

/// Every row of `ks.table` (columns `columns`, partition key `key`), read
/// token range by token range.
async fn scan<T>(
    session: &Session,
    ks: &str,
    table: &str,
    columns: &str,
    key: &str,
) -> Result<Vec<T>, ReconcileError>
where
    T: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
{
    let name = format!("{ks}.{table}");
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| ReconcileError::Read {
        table: name.clone(),
        source,
    };
    let mut prepared = session
        .prepare(format!(
            "SELECT {columns} FROM {ks}.{table} WHERE token({key}) >= ? AND token({key}) <= ?"
        ))
        .await
        .map_err(|e| fail(e.into()))?;
    prepared.set_consistency(CONSISTENCY);
    prepared.set_page_size(PAGE_SIZE);
    prepared.set_is_idempotent(true);
    let prepared = Arc::new(prepared);
    let slices: Vec<Vec<T>> = futures::stream::iter(token_ranges(TOKEN_SLICES))
        .map(|range| {
            let prepared = prepared.clone();
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

type ReviewRow = (
    Uuid,
    i64,
    Option<i64>,
    Option<i64>,
    Option<f32>,
    Option<bool>,
    Option<i64>,
);

/// The latest acknowledged state of every review in `rks`.
async fn read_reviews(
    session: &Session,
    rks: &str,
    counts: &mut Counts,
) -> Result<Vec<ReviewState>, ReconcileError> {
    // Heads first: a version committed while `reviews` is scanned is then
    // left out rather than half-seen (the next run picks it up).
    let heads: Vec<(Uuid, Option<i64>)> = scan(
        session,
        rks,
        "review_heads",
        "review_id, committed",
        "review_id",
    )
    .await?;
    let committed: HashMap<Uuid, i64> = heads
        .into_iter()
        .filter_map(|(id, c)| c.map(|c| (id, c)))
        .collect();
    let rows: Vec<ReviewRow> = scan(
        session,
        rks,
        "reviews",
        "review_id, version, user_id, movie_id, rating, deleted, changed_at",
        "review_id",
    )
    .await?;
    counts.review_rows = rows.len() as u64;
    let mut latest: HashMap<Uuid, ReviewState> = HashMap::new();
    for (id, version, user, movie, rating, deleted, changed_at) in rows {
        if committed.get(&id).is_none_or(|&c| version > c) {
            counts.uncommitted_rows += 1;
            continue;
        }
        let deleted = deleted.unwrap_or(false);
        let (Some(user_id), Some(movie_id), Some(changed_at_us)) = (user, movie, changed_at) else {
            counts.unreadable_review_rows += 1;
            continue;
        };
        let rating = match (rating, deleted) {
            (Some(r), _) => r,
            (None, true) => 0.0,
            (None, false) => {
                counts.unreadable_review_rows += 1;
                continue;
            }
        };
        let state = ReviewState {
            review_id: id.as_u128(),
            user_id,
            movie_id,
            rating,
            version,
            changed_at_us,
            deleted,
        };
        if latest.get(&id).is_none_or(|have| have.version < version) {
            latest.insert(id, state);
        }
    }
    counts.committed_without_row = committed
        .keys()
        .filter(|id| !latest.contains_key(id))
        .count() as u64;
    counts.reviews = latest.len() as u64;
    Ok(latest.into_values().collect())
}

/// likes, `N` and `C` of the model the changelog restores (the same code
/// path as an instance's restore: [`crate::changelog::Reader`] into
/// [`Model::apply`]).
async fn read_model(
    brokers: &str,
    topic: &str,
    counts: &mut Counts,
) -> Result<(ModelState, u64), ReconcileError> {
    let read = |source: rdkafka::error::KafkaError| ReconcileError::Changelog {
        topic: topic.to_owned(),
        source,
    };
    let mut reader = crate::changelog::Reader::new(brokers, topic)
        .await
        .map_err(read)?;
    let mut model = Model::new();
    counts.changelog_records = reader
        .restore(|r| {
            model.apply(crate::pipeline::review_state(&r.event));
        })
        .await
        .map_err(read)?;
    counts.changelog_reviews = model.reviews();
    let state = model.state();
    counts.actual = (
        state.likes.values().map(BTreeSet::len).sum(),
        state.n.len(),
        state.c.len(),
    );
    Ok((state, reader.corrupt))
}

/// One row of `recommendations_by_user`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecommendationRow {
    /// Best first.
    pub movie_ids: Vec<MovieId>,
    /// One per movie.
    pub scores: Vec<f64>,
    /// How many leading entries come from the model.
    pub from_model: Option<i32>,
}

impl RecommendationRow {
    /// The model prefix as (movie, score), or why the row breaks the contract.
    pub fn model_prefix(&self) -> Result<Vec<(MovieId, f64)>, Mismatch> {
        if self.movie_ids.len() != self.scores.len() {
            return Err(Mismatch::Malformed(format!(
                "{} movie_ids but {} scores",
                self.movie_ids.len(),
                self.scores.len()
            )));
        }
        let from_model = self
            .from_model
            .ok_or_else(|| Mismatch::Malformed("from_model is null".into()))?;
        let k = usize::try_from(from_model)
            .ok()
            .filter(|k| *k <= self.movie_ids.len())
            .ok_or_else(|| {
                Mismatch::Malformed(format!(
                    "from_model {from_model} outside 0..={}",
                    self.movie_ids.len()
                ))
            })?;
        let mut seen = BTreeSet::new();
        if let Some(dup) = self.movie_ids.iter().find(|m| !seen.insert(**m)) {
            return Err(Mismatch::Malformed(format!("movie {dup} listed twice")));
        }
        Ok(self.movie_ids[..k]
            .iter()
            .copied()
            .zip(self.scores[..k].iter().copied())
            .collect())
    }
}

type RecommendationTuple = (i64, Option<Vec<i64>>, Option<Vec<f64>>, Option<i32>);

async fn read_recommendations(
    session: &Session,
    ks: &str,
) -> Result<BTreeMap<UserId, RecommendationRow>, ReconcileError> {
    let rows: Vec<RecommendationTuple> = scan(
        session,
        ks,
        "recommendations_by_user",
        "user_id, movie_ids, scores, from_model",
        "user_id",
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user, movies, scores, from_model)| {
            (
                user,
                RecommendationRow {
                    // A CQL empty list reads as null.
                    movie_ids: movies.unwrap_or_default(),
                    scores: scores.unwrap_or_default(),
                    from_model,
                },
            )
        })
        .collect())
}

/// Whether two scores are equal up to [`SCORE_TOLERANCE`] (relative).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCORE_TOLERANCE * a.abs().max(b.abs())
}

/// Compares a model prefix as written (`actual`) with the expected ranking
/// `full` (every candidate, best first, as [`oracle::recommend_all`] gives
/// it; its first [`TOP_N`] are the expected list).
///
/// Position `p` of `actual` may hold any movie whose expected score is
/// within tolerance of the expected score at `p` (a near tie, possibly with
/// a candidate just past the 20th), with its own score within tolerance;
/// the list must have the expected length and no repeats.
pub fn compare_recommendations(
    full: &[(MovieId, f64)],
    actual: &[(MovieId, f64)],
) -> Result<(), Mismatch> {
    let top = &full[..full.len().min(TOP_N)];
    if actual.len() != top.len() {
        return Err(Mismatch::Length {
            expected: top.len(),
            actual: actual.len(),
        });
    }
    let true_score: HashMap<MovieId, f64> = full.iter().copied().collect();
    for (position, (&(movie, score), &(expected_movie, expected_score))) in
        actual.iter().zip(top).enumerate()
    {
        let Some(&truth) = true_score.get(&movie) else {
            return Err(Mismatch::Movie {
                position,
                expected: expected_movie,
                actual: movie,
            });
        };
        if movie != expected_movie && !close(truth, expected_score) {
            return Err(Mismatch::Movie {
                position,
                expected: expected_movie,
                actual: movie,
            });
        }
        if !close(score, truth) {
            return Err(Mismatch::Score {
                position,
                movie,
                expected: truth,
                actual: score,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ranges_cover_every_token_once() {
        for n in [1, 2, 3, 16, 17] {
            let r = token_ranges(n);
            assert_eq!(r.len(), n);
            assert_eq!(r[0].0, i64::MIN);
            assert_eq!(r[n - 1].1, i64::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0, "contiguous");
            }
            assert!(r.iter().all(|(a, b)| a <= b));
        }
    }

    #[test]
    fn equal_lists_match() {
        let full = vec![(1, 3.0), (2, 2.0), (3, 1.0)];
        assert_eq!(compare_recommendations(&full, &full), Ok(()));
    }

    #[test]
    fn near_ties_may_swap_but_real_order_may_not() {
        let full = vec![(1, 2.0), (2, 2.0 * (1.0 - 1e-12)), (3, 1.0)];
        let swapped = vec![(2, 2.0 * (1.0 - 1e-12)), (1, 2.0), (3, 1.0)];
        assert_eq!(compare_recommendations(&full, &swapped), Ok(()));
        let wrong = vec![(1, 2.0), (3, 1.0), (2, 2.0)];
        assert_eq!(
            compare_recommendations(&full, &wrong),
            Err(Mismatch::Movie {
                position: 1,
                expected: 2,
                actual: 3
            })
        );
    }

    #[test]
    fn a_tie_at_the_cut_may_pick_either_movie() {
        let mut full: Vec<(MovieId, f64)> =
            (0..TOP_N as i64).map(|m| (m, 100.0 - m as f64)).collect();
        let last = full[TOP_N - 1].1;
        full.push((999, last));
        full.push((1000, last / 2.0));
        let mut actual = full[..TOP_N].to_vec();
        actual[TOP_N - 1] = (999, last);
        assert_eq!(compare_recommendations(&full, &actual), Ok(()));
        actual[TOP_N - 1] = (1000, last / 2.0);
        assert!(matches!(
            compare_recommendations(&full, &actual),
            Err(Mismatch::Movie { position: 19, .. })
        ));
    }

    #[test]
    fn scores_are_compared_relatively() {
        let full = vec![(1, 1e6), (2, 1e-6)];
        let ok = vec![(1, 1e6 * (1.0 + 1e-12)), (2, 1e-6 * (1.0 - 1e-12))];
        assert_eq!(compare_recommendations(&full, &ok), Ok(()));
        let off = vec![(1, 1e6), (2, 1.1e-6)];
        assert!(matches!(
            compare_recommendations(&full, &off),
            Err(Mismatch::Score {
                position: 1,
                movie: 2,
                ..
            })
        ));
    }

    #[test]
    fn length_and_unknown_movies_are_differences() {
        let full = vec![(1, 2.0), (2, 1.0)];
        assert_eq!(
            compare_recommendations(&full, &full[..1]),
            Err(Mismatch::Length {
                expected: 2,
                actual: 1
            })
        );
        assert!(matches!(
            compare_recommendations(&full, &[(1, 2.0), (7, 1.0)]),
            Err(Mismatch::Movie { actual: 7, .. })
        ));
    }

    #[test]
    fn malformed_rows_are_named() {
        let row = |ids: Vec<i64>, scores: Vec<f64>, k: Option<i32>| RecommendationRow {
            movie_ids: ids,
            scores,
            from_model: k,
        };
        assert!(row(vec![1, 2], vec![1.0], Some(1)).model_prefix().is_err());
        assert!(row(vec![1], vec![1.0], None).model_prefix().is_err());
        assert!(row(vec![1], vec![1.0], Some(2)).model_prefix().is_err());
        assert!(row(vec![1], vec![1.0], Some(-1)).model_prefix().is_err());
        assert!(
            row(vec![1, 1], vec![1.0, 0.0], Some(1))
                .model_prefix()
                .is_err()
        );
        assert_eq!(
            row(vec![4, 5], vec![1.5, 0.0], Some(1)).model_prefix(),
            Ok(vec![(4, 1.5)])
        );
    }
}
