//! The peer registry: who is announced, and how to reach them. One registry serves every
//! transport; a peer is either remote (a connection with a bounded outbound queue of JSON-RPC
//! frames) or local (an in-process handler, such as a WebRTC element answering offers).

use remotemedia_runtime::ErrorCode;
use remotemedia_runtime::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

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
    /// Tells this announce apart from a later one of the same id (after a take-over), so a
    /// stale connection that closes does not remove its successor.
    serial: u64,
}

#[derive(Default)]
pub struct PeerRegistry {
    peers: Mutex<HashMap<String, Entry>>,
    serials: std::sync::atomic::AtomicU64,
}

/// What an announce returns: the other peers, and the serial that `leave` needs.
pub struct Announced {
    pub others: Vec<PeerInfo>,
    pub serial: u64,
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
        lock(&self.peers)
    }

    /// Adds a peer whose messages are JSON-RPC frames put on `queue`.
    pub(crate) fn announce_remote(
        &self,
        info: PeerInfo,
        queue: mpsc::Sender<Arc<str>>,
    ) -> Result<Announced, RpcError> {
        self.insert(info, Endpoint::Remote(queue), false)
    }

    /// Adds an in-process peer. It stays announced until the returned handle is dropped.
    pub fn register_local(
        self: &Arc<Self>,
        info: PeerInfo,
        handler: Handler,
    ) -> Result<LocalPeer, RpcError> {
        self.register_local_with(info, handler, false)
            .map(|(peer, _)| peer)
    }

    /// `register_local`; with `take_over`, an announced peer of the same id is replaced (it
    /// hears `Left` for its own id) instead of this announce being refused.
    pub fn register_local_with(
        self: &Arc<Self>,
        info: PeerInfo,
        handler: Handler,
        take_over: bool,
    ) -> Result<(LocalPeer, Vec<PeerInfo>), RpcError> {
        let peer_id = info.peer_id.clone();
        let announced = self.insert(info, Endpoint::Local(handler), take_over)?;
        let peer = LocalPeer {
            registry: self.clone(),
            peer_id,
            serial: announced.serial,
        };
        Ok((peer, announced.others))
    }

    fn insert(
        &self,
        info: PeerInfo,
        endpoint: Endpoint,
        take_over: bool,
    ) -> Result<Announced, RpcError> {
        if info.peer_id.is_empty() || info.peer_id.len() > 256 {
            return Err(RpcError::invalid_params(
                "peer.announce: 'peer_id' must be 1 to 256 characters",
            ));
        }
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        // Who hears of this announce is decided under the same lock as the insert, so a peer
        // announcing at the same moment either is listed in this one's reply or hears of it,
        // never both.
        let (others, replaced, audience) = {
            let mut peers = self.lock();
            let replaced = match peers.remove(&info.peer_id) {
                Some(old) if take_over => Some(old),
                Some(old) => {
                    peers.insert(info.peer_id.clone(), old);
                    return Err(RpcError::new(
                        PEER_ID_TAKEN,
                        ErrorCode::PeerIdTaken,
                        format!("peer id '{}' is already announced", info.peer_id),
                    ));
                }
                None => None,
            };
            let others: Vec<PeerInfo> = peers.values().map(|e| e.info.clone()).collect();
            let audience = targets_except(&peers, &info.peer_id);
            peers.insert(
                info.peer_id.clone(),
                Entry {
                    info: info.clone(),
                    endpoint,
                    serial,
                },
            );
            drop(peers);
            (others, replaced, audience)
        };
        if let Some(old) = replaced {
            let left = Event::Left {
                peer_id: info.peer_id.clone(),
                reason: "taken over".into(),
            };
            let _ = Target::of(&old.endpoint).deliver(&info.peer_id, left.clone());
            deliver_all(&audience, &left);
        }
        deliver_all(&audience, &Event::Joined(info.clone()));
        Ok(Announced { others, serial })
    }

    /// Removes a peer and tells the others why it left. Unknown ids are ignored.
    pub fn remove(&self, peer_id: &str, reason: &str) {
        self.remove_if(peer_id, |_| true, reason);
    }

    /// Removes the announce `serial` of `peer_id`, unless a take-over replaced it already.
    pub fn leave(&self, peer_id: &str, serial: u64, reason: &str) {
        self.remove_if(peer_id, |e| e.serial == serial, reason);
    }

    fn remove_if(&self, peer_id: &str, matches: impl Fn(&Entry) -> bool, reason: &str) {
        let audience = {
            let mut peers = self.lock();
            if !peers.get(peer_id).is_some_and(&matches) {
                return;
            }
            peers.remove(peer_id);
            let audience = targets_except(&peers, peer_id);
            drop(peers);
            audience
        };
        let left = Event::Left {
            peer_id: peer_id.to_owned(),
            reason: reason.to_owned(),
        };
        deliver_all(&audience, &left);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
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
        let target = self
            .lock()
            .get(signal.to())
            .map(|entry| Target::of(&entry.endpoint))
            .ok_or_else(|| RpcError::peer_not_found(signal.to()))?;
        target.deliver(signal.to(), Event::Signal(signal.clone()))
    }
}

/// Every peer but `except`, as targets to deliver to once the lock is released.
fn targets_except(peers: &HashMap<String, Entry>, except: &str) -> Vec<(String, Target)> {
    peers
        .iter()
        .filter(|(id, _)| id.as_str() != except)
        .map(|(id, e)| (id.clone(), Target::of(&e.endpoint)))
        .collect()
}

fn deliver_all(targets: &[(String, Target)], event: &Event) {
    for (id, target) in targets {
        // A peer too slow for a membership notice will see it in its next peer.list.
        let _ = target.clone().deliver(id, event.clone());
    }
}

/// A copy of an endpoint taken under the lock, so delivery runs without it.
#[derive(Clone)]
enum Target {
    Remote(mpsc::Sender<Arc<str>>),
    Local(Handler),
}

impl Target {
    fn of(endpoint: &Endpoint) -> Self {
        match endpoint {
            Endpoint::Remote(queue) => Target::Remote(queue.clone()),
            Endpoint::Local(handler) => Target::Local(handler.clone()),
        }
    }

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
                        ErrorCode::Peer,
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
    serial: u64,
}

impl LocalPeer {
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    pub fn registry(&self) -> &Arc<PeerRegistry> {
        &self.registry
    }

    /// Leaves the registry now, telling the others `reason`.
    pub fn leave(self, reason: &str) {
        self.registry.leave(&self.peer_id, self.serial, reason);
    }

    /// Sends a signal from this peer; its `from` must be this peer's id.
    pub fn send(&self, signal: Signal) -> Result<(), RpcError> {
        debug_assert_eq!(signal.from(), self.peer_id);
        self.registry.route(signal)
    }
}

impl Drop for LocalPeer {
    fn drop(&mut self) {
        self.registry.leave(&self.peer_id, self.serial, "shutdown");
    }
}
