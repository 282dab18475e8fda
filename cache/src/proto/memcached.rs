//! memcached text protocol: `add`/`set` with an exptime, `get`, `delete`.
//!
//! The classic text commands are what EVCache's clients speak and what every
//! memcached (and mcrouter) understands. A claim is `add` followed by `get` in
//! the same write, so one round trip both takes the key and tells who holds it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};

use super::{Expect, Op, Reply, line, parse_num, push_num};
use crate::error::{Error, ErrorKind, Result};

/// exptimes above this many seconds are read by memcached as a unix timestamp.
const RELATIVE_LIMIT_SECS: u64 = 30 * 24 * 3600;

/// memcached's exptime for `ttl`: whole seconds rounded up (at least 1, since
/// 0 would mean "never expires"), absolute beyond 30 days.
pub(crate) fn exptime(ttl: Duration) -> u64 {
    let secs = ttl.as_millis().div_ceil(1000).max(1);
    let secs = u64::try_from(secs).unwrap_or(u64::MAX / 2);
    if secs <= RELATIVE_LIMIT_SECS {
        secs
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.saturating_add(secs)
    }
}

pub(crate) fn encode(op: &Op<'_>, buf: &mut BytesMut) {
    match *op {
        Op::Add { key, value, ttl } => storage(b"add ", key, value, ttl, buf),
        Op::Set { key, value, ttl } => storage(b"set ", key, value, ttl, buf),
        Op::Get { key } => {
            buf.extend_from_slice(b"get ");
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        Op::Delete { key } => {
            buf.extend_from_slice(b"delete ");
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
    }
}

fn storage(cmd: &[u8], key: &str, value: &[u8], ttl: Duration, buf: &mut BytesMut) {
    buf.reserve(cmd.len() + key.len() + value.len() + 40);
    buf.extend_from_slice(cmd);
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b" 0 ");
    push_num(buf, exptime(ttl));
    buf.extend_from_slice(b" ");
    push_num(buf, value.len() as u64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

fn protocol(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Protocol, format!("memcached: {}", what.into()))
}

fn server_error(l: &[u8]) -> Option<Reply> {
    if l == b"ERROR" || l.starts_with(b"SERVER_ERROR") || l.starts_with(b"CLIENT_ERROR") {
        Some(Reply::ServerError(String::from_utf8_lossy(l).into_owned()))
    } else {
        None
    }
}

pub(crate) fn parse(buf: &mut BytesMut, expect: Expect, max_value: usize) -> Result<Option<Reply>> {
    let Some((l, used)) = line(buf)? else {
        return Ok(None);
    };
    if let Some(r) = server_error(l) {
        buf.advance(used);
        return Ok(Some(r));
    }
    if expect == Expect::Get && l.starts_with(b"VALUE ") {
        let len = value_len(l, max_value)?;
        return value_body(buf, used, len);
    }
    let reply = match (expect, l) {
        (Expect::Store, b"STORED") => Reply::Stored,
        (Expect::Store, b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND") => Reply::NotStored,
        (Expect::Delete, b"DELETED") => Reply::Deleted(true),
        (Expect::Delete, b"NOT_FOUND") => Reply::Deleted(false),
        (Expect::Get, b"END") => Reply::Value(None),
        (_, l) => {
            return Err(protocol(format!(
                "unexpected reply {:?} to a {expect:?}",
                String::from_utf8_lossy(&l[..l.len().min(64)])
            )));
        }
    };
    buf.advance(used);
    Ok(Some(reply))
}

/// The data length announced by `VALUE <key> <flags> <bytes> [<cas>]`.
fn value_len(header: &[u8], max_value: usize) -> Result<usize> {
    let mut parts = header.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (Some(_value), Some(_key), Some(flags), Some(len)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(protocol("short VALUE line"));
    };
    if parse_num(flags).is_none() {
        return Err(protocol("bad flags in VALUE line"));
    }
    let len = parse_num(len).ok_or_else(|| protocol("bad length in VALUE line"))?;
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= max_value)
        .ok_or_else(|| protocol(format!("value of {len} bytes exceeds limit {max_value}")))
}

/// `<data>\r\nEND\r\n` after a `VALUE` line of `used` bytes, consumed only
/// once it is all there.
fn value_body(buf: &mut BytesMut, used: usize, len: usize) -> Result<Option<Reply>> {
    let data_end = used + len;
    let total = data_end + 2 + b"END\r\n".len();
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if &buf[data_end..total] != b"\r\nEND\r\n" {
        return Err(protocol("VALUE data not followed by \\r\\nEND\\r\\n"));
    }
    buf.advance(used);
    let data = buf.split_to(len).freeze();
    buf.advance(2 + 5);
    Ok(Some(Reply::Value(Some(data))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], expects: &[Expect]) -> Result<Vec<Option<Reply>>> {
        let mut buf = BytesMut::from(input);
        expects.iter().map(|&e| parse(&mut buf, e, 16)).collect()
    }

    #[test]
    fn encodes_commands() {
        let mut b = BytesMut::new();
        encode(
            &Op::Add {
                key: "ns:k",
                value: b"I",
                ttl: Duration::from_millis(1500),
            },
            &mut b,
        );
        encode(&Op::Get { key: "ns:k" }, &mut b);
        encode(&Op::Delete { key: "ns:k" }, &mut b);
        assert_eq!(
            &b[..],
            b"add ns:k 0 2 1\r\nI\r\nget ns:k\r\ndelete ns:k\r\n"
        );
        assert_eq!(exptime(Duration::ZERO), 1);
        assert!(exptime(Duration::from_secs(40 * 24 * 3600)) > RELATIVE_LIMIT_SECS);
    }

    #[test]
    fn parses_pipelined_replies() {
        let r = parse_all(
            b"STORED\r\nVALUE ns:k 0 1\r\nI\r\nEND\r\nNOT_STORED\r\nEND\r\nNOT_FOUND\r\n",
            &[
                Expect::Store,
                Expect::Get,
                Expect::Store,
                Expect::Get,
                Expect::Delete,
            ],
        )
        .expect("parses");
        assert_eq!(
            r,
            vec![
                Some(Reply::Stored),
                Some(Reply::Value(Some(bytes::Bytes::from_static(b"I")))),
                Some(Reply::NotStored),
                Some(Reply::Value(None)),
                Some(Reply::Deleted(false)),
            ]
        );
    }

    #[test]
    fn waits_for_partial_replies() {
        let full = b"VALUE ns:k 0 3\r\nabc\r\nEND\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                parse(&mut buf, Expect::Get, 16).ok(),
                Some(None),
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            &b"VALUE ns:k 0 99\r\n"[..],
            b"VALUE ns:k 0\r\n",
            b"VALUE ns:k x 1\r\nI\r\nEND\r\n",
            b"VALUE ns:k 0 1\r\nIXXEND\r\n",
            b"VALUE ns:k 0 -1\r\n",
            b"VALUE ns:k 0 99999999999999999999999\r\n",
            b"HELLO\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let r = parse(&mut buf, Expect::Get, 16);
            assert_eq!(
                r.map_err(|e| e.kind()).err(),
                Some(ErrorKind::Protocol),
                "{bad:?}"
            );
        }
        let mut long = BytesMut::from(&[b'x'; 5000][..]);
        assert!(parse(&mut long, Expect::Store, 16).is_err());
        let mut err = BytesMut::from(&b"SERVER_ERROR out of memory\r\n"[..]);
        assert!(matches!(
            parse(&mut err, Expect::Store, 16),
            Ok(Some(Reply::ServerError(_)))
        ));
    }
}
