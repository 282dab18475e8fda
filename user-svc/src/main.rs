//! The user-svc binary: `serve` (UserService over Avro RPC, socket and
//! HTTP, and the admin port), `migrate`, `seed`. Everything but its names,
//! defaults, seed and responder is service-kit's `metadata_main`.

use std::sync::Arc;

use avro_rpc::server::Responder;
use cinerec_service_kit::defaults;
use cinerec_service_kit::metadata::{MetadataBinary, MetadataSpec, metadata_main};
use cinerec_service_kit::rpc::RpcMetricsLayer;
use user_svc::service::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, Users};
use user_svc::store::{User, UserStore};

/// mimalloc instead of glibc malloc, as in movie-svc (service-kit's README,
/// "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct UserSvc;

impl MetadataBinary for UserSvc {
    const SPEC: MetadataSpec = MetadataSpec {
        service: "user-svc",
        version: env!("CARGO_PKG_VERSION"),
        about: "User profile service: UserService over Avro RPC, backed by CockroachDB.",
        protocol: "UserService",
        env_prefix: "USER_SVC",
        records: "users",
        schema: user_svc::DEFAULT_SCHEMA,
        seed_count: (1_000_000, 100_000_000),
        rpc_addr: defaults::DEFAULT_USER_RPC_ADDR,
        rpc_http_addr: defaults::DEFAULT_USER_RPC_HTTP_ADDR,
        admin_addr: defaults::USER_SVC_ADMIN_ADDR,
        cache_capacity: DEFAULT_CACHE_CAPACITY,
        cache_ttl: DEFAULT_CACHE_TTL,
    };
    type Record = User;
    type Handler = user_svc::rpc::Handler;

    async fn seed(store: &UserStore, seed: u64, count: u64) -> anyhow::Result<u64> {
        // The other dimension of the world does not shape these rows.
        let world = cinerec_catalog::Catalog::new(seed, 1, count);
        Ok(user_svc::seed::seed(store, &world, 10_000).await?)
    }

    fn responder(users: Users) -> anyhow::Result<(Arc<Responder<Self::Handler>>, RpcMetricsLayer)> {
        user_svc::rpc::responder(users)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    metadata_main::<UserSvc>().await
}
