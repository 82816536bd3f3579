//! One outgoing stream: `capsfilter ! queue`, then, once caps are known, either
//! `convert ! encode ! pay` (raw input) or `pay` (encoded input), ending in an appsink whose
//! RTP packets go to every peer of the stream: encoding happens once per stream whatever the
//! number of peers (the server has one stream per peer). Each peer has its own webrtc-rs track,
//! packet queue and writer task, so a peer whose writes stall (a connection being torn down, a
//! slow link) loses its own packets and delays nobody else's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::elements::{self, BuildError, MissingElement, make};
use remotemedia_runtime::ErrorCode;
use remotemedia_runtime::sync::lock;
use tokio::sync::mpsc;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::util::Unmarshal;

use crate::webrtc::RUNTIME;
use crate::webrtc::hub::SetupError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, glib::Enum, Default)]
#[enum_type(name = "GstRemoteMediaVideoCodec")]
pub enum VideoCodec {
    #[enum_value(name = "VP8", nick = "vp8")]
    Vp8,
    /// RemoteMedia's default; it encodes 720p30 in real time on 2 cores with room to spare
    /// (BENCHMARKS.md, "video codec").
    #[default]
    #[enum_value(name = "VP9", nick = "vp9")]
    Vp9,
    #[enum_value(name = "H.264 (constrained baseline)", nick = "h264")]
    H264,
}

impl VideoCodec {
    fn mime(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => MIME_TYPE_VP8,
            VideoCodec::Vp9 => MIME_TYPE_VP9,
            VideoCodec::H264 => MIME_TYPE_H264,
        }
    }

    /// The codec's encoding name in SDP (`a=rtpmap:96 VP9/90000`).
    fn sdp_name(self) -> &'static str {
        self.mime().rsplit('/').next().unwrap_or_default()
    }

    /// The caps of this codec's encoded stream, as accepted on a `video_%u` pad.
    pub fn caps_name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/x-vp8",
            VideoCodec::Vp9 => "video/x-vp9",
            VideoCodec::H264 => "video/x-h264",
        }
    }
}

/// Encoder settings fixed when a stream is created; the sink's and the server's properties.
#[derive(Clone, Copy, Debug)]
pub struct EncodeSettings {
    pub video_codec: VideoCodec,
    pub video_bitrate_kbps: u32,
    pub audio_bitrate: i32,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        Self {
            video_codec: VideoCodec::default(),
            video_bitrate_kbps: 2000,
            audio_bitrate: 64000,
        }
    }
}

impl EncodeSettings {
    pub fn properties() -> Vec<glib::ParamSpec> {
        // The defaults are Default's own, so the two cannot drift apart.
        let d = Self::default();
        vec![
            glib::ParamSpecEnum::builder_with_default("video-codec", d.video_codec)
                .nick("Video codec")
                .blurb("Codec raw video is encoded to (encoded video input must be in it)")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("video-bitrate")
                .nick("Video bitrate")
                .blurb("Target video bitrate in kbit/s")
                .minimum(50)
                .maximum(50_000)
                .default_value(d.video_bitrate_kbps)
                .mutable_ready()
                .build(),
            glib::ParamSpecInt::builder("audio-bitrate")
                .nick("Audio bitrate")
                .blurb("Opus bitrate in bit/s")
                .minimum(6000)
                .maximum(510_000)
                .default_value(d.audio_bitrate)
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets one of `properties()`; false when `name` is not one of them.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "video-codec" => self.video_codec = value.get().unwrap_or_default(),
            "video-bitrate" => self.video_bitrate_kbps = value.get().unwrap_or(2000),
            "audio-bitrate" => self.audio_bitrate = value.get().unwrap_or(64000),
            _ => return false,
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "video-codec" => self.video_codec.to_value(),
            "video-bitrate" => self.video_bitrate_kbps.to_value(),
            "audio-bitrate" => self.audio_bitrate.to_value(),
            _ => return None,
        })
    }
}

/// Why a stream could not be built or sent to a peer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The video stream's codec is not among those the peer's offer takes.
    #[error(
        "the peer offers no {wanted} video (it offers {}): set the sink's video-codec to one of \
         those",
        offered.join(", ")
    )]
    CodecNotOffered {
        wanted: &'static str,
        offered: Vec<String>,
    },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot add track: {0}")]
    AddTrack(#[source] webrtc::Error),
}

impl SendError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Build(e) => e.code(),
            Self::CodecNotOffered { .. } | Self::AddTrack(_) => ErrorCode::Peer,
        }
    }
}

impl From<MissingElement> for SendError {
    fn from(e: MissingElement) -> Self {
        Self::Build(e.into())
    }
}

impl From<SendError> for SetupError {
    fn from(e: SendError) -> Self {
        SetupError::new(e.code(), e)
    }
}

