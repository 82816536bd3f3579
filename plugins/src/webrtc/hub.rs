//! The peers of one WebRTC element: signaling in, one peer connection per remote peer (each
//! handled by its own task, in signal order), max-peers, data channels, state and bus messages.
//! What differs between the sink, the source and the server is behind [`Role`].
//!
//! An element answers offers and makes them: every peer named in `connect-to` is called when
//! it is announced, and called again (with backoff) after a failed connection. When both sides
//! call at once (glare), the side with the greater peer id keeps its offer and the other
//! answers it, so one connection results.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use remotemedia_runtime::sync::lock;
use remotemedia_runtime::{Backoff, ErrorCode};
use remotemedia_signaling::grpc::client::LinkEvent;
use remotemedia_signaling::protocol::{self, PeerInfo, RpcError};
use remotemedia_signaling::{Event, Signal};
use tokio::sync::mpsc;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;

use super::RUNTIME;
use super::channel::{Outbox, Payload, send_all};
use super::door::{self, Door, Refusal};
use super::ice::{ConnectionError, IceSettings, LocalSdp, gathered_local_sdp};
use super::messages;
use super::sessions::{Change, SessionError, Sessions};
use super::signaling::{Link, SignalingConfig};
use crate::failure::Failure;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a role could not prepare a connection: the role's own error (each element's is its
/// own type), with the code of the `error` message the peer's failure gets.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct SetupError {
    code: ErrorCode,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl SetupError {
    pub fn new(code: ErrorCode, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            code,
            source: Box::new(source),
        }
    }
}

/// Why a call with a peer failed. The peer hears it (`failed: <message>`), and the bus gets
/// an `error` message with its code.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("cannot open a data channel: {0}")]
    DataChannel(#[source] webrtc::Error),
    /// The offer or answer does not parse.
    #[error("bad {kind}: {source}")]
    Unreadable {
        kind: &'static str,
        #[source]
        source: webrtc::Error,
    },
    #[error("bad offer SDP: {0}")]
    OfferRefused(#[source] webrtc::Error),
    #[error("'{peer_id}' answered with bad SDP: {source}")]
    AnswerRefused {
        peer_id: String,
        #[source]
        source: webrtc::Error,
    },
    #[error("bad ICE candidate: {0}")]
    BadCandidate(#[source] webrtc::Error),
    #[error("ICE candidate before the offer")]
    CandidateBeforeOffer,
    #[error("peer left during setup")]
    LeftDuringSetup,
}

impl CallError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Setup(e) => e.code,
            Self::Connection(e) => e.code(),
            Self::DataChannel(_) => ErrorCode::Internal,
            _ => ErrorCode::Peer,
        }
    }
}

/// What an element does with a peer connection beyond signaling.
pub trait Role: Send + Sync + 'static {
    /// Prepares a new connection: adds tracks or transceivers, hooks `on_track`. `offer` is
    /// the remote offer about to be applied, or `None` when this element makes the offer.
    fn setup<'a>(
        &'a self,
        peer_id: &'a str,
        pc: &'a Arc<RTCPeerConnection>,
        offer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SetupError>>;
    /// The connection reached `connected`.
    fn connected(&self, _peer_id: &str) {}
    /// The peer is gone; release what `setup` made for it.
    fn closed(&self, _peer_id: &str) {}
}

pub struct HubConfig {
    pub peer_id: String,
    pub capabilities: serde_json::Value,
    pub element_name: &'static str,
    pub signaling: SignalingConfig,
    pub ice: IceSettings,
    pub max_peers: u32,
    /// Peers this element calls as soon as they are announced.
    pub connect_to: Vec<String>,
    /// The HTTP door (WHIP or WHEP) on the embedded signaling port.
    pub door: Door,
}

/// A call not connected within this time is given up and, for a `connect-to` peer, retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What a peer's task does next, in order.
enum Work {
    /// Call the peer: make an offer.
    Call,
    Signal(Signal),
    /// An offer POSTed to a WHIP/WHEP door; the answer goes back on `reply`.
    HttpOffer {
        sdp: String,
        reply: tokio::sync::oneshot::Sender<Result<String, CallError>>,
    },
}

struct Peer {
    work: mpsc::Sender<Work>,
    pc: Option<Arc<RTCPeerConnection>>,
    /// Which connection `pc` is; callbacks of a replaced connection carry an older one.
    serial: u64,
    /// Messages for the peer's data channel, sent in order by one task.
    channel: Option<Outbox>,
    connected: bool,
}

