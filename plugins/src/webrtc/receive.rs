//! One received track inside a bin: `appsrc ! rtpjitterbuffer ! depay [! decode ! convert]`.
//! The source exposes its end on a pad; the server links it into the peer's manifest run.

use std::sync::Arc;

use gst::prelude::*;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;
use webrtc::util::Marshal;

/// Received packets held before the oldest is dropped (a stalled downstream must not grow
/// memory or block the network task).
const MAX_QUEUED_PACKETS: u64 = 400;

pub struct Receiver {
    /// The end of the chain (raw audio/video when decoding).
    pub src: gst::Pad,
    appsrc: gst_app::AppSrc,
    elements: Vec<gst::Element>,
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element '{factory}' is missing (see README setup)"))
}

/// RTP caps, depayloader and decoder for a negotiated codec.
fn codec_elements(mime: &str) -> Result<(&'static str, &'static str, &'static str), String> {
    Ok(match mime.to_ascii_lowercase().as_str() {
        "audio/opus" => ("OPUS", "rtpopusdepay", "opusdec"),
        "video/vp8" => ("VP8", "rtpvp8depay", "vp8dec"),
        "video/vp9" => ("VP9", "rtpvp9depay", "vp9dec"),
        "video/h264" => ("H264", "rtph264depay", "avdec_h264"),
        other => return Err(format!("no depayloader for the negotiated codec {other}")),
    })
}

impl Receiver {
    /// Builds the chain for `track` in `bin`.
    pub fn new(bin: &gst::Bin, track: &TrackRemote, decode: bool) -> Result<Self, String> {
        let codec = track.codec();
        let (encoding, depay, dec) = codec_elements(&codec.capability.mime_type)?;
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
        let appsrc = gst_app::AppSrc::builder()
            .caps(&caps)
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_buffers(MAX_QUEUED_PACKETS)
            .leaky_type(gst_app::AppLeakyType::Upstream)
            .build();
        let jitter = make("rtpjitterbuffer")?;
        jitter.set_property("latency", 50u32);
        jitter.set_property("drop-on-latency", true);
        let mut elements = vec![appsrc.clone().upcast(), jitter, make(depay)?];
        if decode {
            elements.push(make(dec)?);
            elements.push(make(if media == "audio" {
                "audioconvert"
            } else {
                "videoconvert"
            })?);
        }
        bin.add_many(&elements).map_err(|e| e.to_string())?;
        gst::Element::link_many(&elements).map_err(|e| format!("cannot link {media}: {e}"))?;
        let src = elements
            .last()
            .and_then(|e| e.static_pad("src"))
            .ok_or("the chain has no src pad")?;
        Ok(Self {
            src,
            appsrc,
            elements,
        })
    }

    /// Starts the elements and copies the track's RTP into the chain until it ends.
    pub fn start(&self, track: Arc<TrackRemote>) -> Result<(), String> {
        for e in &self.elements {
            e.sync_state_with_parent().map_err(|e| e.to_string())?;
        }
        let appsrc = self.appsrc.clone();
        crate::webrtc::RUNTIME.spawn(async move {
            while let Ok((packet, _)) = track.read_rtp().await {
                let Ok(bytes) = packet.marshal() else {
                    continue;
                };
                if appsrc.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    /// Takes the chain out of `bin`.
    pub fn remove(self, bin: &gst::Bin) {
        for e in &self.elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = bin.remove_many(&self.elements);
    }
}
