//! How `RemotePipelineNode` reaches a remote server. The transport (gRPC) lives outside this
//! crate, which stays free of it: the GStreamer plugin, the Python package and the server
//! install one at start-up.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::data::RuntimeData;
use crate::executor::Output;

/// One remote call's target and limits.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteCall {
    /// `grpc://host:port` or `grpcs://host:port`.
    pub endpoint: String,
    /// The sub-manifest, as JSON text.
    pub manifest_json: String,
    pub timeout: Duration,
    pub auth_token: Option<String>,
}

/// A failed call. `retryable` failures (server unreachable, overloaded, timed out) may succeed
/// when tried again; the others (bad manifest, refused token, node error) will not.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteFailure {
    pub message: String,
    pub retryable: bool,
}

pub trait RemoteTransport: Send + Sync {
    /// Runs the sub-manifest once over `inputs`; returns every output.
    fn execute(
        &self,
        call: &RemoteCall,
        inputs: Vec<RuntimeData>,
    ) -> Result<Vec<Output>, RemoteFailure>;

    /// Opens a streaming session of the sub-manifest.
    fn stream(&self, call: &RemoteCall) -> Result<Box<dyn RemoteStream>, RemoteFailure>;
}

pub trait RemoteStream: Send {
    fn send(&mut self, data: RuntimeData) -> Result<(), RemoteFailure>;
    /// The outputs that arrived so far, without waiting.
    fn ready(&mut self) -> Result<Vec<Output>, RemoteFailure>;
    /// Ends the stream; waits for the outputs still to come.
    fn close(self: Box<Self>) -> Result<Vec<Output>, RemoteFailure>;
}

static TRANSPORT: OnceLock<Arc<dyn RemoteTransport>> = OnceLock::new();

/// Installs the transport for this process; the first one installed stays.
pub fn set_remote_transport(transport: Arc<dyn RemoteTransport>) {
    let _ = TRANSPORT.set(transport);
}

pub fn remote_transport() -> Option<Arc<dyn RemoteTransport>> {
    TRANSPORT.get().cloned()
}
