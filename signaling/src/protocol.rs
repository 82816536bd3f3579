//! The JSON-RPC 2.0 signaling protocol (docs/ARCHITECTURE.md, "Signaling"): methods, their params, notifications and
//! error codes. Transport-free, so the WebSocket server, the client and (later) gRPC share it.

use remotemedia_runtime::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// JSON-RPC 2.0 standard error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL: i64 = -32603;
/// Application error codes; `error.data.code` carries the `ErrorCode` name next to them.
pub const PEER_NOT_FOUND: i64 = -32001;
pub const NOT_ANNOUNCED: i64 = -32002;
pub const PEER_ID_TAKEN: i64 = -32003;
pub const MAX_PEERS_REACHED: i64 = -32004;
pub const PEER_ERROR: i64 = -32005;
pub const RATE_LIMITED: i64 = -32006;
pub const MESSAGE_TOO_LARGE: i64 = -32007;

/// A JSON-RPC error object: `code` is JSON-RPC's number, `kind` the name users see
/// (`PEER_NOT_FOUND`, `MAX_PEERS_REACHED`, ...), sent as `error.data.code`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind} ({code}): {message}")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub kind: ErrorCode,
}

impl RpcError {
    pub fn new(code: i64, kind: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            kind,
        }
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, ErrorCode::Signaling, message)
    }
    /// The link to the signaling server at `url` failed.
    pub fn link(url: &str, what: impl std::fmt::Display) -> Self {
        Self::new(
            INTERNAL,
            ErrorCode::Signaling,
            format!("signaling server {url}: {what}"),
        )
    }
    pub fn peer_not_found(peer_id: &str) -> Self {
        Self::new(
            PEER_NOT_FOUND,
            ErrorCode::PeerNotFound,
            format!("no peer '{peer_id}' is announced"),
        )
    }
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "data": {"code": self.kind.as_str()}})
    }
}

/// The methods a client may call. Both `peer.offer` and the bare `offer` are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Announce,
    Offer,
    Answer,
    IceCandidate,
    Disconnect,
    List,
    StateChange,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Announce,
        Method::Offer,
        Method::Answer,
        Method::IceCandidate,
        Method::Disconnect,
        Method::List,
        Method::StateChange,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        let bare = name.strip_prefix("peer.").unwrap_or(name);
        Some(match bare {
            "announce" => Method::Announce,
            "offer" => Method::Offer,
            "answer" => Method::Answer,
            "ice_candidate" => Method::IceCandidate,
            "disconnect" => Method::Disconnect,
            "list" | "list_peers" => Method::List,
            "state_change" => Method::StateChange,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Announce => "peer.announce",
            Method::Offer => "peer.offer",
            Method::Answer => "peer.answer",
            Method::IceCandidate => "peer.ice_candidate",
            Method::Disconnect => "peer.disconnect",
            Method::List => "peer.list",
            Method::StateChange => "peer.state_change",
        }
    }
}

/// What one peer announces about itself and others see in `peer.joined` and `peer.list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerInfo {
    pub peer_id: String,
    #[serde(default)]
    pub capabilities: Value,
    #[serde(default)]
    pub user_data: Value,
}

