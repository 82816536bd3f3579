//! Sessions (rooms): named groups of peers with metadata. A peer joins one when it announces
//! `user_data.session` (the page's `?session=`), or when the application adds it; it leaves
//! when it leaves signaling. The hub uses them to address data-channel messages to a room.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use remotemedia_runtime::ErrorCode;
use serde_json::{Value, json};

#[derive(Debug)]
struct Session {
    metadata: Value,
    created_at_ms: u64,
    peers: BTreeSet<String>,
}

/// What happened to a session, for the `session` bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    Deleted,
    PeerJoined(String),
    PeerLeft(String),
}

#[derive(Debug, Default)]
pub struct Sessions {
    rooms: BTreeMap<String, Session>,
}

/// Why a session operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no session '{0}' (create it first, or let a peer announce user_data.session)")]
    NotFound(String),
    #[error("session '{0}' already exists")]
    Exists(String),
    #[error("a session id must not be empty")]
    EmptyId,
    #[error("session metadata must be a JSON object, got {0}")]
    BadMetadata(String),
}

impl SessionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::SessionNotFound,
            Self::Exists(_) | Self::EmptyId | Self::BadMetadata(_) => ErrorCode::Config,
        }
    }
}

fn not_found(id: &str) -> SessionError {
    SessionError::NotFound(id.to_owned())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Sessions {
    /// Creates an empty session. `metadata` must be a JSON object (or null for none).
    pub fn create(&mut self, id: &str, metadata: Value) -> Result<Change, SessionError> {
        if id.is_empty() {
            return Err(SessionError::EmptyId);
        }
        let metadata = match metadata {
            Value::Null => json!({}),
            Value::Object(m) => Value::Object(m),
            other => return Err(SessionError::BadMetadata(other.to_string())),
        };
        if self.rooms.contains_key(id) {
            return Err(SessionError::Exists(id.to_owned()));
        }
        self.rooms.insert(
            id.to_owned(),
            Session {
                metadata,
                created_at_ms: now_ms(),
                peers: BTreeSet::new(),
            },
        );
        Ok(Change::Created)
    }

    pub fn delete(&mut self, id: &str) -> Result<Change, SessionError> {
        self.rooms
            .remove(id)
            .map(|_| Change::Deleted)
            .ok_or_else(|| not_found(id))
    }

    /// Adds a peer; `None` when it already was a member.
    pub fn join(&mut self, id: &str, peer: &str) -> Result<Option<Change>, SessionError> {
        let room = self.rooms.get_mut(id).ok_or_else(|| not_found(id))?;
        Ok(room
            .peers
            .insert(peer.to_owned())
            .then(|| Change::PeerJoined(peer.to_owned())))
    }

    /// Joins `id`, creating it first when it does not exist (a peer asking for a room).
    pub fn join_or_create(&mut self, id: &str, peer: &str) -> Result<Vec<Change>, SessionError> {
        let mut changes = Vec::new();
        if !self.rooms.contains_key(id) {
            changes.push(self.create(id, Value::Null)?);
        }
        changes.extend(self.join(id, peer)?);
        Ok(changes)
    }

    pub fn leave(&mut self, id: &str, peer: &str) -> Result<Option<Change>, SessionError> {
        let room = self.rooms.get_mut(id).ok_or_else(|| not_found(id))?;
        Ok(room
            .peers
            .remove(peer)
            .then(|| Change::PeerLeft(peer.to_owned())))
    }

    /// Takes a peer out of every session; returns the sessions it left.
    pub fn forget(&mut self, peer: &str) -> Vec<String> {
        self.rooms
            .iter_mut()
            .filter_map(|(id, room)| room.peers.remove(peer).then(|| id.clone()))
            .collect()
    }

    pub fn members(&self, id: &str) -> Result<Vec<String>, SessionError> {
        self.rooms
            .get(id)
            .map(|r| r.peers.iter().cloned().collect())
            .ok_or_else(|| not_found(id))
    }

    /// Every session as `{session_id, peer_ids, created_at, metadata}`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rooms
                .iter()
                .map(|(id, r)| {
                    json!({
                        "session_id": id,
                        "peer_ids": r.peers,
                        "created_at": r.created_at_ms,
                        "metadata": r.metadata,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_join_leave_and_are_forgotten() {
        let mut s = Sessions::default();
        assert_eq!(
            s.create("room", json!({"topic": "demo"})),
            Ok(Change::Created)
        );
        assert_eq!(
            s.create("room", Value::Null),
            Err(SessionError::Exists("room".into()))
        );
        assert_eq!(
            s.join("room", "a"),
            Ok(Some(Change::PeerJoined("a".into())))
        );
        assert_eq!(s.join("room", "a"), Ok(None));
        assert_eq!(
            s.join_or_create("other", "a"),
            Ok(vec![Change::Created, Change::PeerJoined("a".into())])
        );
        assert_eq!(s.members("room").unwrap(), vec!["a".to_string()]);
        assert_eq!(s.forget("a"), vec!["other".to_string(), "room".to_string()]);
        assert!(s.members("room").unwrap().is_empty());
        let all = s.to_json();
        assert_eq!(all[1]["session_id"], "room");
        assert_eq!(all[1]["metadata"]["topic"], "demo");
        assert_eq!(s.delete("room"), Ok(Change::Deleted));
        let gone = s.join("room", "b").unwrap_err();
        assert_eq!(gone.code(), ErrorCode::SessionNotFound);
        assert!(gone.to_string().contains("no session 'room'"), "{gone}");
        let bad = s.create("x", json!([1])).unwrap_err();
        assert_eq!(bad.code(), ErrorCode::Config);
        assert!(bad.to_string().contains("JSON object"), "{bad}");
        assert_eq!(s.create("", Value::Null), Err(SessionError::EmptyId));
    }
}
