//! `remotemedia.v1.webrtc.WebRtcSignaling`: gRPC peers in the shared registry. Each Signal
//! stream is one peer; what the registry delivers to it becomes notifications on its response
//! stream, through a bounded queue that never makes the sender wait.

use remotemedia_runtime::ErrorCode;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{peer_from_pb, peer_to_pb};
use super::metrics::Metrics;
use super::pb::webrtc as pb;
use super::pb::webrtc::signaling_request::Request as Req;
use super::pb::webrtc::signaling_response::Response as Resp;
use super::server::incoming_status;
use crate::protocol::{self, RpcError, Signal};
use crate::rate::TokenBucket;
use crate::registry::{Event, Handler, LocalPeer, PeerRegistry};

/// Responses queued per stream before relays to it are refused.
const QUEUE_LEN: usize = 256;
/// Messages per second one stream may send, and its burst (as on the WebSocket).
const RATE: (f64, f64) = (200.0, 400.0);

pub struct SignalingService {
    registry: Arc<PeerRegistry>,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl SignalingService {
    pub fn new(registry: Arc<PeerRegistry>, metrics: Arc<Metrics>) -> Self {
        Self {
            registry,
            metrics,
            started: Instant::now(),
        }
    }
}

type Outbound = mpsc::Sender<Result<pb::SignalingResponse, Status>>;

fn response(request_id: &str, r: Resp) -> pb::SignalingResponse {
    pb::SignalingResponse {
        request_id: request_id.to_owned(),
        response: Some(r),
    }
}

/// The gRPC status name that fits a registry error.
fn status_name(e: &RpcError) -> &'static str {
    match e.code {
        protocol::PEER_NOT_FOUND => "NOT_FOUND",
        protocol::PEER_ID_TAKEN => "ALREADY_EXISTS",
        protocol::NOT_ANNOUNCED => "FAILED_PRECONDITION",
        protocol::RATE_LIMITED | protocol::MAX_PEERS_REACHED => "RESOURCE_EXHAUSTED",
        protocol::PEER_ERROR => "UNAVAILABLE",
        _ => "INVALID_ARGUMENT",
    }
}

fn error(request_id: &str, e: &RpcError) -> pb::SignalingResponse {
    response(
        request_id,
        Resp::Error(pb::ErrorResponse {
            code: status_name(e).into(),
            message: e.message.clone(),
            kind: e.kind.as_str().into(),
        }),
    )
}

fn notification(event: Event) -> pb::SignalingNotification {
    use pb::signaling_notification::Event as N;
    let event = match event {
        Event::Joined(info) => N::PeerJoined(pb::PeerJoined {
            peer: Some(peer_to_pb(&info)),
        }),
        Event::Left { peer_id, reason } => N::PeerLeft(pb::PeerLeft { peer_id, reason }),
        Event::Signal(signal) => match signal {
            Signal::Offer { from, sdp, .. } => N::Offer(pb::Offer {
                from_peer_id: from,
                sdp,
            }),
            Signal::Answer { from, sdp, .. } => N::Answer(pb::Answer {
                from_peer_id: from,
                sdp,
            }),
            Signal::IceCandidate {
                from,
                candidate,
                sdp_mid,
                sdp_m_line_index,
                ..
            } => N::IceCandidate(pb::IceCandidate {
                from_peer_id: from,
                candidate,
                sdp_mid,
                sdp_mline_index: sdp_m_line_index.map(u32::from),
            }),
            Signal::Disconnect { from, .. } => {
                N::Disconnected(pb::Disconnected { from_peer_id: from })
            }
            Signal::StateChange { from, state, .. } => N::StateChange(pb::PeerStateChange {
                from_peer_id: from,
                state,
            }),
        },
    };
    pb::SignalingNotification { event: Some(event) }
}

