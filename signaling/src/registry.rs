//! The peer registry: who is announced, and how to reach them. One registry serves every
//! transport; a peer is either remote (a connection with a bounded outbound queue of JSON-RPC
//! frames) or local (an in-process handler, such as a WebRTC element answering offers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::protocol::{self, PEER_ERROR, PEER_ID_TAKEN, PeerInfo, RpcError, Signal};

/// What a local peer hears from the registry.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Signal(Signal),
    Joined(PeerInfo),
    Left { peer_id: String, reason: String },
}

/// Handles events for a local peer. It runs on the sender's task, so it must not block: it
/// queues work and returns. An `Err` for a signal goes back to the sender as its error.
pub type Handler = Arc<dyn Fn(Event) -> Result<(), RpcError> + Send + Sync>;

enum Endpoint {
    Remote(mpsc::Sender<Arc<str>>),
    Local(Handler),
}

struct Entry {
    info: PeerInfo,
    endpoint: Endpoint,
}

#[derive(Default)]
pub struct PeerRegistry {
    peers: Mutex<HashMap<String, Entry>>,
}

/// The reply to `peer.announce`.
pub fn announce_result(peer_id: &str, others: &[PeerInfo]) -> Value {
    json!({"peer_id": peer_id, "peers_count": others.len() + 1, "other_peers": others})
}

impl PeerRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a peer whose messages are JSON-RPC frames put on `queue`; returns the other peers.
    pub(crate) fn announce_remote(
        &self,
        info: PeerInfo,
        queue: mpsc::Sender<Arc<str>>,
    ) -> Result<Vec<PeerInfo>, RpcError> {
        self.insert(info, Endpoint::Remote(queue))
    }

    /// Adds an in-process peer. It stays announced until the returned handle is dropped.
    pub fn register_local(
        self: &Arc<Self>,
        info: PeerInfo,
        handler: Handler,
    ) -> Result<LocalPeer, RpcError> {
        let peer_id = info.peer_id.clone();
        self.insert(info, Endpoint::Local(handler))?;
        Ok(LocalPeer {
            registry: self.clone(),
            peer_id,
        })
    }

    fn insert(&self, info: PeerInfo, endpoint: Endpoint) -> Result<Vec<PeerInfo>, RpcError> {
        if info.peer_id.is_empty() || info.peer_id.len() > 256 {
            return Err(RpcError::invalid_params(
                "peer.announce: 'peer_id' must be 1 to 256 characters",
            ));
        }
        let others = {
            let mut peers = self.lock();
            if peers.contains_key(&info.peer_id) {
                return Err(RpcError::new(
                    PEER_ID_TAKEN,
                    "SIGNALING_ERROR",
                    format!("peer id '{}' is already announced", info.peer_id),
                ));
            }
            let others: Vec<PeerInfo> = peers.values().map(|e| e.info.clone()).collect();
            peers.insert(
                info.peer_id.clone(),
                Entry {
                    info: info.clone(),
                    endpoint,
                },
            );
            others
        };
        self.broadcast(&info.peer_id, Event::Joined(info.clone()));
        Ok(others)
    }

    /// Removes a peer and tells the others why it left. Unknown ids are ignored.
    pub fn remove(&self, peer_id: &str, reason: &str) {
        if self.lock().remove(peer_id).is_some() {
            self.broadcast(
                peer_id,
                Event::Left {
                    peer_id: peer_id.to_owned(),
                    reason: reason.to_owned(),
                },
            );
        }
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self.lock().values().map(|e| e.info.clone()).collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    }

    pub fn contains(&self, peer_id: &str) -> bool {
        self.lock().contains_key(peer_id)
    }

    /// Delivers a signal to its target. A remote target whose queue is full does not make the
    /// sender wait: the signal is refused with PEER_ERROR, so one slow peer stalls nobody.
    pub fn route(&self, signal: Signal) -> Result<(), RpcError> {
        let target = {
            let peers = self.lock();
            let entry = peers
                .get(signal.to())
                .ok_or_else(|| RpcError::peer_not_found(signal.to()))?;
            match &entry.endpoint {
                Endpoint::Remote(queue) => Target::Remote(queue.clone()),
                Endpoint::Local(handler) => Target::Local(handler.clone()),
            }
        };
        target.deliver(signal.to(), Event::Signal(signal.clone()))
    }

    fn broadcast(&self, except: &str, event: Event) {
        let targets: Vec<(String, Target)> = self
            .lock()
            .iter()
            .filter(|(id, _)| id.as_str() != except)
            .map(|(id, e)| {
                let target = match &e.endpoint {
                    Endpoint::Remote(queue) => Target::Remote(queue.clone()),
                    Endpoint::Local(handler) => Target::Local(handler.clone()),
                };
                (id.clone(), target)
            })
            .collect();
        for (id, target) in targets {
            // A peer too slow for a membership notice will see it in its next peer.list.
            let _ = target.deliver(&id, event.clone());
        }
    }
}

/// A copy of an endpoint taken under the lock, so delivery runs without it.
enum Target {
    Remote(mpsc::Sender<Arc<str>>),
    Local(Handler),
}

impl Target {
    fn deliver(self, peer_id: &str, event: Event) -> Result<(), RpcError> {
        match self {
            Target::Local(handler) => handler(event),
            Target::Remote(queue) => {
                let frame: Arc<str> = match event {
                    Event::Signal(s) => s.notification(),
                    Event::Joined(info) => protocol::notification(
                        "peer.joined",
                        serde_json::to_value(info).unwrap_or_default(),
                    ),
                    Event::Left { peer_id, reason } => protocol::notification(
                        "peer.left",
                        json!({"peer_id": peer_id, "reason": reason}),
                    ),
                }
                .into();
                queue.try_send(frame).map_err(|e| {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "is not reading (queue full)",
                        mpsc::error::TrySendError::Closed(_) => "has disconnected",
                    };
                    RpcError::new(
                        PEER_ERROR,
                        "PEER_ERROR",
                        format!("peer '{peer_id}' {why}; message dropped"),
                    )
                })
            }
        }
    }
}

/// An in-process peer's membership; dropping it leaves the registry.
pub struct LocalPeer {
    registry: Arc<PeerRegistry>,
    peer_id: String,
}

impl LocalPeer {
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    pub fn registry(&self) -> &Arc<PeerRegistry> {
        &self.registry
    }

    /// Sends a signal from this peer; its `from` must be this peer's id.
    pub fn send(&self, signal: Signal) -> Result<(), RpcError> {
        debug_assert_eq!(signal.from(), self.peer_id);
        self.registry.route(signal)
    }
}

impl Drop for LocalPeer {
    fn drop(&mut self) {
        self.registry.remove(&self.peer_id, "shutdown");
    }
}
