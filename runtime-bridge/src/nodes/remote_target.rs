//! A `remotemedia-server` a node calls: where it is, the manifest it runs there, how long a
//! call may take and how often a failed one is tried again. `RemotePipelineNode` calls one;
//! a `WasmNode` calls the services of its whitelist.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backoff::Backoff;
use crate::manifest::ManifestReport;
use crate::node::NodeError;
use crate::registry::Registry;
use crate::remote::{RemoteCall, RemoteFailure, RemoteTransport, remote_transport};

/// Why a remote target cannot be set up; `param` names the param at fault as the manifest
/// writes it (`retry`, `services.VAD.retry`, ...).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("param \"{param}\": {endpoint:?} must start with grpc:// or grpcs://")]
    Endpoint { param: String, endpoint: String },
    #[error(
        "{node} needs the gRPC transport, which the GStreamer plugin, the remotemedia Python \
         package and remotemedia-server install; none is loaded here"
    )]
    NoTransport { node: &'static str },
    #[error("param \"{param}\": a number of attempts must be 0 to 100")]
    RetryAttempts { param: String },
    #[error("param \"{param}.{key}\" must be a number >= 0")]
    RetryValue { param: String, key: String },
    #[error(
        "param \"{param}\": unknown field \"{key}\" (max_attempts, initial_backoff_ms, \
         max_backoff_ms, backoff_multiplier)"
    )]
    RetryField { param: String, key: String },
    #[error("param \"{param}\" must be a number or an object, not {value}")]
    RetryType { param: String, value: Value },
    #[error("param \"{param}\": cannot read {path}: {source}")]
    ManifestUnreadable {
        param: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("param \"{param}\" must be a manifest object or a file path")]
    ManifestType { param: String },
    #[error("param \"{param}\": {report}")]
    ManifestInvalid {
        param: String,
        #[source]
        report: ManifestReport,
    },
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

/// The retry policy of param `param`: absent for the default (3 attempts from 100 ms,
/// doubling, at most 2000 ms), a number of attempts (0: no retry), or an object of the
/// policy's fields.
pub fn retry(param: &str, value: Option<&Value>) -> Result<Backoff, SetupError> {
    let mut b = default_retry();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            b.max_attempts =
                n.as_u64()
                    .filter(|&n| n <= 100)
                    .ok_or_else(|| SetupError::RetryAttempts {
                        param: param.to_owned(),
                    })? as u32;
        }
        Some(Value::Object(m)) => {
            for (key, value) in m {
                let n = value
                    .as_f64()
                    .filter(|v| *v >= 0.0 && v.is_finite())
                    .ok_or_else(|| SetupError::RetryValue {
                        param: param.to_owned(),
                        key: key.clone(),
                    })?;
                match key.as_str() {
                    "max_attempts" => b.max_attempts = n.min(100.0) as u32,
                    "initial_backoff_ms" => b.initial = Duration::from_millis(n as u64),
                    "max_backoff_ms" => b.max = Duration::from_millis(n as u64),
                    "backoff_multiplier" => b.multiplier = n,
                    other => {
                        return Err(SetupError::RetryField {
                            param: param.to_owned(),
                            key: other.to_owned(),
                        });
                    }
                }
            }
        }
        Some(other) => {
            return Err(SetupError::RetryType {
                param: param.to_owned(),
                value: other.clone(),
            });
        }
    }
    Ok(b)
}

/// The manifest of param `param` (an object, or a path to a file) as JSON text, checked here
/// with the local node catalog so that a mistake shows at load, not at the first call.
pub fn manifest_json(param: &str, value: Option<&Value>) -> Result<String, SetupError> {
    let (text, source) = match value {
        Some(Value::String(path)) => (
            std::fs::read_to_string(path).map_err(|source| SetupError::ManifestUnreadable {
                param: param.to_owned(),
                path: path.clone(),
                source,
            })?,
            path.clone(),
        ),
        Some(v @ Value::Object(_)) => (v.to_string(), format!("param \"{param}\"")),
        _ => {
            return Err(SetupError::ManifestType {
                param: param.to_owned(),
            });
        }
    };
    crate::manifest::parse(&text, &source, Registry::builtin()).map_err(|report| {
        SetupError::ManifestInvalid {
            param: param.to_owned(),
            report,
        }
    })?;
    Ok(text)
}

