//! The element's action signals (README, "Action signals" and "Sessions"), as calls that
//! succeed or fail with what the element posted about the refusal.

use gst::glib;
use gst::prelude::*;
use remotemedia_runtime::ErrorCode;
use remotemedia_runtime::sync::lock;
use serde_json::Value;

use super::error::WebRtcError;
use super::failures;
use super::peers::PeerInfo;
use super::pipeline::ServerPipeline;
use super::rooms::{self, SessionInfo};

/// A data-channel message: text or binary, as the peer will receive it.
pub enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl ServerPipeline {
    /// Runs `emit` (None: the element refused). The call fails with what the element posted
    /// on this thread while it ran, if anything, or with `otherwise` for a silent refusal.
    fn refusable<T>(
        &self,
        emit: impl FnOnce(&gst::Element) -> Option<T>,
        otherwise: impl FnOnce() -> WebRtcError,
    ) -> Result<T, WebRtcError> {
        self.require_running()?;
        failures::clear();
        let value = emit(&self.element);
        match (value, failures::take()) {
            (_, Some(posted)) => Err(posted),
            (Some(value), None) => Ok(value),
            (None, None) => Err(otherwise()),
        }
    }

    fn done(&self, signal: &str, args: &[&dyn ToValue]) -> Result<(), WebRtcError> {
        self.refusable(
            |e| e.emit_by_name::<bool>(signal, args).then_some(()),
            || WebRtcError::internal(format!("{signal} was refused")),
        )
    }

    pub fn send_to_peer(&self, peer_id: &str, payload: Payload) -> Result<(), WebRtcError> {
        let not_found = || {
            WebRtcError::new(
                ErrorCode::PeerNotFound,
                format!("no data channel open with peer '{peer_id}'"),
            )
            .peer(peer_id)
        };
        self.refusable(
            |e| {
                let sent = match payload {
                    Payload::Text(text) => {
                        e.emit_by_name::<bool>("send-to-peer", &[&peer_id, &text])
                    }
                    Payload::Binary(data) => {
                        let bytes = glib::Bytes::from_owned(data);
                        e.emit_by_name::<bool>("send-to-peer-bytes", &[&peer_id, &bytes])
                    }
                };
                sent.then_some(())
            },
            not_found,
        )
    }

    /// Sends to every peer with an open data channel; how many.
    pub fn broadcast(&self, payload: Payload) -> Result<u32, WebRtcError> {
        self.require_running()?;
        Ok(match payload {
            Payload::Text(text) => self.element.emit_by_name::<u32>("broadcast", &[&text]),
            Payload::Binary(data) => {
                let bytes = glib::Bytes::from_owned(data);
                self.element
                    .emit_by_name::<u32>("broadcast-bytes", &[&bytes])
            }
        })
    }

    /// Hangs up on a peer; it hears `reason` first.
    pub fn disconnect_peer(&self, peer_id: &str, reason: &str) -> Result<(), WebRtcError> {
        self.refusable(
            |e| {
                e.emit_by_name::<bool>("disconnect-peer", &[&peer_id, &reason])
                    .then_some(())
            },
            || {
                WebRtcError::new(ErrorCode::PeerNotFound, format!("no peer '{peer_id}'"))
                    .peer(peer_id)
            },
        )
    }

    pub fn peers(&self) -> Result<Vec<PeerInfo>, WebRtcError> {
        self.require_running()?;
        let connected: Vec<String> = self
            .element
            .emit_by_name::<glib::StrV>("get-peers", &[])
            .iter()
            .map(|id| id.to_string())
            .collect();
        Ok(lock(&self.peers).info(connected))
    }

    /// A new session; `metadata` must be a JSON object.
    pub fn create_session(&self, id: &str, metadata: Option<Value>) -> Result<(), WebRtcError> {
        let metadata = metadata.map(|m| m.to_string()).unwrap_or_default();
        self.done("create-session", &[&id, &metadata])
    }

    pub fn delete_session(&self, id: &str) -> Result<(), WebRtcError> {
        self.done("delete-session", &[&id])
    }

    pub fn join_session(&self, id: &str, peer_id: &str) -> Result<(), WebRtcError> {
        self.done("join-session", &[&id, &peer_id])
    }

    pub fn leave_session(&self, id: &str, peer_id: &str) -> Result<(), WebRtcError> {
        self.done("leave-session", &[&id, &peer_id])
    }

    pub fn sessions(&self) -> Result<Vec<SessionInfo>, WebRtcError> {
        self.require_running()?;
        rooms::parse(&self.element.emit_by_name::<String>("get-sessions", &[]))
    }

    /// Sends text to the members of a session with an open data channel; how many. A
    /// missing session is reported on the bus.
    pub fn send_to_session(&self, id: &str, text: &str) -> Result<u32, WebRtcError> {
        self.refusable(
            |e| Some(e.emit_by_name::<u32>("send-to-session", &[&id, &text])),
            || WebRtcError::internal("send-to-session was refused"),
        )
    }
}
