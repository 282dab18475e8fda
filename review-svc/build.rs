//! Generates the typed Avro RPC server trait and client of `ReviewService`
//! (what review-svc serves) from the contract in `protocols/`.
fn main() {
    if let Err(e) = avro_rpc_build::compile_protocols(&["../protocols/review.avpr"]) {
        panic!("generating ReviewService from protocols/review.avpr: {e}");
    }
}
