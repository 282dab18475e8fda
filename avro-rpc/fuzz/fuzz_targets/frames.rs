//! Both framings (Netty frames, the HTTP buffer list) over arbitrary bytes:
//! they must return frames or errors, never panic or allocate past limits.
#![no_main]

use avro_rpc::{Limits, wire};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = wire::read_netty_frame(&mut buf, &limits) {}
    let _ = wire::unframe_buffers(data, &limits);
});
