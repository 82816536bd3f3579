//! `remotemedia.v1.StreamingPipelineService`: a live session per stream. A driver thread owns
//! the session (nodes may block; tokio workers must not), fed through a bounded queue; outputs
//! go back through another bounded queue as the nodes produce them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use remotemedia_runtime::{Output, OutputSink, RuntimeData, RuntimeError, Session};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, to_runtime};
use super::execution::{error, metrics_pb};
use super::metrics::Metrics;
use super::pb;
use super::pb::error_response::Kind;
use super::pb::stream_request::Request as Req;
use super::pb::stream_response::Response as Resp;
use super::server::incoming_status;

type Outbound = mpsc::Sender<Result<pb::StreamResponse, Status>>;

enum Command {
    Chunk {
        sequence: u64,
        node: Option<String>,
        data: RuntimeData,
    },
    Flush,
}

pub struct StreamingService {
    metrics: Arc<Metrics>,
    /// A stream that sends nothing for this long is ended with DEADLINE_EXCEEDED.
    idle_timeout: Duration,
}

impl StreamingService {
    pub fn new(metrics: Arc<Metrics>, idle_timeout: Duration) -> Self {
        Self {
            metrics,
            idle_timeout,
        }
    }
}

fn reply(r: Resp) -> Result<pb::StreamResponse, Status> {
    Ok(pb::StreamResponse { response: Some(r) })
}

/// Hands outputs to the response stream. Called on the driver or node threads, never on a
/// tokio worker, so waiting for room in the queue is allowed (it is the backpressure).
struct Sink {
    out: Outbound,
    last_sequence: AtomicU64,
}

impl OutputSink for Sink {
    fn output(&self, output: Output) {
        let _ = self.out.blocking_send(reply(Resp::Result(pb::ChunkResult {
            output: Some(convert::output(&output)),
            sequence: self.last_sequence.load(Ordering::Relaxed),
        })));
    }

    fn error(&self, e: RuntimeError) {
        let _ = self.out.blocking_send(reply(Resp::Error(error(
            Kind::Node,
            e.message,
            &e.node_id,
            "",
        ))));
    }
}

fn drive(
    graph: Arc<remotemedia_runtime::Graph>,
    out: Outbound,
    mut commands: mpsc::Receiver<Command>,
) {
    let sink = Arc::new(Sink {
        out: out.clone(),
        last_sequence: AtomicU64::new(0),
    });
    let session = match Session::new(graph, sink.clone()) {
        Ok(s) => s,
        Err(e) => {
            let _ = out.blocking_send(Err(Status::failed_precondition(format!(
                "node '{}' could not start: {}",
                e.node_id, e.message
            ))));
            return;
        }
    };
    static SESSIONS: AtomicU64 = AtomicU64::new(1);
    let session_id = format!("stream-{}", SESSIONS.fetch_add(1, Ordering::Relaxed));
    let _ = out.blocking_send(reply(Resp::Ready(pb::StreamReady { session_id })));
    let mut chunks = 0;
    while let Some(command) = commands.blocking_recv() {
        match command {
            Command::Chunk {
                sequence,
                node,
                data,
            } => {
                sink.last_sequence.store(sequence, Ordering::Relaxed);
                chunks += 1;
                let sent = match &node {
                    Some(node) => session.send_to(node, data),
                    None => session.send(data),
                };
                if let Err(e) = sent {
                    sink.error(e);
                }
            }
            Command::Flush => session.reset(),
        }
    }
    if let Err(e) = session.drain() {
        sink.error(e);
    }
    let _ = out.blocking_send(reply(Resp::Closed(pb::StreamClosed {
        metrics: metrics_pb(session.metrics()),
        chunks,
    })));
}

