//! The element: request pads and encoder settings; peers are handled by the shared
//! [`PeerHub`], with a role that adds the shared tracks to every new connection.

use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use remotemedia_runtime::sync::lock;
use serde_json::json;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use super::results::Forwarded;
use crate::failure::Failure;
use crate::pipeline::result_meta;
use crate::webrtc::channel::Payload;
use crate::webrtc::door::Door;
use crate::webrtc::hub::{BoxFuture, PeerHub, Role, SetupError};
use crate::webrtc::messages;
use crate::webrtc::send::{EncodeSettings, Kind, Stream};
use crate::webrtc::settings::{CommonSettings, HubOwner, action_signals};
use crate::webrtc::whip_client::{WhipClient, WhipTarget};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "remotemediawebrtcsink",
        gst::DebugColorFlags::empty(),
        Some("RemoteMedia WebRTC mesh sink"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    encode: EncodeSettings,
    whip_url: String,
    /// Checked at NULL->READY, where a refusal reaches the bus.
    audio_codec: String,
}

type Streams = Arc<Mutex<Vec<(gst::GhostPad, Arc<Stream>)>>>;

impl Default for Settings {
    fn default() -> Self {
        Self {
            common: CommonSettings::default(),
            encode: EncodeSettings::default(),
            whip_url: String::new(),
            audio_codec: DEFAULT_AUDIO_CODEC.into(),
        }
    }
}

const DEFAULT_AUDIO_CODEC: &str = "opus";

#[derive(Default)]
pub struct WebRtcSink {
    settings: Mutex<Settings>,
    streams: Streams,
    hub: Mutex<Option<Arc<PeerHub>>>,
    whip: Mutex<Option<WhipClient>>,
    /// Results sent to the peers lately, so each goes once (results.rs).
    forwarded: Mutex<Forwarded>,
}

/// Every peer gets the same tracks; its RTCP asks for key frames.
struct SinkRole {
    streams: Streams,
}

impl SinkRole {
    fn streams(&self) -> Vec<Arc<Stream>> {
        lock(&self.streams).iter().map(|(_, s)| s.clone()).collect()
    }
}

impl Role for SinkRole {
    fn setup<'a>(
        &'a self,
        _peer_id: &'a str,
        pc: &'a Arc<RTCPeerConnection>,
        offer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SetupError>> {
        // A sink only sends, whichever side offers.
        let direction = offer
            .is_none()
            .then_some(RTCRtpTransceiverDirection::Sendonly);
        Box::pin(async move {
            let streams = self.streams();
            if let Some(offer) = offer {
                for stream in &streams {
                    stream.check_offer(offer)?;
                }
            }
            for stream in streams {
                stream.add_to(pc, direction).await?;
            }
            Ok(())
        })
    }

    fn connected(&self, _peer_id: &str) {
        for s in self.streams() {
            s.request_key_unit();
        }
    }
}

impl HubOwner for WebRtcSink {
    fn hub(&self) -> Option<Arc<PeerHub>> {
        lock(&self.hub).clone()
    }
}

impl WebRtcSink {
    fn start(&self) -> Result<(), Failure> {
        let settings = lock(&self.settings).clone();
        if settings.audio_codec != DEFAULT_AUDIO_CODEC {
            return Err(Failure::config(format!(
                "audio-codec '{}' is not supported; use opus",
                settings.audio_codec
            )));
        }
        if !settings.whip_url.is_empty() {
            return self.start_whip(settings);
        }
        let config = settings.common.hub_config(
            "remotemediawebrtcsink",
            json!({"role": "sink", "audio": true, "video": true, "data": true}),
            Door::Whep,
        );
        let role = Arc::new(SinkRole {
            streams: self.streams.clone(),
        });
        let element: gst::Element = self.obj().clone().upcast();
        let hub = PeerHub::start_blocking(&element, config, role)?;
        if let Some(port) = hub.port() {
            lock(&self.settings).common.signaling_port = port as u32;
            gst::info!(CAT, imp = self, "signaling and web page on port {port}");
        }
        *lock(&self.hub) = Some(hub);
        let streams: Vec<Arc<Stream>> =
            lock(&self.streams).iter().map(|(_, s)| s.clone()).collect();
        for stream in &streams {
            stream.start();
        }
        Ok(())
    }

