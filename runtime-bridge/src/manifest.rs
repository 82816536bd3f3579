//! Manifest v1: loading and strict validation. Every problem is reported at once, each with
//! its place.
//!
//! RemoteMedia's own examples load as they are written: a node's `type` is its `node_type`,
//! and a manifest without `version` is v1.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::node::NodeSpec;
use crate::params::{self, Params, closest, suggestion};
use crate::python::{self, PythonNodeConfig};
use crate::registry::Registry;

#[derive(Clone, Debug, PartialEq)]
pub enum Executor {
    Native,
    Python,
    Remote(String),
}

#[derive(Debug)]
pub struct NodeEntry {
    pub id: String,
    pub spec: &'static NodeSpec,
    pub params: Params,
    pub is_streaming: bool,
    pub is_output_node: bool,
    pub executor: Executor,
    /// How to run it, for a Python node (`executor: "python"` or a `python_module`).
    pub python: Option<PythonNodeConfig>,
}

#[derive(Debug)]
pub struct Manifest {
    pub name: Option<String>,
    pub metadata: Value,
    pub nodes: Vec<NodeEntry>,
    /// (from, to) as indices into `nodes`, in manifest order.
    pub connections: Vec<(usize, usize)>,
    /// Node indices in an order where every node comes after its inputs.
    pub topo_order: Vec<usize>,
}

/// One problem with its place, e.g. `nodes[1] "vad" (SileroVADNode): param "threshold"`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestError {
    pub place: String,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Everything wrong with a manifest.
#[derive(Clone, Debug)]
pub struct ManifestReport {
    pub source: String,
    pub errors: Vec<ManifestError>,
}

impl fmt::Display for ManifestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid manifest {}: {n} error{}",
            self.source,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestReport {}

/// Whether a manifest may come without nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nodes {
    /// Something runs the manifest, so it needs a node; the text says what would have nothing
    /// to run ("remotemediapipeline has nothing to run") and ends the report's line.
    Required(&'static str),
    /// A WebRTC server: no nodes means signaling and data channels only, no run per peer.
    MayBeEmpty,
}

impl Nodes {
    /// What every loader but the WebRTC servers' asks.
    pub const REQUIRED: Nodes = Nodes::Required("there is nothing to run");
}

const TOP_LEVEL: &[&str] = &["version", "metadata", "nodes", "connections"];
const NODE_FIELDS: &[&str] = &[
    "id",
    "node_type",
    "type",
    "params",
    "is_streaming",
    "is_output_node",
    "executor",
    "input_types",
    "output_types",
    "metadata",
    "python_module",
    "timeout_ms",
    "init_timeout_ms",
    "restart",
    "docker",
];
const CONNECTION_FIELDS: &[&str] = &["from", "to"];

struct Loader<'r> {
    registry: &'r Registry,
    /// The manifest file's directory: Python modules are looked up there too.
    dir: Option<PathBuf>,
    errors: Vec<ManifestError>,
}

