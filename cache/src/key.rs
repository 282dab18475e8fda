//! Key building and validation. Every key on the wire is
//! `<namespace>:<key>`, and must be something the memcached text protocol can
//! carry (≤ 250 bytes, no whitespace or control bytes); Redis gets the same
//! keys so a cache can move between backends without changing its keys.

use crate::error::{Error, ErrorKind, Result};

/// memcached's key length limit, applied to the full namespaced key.
pub const MAX_KEY_LEN: usize = 250;

fn bad_byte(b: u8) -> bool {
    b <= b' ' || b == 0x7f
}

/// Check a namespace: non-empty, no `:`, and only bytes a key may hold.
pub(crate) fn validate_namespace(ns: &str) -> Result<()> {
    if ns.is_empty() || ns.len() > 64 || ns.bytes().any(|b| bad_byte(b) || b == b':') {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("namespace {ns:?} must be 1-64 bytes without ':', spaces or control bytes"),
        ));
    }
    Ok(())
}

/// `<namespace>:<key>`, validated.
pub(crate) fn full_key(ns: &str, key: &str) -> Result<String> {
    if key.is_empty() || key.bytes().any(bad_byte) {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("key {key:?} must be non-empty without spaces or control bytes"),
        ));
    }
    let len = ns.len() + 1 + key.len();
    if len > MAX_KEY_LEN {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("key {key:?} is {len} bytes with its namespace, limit {MAX_KEY_LEN}"),
        ));
    }
    let mut s = String::with_capacity(len);
    s.push_str(ns);
    s.push(':');
    s.push_str(key);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_validates() {
        assert_eq!(
            full_key("enricher", "evt-1").ok().as_deref(),
            Some("enricher:evt-1")
        );
        for k in ["", "a b", "a\r\nset x", "a\0", &"x".repeat(250)] {
            assert_eq!(
                full_key("ns", k).map_err(|e| e.kind()).err(),
                Some(ErrorKind::InvalidKey),
                "{k:?}"
            );
        }
        assert!(validate_namespace("a:b").is_err());
        assert!(validate_namespace("").is_err());
        assert!(validate_namespace("recommender").is_ok());
    }
}