/// A message from one peer to another, relayed by the registry.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Offer {
        from: String,
        to: String,
        sdp: String,
    },
    Answer {
        from: String,
        to: String,
        sdp: String,
    },
    IceCandidate {
        from: String,
        to: String,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_m_line_index: Option<u16>,
    },
    /// `from` ends its call with `to`.
    Disconnect { from: String, to: String },
    StateChange {
        from: String,
        to: String,
        state: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SdpParams {
    from: Option<String>,
    to: String,
    sdp: String,
    #[serde(default, rename = "type")]
    _type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CandidateParams {
    from: Option<String>,
    to: String,
    candidate: String,
    #[serde(default)]
    sdp_mid: Option<String>,
    #[serde(default)]
    sdp_m_line_index: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToParams {
    from: Option<String>,
    to: String,
    #[serde(default)]
    state: Option<String>,
}

impl Signal {
    pub fn method(&self) -> Method {
        match self {
            Signal::Offer { .. } => Method::Offer,
            Signal::Answer { .. } => Method::Answer,
            Signal::IceCandidate { .. } => Method::IceCandidate,
            Signal::Disconnect { .. } => Method::Disconnect,
            Signal::StateChange { .. } => Method::StateChange,
        }
    }

    pub fn from(&self) -> &str {
        match self {
            Signal::Offer { from, .. }
            | Signal::Answer { from, .. }
            | Signal::IceCandidate { from, .. }
            | Signal::Disconnect { from, .. }
            | Signal::StateChange { from, .. } => from,
        }
    }

    pub fn to(&self) -> &str {
        match self {
            Signal::Offer { to, .. }
            | Signal::Answer { to, .. }
            | Signal::IceCandidate { to, .. }
            | Signal::Disconnect { to, .. }
            | Signal::StateChange { to, .. } => to,
        }
    }

    /// Reads the params of a relayed method sent by `sender`. A `from` other than the sender's
    /// own id is refused: nobody speaks for another peer.
    pub fn from_params(method: Method, params: Value, sender: &str) -> Result<Self, RpcError> {
        fn parse<T: for<'de> Deserialize<'de>>(
            method: Method,
            params: Value,
        ) -> Result<T, RpcError> {
            serde_json::from_value(params)
                .map_err(|e| RpcError::invalid_params(format!("{}: {e}", method.name())))
        }
        let own = |from: Option<String>| match from {
            Some(f) if f != sender => Err(RpcError::invalid_params(format!(
                "{}: 'from' is '{f}' but this connection announced '{sender}'",
                method.name()
            ))),
            _ => Ok(sender.to_owned()),
        };
        let signal = match method {
            Method::Offer | Method::Answer => {
                let p: SdpParams = parse(method, params)?;
                if p.sdp.trim().is_empty() {
                    return Err(RpcError::invalid_params(format!(
                        "{}: 'sdp' is empty",
                        method.name()
                    )));
                }
                let from = own(p.from)?;
                if method == Method::Offer {
                    Signal::Offer {
                        from,
                        to: p.to,
                        sdp: p.sdp,
                    }
                } else {
                    Signal::Answer {
                        from,
                        to: p.to,
                        sdp: p.sdp,
                    }
                }
            }
            Method::IceCandidate => {
                let p: CandidateParams = parse(method, params)?;
                Signal::IceCandidate {
                    from: own(p.from)?,
                    to: p.to,
                    candidate: p.candidate,
                    sdp_mid: p.sdp_mid,
                    sdp_m_line_index: p.sdp_m_line_index,
                }
            }
            Method::Disconnect => {
                let p: ToParams = parse(method, params)?;
                Signal::Disconnect {
                    from: own(p.from)?,
                    to: p.to,
                }
            }
            Method::StateChange => {
                let p: ToParams = parse(method, params)?;
                let state = p.state.ok_or_else(|| {
                    RpcError::invalid_params("peer.state_change: missing field `state`")
                })?;
                Signal::StateChange {
                    from: own(p.from)?,
                    to: p.to,
                    state,
                }
            }
            Method::Announce | Method::List => {
                return Err(RpcError::invalid_params(format!(
                    "{} is not relayed between peers",
                    method.name()
                )));
            }
        };
        if signal.to().is_empty() {
            return Err(RpcError::invalid_params(format!(
                "{}: 'to' is empty",
                method.name()
            )));
        }
        Ok(signal)
    }

    pub fn params(&self) -> Value {
        match self {
            Signal::Offer { from, to, sdp } => {
                json!({"from": from, "to": to, "sdp": sdp, "type": "offer"})
            }
            Signal::Answer { from, to, sdp } => {
                json!({"from": from, "to": to, "sdp": sdp, "type": "answer"})
            }
            Signal::IceCandidate {
                from,
                to,
                candidate,
                sdp_mid,
                sdp_m_line_index,
            } => json!({
                "from": from, "to": to, "candidate": candidate,
                "sdp_mid": sdp_mid, "sdp_m_line_index": sdp_m_line_index,
            }),
            Signal::Disconnect { from, to } => json!({"from": from, "to": to}),
            Signal::StateChange { from, to, state } => {
                json!({"from": from, "to": to, "state": state})
            }
        }
    }

    /// The notification a WebSocket peer receives for this signal.
    pub fn notification(&self) -> String {
        notification(self.method().name(), self.params())
    }
}

pub fn notification(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

pub fn response(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

pub fn error_response(id: &Value, error: &RpcError) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()}).to_string()
}

/// A parsed request. `id` is `None` for a JSON-RPC notification, which gets no response.
#[derive(Debug)]
pub struct Request {
    pub id: Option<Value>,
    pub method: Method,
    pub params: Value,
}

/// Parses one JSON-RPC text frame. On failure returns the id to answer with (null when the id
/// could not be read) and the error.
pub fn parse_request(text: &str) -> Result<Request, (Value, RpcError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            Value::Null,
            RpcError::new(
                PARSE_ERROR,
                ErrorCode::Signaling,
                format!("parse error: {e}"),
            ),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err((
            Value::Null,
            RpcError::new(
                INVALID_REQUEST,
                ErrorCode::Signaling,
                "a request must be a JSON object (batches are not supported)",
            ),
        ));
    };
    let id = obj.remove("id");
    let reply_id = id.clone().unwrap_or(Value::Null);
    if !matches!(
        &id,
        None | Some(Value::String(_) | Value::Number(_) | Value::Null)
    ) {
        return Err((
            Value::Null,
            RpcError::new(
                INVALID_REQUEST,
                ErrorCode::Signaling,
                "'id' must be a string or a number",
            ),
        ));
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err((
            reply_id,
            RpcError::new(
                INVALID_REQUEST,
                ErrorCode::Signaling,
                "'jsonrpc' must be \"2.0\"",
            ),
        ));
    }
    let Some(Value::String(name)) = obj.remove("method") else {
        return Err((
            reply_id,
            RpcError::new(
                INVALID_REQUEST,
                ErrorCode::Signaling,
                "'method' must be a string",
            ),
        ));
    };
    let method = Method::parse(&name).ok_or_else(|| {
        let known: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        (
            reply_id.clone(),
            RpcError::new(
                METHOD_NOT_FOUND,
                ErrorCode::Signaling,
                format!("unknown method '{name}'; known: {}", known.join(", ")),
            ),
        )
    })?;
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return Err((
                reply_id,
                RpcError::invalid_params(format!("{}: 'params' must be an object", method.name())),
            ));
        }
    };
    Ok(Request { id, method, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_dotted_names_are_the_same_method() {
        assert_eq!(Method::parse("offer"), Some(Method::Offer));
        assert_eq!(Method::parse("peer.offer"), Some(Method::Offer));
        assert_eq!(Method::parse("peer.nope"), None);
    }

    #[test]
    fn from_must_be_the_sender() {
        let err = Signal::from_params(
            Method::Offer,
            json!({"from": "mallory", "to": "b", "sdp": "v=0"}),
            "alice",
        )
        .unwrap_err();
        assert_eq!(err.code, INVALID_PARAMS);
        assert!(err.message.contains("mallory"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert_eq!(parse_request("{").unwrap_err().1.code, PARSE_ERROR);
        assert_eq!(parse_request("[1]").unwrap_err().1.code, INVALID_REQUEST);
        let (id, err) = parse_request(r#"{"jsonrpc":"2.0","id":7,"method":"x"}"#).unwrap_err();
        assert_eq!((id, err.code), (json!(7), METHOD_NOT_FOUND));
    }
}
