//! Redis RESP2: `SET key value NX PX ms`, `SET key value PX ms`, `GET`, `DEL`.
//!
//! We speak RESP ourselves rather than through the `redis` crate: we need
//! four commands, and owning the connection lets both backends share one
//! pipelined connection core with the same timeouts, reconnect backoff and
//! bounded parsing, so a Redis zone fails exactly like a memcached zone.
//! A claim is `SET NX PX` followed by `GET` in the same write (one round trip,
//! works on any Redis ≥ 2.6.12, unlike `SET … NX GET` which needs 7.0).

use std::time::Duration;

use bytes::{Buf, BytesMut};

use super::{Expect, Op, Reply, line, parse_num, push_num};
use crate::error::{Error, ErrorKind, Result};

/// `PX` argument for `ttl`: milliseconds rounded up, at least 1.
pub(crate) fn px(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u64::try_from(ms).unwrap_or(u64::MAX / 2)
}

fn bulk(buf: &mut BytesMut, arg: &[u8]) {
    buf.extend_from_slice(b"$");
    push_num(buf, arg.len() as u64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(arg);
    buf.extend_from_slice(b"\r\n");
}

fn array(buf: &mut BytesMut, n: u64) {
    buf.extend_from_slice(b"*");
    push_num(buf, n);
    buf.extend_from_slice(b"\r\n");
}

pub(crate) fn encode(op: &Op<'_>, buf: &mut BytesMut) {
    match *op {
        Op::Add { key, value, ttl } | Op::Set { key, value, ttl } => {
            let nx = matches!(op, Op::Add { .. });
            buf.reserve(key.len() + value.len() + 64);
            array(buf, if nx { 6 } else { 5 });
            bulk(buf, b"SET");
            bulk(buf, key.as_bytes());
            bulk(buf, value);
            if nx {
                bulk(buf, b"NX");
            }
            bulk(buf, b"PX");
            let mut n = BytesMut::new();
            push_num(&mut n, px(ttl));
            bulk(buf, &n);
        }
        Op::Get { key } => {
            array(buf, 2);
            bulk(buf, b"GET");
            bulk(buf, key.as_bytes());
        }
        Op::Delete { key } => {
            array(buf, 2);
            bulk(buf, b"DEL");
            bulk(buf, key.as_bytes());
        }
    }
}

fn protocol(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, format!("redis: {}", what.into()))
}

pub(crate) fn parse(buf: &mut BytesMut, expect: Expect, max_value: usize) -> Result<Option<Reply>> {
    let Some((l, used)) = line(buf)? else {
        return Ok(None);
    };
    let (&tag, body) = l
        .split_first()
        .ok_or_else(|| protocol("empty reply line"))?;
    let reply = match (tag, expect) {
        (b'-', _) => Reply::ServerError(String::from_utf8_lossy(body).into_owned()),
        (b'+', Expect::Store) if body == b"OK" => Reply::Stored,
        (b'_', Expect::Store) => Reply::NotStored,
        (b'_', Expect::Get) => Reply::Value(None),
        (b':', Expect::Delete) => {
            let n = parse_num(body).ok_or_else(|| protocol("bad integer"))?;
            Reply::Deleted(n > 0)
        }
        (b'$', Expect::Store | Expect::Get) => {
            if body == b"-1" {
                if expect == Expect::Store {
                    Reply::NotStored
                } else {
                    Reply::Value(None)
                }
            } else if expect == Expect::Store {
                return Err(protocol("bulk string reply to SET"));
            } else {
                let len = parse_num(body).ok_or_else(|| protocol("bad bulk length"))?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&n| n <= max_value)
                    .ok_or_else(|| {
                        protocol(format!("value of {len} bytes exceeds limit {max_value}"))
                    })?;
                let total = used + len + 2;
                if buf.len() < total {
                    buf.reserve(total - buf.len());
                    return Ok(None);
                }
                if &buf[used + len..total] != b"\r\n" {
                    return Err(protocol("bulk string not terminated by \\r\\n"));
                }
                buf.advance(used);
                let data = buf.split_to(len).freeze();
                buf.advance(2);
                return Ok(Some(Reply::Value(Some(data))));
            }
        }
        _ => {
            return Err(protocol(format!(
                "unexpected reply {:?} to a {expect:?}",
                String::from_utf8_lossy(&l[..l.len().min(64)])
            )));
        }
    };
    buf.advance(used);
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut b = BytesMut::new();
        encode(
            &Op::Add {
                key: "ns:k",
                value: b"I",
                ttl: Duration::from_micros(1500),
            },
            &mut b,
        );
        assert_eq!(
            &b[..],
            &b"*6\r\n$3\r\nSET\r\n$4\r\nns:k\r\n$1\r\nI\r\n$2\r\nNX\r\n$2\r\nPX\r\n$1\r\n2\r\n"[..]
        );
        b.clear();
        encode(&Op::Delete { key: "k" }, &mut b);
        assert_eq!(&b[..], b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
    }

    #[test]
    fn parses_pipelined_replies() {
        let mut buf = BytesMut::from(&b"+OK\r\n$1\r\nI\r\n$-1\r\n$-1\r\n:1\r\n-ERR oom\r\n"[..]);
        let ex = [
            Expect::Store,
            Expect::Get,
            Expect::Store,
            Expect::Get,
            Expect::Delete,
            Expect::Store,
        ];
        let got: Vec<_> = ex
            .iter()
            .map(|&e| parse(&mut buf, e, 16).ok().flatten())
            .collect();
        assert_eq!(
            got,
            vec![
                Some(Reply::Stored),
                Some(Reply::Value(Some(bytes::Bytes::from_static(b"I")))),
                Some(Reply::NotStored),
                Some(Reply::Value(None)),
                Some(Reply::Deleted(true)),
                Some(Reply::ServerError("ERR oom".into())),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_and_bad_input() {
        let full = b"$3\r\nabc\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                parse(&mut buf, Expect::Get, 16).ok(),
                Some(None),
                "cut {cut}"
            );
        }
        for bad in [
            &b"$99\r\n"[..],
            b"$3\r\nabcde\r\n",
            b"*1\r\n",
            b":x\r\n",
            b"$-2\r\n",
            b"\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let e =
                parse(&mut buf, Expect::Get, 16).and_then(|_| parse(&mut buf, Expect::Delete, 16));
            assert_eq!(
                e.map_err(|e| e.kind()).err(),
                Some(ErrorKind::Protocol),
                "{bad:?}"
            );
        }
    }
}
