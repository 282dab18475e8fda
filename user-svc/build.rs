//! Generates the typed Avro RPC server trait and client of `UserService`
//! from the contract in `protocols/`.
fn main() {
    if let Err(e) = avro_rpc_build::compile_protocols(&["../protocols/user.avpr"]) {
        panic!("generating UserService from protocols/user.avpr: {e}");
    }
}
