//! A peer that reaches a `remotemedia-server` over gRPC (`signaling-url=grpc://host:port`).
//! It announces itself, hands what it hears to a [`Handler`], sends signals on request, and
//! when the server goes away it reconnects with backoff and announces itself again.

use remotemedia_runtime::ErrorCode;
use std::collections::HashMap;
use std::time::Duration;

use crate::reconnect::{reopen, settle_early};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::pb::webrtc as pb;
use super::pb::webrtc::signaling_request::Request as Req;
use super::pb::webrtc::signaling_response::Response as Resp;
use super::target::{BadToken, ConnectError, GrpcTarget};
use crate::protocol::{self, PeerInfo, RpcError, Signal};
use crate::registry::{Event, Handler};

pub use crate::reconnect::{LinkEvent, LinkHandler};

pub struct GrpcSignalClient {
    peer_id: String,
    /// The other peers announced when this client first announced.
    present: Vec<PeerInfo>,
    outbound: mpsc::Sender<Signal>,
    _stop: oneshot::Sender<()>,
}

/// One announced stream: requests go on `requests`, responses come from `responses`.
struct Stream {
    requests: mpsc::Sender<pb::SignalingRequest>,
    responses: tonic::Streaming<pb::SignalingResponse>,
    /// The other peers the announce's ack listed.
    present: Vec<PeerInfo>,
    /// Signals that came before the ack (see `settle_early`), for the handler first.
    early: Vec<Event>,
}

/// Why a stream could not be opened and announced on.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Token(#[from] BadToken),
    #[error("request queue closed")]
    QueueClosed,
    /// The call, or its response stream, failed with this status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[source] tonic::Status),
    #[error("no answer to announce within 10 s")]
    NoAnswer,
    #[error("stream closed during announce")]
    ClosedDuringAnnounce,
    #[error("announce refused: {} ({})", .0.message, .0.code)]
    AnnounceRefused(pb::ErrorResponse),
    #[error("unexpected answer to announce")]
    UnexpectedAnswer,
    #[error("the answer to announce lists a bad peer: {}", .0.message)]
    BadPeer(#[source] RpcError),
}

