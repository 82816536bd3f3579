//! Python nodes: a manifest node with `"executor": "python"` runs in a worker process
//! (`python -m remotemedia.worker`) and exchanges data with the graph over iceoryx2 shared
//! memory. This module holds the manifest side (what a Python node entry says), the channel
//! both processes use, and the host that starts, watches and restarts workers.

pub mod channel;
pub mod container;
mod host;
mod interpreter;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

pub use host::{PythonNode, WorkerOptions};
pub use interpreter::python_executable;

use crate::node::{NodeError, NodeSpec, StreamFormat, Threading, no_latency};

/// The registry-side stand-in for every Python node: its real type lives in the worker.
/// Its output format is unknown before data flows, so a resampler (or the sink's caps)
/// fixes the format after it.
pub static SPEC: NodeSpec = NodeSpec {
    node_type: "PythonNode",
    aliases: &[],
    doc: "A node written in Python, run in a worker process.",
    params: &[],
    threading: Threading::Adaptive,
    create: |_| {
        Err(NodeError::Config(
            "Python nodes are started by the session".into(),
        ))
    },
    format: |_, _| Ok(StreamFormat::Any),
    latency_ns: no_latency,
};

/// What to do when a worker raises, crashes or hangs.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// Restarts allowed over the session's life; the next failure is an error.
    pub max_restarts: u32,
    /// Wait before the first restart; doubled for each further one.
    pub backoff: Duration,
}

/// A Python node as the manifest describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonNodeConfig {
    /// The name the class is registered under (`@register_node("Name")`).
    pub node_type: String,
    /// The module that registers it: a module name or a path to a `.py` file.
    pub module: Option<String>,
    /// Passed to the class as keyword arguments.
    pub params: Map<String, Value>,
    /// How long one call (an input, end of stream) may take.
    pub timeout: Duration,
    /// How long loading the module and `initialize()` may take.
    pub init_timeout: Duration,
    pub restart: Option<RestartPolicy>,
    /// Directories the worker adds to `sys.path` (the manifest's own directory).
    pub search_path: Vec<PathBuf>,
    /// The container the worker runs in (the node's `docker` block); `None`: a local process.
    pub container: Option<container::ContainerSpec>,
}

pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_INIT_TIMEOUT_MS: u64 = 120_000;
const DEFAULT_BACKOFF_MS: u64 = 200;

/// The node fields only Python nodes take, checked by the manifest loader.
pub const FIELDS: &[&str] = &[
    "python_module",
    "timeout_ms",
    "init_timeout_ms",
    "restart",
    "docker",
];

/// What is wrong with a Python node's own fields in the manifest.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PythonEntryError {
    #[error("python_module must be a module name or a .py path, got {0}")]
    Module(Value),
    #[error("{field} must be an integer within 1..86400000, got {got}")]
    Millis { field: &'static str, got: Value },
    #[error("restart must be an object {{\"max_restarts\": n, \"backoff_ms\": ms}}, got {0}")]
    Restart(Value),
    #[error("restart: unknown field {0:?} (known: max_restarts, backoff_ms)")]
    RestartField(String),
    #[error("restart.max_restarts must be an integer within 0..1000, got {0}")]
    MaxRestarts(Value),
    #[error("restart.backoff_ms must be an integer within 0..60000, got {0}")]
    RestartBackoff(Value),
    #[error(transparent)]
    Container(#[from] container::ContainerSpecError),
}

fn millis(
    obj: &Map<String, Value>,
    field: &'static str,
    default: u64,
) -> Result<Duration, PythonEntryError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Duration::from_millis(default)),
        Some(v) => v
            .as_u64()
            .filter(|&ms| (1..=86_400_000).contains(&ms))
            .map(Duration::from_millis)
            .ok_or_else(|| PythonEntryError::Millis {
                field,
                got: v.clone(),
            }),
    }
}

fn restart_policy(value: Option<&Value>) -> Result<Option<RestartPolicy>, PythonEntryError> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(other) => return Err(PythonEntryError::Restart(other.clone())),
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !["max_restarts", "backoff_ms"].contains(&k.as_str()))
    {
        return Err(PythonEntryError::RestartField(key.clone()));
    }
    let max_restarts = match obj.get("max_restarts") {
        None => 3,
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= 1000)
            .ok_or_else(|| PythonEntryError::MaxRestarts(v.clone()))? as u32,
    };
    let backoff = match obj.get("backoff_ms") {
        None => Duration::from_millis(DEFAULT_BACKOFF_MS),
        Some(v) => v
            .as_u64()
            .filter(|&ms| ms <= 60_000)
            .map(Duration::from_millis)
            .ok_or_else(|| PythonEntryError::RestartBackoff(v.clone()))?,
    };
    Ok(Some(RestartPolicy {
        max_restarts,
        backoff,
    }))
}

impl PythonNodeConfig {
    /// Reads a Python node's entry; every problem is returned, for the loader to place.
    pub fn from_entry(
        node_type: &str,
        obj: &Map<String, Value>,
        params: &Map<String, Value>,
        manifest_dir: Option<&std::path::Path>,
    ) -> Result<Self, Vec<PythonEntryError>> {
        let mut errors = Vec::new();
        let module = match obj.get("python_module") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                errors.push(PythonEntryError::Module(other.clone()));
                None
            }
        };
        let mut field = |r: Result<Duration, PythonEntryError>| {
            r.unwrap_or_else(|e| {
                errors.push(e);
                Duration::ZERO
            })
        };
        let timeout = field(millis(obj, "timeout_ms", DEFAULT_TIMEOUT_MS));
        let init_timeout = field(millis(obj, "init_timeout_ms", DEFAULT_INIT_TIMEOUT_MS));
        let restart = restart_policy(obj.get("restart")).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let container = container::from_entry(obj).unwrap_or_else(|e| {
            errors.extend(e.into_iter().map(PythonEntryError::from));
            None
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            node_type: node_type.to_string(),
            module,
            params: params.clone(),
            timeout,
            init_timeout,
            restart,
            search_path: manifest_dir
                .map(|d| vec![d.to_path_buf()])
                .unwrap_or_default(),
            container,
        })
    }
}
