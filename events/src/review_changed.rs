//! `ReviewChanged` (`protocols/review_changed.avsc`): one change of a review,
//! published by review-svc's CDC relay to `reviews.changed`, keyed by
//! `review_id`. Ids only: consumers fetch the latest review over Avro RPC.

use std::sync::LazyLock;

use apache_avro::types::Value;
use uuid::Uuid;

use crate::codec::{CodecError, Record, SingleObjectCodec};

/// The contract file, compiled in.
pub const SCHEMA_JSON: &str = include_str!("../../protocols/review_changed.avsc");

static CODEC: LazyLock<SingleObjectCodec> = LazyLock::new(|| {
    // Compiled in and parsed by the unit tests: a failure is a build defect.
    SingleObjectCodec::parse(SCHEMA_JSON, &[])
        .expect("protocols/review_changed.avsc is a valid schema")
});

/// The codec of `reviews.changed` payloads (reader = the current schema).
pub fn codec() -> &'static SingleObjectCodec {
    &CODEC
}

/// What a change did (the `ChangeOp` enum of the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// Version 1.
    Create,
    /// A later version with new content.
    Update,
    /// A tombstone version.
    Delete,
}

impl ChangeOp {
    /// The schema symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "CREATE",
            ChangeOp::Update => "UPDATE",
            ChangeOp::Delete => "DELETE",
        }
    }

    /// The symbol's index in the schema.
    pub fn index(self) -> u32 {
        match self {
            ChangeOp::Create => 0,
            ChangeOp::Update => 1,
            ChangeOp::Delete => 2,
        }
    }

    /// Parses a schema symbol.
    pub fn parse(s: &str) -> Option<ChangeOp> {
        match s {
            "CREATE" => Some(ChangeOp::Create),
            "UPDATE" => Some(ChangeOp::Update),
            "DELETE" => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// One change of a review: ids only, never review data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewChanged {
    /// Unique per change `(review_id, version)`, the same on every redelivery.
    pub event_id: Uuid,
    /// The review (also the record key).
    pub review_id: Uuid,
    /// Its author.
    pub user_id: i64,
    /// The version this change created; per review strictly increasing.
    pub version: i64,
    /// What the change did.
    pub op: ChangeOp,
    /// When review-svc accepted the change (µs since the epoch).
    pub changed_at_us: i64,
}

impl ReviewChanged {
    /// The Kafka record key: every change of a review in one partition, in order.
    pub fn key(&self) -> String {
        self.review_id.to_string()
    }

    /// Single-object encoding.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec().encode(Value::Record(vec![
            ("event_id".into(), Value::Uuid(self.event_id)),
            ("review_id".into(), Value::Uuid(self.review_id)),
            ("user_id".into(), Value::Long(self.user_id)),
            ("version".into(), Value::Long(self.version)),
            (
                "op".into(),
                Value::Enum(self.op.index(), self.op.as_str().into()),
            ),
            (
                "changed_at".into(),
                Value::TimestampMicros(self.changed_at_us),
            ),
        ]))
    }

    /// Decodes a payload of any known writer schema.
    pub fn decode(bytes: &[u8]) -> Result<ReviewChanged, CodecError> {
        Self::from_value(codec().decode(bytes)?)
    }

    /// The typed event from a value already resolved to the current schema.
    pub fn from_value(value: Value) -> Result<ReviewChanged, CodecError> {
        let r = Record::new(value)?;
        let op = r.symbol("op")?;
        Ok(ReviewChanged {
            event_id: r.uuid("event_id")?,
            review_id: r.uuid("review_id")?,
            user_id: r.long("user_id")?,
            version: r.long("version")?,
            op: ChangeOp::parse(op).ok_or_else(|| CodecError::Shape(format!("op: {op}")))?,
            changed_at_us: r.long("changed_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: ChangeOp) -> ReviewChanged {
        ReviewChanged {
            event_id: Uuid::new_v4(),
            review_id: Uuid::new_v4(),
            user_id: 42,
            version: 7,
            op,
            changed_at_us: 1_700_000_000_000_123,
        }
    }

    #[test]
    fn round_trips_every_op() {
        for op in [ChangeOp::Create, ChangeOp::Update, ChangeOp::Delete] {
            let e = sample(op);
            let bytes = e.encode().expect("encodes");
            assert_eq!(ReviewChanged::decode(&bytes).expect("decodes"), e);
        }
    }

    #[test]
    fn payload_names_the_contract_schema() {
        let bytes = sample(ChangeOp::Create).encode().expect("encodes");
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let schema = apache_avro::Schema::parse_str(SCHEMA_JSON).expect("schema");
        assert_eq!(&bytes[2..10], &crate::codec::Fingerprint::of(&schema).0[..]);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b""[..],
            b"\xC3\x01",
            b"\xC3\x01\0\0\0\0\0\0\0\0\xff",
            b"hello world!",
        ] {
            assert!(ReviewChanged::decode(bad).is_err());
        }
        // The right header, a datum that stops short.
        let bytes = sample(ChangeOp::Update).encode().expect("encodes");
        for cut in 10..bytes.len() {
            assert!(ReviewChanged::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }
}