/// What the registry calls for a gRPC peer: queue the notification, never wait.
fn handler(peer_id: String, out: Outbound) -> Handler {
    Arc::new(move |event: Event| {
        if let Event::Left {
            peer_id: gone,
            reason,
        } = &event
            && *gone == peer_id
        {
            // Another stream took this peer id over: end this one.
            let _ = out.try_send(Err(Status::already_exists(format!(
                "peer id '{peer_id}' was {reason} by another announce"
            ))));
            return Ok(());
        }
        let message = response("", Resp::Notification(notification(event)));
        out.try_send(Ok(message)).map_err(|e| {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "is not reading (queue full)",
                mpsc::error::TrySendError::Closed(_) => "has disconnected",
            };
            RpcError::new(
                protocol::PEER_ERROR,
                ErrorCode::Peer,
                format!("peer '{peer_id}' {why}; message dropped"),
            )
        })
    })
}

/// The id an offer's ack carries, RemoteMedia's form: `<from>_<to>_<unix ms>`.
fn offer_id(from: &str, to: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{from}_{to}_{ms}")
}

fn bad(message: impl Into<String>) -> RpcError {
    RpcError::invalid_params(message)
}

fn require(field: &str, value: &str, method: &str) -> Result<(), RpcError> {
    if value.trim().is_empty() {
        return Err(bad(format!("{method}: '{field}' is empty")));
    }
    Ok(())
}

/// One Signal stream: the peer it announced, if any.
struct Peer {
    registry: Arc<PeerRegistry>,
    metrics: Arc<Metrics>,
    out: Outbound,
    me: Option<LocalPeer>,
}

impl Peer {
    /// Answers one request: its ack or answer, or the error that names what was wrong.
    fn handle(&mut self, request: pb::SignalingRequest) -> pb::SignalingResponse {
        let id = request.request_id.clone();
        match self.dispatch(request) {
            Ok(r) => response(&id, r),
            Err(e) => error(&id, &e),
        }
    }

    fn announced(&self, method: &str) -> Result<&LocalPeer, RpcError> {
        self.me.as_ref().ok_or_else(|| {
            RpcError::new(
                protocol::NOT_ANNOUNCED,
                ErrorCode::NotAnnounced,
                format!("{method}: announce first"),
            )
        })
    }

    /// Checks an offer or answer and returns its sender's id.
    fn sdp_sender(&self, method: &str, to: &str, sdp: &str) -> Result<String, RpcError> {
        let from = self.announced(method)?.peer_id().to_owned();
        require("to_peer_id", to, method)?;
        require("sdp", sdp, method)?;
        Ok(from)
    }

    fn relay(&self, signal: Signal) -> Result<Resp, RpcError> {
        self.registry.route(signal)?;
        Ok(Resp::Ack(pb::AckResponse::default()))
    }

