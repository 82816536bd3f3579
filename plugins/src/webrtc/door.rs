//! The HTTP doors on an element's embedded signaling port: WHIP (RFC 9725) on the source and
//! the server, for publishers such as OBS; WHEP on the sink, for players. `POST` an SDP offer
//! to `/whip` or `/whep`: `201 Created` with the answer and the session's `Location`;
//! `PATCH` that resource with `application/trickle-ice-sdpfrag` to add candidates; `DELETE`
//! it to hang up. The token check happens before a request reaches these handlers.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Weak};

use remotemedia_signaling::{HttpRequest, HttpResponse, Route};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;

use super::hub::{CallError, PeerHub};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Publishers send media in.
    Whip,
    /// Players take media out.
    Whep,
}

impl Door {
    pub fn path(self) -> &'static str {
        match self {
            Door::Whip => "/whip",
            Door::Whep => "/whep",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Door::Whip => "whip",
            Door::Whep => "whep",
        }
    }
}

/// Why an offer on a door was not answered.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("max-peers={max} reached; {door:?} client refused")]
    Full { max: usize, door: Door },
    #[error("offer refused: {0}")]
    Offer(#[source] CallError),
    #[error("the element stopped before answering")]
    Stopped,
}

impl Refusal {
    /// The HTTP status the client gets.
    fn status(&self) -> u16 {
        match self {
            Refusal::Full { .. } => 503,
            Refusal::Offer(_) => 400,
            Refusal::Stopped => 500,
        }
    }
}

/// What is wrong with a WHIP/WHEP offer before it reaches the peer connection.
#[derive(Debug, thiserror::Error)]
enum MalformedOffer {
    #[error("{0}")]
    Unparsable(#[source] webrtc::sdp::Error),
    #[error("it has no media section (m= line)")]
    NoMedia,
}

/// The route of `door` on the signaling server, handled by `hub` while it lives.
pub fn route(door: Door, hub: Weak<PeerHub>) -> Route {
    Route {
        prefix: door.path(),
        handler: Arc::new(move |req| {
            let hub = hub.clone();
            Box::pin(async move {
                match hub.upgrade() {
                    Some(hub) => handle(door, &hub, req).await,
                    None => HttpResponse::text(503, "the element is stopping"),
                }
            })
        }),
    }
}

async fn handle(door: Door, hub: &Arc<PeerHub>, req: HttpRequest) -> HttpResponse {
    let resource = req.path[door.path().len()..]
        .trim_start_matches('/')
        .to_owned();
    match (req.method.as_str(), resource.is_empty()) {
        ("POST", true) => post(door, hub, req).await,
        ("PATCH", false) => patch(door, hub, &resource, req).await,
        ("DELETE", false) => {
            if !is_session(door, &resource) || !hub.has_peer(&resource) {
                return unknown(door, &resource);
            }
            let reason = format!("{} session ended (DELETE)", door.name().to_uppercase());
            hub.close_peer(&resource, &reason, false);
            HttpResponse::text(200, "session ended")
        }
        (method, true) => HttpResponse::text(
            405,
            format!("{method} {}: POST an SDP offer here", door.path()),
        )
        .with_header("Allow", "POST, OPTIONS"),
        (method, false) => {
            HttpResponse::text(405, format!("{method} on a session: use PATCH or DELETE"))
                .with_header("Allow", "PATCH, DELETE, OPTIONS")
        }
    }
}

fn is_session(door: Door, resource: &str) -> bool {
    resource.starts_with(&format!("{}-", door.name())) && !resource.contains('/')
}

fn unknown(door: Door, resource: &str) -> HttpResponse {
    HttpResponse::text(
        404,
        format!("no {} session '{resource}'", door.name().to_uppercase()),
    )
}

async fn post(door: Door, hub: &Arc<PeerHub>, req: HttpRequest) -> HttpResponse {
    let media_type = req.content_type();
    if media_type != "application/sdp" {
        return HttpResponse::text(
            415,
            format!("the offer must be Content-Type: application/sdp, got {media_type:?}"),
        )
        .with_header("Accept-Post", "application/sdp");
    }
    let Ok(sdp) = String::from_utf8(req.body) else {
        return HttpResponse::text(400, "the SDP offer is not UTF-8");
    };
    if let Err(problem) = check_offer(&sdp) {
        return HttpResponse::text(400, format!("malformed SDP offer: {problem}"));
    }
    let id = session_id(door);
    match hub.answer_http(&id, door, sdp).await {
        Ok(answer) => HttpResponse::new(201, "application/sdp", answer)
            .with_header("Location", format!("{}/{id}", door.path())),
        Err(refusal) => HttpResponse::text(refusal.status(), refusal.to_string()),
    }
}

/// What a WHIP/WHEP offer needs before it reaches the peer connection, checked so the client
/// learns what is wrong with it.
fn check_offer(sdp: &str) -> Result<(), MalformedOffer> {
    let parsed = webrtc::sdp::SessionDescription::unmarshal(&mut std::io::Cursor::new(sdp))
        .map_err(MalformedOffer::Unparsable)?;
    if parsed.media_descriptions.is_empty() {
        return Err(MalformedOffer::NoMedia);
    }
    Ok(())
}

/// A resource id no one can guess from another one.
fn session_id(door: Door) -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{}-{random:016x}", door.name())
}

