//! Generates the typed Avro RPC clients of the three services the enricher
//! reads from their contracts in `protocols/`.
fn main() {
    if let Err(e) = avro_rpc_build::compile_protocols(&[
        "../protocols/review.avpr",
        "../protocols/movie.avpr",
        "../protocols/user.avpr",
    ]) {
        panic!("generating the RPC clients from protocols/*.avpr: {e}");
    }
}
