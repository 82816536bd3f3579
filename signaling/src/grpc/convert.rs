//! RuntimeData and peer records to and from their protobuf messages.

use std::sync::Arc;

use remotemedia_runtime::data::{ControlMessage, DType, PixelFormat, TensorData, VideoFrame};
use remotemedia_runtime::{AudioFrame, AudioSamples, Output, RuntimeData};
use serde_json::{Map, Value};

use super::pb;
use super::pb::data_buffer::Data;
use crate::protocol::{PeerInfo, RpcError};

/// Why a buffer cannot become RuntimeData; the text begins with the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum BadBuffer {
    /// The message that should carry a buffer has none.
    #[error("no data")]
    Absent,
    #[error("DataBuffer: no variant set (audio, video, text, json, binary, tensor, control)")]
    NoVariant,
    #[error("audio.samples: {bytes} bytes is not a whole number of f32 samples")]
    AudioSamples { bytes: usize },
    #[error(
        "audio: sample_rate {sample_rate} and channels {channels} must be positive (channels at \
         most 64)"
    )]
    AudioFormat { sample_rate: u32, channels: u32 },
    #[error("video.format: {0:?} is not one of I420, NV12, RGB, RGBA, ENCODED")]
    PixelFormat(String),
    #[error("json: not a JSON document: {0}")]
    Json(#[source] serde_json::Error),
    #[error("tensor.dtype: {0:?} is not one of f32, f64, i32, i64, u8")]
    TensorDtype(String),
    #[error("tensor: shape {shape:?} of {dtype} needs {needs} bytes, data has {has}")]
    TensorSize {
        shape: Vec<usize>,
        dtype: String,
        needs: usize,
        has: usize,
    },
    #[error("control.kind: {0} is not a known kind")]
    ControlKind(i32),
}

fn stream_id(s: String) -> Option<Arc<str>> {
    (!s.is_empty()).then(|| s.into())
}

pub fn to_runtime(buffer: pb::DataBuffer) -> Result<RuntimeData, BadBuffer> {
    let data = buffer.data.ok_or(BadBuffer::NoVariant)?;
    Ok(match data {
        Data::Audio(a) => {
            if a.samples.len() % 4 != 0 {
                return Err(BadBuffer::AudioSamples {
                    bytes: a.samples.len(),
                });
            }
            if a.sample_rate == 0 || a.channels == 0 || a.channels > 64 {
                return Err(BadBuffer::AudioFormat {
                    sample_rate: a.sample_rate,
                    channels: a.channels,
                });
            }
            let samples: Vec<f32> = a
                .samples
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let mut frame = AudioFrame::new(
                AudioSamples::from_vec(samples),
                a.sample_rate,
                a.channels as u16,
            );
            frame.stream_id = stream_id(a.stream_id);
            frame.pts = a.pts_ns;
            RuntimeData::Audio(frame)
        }
        Data::Video(v) => RuntimeData::Video(VideoFrame {
            format: pixel_format(&v.format)?,
            data: v.data.into(),
            width: v.width,
            height: v.height,
            stream_id: stream_id(v.stream_id),
            pts: v.pts_ns,
            keyframe: v.keyframe,
        }),
        Data::Text(t) => RuntimeData::Text(t),
        Data::Json(j) => RuntimeData::Json(serde_json::from_str(&j).map_err(BadBuffer::Json)?),
        Data::Binary(b) => RuntimeData::Binary(b.into()),
        Data::Tensor(t) => {
            let dtype = match t.dtype.as_str() {
                "f32" => DType::F32,
                "f64" => DType::F64,
                "i32" => DType::I32,
                "i64" => DType::I64,
                "u8" => DType::U8,
                other => return Err(BadBuffer::TensorDtype(other.to_owned())),
            };
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            let want = shape.iter().product::<usize>() * dtype_size(dtype);
            if want != t.data.len() {
                return Err(BadBuffer::TensorSize {
                    shape,
                    dtype: t.dtype,
                    needs: want,
                    has: t.data.len(),
                });
            }
            RuntimeData::Tensor(TensorData {
                shape,
                dtype,
                data: t.data.into(),
            })
        }
        Data::Control(c) => RuntimeData::Control(
            match pb::control_message::Kind::try_from(c.kind)
                .unwrap_or(pb::control_message::Kind::Unspecified)
            {
                pb::control_message::Kind::EndOfStream => ControlMessage::EndOfStream,
                pb::control_message::Kind::Flush => ControlMessage::Flush,
                pb::control_message::Kind::CancelSpeculation => ControlMessage::CancelSpeculation {
                    from_ms: c.from_ms,
                    to_ms: c.to_ms,
                },
                pb::control_message::Kind::Unspecified => {
                    return Err(BadBuffer::ControlKind(c.kind));
                }
            },
        ),
    })
}

