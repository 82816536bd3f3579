//! The server's bus messages (plugins/src/webrtc/messages.rs, README "Bus messages") as
//! events, read field by field as the Python server reads them. An ERROR message's code and
//! text come from its `remotemedia-error` details, never from its text.

use std::time::{SystemTime, UNIX_EPOCH};

use gst::glib;
use remotemedia_runtime::ErrorCode;
use serde_json::{Value, json};

use super::error::WebRtcError;
use super::payloads::{
    DataEvent, ErrorEvent, PeerConnectedEvent, PeerDisconnectedEvent, PipelineOutputEvent,
    SessionEvent,
};

/// The details structure of the RemoteMedia elements' errors (plugins/src/failure.rs).
const DETAILS: &str = "remotemedia-error";

pub enum Event {
    PeerConnected(PeerConnectedEvent),
    PeerDisconnected(PeerDisconnectedEvent),
    PipelineOutput(PipelineOutputEvent),
    Data(DataEvent),
    Error(ErrorEvent),
    Session(SessionEvent),
}

impl Event {
    pub fn from_message(msg: &gst::MessageRef) -> Option<Event> {
        match msg.view() {
            gst::MessageView::Error(err) => Some(Event::Error(element_error(err))),
            gst::MessageView::Element(e) => from_structure(e.structure()?),
            _ => None,
        }
    }

    /// The failure an `error` event reports, for a call that failed with it.
    pub fn failure(&self) -> Option<WebRtcError> {
        let Event::Error(e) = self else {
            return None;
        };
        let code = e.code.parse().unwrap_or(ErrorCode::Internal);
        let failure = WebRtcError::new(code, e.message.clone());
        Some(match &e.peer_id {
            Some(peer) => failure.peer(peer),
            None => failure,
        })
    }
}

fn from_structure(s: &gst::StructureRef) -> Option<Event> {
    let peer_id = text(s, "peer-id");
    Some(match s.name().as_str() {
        "peer-connected" => Event::PeerConnected(PeerConnectedEvent {
            peer_id,
            capabilities: object(s, "capabilities"),
            metadata: match object(s, "metadata") {
                Value::Object(m) => Value::Object(m),
                other => json!({ "user_data": other }),
            },
        }),
        "peer-disconnected" => Event::PeerDisconnected(PeerDisconnectedEvent {
            peer_id,
            reason: text(s, "reason"),
        }),
        "remotemedia" => Event::PipelineOutput(result(s, peer_id)),
        "data" => Event::Data(data(s, peer_id)),
        "error" => Event::Error(ErrorEvent {
            code: text(s, "code"),
            message: text(s, "message"),
            peer_id: Some(peer_id).filter(|p| !p.is_empty()),
        }),
        "session" => Event::Session(SessionEvent {
            session_id: text(s, "session-id"),
            event_type: text(s, "event").replace('-', "_"),
            peer_id: Some(peer_id).filter(|p| !p.is_empty()),
        }),
        _ => return None,
    })
}

fn text(s: &gst::StructureRef, field: &str) -> String {
    s.get::<String>(field).unwrap_or_default()
}

/// A field holding a JSON object as text; `{}` when absent or not JSON.
fn object(s: &gst::StructureRef, field: &str) -> Value {
    serde_json::from_str(&text(s, field)).unwrap_or_else(|_| json!({}))
}

fn result(s: &gst::StructureRef, peer_id: String) -> PipelineOutputEvent {
    let kind = text(s, "kind");
    let body = text(s, "json");
    let data = match kind.as_str() {
        "text" => Value::String(body),
        _ => serde_json::from_str(&body).unwrap_or(Value::String(body)),
    };
    let pts = s.get::<Option<gst::ClockTime>>("pts").ok().flatten();
    PipelineOutputEvent {
        peer_id,
        node_id: text(s, "node-id"),
        kind,
        data,
        timestamp: pts.map(|t| t.nseconds() as f64),
    }
}

fn data(s: &gst::StructureRef, peer_id: String) -> DataEvent {
    let binary = s.get::<bool>("binary").unwrap_or(false);
    let bytes = if binary {
        s.get::<glib::Bytes>("bytes")
            .map(|b| b.to_vec())
            .unwrap_or_default()
    } else {
        text(s, "message").into_bytes()
    };
    let timestamp = s
        .get::<u64>("timestamp")
        .map(|t| t as f64)
        .unwrap_or_else(|_| now_ms());
    DataEvent {
        peer_id,
        data: bytes.into(),
        binary,
        timestamp,
    }
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// An ERROR message: our elements' code and message from the details; another element's
/// error is a PIPELINE_ERROR with its text (plugins/src/failure.rs, `code_and_message`).
fn element_error(err: &gst::message::Error) -> ErrorEvent {
    let details = err.details().filter(|d| d.name() == DETAILS);
    let ours = details.and_then(|d| {
        let code = d.get::<String>("code").ok()?;
        Some((code, d.get::<String>("message").ok()?))
    });
    let (code, message) = ours.unwrap_or_else(|| {
        (
            ErrorCode::Pipeline.as_str().to_owned(),
            err.error().to_string(),
        )
    });
    ErrorEvent {
        code,
        message,
        peer_id: None,
    }
}
