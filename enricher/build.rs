//! Generates the typed Avro RPC clients of the three services the enricher
//! reads from their contracts in `protocols/`.
fn main() {
    // user.avpr's `Tier` is the events' `Tier`: one Rust type per contract type.
    if let Err(e) = avro_rpc_build::Builder::new()
        .extern_type("org.cinerec.user.Tier", "::cinerec_events::Tier")
        .compile_protocols(&[
            "../protocols/review.avpr",
            "../protocols/movie.avpr",
            "../protocols/user.avpr",
        ])
    {
        panic!("generating the RPC clients from protocols/*.avpr: {e}");
    }
}