fn dtype_size(d: DType) -> usize {
    match d {
        DType::U8 => 1,
        DType::F32 | DType::I32 => 4,
        DType::F64 | DType::I64 => 8,
    }
}

fn pixel_format(name: &str) -> Result<PixelFormat, BadBuffer> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "I420" => PixelFormat::I420,
        "NV12" => PixelFormat::Nv12,
        "RGB" => PixelFormat::Rgb,
        "RGBA" => PixelFormat::Rgba,
        "ENCODED" => PixelFormat::Encoded,
        _ => return Err(BadBuffer::PixelFormat(name.to_owned())),
    })
}

pub fn from_runtime(data: &RuntimeData) -> pb::DataBuffer {
    let data = match data {
        RuntimeData::Audio(a) => Data::Audio(pb::AudioBuffer {
            samples: bytemuck_le(&a.samples),
            sample_rate: a.sample_rate,
            channels: u32::from(a.channels),
            stream_id: a.stream_id.as_deref().unwrap_or_default().to_owned(),
            pts_ns: a.pts,
        }),
        RuntimeData::Video(v) => Data::Video(pb::VideoFrame {
            data: v.data.to_vec(),
            width: v.width,
            height: v.height,
            format: match v.format {
                PixelFormat::I420 => "I420",
                PixelFormat::Nv12 => "NV12",
                PixelFormat::Rgb => "RGB",
                PixelFormat::Rgba => "RGBA",
                PixelFormat::Encoded => "ENCODED",
            }
            .into(),
            stream_id: v.stream_id.as_deref().unwrap_or_default().to_owned(),
            pts_ns: v.pts,
            keyframe: v.keyframe,
        }),
        RuntimeData::Text(t) => Data::Text(t.clone()),
        RuntimeData::Json(j) => Data::Json(j.to_string()),
        RuntimeData::Binary(b) => Data::Binary(b.to_vec()),
        RuntimeData::Tensor(t) => Data::Tensor(pb::Tensor {
            data: t.data.to_vec(),
            shape: t.shape.iter().map(|&d| d as u64).collect(),
            dtype: match t.dtype {
                DType::F32 => "f32",
                DType::F64 => "f64",
                DType::I32 => "i32",
                DType::I64 => "i64",
                DType::U8 => "u8",
            }
            .into(),
        }),
        RuntimeData::Control(c) => {
            use pb::control_message::Kind;
            let (kind, from_ms, to_ms) = match c {
                ControlMessage::EndOfStream => (Kind::EndOfStream, 0.0, 0.0),
                ControlMessage::Flush => (Kind::Flush, 0.0, 0.0),
                ControlMessage::CancelSpeculation { from_ms, to_ms } => {
                    (Kind::CancelSpeculation, *from_ms, *to_ms)
                }
            };
            Data::Control(pb::ControlMessage {
                kind: kind.into(),
                from_ms,
                to_ms,
            })
        }
    };
    pb::DataBuffer { data: Some(data) }
}

fn bytemuck_le(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

pub fn output(o: &Output) -> pb::NodeOutput {
    pb::NodeOutput {
        node_id: o.node_id.to_string(),
        data: Some(from_runtime(&o.data)),
        pts_ns: o.pts,
    }
}

/// Rough bytes a buffer holds, for the server's memory limit.
pub fn size_of(data: &RuntimeData) -> usize {
    match data {
        RuntimeData::Audio(a) => a.samples.len() * 4,
        RuntimeData::Video(v) => v.data.len(),
        RuntimeData::Text(t) => t.len(),
        RuntimeData::Json(j) => j.to_string().len(),
        RuntimeData::Binary(b) => b.len(),
        RuntimeData::Tensor(t) => t.data.len(),
        RuntimeData::Control(_) => 16,
    }
}

/// The capabilities with a field of their own in `PeerCapabilities`; others are extensions.
const BASIC_CAPABILITIES: [&str; 3] = ["audio", "video", "data"];

/// A registry peer as gRPC sees it. Capabilities come from a JSON object or a list of names
/// (the page announces either); those beyond audio, video and data go to `extensions` as a
/// JSON object. user_data values become strings.
pub fn peer_to_pb(info: &PeerInfo) -> pb::webrtc::PeerInfo {
    let all: Map<String, Value> = match &info.capabilities {
        Value::Object(m) => m.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_owned(), Value::Bool(true)))
            .collect(),
        _ => Map::new(),
    };
    let has = |name: &str| all.get(name).and_then(Value::as_bool).unwrap_or(false);
    let extensions: Map<String, Value> = all
        .iter()
        .filter(|(k, _)| !BASIC_CAPABILITIES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let metadata = match &info.user_data {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), text)
            })
            .collect(),
        _ => Default::default(),
    };
    pb::webrtc::PeerInfo {
        peer_id: info.peer_id.clone(),
        capabilities: Some(pb::webrtc::PeerCapabilities {
            audio: has("audio"),
            video: has("video"),
            data: has("data"),
            extensions: if extensions.is_empty() {
                String::new()
            } else {
                Value::Object(extensions).to_string()
            },
        }),
        metadata,
    }
}

