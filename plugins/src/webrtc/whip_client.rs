//! The sink's WHIP client (`whip-url`): publishes the sink's streams to any WHIP server
//! (RFC 9725): one offer POSTed with every candidate gathered into it, the answer applied,
//! `DELETE` on the session resource at stop. A failed connection, or a server that is away,
//! is retried with backoff and reported like lost signaling (`RECONNECT_ATTEMPT`,
//! `RECONNECT_FAILED`).

use std::sync::Arc;

use gst::glib;
use remotemedia_runtime::Backoff;
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use super::http_client::{self, HttpError, Response};
use super::hub::Announced;
use super::ice::{ConnectionError, IceSettings, LocalSdp, gathered_local_sdp};
use super::messages;
use super::send::{SendError, Stream};
use super::{RUNTIME, run_blocking};
use remotemedia_runtime::ErrorCode;

pub struct WhipTarget {
    pub url: String,
    pub token: Option<String>,
    pub ice: IceSettings,
    pub backoff: Backoff,
}

/// A running publisher; `stop` ends its session (with `DELETE`) and waits for that.
pub struct WhipClient {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

/// Why a WHIP session could not be set up, or ended.
#[derive(Debug, thiserror::Error)]
enum WhipError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the WHIP server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the WHIP server's 201 has no Location")]
    NoLocation,
    #[error("bad answer: {0}")]
    BadAnswer(#[source] webrtc::Error),
    #[error("the WHIP server's answer was refused: {0}")]
    AnswerRefused(#[source] webrtc::Error),
    #[error("the connection failed")]
    ConnectionFailed,
}

enum Ended {
    Stopped,
    Failed { reason: WhipError, connected: bool },
}

impl WhipClient {
    pub fn start(
        element: glib::WeakRef<gst::Element>,
        target: WhipTarget,
        streams: Vec<Arc<Stream>>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let (finished, done) = oneshot::channel();
        RUNTIME.spawn(async move {
            publish(element, target, streams, stopped).await;
            let _ = finished.send(());
        });
        Self { stop, done }
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let done = self.done;
        run_blocking(async move {
            let _ = done.await;
        });
    }
}

fn post(element: &glib::WeakRef<gst::Element>, f: impl FnOnce(&gst::Element)) {
    if let Some(e) = element.upgrade() {
        f(&e);
    }
}

async fn publish(
    element: glib::WeakRef<gst::Element>,
    target: WhipTarget,
    streams: Vec<Arc<Stream>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut failures = 0;
    loop {
        let (reason, connected) = match session(&element, &target, &streams, &mut stop).await {
            Ended::Stopped => return,
            Ended::Failed { reason, connected } => (reason, connected),
        };
        if connected {
            failures = 0;
        }
        failures += 1;
        let Some(delay) = target.backoff.delay(failures) else {
            let msg = format!(
                "WHIP publishing to {} failed {} times in a row, giving up: {reason}",
                target.url,
                failures - 1
            );
            post(&element, |e| {
                messages::error(e, ErrorCode::ReconnectFailed, None, &msg)
            });
            return;
        };
        let msg = format!(
            "WHIP publishing to {} failed ({reason}); attempt {failures} of {} in {} ms",
            target.url,
            target.backoff.max_attempts,
            delay.as_millis()
        );
        post(&element, |e| {
            messages::error(e, ErrorCode::ReconnectAttempt, None, &msg)
        });
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One WHIP session, from the offer until it fails or the element stops.
async fn session(
    element: &glib::WeakRef<gst::Element>,
    target: &WhipTarget,
    streams: &[Arc<Stream>],
    stop: &mut oneshot::Receiver<()>,
) -> Ended {
    let (pc, location, mut states) = match negotiate(target, streams).await {
        Ok(negotiated) => negotiated,
        Err(reason) => {
            return Ended::Failed {
                reason,
                connected: false,
            };
        }
    };
    let mut connected = false;
    let ended = loop {
        tokio::select! {
            _ = &mut *stop => break Ended::Stopped,
            state = states.recv() => match state {
                Some(RTCPeerConnectionState::Connected) if !connected => {
                    connected = true;
                    let announced = Announced { capabilities: "{\"whip\":true}".into(), ..Default::default() };
                    post(element, |e| messages::peer_connected(e, &target.url, &announced));
                    for s in streams {
                        s.request_key_unit();
                    }
                }
                Some(RTCPeerConnectionState::Failed) | Some(RTCPeerConnectionState::Closed) | None => {
                    break Ended::Failed { reason: WhipError::ConnectionFailed, connected };
                }
                Some(_) => {}
            },
        }
    };
    if let Ended::Stopped = ended {
        // Hang up: the server frees the session at once instead of waiting for ICE to fail.
        let _ = http_client::request("DELETE", &location, target.token.as_deref(), None).await;
    }
    let _ = pc.close().await;
    if connected {
        let reason = match &ended {
            Ended::Stopped => "stopped",
            Ended::Failed { .. } => "the connection failed",
        };
        post(element, |e| {
            messages::peer_disconnected(e, &target.url, reason)
        });
    }
    ended
}

type Negotiated = (
    Arc<RTCPeerConnection>,
    String,
    mpsc::UnboundedReceiver<RTCPeerConnectionState>,
);

/// Makes the offer, POSTs it and applies the answer.
async fn negotiate(target: &WhipTarget, streams: &[Arc<Stream>]) -> Result<Negotiated, WhipError> {
    let pc = target.ice.new_peer_connection().await?;
    for s in streams {
        s.add_to(&pc, Some(RTCRtpTransceiverDirection::Sendonly))
            .await?;
    }
    let (tx, states) = mpsc::unbounded_channel();
    pc.on_peer_connection_state_change(Box::new(move |state| {
        let _ = tx.send(state);
        Box::pin(async {})
    }));
    let sdp = gathered_local_sdp(&pc, LocalSdp::Offer).await?;
    let Response {
        status,
        location,
        body,
    } = http_client::request(
        "POST",
        &target.url,
        target.token.as_deref(),
        Some(("application/sdp", sdp)),
    )
    .await?;
    if status != 201 {
        let _ = pc.close().await;
        return Err(WhipError::Status {
            status,
            body: body.trim().to_owned(),
        });
    }
    let Some(location) = location else {
        let _ = pc.close().await;
        return Err(WhipError::NoLocation);
    };
    let answer = RTCSessionDescription::answer(target.ice.filter_remote_sdp(&body))
        .map_err(WhipError::BadAnswer)?;
    if let Err(e) = pc.set_remote_description(answer).await {
        let _ = pc.close().await;
        return Err(WhipError::AnswerRefused(e));
    }
    Ok((pc, location, states))
}
