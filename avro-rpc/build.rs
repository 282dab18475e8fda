//! Generates code for the test protocol under `tests/protocols/`, so the
//! integration tests exercise `avro-rpc-build` output exactly as a user
//! crate would get it. Cheap: one small JSON file to Rust text.

fn main() {
    if let Err(e) = avro_rpc_build::compile_protocols(&["tests/protocols/greeter.avpr"]) {
        panic!("avro-rpc-build failed: {e}");
    }
}
