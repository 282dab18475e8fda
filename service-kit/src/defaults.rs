//! The one set of default addresses: where every binary, bench and test
//! looks for the local stack when no flag or environment variable says
//! otherwise. They are `dev/stack`'s ports (`dev/ports.env`), which avoid the
//! standard ones so a system PostgreSQL or Redis can keep running. The
//! services' own RPC addresses are here too, so a server and its clients
//! cannot disagree on a default.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_zone_list_is_the_two_zones() {
        assert_eq!(
            DEFAULT_MEMCACHED_URLS,
            format!("{DEFAULT_MEMCACHED_URL},{DEFAULT_MEMCACHED2_URL}")
        );
    }
}