impl Peer {
    fn new(work: mpsc::Sender<Work>) -> Self {
        Self {
            work,
            pc: None,
            serial: 0,
            channel: None,
            connected: false,
        }
    }
}

/// What a peer said of itself when it announced.
#[derive(Clone, Debug)]
pub struct Announced {
    /// JSON objects.
    pub capabilities: String,
    pub metadata: String,
}

impl Default for Announced {
    fn default() -> Self {
        Self {
            capabilities: "{}".into(),
            metadata: "{}".into(),
        }
    }
}

pub struct PeerHub {
    element: glib::WeakRef<gst::Element>,
    me: String,
    ice: IceSettings,
    max_peers: AtomicU32,
    role: Arc<dyn Role>,
    link: Mutex<Option<Arc<Link>>>,
    peers: Mutex<HashMap<String, Peer>>,
    /// The peers announced on signaling, with their capabilities and user data (for
    /// `peer-connected`).
    announced: Mutex<HashMap<String, Announced>>,
    sessions: Mutex<Sessions>,
    connect_to: Vec<String>,
    /// Failed calls in a row per `connect-to` peer, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    backoff: Backoff,
    serials: AtomicU64,
}

impl PeerHub {
    /// Validates the settings, starts signaling and announces the element.
    pub async fn start(
        element: &gst::Element,
        config: HubConfig,
        role: Arc<dyn Role>,
    ) -> Result<Arc<Self>, Failure> {
        config.ice.validate()?;
        let hub = Arc::new(Self {
            element: element.downgrade(),
            me: config.peer_id.clone(),
            ice: config.ice,
            max_peers: AtomicU32::new(config.max_peers),
            role,
            link: Mutex::new(None),
            peers: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            sessions: Mutex::new(Sessions::default()),
            connect_to: config.connect_to,
            failures: Mutex::new(HashMap::new()),
            backoff: Backoff::default(),
            serials: AtomicU64::new(1),
        });
        let info = PeerInfo {
            peer_id: config.peer_id,
            capabilities: config.capabilities,
            user_data: serde_json::json!({"element": config.element_name}),
        };
        let weak = Arc::downgrade(&hub);
        let handler = Arc::new(move |event: Event| match weak.upgrade() {
            Some(hub) => hub.on_signaling(event),
            None => Ok(()),
        });
        let weak = Arc::downgrade(&hub);
        let on_error = Arc::new(move |err: RpcError| {
            if let Some(hub) = weak.upgrade() {
                hub.post(|e| messages::error(e, ErrorCode::Signaling, None, &err.message));
            }
        });
        let weak = Arc::downgrade(&hub);
        let on_link = Arc::new(move |event: LinkEvent| {
            let Some(hub) = weak.upgrade() else { return };
            match event {
                LinkEvent::Reconnecting {
                    attempt,
                    max_attempts,
                    delay,
                    reason,
                } => {
                    let of = if max_attempts == 0 {
                        String::new()
                    } else {
                        format!(" of {max_attempts}")
                    };
                    let message = format!(
                        "signaling lost ({reason}); attempt {attempt}{of} in {} ms",
                        delay.as_millis()
                    );
                    hub.post(|e| messages::error(e, ErrorCode::ReconnectAttempt, None, &message));
                }
                LinkEvent::Reconnected { attempts } => {
                    hub.post(|e| messages::signaling_reconnected(e, attempts));
                }
                LinkEvent::Failed { attempts, reason } => {
                    let message = format!(
                        "signaling lost for good after {attempts} attempts: {reason}; \
                         connected peers keep their media, new peers cannot join"
                    );
                    hub.post(|e| messages::error(e, ErrorCode::ReconnectFailed, None, &message));
                }
                LinkEvent::Refused(err) => {
                    hub.post(|e| messages::error(e, ErrorCode::Signaling, None, &err.message));
                }
            }
        });
        let routes = vec![door::route(config.door, Arc::downgrade(&hub))];
        let (link, present) =
            Link::start(&config.signaling, info, handler, on_error, on_link, routes)
                .await
                .map_err(|e| Failure::new(e.code(), e.to_string()))?;
        *lock(&hub.link) = Some(Arc::new(link));
        for info in present {
            hub.on_announced(info);
        }
        Ok(hub)
    }

