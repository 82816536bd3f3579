//! The receiving side of one peer: an `rtpbin` (a jitter buffer per track, and lip sync of the
//! peer's audio and video from their RTCP sender reports), fed by the webrtc-rs tracks, with
//! `depay [! decode ! convert]` after each of its sessions. The source exposes each chain's end
//! on a pad; the server links the first into the peer's manifest run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gst::prelude::*;

use crate::elements::{self, BuildError, MissingElement, make, tear_down};
use remotemedia_runtime::ErrorCode;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::track::track_remote::TrackRemote;
use webrtc::util::Marshal;

use super::RUNTIME;

/// Received packets held before the oldest is dropped (a stalled downstream must not grow
/// memory or block the network task).
const MAX_QUEUED_PACKETS: u64 = 400;
/// Jitter buffer depth in milliseconds, unless the element says otherwise.
pub const DEFAULT_LATENCY_MS: u32 = 50;

/// Why a peer's track could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("no depayloader for the negotiated codec {mime} (payload type {payload_type})")]
    UnsupportedCodec { mime: String, payload_type: u8 },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("rtpbin has no {0}")]
    NoRtpbinPad(String),
}

impl ReceiveError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedCodec { .. } => ErrorCode::Peer,
            Self::Build(e) => e.code(),
            Self::NoRtpbinPad(_) => ErrorCode::Internal,
        }
    }
}

impl From<MissingElement> for ReceiveError {
    fn from(e: MissingElement) -> Self {
        Self::Build(e.into())
    }
}

/// RTP caps, depayloader and decoder for a negotiated codec (by its lower-case MIME type).
fn codec_elements(mime: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match mime {
        "audio/opus" => ("OPUS", "rtpopusdepay", "opusdec"),
        "video/vp8" => ("VP8", "rtpvp8depay", "vp8dec"),
        "video/vp9" => ("VP9", "rtpvp9depay", "vp9dec"),
        "video/h264" => ("H264", "rtph264depay", "avdec_h264"),
        _ => return None,
    })
}

fn live_appsrc(caps: &gst::Caps) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .max_buffers(MAX_QUEUED_PACKETS)
        .leaky_type(gst_app::AppLeakyType::Upstream)
        .build()
}

/// One peer's rtpbin; each of its tracks is one RTP session of it.
pub struct PeerReceive {
    rtpbin: gst::Element,
    sessions: AtomicU32,
}

impl PeerReceive {
    pub fn new(bin: &gst::Bin, latency_ms: u32) -> Result<Self, BuildError> {
        let rtpbin = make("rtpbin")?;
        rtpbin.set_property("latency", latency_ms);
        rtpbin.set_property("drop-on-latency", true);
        elements::add(bin, &[&rtpbin])?;
        elements::start(&rtpbin)?;
        Ok(Self {
            rtpbin,
            sessions: AtomicU32::new(0),
        })
    }

    /// Builds the chain of `track` in `bin` as a new session of the rtpbin.
    pub fn add_track(
        &self,
        bin: &gst::Bin,
        track: &TrackRemote,
        decode: bool,
    ) -> Result<Receiver, ReceiveError> {
        let session = self.sessions.fetch_add(1, Ordering::Relaxed);
        let codec = track.codec();
        let mime = codec.capability.mime_type.to_ascii_lowercase();
        let (encoding, depay, dec) =
            codec_elements(&mime).ok_or_else(|| ReceiveError::UnsupportedCodec {
                mime: mime.clone(),
                payload_type: codec.payload_type,
            })?;
        let media = match track.kind() {
            RTPCodecType::Audio => "audio",
            _ => "video",
        };
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", encoding)
            .field("clock-rate", codec.capability.clock_rate as i32)
            .field("payload", codec.payload_type as i32)
            .build();
        let rtp = live_appsrc(&caps);
        let rtcp = live_appsrc(&gst::Caps::new_empty_simple("application/x-rtcp"));
        let mut chain = vec![make(depay)?];
        if decode {
            chain.push(make(dec)?);
            chain.push(make(if media == "audio" {
                "audioconvert"
            } else {
                "videoconvert"
            })?);
        }
        let mut owned: Vec<gst::Element> = vec![rtp.clone().upcast(), rtcp.clone().upcast()];
        owned.extend(chain.iter().cloned());
        elements::add(bin, &owned)?;
        elements::link(&chain)?;
        let link = |src: &gst_app::AppSrc, pad: String| -> Result<(), ReceiveError> {
            let sink = self
                .rtpbin
                .request_pad_simple(&pad)
                .ok_or(ReceiveError::NoRtpbinPad(pad))?;
            let src = elements::static_pad(src.upcast_ref(), "src")?;
            Ok(elements::link_pads(&src, &sink)?)
        };
        link(&rtp, format!("recv_rtp_sink_{session}"))?;
        link(&rtcp, format!("recv_rtcp_sink_{session}"))?;
        // The session's output appears with the first packet; it goes to the depayloader.
        let depay_sink = elements::static_pad(&chain[0], "sink")?;
        let prefix = format!("recv_rtp_src_{session}_");
        self.rtpbin.connect_pad_added(move |_, pad| {
            if pad.name().starts_with(&prefix) && !depay_sink.is_linked() {
                let _ = pad.link(&depay_sink);
            }
        });
        let last = chain.last().expect("the chain has a depayloader");
        let src = elements::static_pad(last, "src")?;
        Ok(Receiver {
            src,
            rtp,
            rtcp,
            elements: owned,
        })
    }

    /// Takes the rtpbin out of `bin` (after the peer's receivers).
    pub fn remove(&self, bin: &gst::Bin) {
        tear_down(Some(bin), std::slice::from_ref(&self.rtpbin));
    }
}

pub struct Receiver {
    /// The end of the chain (raw audio/video when decoding).
    pub src: gst::Pad,
    rtp: gst_app::AppSrc,
    rtcp: gst_app::AppSrc,
    elements: Vec<gst::Element>,
}

impl Receiver {
    /// Starts the elements and copies the track's RTP, and its RTCP (sender reports for lip
    /// sync), into the rtpbin until the track ends.
    pub fn start(
        &self,
        track: Arc<TrackRemote>,
        receiver: Arc<RTCRtpReceiver>,
    ) -> Result<(), BuildError> {
        self.elements.iter().try_for_each(elements::start)?;
        let rtp = self.rtp.clone();
        RUNTIME.spawn(async move {
            while let Ok((packet, _)) = track.read_rtp().await {
                let Ok(bytes) = packet.marshal() else {
                    continue;
                };
                if rtp.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                    break;
                }
            }
        });
        let rtcp = self.rtcp.clone();
        RUNTIME.spawn(async move {
            while let Ok((packets, _)) = receiver.read_rtcp().await {
                let Ok(bytes) = webrtc::rtcp::packet::marshal(&packets) else {
                    continue;
                };
                if rtcp.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    /// Takes the chain out of `bin`.
    pub fn remove(self, bin: &gst::Bin) {
        tear_down(Some(bin), &self.elements);
    }
}
