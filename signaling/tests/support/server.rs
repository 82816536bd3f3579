//! An in-process remotemedia-server on 127.0.0.1 with no auth and no call-rate limit, for the
//! WASM tests and benchmark.

use std::time::Duration;

use remotemedia_signaling::grpc::auth::CallRate;
use remotemedia_signaling::grpc::server::{self, Limits, RunningServer, ServerConfig};

/// Installs the gRPC transport that WasmNode's services and RemotePipelineNode use.
pub fn install_transport() {
    remotemedia_signaling::grpc::remote::install(remotemedia_signaling::grpc::remote::own_runtime);
}

/// Starts the server on a free port (and installs the transport).
pub fn start(rt: &tokio::runtime::Runtime) -> RunningServer {
    install_transport();
    let config = ServerConfig {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        ws_addr: None,
        metrics_addr: None,
        require_auth: false,
        auth_tokens: Vec::new(),
        ws_tokens: Vec::new(),
        limits: Limits {
            max_timeout: Duration::from_secs(10),
            max_memory_bytes: 64 << 20,
        },
        max_message_bytes: 16 << 20,
        call_rate: CallRate {
            per_sec: 1e9,
            burst: 1e9,
        },
        tls: None,
    };
    rt.block_on(server::start(config)).unwrap()
}
