//! The element: a live source bin; each remote track becomes a chain and a sometimes pad.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use remotemedia_runtime::sync::lock;
use serde_json::json;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use crate::elements::BuildError;
use crate::failure::Failure;
use crate::webrtc::RUNTIME;
use crate::webrtc::door::Door;
use crate::webrtc::hub::{BoxFuture, PeerHub, Role, SetupError};
use crate::webrtc::receive::{DEFAULT_LATENCY_MS, PeerReceive, ReceiveError, Receiver};
use crate::webrtc::settings::{CommonSettings, HubOwner, action_signals};
use remotemedia_runtime::ErrorCode;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "remotemediawebrtcsrc",
        gst::DebugColorFlags::empty(),
        Some("RemoteMedia WebRTC source"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    decode: bool,
    latency_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            common: CommonSettings::default(),
            decode: true,
            latency_ms: DEFAULT_LATENCY_MS,
        }
    }
}

/// Why the source could not take a peer's media.
#[derive(Debug, thiserror::Error)]
enum SrcError {
    #[error("the element is stopping")]
    Stopping,
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot add a {kind} transceiver: {source}")]
    Transceiver {
        kind: RTPCodecType,
        #[source]
        source: webrtc::Error,
    },
}

impl SrcError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Stopping | Self::Transceiver { .. } => ErrorCode::Internal,
            Self::Receive(e) => e.code(),
            Self::Build(e) => e.code(),
        }
    }
}

impl From<SrcError> for SetupError {
    fn from(e: SrcError) -> Self {
        SetupError::new(e.code(), e)
    }
}

/// A received track and the bin pad it is exposed on.
struct Exposed {
    peer_id: String,
    /// `audio` or `video`, and the track's index among the peer's tracks of that kind.
    kind: &'static str,
    index: u32,
    pad: gst::GhostPad,
    receiver: Option<Receiver>,
}

impl Exposed {
    /// The pad goes first, so downstream sees it removed before the chain stops.
    fn remove(self, bin: &gst::Bin) {
        let _ = self.pad.set_active(false);
        let _ = bin.remove_pad(&self.pad);
        if let Some(r) = self.receiver {
            r.remove(bin);
        }
    }
}

type Exposeds = Arc<Mutex<Vec<Exposed>>>;

#[derive(Default)]
pub struct WebRtcSrc {
    settings: Mutex<Settings>,
    hub: Mutex<Option<Arc<PeerHub>>>,
    receivers: Exposeds,
}

/// Turns every track a peer sends into a pad of the bin.
struct SrcRole(Arc<Tracks>);

struct Tracks {
    bin: glib::WeakRef<gst::Bin>,
    receivers: Exposeds,
    peers: Mutex<HashMap<String, Arc<PeerReceive>>>,
    decode: bool,
    latency_ms: u32,
    next_audio: AtomicU32,
    next_video: AtomicU32,
    /// Peers this element calls (`connect-to`): their pads stay while they are away, and
    /// carry their streams again when they come back, so downstream links stay valid.
    callees: Vec<String>,
}

