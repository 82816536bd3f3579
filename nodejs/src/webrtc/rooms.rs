//! Sessions (rooms) as the element lists them (`get-sessions`, a JSON array of
//! `{session_id, peer_ids, created_at, metadata}`).

use napi_derive::napi;
use serde::Deserialize;
use serde_json::Value;

use super::error::WebRtcError;

#[napi(object, object_from_js = false)]
#[derive(Debug, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub peer_ids: Vec<String>,
    /// Unix milliseconds.
    pub created_at: f64,
    pub metadata: Value,
}

pub fn parse(json: &str) -> Result<Vec<SessionInfo>, WebRtcError> {
    serde_json::from_str(json).map_err(|e| {
        WebRtcError::internal(format!("the element's session list is unreadable: {e}"))
    })
}

/// The session `session_id`, or SESSION_NOT_FOUND.
pub fn find(sessions: Vec<SessionInfo>, session_id: &str) -> Result<SessionInfo, WebRtcError> {
    sessions
        .into_iter()
        .find(|s| s.session_id == session_id)
        .ok_or_else(|| {
            WebRtcError::new(
                remotemedia_runtime::ErrorCode::SessionNotFound,
                format!("no session '{session_id}'"),
            )
        })
}