    /// Publishes the streams to a WHIP server instead of serving peers on signaling.
    fn start_whip(&self, settings: Settings) -> Result<(), Failure> {
        let url = settings.whip_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::config(format!(
                "whip-url '{url}' must start with http:// or https://"
            )));
        }
        let ice = settings.common.ice();
        ice.validate()?;
        let streams: Vec<Arc<Stream>> =
            lock(&self.streams).iter().map(|(_, s)| s.clone()).collect();
        for stream in &streams {
            stream.start();
        }
        let token = Some(settings.common.auth_token).filter(|t| !t.is_empty());
        let target = WhipTarget {
            url,
            token,
            ice,
            backoff: Default::default(),
        };
        let element = self.obj().upcast_ref::<gst::Element>().downgrade();
        *lock(&self.whip) = Some(WhipClient::start(element, target, streams));
        Ok(())
    }

    /// Results of a `remotemediapipeline` upstream travel with the media, as
    /// `remotemedia-result` events and as `RemoteMediaResultMeta`s on the buffers; every peer
    /// gets each result once on its data channel, from whichever carrier comes first
    /// (results.rs). The events end here; the buffers go on to the encoders with their metas.
    fn forward_results(&self, pad: &gst::GhostPad) {
        let weak = self.obj().downgrade();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let Some(gst::EventView::CustomDownstream(e)) = info.event().map(|e| e.view()) else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(s) = e.structure().filter(|s| s.name() == "remotemedia-result") else {
                return gst::PadProbeReturn::Ok;
            };
            if let Some(obj) = weak.upgrade() {
                obj.imp().forward(s);
            }
            gst::PadProbeReturn::Handled
        });
        let weak = self.obj().downgrade();
        let buffers = gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST;
        pad.add_probe(buffers, move |_, info| {
            let Some(obj) = weak.upgrade() else {
                return gst::PadProbeReturn::Ok;
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => obj.imp().forward_metas(buffer),
                Some(gst::PadProbeData::BufferList(list)) => {
                    for buffer in list.iter() {
                        obj.imp().forward_metas(buffer);
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
    }

    fn forward_metas(&self, buffer: &gst::BufferRef) {
        for result in result_meta::results(buffer) {
            self.forward(&result);
        }
    }

    /// Sends a result to every peer, unless it went already.
    fn forward(&self, result: &gst::StructureRef) {
        if !lock(&self.forwarded).first_time(result) {
            return;
        }
        if let Some(hub) = self.hub() {
            hub.broadcast(&Payload::Text(messages::result_json(result)));
        }
    }

    fn stop(&self) {
        let hub = lock(&self.hub).take();
        if let Some(hub) = hub {
            hub.stop();
        }
        let whip = lock(&self.whip).take();
        if let Some(whip) = whip {
            whip.stop();
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
            let mut props = CommonSettings::properties();
            props.extend(EncodeSettings::properties());
            props.push(
                glib::ParamSpecString::builder("whip-url")
                    .nick("WHIP URL")
                    .blurb(
                        "Publish to this WHIP server (http:// or https://, auth-token as the \
                         bearer token) instead of serving peers on signaling; reconnects with \
                         backoff, DELETEs the session at stop",
                    )
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecString::builder("audio-codec")
                    .nick("Audio codec")
                    .blurb("Codec raw audio is encoded to (opus)")
                    .default_value(Some(DEFAULT_AUDIO_CODEC))
                    .mutable_ready()
                    .build(),
            );
            props
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> =
            LazyLock::new(action_signals::<WebRtcSink>);
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let hub = self.hub();
        if s.common.set_live(pspec.name(), value, hub.as_ref()) || s.encode.set(pspec.name(), value)
        {
            return;
        }
        match pspec.name() {
            "whip-url" => {
                s.whip_url = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
            }
            "audio-codec" => {
                s.audio_codec = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
            }
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "whip-url" => s.whip_url.to_value(),
            "audio-codec" => s.audio_codec.to_value(),
            name => s
                .common
                .get(name)
                .or_else(|| s.encode.get(name))
                .unwrap_or_else(|| pspec.default_value().clone()),
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
        let index = {
            let streams = lock(&self.streams);
            (0..)
                .find(|i| {
                    !streams
                        .iter()
                        .any(|(p, _)| p.name() == format!("{prefix}_{i}"))
                })
                .unwrap_or(0)
        };
        let name = format!("{prefix}_{index}");
        let settings = {
            let s = lock(&self.settings);
            s.encode
        };
        let (stream, target) = match Stream::new(self.obj().upcast_ref(), kind, &name, settings) {
            Ok(v) => v,
            Err(e) => {
                gst::element_imp_error!(self, gst::CoreError::Pad, ["{}", e]);
                return None;
            }
        };
        let ghost = gst::GhostPad::builder_from_template_with_target(templ, &target)
            .ok()?
            .name(name.as_str())
            .build();
        ghost.set_active(true).ok()?;
        self.forward_results(&ghost);
        if self.hub().is_some() {
            stream.start();
        }
        lock(&self.streams).push((ghost.clone(), stream));
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
            && let Err(failure) = self.start()
        {
            failure.post(&*self.obj());
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