/// Packets waiting for a peer's track writer; enough for a key frame burst at 720p.
const RTP_QUEUE: usize = 512;
/// Longest a packet may wait for a peer's track writer.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// Key frame requests closer together than this are merged (browsers send PLIs in bursts).
const KEY_UNIT_INTERVAL: Duration = Duration::from_millis(300);

pub struct Stream {
    pub kind: Kind,
    /// What each peer's track of this stream is made with.
    codec: RTCRtpCodecCapability,
    name: String,
    settings: EncodeSettings,
    queue: gst::Element,
    appsink: gst_app::AppSink,
    built: AtomicBool,
    last_key_unit: Mutex<Option<Instant>>,
    /// The packet queue of each peer the stream goes to; a peer's writer task ends when its
    /// queue leaves this list (its sender stopped).
    peers: Mutex<Vec<PeerQueue>>,
    next_peer: AtomicU64,
}

struct PeerQueue {
    id: u64,
    packets: mpsc::Sender<Packet>,
}

/// Whether an RTCP packet reports on received RTP (a receiver or sender report with blocks).
fn reports_reception(packet: &dyn std::any::Any) -> bool {
    packet
        .downcast_ref::<ReceiverReport>()
        .is_some_and(|r| !r.reports.is_empty())
        || packet
            .downcast_ref::<SenderReport>()
            .is_some_and(|r| !r.reports.is_empty())
}

/// The video codecs an SDP offers (encoding names, upper case, in order; retransmission and
/// error-correction payloads left out).
fn offered_video_codecs(sdp: &str) -> Vec<String> {
    let mut in_video = false;
    let mut codecs: Vec<String> = Vec::new();
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video");
        } else if in_video && let Some(map) = line.strip_prefix("a=rtpmap:") {
            let name = map
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.split('/').next())
                .unwrap_or_default()
                .to_ascii_uppercase();
            if !["RTX", "RED", "ULPFEC", "FLEXFEC-03", ""].contains(&name.as_str())
                && !codecs.contains(&name)
            {
                codecs.push(name);
            }
        }
    }
    codecs
}

impl Stream {
    /// Whether a peer's offer can take this stream: a video stream's codec must be among the
    /// offer's video codecs, or the call would carry no video and say nothing.
    pub fn check_offer(&self, offer: &str) -> Result<(), SendError> {
        if self.kind != Kind::Video {
            return Ok(());
        }
        let wanted = self.settings.video_codec.sdp_name();
        let offered = offered_video_codecs(offer);
        if offered.is_empty() || offered.iter().any(|c| c.eq_ignore_ascii_case(wanted)) {
            return Ok(());
        }
        Err(SendError::CodecNotOffered { wanted, offered })
    }

