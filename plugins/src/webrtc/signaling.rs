//! Where a WebRTC element announces itself: its own embedded JSON-RPC server (with the web
//! page on the same port) or an external server at `signaling-url`.

use std::borrow::Cow;
use std::net::SocketAddr;

use remotemedia_runtime::ErrorCode;
use remotemedia_signaling::grpc::client::{GrpcSignalClient, LinkHandler};
use remotemedia_signaling::{
    ErrorHandler, Handler, LocalPeer, Page, PeerInfo, PeerRegistry, Route, RpcError, ServerOptions,
    Signal, SignalingServer, Tokens, WsClient,
};

/// The web demo page (source in examples/launch/web/), served by embedded signaling.
fn pages() -> Vec<Page> {
    let page = |path, content_type, body: &'static [u8]| Page {
        path,
        content_type,
        body: Cow::Borrowed(body),
    };
    vec![
        page(
            "/index.html",
            "text/html; charset=utf-8",
            include_bytes!("../../../examples/launch/web/index.html"),
        ),
        page(
            "/app.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../../examples/launch/web/app.js"),
        ),
    ]
}

#[derive(Clone, Debug)]
pub struct SignalingConfig {
    pub host: String,
    pub port: u16,
    pub url: String,
    /// What the embedded server's WebSocket and HTTP doors need (none: open).
    pub tokens: Tokens,
}

/// Why signaling could not start.
#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    #[error("signaling-host '{host}': {source}")]
    BadHost {
        host: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The embedded server's registry refused our announcement.
    #[error("{0}")]
    Refused(#[source] RpcError),
    /// The external server could not be reached, or refused us.
    #[error("{}", .0.message)]
    Connect(#[source] RpcError),
    #[error("signaling-url '{0}': the supported schemes are ws://, grpc:// and grpcs://")]
    Scheme(String),
}

impl SignalingError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused(e) | Self::Connect(e) => e.kind,
            _ => ErrorCode::Signaling,
        }
    }
}

pub enum Link {
    Embedded {
        // Dropped after the peer, so the peer's goodbye still reaches the connections.
        peer: LocalPeer,
        server: SignalingServer,
    },
    External(WsClient),
    Grpc(GrpcSignalClient),
}

impl Link {
    /// Starts signaling and announces `info`; returns the link and the peers announced
    /// before us.
    pub async fn start(
        config: &SignalingConfig,
        info: PeerInfo,
        handler: Handler,
        on_error: ErrorHandler,
        on_link: LinkHandler,
        routes: Vec<Route>,
    ) -> Result<(Self, Vec<PeerInfo>), SignalingError> {
        if config.url.is_empty() {
            let addr: SocketAddr =
                format!("{}:{}", config.host, config.port)
                    .parse()
                    .map_err(|source| SignalingError::BadHost {
                        host: config.host.clone(),
                        source,
                    })?;
            let registry = PeerRegistry::new();
            let options = ServerOptions {
                pages: pages(),
                routes,
                tokens: config.tokens.clone(),
                ..Default::default()
            };
            let server = SignalingServer::bind(addr, registry.clone(), options)
                .await
                .map_err(|source| SignalingError::Listen { addr, source })?;
            let (peer, present) = registry
                .register_local_with(info, handler, false)
                .map_err(SignalingError::Refused)?;
            return Ok((Link::Embedded { peer, server }, present));
        }
        if config.url.starts_with("ws://") {
            return WsClient::connect(&config.url, info, handler, on_error, on_link)
                .await
                .map(|c| {
                    let present = c.present().to_vec();
                    (Link::External(c), present)
                })
                .map_err(SignalingError::Connect);
        }
        if config.url.starts_with("grpc://") || config.url.starts_with("grpcs://") {
            return GrpcSignalClient::connect(&config.url, info, handler, on_link)
                .await
                .map(|c| {
                    let present = c.present().to_vec();
                    (Link::Grpc(c), present)
                })
                .map_err(SignalingError::Connect);
        }
        Err(SignalingError::Scheme(config.url.clone()))
    }

    pub fn send(&self, signal: Signal) -> Result<(), RpcError> {
        match self {
            Link::Embedded { peer, .. } => peer.send(signal),
            Link::External(client) => client.send(signal),
            Link::Grpc(client) => client.send(signal),
        }
    }

    /// Leaves signaling; an embedded server has closed its port when this returns.
    pub async fn close(self) {
        if let Link::Embedded { peer, server } = self {
            drop(peer);
            server.close().await;
        }
    }

    /// The port the embedded server listens on (useful with `signaling-port=0`).
    pub fn port(&self) -> Option<u16> {
        match self {
            Link::Embedded { server, .. } => Some(server.local_addr().port()),
            Link::External(_) | Link::Grpc(_) => None,
        }
    }
}
