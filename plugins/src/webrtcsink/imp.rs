//! The element: request pads, properties, signaling, and one peer connection per remote peer,
//! all fed from the same tracks.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use remotemedia_signaling::protocol::{self, PeerInfo, RpcError};
use remotemedia_signaling::{Event, Signal};
use serde_json::json;
use tokio::sync::mpsc;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

use super::stream::{EncodeSettings, Kind, Stream, VideoCodec};
use crate::webrtc::RUNTIME;
use crate::webrtc::ice::{IceSettings, split_urls};
use crate::webrtc::messages::{self, ErrorCode};
use crate::webrtc::signaling::{Link, SignalingConfig};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "remotemediawebrtcsink",
        gst::DebugColorFlags::empty(),
        Some("RemoteMedia WebRTC mesh sink"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    signaling_host: String,
    signaling_port: u32,
    signaling_url: String,
    peer_id: String,
    stun_servers: String,
    turn_servers: String,
    ice_loopback_only: bool,
    max_peers: u32,
    video_codec: VideoCodec,
    video_bitrate: u32,
    audio_bitrate: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            signaling_host: "127.0.0.1".into(),
            signaling_port: 8080,
            signaling_url: String::new(),
            peer_id: "remotemedia".into(),
            stun_servers: String::new(),
            turn_servers: String::new(),
            ice_loopback_only: false,
            max_peers: 10,
            video_codec: VideoCodec::Vp8,
            video_bitrate: 2000,
            audio_bitrate: 64000,
        }
    }
}

/// One remote peer: a task that handles its signals in order, and its connection.
struct Peer {
    signals: mpsc::Sender<Signal>,
    pc: Option<Arc<RTCPeerConnection>>,
    channel: Option<Arc<RTCDataChannel>>,
    connected: bool,
}

