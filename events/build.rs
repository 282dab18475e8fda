//! The event types come from the contracts: `protocols/*.avsc` → Rust
//! structs and enums with their Avro `Value` conversions (avro-rpc-build).

fn main() {
    if let Err(e) = avro_rpc_build::compile_schemas(&[
        "../protocols/review_changed.avsc",
        "../protocols/review_enriched.avsc",
    ]) {
        // A contract the generator cannot express is a build defect.
        panic!("avro-rpc-build failed on the event schemas: {e}");
    }
}
