//! Generates, from the contracts in `protocols/`, the typed Avro RPC server
//! trait of `ReviewService` (what review-svc serves) and the typed clients of
//! `UserService` and `MovieService` (what its directory asks).
fn main() {
    if let Err(e) = avro_rpc_build::compile_protocols(&[
        "../protocols/review.avpr",
        "../protocols/user.avpr",
        "../protocols/movie.avpr",
    ]) {
        panic!("generating code from protocols/: {e}");
    }
}
