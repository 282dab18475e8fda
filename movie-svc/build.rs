//! Generates the typed Avro RPC server trait and client of `MovieService`
//! from the contract in `protocols/`.
fn main() {
    if let Err(e) = avro_rpc_build::compile_protocols(&["../protocols/movie.avpr"]) {
        panic!("generating MovieService from protocols/movie.avpr: {e}");
    }
}
