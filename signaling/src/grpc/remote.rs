//! The gRPC transport of `RemotePipelineNode` (runtime-bridge/src/nodes/remote_pipeline.rs):
//! ExecutePipeline per call, StreamPipeline per streaming session. Calls come from node
//! threads; they run on the process's tokio runtime (named at `install`) and hand results
//! back over channels.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use remotemedia_runtime::remote::{
    RemoteCall, RemoteFailure, RemoteStream, RemoteTransport, set_remote_transport,
};
use remotemedia_runtime::{Output, RuntimeData};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

use super::convert;
use super::pb;
use super::target::GrpcTarget;

/// Gives the process's tokio runtime, on first use of the transport (`None`: it could not be
/// made, and calls fail).
pub type RuntimeHandle = fn() -> Option<tokio::runtime::Handle>;

static RUNTIME: OnceLock<RuntimeHandle> = OnceLock::new();

/// Installs this transport for the process, its calls running on `runtime`: the process's
/// one tokio runtime (the plugin's, the server's; [`own_runtime`] for a process that has
/// none). The plugin, the Python module and the server call it at start-up; later calls do
/// nothing.
pub fn install(runtime: RuntimeHandle) {
    let _ = RUNTIME.set(runtime);
    set_remote_transport(Arc::new(GrpcTransport::default()));
}

/// A runtime for a process that has no other (the Python module, tests), made on first use.
pub fn own_runtime() -> Option<tokio::runtime::Handle> {
    static OWN: std::sync::LazyLock<Option<tokio::runtime::Runtime>> =
        std::sync::LazyLock::new(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("rm-grpc-remote")
                .enable_all()
                .build()
                .ok()
        });
    OWN.as_ref().map(|rt| rt.handle().clone())
}

/// Runs `f` on the transport's runtime and waits for it on this (non-async) thread.
fn run<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, RemoteFailure> {
    let runtime = RUNTIME
        .get()
        .and_then(|f| f())
        .ok_or_else(|| RemoteFailure {
            message: "the gRPC remote transport has no tokio runtime".into(),
            retryable: false,
        })?;
    let (tx, rx) = std_mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| RemoteFailure {
        message: "the remote call's task died".into(),
        retryable: true,
    })
}

/// Failures worth another try: the server is away, overloaded or slow.
fn failure(status: &tonic::Status) -> RemoteFailure {
    RemoteFailure {
        message: format!("{:?}: {}", status.code(), status.message()),
        retryable: matches!(
            status.code(),
            Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted
        ),
    }
}

fn unreachable(message: String) -> RemoteFailure {
    RemoteFailure {
        message,
        retryable: true,
    }
}

fn runtime_outputs(outputs: Vec<pb::NodeOutput>) -> Result<Vec<Output>, RemoteFailure> {
    outputs.into_iter().map(runtime_output).collect()
}

fn runtime_output(o: pb::NodeOutput) -> Result<Output, RemoteFailure> {
    let data = o
        .data
        .ok_or(convert::BadBuffer::Absent)
        .and_then(convert::to_runtime)
        .map_err(|e| RemoteFailure {
            message: format!("server sent a bad output of node '{}': {e}", o.node_id),
            retryable: false,
        })?;
    Ok(Output {
        node_id: o.node_id.into(),
        data,
        pts: o.pts_ns,
    })
}

fn described(e: pb::ErrorResponse) -> RemoteFailure {
    let kind = pb::error_response::Kind::try_from(e.kind)
        .map(|k| k.as_str_name())
        .unwrap_or("UNKNOWN");
    let node = if e.node_id.is_empty() {
        String::new()
    } else {
        format!(" in node '{}'", e.node_id)
    };
    RemoteFailure {
        message: format!("remote pipeline failed ({kind}){node}: {}", e.message),
        retryable: false,
    }
}

#[derive(Default)]
pub struct GrpcTransport {
    /// One HTTP/2 connection per endpoint, shared by every node and call.
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcTransport {
    fn target(&self, call: &RemoteCall) -> Result<(GrpcTarget, Channel), RemoteFailure> {
        let mut target = GrpcTarget::parse(&call.endpoint).map_err(|e| RemoteFailure {
            message: e.to_string(),
            retryable: false,
        })?;
        if call.auth_token.is_some() {
            target.token = call.auth_token.clone();
        }
        let cached = self
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&target.endpoint)
            .cloned();
        let channel = match cached {
            Some(c) => c,
            None => {
                let t = target.clone();
                let channel = run(async move { t.channel().await })?
                    .map_err(|e| unreachable(e.to_string()))?;
                self.channels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(target.endpoint.clone(), channel.clone());
                channel
            }
        };
        Ok((target, channel))
    }
}