    /// `start` for state changes: runs on the shared runtime and waits for it on this thread.
    pub fn start_blocking(
        element: &gst::Element,
        config: HubConfig,
        role: Arc<dyn Role>,
    ) -> Result<Arc<Self>, Failure> {
        let element = element.clone();
        super::run_blocking(async move { Self::start(&element, config, role).await })
            .ok_or_else(|| Failure::new(ErrorCode::Internal, "signaling start-up died"))?
    }

    /// The embedded signaling server's port, if any.
    pub fn port(&self) -> Option<u16> {
        lock(&self.link).as_ref().and_then(|l| l.port())
    }

    pub fn set_max_peers(&self, max: u32) {
        self.max_peers.store(max, Ordering::Relaxed);
    }

    /// Closes every peer (telling them) and leaves signaling; an embedded signaling port is
    /// closed when this returns, so the element can start again on it at once.
    pub fn stop(&self) {
        let peers: Vec<String> = lock(&self.peers).keys().cloned().collect();
        for id in peers {
            self.close_peer(&id, "shutdown", true);
        }
        let link = lock(&self.link).take();
        if let Some(link) = link.and_then(|l| Arc::try_unwrap(l).ok()) {
            super::run_blocking(link.close());
        }
    }

    fn post(&self, f: impl FnOnce(&gst::Element)) {
        if let Some(e) = self.element.upgrade() {
            f(&e);
        }
    }

    fn send(&self, signal: Signal) {
        let link = lock(&self.link).clone();
        if let Some(link) = link
            && let Err(e) = link.send(signal)
        {
            self.post(|el| gst::warning!(gst::CAT_DEFAULT, obj = el, "signal not delivered: {e}"));
        }
    }

    /// Everything signaling addresses to this element. Never blocks.
    fn on_signaling(self: &Arc<Self>, event: Event) -> Result<(), RpcError> {
        match event {
            Event::Joined(info) => {
                if let Some(room) = info.user_data.get("session").and_then(|v| v.as_str()) {
                    let changes = lock(&self.sessions).join_or_create(room, &info.peer_id);
                    match changes {
                        Ok(changes) => self.post_session_changes(room, changes),
                        Err(e) => self.post(|el| {
                            messages::error(el, e.code(), Some(&info.peer_id), &e.to_string())
                        }),
                    }
                }
                self.on_announced(info);
                Ok(())
            }
            Event::Left { peer_id, reason } => {
                lock(&self.announced).remove(&peer_id);
                lock(&self.failures).remove(&peer_id);
                let rooms = lock(&self.sessions).forget(&peer_id);
                for room in rooms {
                    self.post_session_changes(&room, [Change::PeerLeft(peer_id.clone())]);
                }
                self.close_peer(&peer_id, &format!("signaling: {reason}"), false);
                Ok(())
            }
            Event::Signal(Signal::Disconnect { from, .. }) => {
                self.close_peer(&from, "peer hung up", false);
                Ok(())
            }
            Event::Signal(signal) => self.queue_signal(signal),
        }
    }

    fn queue_signal(self: &Arc<Self>, signal: Signal) -> Result<(), RpcError> {
        let from = signal.from().to_owned();
        let is_offer = matches!(signal, Signal::Offer { .. });
        let max = self.max_peers.load(Ordering::Relaxed) as usize;
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get(&from) {
            return peer.work.try_send(Work::Signal(signal)).map_err(|_| {
                RpcError::new(
                    protocol::PEER_ERROR,
                    ErrorCode::Peer,
                    format!("too many signals queued for '{from}'"),
                )
            });
        }
        if !is_offer {
            return Err(RpcError::new(
                protocol::PEER_NOT_FOUND,
                ErrorCode::PeerNotFound,
                format!("no call with '{from}': send peer.offer first"),
            ));
        }
        if peers.len() >= max {
            drop(peers);
            let msg = format!("max-peers={max} reached; peer '{from}' refused");
            self.post(|e| messages::error(e, ErrorCode::MaxPeersReached, Some(&from), &msg));
            return Err(RpcError::new(
                protocol::MAX_PEERS_REACHED,
                ErrorCode::MaxPeersReached,
                msg,
            ));
        }
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.try_send(Work::Signal(signal));
        peers.insert(from.clone(), Peer::new(tx));
        drop(peers);
        RUNTIME.spawn(run_peer(Arc::downgrade(self), from, rx));
        Ok(())
    }

    /// A peer is announced (now, or it was when we announced): remembered, and called when
    /// it is one of `connect-to`.
    fn on_announced(self: &Arc<Self>, info: PeerInfo) {
        let wanted = self.connect_to.contains(&info.peer_id);
        let announced = Announced {
            capabilities: info.capabilities.to_string(),
            metadata: info.user_data.to_string(),
        };
        lock(&self.announced).insert(info.peer_id.clone(), announced);
        if wanted {
            self.call(&info.peer_id);
        }
    }

