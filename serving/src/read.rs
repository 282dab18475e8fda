//! Reading the serving tables: one user's row ([`UserReader`], review-svc's
//! endpoint) and whole tables ([`all_recommendations`], [`all_trending`]:
//! rollup's snapshots, reconcile), split by token range.
//!
//! The tables belong to the recommender, which creates them on its first
//! start, so a reader may run before they exist: [`ReadError::TableMissing`]
//! says so in words, and the point reader prepares its statement on first
//! use and again after the table went missing.

use std::sync::Mutex;

use cinerec_service_kit::cql::{ScanError, check_keyspace, scan};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;

use crate::rows::{MalformedRow, RecommendationsRow, TrendingRow};
use crate::schema::{RECOMMENDATIONS, TRENDING};

/// Why a serving row could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The keyspace or table does not exist (yet), or lacks the contract's columns.
    #[error(
        "recommendations are not available yet: table {0}.{RECOMMENDATIONS} does not exist (the \
         recommender has not run) or lacks the expected columns"
    )]
    TableMissing(String),
    /// The database failed or timed out.
    #[error("database: {0}")]
    Database(String),
    /// The stored row contradicts the table contract.
    #[error(transparent)]
    Malformed(#[from] MalformedRow),
}

fn is_missing_table(e: &RequestAttemptError) -> bool {
    // For a fixed SELECT, Invalid means the keyspace/table/columns are not there.
    matches!(e, RequestAttemptError::DbError(DbError::Invalid, _))
}

/// Reads single users' `recommendations_by_user` rows of one keyspace.
#[derive(Debug)]
pub struct UserReader {
    keyspace: String,
    consistency: Consistency,
    /// Prepared on first success; cleared when the table went missing.
    select: Mutex<Option<PreparedStatement>>,
}

impl UserReader {
    /// A reader of `keyspace` at `consistency`; `Err` names a keyspace that
    /// breaks [`check_keyspace`].
    pub fn new(keyspace: &str, consistency: Consistency) -> Result<UserReader, String> {
        check_keyspace(keyspace)?;
        Ok(UserReader {
            keyspace: keyspace.to_owned(),
            consistency,
            select: Mutex::new(None),
        })
    }

    /// The keyspace read.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    fn cached(&self) -> Option<PreparedStatement> {
        self.select.lock().ok().and_then(|s| s.clone())
    }

    fn keep(&self, statement: Option<PreparedStatement>) {
        if let Ok(mut s) = self.select.lock() {
            *s = statement;
        }
    }

    async fn statement(&self, session: &Session) -> Result<PreparedStatement, ReadError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let cql = format!(
            "SELECT {} FROM {}.{RECOMMENDATIONS} WHERE user_id = ?",
            RecommendationsRow::COLUMNS,
            self.keyspace
        );
        let mut prepared = session.prepare(cql).await.map_err(|e| match &e {
            PrepareError::AllAttemptsFailed { first_attempt }
                if is_missing_table(first_attempt) =>
            {
                ReadError::TableMissing(self.keyspace.clone())
            }
            _ => ReadError::Database(e.to_string()),
        })?;
        prepared.set_consistency(self.consistency);
        prepared.set_is_idempotent(true);
        self.keep(Some(prepared.clone()));
        Ok(prepared)
    }

    /// The row of `user_id`; `None` when the recommender wrote none yet.
    pub async fn get(
        &self,
        session: &Session,
        user_id: i64,
    ) -> Result<Option<RecommendationsRow>, ReadError> {
        let select = self.statement(session).await?;
        let result = session
            .execute_unpaged(&select, (user_id,))
            .await
            .map_err(|e| match &e {
                ExecutionError::LastAttemptError(attempt)
                | ExecutionError::PrepareError(PrepareError::AllAttemptsFailed {
                    first_attempt: attempt,
                }) if is_missing_table(attempt) => {
                    // Dropped since it was prepared: prepare again next time.
                    self.keep(None);
                    ReadError::TableMissing(self.keyspace.clone())
                }
                _ => ReadError::Database(e.to_string()),
            })?;
        let corrupt = |problem: String| MalformedRow {
            table: RECOMMENDATIONS,
            key: user_id.to_string(),
            problem,
        };
        let row = result
            .into_rows_result()
            .map_err(|e| corrupt(e.to_string()))?
            .maybe_first_row()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(row.map(RecommendationsRow::from_columns).transpose()?)
    }
}

/// Every `recommendations_by_user` row of `ks` by user, each checked: a row
/// that breaks the contract comes back as its [`MalformedRow`], for the
/// caller to count or report, and does not stop the read.
pub async fn all_recommendations(
    session: &Session,
    ks: &str,
    consistency: Consistency,
) -> Result<Vec<(i64, Result<RecommendationsRow, MalformedRow>)>, ScanError> {
    let rows = scan(
        session,
        ks,
        RECOMMENDATIONS,
        RecommendationsRow::COLUMNS,
        "user_id",
        consistency,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|columns: crate::rows::RecommendationsColumns| {
            (columns.0, RecommendationsRow::from_columns(columns))
        })
        .collect())
}

/// Every `trending_by_genre` row of `ks`, each checked (see
/// [`all_recommendations`]).
pub async fn all_trending(
    session: &Session,
    ks: &str,
    consistency: Consistency,
) -> Result<Vec<Result<TrendingRow, MalformedRow>>, ScanError> {
    let rows = scan(
        session,
        ks,
        TRENDING,
        TrendingRow::COLUMNS,
        "genre",
        consistency,
    )
    .await?;
    Ok(rows.into_iter().map(TrendingRow::from_columns).collect())
}
