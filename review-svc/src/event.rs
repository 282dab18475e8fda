//! The `ReviewChanged` Kafka event (`protocols/review_changed.avsc`), defined
//! once in `cinerec-events` and shared with its consumers (the enricher), so
//! the writer and the readers can never disagree on the bytes: Avro
//! single-object encoding (`C3 01`, CRC-64-AVRO fingerprint, datum), resolved
//! by readers through the fingerprint as the schema evolves.

pub use cinerec_events::{ChangeOp, ReviewChanged};

use crate::model::Op;

impl From<Op> for ChangeOp {
    fn from(op: Op) -> ChangeOp {
        match op {
            Op::Create => ChangeOp::Create,
            Op::Update => ChangeOp::Update,
            Op::Delete => ChangeOp::Delete,
        }
    }
}
