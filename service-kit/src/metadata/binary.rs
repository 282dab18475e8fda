//! The `main` of a metadata service binary (movie-svc, user-svc), once.
//!
//! Both binaries take the same flags, connect to their database, apply their
//! migrations, and then either stop (`migrate`), load the seeded synthetic
//! world (`seed`), or serve their protocol behind a read-through cache until
//! SIGTERM (`serve`). What differs is data: a [`MetadataSpec`] (the service's
//! name, its env prefix, its default addresses, schema and sizes) and a
//! [`MetadataBinary`] (its record, how it seeds, which responder answers).
//!
//! The command line is one clap definition with the service's names filled
//! in at run time ([`MetadataSpec::command`]): `MOVIE_SVC_RPC_ADDR` and
//! `USER_SVC_RPC_ADDR` are the same flag under two prefixes, and
//! `seed --movies N` / `seed --users N` the same count under two names.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avro_rpc::server::{Request, Responder, Response};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tower::Service;

use super::{MetadataRecord, MetadataService};
use crate::db::{self, DbArgs, RecordStore};
use crate::rpc::{RpcAddrs, RpcMetricsLayer, run_database_service};
use crate::{CommonArgs, telemetry};

/// What names, defaults and sizes one metadata binary has.
#[derive(Debug, Clone, Copy)]
pub struct MetadataSpec {
    /// The binary's name (logs, metrics, `--help`): `"movie-svc"`.
    pub service: &'static str,
    /// Its version (`env!("CARGO_PKG_VERSION")` of the binary's crate).
    pub version: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The protocol it serves (`"MovieService"`).
    pub protocol: &'static str,
    /// Prefix of its own env variables (`"MOVIE_SVC"` → `MOVIE_SVC_RPC_ADDR`).
    pub env_prefix: &'static str,
    /// What its records are called: the seed flag (`--movies`), the seed
    /// report and the cache's name.
    pub records: &'static str,
    /// Default schema of its tables.
    pub schema: &'static str,
    /// Default and largest `seed` count.
    pub seed_count: (u64, u64),
    /// Default Avro RPC socket address.
    pub rpc_addr: &'static str,
    /// Default Avro RPC HTTP address.
    pub rpc_http_addr: &'static str,
    /// Default admin address (/healthz, /readyz, /metrics).
    pub admin_addr: SocketAddr,
    /// Default records the read-through cache holds.
    pub cache_capacity: u64,
    /// Default time a cached record may be served.
    pub cache_ttl: Duration,
}

