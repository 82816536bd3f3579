//! `RemotePipelineNode`: runs a sub-manifest on a `remotemedia-server`, once per input
//! (unary) or as one stream for the whole session (streaming), with a timeout, retries with
//! backoff, and a bearer token.

use std::time::Duration;

use crate::data::{Packet, RuntimeData};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};
use crate::remote::{RemoteCall, RemoteStream};

use super::remote_target::{RemoteTarget, manifest_json, retry};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "endpoint",
        ParamType::Str,
        ParamDefault::Required,
        "the server: grpc://host:port, or grpcs://host:port for TLS",
    ),
    ParamSpec::new(
        "manifest",
        ParamType::Json,
        ParamDefault::Required,
        "the sub-manifest to run there: a manifest object, or a path to a manifest file",
    ),
    ParamSpec::new(
        "mode",
        ParamType::Enum(&["unary", "streaming"]),
        ParamDefault::Str("unary"),
        "unary: one ExecutePipeline call per input; streaming: one StreamPipeline per session",
    ),
    ParamSpec::new(
        "timeout_ms",
        ParamType::Int {
            min: 1,
            max: 3_600_000,
        },
        ParamDefault::Int(30_000),
        "time limit of one call (unary) or of opening the stream (streaming)",
    ),
    ParamSpec::new(
        "retry",
        ParamType::Json,
        ParamDefault::Derived,
        "attempts after a failure that may pass (server away, overloaded): a number, or \
         {max_attempts, initial_backoff_ms, max_backoff_ms, backoff_multiplier}; default 3 \
         attempts from 100 ms, doubling, at most 2000 ms",
    ),
    ParamSpec::new(
        "auth_token",
        ParamType::Str,
        ParamDefault::Derived,
        "sent as 'authorization: Bearer <token>'; default none",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "RemotePipelineNode",
    aliases: &["RemotePipeline"],
    doc: "Runs a sub-manifest on a remotemedia-server over gRPC and emits what it outputs.",
    params: PARAMS,
    threading: Threading::Dedicated,
    create: |p| Ok(Box::new(RemotePipeline::new(p)?)),
    format,
    latency_ns: no_latency,
};

fn format(_: &Params, _: &StreamFormat) -> Result<StreamFormat, NodeError> {
    // What the remote pipeline emits is only known when it runs.
    Ok(StreamFormat::Any)
}

struct RemotePipeline {
    target: RemoteTarget,
    streaming: bool,
    stream: Option<Box<dyn RemoteStream>>,
}

impl RemotePipeline {
    fn new(p: &Params) -> Result<Self, NodeError> {
        let call = RemoteCall {
            endpoint: p.str("endpoint").unwrap_or_default().to_owned(),
            manifest_json: manifest_json("manifest", p.get("manifest"))?,
            timeout: Duration::from_millis(p.i64("timeout_ms").unwrap_or(30_000) as u64),
            auth_token: p.str("auth_token").map(str::to_owned),
        };
        let retry = retry("retry", p.get("retry"))?;
        Ok(Self {
            target: RemoteTarget::new(SPEC.node_type, "endpoint", call, retry)?,
            streaming: p.str("mode") == Some("streaming"),
            stream: None,
        })
    }

    fn emit_all(out: &mut Emitter, outputs: Vec<crate::executor::Output>) {
        for o in outputs {
            out.emit_at(o.data, o.pts);
        }
    }

    fn stream(&mut self, out: &mut Emitter) -> Result<&mut Box<dyn RemoteStream>, NodeError> {
        if self.stream.is_none() {
            let target = &self.target;
            let opened = target.with_retry(None, &mut |w| out.warn(w), |call| {
                target.transport.stream(call)
            })?;
            self.stream = Some(opened);
        }
        Ok(self.stream.as_mut().expect("opened above"))
    }
}

impl Node for RemotePipeline {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let data: RuntimeData = input.data;
        if !self.streaming {
            let target = &self.target;
            let outputs = target.with_retry(None, &mut |w| out.warn(w), |call| {
                target.transport.execute(call, vec![data.clone()])
            })?;
            Self::emit_all(out, outputs);
            return Ok(());
        }
        let stream = self.stream(out)?;
        let sent = stream.send(data.clone()).and_then(|()| stream.ready());
        match sent {
            Ok(outputs) => Self::emit_all(out, outputs),
            Err(f) if f.retryable => {
                // The server went away mid-stream: its state is gone. Open a new stream and
                // go on from this input.
                out.warn(format!(
                    "{}: stream lost ({}); opening a new one",
                    self.target.call.endpoint, f.message
                ));
                self.stream = None;
                let sent = self.stream(out)?.send(data);
                sent.map_err(|f| self.target.failed(f))?;
            }
            Err(f) => return Err(self.target.failed(f)),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        if let Some(stream) = self.stream.take() {
            let outputs = stream.close().map_err(|f| self.target.failed(f))?;
            Self::emit_all(out, outputs);
        }
        Ok(())
    }

    fn reset(&mut self) {
        // A new stream is opened at the next input; the old one's state is dropped with it.
        self.stream = None;
    }
}
