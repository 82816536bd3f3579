//! Peer connections as the element properties ask for them: codecs, ICE servers and which
//! local addresses ICE may use.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use remotemedia_runtime::ErrorCode;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;

use crate::failure::Failure;

/// ICE settings shared by the WebRTC elements.
#[derive(Clone, Debug, Default)]
pub struct IceSettings {
    /// `stun:host:port` URLs.
    pub stun_servers: Vec<String>,
    /// `turn:user:password@host:port` URLs, or RemoteMedia's `turn:host:port:user:password`.
    pub turn_servers: Vec<String>,
    /// Gather loopback candidates only and ignore remote non-loopback ones: same-host peers
    /// and tests, whose traffic must stay on 127.0.0.1.
    pub loopback_only: bool,
}

/// Splits a comma or space separated property value (URLs, peer ids) into its items.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A STUN or TURN server URL that cannot be used. TURN passwords are never shown.
#[derive(Debug, thiserror::Error)]
pub enum IceServerError {
    #[error("STUN server '{0}' must start with stun: or stuns:")]
    StunScheme(String),
    /// Shown up to its first `:`, as a password may follow.
    #[error("TURN server '{0}…' must start with turn: or turns:")]
    TurnScheme(String),
    #[error("TURN server '{scheme}…@{host}' needs user:password")]
    TurnCredentials { scheme: String, host: String },
    #[error("TURN server '{0}…' needs user:password@host:port or host:port:user:password")]
    TurnForm(String),
}

impl From<IceServerError> for Failure {
    fn from(e: IceServerError) -> Self {
        Failure::config(e.to_string())
    }
}