/// A gRPC peer record as a registry peer; `extensions`, if set, must be a JSON object, and
/// its entries join audio, video and data (which they cannot override).
pub fn peer_from_pb(
    peer_id: String,
    capabilities: Option<pb::webrtc::PeerCapabilities>,
    metadata: std::collections::HashMap<String, String>,
) -> Result<PeerInfo, RpcError> {
    let caps = capabilities.unwrap_or_default();
    let mut all = match caps.extensions.trim() {
        "" => Map::new(),
        text => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return Err(RpcError::invalid_params(format!(
                    "peer '{peer_id}': capabilities.extensions must be a JSON object, not {other}"
                )));
            }
            Err(e) => {
                return Err(RpcError::invalid_params(format!(
                    "peer '{peer_id}': capabilities.extensions is not JSON: {e}"
                )));
            }
        },
    };
    for (name, on) in BASIC_CAPABILITIES
        .iter()
        .zip([caps.audio, caps.video, caps.data])
    {
        all.insert((*name).to_owned(), Value::Bool(on));
    }
    let user_data: Map<String, Value> = metadata
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(PeerInfo {
        peer_id,
        capabilities: Value::Object(all),
        user_data: Value::Object(user_data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_round_trips_bit_exact() {
        let mut frame = AudioFrame::new(AudioSamples::from_vec(vec![0.5, -1.0, 0.25]), 16000, 1);
        frame.pts = Some(42);
        let back = to_runtime(from_runtime(&RuntimeData::Audio(frame))).unwrap();
        let RuntimeData::Audio(a) = back else {
            panic!("not audio")
        };
        assert_eq!(&*a.samples, &[0.5, -1.0, 0.25]);
        assert_eq!((a.sample_rate, a.channels, a.pts), (16000, 1, Some(42)));
    }

    #[test]
    fn bad_buffers_name_the_field() {
        let odd = pb::DataBuffer {
            data: Some(Data::Audio(pb::AudioBuffer {
                samples: vec![0; 5],
                sample_rate: 16000,
                channels: 1,
                ..Default::default()
            })),
        };
        assert!(matches!(
            to_runtime(odd),
            Err(BadBuffer::AudioSamples { bytes: 5 })
        ));
        let tensor = pb::DataBuffer {
            data: Some(Data::Tensor(pb::Tensor {
                data: vec![0; 7],
                shape: vec![2],
                dtype: "f32".into(),
            })),
        };
        let err = to_runtime(tensor).unwrap_err();
        assert!(
            matches!(
                err,
                BadBuffer::TensorSize {
                    needs: 8,
                    has: 7,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "tensor: shape [2] of f32 needs 8 bytes, data has 7"
        );
        assert!(matches!(
            to_runtime(pb::DataBuffer { data: None }),
            Err(BadBuffer::NoVariant)
        ));
    }

    #[test]
    fn peers_map_capabilities_and_user_data() {
        let info = PeerInfo {
            peer_id: "p".into(),
            capabilities: serde_json::json!(["audio", "data"]),
            user_data: serde_json::json!({"session": "room", "n": 3}),
        };
        let pb = peer_to_pb(&info);
        let caps = pb.capabilities.unwrap();
        assert!(caps.audio && caps.data && !caps.video);
        assert_eq!(pb.metadata["session"], "room");
        assert_eq!(pb.metadata["n"], "3");
    }
}