type PipelineStream = Pin<Box<dyn Stream<Item = Result<pb::StreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::streaming_pipeline_service_server::StreamingPipelineService for StreamingService {
    type StreamPipelineStream = PipelineStream;

    async fn stream_pipeline(
        &self,
        request: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamPipelineStream>, Status> {
        let mut incoming = request.into_inner();
        let init = match incoming.message().await.map_err(incoming_status)? {
            Some(pb::StreamRequest {
                request: Some(Req::Init(init)),
            }) => init,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first StreamRequest must be init",
                ));
            }
            None => return Err(Status::invalid_argument("the stream ended before init")),
        };
        let graph = remotemedia_runtime::load_graph(&init.manifest_json, "init.manifest_json")
            .map_err(|report| Status::invalid_argument(report.to_string()))?;
        let (out, rx) = mpsc::channel(256);
        let (commands, queue) = mpsc::channel(64);
        let driver_out = out.clone();
        std::thread::Builder::new()
            .name("rm-grpc-stream".into())
            .spawn(move || drive(graph, driver_out, queue))
            .map_err(|e| Status::resource_exhausted(format!("cannot start a session: {e}")))?;
        let metrics = self.metrics.clone();
        let idle = self.idle_timeout;
        tokio::spawn(async move {
            let _open = metrics.pipeline_stream();
            let mut expected = 0u64;
            loop {
                let next = tokio::select! {
                    _ = out.closed() => break,
                    next = tokio::time::timeout(idle, incoming.message()) => next,
                };
                let request = match next {
                    Err(_) => {
                        let _ = out
                            .send(Err(Status::deadline_exceeded(format!(
                                "no message for {} s; stream ended",
                                idle.as_secs()
                            ))))
                            .await;
                        break;
                    }
                    Ok(Ok(Some(r))) => r,
                    Ok(Ok(None)) => break,
                    Ok(Err(status)) => {
                        let _ = out.send(Err(incoming_status(status))).await;
                        break;
                    }
                };
                let refused = |kind, message: String, context: &str| {
                    reply(Resp::Error(error(kind, message, "", context)))
                };
                match request.request {
                    Some(Req::DataChunk(chunk)) => {
                        if chunk.sequence != expected {
                            let r = refused(
                                Kind::Sequence,
                                format!(
                                    "chunk {} refused: expected sequence {expected}",
                                    chunk.sequence
                                ),
                                "data_chunk.sequence",
                            );
                            let _ = out.send(r).await;
                            continue;
                        }
                        let data = chunk
                            .data
                            .ok_or(convert::BadBuffer::Absent)
                            .and_then(to_runtime);
                        match data {
                            Ok(data) => {
                                expected += 1;
                                let node = (!chunk.node_id.is_empty()).then_some(chunk.node_id);
                                let command = Command::Chunk {
                                    sequence: chunk.sequence,
                                    node,
                                    data,
                                };
                                if commands.send(command).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                let context = format!("data_chunk[{}].data", chunk.sequence);
                                let _ = out
                                    .send(refused(Kind::Input, e.to_string(), &context))
                                    .await;
                            }
                        }
                    }
                    Some(Req::Control(c)) => {
                        use pb::stream_control::Command as C;
                        match C::try_from(c.command).unwrap_or(C::Unspecified) {
                            C::Close => break,
                            C::Flush => {
                                if commands.send(Command::Flush).await.is_err() {
                                    break;
                                }
                            }
                            C::Unspecified => {
                                let message = format!("control.command {} is unknown", c.command);
                                let _ = out.send(refused(Kind::Input, message, "control")).await;
                            }
                        }
                    }
                    Some(Req::Init(_)) => {
                        let message = "init was already received on this stream".to_owned();
                        let _ = out.send(refused(Kind::Input, message, "init")).await;
                    }
                    None => {
                        let message = "StreamRequest: no request set".to_owned();
                        let _ = out.send(refused(Kind::Input, message, "")).await;
                    }
                }
            }
            // Dropping the command queue lets the driver drain the session, say closed and
            // end the response stream.
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
