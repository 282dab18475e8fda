//! Generates, from the contracts in `protocols/`, the typed Avro RPC server
//! trait of `ReviewService` (what review-svc serves) and the typed clients of
//! `UserService` and `MovieService` (what its directory asks).
fn main() {
    // user.avpr's `Tier` is the events' `Tier`: one Rust type per contract type.
    if let Err(e) = avro_rpc_build::Builder::new()
        .extern_type("org.cinerec.user.Tier", "::cinerec_events::Tier")
        .compile_protocols(&[
            "../protocols/review.avpr",
            "../protocols/user.avpr",
            "../protocols/movie.avpr",
        ])
    {
        panic!("generating code from protocols/: {e}");
    }
}
