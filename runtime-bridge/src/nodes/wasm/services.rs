//! The services a module may call: the node's `services` whitelist, each name a
//! `remotemedia-server` endpoint and what runs there (a `node_type` with its `params`, or a
//! whole `manifest`), reached through the gRPC transport `RemotePipelineNode` uses, with its
//! timeout, retry and token.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::super::remote_target::{RemoteTarget, SetupError, manifest_json, retry};
use crate::data::RuntimeData;
use crate::executor::Output;
use crate::remote::{RemoteCall, RemoteStream};

/// Why `services` is not a valid whitelist.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("param \"services\" must be an object of service names, not {0}")]
    NotAnObject(Value),
    #[error("param \"services.{name}\" must be an object with an \"endpoint\"")]
    NotASpec { name: String },
    #[error(
        "param \"services.{name}\": unknown field \"{field}\" (endpoint, node_type, params, \
         manifest, timeout_ms, retry, auth_token)"
    )]
    UnknownField { name: String, field: String },
    #[error("param \"services.{name}\" needs a \"node_type\" or a \"manifest\", and not both")]
    What { name: String },
    #[error("param \"services.{name}.{field}\" must be {expected}")]
    BadField {
        name: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error(transparent)]
    Setup(#[from] SetupError),
}

const FIELDS: &[&str] = &[
    "endpoint",
    "node_type",
    "params",
    "manifest",
    "timeout_ms",
    "retry",
    "auth_token",
];

struct Service {
    target: RemoteTarget,
    stream: Option<(Box<dyn RemoteStream>, String)>,
    /// The last call's request and result, for the module's retry after -2.
    last: Option<(Vec<u8>, Vec<u8>)>,
    /// Streams opened so far (for the session ids).
    opened: u64,
}

#[derive(Default)]
pub struct Services {
    by_name: BTreeMap<String, Service>,
    /// Names the streaming sessions: `<node_id>/<service>/<n>`.
    node_id: String,
}

/// Reads the whitelist of `services` (absent: none) for node `node_id`.
pub fn parse(value: Option<&Value>, node_id: &str) -> Result<Services, ServiceError> {
    let mut services = Services {
        by_name: BTreeMap::new(),
        node_id: node_id.to_owned(),
    };
    let map = match value {
        None | Some(Value::Null) => return Ok(services),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(ServiceError::NotAnObject(other.clone())),
    };
    for (name, spec) in map {
        let Value::Object(spec) = spec else {
            return Err(ServiceError::NotASpec { name: name.clone() });
        };
        services.by_name.insert(name.clone(), service(name, spec)?);
    }
    Ok(services)
}

fn service(name: &str, spec: &Map<String, Value>) -> Result<Service, ServiceError> {
    if let Some(field) = spec.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ServiceError::UnknownField {
            name: name.to_owned(),
            field: field.clone(),
        });
    }
    let bad = |field: &'static str, expected: &'static str| ServiceError::BadField {
        name: name.to_owned(),
        field,
        expected,
    };
    let param = format!("services.{name}");
    let manifest = match (spec.get("node_type"), spec.get("manifest")) {
        (Some(Value::String(node_type)), None) => {
            let params = spec.get("params").cloned().unwrap_or_else(|| json!({}));
            let one = json!({"version": "v1",
                "nodes": [{"id": "service", "node_type": node_type, "params": params}]});
            manifest_json(&param, Some(&one))?
        }
        (None, Some(m)) => manifest_json(&format!("{param}.manifest"), Some(m))?,
        _ => {
            return Err(ServiceError::What {
                name: name.to_owned(),
            });
        }
    };
    let endpoint = spec
        .get("endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                "endpoint",
                "a string: grpc://host:port or grpcs://host:port",
            )
        })?;
    let timeout_ms = match spec.get("timeout_ms") {
        None => 30_000,
        Some(v) => v
            .as_u64()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| bad("timeout_ms", "a number of milliseconds above 0"))?,
    };
    let auth_token = match spec.get("auth_token") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| bad("auth_token", "a string"))?
                .to_owned(),
        ),
    };
    let call = RemoteCall {
        endpoint: endpoint.to_owned(),
        manifest_json: manifest,
        timeout: Duration::from_millis(timeout_ms),
        auth_token,
    };
    let retry = retry(&format!("{param}.retry"), spec.get("retry"))?;
    Ok(Service {
        target: RemoteTarget::new("WasmNode", &format!("{param}.endpoint"), call, retry)?,
        stream: None,
        last: None,
        opened: 0,
    })
}

