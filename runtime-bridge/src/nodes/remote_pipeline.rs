//! `RemotePipelineNode`: runs a sub-manifest on a `remotemedia-server`, once per input
//! (unary) or as one stream for the whole session (streaming), with a timeout, retries with
//! backoff, and a bearer token.

use std::time::Duration;

use serde_json::Value;

use crate::backoff::Backoff;
use crate::data::{Packet, RuntimeData};
use crate::manifest::ManifestReport;
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};
use crate::registry::Registry;
use crate::remote::{RemoteCall, RemoteFailure, RemoteStream, RemoteTransport, remote_transport};

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

/// Why a `RemotePipelineNode` cannot be set up.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("param \"endpoint\": {0:?} must start with grpc:// or grpcs://")]
    Endpoint(String),
    #[error(
        "RemotePipelineNode needs the gRPC transport, which the GStreamer plugin, the \
         remotemedia Python package and remotemedia-server install; none is loaded here"
    )]
    NoTransport,
    #[error("param \"retry\": a number of attempts must be 0 to 100")]
    RetryAttempts,
    #[error("param \"retry.{0}\" must be a number >= 0")]
    RetryValue(String),
    #[error(
        "param \"retry\": unknown field \"{0}\" (max_attempts, initial_backoff_ms, \
         max_backoff_ms, backoff_multiplier)"
    )]
    RetryField(String),
    #[error("param \"retry\" must be a number or an object, not {0}")]
    RetryType(Value),
    #[error("param \"manifest\": cannot read {path}: {source}")]
    ManifestUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("param \"manifest\" must be a manifest object or a file path")]
    ManifestType,
    #[error("param \"manifest\": {0}")]
    ManifestInvalid(#[source] ManifestReport),
}

impl From<SetupError> for NodeError {
    fn from(e: SetupError) -> Self {
        NodeError::Config(e.to_string())
    }
}

fn default_retry() -> Backoff {
    Backoff {
        max_attempts: 3,
        initial: Duration::from_millis(100),
        max: Duration::from_millis(2000),
        multiplier: 2.0,
    }
}

fn retry(p: &Params) -> Result<Backoff, SetupError> {
    let mut b = default_retry();
    match p.get("retry") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            b.max_attempts = n
                .as_u64()
                .filter(|&n| n <= 100)
                .ok_or(SetupError::RetryAttempts)? as u32;
        }
        Some(Value::Object(m)) => {
            for (key, value) in m {
                let n = value
                    .as_f64()
                    .filter(|v| *v >= 0.0 && v.is_finite())
                    .ok_or_else(|| SetupError::RetryValue(key.clone()))?;
                match key.as_str() {
                    "max_attempts" => b.max_attempts = n.min(100.0) as u32,
                    "initial_backoff_ms" => b.initial = Duration::from_millis(n as u64),
                    "max_backoff_ms" => b.max = Duration::from_millis(n as u64),
                    "backoff_multiplier" => b.multiplier = n,
                    other => return Err(SetupError::RetryField(other.to_owned())),
                }
            }
        }
        Some(other) => return Err(SetupError::RetryType(other.clone())),
    }
    Ok(b)
}

/// The sub-manifest as JSON text, checked here with the local node catalog so that a mistake
/// shows at load, not at the first buffer on the server.
fn manifest_json(p: &Params) -> Result<String, SetupError> {
    let (text, source) = match p.get("manifest") {
        Some(Value::String(path)) => (
            std::fs::read_to_string(path).map_err(|source| SetupError::ManifestUnreadable {
                path: path.clone(),
                source,
            })?,
            path.clone(),
        ),
        Some(v @ Value::Object(_)) => (v.to_string(), "param \"manifest\"".to_owned()),
        _ => return Err(SetupError::ManifestType),
    };
    crate::manifest::parse(&text, &source, Registry::builtin())
        .map_err(SetupError::ManifestInvalid)?;
    Ok(text)
}

struct RemotePipeline {
    transport: std::sync::Arc<dyn RemoteTransport>,
    call: RemoteCall,
    retry: Backoff,
    streaming: bool,
    stream: Option<Box<dyn RemoteStream>>,
}

