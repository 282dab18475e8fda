//! The reconcile command (DESIGN.md §5, "exactly-once effect"; issue 7
//! point 4): recompute likes, `N`, `C` and every user's top-20 in batch from
//! the latest acknowledged reviews in review-svc's tables, and diff them
//! against what the recommender wrote.
//!
//! # What counts as a review's latest state
//!
//! review-svc's commit rule, read through its own
//! [`review_svc::acknowledged::latest_acknowledged`]: the highest version at
//! or below the head's `committed` marker, so versions reserved but never
//! committed, and creates still in flight, do not exist yet.
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
//! Tables are read whole through [`cinerec_service_kit::cql::scan`], each
//! split into token ranges read a few at a time, so a scan is many short
//! paged queries instead of one long one, and no coordinator holds the whole
//! table. The recommendations are read as the serving contract's checked
//! rows ([`cinerec_serving::read::all_recommendations`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use cinerec_service_kit::cql::check_keyspace;
use cinerec_service_kit::defaults::{DEFAULT_BROKERS, DEFAULT_CQL_NODES};
use cinerec_serving::{self as serving, MalformedRow, RecommendationsRow};
use review_svc::acknowledged::{self, latest_acknowledged};
use scylla::client::session::Session;
use scylla::statement::Consistency;

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
    #[error(transparent)]
    Connect(#[from] cinerec_service_kit::cql::ConnectError),
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
    Ok(cinerec_service_kit::cql::connect(nodes, None).await?)
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
                Some(Err(malformed)) => Some(Mismatch::Malformed(malformed.problem.clone())),
                Some(Ok(row)) => compare_recommendations(full, &row.model_part()).err(),
            };
            if let Some(m) = mismatch {
                report.differences.push(Difference::Recommendation(user, m));
            }
        }
    }
    Ok(report)
}

/// The latest acknowledged state of every review in `rks`, as model input.
async fn read_reviews(
    session: &Session,
    rks: &str,
    counts: &mut Counts,
) -> Result<Vec<ReviewState>, ReconcileError> {
    let (reviews, read) = latest_acknowledged(session, rks, CONSISTENCY)
        .await
        .map_err(|e| match e {
            acknowledged::ReadError::BadKeyspace(_) => ReconcileError::BadKeyspace(rks.to_owned()),
            acknowledged::ReadError::Scan(e) => ReconcileError::Read {
                table: e.table,
                source: e.source,
            },
        })?;
    counts.review_rows = read.review_rows;
    counts.uncommitted_rows = read.uncommitted_rows;
    counts.committed_without_row = read.committed_without_row;
    counts.unreadable_review_rows = read.unreadable_rows;
    counts.reviews = reviews.len() as u64;
    Ok(reviews
        .into_iter()
        .map(|r| ReviewState {
            review_id: r.review_id.as_u128(),
            user_id: r.user_id,
            movie_id: r.movie_id,
            rating: r.rating,
            version: r.version,
            changed_at_us: r.changed_at_us,
            deleted: r.deleted,
        })
        .collect())
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

/// Every `recommendations_by_user` row of `ks`, checked against the serving
/// contract: a malformed row is kept as its problem, to be reported.
async fn read_recommendations(
    session: &Session,
    ks: &str,
) -> Result<BTreeMap<UserId, Result<RecommendationsRow, MalformedRow>>, ReconcileError> {
    let rows = serving::read::all_recommendations(session, ks, CONSISTENCY)
        .await
        .map_err(|e| ReconcileError::Read {
            table: e.table,
            source: e.source,
        })?;
    Ok(rows.into_iter().collect())
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
mod tests;
