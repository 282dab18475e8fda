//! The SQL store of the metadata services: CockroachDB in production,
//! PostgreSQL locally (same wire protocol, and the SQL we write runs on both).
//!
//! Each service keeps its tables in a schema of its own (`movie_svc`,
//! `user_svc`): services never read each other's tables, and each has its own
//! migration history (sqlx's `_sqlx_migrations` lives in the schema too), so
//! two services can share one database without their migration numbers
//! colliding. Tests pass a random schema to stay apart.

mod records;

use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::{PgPool, PgPoolOptions};

pub use self::records::{INSERT_BATCH, Record, RecordStore, StoreError};
pub use crate::defaults::DEFAULT_DATABASE_URL;
/// Connections per service instance: enough for a few hundred concurrent RPCs
/// with the read-through cache in front (most calls never reach the database).
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// How long a caller waits for a free connection before the call fails.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Database options, flattened into a service's config.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// PostgreSQL/CockroachDB connection URL.
    #[arg(long, env = "CINEREC_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Maximum connections in the pool.
    #[arg(long, env = "CINEREC_DB_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE)]
    pub db_pool_size: u32,
}

/// Connects a pool whose every connection works in `schema`, creating the
/// schema first if it does not exist.
pub async fn connect(args: &DbArgs, schema: &str) -> anyhow::Result<PgPool> {
    anyhow::ensure!(
        !schema.is_empty()
            && schema.len() <= 63
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit(),
        "schema name {schema:?} must be 1-63 of [a-z0-9_], not starting with a digit"
    );
    let pool = PgPoolOptions::new()
        .max_connections(args.db_pool_size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect({
            let set_path = format!("SET search_path TO {schema}");
            move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            }
        })
        .connect_lazy(&args.database_url)
        .map_err(|e| anyhow::anyhow!("bad database URL: {e}"))?;
    // The first connection runs `SET search_path` before the schema exists;
    // that is allowed (unknown schemas in the path are skipped), and the
    // schema exists for every statement after this one.
    pool.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "database at {} unreachable: {e}",
                redact(&args.database_url)
            )
        })?;
    Ok(pool)
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Statements in flight while bulk loading: enough to keep the database busy
/// while the next batch is generated, few enough to leave it room.
pub const LOAD_CONCURRENCY: usize = 4;

/// Bulk-loads rows `1..=total`: `make(id)` builds a row, `write(rows)` stores a
/// batch of `batch` rows and returns how many it wrote. Batches run
/// [`LOAD_CONCURRENCY`] at a time; progress goes to stderr every
/// `progress_every` rows as `label: written/total (rows/s)`. Returns the rows
/// written.
pub async fn load_in_batches<T, E, Fut>(
    label: &str,
    total: u64,
    batch: usize,
    progress_every: u64,
    make: impl Fn(i64) -> T,
    write: impl Fn(Vec<T>) -> Fut,
) -> Result<u64, E>
where
    Fut: std::future::Future<Output = Result<u64, E>>,
{
    use futures::{StreamExt, TryStreamExt, stream};
    let started = std::time::Instant::now();
    let batch = batch.max(1) as u64;
    let batches = (0..total.div_ceil(batch)).map(|b| {
        let first = b * batch + 1;
        let last = ((b + 1) * batch).min(total);
        (first as i64..=last as i64).map(&make).collect::<Vec<T>>()
    });
    let mut results = stream::iter(batches)
        .map(&write)
        .buffer_unordered(LOAD_CONCURRENCY);
    let (mut written, mut next_report) = (0_u64, progress_every.max(1));
    while let Some(n) = results.try_next().await? {
        written += n;
        if written >= next_report || written == total {
            let rate = written as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!("{label}: {written}/{total} ({rate:.0} rows/s)");
            next_report = written.saturating_add(progress_every.max(1));
        }
    }
    Ok(written)
}

/// One round trip to the database (`SELECT 1`): the readiness check.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Publishes the pool's usage as gauges every `every` until `shutdown`:
/// `cinerec_db_pool_connections{service, state="busy"|"idle"}` and
/// `cinerec_db_pool_max_connections{service}`.
pub fn spawn_pool_gauges(
    pool: PgPool,
    service: &'static str,
    every: Duration,
    shutdown: crate::Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let max = pool.options().get_max_connections();
        metrics::gauge!("cinerec_db_pool_max_connections", "service" => service).set(max as f64);
        loop {
            let (size, idle) = (pool.size() as usize, pool.num_idle());
            metrics::gauge!("cinerec_db_pool_connections", "service" => service, "state" => "busy")
                .set(size.saturating_sub(idle) as f64);
            metrics::gauge!("cinerec_db_pool_connections", "service" => service, "state" => "idle")
                .set(idle as f64);
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgresql://u:secret@h:1/db"),
            "postgresql://u:***@h:1/db"
        );
        assert_eq!(redact("postgresql://u@h:1/db"), "postgresql://u@h:1/db");
        assert_eq!(redact("not a url"), "not a url");
    }
}