impl Tracks {
    fn on_track(
        &self,
        peer_id: &str,
        track: Arc<webrtc::track::track_remote::TrackRemote>,
        rtp_receiver: Arc<RTCRtpReceiver>,
    ) -> Result<gst::Pad, SrcError> {
        let bin = self.bin.upgrade().ok_or(SrcError::Stopping)?;
        let kind = track.kind();
        let (prefix, counter) = match kind {
            RTPCodecType::Audio => ("audio", &self.next_audio),
            _ => ("video", &self.next_video),
        };
        let (index, parked) = {
            let exposed = lock(&self.receivers);
            let live = |r: &&Exposed| r.peer_id == peer_id && r.kind == prefix;
            let index = exposed
                .iter()
                .filter(live)
                .filter(|r| r.receiver.is_some())
                .count() as u32;
            let parked = exposed
                .iter()
                .filter(live)
                .find(|r| r.receiver.is_none() && r.index == index)
                .map(|r| r.pad.clone());
            drop(exposed);
            (index, parked)
        };
        // The peer's rtpbin is made outside the lock (it is added to the bin); a second track
        // racing the first keeps the one registered first.
        let existing = lock(&self.peers).get(peer_id).cloned();
        let peer_rtp = match existing {
            Some(p) => p,
            None => {
                let made = Arc::new(PeerReceive::new(&bin, self.latency_ms)?);
                let (kept, spare) = match lock(&self.peers).entry(peer_id.to_owned()) {
                    Entry::Occupied(e) => (e.get().clone(), Some(made)),
                    Entry::Vacant(e) => (e.insert(made).clone(), None),
                };
                if let Some(spare) = spare {
                    spare.remove(&bin);
                }
                kept
            }
        };
        let receiver = peer_rtp.add_track(&bin, &track, self.decode)?;
        let stream_id = format!("peer:{peer_id}:{prefix}:{index}");
        receiver
            .src
            .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::EventView::StreamStart(s)) = info.event().map(|e| e.view()) {
                    let event = gst::event::StreamStart::builder(&stream_id)
                        .group_id(s.group_id().unwrap_or_else(gst::GroupId::next))
                        .build();
                    info.data = Some(gst::PadProbeData::Event(event));
                }
                gst::PadProbeReturn::Ok
            });
        if let Some(pad) = parked {
            // The peer is back: its pad carries the new call's stream.
            pad.set_target(Some(&receiver.src))
                .map_err(BuildError::pad("retarget", &pad))?;
            receiver.start(track, rtp_receiver)?;
            if let Some(e) = lock(&self.receivers).iter_mut().find(|e| e.pad == pad) {
                e.receiver = Some(receiver);
            }
            gst::info!(
                CAT,
                obj = bin,
                "peer {peer_id} back: {prefix} on {}",
                pad.name()
            );
            return Ok(pad.upcast());
        }
        let pad_name = format!("{prefix}_{}", counter.fetch_add(1, Ordering::Relaxed));
        let pad = gst::GhostPad::builder_with_target(&receiver.src)
            .map_err(BuildError::pad("ghost", &receiver.src))?
            .name(pad_name.as_str())
            .build();
        receiver.start(track, rtp_receiver)?;
        pad.set_active(true)
            .map_err(BuildError::pad("activate", &pad))?;
        lock(&self.receivers).push(Exposed {
            peer_id: peer_id.to_owned(),
            kind: prefix,
            index,
            pad: pad.clone(),
            receiver: Some(receiver),
        });
        bin.add_pad(&pad).map_err(BuildError::pad("expose", &pad))?;
        gst::info!(CAT, obj = bin, "peer {peer_id}: {prefix} on {}", pad.name());
        Ok(pad.upcast())
    }
}

impl Role for SrcRole {
    fn setup<'a>(
        &'a self,
        peer_id: &'a str,
        pc: &'a Arc<RTCPeerConnection>,
        offer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SetupError>> {
        let peer = peer_id.to_owned();
        let weak_pc = Arc::downgrade(pc);
        let this = self.0.clone();
        pc.on_track(Box::new(move |track, rtp_receiver, _| {
            let this = this.clone();
            let peer = peer.clone();
            let weak_pc = weak_pc.clone();
            Box::pin(async move {
                let ssrc = track.ssrc();
                let video = track.kind() == RTPCodecType::Video;
                let pad = match this.on_track(&peer, track, rtp_receiver) {
                    Ok(pad) => pad,
                    Err(e) => {
                        if let Some(bin) = this.bin.upgrade() {
                            crate::webrtc::messages::error(
                                bin.upcast_ref(),
                                e.code(),
                                Some(&peer),
                                &e.to_string(),
                            );
                        }
                        return;
                    }
                };
                if video {
                    // Key frame requests from downstream (a decoder, or a sink relaying this
                    // stream to a peer that just joined) reach the sender as PLI.
                    let weak = weak_pc.clone();
                    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                        let wants_key = info
                            .event()
                            .is_some_and(|e| gst_video::ForceKeyUnitEvent::is(e));
                        if wants_key && let Some(pc) = weak.upgrade() {
                            RUNTIME.spawn(async move { send_pli(&pc, ssrc).await });
                        }
                        gst::PadProbeReturn::Ok
                    });
                    // Ask for a key frame so decoding starts at once.
                    if let Some(pc) = weak_pc.upgrade() {
                        send_pli(&pc, ssrc).await;
                    }
                }
            })
        }));
        let pc = pc.clone();
        Box::pin(async move {
            // A source only receives, whichever side offers: our offer asks for both kinds.
            if offer.is_none() {
                for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
                    let init = RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        send_encodings: vec![],
                    };
                    pc.add_transceiver_from_kind(kind, Some(init))
                        .await
                        .map_err(|source| SrcError::Transceiver { kind, source })?;
                }
            }
            Ok(())
        })
    }

    fn closed(&self, peer_id: &str) {
        self.0.remove_peer(peer_id);
    }
}

async fn send_pli(pc: &RTCPeerConnection, media_ssrc: u32) {
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    let _ = pc.write_rtcp(&[Box::new(pli)]).await;
}

