//! Reads of reviews: the latest acknowledged version (what `GET` and
//! `getReview` answer, and what reconcile compares against), one version, a
//! user's reviews.

use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::{MAX_LIST, ReviewStore, ReviewTuple, StoreError, review_from};
use crate::model::Review;

impl ReviewStore {
    /// One version of a review.
    pub(super) async fn version(
        &self,
        review_id: Uuid,
        version: i64,
    ) -> Result<Option<Review>, StoreError> {
        self.one_review(&self.st.version_select, (review_id, version))
            .await
    }

    /// The first version of a review: what its create wrote.
    pub(super) async fn first(&self, review_id: Uuid) -> Result<Option<Review>, StoreError> {
        self.one_review(&self.st.first_select, (review_id,)).await
    }

    async fn one_review(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Option<Review>, StoreError> {
        Ok(self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .maybe_first_row::<ReviewTuple>()
            .map_err(StoreError::corrupt)?
            .map(review_from))
    }

    /// The latest version of a review (a tombstone if deleted).
    pub async fn get(&self, review_id: Uuid) -> Result<Option<Review>, StoreError> {
        self.one_review(&self.st.latest_select, (review_id,)).await
    }

    /// A page of a user's live reviews (latest versions, tombstones left
    /// out), ordered by review id, starting after `after`; with the id to
    /// continue after when the page was full.
    pub async fn list_by_user(
        &self,
        user_id: i64,
        after: Option<Uuid>,
        limit: i32,
    ) -> Result<(Vec<Review>, Option<Uuid>), StoreError> {
        let limit = limit.clamp(1, MAX_LIST);
        let ids: Vec<Uuid> = self
            .session
            .execute_unpaged(
                &self.st.by_user_select,
                (user_id, after.unwrap_or(Uuid::nil()), limit),
            )
            .await
            .map_err(StoreError::db)?
            .into_rows_result()
            .map_err(StoreError::corrupt)?
            .rows::<(Uuid,)>()
            .map_err(StoreError::corrupt)?
            .map(|r| r.map(|(id,)| id).map_err(StoreError::corrupt))
            .collect::<Result<_, _>>()?;
        let next = (ids.len() == limit as usize)
            .then(|| ids.last().copied())
            .flatten();
        let reviews = futures::future::try_join_all(ids.into_iter().map(|id| self.get(id))).await?;
        Ok((
            reviews
                .into_iter()
                .flatten()
                .filter(|r| !r.deleted)
                .collect(),
            next,
        ))
    }
}
