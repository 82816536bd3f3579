//! Conversions between GStreamer buffers and caps and RemoteMedia data, without copying
//! samples in either direction.

use std::any::Any;
use std::sync::Arc;

use remotemedia_runtime::data::{Bytes, PixelFormat, VideoFrame};
use remotemedia_runtime::{AudioFrame, AudioSamples, RuntimeData, SampleStorage, StreamFormat};

/// A mapped input buffer lent to the graph as f32 samples.
struct BufferSamples {
    mapped: gst::MappedBuffer<gst::buffer::Readable>,
}

impl SampleStorage for BufferSamples {
    fn samples(&self) -> &[f32] {
        // Checked aligned and sized when wrapped.
        bytemuck::cast_slice(self.mapped.as_slice())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Why caps or an input buffer cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("empty caps")]
    EmptyCaps,
    #[error("{0} is not audio/x-raw, video/x-raw or text/x-raw")]
    MediaType(String),
    #[error("{field}: {source}")]
    Field {
        field: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("audio format {0} is not F32LE (add audioconvert)")]
    AudioFormat(String),
    #[error("audio layout must be interleaved")]
    AudioLayout,
    #[error("video format {0} is not I420, NV12, RGB or RGBA")]
    VideoFormat(String),
    #[error("cannot map the input buffer")]
    Map,
    #[error("text buffer is not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
}

/// A caps field that is missing or of the wrong type.
fn field<E: std::error::Error + Send + Sync + 'static>(
    field: &'static str,
) -> impl FnOnce(E) -> ConvertError {
    move |e| ConvertError::Field {
        field,
        source: Box::new(e),
    }
}

/// What the sink pad negotiated.
#[derive(Clone, Debug)]
pub enum InputCaps {
    Audio {
        rate: u32,
        channels: u16,
    },
    Video {
        format: PixelFormat,
        width: u32,
        height: u32,
    },
    Text,
}

impl InputCaps {
    pub fn parse(caps: &gst::CapsRef) -> Result<Self, ConvertError> {
        let s = caps.structure(0).ok_or(ConvertError::EmptyCaps)?;
        match s.name().as_str() {
            "audio/x-raw" => {
                let format = s.get::<&str>("format").map_err(field("format"))?;
                if format != "F32LE" {
                    return Err(ConvertError::AudioFormat(format.to_owned()));
                }
                if s.get::<&str>("layout").unwrap_or("interleaved") != "interleaved" {
                    return Err(ConvertError::AudioLayout);
                }
                let rate = s.get::<i32>("rate").map_err(field("rate"))?;
                let channels = s.get::<i32>("channels").map_err(field("channels"))?;
                Ok(Self::Audio {
                    rate: rate as u32,
                    channels: channels as u16,
                })
            }
            "video/x-raw" => {
                let format = match s.get::<&str>("format").map_err(field("format"))? {
                    "I420" => PixelFormat::I420,
                    "NV12" => PixelFormat::Nv12,
                    "RGB" => PixelFormat::Rgb,
                    "RGBA" => PixelFormat::Rgba,
                    other => return Err(ConvertError::VideoFormat(other.to_owned())),
                };
                let width = s.get::<i32>("width").map_err(field("width"))? as u32;
                let height = s.get::<i32>("height").map_err(field("height"))? as u32;
                Ok(Self::Video {
                    format,
                    width,
                    height,
                })
            }
            "text/x-raw" => Ok(Self::Text),
            other => Err(ConvertError::MediaType(other.to_owned())),
        }
    }

    pub fn stream_format(&self) -> StreamFormat {
        match self {
            Self::Audio { rate, channels } => StreamFormat::Audio {
                rate: *rate,
                channels: *channels,
            },
            Self::Video { .. } => StreamFormat::Video,
            Self::Text => StreamFormat::Text,
        }
    }