impl Tracks {
    fn remove_peer(&self, peer_id: &str) {
        let Some(bin) = self.bin.upgrade() else {
            return;
        };
        let peer_rtp = lock(&self.peers).remove(peer_id);
        if self.callees.iter().any(|c| c == peer_id) {
            // Chains stop, pads stay (without a target) for the peer's next call.
            let gone: Vec<(gst::GhostPad, Receiver)> = lock(&self.receivers)
                .iter_mut()
                .filter(|e| e.peer_id == peer_id)
                .filter_map(|e| Some((e.pad.clone(), e.receiver.take()?)))
                .collect();
            for (pad, receiver) in gone {
                let _ = pad.set_target(None::<&gst::Pad>);
                receiver.remove(&bin);
            }
        } else {
            let gone: Vec<Exposed> = {
                let mut all = lock(&self.receivers);
                let (gone, keep) = all.drain(..).partition(|r| r.peer_id == peer_id);
                *all = keep;
                gone
            };
            for r in gone {
                r.remove(&bin);
            }
        }
        if let Some(p) = peer_rtp {
            p.remove(&bin);
        }
    }
}

impl HubOwner for WebRtcSrc {
    fn hub(&self) -> Option<Arc<PeerHub>> {
        lock(&self.hub).clone()
    }
}

impl WebRtcSrc {
    fn start(&self) -> Result<(), Failure> {
        let settings = lock(&self.settings).clone();
        let config = settings.common.hub_config(
            "remotemediawebrtcsrc",
            json!({"role": "src", "audio": true, "video": true, "data": true}),
            Door::Whip,
        );
        let role = Arc::new(SrcRole(Arc::new(Tracks {
            bin: self.obj().upcast_ref::<gst::Bin>().downgrade(),
            receivers: self.receivers.clone(),
            peers: Mutex::new(HashMap::new()),
            decode: settings.decode,
            latency_ms: settings.latency_ms,
            next_audio: AtomicU32::new(0),
            next_video: AtomicU32::new(0),
            callees: config.connect_to.clone(),
        })));
        let element: gst::Element = self.obj().clone().upcast();
        let hub = PeerHub::start_blocking(&element, config, role)?;
        if let Some(port) = hub.port() {
            lock(&self.settings).common.signaling_port = port as u32;
            gst::info!(CAT, imp = self, "signaling and web page on port {port}");
        }
        *lock(&self.hub) = Some(hub);
        Ok(())
    }

    fn stop(&self) {
        let hub = lock(&self.hub).take();
        if let Some(hub) = hub {
            hub.stop();
        }
        let all: Vec<Exposed> = lock(&self.receivers).drain(..).collect();
        for r in all {
            r.remove(self.obj().upcast_ref());
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WebRtcSrc {
    const NAME: &'static str = "GstRemoteMediaWebRtcSrc";
    type Type = super::RemoteMediaWebRtcSrc;
    type ParentType = gst::Bin;
}

impl ObjectImpl for WebRtcSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = CommonSettings::properties();
            props.push(
                glib::ParamSpecBoolean::builder("decode")
                    .nick("Decode")
                    .blurb("Decode received media (false: pads carry the encoded stream)")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Jitter buffer depth per received track, in ms (loopback and LAN peers do with less)")
                    .maximum(5000)
                    .default_value(DEFAULT_LATENCY_MS)
                    .mutable_ready()
                    .build(),
            );
            props
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> =
            LazyLock::new(action_signals::<WebRtcSrc>);
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let hub = self.hub();
        if s.common.set_live(pspec.name(), value, hub.as_ref()) {
            return;
        }
        match pspec.name() {
            "decode" => s.decode = value.get().unwrap_or(true),
            "latency" => s.latency_ms = value.get().unwrap_or(DEFAULT_LATENCY_MS),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "decode" => s.decode.to_value(),
            "latency" => s.latency_ms.to_value(),
            name => s
                .common
                .get(name)
                .unwrap_or_else(|| pspec.default_value().clone()),
        }
    }
}

impl GstObjectImpl for WebRtcSrc {}

impl ElementImpl for WebRtcSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RemoteMedia WebRTC source",
                "Source/Network/WebRTC",
                "Receives audio and video from WebRTC peers, with embedded JSON-RPC signaling and a web page",
                "RemoteMedia for GStreamer developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            ["audio_%u", "video_%u"]
                .into_iter()
                .map(|name| {
                    gst::PadTemplate::new(
                        name,
                        gst::PadDirection::Src,
                        gst::PadPresence::Sometimes,
                        &gst::Caps::new_any(),
                    )
                    .unwrap()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        if transition == gst::StateChange::NullToReady
            && let Err(failure) = self.start()
        {
            failure.post(&*self.obj());
            return Err(gst::StateChangeError);
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            self.stop();
        }
        // A live source: nothing to preroll until peers send media.
        Ok(crate::live::no_preroll(transition, result))
    }
}

impl BinImpl for WebRtcSrc {}
