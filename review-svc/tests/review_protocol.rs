//! `protocols/review.avpr` is ready for the Avro RPC code generator: it
//! parses and validates as a protocol, `getReview`/`getReviews` are
//! idempotent (retryable) with the declared errors, and the generator turns
//! it into code (review-svc's `build.rs` generates its server from it; the
//! server's behaviour is tested in `rpc.rs`).

const REVIEW_AVPR: &str = include_str!("../../protocols/review.avpr");

#[test]
fn review_protocol_parses_and_generates() -> anyhow::Result<()> {
    let protocol = avro_rpc::protocol::Protocol::parse(REVIEW_AVPR)?;
    assert_eq!(protocol.name(), "ReviewService");
    for name in ["getReview", "getReviews"] {
        let message = protocol
            .message(name)
            .ok_or_else(|| anyhow::anyhow!("{name} missing"))?;
        assert!(message.is_idempotent(), "{name} is retryable");
    }
    let code = avro_rpc_build::generate(REVIEW_AVPR)?;
    assert!(code.contains("get_review"), "a typed getReview");
    Ok(())
}