impl Loader<'_> {
    fn err(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ManifestError {
            place: place.into(),
            message: message.into(),
        });
    }

    fn unknown_fields(&mut self, place: &str, obj: &Map<String, Value>, known: &[&str]) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let hint = suggestion(&closest(key, known.iter().copied()));
                let at = if place.is_empty() {
                    format!("{key:?}")
                } else {
                    format!("{place}: {key:?}")
                };
                self.err(at, format!("unknown field{hint}"));
            }
        }
    }

    /// `node_type`, or `type` as RemoteMedia's examples spell it; both given must agree.
    fn node_type<'v>(&mut self, place: &str, obj: &'v Map<String, Value>) -> Option<&'v str> {
        let mut named = None;
        for field in ["node_type", "type"] {
            match obj.get(field) {
                None => {}
                Some(Value::String(t)) => match named {
                    Some((first, earlier)) if earlier != t.as_str() => {
                        self.err(
                            place,
                            format!("{first:?} {earlier:?} and {field:?} {t:?} differ; give one"),
                        );
                        return None;
                    }
                    Some(_) => {}
                    None => named = Some((field, t.as_str())),
                },
                Some(other) => {
                    self.err(place, format!("{field} must be a string, got {other}"));
                    return None;
                }
            }
        }
        if named.is_none() {
            self.err(place, "missing \"node_type\" (or \"type\")");
        }
        named.map(|(_, t)| t)
    }

    fn node(&mut self, i: usize, value: &Value) -> Option<NodeEntry> {
        let Some(obj) = value.as_object() else {
            self.err(format!("nodes[{i}]"), "must be an object");
            return None;
        };
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                self.err(
                    format!("nodes[{i}].id"),
                    format!("must be a non-empty string, got {other}"),
                );
                None
            }
            None => {
                self.err(format!("nodes[{i}]"), "missing \"id\"");
                None
            }
        };
        let place = match &id {
            Some(id) => format!("nodes[{i}] {id:?}"),
            None => format!("nodes[{i}]"),
        };
        self.unknown_fields(&place, obj, NODE_FIELDS);
        let node_type = self.node_type(&place, obj);
        let flag = |this: &mut Self, name: &str| match obj.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                this.err(&place, format!("{name} must be true or false, got {other}"));
                false
            }
        };
        let is_streaming = flag(self, "is_streaming");
        let is_output_node = flag(self, "is_output_node");
        let executor = match obj.get("executor") {
            None | Some(Value::Null) => Executor::Native,
            Some(Value::String(s)) if s == "native" => Executor::Native,
            Some(Value::String(s)) if s == "python" => Executor::Python,
            Some(Value::Object(o)) if o.get("remote").and_then(Value::as_str).is_some() => {
                Executor::Remote(o["remote"].as_str().unwrap_or_default().to_string())
            }
            Some(other) => {
                self.err(
                    &place,
                    format!("executor must be \"native\", \"python\" or {{\"remote\": url}}, got {other}"),
                );
                Executor::Native
            }
        };
        // A python_module or a docker block implies a Python node.
        let executor = if executor == Executor::Native
            && (obj.contains_key("python_module") || obj.contains_key("docker"))
        {
            Executor::Python
        } else {
            executor
        };
        if let Executor::Remote(url) = &executor {
            self.err(
                &place,
                format!("executor {{\"remote\": {url:?}}} is not available in this build; native and python nodes run"),
            );
        }
        if executor != Executor::Python {
            for field in python::FIELDS.iter().filter(|f| obj.contains_key(**f)) {
                self.err(
                    &place,
                    format!("{field} applies to Python nodes only (\"executor\": \"python\")"),
                );
            }
        }
        let empty = Map::new();
        let raw_params = match obj.get("params") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(p)) => p,
            Some(other) => {
                self.err(&place, format!("params must be an object, got {other}"));
                &empty
            }
        };
        let node_type = node_type?;
        if executor == Executor::Python {
            let id = id?;
            let place = format!("{place} ({node_type}, python)");
            return match PythonNodeConfig::from_entry(
                node_type,
                obj,
                raw_params,
                self.dir.as_deref(),
            ) {
                Ok(cfg) => Some(NodeEntry {
                    id,
                    spec: &python::SPEC,
                    params: Params::default(),
                    is_streaming,
                    is_output_node,
                    executor,
                    python: Some(cfg),
                }),
                Err(errors) => {
                    for e in errors {
                        self.err(&place, e.to_string());
                    }
                    None
                }
            };
        }
        let spec = match self.registry.get(node_type) {
            Some(spec) => spec,
            None => {
                let msg = format!(
                    "{}; a Python node needs \"executor\": \"python\"",
                    self.registry.unknown_type_message(node_type)
                );
                self.err(&place, msg);
                return None;
            }
        };
        let id = id?;
        let place = format!("{place} ({})", spec.node_type);
        let params = match params::validate(spec.params, raw_params) {
            Ok(p) => p,
            Err(errs) => {
                for bad in errs {
                    self.err(&place, bad.to_string());
                }
                return None;
            }
        };
        // Building an instance catches what only the node can judge (cross-param rules,
        // a model file that is missing), at load rather than at the first buffer.
        if let Err(e) = (spec.create)(&params) {
            self.err(&place, e.to_string());
            return None;
        }
        Some(NodeEntry {
            id,
            spec,
            params,
            is_streaming,
            is_output_node,
            executor,
            python: None,
        })
    }
}

/// Parses and validates manifest text, which must have nodes. `source` names it in the report
/// (a path or "inline").
pub fn parse(text: &str, source: &str, registry: &Registry) -> Result<Manifest, ManifestReport> {
    parse_in(text, source, None, registry, Nodes::REQUIRED)
}