    /// Creates the fixed head of the chain inside `bin` and returns the pad to ghost.
    pub fn new(
        bin: &gst::Bin,
        kind: Kind,
        name: &str,
        settings: EncodeSettings,
    ) -> Result<(Arc<Self>, gst::Pad), SendError> {
        let (mime, accepted) = match kind {
            Kind::Audio => (MIME_TYPE_OPUS, ["audio/x-raw", "audio/x-opus"]),
            Kind::Video => (
                settings.video_codec.mime(),
                ["video/x-raw", settings.video_codec.caps_name()],
            ),
        };
        let accepted: gst::Caps = accepted
            .into_iter()
            .map(gst::Structure::new_empty)
            .collect();
        let (clock_rate, channels, fmtp) = match kind {
            Kind::Audio => (48000, 2, "minptime=10;useinbandfec=1".to_owned()),
            Kind::Video if settings.video_codec == VideoCodec::H264 => (
                90000,
                0,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned(),
            ),
            Kind::Video => (90000, 0, String::new()),
        };
        let codec = RTCRtpCodecCapability {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp,
            rtcp_feedback: vec![],
        };

        let filter = gst::ElementFactory::make("capsfilter")
            .name(format!("{name}-filter"))
            .property("caps", &accepted)
            .build()
            .map_err(|e| MissingElement::new("capsfilter", e))?;
        let queue = gst::ElementFactory::make("queue")
            .name(format!("{name}-queue"))
            .property("max-size-time", 200_000_000u64)
            .build()
            .map_err(|e| MissingElement::new("queue", e))?;
        let appsink = gst_app::AppSink::builder()
            .name(format!("{name}-rtp"))
            .build();
        elements::add(bin, &[&filter, &queue])?;
        elements::link(&[&filter, &queue])?;

        let stream = Arc::new(Self {
            kind,
            codec,
            name: name.to_owned(),
            settings,
            queue: queue.clone(),
            appsink,
            built: AtomicBool::new(false),
            last_key_unit: Mutex::new(None),
            peers: Mutex::new(Vec::new()),
            next_peer: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&stream);
        let bin_weak = bin.downgrade();
        queue.static_pad("sink").unwrap().add_probe(
            gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let (Some(stream), Some(bin)) = (weak.upgrade(), bin_weak.upgrade()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let Some(gst::EventView::Caps(c)) = info.event().map(|e| e.view()) else {
                    return gst::PadProbeReturn::Ok;
                };
                match stream.build_tail(&bin, c.caps()) {
                    Ok(()) => gst::PadProbeReturn::Ok,
                    Err(e) => {
                        gst::element_error!(bin, gst::StreamError::Format, ["{}", e]);
                        gst::PadProbeReturn::Handled
                    }
                }
            },
        );
        let pad = filter.static_pad("sink").unwrap();
        Ok((stream, pad))
    }

    /// Builds the encoder/payloader tail for the first caps; later caps of the same kind
    /// (raw or encoded) are handled by the elements themselves.
    fn build_tail(&self, bin: &gst::Bin, caps: &gst::CapsRef) -> Result<(), BuildError> {
        let raw = caps
            .structure(0)
            .is_some_and(|s| s.name().ends_with("x-raw"));
        if self.built.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut chain: Vec<gst::Element> = Vec::new();
        match (self.kind, raw) {
            (Kind::Audio, true) => {
                chain.push(make("audioconvert")?);
                chain.push(make("audioresample")?);
                let enc = make("opusenc")?;
                enc.set_property("bitrate", self.settings.audio_bitrate);
                enc.set_property_from_str("frame-size", "20");
                chain.push(enc);
            }
            (Kind::Video, true) => {
                chain.push(make("videoconvert")?);
                chain.extend(self.video_encoder()?);
            }
            _ => {}
        }
        let pay = match self.kind {
            Kind::Audio => make("rtpopuspay")?,
            Kind::Video => {
                let pay = make(match self.settings.video_codec {
                    VideoCodec::Vp8 => "rtpvp8pay",
                    VideoCodec::Vp9 => "rtpvp9pay",
                    VideoCodec::H264 => "rtph264pay",
                })?;
                if self.settings.video_codec == VideoCodec::H264 {
                    pay.set_property("config-interval", -1i32);
                    pay.set_property_from_str("aggregate-mode", "zero-latency");
                } else {
                    pay.set_property_from_str("picture-id-mode", "15-bit");
                }
                pay
            }
        };
        pay.set_property("mtu", 1200u32);
        chain.push(pay);
        chain.push(self.appsink.clone().upcast());

        // Live input is sent the moment it is encoded; anything else is paced by the clock.
        let mut query = gst::query::Latency::new();
        let live = self
            .queue
            .static_pad("sink")
            .is_some_and(|sink| sink.peer_query(&mut query) && query.result().0);
        self.appsink.set_sync(!live);
        elements::add(bin, &chain)?;
        let linked: Vec<&gst::Element> = std::iter::once(&self.queue).chain(&chain).collect();
        elements::link(&linked)?;
        chain.iter().try_for_each(elements::start)
    }

    fn video_encoder(&self) -> Result<Vec<gst::Element>, MissingElement> {
        let kbps = self.settings.video_bitrate_kbps;
        Ok(match self.settings.video_codec {
            VideoCodec::Vp8 | VideoCodec::Vp9 => {
                let enc = make(if self.settings.video_codec == VideoCodec::Vp8 {
                    "vp8enc"
                } else {
                    "vp9enc"
                })?;
                enc.set_property("deadline", 1i64);
                enc.set_property("cpu-used", 8i32);
                enc.set_property("lag-in-frames", 0i32);
                enc.set_property_from_str("end-usage", "cbr");
                enc.set_property("target-bitrate", (kbps as i32).saturating_mul(1000));
                enc.set_property("keyframe-max-dist", 600i32);
                enc.set_property("threads", 2i32);
                enc.set_property_from_str("error-resilient", "default");
                vec![enc]
            }
            VideoCodec::H264 => {
                let enc = make("x264enc")?;
                enc.set_property_from_str("tune", "zerolatency");
                enc.set_property_from_str("speed-preset", "ultrafast");
                enc.set_property("bitrate", kbps);
                enc.set_property("key-int-max", 600u32);
                let profile = gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-h264")
                            .field("profile", "constrained-baseline")
                            .build(),
                    )
                    .build()
                    .map_err(|e| MissingElement::new("capsfilter", e))?;
                vec![enc, profile]
            }
        })
    }