#[derive(Default)]
pub struct WebRtcSink {
    settings: Mutex<Settings>,
    link: Mutex<Option<Arc<Link>>>,
    streams: Mutex<Vec<(gst::GhostPad, Arc<Stream>)>>,
    peers: Mutex<HashMap<String, Peer>>,
    /// Capabilities announced by peers, for `peer-connected`.
    capabilities: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WebRtcSink {
    fn ice(&self) -> IceSettings {
        let s = lock(&self.settings);
        IceSettings {
            stun_servers: split_urls(&s.stun_servers),
            turn_servers: split_urls(&s.turn_servers),
            loopback_only: s.ice_loopback_only,
        }
    }

    fn element(&self) -> gst::Element {
        self.obj().clone().upcast()
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        self.ice()
            .validate()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["CONFIG_ERROR: {}", e]))?;
        let config = SignalingConfig {
            host: settings.signaling_host.clone(),
            port: settings.signaling_port as u16,
            url: settings.signaling_url.clone(),
        };
        let info = PeerInfo {
            peer_id: settings.peer_id.clone(),
            capabilities: json!({"role": "sink", "audio": true, "video": true, "data": true}),
            user_data: json!({"element": "remotemediawebrtcsink"}),
        };
        let weak = self.obj().downgrade();
        let handler = Arc::new(move |event: Event| match weak.upgrade() {
            Some(obj) => obj.imp().on_signaling(event),
            None => Ok(()),
        });
        let weak = self.obj().downgrade();
        let on_error = Arc::new(move |err: RpcError| {
            if let Some(obj) = weak.upgrade() {
                messages::error(obj.upcast_ref(), ErrorCode::Signaling, None, &err.message);
            }
        });
        let link = RUNTIME
            .block_on(Link::start(&config, info, handler, on_error))
            .map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenReadWrite,
                    ["SIGNALING_ERROR: {}", e]
                )
            })?;
        if let Some(port) = link.port() {
            lock(&self.settings).signaling_port = port as u32;
            gst::info!(
                CAT,
                imp = self,
                "signaling and web page on {}:{port}",
                config.host
            );
        }
        *lock(&self.link) = Some(Arc::new(link));
        for (_, stream) in lock(&self.streams).iter() {
            stream.start();
        }
        Ok(())
    }

    fn stop(&self) {
        let peers: Vec<String> = lock(&self.peers).keys().cloned().collect();
        for id in peers {
            self.close_peer(&id, "shutdown", true);
        }
        lock(&self.link).take();
        lock(&self.capabilities).clear();
    }

    fn send(&self, signal: Signal) {
        let link = lock(&self.link).clone();
        if let Some(link) = link
            && let Err(e) = link.send(signal)
        {
            gst::warning!(CAT, imp = self, "signal not delivered: {e}");
        }
    }

    /// Called by signaling for everything addressed to this element. Never blocks.
    fn on_signaling(&self, event: Event) -> Result<(), RpcError> {
        match event {
            Event::Joined(info) => {
                lock(&self.capabilities).insert(info.peer_id, info.capabilities.to_string());
                Ok(())
            }
            Event::Left { peer_id, reason } => {
                lock(&self.capabilities).remove(&peer_id);
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

    fn queue_signal(&self, signal: Signal) -> Result<(), RpcError> {
        let from = signal.from().to_owned();
        let is_offer = matches!(signal, Signal::Offer { .. });
        let max = lock(&self.settings).max_peers as usize;
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get(&from) {
            return peer.signals.try_send(signal).map_err(|_| {
                RpcError::new(
                    protocol::PEER_ERROR,
                    "PEER_ERROR",
                    format!("too many signals queued for '{from}'"),
                )
            });
        }
        if !is_offer {
            return Err(RpcError::new(
                protocol::PEER_NOT_FOUND,
                "PEER_NOT_FOUND",
                format!("no call with '{from}': send peer.offer first"),
            ));
        }
        if peers.len() >= max {
            drop(peers);
            let msg = format!("max-peers={max} reached; peer '{from}' refused");
            messages::error(
                &self.element(),
                ErrorCode::MaxPeersReached,
                Some(&from),
                &msg,
            );
            return Err(RpcError::new(
                protocol::MAX_PEERS_REACHED,
                "MAX_PEERS_REACHED",
                msg,
            ));
        }
        let (tx, rx) = mpsc::channel(64);
        let _ = tx.try_send(signal);
        peers.insert(
            from.clone(),
            Peer {
                signals: tx,
                pc: None,
                channel: None,
                connected: false,
            },
        );
        drop(peers);
        let weak = self.obj().downgrade();
        RUNTIME.spawn(run_peer(weak, from, rx));
        Ok(())
    }

    /// Ends the call with a peer. `tell` sends it a `peer.disconnect` first.
    fn close_peer(&self, peer_id: &str, reason: &str, tell: bool) {
        let Some(peer) = lock(&self.peers).remove(peer_id) else {
            return;
        };
        gst::info!(CAT, imp = self, "peer {peer_id} closed: {reason}");
        if tell {
            let me = lock(&self.settings).peer_id.clone();
            self.send(Signal::Disconnect {
                from: me,
                to: peer_id.to_owned(),
            });
        }
        if let Some(pc) = peer.pc {
            RUNTIME.spawn(async move {
                let _ = pc.close().await;
            });
        }
        if peer.connected {
            messages::peer_disconnected(&self.element(), peer_id, reason);
        }
    }

    fn peer_failed(&self, peer_id: &str, message: &str) {
        messages::error(&self.element(), ErrorCode::Peer, Some(peer_id), message);
        let me = lock(&self.settings).peer_id.clone();
        self.send(Signal::StateChange {
            from: me,
            to: peer_id.to_owned(),
            state: format!("failed: {message}"),
        });
        self.close_peer(peer_id, message, false);
    }

    fn on_connection_state(&self, peer_id: &str, state: RTCPeerConnectionState) {
        gst::debug!(CAT, imp = self, "peer {peer_id}: {state}");
        match state {
            RTCPeerConnectionState::Connected => {
                let newly = lock(&self.peers)
                    .get_mut(peer_id)
                    .is_some_and(|p| !std::mem::replace(&mut p.connected, true));
                if newly {
                    let caps = lock(&self.capabilities)
                        .get(peer_id)
                        .cloned()
                        .unwrap_or_else(|| "{}".into());
                    messages::peer_connected(&self.element(), peer_id, &caps);
                    self.request_key_units();
                }
            }
            RTCPeerConnectionState::Failed => {
                self.close_peer(peer_id, "connection failed (ICE/DTLS timeout)", false);
            }
            RTCPeerConnectionState::Closed => {
                self.close_peer(peer_id, "peer closed the connection", false);
            }
            _ => {}
        }
    }

    fn request_key_units(&self) {
        let streams: Vec<Arc<Stream>> =
            lock(&self.streams).iter().map(|(_, s)| s.clone()).collect();
        for s in streams {
            s.request_key_unit();
        }
    }

    /// Builds the answer for an offer: every stream's shared track, data channel handling,
    /// and ICE candidates gathered into the answer (loopback gathering takes milliseconds).
    async fn answer(&self, peer_id: &str, sdp: String) -> Result<(), String> {
        let existing = lock(&self.peers).get(peer_id).and_then(|p| p.pc.clone());
        let pc = match existing {
            Some(pc) => pc,
            None => self.new_connection(peer_id).await?,
        };
        let offer = RTCSessionDescription::offer(sdp).map_err(|e| format!("bad offer: {e}"))?;
        pc.set_remote_description(offer)
            .await
            .map_err(|e| format!("bad offer SDP: {e}"))?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| format!("cannot answer: {e}"))?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer)
            .await
            .map_err(|e| format!("cannot apply the answer: {e}"))?;
        let _ = gathered.recv().await;
        let sdp = pc
            .local_description()
            .await
            .ok_or("no local description")?
            .sdp;
        let me = lock(&self.settings).peer_id.clone();
        self.send(Signal::Answer {
            from: me,
            to: peer_id.to_owned(),
            sdp,
        });
        Ok(())
    }

    async fn new_connection(&self, peer_id: &str) -> Result<Arc<RTCPeerConnection>, String> {
        let pc = self.ice().new_peer_connection().await?;
        let streams: Vec<Arc<Stream>> =
            lock(&self.streams).iter().map(|(_, s)| s.clone()).collect();
        for stream in streams {
            let sender = pc
                .add_track(stream.track.clone())
                .await
                .map_err(|e| format!("cannot add track: {e}"))?;
            // Read RTCP so the interceptors work; PLI and FIR ask the encoder for a key frame.
            let weak = Arc::downgrade(&stream);
            RUNTIME.spawn(async move {
                while let Ok((packets, _)) = sender.read_rtcp().await {
                    let wants_key = packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    });
                    match weak.upgrade() {
                        Some(s) if wants_key && s.kind == Kind::Video => s.request_key_unit(),
                        Some(_) => {}
                        None => break,
                    }
                }
            });
        }
        let weak = self.obj().downgrade();
        let id = peer_id.to_owned();
        pc.on_peer_connection_state_change(Box::new(move |state| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_connection_state(&id, state);
            }
            Box::pin(async {})
        }));
        let weak = self.obj().downgrade();
        let id = peer_id.to_owned();
        pc.on_data_channel(Box::new(move |channel: Arc<RTCDataChannel>| {
            let weak = weak.clone();
            let id = id.clone();
            Box::pin(async move {
                let w = weak.clone();
                let peer = id.clone();
                channel.on_message(Box::new(move |msg| {
                    if let Some(obj) = w.upgrade() {
                        let text = String::from_utf8_lossy(&msg.data);
                        messages::data(obj.upcast_ref(), &peer, &text);
                    }
                    Box::pin(async {})
                }));
                if let Some(obj) = weak.upgrade()
                    && let Some(p) = lock(&obj.imp().peers).get_mut(&id)
                {
                    p.channel = Some(channel);
                }
            })
        }));
        let registered = match lock(&self.peers).get_mut(peer_id) {
            Some(p) => {
                p.pc = Some(pc.clone());
                true
            }
            None => false,
        };
        if !registered {
            // The peer left while we were setting up.
            let _ = pc.close().await;
            return Err("peer left during setup".into());
        }
        Ok(pc)
    }

    async fn add_candidate(&self, peer_id: &str, init: RTCIceCandidateInit) -> Result<(), String> {
        if !self.ice().accepts_remote(&init.candidate) {
            gst::debug!(
                CAT,
                imp = self,
                "ignoring non-loopback candidate {}",
                init.candidate
            );
            return Ok(());
        }
        let pc = lock(&self.peers).get(peer_id).and_then(|p| p.pc.clone());
        match pc {
            Some(pc) => pc
                .add_ice_candidate(init)
                .await
                .map_err(|e| format!("bad ICE candidate: {e}")),
            None => Err("ICE candidate before the offer".into()),
        }
    }

    fn send_to_peer(&self, peer_id: &str, message: &str) -> bool {
        let channel = lock(&self.peers)
            .get(peer_id)
            .and_then(|p| p.channel.clone());
        match channel {
            Some(channel) => {
                let text = message.to_owned();
                RUNTIME.spawn(async move {
                    let _ = channel.send_text(text).await;
                });
                true
            }
            None => {
                let msg = format!("no data channel open with peer '{peer_id}'");
                messages::error(
                    &self.element(),
                    ErrorCode::PeerNotFound,
                    Some(peer_id),
                    &msg,
                );
                false
            }
        }
    }

    fn broadcast(&self, message: &str) -> u32 {
        let channels: Vec<Arc<RTCDataChannel>> = lock(&self.peers)
            .values()
            .filter_map(|p| p.channel.clone())
            .collect();
        let n = channels.len() as u32;
        for channel in channels {
            let text = message.to_owned();
            RUNTIME.spawn(async move {
                let _ = channel.send_text(text).await;
            });
        }
        n
    }

    fn connected_peers(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.peers)
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Handles one peer's signals in order: the offer (and renegotiations), then its candidates.
async fn run_peer(
    weak: glib::WeakRef<super::RemoteMediaWebRtcSink>,
    peer_id: String,
    mut rx: mpsc::Receiver<Signal>,
) {
    while let Some(signal) = rx.recv().await {
        let Some(obj) = weak.upgrade() else { return };
        let imp = obj.imp();
        let result = match signal {
            Signal::Offer { sdp, .. } => imp.answer(&peer_id, sdp).await,
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
                imp.add_candidate(&peer_id, init).await
            }
            _ => Ok(()),
        };
        if let Err(message) = result {
            imp.peer_failed(&peer_id, &message);
            return;
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WebRtcSink {
    const NAME: &'static str = "GstRemoteMediaWebRtcSink";
    type Type = super::RemoteMediaWebRtcSink;
    type ParentType = gst::Bin;
}

impl ObjectImpl for WebRtcSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("signaling-host")
                    .nick("Signaling host")
                    .blurb("Address the embedded signaling server and web page listen on (0.0.0.0 for every interface)")
                    .default_value(Some("127.0.0.1"))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("signaling-port")
                    .nick("Signaling port")
                    .blurb("Port of the embedded JSON-RPC WebSocket signaling and web page (0: pick a free port, read back after READY)")
                    .maximum(65535)
                    .default_value(8080)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("signaling-url")
                    .nick("Signaling URL")
                    .blurb("External signaling server (ws://host:port/path) instead of the embedded one")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("peer-id")
                    .nick("Peer id")
                    .blurb("Id this element announces; browsers send their offers to it")
                    .default_value(Some("remotemedia"))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("stun-servers")
                    .nick("STUN servers")
                    .blurb("Comma-separated stun:host:port URLs (none by default)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("turn-servers")
                    .nick("TURN servers")
                    .blurb("Comma-separated turn:user:password@host:port URLs")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("ice-loopback-only")
                    .nick("Loopback ICE only")
                    .blurb("Gather and accept loopback ICE candidates only (same-host peers, tests)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-peers")
                    .nick("Maximum peers")
                    .blurb("Peers served at once; the next one gets MAX_PEERS_REACHED")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(10)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("video-codec", VideoCodec::Vp8)
                    .nick("Video codec")
                    .blurb("Codec raw video is encoded to, once for all peers (encoded input must match)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("audio-codec")
                    .nick("Audio codec")
                    .blurb("Codec raw audio is encoded to (opus)")
                    .default_value(Some("opus"))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("video-bitrate")
                    .nick("Video bitrate")
                    .blurb("Target video bitrate in kbit/s")
                    .minimum(50)
                    .maximum(50_000)
                    .default_value(2000)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("audio-bitrate")
                    .nick("Audio bitrate")
                    .blurb("Opus bitrate in bit/s")
                    .minimum(6000)
                    .maximum(510_000)
                    .default_value(64000)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                glib::subclass::Signal::builder("send-to-peer")
                    .param_types([String::static_type(), String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let obj = args[0].get::<super::RemoteMediaWebRtcSink>().ok()?;
                        let peer = args[1].get::<String>().ok()?;
                        let msg = args[2].get::<String>().ok()?;
                        Some(obj.imp().send_to_peer(&peer, &msg).to_value())
                    })
                    .build(),
                glib::subclass::Signal::builder("broadcast")
                    .param_types([String::static_type()])
                    .return_type::<u32>()
                    .action()
                    .class_handler(|args| {
                        let obj = args[0].get::<super::RemoteMediaWebRtcSink>().ok()?;
                        let msg = args[1].get::<String>().ok()?;
                        Some(obj.imp().broadcast(&msg).to_value())
                    })
                    .build(),
                glib::subclass::Signal::builder("disconnect-peer")
                    .param_types([String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let obj = args[0].get::<super::RemoteMediaWebRtcSink>().ok()?;
                        let peer = args[1].get::<String>().ok()?;
                        let known = lock(&obj.imp().peers).contains_key(&peer);
                        obj.imp()
                            .close_peer(&peer, "disconnected by the application", true);
                        Some(known.to_value())
                    })
                    .build(),
                glib::subclass::Signal::builder("get-peers")
                    .return_type::<glib::StrV>()
                    .action()
                    .class_handler(|args| {
                        let obj = args[0].get::<super::RemoteMediaWebRtcSink>().ok()?;
                        Some(glib::StrV::from(obj.imp().connected_peers()).to_value())
                    })
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let string = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        match pspec.name() {
            "signaling-host" => s.signaling_host = string(),
            "signaling-port" => s.signaling_port = value.get().unwrap_or(8080),
            "signaling-url" => s.signaling_url = string(),
            "peer-id" => s.peer_id = string(),
            "stun-servers" => s.stun_servers = string(),
            "turn-servers" => s.turn_servers = string(),
            "ice-loopback-only" => s.ice_loopback_only = value.get().unwrap_or(false),
            "max-peers" => s.max_peers = value.get().unwrap_or(10),
            "video-codec" => s.video_codec = value.get().unwrap_or_default(),
            "audio-codec" => {
                let codec = string();
                if codec != "opus" {
                    drop(s);
                    gst::element_imp_error!(
                        self,
                        gst::LibraryError::Settings,
                        [
                            "CONFIG_ERROR: audio-codec '{}' is not supported; use opus",
                            codec
                        ]
                    );
                }
            }
            "video-bitrate" => s.video_bitrate = value.get().unwrap_or(2000),
            "audio-bitrate" => s.audio_bitrate = value.get().unwrap_or(64000),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "signaling-host" => s.signaling_host.to_value(),
            "signaling-port" => s.signaling_port.to_value(),
            "signaling-url" => s.signaling_url.to_value(),
            "peer-id" => s.peer_id.to_value(),
            "stun-servers" => s.stun_servers.to_value(),
            "turn-servers" => s.turn_servers.to_value(),
            "ice-loopback-only" => s.ice_loopback_only.to_value(),
            "max-peers" => s.max_peers.to_value(),
            "video-codec" => s.video_codec.to_value(),
            "audio-codec" => "opus".to_value(),
            "video-bitrate" => s.video_bitrate.to_value(),
            "audio-bitrate" => s.audio_bitrate.to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for WebRtcSink {}

impl ElementImpl for WebRtcSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RemoteMedia WebRTC sink",
                "Sink/Network/WebRTC",
                "Sends audio and video to every connected WebRTC peer, encoded once, with embedded JSON-RPC signaling and a web page",
                "RemoteMedia for GStreamer developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let audio: gst::Caps = ["audio/x-raw", "audio/x-opus"]
                .into_iter()
                .map(gst::Structure::new_empty)
                .collect();
            let video: gst::Caps = ["video/x-raw", "video/x-vp8", "video/x-vp9", "video/x-h264"]
                .into_iter()
                .map(gst::Structure::new_empty)
                .collect();
            vec![
                gst::PadTemplate::new(
                    "audio_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &audio,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "video_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &video,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        _name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let kind = if templ.name_template().starts_with("audio") {
            Kind::Audio
        } else {
            Kind::Video
        };
        let prefix = if kind == Kind::Audio {
            "audio"
        } else {
            "video"
        };
        let mut streams = lock(&self.streams);
        let index = (0..)
            .find(|i| {
                !streams
                    .iter()
                    .any(|(p, _)| p.name() == format!("{prefix}_{i}"))
            })
            .unwrap_or(0);
        let name = format!("{prefix}_{index}");
        let settings = {
            let s = lock(&self.settings);
            EncodeSettings {
                video_codec: s.video_codec,
                video_bitrate_kbps: s.video_bitrate,
                audio_bitrate: s.audio_bitrate,
            }
        };
        let (stream, target) = match Stream::new(self.obj().upcast_ref(), kind, &name, settings) {
            Ok(v) => v,
            Err(e) => {
                drop(streams);
                gst::element_imp_error!(self, gst::CoreError::Pad, ["{}", e]);
                return None;
            }
        };
        let ghost = gst::GhostPad::builder_from_template_with_target(templ, &target)
            .ok()?
            .name(name.as_str())
            .build();
        ghost.set_active(true).ok()?;
        if lock(&self.link).is_some() {
            stream.start();
        }
        streams.push((ghost.clone(), stream));
        drop(streams);
        self.obj().add_pad(&ghost).ok()?;
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        lock(&self.streams).retain(|(p, _)| p.upcast_ref::<gst::Pad>() != pad);
        let _ = self.obj().remove_pad(pad);
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        if transition == gst::StateChange::NullToReady
            && let Err(err) = self.start()
        {
            self.post_error_message(err);
            return Err(gst::StateChangeError);
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::ReadyToNull {
            self.stop();
        }
        result
    }
}

impl BinImpl for WebRtcSink {}