impl RemoteTransport for GrpcTransport {
    fn execute(
        &self,
        call: &RemoteCall,
        inputs: Vec<RuntimeData>,
    ) -> Result<Vec<Output>, RemoteFailure> {
        let (target, channel) = self.target(call)?;
        let request = pb::ExecuteRequest {
            manifest_json: call.manifest_json.clone(),
            inputs: inputs
                .iter()
                .map(|d| pb::NamedInput {
                    node_id: String::new(),
                    data: Some(convert::from_runtime(d)),
                })
                .collect(),
            timeout_ms: call.timeout.as_millis().min(u32::MAX as u128) as u32,
            client_version: env!("CARGO_PKG_VERSION").into(),
        };
        let timeout = call.timeout;
        let response = run(async move {
            let mut client =
                pb::pipeline_execution_service_client::PipelineExecutionServiceClient::new(channel)
                    .max_decoding_message_size(usize::MAX);
            let mut request = target
                .authorize(tonic::Request::new(request))
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            request.set_timeout(timeout);
            client.execute_pipeline(request).await
        })?
        .map_err(|s| failure(&s))?
        .into_inner();
        match response.outcome {
            Some(pb::execute_response::Outcome::Result(r)) => runtime_outputs(r.outputs),
            Some(pb::execute_response::Outcome::Error(e)) => Err(described(e)),
            None => Err(RemoteFailure {
                message: "server answered with neither result nor error".into(),
                retryable: false,
            }),
        }
    }

    fn stream(&self, call: &RemoteCall) -> Result<Box<dyn RemoteStream>, RemoteFailure> {
        let (target, channel) = self.target(call)?;
        let (requests, rx) = mpsc::channel(64);
        let init = pb::StreamRequest {
            request: Some(pb::stream_request::Request::Init(pb::StreamInit {
                manifest_json: call.manifest_json.clone(),
                client_version: env!("CARGO_PKG_VERSION").into(),
            })),
        };
        requests
            .try_send(init)
            .map_err(|_| unreachable("queue closed".into()))?;
        let (results, outputs) = std_mpsc::channel();
        let timeout = call.timeout;
        let opened = run(async move {
            let mut client =
                pb::streaming_pipeline_service_client::StreamingPipelineServiceClient::new(channel);
            let request = target
                .authorize(tonic::Request::new(ReceiverStream::new(rx)))
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            let mut responses = client.stream_pipeline(request).await?.into_inner();
            match tokio::time::timeout(timeout, responses.message()).await {
                Ok(Ok(Some(pb::StreamResponse {
                    response: Some(pb::stream_response::Response::Ready(_)),
                }))) => {}
                Ok(Ok(_)) => return Err(tonic::Status::unknown("no ready from the server")),
                Ok(Err(s)) => return Err(s),
                Err(_) => return Err(tonic::Status::deadline_exceeded("no ready in time")),
            }
            // Forward every result until the server closes the stream.
            tokio::spawn(async move {
                use pb::stream_response::Response as R;
                loop {
                    let item = match responses.message().await {
                        Ok(Some(pb::StreamResponse { response: Some(r) })) => match r {
                            R::Result(c) => match c.output {
                                Some(o) => Some(runtime_output(o)),
                                None => continue,
                            },
                            R::Error(e) => Some(Err(described(e))),
                            R::Closed(_) => None,
                            R::Ready(_) => continue,
                        },
                        Ok(Some(_)) => continue,
                        Ok(None) => None,
                        Err(s) => Some(Err(failure(&s))),
                    };
                    let Some(item) = item else {
                        let _ = results.send(Event::Closed);
                        return;
                    };
                    let ended = item.is_err();
                    if results.send(Event::Output(item)).is_err() || ended {
                        return;
                    }
                }
            });
            Ok(())
        })?;
        opened.map_err(|s| failure(&s))?;
        Ok(Box::new(GrpcStream {
            requests: Some(requests),
            outputs,
            sequence: 0,
        }))
    }
}

enum Event {
    Output(Result<Output, RemoteFailure>),
    Closed,
}

struct GrpcStream {
    requests: Option<mpsc::Sender<pb::StreamRequest>>,
    outputs: std_mpsc::Receiver<Event>,
    sequence: u64,
}

impl RemoteStream for GrpcStream {
    fn send(&mut self, data: RuntimeData) -> Result<(), RemoteFailure> {
        let chunk = pb::StreamRequest {
            request: Some(pb::stream_request::Request::DataChunk(pb::DataChunk {
                sequence: self.sequence,
                data: Some(convert::from_runtime(&data)),
                node_id: String::new(),
            })),
        };
        let requests = self
            .requests
            .as_ref()
            .ok_or_else(|| unreachable("stream closed".into()))?;
        // Waits while the server is behind: the stream's backpressure.
        requests
            .blocking_send(chunk)
            .map_err(|_| unreachable("the server closed the stream".into()))?;
        self.sequence += 1;
        Ok(())
    }

    fn ready(&mut self) -> Result<Vec<Output>, RemoteFailure> {
        let mut out = Vec::new();
        while let Ok(event) = self.outputs.try_recv() {
            match event {
                Event::Output(o) => out.push(o?),
                Event::Closed => return Err(unreachable("the server ended the stream".into())),
            }
        }
        Ok(out)
    }

    fn close(mut self: Box<Self>) -> Result<Vec<Output>, RemoteFailure> {
        // Half-closing the request stream asks the server to drain and say closed.
        self.requests = None;
        let mut out = Vec::new();
        for event in self.outputs.iter() {
            match event {
                Event::Output(o) => out.push(o?),
                Event::Closed => break,
            }
        }
        Ok(out)
    }
}
