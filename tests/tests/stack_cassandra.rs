//! The stack's Cassandra node answers the `scylla` driver (the client the
//! services use against ScyllaDB in production): create a keyspace and a table,
//! write with a prepared statement, read it back.

use anyhow::Context;
use cinerec_tests::{Stack, unique_name, unreachable};
use scylla::client::session::Session;

#[tokio::test]
async fn create_write_and_read_with_the_scylla_driver() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let session: Session = cinerec_service_kit::cql::connect(&stack.cql_nodes, None)
        .await
        .map_err(|e| unreachable("Cassandra", &e.nodes, e.source))?;

    let keyspace = unique_name("smoke");
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {keyspace} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {keyspace}.reviews (review_id uuid, version bigint, \
                 rating float, body text, PRIMARY KEY (review_id, version)) \
                 WITH CLUSTERING ORDER BY (version DESC)"
            ),
            &[],
        )
        .await?;

    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.reviews (review_id, version, rating, body) VALUES (?, ?, ?, ?)"
        ))
        .await?;
    let id = uuid_v4();
    for (version, rating, body) in [(1_i64, 3.5_f32, "first"), (2, 4.5, "edited")] {
        session
            .execute_unpaged(&insert, (id, version, rating, body))
            .await?;
    }

    // Clustering order puts the latest version first: the read delayed
    // materialization will do.
    let latest = session
        .query_unpaged(
            format!(
                "SELECT version, rating, body FROM {keyspace}.reviews WHERE review_id = ? LIMIT 1"
            ),
            (id,),
        )
        .await?
        .into_rows_result()?
        .first_row::<(i64, f32, String)>()
        .context("the written review is not there")?;
    assert_eq!(latest, (2, 4.5, "edited".to_owned()));

    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await?;
    Ok(())
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}
