//! The review-svc binary: `serve` (API, ReviewService over Avro RPC, relay),
//! `relay` (relay only), `migrate`, and the dev helper `mint-token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cinerec_service_kit::rpc::{RpcAddrs, RpcListeners};
use cinerec_service_kit::{
    AdminServer, CommonArgs, Readiness, Shutdown, defaults, shutdown, telemetry,
};
use clap::{Parser, Subcommand};
use review_svc::api::{self, AppState};
use review_svc::auth::{Authenticator, Minter};
use review_svc::config::{
    AuthArgs, CqlArgs, DEFAULT_LISTEN, DEFAULT_RPC_ADDR, DEFAULT_RPC_HTTP_ADDR, DirectoryArgs,
    KafkaArgs, RelayArgs,
};
use review_svc::directory;
use review_svc::http_server::{self, HttpArgs};
use review_svc::recommendations::{Recommendations, RecommendationsArgs};
use review_svc::relay::{self, Relay};
use review_svc::rpc;
use review_svc::store::{self, ReviewStore, WRITE_TIMEOUT};

/// mimalloc instead of glibc malloc: allocation was about a quarter of
/// movie-svc's warm-path CPU (service-kit's README, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The public review API, its storage and its change relay.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Config {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    cql: CqlArgs,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API, ReviewService over Avro RPC (and the relay,
    /// unless --no-relay).
    Serve {
        /// Public API address.
        #[arg(long, env = "REVIEW_SVC_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// ReviewService over Avro RPC, socket transport (Java Netty framing).
        #[arg(long, env = "REVIEW_SVC_RPC_ADDR", default_value = DEFAULT_RPC_ADDR)]
        rpc_addr: SocketAddr,
        /// ReviewService over Avro RPC, HTTP transport.
        #[arg(long, env = "REVIEW_SVC_RPC_HTTP_ADDR", default_value = DEFAULT_RPC_HTTP_ADDR)]
        rpc_http_addr: SocketAddr,
        /// Run without the relay (when a separate `relay` process publishes).
        #[arg(long, env = "REVIEW_SVC_NO_RELAY")]
        no_relay: bool,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        directory: DirectoryArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        relay: RelayArgs,
        #[command(flatten)]
        recommendations: RecommendationsArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Only tail the change log into Kafka (any number per keyspace: the
    /// shards are leased among every process that relays).
    Relay {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        relay: RelayArgs,
    },
    /// Create the keyspace, tables, relay checkpoints and the change topic.
    Migrate {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Print a signed token (development and tests only).
    MintToken {
        /// Subject: the user id to act as.
        #[arg(long)]
        sub: String,
        /// Scopes (repeatable), e.g. `--scope admin`.
        #[arg(long)]
        scope: Vec<String>,
        /// Validity in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// HS256 secret (else --rs256-private-key).
        #[arg(long, env = "REVIEW_SVC_JWT_HS256_SECRET", hide_env_values = true)]
        hs256_secret: Option<String>,
        /// PEM file of an RSA private key for RS256.
        #[arg(long, env = "REVIEW_SVC_JWT_RS256_PRIVATE_KEY")]
        rs256_private_key: Option<PathBuf>,
        /// `iss` claim.
        #[arg(long, env = "REVIEW_SVC_JWT_ISSUER", default_value = review_svc::config::DEFAULT_JWT_ISSUER)]
        issuer: String,
        /// `aud` claim.
        #[arg(long, env = "REVIEW_SVC_JWT_AUDIENCE", default_value = review_svc::config::DEFAULT_JWT_AUDIENCE)]
        audience: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Command::MintToken {
        sub,
        scope,
        ttl_secs,
        hs256_secret,
        rs256_private_key,
        issuer,
        audience,
    } = &config.command
    {
        let minter = match (hs256_secret, rs256_private_key) {
            (_, Some(path)) => {
                let pem =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                Minter::rs256(&pem, issuer, audience)?
            }
            (Some(secret), None) => Minter::hs256(secret, issuer, audience),
            (None, None) => anyhow::bail!("pass --hs256-secret or --rs256-private-key"),
        };
        let scopes: Vec<&str> = scope.iter().map(String::as_str).collect();
        println!(
            "{}",
            minter.mint(sub, &scopes, Duration::from_secs(*ttl_secs))?
        );
        return Ok(());
    }
    telemetry::init("review-svc", &config.common.log, config.common.log_format)?;
    let admin_addr = config.common.admin_addr_or(defaults::REVIEW_SVC_ADMIN_ADDR);
    let session = store::connect(&config.cql).await?;
    let result = match config.command {
        Command::MintToken { .. } => Ok(()),
        Command::Migrate { kafka } => {
            store::migrate(&session, &config.cql).await?;
            relay::ensure_topic(&kafka).await?;
            tracing::info!(keyspace = %config.cql.keyspace, topic = %kafka.changes_topic, "migrated");
            Ok(())
        }
        Command::Relay { kafka, relay } => {
            check_settle(&relay)?;
            relay.check_lease().map_err(anyhow::Error::msg)?;
            let store = Arc::new(ReviewStore::new(session, &config.cql).await?);
            let shutdown = shutdown::on_signals()?;
            let relay = Relay::new(
                store.clone(),
                relay::producer(&kafka)?,
                &kafka.changes_topic,
                relay,
            );
            let admin = AdminServer::bind(admin_addr, readiness(&store, Some(&relay))).await?;
            let admin_task = admin.serve(shutdown.clone());
            tracing::info!(topic = %kafka.changes_topic, "relay running");
            let result = relay.run(shutdown.clone()).await;
            shutdown.trigger();
            admin_task.await??;
            Ok(result?)
        }
        Command::Serve {
            listen,
            rpc_addr,
            rpc_http_addr,
            no_relay,
            auth,
            directory,
            kafka,
            relay,
            recommendations,
            http,
        } => {
            check_settle(&relay)?;
            relay.check_lease().map_err(anyhow::Error::msg)?;
            let store = Arc::new(ReviewStore::new(session, &config.cql).await?);
            let recommendations = Arc::new(
                Recommendations::new(
                    store.session().clone(),
                    &recommendations,
                    config.cql.consistency.into(),
                )
                .map_err(anyhow::Error::msg)?,
            );
            let state = AppState {
                store: store.clone(),
                auth: Arc::new(Authenticator::from_args(&auth)?),
                directory: directory::from_args(&directory)?,
            };
            let shutdown = shutdown::on_signals()?;
            let relay = (!no_relay)
                .then(|| -> anyhow::Result<_> {
                    Ok(Relay::new(
                        store.clone(),
                        relay::producer(&kafka)?,
                        &kafka.changes_topic,
                        relay,
                    ))
                })
                .transpose()?;
            let admin = AdminServer::bind(admin_addr, readiness(&store, relay.as_ref())).await?;
            let admin_task = admin.serve(shutdown.clone());
            let relay_task = relay.map(|relay| {
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let result = relay.run(shutdown.clone()).await;
                    // The API without its relay would accept reviews that
                    // never reach Kafka while it runs: stop both.
                    shutdown.trigger();
                    result
                })
            });
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let rpc_listeners = RpcListeners::bind(RpcAddrs {
                socket: rpc_addr,
                http: rpc_http_addr,
            })
            .await?;
            let rpc_bound = rpc_listeners.local_addrs()?;
            let (responder, rpc_metrics) = rpc::responder(store.clone())?;
            let rpc_task = {
                let served = rpc_listeners.serve(responder, rpc_metrics, shutdown.clone());
                let shutdown = shutdown.clone();
                // An RPC server that fails takes the process down with it
                // (the orchestrator restarts it), not just half of it.
                tokio::spawn(async move {
                    let result = served.await.map_err(anyhow::Error::from).and_then(|r| r);
                    shutdown.trigger();
                    result
                })
            };
            tracing::info!(
                listen = %listener.local_addr()?,
                rpc = %rpc_bound.socket,
                rpc_http = %rpc_bound.http,
                relay = !no_relay,
                "serving"
            );
            let served = serve(listener, state, recommendations, http, shutdown.clone()).await;
            shutdown.trigger();
            // RPC calls in flight drain (up to the drain timeout) while the
            // admin port still answers probes.
            let rpc_result = rpc_task.await;
            if let Some(task) = relay_task {
                task.await??;
            }
            admin_task.await??;
            served?;
            rpc_result??;
            Ok(())
        }
    };
    // Spans still buffered go out before the process does.
    telemetry::shutdown();
    result
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    recommendations: Arc<Recommendations>,
    http: HttpArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    http_server::serve(listener, app(state, recommendations, &http), http, shutdown).await?;
    Ok(())
}

/// The API router with its layers, outermost last.
fn app(state: AppState, recommendations: Arc<Recommendations>, http: &HttpArgs) -> axum::Router {
    // Innermost: header size, load shedding and the request deadline, so a
    // shed or timed-out request is still measured and traced.
    // Metrics per route template and status class, inside the span so the
    // span covers them; on the Router so the matched route is known.
    // One server span per request, a child of the caller's `traceparent`;
    // outside the router so every route (and the 404/405 fallbacks) is traced.
    http_server::guard(
        api::router(state).layer(axum::Extension(recommendations)),
        http,
    )
    .layer(axum::middleware::from_fn(
        cinerec_service_kit::http_metrics::http_server_metrics,
    ))
    .layer(axum::middleware::from_fn(
        cinerec_service_kit::trace_context::http_server_span,
    ))
}

/// Ready when Cassandra answers and, if this process relays, every relay
/// shard is making progress.
fn readiness(store: &Arc<ReviewStore>, relay: Option<&Relay>) -> Readiness {
    let store = store.clone();
    let readiness = Readiness::new().with_check("cassandra", move || {
        let session = store.session().clone();
        async move {
            session
                .query_unpaged("SELECT release_version FROM system.local", &[])
                .await
                .map(|_| ())
        }
    });
    match relay.map(Relay::health) {
        Some(health) => {
            readiness.with_check("relay", move || futures::future::ready(health.check()))
        }
        None => readiness,
    }
}

/// The relay's safety rests on this: it must not checkpoint past rows an
/// acknowledged write may still be landing.
fn check_settle(relay: &RelayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        relay.settle() > WRITE_TIMEOUT,
        "--relay-settle-ms must exceed the write timeout ({WRITE_TIMEOUT:?}) plus clock skew"
    );
    Ok(())
}