/// An output as the module reads it: JSON, text and binary as they are (binary as its size),
/// audio and the rest described.
fn output_json(o: &Output) -> Value {
    let mut v = json!({"node_id": &*o.node_id, "type": o.data.kind()});
    match &o.data {
        RuntimeData::Json(j) => v["data"] = j.clone(),
        RuntimeData::Text(t) => v["data"] = Value::from(t.as_str()),
        RuntimeData::Binary(b) => v["bytes"] = Value::from(b.len()),
        RuntimeData::Audio(a) => {
            v["sample_rate"] = a.sample_rate.into();
            v["channels"] = a.channels.into();
            v["frames"] = a.frames().into();
        }
        _ => {}
    }
    if let Some(pts) = o.pts {
        v["timestamp_ms"] = (pts as f64 / 1e6).into();
    }
    v
}

impl Services {
    fn get(&mut self, name: &str, warnings: &mut Vec<String>) -> Option<&mut Service> {
        let found = self.by_name.get_mut(name);
        if found.is_none() {
            warnings.push(format!(
                "service \"{name}\" is not in the node's services; the call returns -1"
            ));
        }
        found
    }

    /// Runs service `name` once on `data`, within the module call's `deadline`; the JSON of
    /// its outputs, or `None` (with a warning) when it is not allowed or fails. `request` is the data as the module sent it:
    /// the same request right after a call (the module's retry with a larger buffer) gets
    /// the same result without a second call.
    pub fn call(
        &mut self,
        name: &str,
        request: &[u8],
        data: RuntimeData,
        deadline: Option<Instant>,
        warnings: &mut Vec<String>,
    ) -> Option<Vec<u8>> {
        let service = self.get(name, warnings)?;
        if let Some((last_request, result)) = &service.last
            && last_request == request
        {
            return Some(result.clone());
        }
        let target = &service.target;
        let outputs = target.with_retry(
            deadline,
            &mut |w| warnings.push(format!("service \"{name}\": {w}")),
            |call| target.transport.execute(call, vec![data.clone()]),
        );
        match outputs {
            Ok(outputs) => {
                let result = Value::Array(outputs.iter().map(output_json).collect()).to_string();
                let result = result.into_bytes();
                service.last = Some((request.to_vec(), result.clone()));
                Some(result)
            }
            Err(e) => {
                warnings.push(format!("service \"{name}\" failed: {e}"));
                None
            }
        }
    }

    /// Feeds `data` to the streaming session of service `name`, opened on first use; the
    /// outputs that arrived so far, or `None` (with a warning).
    pub fn stream(
        &mut self,
        name: &str,
        data: RuntimeData,
        deadline: Option<Instant>,
        warnings: &mut Vec<String>,
    ) -> Option<Vec<Output>> {
        let node_id = self.node_id.clone();
        let service = self.get(name, warnings)?;
        if service.stream.is_none() {
            let target = &service.target;
            let opened = target.with_retry(
                deadline,
                &mut |w| warnings.push(format!("service \"{name}\": {w}")),
                |call| target.transport.stream(call),
            );
            match opened {
                Ok(stream) => {
                    service.opened += 1;
                    let id = format!("{node_id}/{name}/{}", service.opened);
                    service.stream = Some((stream, id));
                }
                Err(e) => {
                    warnings.push(format!("service \"{name}\" failed: {e}"));
                    return None;
                }
            }
        }
        let (stream, _) = service.stream.as_mut().expect("opened above");
        match stream.send(data).and_then(|()| stream.ready()) {
            Ok(outputs) => Some(outputs),
            Err(f) => {
                // The session is gone; the next call opens a new one.
                service.stream = None;
                warnings.push(format!(
                    "service \"{name}\" failed: {}",
                    service.target.failed(f)
                ));
                None
            }
        }
    }

    /// The id of service `name`'s streaming session, while one is open.
    /// No service is whitelisted.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn session_id(&self, name: &str) -> Option<&str> {
        self.by_name
            .get(name)?
            .stream
            .as_ref()
            .map(|(_, id)| id.as_str())
    }

    /// Ends the streaming sessions; the outputs still to come, and a warning for each that
    /// failed.
    pub fn close(&mut self, warnings: &mut Vec<String>) -> Vec<Output> {
        let mut outputs = Vec::new();
        for (name, service) in &mut self.by_name {
            service.last = None;
            if let Some((stream, _)) = service.stream.take() {
                match stream.close() {
                    Ok(rest) => outputs.extend(rest),
                    Err(f) => warnings.push(format!(
                        "service \"{name}\" failed: {}",
                        service.target.failed(f)
                    )),
                }
            }
        }
        outputs
    }

    /// Forgets the sessions (a flush): the next call opens new ones.
    pub fn reset(&mut self) {
        for service in self.by_name.values_mut() {
            service.stream = None;
            service.last = None;
        }
    }
}
