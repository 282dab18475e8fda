//! A "server" that answers with garbage or absurd lengths: the cache treats it
//! as a failed zone (degraded claim, counted), never panics, never allocates
//! what the bytes claim, and keeps working with the healthy zone.

mod common;

use std::time::Duration;

use cinerec_cache::{Backend, Claim, ErrorKind};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const TTL: Duration = Duration::from_secs(60);

/// Accept connections and answer every read with `reply`.
async fn junk_server(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

async fn garbled(backend: Backend, replies: &[&'static [u8]]) {
    let (live, _) = urls(backend);
    require(&live);
    for &reply in replies {
        let port = junk_server(reply).await;
        let junk = format!("{backend}://127.0.0.1:{port}");
        let cache = cache(&namespace("junk"), &[&junk, &live]);
        let checks = async {
            assert_eq!(
                cache.claim("e", TTL).await.ok(),
                Some(Claim::Claimed { degraded: true }),
                "{reply:?}"
            );
            assert!(cache.commit("e", TTL).await.expect("commit").degraded);
            assert_eq!(cache.claim("e", TTL).await.ok(), Some(Claim::AlreadyDone));
        };
        timeout(HANG_GUARD, checks)
            .await
            .expect("garbage stalled the caller");
        assert!(cache.stats().zone_failures >= 1);

        let only_junk = cache_only(&junk);
        let e = timeout(HANG_GUARD, only_junk.get("x"))
            .await
            .expect("stalled");
        assert_eq!(
            e.map_err(|e| e.kind()).err(),
            Some(ErrorKind::Unavailable),
            "{reply:?}"
        );
    }
}

fn cache_only(url: &str) -> cinerec_cache::Cache {
    cache(&namespace("junk"), &[url])
}

#[tokio::test]
async fn memcached_garbage_is_a_failed_zone() {
    garbled(
        Backend::Memcached,
        &[
            b"HELLO\r\n",
            b"STORED\r\nVALUE k 0 99999999999999\r\n",
            b"STORED\r\nVALUE k 0 18446744073709551615\r\n",
            b"\xff\xfe\r\n\r\n",
            &[b'x'; 8192],
        ],
    )
    .await;
}

#[tokio::test]
async fn redis_garbage_is_a_failed_zone() {
    garbled(
        Backend::Redis,
        &[
            b"+OK\r\n$99999999999999\r\n",
            b"*2\r\n$1\r\na\r\n",
            b"+OK\r\n$1\r\nabc\r\n",
            b":-5\r\n",
            &[b'x'; 8192],
        ],
    )
    .await;
}
