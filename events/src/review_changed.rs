//! `ReviewChanged` (`protocols/review_changed.avsc`): one change of a review,
//! published by review-svc's CDC relay to `reviews.changed`, keyed by
//! `review_id`. Ids only: consumers fetch the latest review over Avro RPC.

use std::sync::LazyLock;

use crate::codec::{CodecError, SingleObjectCodec};

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

pub use crate::generated::{ChangeOp, ReviewChanged};

impl ReviewChanged {
    /// The Kafka record key: every change of a review in one partition, in order.
    pub fn key(&self) -> String {
        self.review_id.to_string()
    }

    /// Single-object encoding.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec().encode(self.to_value())
    }

    /// Decodes a payload of any known writer schema.
    pub fn decode(bytes: &[u8]) -> Result<ReviewChanged, CodecError> {
        Ok(Self::from_value(codec().decode(bytes)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: ChangeOp) -> ReviewChanged {
        ReviewChanged {
            op,
            ..crate::golden_wire::review_changed()
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
