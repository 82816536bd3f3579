//! What `getPeers` reports: the peers the element has a connection with (its `get-peers`),
//! each with what it announced and when it connected, as the bus thread saw it.

use std::collections::HashMap;

use napi_derive::napi;
use serde_json::{Value, json};

use super::events::{Event, now_ms};

#[napi(object, object_from_js = false)]
pub struct PeerInfo {
    pub peer_id: String,
    /// connected (the element lists connected peers only).
    pub state: String,
    pub capabilities: Value,
    pub metadata: Value,
    /// Unix milliseconds.
    pub connected_at: f64,
}

struct Announced {
    capabilities: Value,
    metadata: Value,
    connected_at: f64,
}

#[derive(Default)]
pub struct PeerTable {
    known: HashMap<String, Announced>,
}

impl PeerTable {
    /// Follows the peers' comings and goings.
    pub fn note(&mut self, event: &Event) {
        match event {
            Event::PeerConnected(e) => {
                let announced = Announced {
                    capabilities: e.capabilities.clone(),
                    metadata: e.metadata.clone(),
                    connected_at: now_ms(),
                };
                self.known.insert(e.peer_id.clone(), announced);
            }
            Event::PeerDisconnected(e) => {
                self.known.remove(&e.peer_id);
            }
            _ => {}
        }
    }

    pub fn clear(&mut self) {
        self.known.clear();
    }

    /// `connected` (the element's list) with what each announced; a peer whose
    /// `peer-connected` the bus thread has not read yet has empty details.
    pub fn info(&self, connected: Vec<String>) -> Vec<PeerInfo> {
        connected
            .into_iter()
            .map(|peer_id| {
                let known = self.known.get(&peer_id);
                PeerInfo {
                    state: "connected".into(),
                    capabilities: known.map_or_else(|| json!({}), |k| k.capabilities.clone()),
                    metadata: known.map_or_else(|| json!({}), |k| k.metadata.clone()),
                    connected_at: known.map_or_else(now_ms, |k| k.connected_at),
                    peer_id,
                }
            })
            .collect()
    }
}