/// Why a served stream ended without the client asking.
#[derive(Debug, thiserror::Error)]
enum StreamLost {
    #[error("the request stream closed")]
    RequestsClosed,
    #[error("the server ended the stream")]
    Ended,
    #[error("{}: {}", .0.code(), .0.message())]
    Failed(#[source] tonic::Status),
}

async fn open(target: &GrpcTarget, info: &PeerInfo, take_over: bool) -> Result<Stream, OpenError> {
    let channel = target.channel().await?;
    let mut client = pb::web_rtc_signaling_client::WebRtcSignalingClient::new(channel);
    let (requests, rx) = mpsc::channel(256);
    let metadata = match &info.user_data {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        _ => HashMap::new(),
    };
    let caps = super::convert::peer_to_pb(info).capabilities;
    let announce = pb::SignalingRequest {
        request_id: "announce".into(),
        request: Some(Req::Announce(pb::AnnounceRequest {
            peer_id: info.peer_id.clone(),
            capabilities: caps,
            metadata,
            take_over,
        })),
    };
    requests
        .send(announce)
        .await
        .map_err(|_| OpenError::QueueClosed)?;
    let request = target.authorize(tonic::Request::new(ReceiverStream::new(rx)))?;
    let mut responses = client
        .signal(request)
        .await
        .map_err(OpenError::Status)?
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut early = Vec::new();
    let ack = loop {
        let message = tokio::time::timeout_at(deadline, responses.message())
            .await
            .map_err(|_| OpenError::NoAnswer)?
            .map_err(OpenError::Status)?
            .ok_or(OpenError::ClosedDuringAnnounce)?;
        match message.response {
            Some(Resp::Ack(ack)) => break ack,
            Some(Resp::Error(e)) => return Err(OpenError::AnnounceRefused(e)),
            Some(Resp::Notification(n)) => early.extend(to_event(n, &info.peer_id)),
            _ => return Err(OpenError::UnexpectedAnswer),
        }
    };
    let mut present = ack
        .other_peers
        .into_iter()
        .map(|p| super::convert::peer_from_pb(p.peer_id, p.capabilities, p.metadata))
        .collect::<Result<Vec<_>, _>>()
        .map_err(OpenError::BadPeer)?;
    let early = settle_early(&mut present, early);
    Ok(Stream {
        requests,
        responses,
        present,
        early,
    })
}

fn to_request(signal: Signal) -> pb::SignalingRequest {
    let request = match signal {
        Signal::Offer { to, sdp, .. } => Req::Offer(pb::OfferRequest {
            to_peer_id: to,
            sdp,
        }),
        Signal::Answer { to, sdp, .. } => Req::Answer(pb::AnswerRequest {
            to_peer_id: to,
            sdp,
            r#type: "answer".into(),
        }),
        Signal::IceCandidate {
            to,
            candidate,
            sdp_mid,
            sdp_m_line_index,
            ..
        } => Req::IceCandidate(pb::IceCandidateRequest {
            to_peer_id: to,
            candidate,
            sdp_mid,
            sdp_mline_index: sdp_m_line_index.map(u32::from),
        }),
        Signal::Disconnect { to, .. } => Req::Disconnect(pb::DisconnectRequest { to_peer_id: to }),
        // gRPC signaling has no state-change request; the peers' ICE states tell them.
        Signal::StateChange { .. } => Req::ListPeers(pb::ListPeersRequest {}),
    };
    pb::SignalingRequest {
        request_id: String::new(),
        request: Some(request),
    }
}

/// A server notification as the event an in-process peer would have received.
fn to_event(n: pb::SignalingNotification, me: &str) -> Option<Event> {
    use pb::signaling_notification::Event as N;
    let to = me.to_owned();
    Some(match n.event? {
        N::PeerJoined(j) => {
            let p = j.peer?;
            Event::Joined(super::convert::peer_from_pb(p.peer_id, p.capabilities, p.metadata).ok()?)
        }
        N::PeerLeft(l) => Event::Left {
            peer_id: l.peer_id,
            reason: l.reason,
        },
        N::Offer(o) => Event::Signal(Signal::Offer {
            from: o.from_peer_id,
            to,
            sdp: o.sdp,
        }),
        N::Answer(a) => Event::Signal(Signal::Answer {
            from: a.from_peer_id,
            to,
            sdp: a.sdp,
        }),
        N::IceCandidate(c) => Event::Signal(Signal::IceCandidate {
            from: c.from_peer_id,
            to,
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_m_line_index: c.sdp_mline_index.and_then(|i| u16::try_from(i).ok()),
        }),
        N::Disconnected(d) => Event::Signal(Signal::Disconnect {
            from: d.from_peer_id,
            to,
        }),
        N::StateChange(s) => Event::Signal(Signal::StateChange {
            from: s.from_peer_id,
            to,
            state: s.state,
        }),
    })
}

/// Runs one connected stream until it ends; `Ok` when the client was asked to stop.
async fn serve(
    stream: Stream,
    me: &str,
    outbound: &mut mpsc::Receiver<Signal>,
    stop: &mut oneshot::Receiver<()>,
    handler: &Handler,
    on_link: &LinkHandler,
) -> Result<(), StreamLost> {
    let Stream {
        requests,
        mut responses,
        early,
        ..
    } = stream;
    for event in early {
        let _ = handler(event);
    }
    loop {
        tokio::select! {
            _ = &mut *stop => {
                let bye = pb::SignalingRequest {
                    request_id: String::new(),
                    request: Some(Req::Disconnect(pb::DisconnectRequest::default())),
                };
                let _ = requests.send(bye).await;
                return Ok(());
            }
            signal = outbound.recv() => match signal {
                Some(signal) => {
                    if requests.send(to_request(signal)).await.is_err() {
                        return Err(StreamLost::RequestsClosed);
                    }
                }
                None => return Ok(()),
            },
            response = responses.message() => match response {
                Ok(Some(r)) => match r.response {
                    Some(Resp::Notification(n)) => {
                        if let Some(event) = to_event(n, me) {
                            let _ = handler(event);
                        }
                    }
                    Some(Resp::Error(e)) => on_link(LinkEvent::Refused(RpcError::new(
                        protocol::PEER_ERROR,
                        ErrorCode::Signaling,
                        format!("{} ({}, {})", e.message, e.code, e.kind),
                    ))),
                    _ => {}
                },
                Ok(None) => return Err(StreamLost::Ended),
                Err(s) => return Err(StreamLost::Failed(s)),
            },
        }
    }
}

impl GrpcSignalClient {
    /// Connects, announces `info` and waits for the server's ack. Later losses of the server
    /// are retried in the background as `url`'s backoff says, reported through `on_link`.
    pub async fn connect(
        url: &str,
        info: PeerInfo,
        handler: Handler,
        on_link: LinkHandler,
    ) -> Result<Self, RpcError> {
        let target = GrpcTarget::parse(url).map_err(|e| RpcError::link(url, e))?;
        let shown = target.endpoint.clone();
        let first = open(&target, &info, false)
            .await
            .map_err(|e| RpcError::link(&shown, e))?;
        let present = first.present.clone();
        let (outbound, mut queue) = mpsc::channel::<Signal>(256);
        let (stop_tx, mut stop) = oneshot::channel();
        let peer_id = info.peer_id.clone();
        tokio::spawn(async move {
            let me = info.peer_id.clone();
            let mut stream = first;
            loop {
                let reason =
                    match serve(stream, &me, &mut queue, &mut stop, &handler, &on_link).await {
                        Ok(()) => return,
                        Err(reason) => reason,
                    };
                // Signals queued while the server was away were meant for peers of the old
                // session; they would only be refused.
                while queue.try_recv().is_ok() {}
                let stopped = async {
                    let _ = (&mut stop).await;
                };
                // Take over: the server may still hold our old stream's announce.
                let opened = reopen(&target.backoff, &shown, reason, &on_link, stopped, || {
                    open(&target, &info, true)
                });
                match opened.await {
                    Some(s) => stream = s,
                    None => return,
                }
            }
        });
        Ok(Self {
            peer_id,
            present,
            outbound,
            _stop: stop_tx,
        })
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The other peers announced when this client first announced.
    pub fn present(&self) -> &[PeerInfo] {
        &self.present
    }

    pub fn send(&self, signal: Signal) -> Result<(), RpcError> {
        self.outbound
            .try_send(signal)
            .map_err(|_| RpcError::link("(grpc)", "outbound queue full or closed"))
    }
}