    /// Calls `peer_id` unless a call with it exists already (either side's).
    fn call(self: &Arc<Self>, peer_id: &str) {
        let max = self.max_peers.load(Ordering::Relaxed) as usize;
        let mut peers = lock(&self.peers);
        if peers.contains_key(peer_id) {
            return;
        }
        if peers.len() >= max {
            drop(peers);
            let msg = format!("max-peers={max} reached; not calling '{peer_id}'");
            self.post(|e| messages::error(e, ErrorCode::MaxPeersReached, Some(peer_id), &msg));
            return;
        }
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.try_send(Work::Call);
        peers.insert(peer_id.to_owned(), Peer::new(tx));
        drop(peers);
        gst::info!(gst::CAT_DEFAULT, "{}: calling '{peer_id}'", self.me);
        RUNTIME.spawn(run_peer(Arc::downgrade(self), peer_id.to_owned(), rx));
    }

    /// A call with a `connect-to` peer failed: called again after the backoff while the peer
    /// is announced; RECONNECT_FAILED when the attempts are used up.
    fn retry(self: &Arc<Self>, peer_id: &str, reason: &str) {
        if !self.connect_to.iter().any(|p| p == peer_id) {
            return;
        }
        let attempt = {
            let mut failures = lock(&self.failures);
            let n = failures.entry(peer_id.to_owned()).or_default();
            *n += 1;
            let attempt = *n;
            drop(failures);
            attempt
        };
        let Some(delay) = self.backoff.delay(attempt) else {
            let msg = format!(
                "calling '{peer_id}' failed {} times in a row, last: {reason}; waiting for it \
                 to be announced again",
                attempt - 1
            );
            lock(&self.failures).remove(peer_id);
            self.post(|e| messages::error(e, ErrorCode::ReconnectFailed, Some(peer_id), &msg));
            return;
        };
        let msg = format!(
            "call with '{peer_id}' failed ({reason}); attempt {attempt} of {} in {} ms",
            self.backoff.max_attempts,
            delay.as_millis()
        );
        self.post(|e| messages::error(e, ErrorCode::ReconnectAttempt, Some(peer_id), &msg));
        let weak = Arc::downgrade(self);
        let peer = peer_id.to_owned();
        RUNTIME.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(hub) = weak.upgrade()
                && lock(&hub.announced).contains_key(&peer)
            {
                hub.call(&peer);
            }
        });
    }

    /// Hangs up on a peer at the application's request: the peer hears `reason` (as a
    /// `peer.state_change` to `disconnected: <reason>`) before the `peer.disconnect`.
    pub fn disconnect_peer(&self, peer_id: &str, reason: &str) -> bool {
        if !self.has_peer(peer_id) {
            return false;
        }
        if lock(&self.announced).contains_key(peer_id) {
            self.send(Signal::StateChange {
                from: self.me.clone(),
                to: peer_id.to_owned(),
                state: format!("disconnected: {reason}"),
            });
        }
        self.close_peer(peer_id, reason, true)
    }

    /// Ends the call with a peer. `tell` sends it a `peer.disconnect` first.
    pub fn close_peer(&self, peer_id: &str, reason: &str, tell: bool) -> bool {
        let removed = lock(&self.peers).remove(peer_id);
        let Some(peer) = removed else {
            return false;
        };
        if tell {
            self.send(Signal::Disconnect {
                from: self.me.clone(),
                to: peer_id.to_owned(),
            });
        }
        if let Some(pc) = peer.pc {
            RUNTIME.spawn(async move {
                let _ = pc.close().await;
            });
        }
        self.role.closed(peer_id);
        if peer.connected {
            self.post(|e| messages::peer_disconnected(e, peer_id, reason));
        }
        true
    }

    /// Ends a call that went wrong, telling the peer why; a `connect-to` peer is retried.
    fn peer_failed(self: &Arc<Self>, peer_id: &str, error: &CallError) {
        let message = error.to_string();
        self.post(|e| messages::error(e, error.code(), Some(peer_id), &message));
        // WHIP and WHEP clients are not on signaling; their HTTP answer tells them.
        if lock(&self.announced).contains_key(peer_id) {
            self.send(Signal::StateChange {
                from: self.me.clone(),
                to: peer_id.to_owned(),
                state: format!("failed: {message}"),
            });
        }
        self.close_peer(peer_id, &message, false);
        self.retry(peer_id, &message);
    }

    /// Whether `serial` is still the connection with `peer_id`.
    fn is_current(&self, peer_id: &str, serial: u64) -> bool {
        lock(&self.peers)
            .get(peer_id)
            .is_some_and(|p| p.serial == serial)
    }

    fn on_connection_state(
        self: &Arc<Self>,
        peer_id: &str,
        serial: u64,
        state: RTCPeerConnectionState,
    ) {
        if !self.is_current(peer_id, serial) {
            return;
        }
        match state {
            RTCPeerConnectionState::Connected => {
                let newly = lock(&self.peers)
                    .get_mut(peer_id)
                    .is_some_and(|p| !std::mem::replace(&mut p.connected, true));
                if newly {
                    lock(&self.failures).remove(peer_id);
                    let announced = lock(&self.announced)
                        .get(peer_id)
                        .cloned()
                        .unwrap_or_default();
                    self.post(|e| messages::peer_connected(e, peer_id, &announced));
                    self.role.connected(peer_id);
                }
            }
            RTCPeerConnectionState::Failed => {
                let reason = "connection failed (ICE/DTLS timeout)";
                self.close_peer(peer_id, reason, false);
                self.retry(peer_id, reason);
            }
            RTCPeerConnectionState::Closed => {
                self.close_peer(peer_id, "peer closed the connection", false);
            }
            _ => {}
        }
    }

    /// Makes the offer of a call this element starts, with every candidate gathered into it.
    async fn offer(self: &Arc<Self>, peer_id: &str) -> Result<(), CallError> {
        let (pc, serial) = self.new_connection(peer_id, None).await?;
        // The caller opens the data channel; the answerer gets it through `on_data_channel`.
        let channel = pc
            .create_data_channel("remotemedia", None)
            .await
            .map_err(CallError::DataChannel)?;
        let weak = Arc::downgrade(self);
        let (id, open) = (peer_id.to_owned(), channel.clone());
        channel.on_open(Box::new(move || {
            if let Some(hub) = weak.upgrade() {
                hub.attach_channel(&id, serial, open);
            }
            Box::pin(async {})
        }));
        self.hook_messages(peer_id, &channel);
        let sdp = gathered_local_sdp(&pc, LocalSdp::Offer).await?;
        self.send(Signal::Offer {
            from: self.me.clone(),
            to: peer_id.to_owned(),
            sdp,
        });
        // A call nobody answers (the peer dropped the offer) must not wait for ever.
        let weak = Arc::downgrade(self);
        let peer = peer_id.to_owned();
        RUNTIME.spawn(async move {
            tokio::time::sleep(CALL_TIMEOUT).await;
            let Some(hub) = weak.upgrade() else { return };
            let unanswered = lock(&hub.peers)
                .get(&peer)
                .is_some_and(|p| p.serial == serial && !p.connected);
            if unanswered {
                let reason = format!("not connected within {} s", CALL_TIMEOUT.as_secs());
                hub.close_peer(&peer, &reason, true);
                hub.retry(&peer, &reason);
            }
        });
        Ok(())
    }

    /// An offer from `peer_id`: a new call, a renegotiation of the current one, or glare.
    async fn on_offer(self: &Arc<Self>, peer_id: &str, sdp: String) -> Result<(), CallError> {
        let existing = lock(&self.peers).get(peer_id).and_then(|p| p.pc.clone());
        if let Some(pc) = existing {
            if pc.signaling_state() == RTCSignalingState::HaveLocalOffer {
                // Glare: both called. The greater id keeps its own offer.
                if self.me.as_str() > peer_id {
                    gst::debug!(
                        gst::CAT_DEFAULT,
                        "{}: glare with '{peer_id}': keeping our offer",
                        self.me
                    );
                    return Ok(());
                }
                self.replace_connection(peer_id, "both sides called; answering theirs");
            } else {
                let same_call = pc
                    .remote_description()
                    .await
                    .is_some_and(|r| fingerprint(&r.sdp) == fingerprint(&sdp));
                if !same_call {
                    // The peer started over (after a restart or a failure on its side).
                    self.replace_connection(peer_id, "the peer called again");
                }
            }
        }
        self.answer(peer_id, sdp).await
    }

    /// Drops the connection with `peer_id` but keeps the peer's task and entry, for the new
    /// connection that follows.
    fn replace_connection(&self, peer_id: &str, reason: &str) {
        let (pc, was_connected) = {
            let mut peers = lock(&self.peers);
            let Some(p) = peers.get_mut(peer_id) else {
                return;
            };
            p.channel = None;
            p.serial = 0;
            let taken = (p.pc.take(), std::mem::replace(&mut p.connected, false));
            drop(peers);
            taken
        };
        if let Some(pc) = pc {
            RUNTIME.spawn(async move {
                let _ = pc.close().await;
            });
        }
        self.role.closed(peer_id);
        if was_connected {
            self.post(|e| messages::peer_disconnected(e, peer_id, reason));
        }
    }

    /// The answer to our offer. A late answer to an offer already given up is ignored.
    async fn on_answer(&self, peer_id: &str, sdp: String) -> Result<(), CallError> {
        let pc = lock(&self.peers).get(peer_id).and_then(|p| p.pc.clone());
        let Some(pc) = pc.filter(|pc| pc.signaling_state() == RTCSignalingState::HaveLocalOffer)
        else {
            gst::debug!(
                gst::CAT_DEFAULT,
                "{}: answer from '{peer_id}' to no offer",
                self.me
            );
            return Ok(());
        };
        let answer =
            RTCSessionDescription::answer(self.ice.filter_remote_sdp(&sdp)).map_err(|source| {
                CallError::Unreadable {
                    kind: "answer",
                    source,
                }
            })?;
        pc.set_remote_description(answer)
            .await
            .map_err(|source| CallError::AnswerRefused {
                peer_id: peer_id.to_owned(),
                source,
            })
    }

    /// Answers an offer (or a renegotiation). ICE candidates are gathered into the answer:
    /// host gathering takes milliseconds, and every peer then works without trickle.
    async fn answer(self: &Arc<Self>, peer_id: &str, sdp: String) -> Result<(), CallError> {
        let sdp = self.answer_sdp(peer_id, sdp).await?;
        self.send(Signal::Answer {
            from: self.me.clone(),
            to: peer_id.to_owned(),
            sdp,
        });
        Ok(())
    }

    /// Applies `sdp` (an offer) to the peer's connection, made for it if needed, and returns
    /// the answer with every local candidate in it.
    async fn answer_sdp(self: &Arc<Self>, peer_id: &str, sdp: String) -> Result<String, CallError> {
        let existing = lock(&self.peers).get(peer_id).and_then(|p| p.pc.clone());
        let pc = match existing {
            Some(pc) => pc,
            None => self.new_connection(peer_id, Some(&sdp)).await?.0,
        };
        let offer =
            RTCSessionDescription::offer(self.ice.filter_remote_sdp(&sdp)).map_err(|source| {
                CallError::Unreadable {
                    kind: "offer",
                    source,
                }
            })?;
        pc.set_remote_description(offer)
            .await
            .map_err(CallError::OfferRefused)?;
        Ok(gathered_local_sdp(&pc, LocalSdp::Answer).await?)
    }

    /// Whether a call with `peer_id` exists (any state).
    pub fn has_peer(&self, peer_id: &str) -> bool {
        lock(&self.peers).contains_key(peer_id)
    }

    /// Answers an offer a WHIP or WHEP client POSTed, as the new peer `peer_id`.
    pub async fn answer_http(
        self: &Arc<Self>,
        peer_id: &str,
        door: Door,
        sdp: String,
    ) -> Result<String, Refusal> {
        let max = self.max_peers.load(Ordering::Relaxed) as usize;
        let (reply, answered) = tokio::sync::oneshot::channel();
        {
            let mut peers = lock(&self.peers);
            if peers.len() >= max {
                drop(peers);
                let refusal = Refusal::Full { max, door };
                let msg = refusal.to_string();
                self.post(|e| messages::error(e, ErrorCode::MaxPeersReached, Some(peer_id), &msg));
                return Err(refusal);
            }
            let (tx, rx) = mpsc::channel(64);
            let _ = tx.try_send(Work::HttpOffer { sdp, reply });
            peers.insert(peer_id.to_owned(), Peer::new(tx));
            drop(peers);
            RUNTIME.spawn(run_peer(Arc::downgrade(self), peer_id.to_owned(), rx));
        }
        match answered.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(Refusal::Offer(error)),
            Err(_) => Err(Refusal::Stopped),
        }
    }

    /// A candidate a WHIP/WHEP client trickled in with PATCH.
    pub async fn add_http_candidate(
        &self,
        peer_id: &str,
        init: RTCIceCandidateInit,
    ) -> Result<(), CallError> {
        self.add_candidate(peer_id, init).await
    }

    /// A new connection with `peer_id`, set up by the role for `offer` (`None`: we offer),
    /// and registered as the peer's current one under a new serial.
    async fn new_connection(
        self: &Arc<Self>,
        peer_id: &str,
        offer: Option<&str>,
    ) -> Result<(Arc<RTCPeerConnection>, u64), CallError> {
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        let pc = self.ice.new_peer_connection().await?;
        self.role.setup(peer_id, &pc, offer).await?;
        let weak = Arc::downgrade(self);
        let id = peer_id.to_owned();
        pc.on_peer_connection_state_change(Box::new(move |state| {
            if let Some(hub) = weak.upgrade() {
                hub.on_connection_state(&id, serial, state);
            }
            Box::pin(async {})
        }));
        let weak = Arc::downgrade(self);
        let id = peer_id.to_owned();
        pc.on_data_channel(Box::new(move |channel: Arc<RTCDataChannel>| {
            if let Some(hub) = weak.upgrade() {
                hub.hook_messages(&id, &channel);
                hub.attach_channel(&id, serial, channel);
            }
            Box::pin(async {})
        }));
        let registered = {
            let mut peers = lock(&self.peers);
            match peers.get_mut(peer_id) {
                Some(p) => {
                    p.pc = Some(pc.clone());
                    p.serial = serial;
                    true
                }
                None => false,
            }
        };
        if !registered {
            // The peer left while we were setting up.
            let _ = pc.close().await;
            return Err(CallError::LeftDuringSetup);
        }
        Ok((pc, serial))
    }

    /// Messages on a data channel of `peer_id` become `data` bus messages.
    fn hook_messages(self: &Arc<Self>, peer_id: &str, channel: &Arc<RTCDataChannel>) {
        let weak = Arc::downgrade(self);
        let peer = peer_id.to_owned();
        channel.on_message(Box::new(move |msg| {
            if let Some(hub) = weak.upgrade() {
                let payload = if msg.is_string {
                    Payload::Text(String::from_utf8_lossy(&msg.data).into_owned())
                } else {
                    Payload::Binary(msg.data)
                };
                hub.post(|e| messages::data(e, &peer, &payload));
            }
            Box::pin(async {})
        }));
    }

    /// An open data channel of connection `serial` carries what we send to `peer_id`.
    fn attach_channel(&self, peer_id: &str, serial: u64, channel: Arc<RTCDataChannel>) {
        let mut peers = lock(&self.peers);
        if let Some(p) = peers.get_mut(peer_id).filter(|p| p.serial == serial) {
            p.channel = Some(Outbox::open(channel));
        }
    }

    async fn add_candidate(
        &self,
        peer_id: &str,
        init: RTCIceCandidateInit,
    ) -> Result<(), CallError> {
        if !self.ice.accepts_remote(&init.candidate) {
            return Ok(());
        }
        let pc = lock(&self.peers).get(peer_id).and_then(|p| p.pc.clone());
        match pc {
            Some(pc) => pc
                .add_ice_candidate(init)
                .await
                .map_err(CallError::BadCandidate),
            None => Err(CallError::CandidateBeforeOffer),
        }
    }

    /// Sends on the peer's data channel; false (and a bus error) when it has none.
    pub fn send_to_peer(&self, peer_id: &str, message: Payload) -> bool {
        let sent = self.try_send_to_peer(peer_id, message);
        if !sent {
            let msg = format!("no data channel open with peer '{peer_id}'");
            self.post(|e| messages::error(e, ErrorCode::PeerNotFound, Some(peer_id), &msg));
        }
        sent
    }

    /// `send_to_peer` without the bus error, for results that may precede the channel.
    pub fn try_send_to_peer(&self, peer_id: &str, message: Payload) -> bool {
        let channel = lock(&self.peers)
            .get(peer_id)
            .and_then(|p| p.channel.clone());
        channel.is_some_and(|c| c.send(message))
    }

    /// Sends to every peer with an open data channel; returns how many.
    pub fn broadcast(&self, message: &Payload) -> u32 {
        let channels: Vec<Outbox> = lock(&self.peers)
            .values()
            .filter_map(|p| p.channel.clone())
            .collect();
        send_all(channels, message)
    }

    fn post_session_changes(&self, room: &str, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            self.post(|e| messages::session(e, room, &change));
        }
    }

    /// The value, or None after posting the error (with its code) on the bus.
    fn session_result<T>(&self, result: Result<T, SessionError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(err) => {
                self.post(|e| messages::error(e, err.code(), None, &err.to_string()));
                None
            }
        }
    }

    /// Creates a session; `metadata` is a JSON object (or empty). False (and a bus error) when
    /// it exists or the metadata is not an object.
    pub fn create_session(&self, room: &str, metadata: &str) -> bool {
        let parsed = if metadata.trim().is_empty() {
            Ok(serde_json::Value::Null)
        } else {
            serde_json::from_str(metadata)
                .map_err(|e| SessionError::BadMetadata(format!("text that is not JSON ({e})")))
        };
        let result = parsed.and_then(|m| lock(&self.sessions).create(room, m));
        let change = self.session_result(result);
        change
            .map(|c| self.post_session_changes(room, [c]))
            .is_some()
    }

    pub fn delete_session(&self, room: &str) -> bool {
        let result = lock(&self.sessions).delete(room);
        let change = self.session_result(result);
        change
            .map(|c| self.post_session_changes(room, [c]))
            .is_some()
    }

    pub fn join_session(&self, room: &str, peer: &str) -> bool {
        let result = lock(&self.sessions).join(room, peer);
        let change = self.session_result(result);
        change.map(|c| self.post_session_changes(room, c)).is_some()
    }

    pub fn leave_session(&self, room: &str, peer: &str) -> bool {
        let result = lock(&self.sessions).leave(room, peer);
        let change = self.session_result(result);
        change.map(|c| self.post_session_changes(room, c)).is_some()
    }

    /// Every session as a JSON array of `{session_id, peer_ids, created_at, metadata}`.
    pub fn sessions_json(&self) -> String {
        lock(&self.sessions).to_json().to_string()
    }

    /// Sends to the members of a session that have a data channel; returns how many.
    pub fn send_to_session(&self, room: &str, message: &Payload) -> u32 {
        let result = lock(&self.sessions).members(room);
        let Some(members) = self.session_result(result) else {
            return 0;
        };
        let channels: Vec<Outbox> = {
            let peers = lock(&self.peers);
            members
                .iter()
                .filter_map(|id| peers.get(id).and_then(|p| p.channel.clone()))
                .collect()
        };
        send_all(channels, message)
    }

    pub fn connected_peers(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.peers)
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// The DTLS fingerprint of an SDP: the same for every offer of one connection, new for a new
/// one.
fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
}

