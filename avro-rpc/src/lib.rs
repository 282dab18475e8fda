//! Avro RPC as tower `Service`s: protocol declarations (`.avpr`), the
//! handshake and call wire format of the Avro specification, a client and a
//! server, the HTTP and the Java-Netty-framed socket transports, and layers.
//!
//! The crate knows nothing of any application: services are described by
//! their `.avpr` and plugged in as tower services; `avro-rpc-build` generates
//! typed clients and server traits on top of this runtime.
#![forbid(unsafe_code)]

pub mod binary;
pub mod budget;
pub mod codec;
pub mod codegen;
pub mod error;
pub mod layer;
pub mod limits;
pub mod protocol;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;
/// Transports exist for whichever of `client` and `server` is enabled.
#[cfg(all(
    any(feature = "http", feature = "socket"),
    any(feature = "client", feature = "server")
))]
pub mod transport;

pub use codec::{AvroCodec, Codec, DatumSchema};
pub use error::{BoxError, Error, Kind, Result};
pub use limits::Limits;
pub use protocol::{Md5Hash, Message, Protocol};
pub use wire::Metadata;

#[cfg(feature = "client")]
pub use client::{Call, Client, RemoteError, Reply, Transport};
#[cfg(feature = "server")]
pub use server::{Request, Responder, Response, ResponseError};

/// Includes the code `avro-rpc-build` generated for protocol `name` (the
/// protocol's name in snake case, e.g. `"greeter"` for `Greeter`).
#[macro_export]
macro_rules! include_protocol {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
    };
}

/// Re-exports used by generated code, so a crate using `avro-rpc-build` needs
/// no direct dependency on these.
#[doc(hidden)]
pub mod export {
    pub use apache_avro;
    #[cfg(any(feature = "client", feature = "server"))]
    pub use futures::future::BoxFuture;
    pub use serde;
    #[cfg(any(feature = "client", feature = "server"))]
    pub use tower;
}
