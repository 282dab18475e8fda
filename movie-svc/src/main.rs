//! The movie-svc binary: `serve` (MovieService over Avro RPC, socket and
//! HTTP, and the admin port), `migrate`, `seed`. Everything but its names,
//! defaults, seed and responder is service-kit's `metadata_main`.

use std::sync::Arc;

use avro_rpc::server::Responder;
use cinerec_service_kit::defaults;
use cinerec_service_kit::metadata::{MetadataBinary, MetadataSpec, metadata_main};
use cinerec_service_kit::rpc::RpcMetricsLayer;
use movie_svc::service::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, Movies};
use movie_svc::store::{Movie, MovieStore};

/// mimalloc instead of glibc malloc: allocation was about a quarter of
/// movie-svc's warm-path CPU (service-kit's README, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct MovieSvc;

impl MetadataBinary for MovieSvc {
    const SPEC: MetadataSpec = MetadataSpec {
        service: "movie-svc",
        version: env!("CARGO_PKG_VERSION"),
        about: "Movie metadata service: MovieService over Avro RPC, backed by CockroachDB.",
        protocol: "MovieService",
        env_prefix: "MOVIE_SVC",
        records: "movies",
        schema: movie_svc::DEFAULT_SCHEMA,
        seed_count: (50_000, 10_000_000),
        rpc_addr: defaults::DEFAULT_MOVIE_RPC_ADDR,
        rpc_http_addr: defaults::DEFAULT_MOVIE_RPC_HTTP_ADDR,
        admin_addr: defaults::MOVIE_SVC_ADMIN_ADDR,
        cache_capacity: DEFAULT_CACHE_CAPACITY,
        cache_ttl: DEFAULT_CACHE_TTL,
    };
    type Record = Movie;
    type Handler = movie_svc::rpc::Handler;

    async fn seed(store: &MovieStore, seed: u64, count: u64) -> anyhow::Result<u64> {
        // The other dimension of the world does not shape these rows.
        let world = cinerec_catalog::Catalog::new(seed, count, 1);
        Ok(movie_svc::seed::seed(store, &world, 10_000).await?)
    }

    fn responder(
        movies: Movies,
    ) -> anyhow::Result<(Arc<Responder<Self::Handler>>, RpcMetricsLayer)> {
        movie_svc::rpc::responder(movies)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    metadata_main::<MovieSvc>().await
}