    fn dispatch(&mut self, request: pb::SignalingRequest) -> Result<Resp, RpcError> {
        let Some(req) = request.request else {
            return Err(bad(
                "SignalingRequest: no request set (announce, offer, answer, ice_candidate, disconnect, list_peers)",
            ));
        };
        let kind = match &req {
            Req::Announce(_) => "announce",
            Req::Offer(_) => "offer",
            Req::Answer(_) => "answer",
            Req::IceCandidate(_) => "ice_candidate",
            Req::Disconnect(_) => "disconnect",
            Req::ListPeers(_) => "list_peers",
        };
        self.metrics.message(kind);
        match req {
            Req::Announce(a) => {
                if let Some(me) = &self.me {
                    return Err(bad(format!(
                        "announce: this stream is already announced as '{}'",
                        me.peer_id()
                    )));
                }
                let info = peer_from_pb(a.peer_id, a.capabilities, a.metadata)?;
                let handler = handler(info.peer_id.clone(), self.out.clone());
                let (me, others) = self
                    .registry
                    .register_local_with(info, handler, a.take_over)?;
                self.me = Some(me);
                Ok(Resp::Ack(pb::AckResponse {
                    peers_count: others.len() as u32 + 1,
                    other_peers: others.iter().map(peer_to_pb).collect(),
                    ..Default::default()
                }))
            }
            Req::ListPeers(_) => Ok(Resp::PeerList(pb::PeerListResponse {
                peers: self.registry.peers().iter().map(peer_to_pb).collect(),
            })),
            Req::Offer(o) => {
                let from = self.sdp_sender("offer", &o.to_peer_id, &o.sdp)?;
                self.relay(Signal::Offer {
                    from: from.clone(),
                    to: o.to_peer_id.clone(),
                    sdp: o.sdp,
                })?;
                self.metrics.offer_relayed(&from, &o.to_peer_id);
                Ok(Resp::Ack(pb::AckResponse {
                    offer_id: offer_id(&from, &o.to_peer_id),
                    ..Default::default()
                }))
            }
            Req::Answer(a) => {
                if !matches!(a.r#type.as_str(), "" | "answer") {
                    return Err(bad(format!(
                        "answer: type is '{}'; an answer's SDP type is 'answer'",
                        a.r#type
                    )));
                }
                let from = self.sdp_sender("answer", &a.to_peer_id, &a.sdp)?;
                self.relay(Signal::Answer {
                    from: from.clone(),
                    to: a.to_peer_id.clone(),
                    sdp: a.sdp,
                })?;
                self.metrics.answer_relayed(&from, &a.to_peer_id);
                Ok(Resp::Ack(pb::AckResponse::default()))
            }
            Req::IceCandidate(c) => {
                let from = self.announced("ice_candidate")?.peer_id().to_owned();
                require("to_peer_id", &c.to_peer_id, "ice_candidate")?;
                let sdp_m_line_index = c
                    .sdp_mline_index
                    .map(|i| {
                        u16::try_from(i).map_err(|_| {
                            bad(format!(
                                "ice_candidate: sdp_mline_index {i} is out of range"
                            ))
                        })
                    })
                    .transpose()?;
                self.relay(Signal::IceCandidate {
                    from,
                    to: c.to_peer_id,
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_m_line_index,
                })
            }
            Req::Disconnect(d) => {
                let from = self.announced("disconnect")?.peer_id().to_owned();
                if d.to_peer_id.is_empty() {
                    if let Some(me) = self.me.take() {
                        me.leave("disconnect");
                        self.metrics.peer_left(&from);
                    }
                    return Ok(Resp::Ack(pb::AckResponse::default()));
                }
                self.relay(Signal::Disconnect {
                    from,
                    to: d.to_peer_id,
                })
            }
        }
    }
}

type SignalStream = Pin<Box<dyn Stream<Item = Result<pb::SignalingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::web_rtc_signaling_server::WebRtcSignaling for SignalingService {
    type SignalStream = SignalStream;

    async fn signal(
        &self,
        request: Request<Streaming<pb::SignalingRequest>>,
    ) -> Result<Response<Self::SignalStream>, Status> {
        let mut incoming = request.into_inner();
        let (out, rx) = mpsc::channel(QUEUE_LEN);
        let mut peer = Peer {
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            out: out.clone(),
            me: None,
        };
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let _open = metrics.signal_stream();
            let mut limit = TokenBucket::new(RATE.0, RATE.1);
            loop {
                let request = tokio::select! {
                    // The response side went away (client gone, or a take-over ended it).
                    _ = out.closed() => break,
                    next = incoming.message() => match next {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(status) => {
                            let _ = out.try_send(Err(incoming_status(status)));
                            break;
                        }
                    },
                };
                let reply = if limit.allow() {
                    peer.handle(request)
                } else {
                    let e = RpcError::new(
                        protocol::RATE_LIMITED,
                        ErrorCode::RateLimited,
                        format!("more than {} messages/s; message dropped", RATE.0),
                    );
                    error(&request.request_id, &e)
                };
                // Waiting here slows only this stream: the queue is its own.
                if out.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
            if let Some(me) = peer.me.take() {
                let id = me.peer_id().to_owned();
                me.leave("disconnected");
                // After a take-over the id lives on in another stream, with its own offers.
                if !peer.registry.contains(&id) {
                    metrics.peer_left(&id);
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_peers(
        &self,
        _request: Request<pb::GetPeersRequest>,
    ) -> Result<Response<pb::GetPeersResponse>, Status> {
        Ok(Response::new(pb::GetPeersResponse {
            peers: self.registry.peers().iter().map(peer_to_pb).collect(),
        }))
    }

    async fn health_check(
        &self,
        _request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        Ok(Response::new(pb::HealthCheckResponse {
            healthy: true,
            version: env!("CARGO_PKG_VERSION").into(),
            peers: self.registry.len() as u32,
            uptime_sec: self.started.elapsed().as_secs(),
        }))
    }
}
