//! The one set of default addresses: where every binary, bench and test
//! looks for the local stack when no flag or environment variable says
//! otherwise. They are `dev/stack`'s ports (`dev/ports.env`), which avoid the
//! standard ones so a system PostgreSQL or Redis can keep running. The
//! services' own RPC addresses are here too, so a server and its clients
//! cannot disagree on a default, and so are their admin ports (/healthz,
//! /readyz, /metrics), which `dev/run`, the dashboards and the docs name.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Kafka bootstrap servers (`CINEREC_KAFKA_BROKERS`).
pub const DEFAULT_BROKERS: &str = "127.0.0.1:19092";
/// Cassandra/ScyllaDB contact points (`CINEREC_CQL_NODES`).
pub const DEFAULT_CQL_NODES: &str = "127.0.0.1:19042";
/// The `cinerec` database on the stack's PostgreSQL (`CINEREC_DATABASE_URL`).
pub const DEFAULT_DATABASE_URL: &str = "postgresql://cinerec@127.0.0.1:15432/cinerec";
/// The first Redis zone (`CINEREC_REDIS_URL`).
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:16379";
/// The second Redis zone (`CINEREC_REDIS2_URL`).
pub const DEFAULT_REDIS2_URL: &str = "redis://127.0.0.1:16380";
/// The first memcached zone (`CINEREC_MEMCACHED_URL`).
pub const DEFAULT_MEMCACHED_URL: &str = "memcached://127.0.0.1:11311";
/// The second memcached zone (`CINEREC_MEMCACHED2_URL`).
pub const DEFAULT_MEMCACHED2_URL: &str = "memcached://127.0.0.1:11312";
/// Both memcached zones, local first: the consumers' default cache.
pub const DEFAULT_MEMCACHED_URLS: &str = "memcached://127.0.0.1:11311,memcached://127.0.0.1:11312";

/// movie-svc's MovieService, socket transport (`MOVIE_SVC_RPC_ADDR`; clients: `--movie-rpc`).
pub const DEFAULT_MOVIE_RPC_ADDR: &str = "127.0.0.1:7101";
/// movie-svc's MovieService over HTTP (`MOVIE_SVC_RPC_HTTP_ADDR`).
pub const DEFAULT_MOVIE_RPC_HTTP_ADDR: &str = "127.0.0.1:7102";
/// user-svc's UserService, socket transport (`USER_SVC_RPC_ADDR`; clients: `--user-rpc`).
pub const DEFAULT_USER_RPC_ADDR: &str = "127.0.0.1:7201";
/// user-svc's UserService over HTTP (`USER_SVC_RPC_HTTP_ADDR`).
pub const DEFAULT_USER_RPC_HTTP_ADDR: &str = "127.0.0.1:7202";
/// review-svc's ReviewService, socket transport (`REVIEW_SVC_RPC_ADDR`; clients: `--review-rpc`).
pub const DEFAULT_REVIEW_RPC_ADDR: &str = "127.0.0.1:7301";
/// review-svc's ReviewService over HTTP (`REVIEW_SVC_RPC_HTTP_ADDR`).
pub const DEFAULT_REVIEW_RPC_HTTP_ADDR: &str = "127.0.0.1:7302";

/// review-svc's public HTTP API (`REVIEW_SVC_LISTEN`).
pub const DEFAULT_REVIEW_API_ADDR: &str = "127.0.0.1:8083";
/// [`DEFAULT_REVIEW_API_ADDR`] as the URL its clients (loadgen) call.
pub const DEFAULT_REVIEW_API_URL: &str = "http://127.0.0.1:8083";

/// `127.0.0.1:port`.
const fn local(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// review-svc's admin port (`CINEREC_ADMIN_ADDR` overrides every service's).
pub const REVIEW_SVC_ADMIN_ADDR: SocketAddr = local(9083);
/// The enricher's admin port.
pub const ENRICHER_ADMIN_ADDR: SocketAddr = local(9084);
/// The recommender's admin port.
pub const RECOMMENDER_ADMIN_ADDR: SocketAddr = local(9085);
/// rollup's admin port.
pub const ROLLUP_ADMIN_ADDR: SocketAddr = local(9086);
/// stream-lag's admin port.
pub const STREAM_LAG_ADMIN_ADDR: SocketAddr = local(9087);
/// movie-svc's admin port.
pub const MOVIE_SVC_ADMIN_ADDR: SocketAddr = local(9101);
/// user-svc's admin port.
pub const USER_SVC_ADMIN_ADDR: SocketAddr = local(9201);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_api_url_is_its_address() {
        assert_eq!(
            DEFAULT_REVIEW_API_URL,
            format!("http://{DEFAULT_REVIEW_API_ADDR}")
        );
    }

    #[test]
    fn the_two_zone_list_is_the_two_zones() {
        assert_eq!(
            DEFAULT_MEMCACHED_URLS,
            format!("{DEFAULT_MEMCACHED_URL},{DEFAULT_MEMCACHED2_URL}")
        );
    }
}
