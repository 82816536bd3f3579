//! Where a WebRTC element announces itself: its own embedded JSON-RPC server (with the web
//! page on the same port) or an external server at `signaling-url`.

use std::borrow::Cow;
use std::net::SocketAddr;

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
    ) -> Result<(Self, Vec<PeerInfo>), String> {
        if config.url.is_empty() {
            let addr: SocketAddr = format!("{}:{}", config.host, config.port)
                .parse()
                .map_err(|e| format!("signaling-host '{}': {e}", config.host))?;
            let registry = PeerRegistry::new();
            let options = ServerOptions {
                pages: pages(),
                routes,
                tokens: config.tokens.clone(),
                ..Default::default()
            };
            let server = SignalingServer::bind(addr, registry.clone(), options)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let (peer, present) = registry
                .register_local_with(info, handler, false)
                .map_err(|e| e.to_string())?;
            return Ok((Link::Embedded { peer, server }, present));
        }
        if config.url.starts_with("ws://") {
            return WsClient::connect(&config.url, info, handler, on_error, on_link)
                .await
                .map(|c| {
                    let present = c.present().to_vec();
                    (Link::External(c), present)
                })
                .map_err(|e| e.message);
        }
        if config.url.starts_with("grpc://") || config.url.starts_with("grpcs://") {
            return GrpcSignalClient::connect(&config.url, info, handler, on_link)
                .await
                .map(|c| {
                    let present = c.present().to_vec();
                    (Link::Grpc(c), present)
                })
                .map_err(|e| e.message);
        }
        Err(format!(
            "signaling-url '{}': the supported schemes are ws://, grpc:// and grpcs://",
            config.url
        ))
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
