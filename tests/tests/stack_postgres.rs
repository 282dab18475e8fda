//! The stack's PostgreSQL (CockroachDB's stand-in: same wire protocol) takes
//! sqlx migrations and queries. Each test works in a schema of its own.

use anyhow::Context;
use cinerec_tests::{Stack, unique_name, unreachable};
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn migration_applies_once_and_queries_run() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let schema = unique_name("smoke");
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .after_connect({
            let schema = schema.clone();
            move |conn, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    conn.execute(format!("SET search_path TO {schema}").as_str())
                        .await?;
                    Ok(())
                })
            }
        })
        .connect(&stack.database_url)
        .await
        .map_err(|e| unreachable("PostgreSQL", &stack.database_url, e))?;
    pool.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await?;

    let migrator = sqlx::migrate!("./migrations");
    migrator.run(&pool).await.context("first migration run")?;
    // Running again is a no-op: services run migrations on every start.
    migrator.run(&pool).await.context("second migration run")?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await?;
    assert_eq!(applied, migrator.iter().count() as i64);

    sqlx::query("INSERT INTO smoke_movies (movie_id, title, genres) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (movie_id) DO NOTHING")
        .bind(1_i64)
        .bind("Metropolis")
        .bind("Drama|Sci-Fi")
        .bind(2_i64)
        .bind("Nosferatu")
        .bind("Horror")
        .execute(&pool)
        .await?;
    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM smoke_movies WHERE genres LIKE $1 ORDER BY movie_id")
            .bind("%Sci-Fi%")
            .fetch_all(&pool)
            .await?;
    assert_eq!(titles, vec!["Metropolis".to_owned()]);

    pool.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await?;
    Ok(())
}
