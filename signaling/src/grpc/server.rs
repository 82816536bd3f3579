//! `remotemedia-server`: gRPC (signaling, execution, health, reflection), the JSON-RPC
//! WebSocket signaling and Prometheus metrics, sharing one peer registry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::codegen::http;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};

use super::auth::{CallRate, Gate};
use super::execution::ExecutionService;
pub use super::execution::Limits;
use super::metrics::{self, Metrics};
use super::pb;
use super::signal_service::SignalingService;
use super::streaming::StreamingService;
use crate::registry::PeerRegistry;
use crate::tokens::Tokens;
use crate::ws_server::{ServerOptions, SignalingServer};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub grpc_addr: SocketAddr,
    /// JSON-RPC WebSocket signaling on the same registry; `None` turns it off.
    pub ws_addr: Option<SocketAddr>,
    /// Prometheus metrics at `/metrics`; `None` turns them off.
    pub metrics_addr: Option<SocketAddr>,
    pub require_auth: bool,
    pub auth_tokens: Vec<String>,
    /// Tokens the WebSocket signaling needs (`?token=`); none: open.
    pub ws_tokens: Vec<String>,
    pub limits: Limits,
    /// Largest gRPC message accepted; a larger one gets RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    pub call_rate: CallRate,
    /// PEM certificate chain and key for TLS (`grpcs://`); plain HTTP/2 without them.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: ([0, 0, 0, 0], 50051).into(),
            ws_addr: Some(([0, 0, 0, 0], 8080).into()),
            metrics_addr: Some(([0, 0, 0, 0], 9090).into()),
            require_auth: false,
            auth_tokens: Vec::new(),
            ws_tokens: Vec::new(),
            limits: Limits {
                max_timeout: Duration::from_secs(30),
                max_memory_bytes: 512 << 20,
            },
            max_message_bytes: 16 << 20,
            call_rate: CallRate {
                per_sec: 100.0,
                burst: 200.0,
            },
            tls: None,
        }
    }
}

/// Why the gRPC server stopped without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ServerStopped {
    #[error("the gRPC server failed: {}", super::with_causes(.0))]
    Failed(#[source] tonic::transport::Error),
    #[error("the gRPC server's task ended: {0}")]
    TaskEnded(#[source] tokio::task::JoinError),
}

/// A running server; `shutdown` stops it and waits until its ports are closed.
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub ws_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub registry: Arc<PeerRegistry>,
    stop: oneshot::Sender<()>,
    grpc: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    ws: Option<SignalingServer>,
    metrics: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Some(m) = self.metrics {
            m.abort();
        }
        if let Some(ws) = self.ws {
            ws.close().await;
        }
        let _ = self.grpc.await;
    }

    /// Waits until the gRPC server ends by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> Result<(), ServerStopped> {
        match (&mut self.grpc).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerStopped::Failed(e)),
            Err(e) => Err(ServerStopped::TaskEnded(e)),
        }
    }
}

/// tonic reports an oversized message as OUT_OF_RANGE; gRPC's convention, and our contract,
/// is RESOURCE_EXHAUSTED. Trailers-only responses carry the status in the headers.
fn oversize_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if too_large && headers.get("grpc-status").is_some_and(|s| s == "11") {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// The same for a request stream: there tonic reports the oversized message mid-call, in the
/// trailers, which the layer above does not see; the services pass what their request stream
/// failed with through this.
pub fn incoming_status(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}

pub async fn start(config: ServerConfig) -> std::io::Result<RunningServer> {
    let registry = PeerRegistry::new();
    let metrics = Arc::new(Metrics::default());
    let gate = Gate::new(
        config.require_auth,
        config.auth_tokens.clone(),
        config.call_rate,
    );
    let max = config.max_message_bytes;

    let signaling = InterceptedService::new(
        pb::webrtc::web_rtc_signaling_server::WebRtcSignalingServer::new(SignalingService::new(
            registry.clone(),
            metrics.clone(),
        ))
        .max_decoding_message_size(max),
        gate.clone(),
    );
    let execution = InterceptedService::new(
        pb::pipeline_execution_service_server::PipelineExecutionServiceServer::new(
            ExecutionService::new(metrics.clone(), config.limits),
        )
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX),
        gate.clone(),
    );
    let streaming = InterceptedService::new(
        pb::streaming_pipeline_service_server::StreamingPipelineServiceServer::new(
            StreamingService::new(metrics.clone(), config.limits.max_timeout),
        )
        .max_decoding_message_size(max),
        gate,
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in [
        "remotemedia.v1.webrtc.WebRtcSignaling",
        "remotemedia.v1.PipelineExecutionService",
        "remotemedia.v1.StreamingPipelineService",
        "",
    ] {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(std::io::Error::other)?;

    let listener = TcpListener::bind(config.grpc_addr).await?;
    let grpc_addr = listener.local_addr()?;
    let mut builder = Server::builder().http2_keepalive_interval(Some(Duration::from_secs(20)));
    if let Some((cert, key)) = &config.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(std::io::Error::other)?;
    }
    let router = builder
        .layer(tower::util::MapResponseLayer::new(
            oversize_is_resource_exhausted,
        ))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(signaling)
        .add_service(execution)
        .add_service(streaming);
    let (stop, stopped) = oneshot::channel::<()>();
    let grpc = tokio::spawn(router.serve_with_incoming_shutdown(
        // Small frames (signals, short results) must not wait for delayed ACKs: the builder's
        // tcp_nodelay does not reach a listener handed in like this one.
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        async {
            let _ = stopped.await;
        },
    ));

    let ws = match config.ws_addr {
        Some(addr) => {
            let options = ServerOptions {
                tokens: Tokens::new(&config.ws_tokens),
                ..ServerOptions::default()
            };
            Some(SignalingServer::bind(addr, registry.clone(), options).await?)
        }
        None => None,
    };
    let (metrics_addr, metrics_task) = match config.metrics_addr {
        Some(addr) => {
            let (bound, task) = metrics::serve(addr, metrics, registry.clone()).await?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    Ok(RunningServer {
        grpc_addr,
        ws_addr: ws.as_ref().map(SignalingServer::local_addr),
        metrics_addr,
        registry,
        stop,
        grpc,
        ws,
        metrics: metrics_task,
    })
}