/// The flags every metadata binary takes. The service's own env names,
/// defaults and help are filled in by [`MetadataSpec::command`]; parsed
/// through that command, every field below has a value.
#[derive(Debug, Parser)]
struct Config {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    db: DbArgs,
    /// Schema holding the service's tables.
    #[arg(long)]
    db_schema: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate, then serve the protocol until SIGTERM/Ctrl-C.
    Serve {
        /// Avro RPC socket transport address.
        #[arg(long)]
        rpc_addr: SocketAddr,
        /// Avro RPC HTTP transport address.
        #[arg(long)]
        rpc_http_addr: SocketAddr,
        /// Records the read-through cache holds.
        #[arg(long)]
        cache_capacity: u64,
        /// Seconds a cached record may be served (staleness bound across instances).
        #[arg(long)]
        cache_ttl_secs: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Migrate, then load the seeded synthetic records (idempotent).
    Seed {
        /// Number of records.
        #[arg(long)]
        count: u64,
        /// Seed of the synthetic world (the same for movie-svc, user-svc and loadgen).
        #[arg(long, env = "CINEREC_SEED", default_value_t = 1)]
        seed: u64,
    },
}

impl MetadataSpec {
    /// The binary's command line: the shared flags under this service's
    /// names and defaults.
    pub fn command(&self) -> clap::Command {
        let env = |name: &str| format!("{}_{name}", self.env_prefix);
        let (default_count, max_count) = self.seed_count;
        Config::command()
            .name(self.service)
            .bin_name(self.service)
            .version(self.version)
            .about(self.about)
            .mut_arg("db_schema", |a| {
                a.env(env("DB_SCHEMA"))
                    .default_value(self.schema)
                    .required(false)
                    .help(format!("Schema holding {}'s tables", self.service))
            })
            .mut_subcommand("serve", |s| {
                s.about(format!(
                    "Migrate, then serve {} until SIGTERM/Ctrl-C.",
                    self.protocol
                ))
                .mut_arg("rpc_addr", |a| {
                    a.env(env("RPC_ADDR"))
                        .default_value(self.rpc_addr)
                        .required(false)
                })
                .mut_arg("rpc_http_addr", |a| {
                    a.env(env("RPC_HTTP_ADDR"))
                        .default_value(self.rpc_http_addr)
                        .required(false)
                })
                .mut_arg("cache_capacity", |a| {
                    a.env(env("CACHE_CAPACITY"))
                        .default_value(self.cache_capacity.to_string())
                        .required(false)
                        .help(format!(
                            "{} the read-through cache holds",
                            capitalised(self.records)
                        ))
                })
                .mut_arg("cache_ttl_secs", |a| {
                    a.env(env("CACHE_TTL_SECS"))
                        .default_value(self.cache_ttl.as_secs().to_string())
                        .required(false)
                })
            })
            .mut_subcommand("seed", |s| {
                s.about(format!(
                    "Migrate, then load the seeded synthetic {} (idempotent).",
                    self.records
                ))
                .mut_arg("count", |a| {
                    a.long(self.records)
                        .value_parser(clap::value_parser!(u64).range(1..=max_count))
                        .default_value(default_count.to_string())
                        .required(false)
                        .value_name("N")
                        .help(format!("Number of {}", self.records))
                })
            })
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// How one metadata service seeds and answers.
pub trait MetadataBinary {
    /// Its names, defaults and sizes.
    const SPEC: MetadataSpec;
    /// The record its table holds.
    type Record: MetadataRecord;
    /// The handler stack it serves.
    type Handler: Service<Request, Response = Response> + Clone + Send + Sync + 'static;

    /// Writes `count` records of the world of `seed`; returns how many.
    fn seed(
        store: &RecordStore<Self::Record>,
        seed: u64,
        count: u64,
    ) -> impl Future<Output = anyhow::Result<u64>>;
    /// The responder over `service`, and its metrics layer.
    fn responder(
        service: MetadataService<RecordStore<Self::Record>>,
    ) -> anyhow::Result<(Arc<Responder<Self::Handler>>, RpcMetricsLayer)>;
}

/// The whole `main` of the service `B`: parses the command line, starts
/// telemetry, connects to the database in the configured schema, applies the
/// migrations, runs the command; flushes buffered spans before it returns.
pub async fn metadata_main<B>() -> anyhow::Result<()>
where
    B: MetadataBinary,
    <B::Handler as Service<Request>>::Error: Into<avro_rpc::BoxError>,
    <B::Handler as Service<Request>>::Future: Send,
{
    let spec = B::SPEC;
    let config = Config::from_arg_matches(&spec.command().get_matches())?;
    telemetry::init(spec.service, &config.common.log, config.common.log_format)?;
    let pool = db::connect(&config.db, &config.db_schema).await?;
    let store = RecordStore::<B::Record>::new(pool.clone());
    store.migrate().await?;
    match config.command {
        Command::Migrate => tracing::info!("migrations applied"),
        Command::Seed { count, seed } => {
            let started = Instant::now();
            let written = B::seed(&store, seed, count).await?;
            eprintln!(
                "seeded {written} {} in {:.1}s; {} stored",
                spec.records,
                started.elapsed().as_secs_f64(),
                store.count().await?
            );
        }
        Command::Serve {
            rpc_addr,
            rpc_http_addr,
            cache_capacity,
            cache_ttl_secs,
        } => {
            let addrs = RpcAddrs {
                socket: rpc_addr,
                http: rpc_http_addr,
            };
            let admin = config.common.admin_addr_or(spec.admin_addr);
            let ttl = Duration::from_secs(cache_ttl_secs);
            run_database_service(spec.service, pool, addrs, admin, || {
                B::responder(MetadataService::new(
                    store,
                    spec.records,
                    cache_capacity,
                    ttl,
                ))
            })
            .await?;
        }
    }
    // Spans still buffered go out before the process does.
    telemetry::shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: MetadataSpec = MetadataSpec {
        service: "thing-svc",
        version: "0.0.1",
        about: "Things.",
        protocol: "ThingService",
        env_prefix: "THING_SVC",
        records: "things",
        schema: "thing_svc",
        seed_count: (50, 100),
        rpc_addr: "127.0.0.1:7901",
        rpc_http_addr: "127.0.0.1:7902",
        admin_addr: SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::LOCALHOST,
            9901,
        )),
        cache_capacity: 10,
        cache_ttl: Duration::from_secs(3),
    };

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let matches = SPEC.command().try_get_matches_from(args)?;
        Config::from_arg_matches(&matches)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        SPEC.command().debug_assert();
    }

    #[test]
    fn serve_takes_the_specs_defaults() {
        let config = parse(&["thing-svc", "serve"]).expect("parses");
        assert_eq!(config.db_schema, "thing_svc");
        match config.command {
            Command::Serve {
                rpc_addr,
                rpc_http_addr,
                cache_capacity,
                cache_ttl_secs,
            } => {
                assert_eq!(rpc_addr.to_string(), "127.0.0.1:7901");
                assert_eq!(rpc_http_addr.to_string(), "127.0.0.1:7902");
                assert_eq!((cache_capacity, cache_ttl_secs), (10, 3));
            }
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn seed_counts_under_the_records_name_within_its_range() {
        let config = parse(&["thing-svc", "seed", "--things", "70"]).expect("parses");
        assert!(matches!(config.command, Command::Seed { count: 70, .. }));
        let config = parse(&["thing-svc", "seed"]).expect("parses");
        assert!(matches!(config.command, Command::Seed { count: 50, .. }));
        let too_many = parse(&["thing-svc", "seed", "--things", "101"]);
        assert!(too_many.is_err(), "101 is above the spec's 100");
        assert!(parse(&["thing-svc", "seed", "--count", "7"]).is_err());
    }

    #[test]
    fn help_names_the_service_and_its_env() {
        let help = SPEC
            .command()
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        assert!(help.contains("THING_SVC_RPC_ADDR"), "{help}");
        assert!(
            help.contains("Things the read-through cache holds"),
            "{help}"
        );
        assert!(help.contains("ThingService"), "{help}");
    }
}
