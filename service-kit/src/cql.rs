//! CQL text that does not need the driver: the keyspace-name check every
//! Cassandra user of cinerec (review-svc, the recommender, reconcile, rollup)
//! runs before a keyspace name goes into a statement.

/// Checks a keyspace name before it is spliced into CQL (keyspaces cannot be
/// bound as parameters): 1–48 of `[a-z0-9_]`, starting with a letter. That is
/// Cassandra's unquoted-identifier rule, in lowercase because unquoted names
/// are folded to lowercase: `Recs` in a statement would name keyspace `recs`.
pub fn check_keyspace(keyspace: &str) -> Result<(), String> {
    let ok = keyspace.len() <= 48
        && keyspace
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_lowercase)
        && keyspace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "keyspace name {keyspace:?} must be 1-48 of [a-z0-9_], starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_keyspace;

    #[test]
    fn accepts_unquoted_lowercase_names_only() {
        for ok in ["recommender", "review_svc", "k1", &"a".repeat(48)] {
            assert!(check_keyspace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1ks",
            "_ks",
            "Recs",
            "ks-1",
            "ks;DROP",
            "ks.t",
            "ks name",
            "ké",
            &"a".repeat(49),
        ] {
            let e = check_keyspace(bad).expect_err(bad);
            assert!(e.contains("keyspace name"), "{e}");
        }
    }
}