/// Why webrtc-rs could not make a peer connection or its local description.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Server(#[from] IceServerError),
    #[error("codecs: {0}")]
    Codecs(#[source] webrtc::Error),
    #[error("interceptors: {0}")]
    Interceptors(#[source] webrtc::Error),
    #[error("peer connection: {0}")]
    Create(#[source] webrtc::Error),
    #[error("cannot make an offer: {0}")]
    Offer(#[source] webrtc::Error),
    #[error("cannot answer: {0}")]
    Answer(#[source] webrtc::Error),
    #[error("cannot apply our own description: {0}")]
    ApplyLocal(#[source] webrtc::Error),
    #[error("no local description")]
    NoLocalDescription,
}

impl ConnectionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Server(_) => ErrorCode::Config,
            Self::Codecs(_) | Self::Interceptors(_) | Self::Create(_) => ErrorCode::Internal,
            // What we can offer or answer depends on the peer's description.
            _ => ErrorCode::Peer,
        }
    }
}

fn turn_server(url: &str) -> Result<RTCIceServer, IceServerError> {
    let rest = url
        .strip_prefix("turn:")
        .or_else(|| url.strip_prefix("turns:"))
        .ok_or_else(|| IceServerError::TurnScheme(url.split(':').next().unwrap_or("").into()))?;
    let scheme = &url[..url.len() - rest.len()];
    let (host, user, pass) = match rest.rsplit_once('@') {
        Some((cred, host)) => {
            let (user, pass) =
                cred.split_once(':')
                    .ok_or_else(|| IceServerError::TurnCredentials {
                        scheme: scheme.to_owned(),
                        host: host.to_owned(),
                    })?;
            (host.to_owned(), user, pass)
        }
        // RemoteMedia's form: host:port:user:password.
        None => match rest.splitn(4, ':').collect::<Vec<_>>()[..] {
            [host, port, user, pass] if port.parse::<u16>().is_ok() => {
                (format!("{host}:{port}"), user, pass)
            }
            _ => return Err(IceServerError::TurnForm(scheme.to_owned())),
        },
    };
    Ok(RTCIceServer {
        urls: vec![format!("{scheme}{host}")],
        username: user.to_owned(),
        credential: pass.to_owned(),
    })
}

impl IceSettings {
    /// Checks the URLs; the error names the bad one (credentials masked).
    pub fn validate(&self) -> Result<(), IceServerError> {
        for s in &self.stun_servers {
            if !(s.starts_with("stun:") || s.starts_with("stuns:")) {
                return Err(IceServerError::StunScheme(s.clone()));
            }
        }
        for t in &self.turn_servers {
            turn_server(t)?;
        }
        Ok(())
    }

    /// True when ICE may use a remote candidate with this address.
    pub fn accepts_remote(&self, candidate: &str) -> bool {
        if !self.loopback_only {
            return true;
        }
        // candidate:<foundation> <component> <proto> <priority> <address> <port> typ ...
        candidate
            .split_whitespace()
            .nth(4)
            .and_then(|a| a.parse::<IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback())
    }

    /// A remote SDP without the candidates ICE may not use (with `loopback_only`).
    pub fn filter_remote_sdp(&self, sdp: &str) -> String {
        if !self.loopback_only {
            return sdp.to_owned();
        }
        sdp.split_inclusive('\n')
            .filter(|line| match line.trim_end().strip_prefix("a=") {
                Some(c) if c.starts_with("candidate:") => self.accepts_remote(c),
                _ => true,
            })
            .collect()
    }

    pub async fn new_peer_connection(&self) -> Result<Arc<RTCPeerConnection>, ConnectionError> {
        let mut media = MediaEngine::default();
        media
            .register_default_codecs()
            .map_err(ConnectionError::Codecs)?;
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(ConnectionError::Interceptors)?;
        let mut setting = SettingEngine::default();
        setting.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        // A peer that vanishes without goodbye is reported within seconds, not half a minute.
        setting.set_ice_timeouts(
            Some(Duration::from_secs(4)),
            Some(Duration::from_secs(8)),
            Some(Duration::from_secs(1)),
        );
        if self.loopback_only {
            setting.set_include_loopback_candidate(true);
            setting.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
        }
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting)
            .build();
        let mut ice_servers = Vec::new();
        if !self.stun_servers.is_empty() {
            ice_servers.push(RTCIceServer {
                urls: self.stun_servers.clone(),
                ..Default::default()
            });
        }
        for t in &self.turn_servers {
            ice_servers.push(turn_server(t)?);
        }
        let config = RTCConfiguration {
            ice_servers,
            ..Default::default()
        };
        api.new_peer_connection(config)
            .await
            .map(Arc::new)
            .map_err(ConnectionError::Create)
    }
}

/// What `pc` says next: our offer (`Offer`) or our answer to the remote offer applied.
pub enum LocalSdp {
    Offer,
    Answer,
}

/// Makes the local offer or answer, applies it and returns it with every local candidate in
/// it: host gathering takes milliseconds, and every peer then works without trickle.
pub async fn gathered_local_sdp(
    pc: &RTCPeerConnection,
    kind: LocalSdp,
) -> Result<String, ConnectionError> {
    let description = match kind {
        LocalSdp::Offer => pc
            .create_offer(None)
            .await
            .map_err(ConnectionError::Offer)?,
        LocalSdp::Answer => pc
            .create_answer(None)
            .await
            .map_err(ConnectionError::Answer)?,
    };
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(description)
        .await
        .map_err(ConnectionError::ApplyLocal)?;
    let _ = gathered.recv().await;
    Ok(pc
        .local_description()
        .await
        .ok_or(ConnectionError::NoLocalDescription)?
        .sdp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_are_checked_without_echoing_passwords() {
        let s = IceSettings {
            turn_servers: vec!["turn:bob:secret@127.0.0.1:3478".into()],
            ..Default::default()
        };
        assert!(s.validate().is_ok());
        let bad = IceSettings {
            turn_servers: vec!["turn:bob:secret127.0.0.1".into()],
            ..Default::default()
        };
        let err = bad.validate().unwrap_err();
        assert!(matches!(err, IceServerError::TurnForm(_)), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn remotemedias_turn_form_is_understood() {
        let server = turn_server("turn:127.0.0.1:3478:bob:se:cret").unwrap();
        assert_eq!(server.urls, ["turn:127.0.0.1:3478"]);
        assert_eq!(
            (server.username.as_str(), server.credential.as_str()),
            ("bob", "se:cret")
        );
        let err = turn_server("turns:127.0.0.1:port:bob:secret").unwrap_err();
        assert!(matches!(err, IceServerError::TurnForm(_)), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = turn_server("127.0.0.1:3478:bob:secret").unwrap_err();
        assert!(matches!(err, IceServerError::TurnScheme(_)), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn loopback_filter_keeps_everything_but_other_candidates() {
        let s = IceSettings {
            loopback_only: true,
            ..Default::default()
        };
        let sdp = "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\na=candidate:2 1 udp 1 192.0.2.2 5000 typ host\r\na=mid:0\r\n";
        assert_eq!(
            s.filter_remote_sdp(sdp),
            "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\na=mid:0\r\n"
        );
    }

    #[test]
    fn loopback_only_refuses_other_addresses() {
        let s = IceSettings {
            loopback_only: true,
            ..Default::default()
        };
        assert!(s.accepts_remote("candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host"));
        assert!(!s.accepts_remote("candidate:1 1 udp 2122260223 10.0.0.2 5000 typ host"));
        assert!(!s.accepts_remote("candidate:1 1 udp 2122260223 abc.local 5000 typ host"));
    }
}