/// A server to call and the policy of calling it.
pub struct RemoteTarget {
    pub transport: Arc<dyn RemoteTransport>,
    pub call: RemoteCall,
    pub retry: Backoff,
}

impl RemoteTarget {
    /// `node` names the node type in the error when no transport is installed.
    pub fn new(
        node: &'static str,
        endpoint_param: &str,
        call: RemoteCall,
        retry: Backoff,
    ) -> Result<Self, SetupError> {
        if !(call.endpoint.starts_with("grpc://") || call.endpoint.starts_with("grpcs://")) {
            return Err(SetupError::Endpoint {
                param: endpoint_param.to_owned(),
                endpoint: call.endpoint,
            });
        }
        let transport = remote_transport().ok_or(SetupError::NoTransport { node })?;
        Ok(Self {
            transport,
            call,
            retry,
        })
    }

    /// Runs `attempt` on the call until it succeeds, fails for good, or the retries are used
    /// up (`max_attempts` 0: no retry); each retry is announced through `warn`. With a
    /// `deadline`, each attempt gets at most the time left and no retry starts that would
    /// end after it.
    pub fn with_retry<T>(
        &self,
        deadline: Option<Instant>,
        warn: &mut dyn FnMut(String),
        mut attempt: impl FnMut(&RemoteCall) -> Result<T, RemoteFailure>,
    ) -> Result<T, NodeError> {
        let endpoint = &self.call.endpoint;
        let mut n = 0;
        loop {
            let mut call = Cow::Borrowed(&self.call);
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(NodeError::Failed(format!(
                        "{endpoint}: no time left for the call"
                    )));
                }
                if left < call.timeout {
                    call.to_mut().timeout = left;
                }
            }
            match attempt(&call) {
                Ok(v) => return Ok(v),
                Err(f) if f.retryable => {
                    n += 1;
                    let delay = Some(&self.retry)
                        .filter(|r| r.max_attempts > 0)
                        .and_then(|r| r.delay(n))
                        .filter(|d| deadline.is_none_or(|dl| Instant::now() + *d < dl));
                    let Some(delay) = delay else {
                        return Err(NodeError::Failed(format!(
                            "{endpoint}: {} (gave up after {n} attempts)",
                            f.message
                        )));
                    };
                    warn(format!(
                        "{endpoint}: {}; retry {n} in {} ms",
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
    pub fn failed(&self, f: RemoteFailure) -> NodeError {
        NodeError::Failed(format!("{}: {}", self.call.endpoint, f.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_takes_a_number_or_an_object() {
        assert_eq!(
            retry("retry", Some(&serde_json::json!(5)))
                .unwrap()
                .max_attempts,
            5
        );
        let b = retry(
            "retry",
            Some(&serde_json::json!({"max_attempts": 2, "initial_backoff_ms": 10})),
        )
        .unwrap();
        assert_eq!((b.max_attempts, b.initial), (2, Duration::from_millis(10)));
        let err = retry("services.vad.retry", Some(&serde_json::json!({"tries": 2}))).unwrap_err();
        assert!(
            matches!(&err, SetupError::RetryField { key, .. } if key == "tries"),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("param \"services.vad.retry\""));
    }

    #[test]
    fn a_bad_manifest_is_refused_at_load() {
        let bad =
            serde_json::json!({"version": "v1", "nodes": [{"id": "x", "node_type": "NoSuchNode"}]});
        let err = manifest_json("manifest", Some(&bad)).unwrap_err();
        assert!(
            matches!(&err, SetupError::ManifestInvalid { report, .. } if report.errors.len() == 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("NoSuchNode"), "{err}");
    }
}