/// `parse` for a manifest that lives in `dir`, where its Python modules are looked up too, and
/// may have no nodes where `nodes` says so.
pub fn parse_in(
    text: &str,
    source: &str,
    dir: Option<&Path>,
    registry: &Registry,
    nodes: Nodes,
) -> Result<Manifest, ManifestReport> {
    let report = |errors| ManifestReport {
        source: source.to_string(),
        errors,
    };
    let root: Value = serde_json::from_str(text).map_err(|e| {
        report(vec![ManifestError {
            place: format!("line {} column {}", e.line(), e.column()),
            message: format!("not valid JSON: {e}"),
        }])
    })?;
    let mut l = Loader {
        registry,
        dir: dir.map(Path::to_path_buf),
        errors: Vec::new(),
    };
    let Some(obj) = root.as_object() else {
        l.err("", "the manifest must be a JSON object");
        return Err(report(l.errors));
    };
    l.unknown_fields("", obj, TOP_LEVEL);
    match obj.get("version") {
        Some(Value::String(v)) if v == "v1" => {}
        // RemoteMedia's examples leave it out.
        None => {}
        Some(other) => l.err("version", format!("must be \"v1\", got {other}")),
    }
    let metadata = obj.get("metadata").cloned().unwrap_or(Value::Null);
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);

    let raw_nodes = match (obj.get("nodes"), nodes) {
        (Some(Value::Array(a)), Nodes::Required(why)) if a.is_empty() => {
            l.err("", format!("the manifest has no nodes: {why}"));
            &[]
        }
        (Some(Value::Array(a)), _) => a.as_slice(),
        (Some(other), _) => {
            l.err("nodes", format!("must be an array, got {other}"));
            &[]
        }
        (None, _) => {
            l.err("nodes", "missing");
            &[]
        }
    };
    let mut nodes = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw_nodes.iter().enumerate() {
        let raw_id = raw.get("id").and_then(Value::as_str).map(str::to_string);
        if let Some(id) = &raw_id
            && let Some(first) = ids.get(id)
        {
            l.err(
                format!("nodes[{i}] {id:?}"),
                format!("duplicate id, first used by nodes[{first}]"),
            );
        }
        match l.node(i, raw) {
            Some(entry) => {
                ids.entry(entry.id.clone()).or_insert(nodes.len());
                nodes.push(entry);
            }
            None => {
                if let Some(id) = raw_id {
                    // Keep the id known so connections to it are not reported twice.
                    ids.entry(id).or_insert(usize::MAX);
                }
            }
        }
    }

    let mut connections = Vec::new();
    match obj.get("connections") {
        None | Some(Value::Null) => {}
        Some(Value::Array(conns)) => {
            for (i, c) in conns.iter().enumerate() {
                let place = format!("connections[{i}]");
                let Some(c) = c.as_object() else {
                    l.err(&place, "must be an object {\"from\": id, \"to\": id}");
                    continue;
                };
                l.unknown_fields(&place, c, CONNECTION_FIELDS);
                let mut end = |field: &str| -> Option<usize> {
                    match c.get(field) {
                        Some(Value::String(id)) => match ids.get(id) {
                            Some(&idx) => Some(idx),
                            None => {
                                let hint = suggestion(&closest(id, ids.keys().map(String::as_str)));
                                l.err(
                                    format!("{place}.{field}"),
                                    format!("unknown node {id:?}{hint}"),
                                );
                                None
                            }
                        },
                        Some(other) => {
                            l.err(
                                format!("{place}.{field}"),
                                format!("must be a node id, got {other}"),
                            );
                            None
                        }
                        None => {
                            l.err(&place, format!("missing {field:?}"));
                            None
                        }
                    }
                };
                let (from, to) = (end("from"), end("to"));
                if let (Some(from), Some(to)) = (from, to) {
                    if from == to && from != usize::MAX {
                        l.err(
                            &place,
                            format!("node {:?} is connected to itself", nodes[from].id),
                        );
                    } else if from != usize::MAX && to != usize::MAX {
                        connections.push((from, to));
                    }
                }
            }
        }
        Some(other) => l.err("connections", format!("must be an array, got {other}")),
    }

    let topo_order = match topo_sort(nodes.len(), &connections) {
        Ok(order) => order,
        Err(cycle) => {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| format!("{:?}", nodes[i].id))
                .collect();
            l.err(
                "connections",
                format!("form a cycle through {}", names.join(", ")),
            );
            Vec::new()
        }
    };

    if !l.errors.is_empty() {
        return Err(report(l.errors));
    }
    Ok(Manifest {
        name,
        metadata,
        nodes,
        connections,
        topo_order,
    })
}

/// Reads and validates a manifest file (with or without nodes, as `nodes` says); a missing
/// file names its path.
pub fn load_file(
    path: &Path,
    registry: &Registry,
    nodes: Nodes,
) -> Result<Manifest, ManifestReport> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ManifestReport {
        source: source.clone(),
        errors: vec![ManifestError {
            place: String::new(),
            message: format!("cannot read manifest file {source:?}: {e}"),
        }],
    })?;
    let dir = path.parent().map(|d| {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        d.canonicalize().unwrap_or_else(|_| d.to_path_buf())
    });
    parse_in(&text, &source, dir.as_deref(), registry, nodes)
}

/// Kahn's algorithm; on a cycle returns the nodes left in it.
fn topo_sort(n: usize, edges: &[(usize, usize)]) -> Result<Vec<usize>, Vec<usize>> {
    let mut indegree = vec![0usize; n];
    for &(_, to) in edges {
        indegree[to] += 1;
    }
    let mut ready: Vec<usize> = (0..n).rev().filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &(from, to) in edges.iter().rev() {
            if from == i {
                indegree[to] -= 1;
                if indegree[to] == 0 {
                    ready.push(to);
                }
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err((0..n).filter(|&i| indegree[i] > 0).collect())
    }
}
