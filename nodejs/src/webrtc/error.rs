//! Failures as JavaScript sees them: an `Error` whose `.code` is one of RemoteMedia's codes
//! (docs/ARCHITECTURE.md, "Errors") and, for a peer's failure, whose `.peerId` names the peer.

use napi::bindgen_prelude::JsObjectValue;
use napi::{Env, JsError, JsValue};
use remotemedia_runtime::ErrorCode;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WebRtcError {
    pub code: ErrorCode,
    pub message: String,
    pub peer_id: Option<String>,
}

impl WebRtcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            peer_id: None,
        }
    }

    /// A configuration, argument or call that is not valid.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    /// A fault of ours.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn peer(mut self, peer_id: &str) -> Self {
        self.peer_id = Some(peer_id.to_owned());
        self
    }

    /// The JavaScript `Error` to throw or reject with; made on the JavaScript thread.
    pub fn to_js(&self, env: &Env) -> napi::Error {
        let error = JsError::from(napi::Error::new(self.code.as_str(), &self.message));
        let value = error.into_unknown(*env);
        if let Some(peer_id) = &self.peer_id {
            // A failure to add the peer leaves the error standing with its code.
            let _ = value
                .coerce_to_object()
                .and_then(|mut o| o.set_named_property("peerId", peer_id.as_str()));
        }
        napi::Error::from(value)
    }
}
