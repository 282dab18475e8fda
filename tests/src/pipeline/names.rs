//! The names a run owns (topics, groups, keyspaces, schemas, cache
//! namespaces, its JWT secret), derived from one unique run id.

use crate::unique_name;

/// The names a run owns; no other run uses any of them.
#[derive(Debug, Clone)]
pub struct RunNames {
    /// The run's id (`<prefix>_<12 hex>`), the stem of every other name.
    pub run: String,
    /// review-svc's change topic (the run's `reviews.changed`).
    pub changes_topic: String,
    /// The enricher's sink (the run's `reviews.enriched`).
    pub enriched_topic: String,
    /// The enricher's dead letters (`<changes>.dlq`).
    pub changes_dlq: String,
    /// The recommender's dead letters (`<enriched>.dlq`).
    pub enriched_dlq: String,
    /// The enricher's consumer group.
    pub enricher_group: String,
    /// The recommender's consumer group.
    pub recommender_group: String,
    /// review-svc's Cassandra keyspace.
    pub review_keyspace: String,
    /// The recommender's Cassandra keyspace.
    pub recommender_keyspace: String,
    /// movie-svc's PostgreSQL schema.
    pub movie_schema: String,
    /// user-svc's PostgreSQL schema.
    pub user_schema: String,
    /// The enricher's cache namespace.
    pub enricher_cache_namespace: String,
    /// The recommender's cache namespace.
    pub recommender_cache_namespace: String,
    /// The HS256 secret review-svc accepts (sign tokens with it).
    pub jwt_secret: String,
}

impl RunNames {
    /// The recommender's changelog topic (its default for the run's group).
    pub fn recommender_changelog(&self) -> String {
        format!("{}-review-states-changelog", self.recommender_group)
    }

    pub(super) fn new(prefix: &str) -> RunNames {
        let run = unique_name(prefix);
        let changes_topic = format!("{run}.reviews.changed");
        let enriched_topic = format!("{run}.reviews.enriched");
        RunNames {
            changes_dlq: format!("{changes_topic}.dlq"),
            enriched_dlq: format!("{enriched_topic}.dlq"),
            changes_topic,
            enriched_topic,
            enricher_group: format!("{run}_enricher"),
            recommender_group: format!("{run}_recommender"),
            review_keyspace: format!("{run}_reviews"),
            recommender_keyspace: format!("{run}_rec"),
            movie_schema: format!("{run}_movies"),
            user_schema: format!("{run}_users"),
            enricher_cache_namespace: format!("{run}_enr"),
            recommender_cache_namespace: format!("{run}_rec"),
            jwt_secret: unique_name("secret"),
            run,
        }
    }
}
