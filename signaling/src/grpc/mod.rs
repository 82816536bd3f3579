//! gRPC on one port (docs/ARCHITECTURE.md, "Signaling"): WebRTC signaling on the shared peer registry, unary and
//! streaming pipeline execution, standard health and reflection; and the clients the WebRTC
//! elements and `RemotePipelineNode` use.

pub mod auth;
pub mod client;
pub mod convert;
pub mod execution;
pub mod metrics;
pub mod remote;
pub mod server;
pub mod signal_service;
pub mod streaming;
pub mod target;

/// The generated messages and services.
pub mod pb {
    tonic::include_proto!("remotemedia.v1");

    pub mod webrtc {
        tonic::include_proto!("remotemedia.v1.webrtc");
    }

    /// For server reflection.
    pub const DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/remotemedia_descriptor.bin"));
}

/// The protocol version `GetVersion` reports; bumped on incompatible .proto changes.
pub const PROTOCOL_VERSION: &str = "remotemedia.v1";

/// `error` and its causes, "a: b: c": tonic's transport errors name only their kind
/// ("transport error") and keep what happened in their causes.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