    /// Starts moving this stream's RTP from the appsink to its peers' queues.
    pub fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(stream) = weak.upgrade() else {
                        return Err(gst::FlowError::Flushing);
                    };
                    let Some(buffer) = sample.buffer_owned() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(mapped) = buffer.into_mapped_buffer_readable() else {
                        return Err(gst::FlowError::Error);
                    };
                    // The payload stays in the GStreamer buffer: no copy on the way out, and
                    // each peer's packet shares it.
                    let mut bytes = bytes::Bytes::from_owner(mapped);
                    let Ok(packet) = Packet::unmarshal(&mut bytes) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    stream.send(&packet);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }

    /// Queues `packet` for every peer. Bounded, and never blocking: a peer whose writer stalls
    /// loses packets (its NACK/PLI recover) instead of stalling the encoder and the others.
    fn send(&self, packet: &Packet) {
        let peers = lock(&self.peers);
        for peer in peers.iter() {
            let _ = peer.packets.try_send(packet.clone());
        }
    }

    /// Sends this stream on `pc` (on a transceiver of `direction`, or on one that a remote
    /// offer's media section takes), and turns the peer's PLI and FIR into key frame requests.
    pub async fn add_to(
        self: &Arc<Self>,
        pc: &RTCPeerConnection,
        direction: Option<RTCRtpTransceiverDirection>,
    ) -> Result<(), SendError> {
        let track = Arc::new(TrackLocalStaticRTP::new(
            self.codec.clone(),
            self.name.clone(),
            "remotemedia".to_owned(),
        ));
        let sender = if let Some(direction) = direction {
            let track = track.clone();
            let init = RTCRtpTransceiverInit {
                direction,
                send_encodings: vec![],
            };
            pc.add_transceiver_from_track(track, Some(init))
                .await
                .map_err(SendError::AddTrack)?
                .sender()
                .await
        } else {
            pc.add_track(track.clone())
                .await
                .map_err(SendError::AddTrack)?
        };
        let (packets, mut queued) = mpsc::channel::<Packet>(RTP_QUEUE);
        let id = self.next_peer.fetch_add(1, Ordering::Relaxed);
        lock(&self.peers).push(PeerQueue { id, packets });
        RUNTIME.spawn(async move {
            while let Some(packet) = queued.recv().await {
                // A write that hangs on a connection being torn down is given up; only this
                // peer's packets wait for it.
                let _ = tokio::time::timeout(WRITE_TIMEOUT, track.write_rtp(&packet)).await;
            }
        });
        // Reading RTCP keeps the interceptors going; PLI and FIR ask for a key frame.
        let weak = Arc::downgrade(self);
        RUNTIME.spawn(async move {
            let (mut first, mut heard) = (true, false);
            while let Ok((packets, _)) = sender.read_rtcp().await {
                let Some(stream) = weak.upgrade() else { break };
                // The key frame asked for when the peer connected may have gone out before
                // the sender was bound to it, to nobody; a decoder that missed it waits for
                // the next periodic one (20 s) unless it asks, and not every peer asks. So
                // ask again, unmerged: at the first RTCP, and at the first report that the
                // peer receives our packets (then the key frame surely reaches it).
                let now_heard = !heard && packets.iter().any(|p| reports_reception(p.as_any()));
                heard |= now_heard;
                if std::mem::take(&mut first) || now_heard {
                    stream.force_key_unit();
                } else if packets.iter().any(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                }) {
                    stream.request_key_unit();
                }
            }
            // The sender stopped (the peer's connection closed): its queue and writer go.
            if let Some(stream) = weak.upgrade() {
                lock(&stream.peers).retain(|p| p.id != id);
            }
        });
        Ok(())
    }

    /// Asks the encoder upstream for a key frame (new peer, PLI or FIR); requests closer
    /// together than `KEY_UNIT_INTERVAL` are merged.
    pub fn request_key_unit(&self) {
        {
            let mut last = lock(&self.last_key_unit);
            if last.is_some_and(|t| t.elapsed() < KEY_UNIT_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.force_key_unit();
    }

    /// Asks the encoder upstream for a key frame now.
    fn force_key_unit(&self) {
        if self.kind != Kind::Video {
            return;
        }
        *lock(&self.last_key_unit) = Some(Instant::now());
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self.appsink.static_pad("sink") {
            pad.push_event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offers_video_codecs_are_read_from_its_video_section_only() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\na=rtpmap:96 VP8/90000\r\n\
                     a=rtpmap:97 rtx/90000\r\na=rtpmap:98 H264/90000\r\n";
        assert_eq!(offered_video_codecs(offer), vec!["VP8", "H264"]);
        assert!(offered_video_codecs("v=0\r\nm=audio 9 RTP 0\r\n").is_empty());
        assert_eq!(VideoCodec::Vp9.sdp_name(), "VP9");
        assert_eq!(VideoCodec::H264.sdp_name(), "H264");
    }
}
