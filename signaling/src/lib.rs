//! RemoteMedia signaling (docs/ARCHITECTURE.md, "Signaling"): the peer registry shared by every transport, JSON-RPC
//! 2.0 over WebSocket and gRPC signaling (servers and clients), gRPC pipeline execution, and
//! the `remotemedia-server` binary.

pub mod grpc;
pub mod http;
pub mod protocol;
pub mod rate;
pub mod reconnect;
pub mod registry;
pub mod tokens;
pub mod ws_client;
pub mod ws_server;

pub use http::{HttpRequest, HttpResponse, Route};
pub use protocol::{PeerInfo, RpcError, Signal};
pub use registry::{Event, Handler, LocalPeer, PeerRegistry};
pub use tokens::Tokens;
pub use ws_client::{ErrorHandler, WsClient};
pub use ws_server::{Page, ServerOptions, SignalingServer};