    /// Wraps a buffer as RuntimeData. Audio samples stay in the buffer's memory.
    pub fn to_data(&self, buffer: gst::Buffer) -> Result<RuntimeData, ConvertError> {
        let pts = buffer.pts().map(gst::ClockTime::nseconds);
        match self {
            Self::Audio { rate, channels } => {
                let duration = buffer.duration().map(gst::ClockTime::nseconds);
                let mapped = buffer
                    .into_mapped_buffer_readable()
                    .map_err(|_| ConvertError::Map)?;
                let samples = if bytemuck::try_cast_slice::<u8, f32>(mapped.as_slice()).is_ok() {
                    AudioSamples::from_storage(Arc::new(BufferSamples { mapped }))
                } else {
                    // Unaligned or ragged memory: the one case that needs a copy.
                    let bytes = mapped.as_slice();
                    let whole = bytes.len() / 4 * 4;
                    AudioSamples::from_vec(
                        bytes[..whole]
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    )
                };
                let mut frame = AudioFrame::new(samples, *rate, *channels);
                frame.pts = pts;
                frame.duration = duration;
                Ok(RuntimeData::Audio(frame))
            }
            Self::Video {
                format,
                width,
                height,
            } => {
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let mapped = buffer
                    .into_mapped_buffer_readable()
                    .map_err(|_| ConvertError::Map)?;
                Ok(RuntimeData::Video(VideoFrame {
                    data: Bytes::from_owner(mapped),
                    width: *width,
                    height: *height,
                    format: *format,
                    stream_id: None,
                    pts,
                    keyframe,
                }))
            }
            Self::Text => {
                let map = buffer.map_readable().map_err(|_| ConvertError::Map)?;
                let text = std::str::from_utf8(map.as_slice())?;
                Ok(RuntimeData::Text(text.to_string()))
            }
        }
    }
}

/// Caps for what the graph delivers; `None` keeps the input caps.
pub fn output_caps(format: &StreamFormat) -> Option<gst::Caps> {
    match format {
        StreamFormat::Audio { rate, channels } => Some(
            gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved")
                .field("rate", *rate as i32)
                .field("channels", i32::from(*channels))
                .build(),
        ),
        StreamFormat::Text => Some(text_caps()),
        StreamFormat::Json => Some(json_caps()),
        StreamFormat::Video | StreamFormat::Any => None,
    }
}

pub fn text_caps() -> gst::Caps {
    gst::Caps::builder("text/x-raw")
        .field("format", "utf8")
        .build()
}

pub fn json_caps() -> gst::Caps {
    gst::Caps::builder("application/x-json").build()
}

/// Audio samples as a buffer: the input buffer itself (or a region of it) when the samples
/// are still its memory, otherwise the shared samples wrapped without a copy.
pub fn audio_buffer(frame: &AudioFrame) -> gst::Buffer {
    let samples = &frame.samples;
    let from_input = samples
        .storage()
        .as_any()
        .downcast_ref::<BufferSamples>()
        .map(|b| b.mapped.buffer_owned());
    let mut buffer = match from_input {
        Some(input) if samples.is_whole() => input,
        Some(input) => {
            let base = input
                .map_readable()
                .map(|m| m.as_ptr() as usize)
                .unwrap_or_default();
            let offset = samples.as_ptr() as usize - base;
            input
                .copy_region(
                    gst::BufferCopyFlags::MEMORY,
                    offset..offset + samples.len() * 4,
                )
                .unwrap_or_else(|_| gst::Buffer::from_slice(samples.clone()))
        }
        None => gst::Buffer::from_slice(samples.clone()),
    };
    let pts = frame.pts.map(gst::ClockTime::from_nseconds);
    let duration = frame.duration.map(gst::ClockTime::from_nseconds);
    if buffer.pts() != pts || buffer.duration() != duration {
        let b = buffer.make_mut();
        b.set_pts(pts);
        b.set_duration(duration);
    }
    buffer
}

/// A video frame's bytes as a buffer, wrapped without a copy.
pub fn video_buffer(frame: &VideoFrame) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_slice(frame.data.clone());
    let b = buffer.make_mut();
    b.set_pts(frame.pts.map(gst::ClockTime::from_nseconds));
    if !frame.keyframe {
        b.set_flags(gst::BufferFlags::DELTA_UNIT);
    }
    buffer
}
