//! The user-svc binary: `migrate`, `seed`.

use cinerec_service_kit::db::{self, DbArgs};
use cinerec_service_kit::{CommonArgs, telemetry};
use clap::{Parser, Subcommand};
use user_svc::store::UserStore;

/// User profile service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Config {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    db: DbArgs,
    /// Schema holding user-svc's tables.
    #[arg(long, env = "USER_SVC_DB_SCHEMA", default_value = user_svc::DEFAULT_SCHEMA)]
    db_schema: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations and exit.
    Migrate,
    /// Migrate, then load the seeded synthetic catalogue (idempotent).
    Seed {
        /// Number of users.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        users: u64,
        /// Seed of the synthetic world (use the same one for user-svc and loadgen).
        #[arg(long, env = "CINEREC_SEED", default_value_t = 1)]
        seed: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init("user-svc", &config.common.log, config.common.log_format)?;
    let pool = db::connect(&config.db, &config.db_schema).await?;
    let store = UserStore::new(pool);
    store.migrate().await?;
    match config.command {
        Command::Migrate => tracing::info!("migrations applied"),
        Command::Seed { users, seed } => {
            // The other dimension of the world does not shape these rows.
            let catalog = cinerec_catalog::Catalog::new(seed, 1, users);
            let started = std::time::Instant::now();
            let written = user_svc::seed::seed(&store, &catalog, 10_000).await?;
            eprintln!(
                "seeded {written} users in {:.1}s; {} stored",
                started.elapsed().as_secs_f64(),
                store.count().await?
            );
        }
    }
    Ok(())
}
