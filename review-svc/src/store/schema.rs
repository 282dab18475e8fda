//! The tables of review-svc's keyspace as CQL (the module docs of
//! [`store`](super) say what each holds), and the session they live on.

use std::sync::Arc;

use cinerec_service_kit::clock::now_micros;
use cinerec_service_kit::cql::{self, check_keyspace};
use scylla::client::session::Session;

use super::{CHANGE_SHARDS, CHANGES_TTL_SECS, IDEMPOTENCY_TTL_SECS, StoreError};
use crate::config::CqlArgs;

/// Connects to the cluster (token-aware routing is the driver's default
/// load-balancing policy, so each statement goes to a replica of its key).
pub async fn connect(args: &CqlArgs) -> Result<Arc<Session>, StoreError> {
    let session = cql::connect(&args.cql_nodes, None)
        .await
        .map_err(StoreError::db)?;
    Ok(Arc::new(session))
}

/// Creates the keyspace, the tables and each shard's initial relay
/// checkpoint if missing. Safe to run on every start and concurrently.
pub async fn migrate(session: &Session, args: &CqlArgs) -> Result<(), StoreError> {
    let ks = &args.keyspace;
    check_keyspace(ks).map_err(StoreError::Database)?;
    let statements = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
            args.replication
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.review_heads (review_id uuid PRIMARY KEY, \
             version bigint, changed_at bigint, reserved_at bigint, user_id bigint, \
             movie_id bigint, created_at bigint, request_hash text, \
             committed bigint, deleted boolean)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.reviews (review_id uuid, version bigint, \
             user_id bigint, movie_id bigint, rating float, text text, deleted boolean, \
             created_at bigint, changed_at bigint, PRIMARY KEY (review_id, version)) \
             WITH CLUSTERING ORDER BY (version DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.reviews_by_user (user_id bigint, review_id uuid, \
             created_at bigint, PRIMARY KEY (user_id, review_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.review_changes (shard int, bucket bigint, \
             changed_at bigint, review_id uuid, version bigint, event_id uuid, user_id bigint, \
             op text, prev_changed_at bigint, \
             PRIMARY KEY ((shard, bucket), changed_at, review_id, version)) \
             WITH default_time_to_live = {CHANGES_TTL_SECS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.idempotency_keys (user_id bigint, key text, \
             review_id uuid, request_hash text, version bigint, PRIMARY KEY ((user_id, key))) \
             WITH default_time_to_live = {IDEMPOTENCY_TTL_SECS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.relay_checkpoints (shard int PRIMARY KEY, \
             position bigint, updated_at bigint, generation bigint)"
        ),
    ];
    let statements = statements.into_iter().chain(super::leases::schema(ks));
    for cql in statements {
        session
            .query_unpaged(cql.as_str(), &[])
            .await
            .map_err(|e| StoreError::Database(format!("{cql}: {e}")))?;
    }
    // Columns added after the first release: tables created earlier get them here.
    add_columns(
        session,
        ks,
        "review_changes",
        &[("traceparent", "text"), ("tracestate", "text")],
    )
    .await?;
    add_columns(session, ks, "idempotency_keys", &[("version", "bigint")]).await?;
    add_columns(
        session,
        ks,
        "relay_checkpoints",
        &[("generation", "bigint")],
    )
    .await?;
    session
        .await_schema_agreement()
        .await
        .map_err(StoreError::db)?;
    // No change can predate its table, so "everything before now" is
    // published by definition; the margin covers writer clock skew.
    let start = now_micros() - 60_000_000;
    let init = session
        .prepare(format!(
            "INSERT INTO {ks}.relay_checkpoints (shard, position, updated_at, generation) \
             VALUES (?, ?, ?, 0) IF NOT EXISTS"
        ))
        .await
        .map_err(StoreError::db)?;
    for shard in 0..CHANGE_SHARDS {
        session
            .execute_unpaged(&init, (shard, start, now_micros()))
            .await
            .map_err(StoreError::db)?;
    }
    super::leases::init(session, ks, CHANGE_SHARDS).await?;
    Ok(())
}

/// Adds the change log's trace-context columns to a keyspace migrated before
/// they existed. CQL has no `ADD IF NOT EXISTS`, so the schema is asked first.
async fn add_columns(
    session: &Session,
    ks: &str,
    table: &str,
    columns: &[(&str, &str)],
) -> Result<(), StoreError> {
    let present: Vec<String> = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = ?",
            (ks, table),
        )
        .await
        .map_err(StoreError::db)?
        .into_rows_result()
        .map_err(StoreError::corrupt)?
        .rows::<(String,)>()
        .map_err(StoreError::corrupt)?
        .map(|r| r.map(|(c,)| c))
        .collect::<Result<_, _>>()
        .map_err(StoreError::corrupt)?;
    for (column, cql_type) in columns {
        if present.iter().any(|c| c == column) {
            continue;
        }
        let cql = format!("ALTER TABLE {ks}.{table} ADD {column} {cql_type}");
        if let Err(e) = session.query_unpaged(cql.as_str(), &[]).await {
            // Another migrator may have added it meanwhile.
            if !e.to_string().contains("already exist") {
                return Err(StoreError::Database(format!("{cql}: {e}")));
            }
        }
    }
    session
        .await_schema_agreement()
        .await
        .map_err(StoreError::db)?;
    Ok(())
}
