//! The bus messages of the WebRTC elements (docs/ARCHITECTURE.md, "Errors"). They are element messages, so a
//! failing peer never turns into a pipeline error; `gst-launch-1.0 -m` shows them.

use gst::prelude::*;
use remotemedia_runtime::ErrorCode;

use gst::glib;

use super::channel::Payload;
use super::hub::Announced;
use super::sessions::Change;

fn post(element: &gst::Element, s: gst::Structure) {
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// `peer-connected`, with the capabilities and user data (`metadata`) the peer announced,
/// each a JSON object.
pub fn peer_connected(element: &gst::Element, peer_id: &str, announced: &Announced) {
    post(
        element,
        gst::Structure::builder("peer-connected")
            .field("peer-id", peer_id)
            .field("capabilities", &announced.capabilities)
            .field("metadata", &announced.metadata)
            .build(),
    );
}

pub fn peer_disconnected(element: &gst::Element, peer_id: &str, reason: &str) {
    post(
        element,
        gst::Structure::builder("peer-disconnected")
            .field("peer-id", peer_id)
            .field("reason", reason)
            .build(),
    );
}

/// `data`: a data-channel message, with `timestamp` (Unix milliseconds of its arrival);
/// text in `message`, binary in `bytes` (`binary=true`).
pub fn data(element: &gst::Element, peer_id: &str, payload: &Payload) {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let builder = gst::Structure::builder("data")
        .field("peer-id", peer_id)
        .field("timestamp", timestamp);
    let s = match payload {
        Payload::Text(text) => builder.field("binary", false).field("message", text),
        Payload::Binary(data) => builder
            .field("binary", true)
            .field("bytes", glib::Bytes::from(data.as_ref())),
    };
    post(element, s.build());
}

pub fn error(element: &gst::Element, code: ErrorCode, peer_id: Option<&str>, message: &str) {
    post(
        element,
        gst::Structure::builder("error")
            .field("code", code.as_str())
            .field("peer-id", peer_id.unwrap_or(""))
            .field("message", message)
            .build(),
    );
}

/// `signaling-reconnected`: the external signaling server is reachable again after `attempts`
/// attempts, and this element is announced there again.
pub fn signaling_reconnected(element: &gst::Element, attempts: u32) {
    post(
        element,
        gst::Structure::builder("signaling-reconnected")
            .field("attempts", attempts)
            .build(),
    );
}

/// `session`: a session was created or deleted, or a peer joined or left it.
pub fn session(element: &gst::Element, session_id: &str, change: &Change) {
    let (event, peer) = match change {
        Change::Created => ("created", ""),
        Change::Deleted => ("deleted", ""),
        Change::PeerJoined(p) => ("peer-joined", p.as_str()),
        Change::PeerLeft(p) => ("peer-left", p.as_str()),
    };
    post(
        element,
        gst::Structure::builder("session")
            .field("session-id", session_id)
            .field("event", event)
            .field("peer-id", peer)
            .build(),
    );
}

/// A manifest result (the fields of a `remotemedia` bus message or `remotemedia-result`
/// event) as peers get it on their data channel:
/// `{"type": "result", "node_id", "kind", "data", "pts_ms"}`, `data` parsed when it is JSON.
pub fn result_json(s: &gst::StructureRef) -> String {
    let node = s.get::<String>("node-id").unwrap_or_default();
    let kind = s.get::<String>("kind").unwrap_or_default();
    let text = s.get::<String>("json").unwrap_or_default();
    let pts = s.get::<Option<gst::ClockTime>>("pts").ok().flatten();
    let data = match kind.as_str() {
        "text" => serde_json::Value::String(text),
        _ => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    };
    serde_json::json!({
        "type": "result",
        "node_id": node,
        "kind": kind,
        "data": data,
        "pts_ms": pts.map(|p| p.nseconds() as f64 / 1e6),
    })
    .to_string()
}
