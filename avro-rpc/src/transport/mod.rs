//! Transports: how request and response messages move between peers.

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "socket")]
pub mod socket;
