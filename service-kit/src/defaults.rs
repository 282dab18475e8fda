//! The one set of default addresses: where every binary, bench and test
//! looks for the local stack when no flag or environment variable says
//! otherwise. They are `dev/stack`'s ports (`dev/ports.env`), which avoid the
//! standard ones so a system PostgreSQL or Redis can keep running.

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