impl RemotePipeline {
    fn new(p: &Params) -> Result<Self, NodeError> {
        let endpoint = p.str("endpoint").unwrap_or_default().to_owned();
        if !(endpoint.starts_with("grpc://") || endpoint.starts_with("grpcs://")) {
            return Err(SetupError::Endpoint(endpoint).into());
        }
        let transport = remote_transport().ok_or(SetupError::NoTransport)?;
        Ok(Self {
            transport,
            call: RemoteCall {
                endpoint,
                manifest_json: manifest_json(p)?,
                timeout: Duration::from_millis(p.i64("timeout_ms").unwrap_or(30_000) as u64),
                auth_token: p.str("auth_token").map(str::to_owned),
            },
            retry: retry(p)?,
            streaming: p.str("mode") == Some("streaming"),
            stream: None,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up.
    fn with_retry<T>(
        &self,
        out: &mut Emitter,
        mut attempt: impl FnMut() -> Result<T, RemoteFailure>,
    ) -> Result<T, NodeError> {
        let mut n = 0;
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(f) if f.retryable => {
                    n += 1;
                    let Some(delay) = self.retry.delay(n) else {
                        return Err(NodeError::Failed(format!(
                            "{}: {} (gave up after {} attempts)",
                            self.call.endpoint, f.message, n
                        )));
                    };
                    out.warn(format!(
                        "{}: {}; retry {n} in {} ms",
                        self.call.endpoint,
                        f.message,
                        delay.as_millis()
                    ));
                    std::thread::sleep(delay);
                }
                Err(f) => return Err(self.failed(f)),
            }
        }
    }

    /// A call that failed for good, named by the endpoint.
    fn failed(&self, f: RemoteFailure) -> NodeError {
        NodeError::Failed(format!("{}: {}", self.call.endpoint, f.message))
    }

    fn emit_all(out: &mut Emitter, outputs: Vec<crate::executor::Output>) {
        for o in outputs {
            out.emit_at(o.data, o.pts);
        }
    }

    fn stream(&mut self, out: &mut Emitter) -> Result<&mut Box<dyn RemoteStream>, NodeError> {
        if self.stream.is_none() {
            let opened = self.with_retry(out, || self.transport.stream(&self.call))?;
            self.stream = Some(opened);
        }
        Ok(self.stream.as_mut().expect("opened above"))
    }
}

impl Node for RemotePipeline {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let data: RuntimeData = input.data;
        if !self.streaming {
            let outputs = self.with_retry(out, || {
                self.transport.execute(&self.call, vec![data.clone()])
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
                    self.call.endpoint, f.message
                ));
                self.stream = None;
                let sent = self.stream(out)?.send(data);
                sent.map_err(|f| self.failed(f))?;
            }
            Err(f) => return Err(self.failed(f)),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        if let Some(stream) = self.stream.take() {
            let outputs = stream.close().map_err(|f| self.failed(f))?;
            Self::emit_all(out, outputs);
        }
        Ok(())
    }

    fn reset(&mut self) {
        // A new stream is opened at the next input; the old one's state is dropped with it.
        self.stream = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{BadParam, validate};

    fn params(v: Value) -> Result<Params, Vec<BadParam>> {
        let Value::Object(m) = v else { unreachable!() };
        validate(PARAMS, &m)
    }

    #[test]
    fn retry_takes_a_number_or_an_object() {
        let p = params(serde_json::json!({"endpoint": "grpc://h:1", "manifest": {}, "retry": 5}))
            .unwrap();
        assert_eq!(retry(&p).unwrap().max_attempts, 5);
        let p = params(serde_json::json!({"endpoint": "grpc://h:1", "manifest": {},
            "retry": {"max_attempts": 2, "initial_backoff_ms": 10}}))
        .unwrap();
        let b = retry(&p).unwrap();
        assert_eq!((b.max_attempts, b.initial), (2, Duration::from_millis(10)));
        let p = params(serde_json::json!({"endpoint": "grpc://h:1", "manifest": {},
            "retry": {"tries": 2}}))
        .unwrap();
        let err = retry(&p).unwrap_err();
        assert!(
            matches!(&err, SetupError::RetryField(f) if f == "tries"),
            "{err:?}"
        );
    }

    #[test]
    fn a_bad_sub_manifest_is_refused_at_load() {
        let p = params(serde_json::json!({"endpoint": "grpc://h:1",
            "manifest": {"version": "v1", "nodes": [{"id": "x", "node_type": "NoSuchNode"}]}}))
        .unwrap();
        let err = manifest_json(&p).unwrap_err();
        assert!(
            matches!(&err, SetupError::ManifestInvalid(report) if report.errors.len() == 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("NoSuchNode"), "{err}");
    }
}
