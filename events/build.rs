//! The event types come from the contracts: `protocols/*.avsc` → Rust
//! structs and enums with their Avro `Value` conversions (avro-rpc-build).

fn main() {
    // Enums derive serde too: user.avpr's `Tier` is this crate's `Tier`
    // (see user-svc's and the enricher's build.rs).
    if let Err(e) = avro_rpc_build::Builder::new()
        .schema_serde(true)
        .compile_schemas(&[
            "../protocols/review_changed.avsc",
            "../protocols/review_enriched.avsc",
        ])
    {
        // A contract the generator cannot express is a build defect.
        panic!("avro-rpc-build failed on the event schemas: {e}");
    }
}