/// Handles one peer's work in order: our call or its offer (and renegotiations), answers and
/// candidates.
async fn run_peer(hub: Weak<PeerHub>, peer_id: String, mut rx: mpsc::Receiver<Work>) {
    while let Some(work) = rx.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        let signal = match work {
            Work::Call => {
                if let Err(error) = hub.offer(&peer_id).await {
                    hub.peer_failed(&peer_id, &error);
                    return;
                }
                continue;
            }
            Work::HttpOffer { sdp, reply } => match hub.answer_sdp(&peer_id, sdp).await {
                Ok(answer) => {
                    let _ = reply.send(Ok(answer));
                    continue;
                }
                Err(error) => {
                    let message = error.to_string();
                    hub.post(|e| messages::error(e, error.code(), Some(&peer_id), &message));
                    hub.close_peer(&peer_id, &message, false);
                    let _ = reply.send(Err(error));
                    return;
                }
            },
            Work::Signal(signal) => signal,
        };
        let result = match signal {
            Signal::Offer { sdp, .. } => hub.on_offer(&peer_id, sdp).await,
            Signal::Answer { sdp, .. } => hub.on_answer(&peer_id, sdp).await,
            // The peer gave up on the call (it refused our offer): nothing to tell it back.
            Signal::StateChange { state, .. } if state.starts_with("failed") => {
                let message = format!("'{peer_id}' ended the call: {state}");
                hub.post(|e| messages::error(e, ErrorCode::Peer, Some(&peer_id), &message));
                hub.close_peer(&peer_id, &message, false);
                hub.retry(&peer_id, &message);
                return;
            }
            Signal::IceCandidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
                ..
            } => {
                let init = RTCIceCandidateInit {
                    candidate,
                    sdp_mid,
                    sdp_mline_index: sdp_m_line_index,
                    username_fragment: None,
                };
                hub.add_candidate(&peer_id, init).await
            }
            _ => Ok(()),
        };
        if let Err(error) = result {
            hub.peer_failed(&peer_id, &error);
            return;
        }
    }
}
