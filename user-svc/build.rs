//! Generates the typed Avro RPC server trait and client of `UserService`
//! from the contract in `protocols/`.
fn main() {
    // The protocol's `Tier` is the events' `Tier` (cinerec-events generates it
    // from review_enriched.avsc), so user-svc, the catalogue and the enricher
    // share one type.
    if let Err(e) = avro_rpc_build::Builder::new()
        .extern_type("org.cinerec.user.Tier", "::cinerec_events::Tier")
        .compile_protocols(&["../protocols/user.avpr"])
    {
        panic!("generating UserService from protocols/user.avpr: {e}");
    }
}
