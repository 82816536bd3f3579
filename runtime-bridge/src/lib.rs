//! RemoteMedia runtime bridge: manifests, `RuntimeData`, the node registry, the streaming
//! graph executor and the native nodes. Free of GStreamer, gRPC, Python and WebRTC so that
//! every transport can share it.

pub mod backoff;
pub mod data;
pub mod error_code;
pub mod executor;
pub mod ingest;
pub mod manifest;
pub mod mutate;
pub mod node;
pub mod nodes;
pub mod params;
pub mod python;
pub mod registry;
pub mod remote;
pub mod session;
pub mod sync;
pub mod wire;

pub use backoff::Backoff;
pub use data::{AudioFrame, AudioSamples, Packet, RuntimeData, SampleStorage};
pub use error_code::ErrorCode;
pub use executor::{Graph, NodeMetrics, Output, OutputSink, RuntimeError, Session};
pub use ingest::{
    IngestConfig, IngestError, IngestEvent, IngestPlugin, IngestRegistry, IngestSource,
    global_ingest_registry,
};
pub use manifest::{Manifest, ManifestError, ManifestReport, Nodes};
pub use node::{Node, NodeError, NodeSpec, StreamFormat};
pub use registry::Registry;
pub use session::{Notify, StreamSession, execute_unary, execute_unary_with_metrics};

/// Loads a manifest from text with the built-in node registry and builds its graph.
pub fn load_graph(text: &str, source: &str) -> Result<std::sync::Arc<Graph>, ManifestReport> {
    manifest::parse(text, source, Registry::builtin()).map(|m| std::sync::Arc::new(Graph::new(m)))
}

/// Loads a manifest file with the built-in node registry and builds its graph.
pub fn load_graph_file(path: &std::path::Path) -> Result<std::sync::Arc<Graph>, ManifestReport> {
    manifest::load_file(path, Registry::builtin(), manifest::Nodes::REQUIRED)
        .map(|m| std::sync::Arc::new(Graph::new(m)))
}