async fn patch(door: Door, hub: &Arc<PeerHub>, resource: &str, req: HttpRequest) -> HttpResponse {
    if !is_session(door, resource) || !hub.has_peer(resource) {
        return unknown(door, resource);
    }
    let media_type = req.content_type();
    if media_type != "application/trickle-ice-sdpfrag" {
        return HttpResponse::text(
            415,
            format!(
                "PATCH needs Content-Type: application/trickle-ice-sdpfrag, got {media_type:?}"
            ),
        )
        .with_header("Accept-Patch", "application/trickle-ice-sdpfrag");
    }
    let Ok(frag) = std::str::from_utf8(&req.body) else {
        return HttpResponse::text(400, "the SDP fragment is not UTF-8");
    };
    for candidate in candidates(frag) {
        if let Err(e) = hub.add_http_candidate(resource, candidate).await {
            return HttpResponse::text(400, e.to_string());
        }
    }
    HttpResponse::new(204, "text/plain", Vec::new())
}

/// The candidates of a trickle-ice-sdpfrag, each with the `a=mid` it follows.
fn candidates(frag: &str) -> Vec<RTCIceCandidateInit> {
    let mut mid: Option<String> = None;
    let mut line_index: Option<u16> = None;
    let mut found = Vec::new();
    for line in frag.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
            line_index = Some(line_index.map_or(0, |i| i + 1));
        } else if let Some(c) = line.strip_prefix("a=")
            && c.starts_with("candidate:")
        {
            found.push(RTCIceCandidateInit {
                candidate: c.to_owned(),
                sdp_mid: mid.clone(),
                sdp_mline_index: line_index,
                username_fragment: None,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdpfrag_candidates_keep_their_mid() {
        let frag = "a=ice-ufrag:abc\r\na=ice-pwd:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
                    a=candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
        let c = candidates(frag);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].sdp_mid.as_deref(), Some("0"));
        assert!(c[0].candidate.starts_with("candidate:1 1 udp"));
    }

    #[test]
    fn offers_are_checked() {
        assert!(matches!(
            check_offer("not sdp"),
            Err(MalformedOffer::Unparsable(_))
        ));
        let no_media = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        assert!(matches!(
            check_offer(no_media),
            Err(MalformedOffer::NoMedia)
        ));
        assert!(check_offer(&format!("{no_media}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")).is_ok());
    }

    #[test]
    fn session_ids_differ_and_name_their_door() {
        let (a, b) = (session_id(Door::Whip), session_id(Door::Whip));
        assert_ne!(a, b);
        assert!(is_session(Door::Whip, &a) && !is_session(Door::Whep, &a));
    }
}
