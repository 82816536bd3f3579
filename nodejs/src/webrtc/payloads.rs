//! The objects JavaScript listeners get, one per event (webrtc.d.ts declares the same).

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use serde_json::Value;

/// `peer_connected`: what the peer announced, `capabilities` and `user_data` (as `metadata`).
#[napi(object, object_from_js = false)]
pub struct PeerConnectedEvent {
    pub peer_id: String,
    pub capabilities: Value,
    pub metadata: Value,
}

/// `peer_disconnected`, with the reason the call ended.
#[napi(object, object_from_js = false)]
pub struct PeerDisconnectedEvent {
    pub peer_id: String,
    pub reason: String,
}

/// `pipeline_output`: a result of the peer's run of the manifest; `data` is the parsed JSON
/// (the text for a text result), `timestamp` its stream time in nanoseconds (null: unknown).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct PipelineOutputEvent {
    pub peer_id: String,
    pub node_id: String,
    pub kind: String,
    pub data: Value,
    pub timestamp: Option<f64>,
}

/// `data`: a data-channel message (text arrives UTF-8 encoded, `binary` says which kind the
/// peer sent), `timestamp` its arrival in Unix milliseconds.
#[napi(object, object_from_js = false)]
pub struct DataEvent {
    pub peer_id: String,
    pub data: Buffer,
    pub binary: bool,
    pub timestamp: f64,
}

/// `error`: a code of RemoteMedia's table, and the peer it concerns (null: the server).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct ErrorEvent {
    pub code: String,
    pub message: String,
    pub peer_id: Option<String>,
}

/// `session`: `eventType` is created, deleted, peer_joined or peer_left.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct SessionEvent {
    pub session_id: String,
    pub event_type: String,
    pub peer_id: Option<String>,
}
