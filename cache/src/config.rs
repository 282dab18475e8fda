//! Typed configuration: the namespace, the zone URLs and the timing limits,
//! parsed once. Defaults are the `DEFAULT_*` constants.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::key::validate_namespace;

/// Per-operation timeout of one zone (connect + request + reply).
///
/// EVCache clients run with read timeouts in the tens of milliseconds; we
/// allow more because a loaded two-core development machine shares its CPU
/// with Kafka and Cassandra, and a spurious timeout costs a reconnect.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a zone that failed is skipped (fails fast) before it is tried again.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Largest value accepted on write and on read: memcached's default item size.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;
/// Requests that may queue for one connection before callers wait.
pub const DEFAULT_QUEUE_DEPTH: usize = 4096;

/// The wire protocol a zone speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// memcached text protocol (`add`/`set`/`get`/`delete`), EVCache's wire protocol.
    Memcached,
    /// Redis RESP2 (`SET NX PX`, `GET`, `DEL`).
    Redis,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Memcached => "memcached",
            Backend::Redis => "redis",
        })
    }
}

/// One replica (zone): a backend and a `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoneAddr {
    /// Protocol spoken by the server.
    pub backend: Backend,
    /// Host name or IP literal.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl ZoneAddr {
    /// Parse `memcached://host:port` or `redis://host:port`.
    ///
    /// Paths, credentials and query strings are rejected rather than ignored,
    /// so a URL meant for a database index or a password does not silently
    /// connect somewhere else.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("cache url {url:?}: {why}"),
            )
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected memcached://host:port or redis://host:port"))?;
        let backend = match scheme {
            "memcached" => Backend::Memcached,
            "redis" => Backend::Redis,
            _ => return Err(bad("scheme must be memcached or redis")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', '#']) {
            return Err(bad(
                "only host:port is supported (no path, credentials or query)",
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, p) = v6
                .split_once("]:")
                .ok_or_else(|| bad("expected [ipv6]:port"))?;
            (h, p)
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("missing :port"))?
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port is not a number 1-65535"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(ZoneAddr {
            backend,
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port` for `TcpStream::connect`.
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ZoneAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.backend, self.socket_addr())
    }
}

/// Everything a [`Cache`](crate::Cache) needs, parsed and validated.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Key prefix of this cache: one per consumer (e.g. `enricher`,
    /// `recommender`), so their claims never collide.
    pub namespace: String,
    /// Replicas in preference order: the first is the local zone, read first.
    pub zones: Vec<ZoneAddr>,
    /// Bound on one operation against one zone, connect included.
    pub op_timeout: Duration,
    /// How long a failed zone is skipped before it is tried again.
    pub retry_interval: Duration,
    /// Largest value written or accepted from a server.
    pub max_value_size: usize,
    /// Requests queued per connection before callers wait for room.
    pub queue_depth: usize,
}

impl CacheConfig {
    /// A config with default limits for `namespace` over the zones listed in
    /// `urls`, separated by commas and/or whitespace
    /// (e.g. `"memcached://10.0.0.1:11211,memcached://10.0.1.1:11211"`).
    pub fn new(namespace: impl Into<String>, urls: &str) -> Result<Self> {
        let namespace = namespace.into();
        validate_namespace(&namespace)?;
        let zones = urls
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(ZoneAddr::parse)
            .collect::<Result<Vec<_>>>()?;
        if zones.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "no cache url given (expected memcached://host:port or redis://host:port)",
            ));
        }
        Ok(CacheConfig {
            namespace,
            zones,
            op_timeout: DEFAULT_OP_TIMEOUT,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            queue_depth: DEFAULT_QUEUE_DEPTH,
        })
    }

    /// Replace the per-operation timeout.
    pub fn op_timeout(mut self, t: Duration) -> Self {
        self.op_timeout = t;
        self
    }

    /// Replace the interval a failed zone is skipped.
    pub fn retry_interval(mut self, t: Duration) -> Self {
        self.retry_interval = t;
        self
    }

    /// Replace the value size limit.
    pub fn max_value_size(mut self, n: usize) -> Self {
        self.max_value_size = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_namespace(&self.namespace)?;
        let bad = |why: &str| Error::new(ErrorKind::InvalidConfig, why.to_owned());
        if self.zones.is_empty() {
            return Err(bad("no zones"));
        }
        if self.op_timeout.is_zero() {
            return Err(bad("op_timeout must be > 0"));
        }
        if self.max_value_size == 0 || self.queue_depth == 0 {
            return Err(bad("max_value_size and queue_depth must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_lists() {
        let c = CacheConfig::new(
            "enricher",
            "memcached://127.0.0.1:11311, redis://[::1]:6379/",
        )
        .expect("valid");
        assert_eq!(c.zones.len(), 2);
        assert_eq!(c.zones[0].backend, Backend::Memcached);
        assert_eq!(c.zones[0].socket_addr(), "127.0.0.1:11311");
        assert_eq!(c.zones[1].backend, Backend::Redis);
        assert_eq!(c.zones[1].socket_addr(), "[::1]:6379");
    }

    #[test]
    fn rejects_bad_urls() {
        for u in [
            "",
            "http://a:1",
            "redis://a",
            "redis://a:0",
            "redis://a:99999",
            "redis://:1",
            "redis://u:p@a:1",
            "redis://a:1/2",
        ] {
            let e = CacheConfig::new("ns", u).expect_err(u);
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{u}");
        }
        let e = CacheConfig::new("bad ns", "redis://a:1").expect_err("ns");
        assert_eq!(e.kind(), ErrorKind::InvalidKey);
    }
}
