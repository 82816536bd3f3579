//! Sessions (rooms): named groups of peers with metadata. A peer joins one when it announces
//! `user_data.session` (the page's `?session=`), or when the application adds it; it leaves
//! when it leaves signaling. The hub uses them to address data-channel messages to a room.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

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

pub fn not_found(id: &str) -> String {
    format!("no session '{id}' (create it first, or let a peer announce user_data.session)")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Sessions {
    /// Creates an empty session. `metadata` must be a JSON object (or null for none).
    pub fn create(&mut self, id: &str, metadata: Value) -> Result<Change, String> {
        if id.is_empty() {
            return Err("a session id must not be empty".into());
        }
        let metadata = match metadata {
            Value::Null => json!({}),
            Value::Object(m) => Value::Object(m),
            other => {
                return Err(format!(
                    "session metadata must be a JSON object, got {other}"
                ));
            }
        };
        if self.rooms.contains_key(id) {
            return Err(format!("session '{id}' already exists"));
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

    pub fn delete(&mut self, id: &str) -> Result<Change, String> {
        self.rooms
            .remove(id)
            .map(|_| Change::Deleted)
            .ok_or_else(|| not_found(id))
    }

    /// Adds a peer; `None` when it already was a member.
    pub fn join(&mut self, id: &str, peer: &str) -> Result<Option<Change>, String> {
        let room = self.rooms.get_mut(id).ok_or_else(|| not_found(id))?;
        Ok(room
            .peers
            .insert(peer.to_owned())
            .then(|| Change::PeerJoined(peer.to_owned())))
    }

    /// Joins `id`, creating it first when it does not exist (a peer asking for a room).
    pub fn join_or_create(&mut self, id: &str, peer: &str) -> Result<Vec<Change>, String> {
        let mut changes = Vec::new();
        if !self.rooms.contains_key(id) {
            changes.push(self.create(id, Value::Null)?);
        }
        changes.extend(self.join(id, peer)?);
        Ok(changes)
    }

    pub fn leave(&mut self, id: &str, peer: &str) -> Result<Option<Change>, String> {
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

    pub fn members(&self, id: &str) -> Result<Vec<String>, String> {
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
        assert!(
            s.create("room", Value::Null)
                .unwrap_err()
                .contains("already exists")
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
        assert!(
            s.join("room", "b")
                .unwrap_err()
                .contains("no session 'room'")
        );
        assert!(
            s.create("x", json!([1]))
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(s.create("", Value::Null).is_err());
    }
}
