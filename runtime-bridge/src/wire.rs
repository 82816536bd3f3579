//! A compact binary encoding of packets (RuntimeData and its timestamp), lossless for every
//! variant: the form data takes when it crosses a process boundary (Python workers over shared
//! memory). `encode_into` writes straight into a loaned buffer; `decode` checks every length
//! and never panics on malformed input.
//!
//! Layout (little endian): `"RM"`, version, kind, flags, 3 reserved bytes, pts (u64), then the
//! kind's fields. Variable parts carry a u32 length; audio samples start 4-byte aligned and
//! tensor data 8-byte aligned (relative to the packet's start).
//!
//! A reply may leave its payload out when it is the very payload of the input being answered
//! (a Python node returning the array it was given): flag `PAYLOAD_IS_INPUT`, the length kept,
//! the bytes absent. The receiver sent that input and still holds it, so it uses its own
//! (`decode_reply`); the payload crosses once instead of three times.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::data::{
    AudioFrame, AudioSamples, Bytes, ControlMessage, DType, Packet, PixelFormat, RuntimeData,
    TensorData, VideoFrame,
};

const MAGIC: &[u8; 2] = b"RM";
const VERSION: u8 = 1;

const HAS_PTS: u8 = 1;
const HAS_DURATION: u8 = 2;
const KEYFRAME: u8 = 4;
const PAYLOAD_IS_INPUT: u8 = 8;

/// Where a payload lies in this process's memory: a sender names the input payload (still in
/// shared memory) that a reply may refer to instead of carrying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    addr: usize,
    len: usize,
}

impl Region {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            addr: bytes.as_ptr() as usize,
            len: bytes.len(),
        }
    }
}

/// The payload of a packet (samples, pixels, bytes or tensor data), if its kind has one.
fn payload_bytes(data: &RuntimeData) -> Option<&[u8]> {
    match data {
        RuntimeData::Audio(a) => Some(bytemuck::cast_slice(&a.samples[..])),
        RuntimeData::Video(v) => Some(&v.data),
        RuntimeData::Binary(b) => Some(b),
        RuntimeData::Tensor(t) => Some(&t.data),
        RuntimeData::Text(_) | RuntimeData::Json(_) | RuntimeData::Control(_) => None,
    }
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Kind {
    Audio = 1,
    Video = 2,
    Text = 3,
    Json = 4,
    Binary = 5,
    Tensor = 6,
    Control = 7,
}

/// Why bytes could not be decoded, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct WireError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed packet at byte {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for WireError {}

fn kind_of(data: &RuntimeData) -> Kind {
    match data {
        RuntimeData::Audio(_) => Kind::Audio,
        RuntimeData::Video(_) => Kind::Video,
        RuntimeData::Text(_) => Kind::Text,
        RuntimeData::Json(_) => Kind::Json,
        RuntimeData::Binary(_) => Kind::Binary,
        RuntimeData::Tensor(_) => Kind::Tensor,
        RuntimeData::Control(_) => Kind::Control,
    }
}

fn pixel_code(f: PixelFormat) -> u8 {
    match f {
        PixelFormat::I420 => 0,
        PixelFormat::Nv12 => 1,
        PixelFormat::Rgb => 2,
        PixelFormat::Rgba => 3,
        PixelFormat::Encoded => 4,
    }
}

fn dtype_code(d: DType) -> u8 {
    match d {
        DType::F32 => 0,
        DType::F64 => 1,
        DType::I32 => 2,
        DType::I64 => 3,
        DType::U8 => 4,
    }
}

/// Appends to a byte buffer; `Sizer` only counts, so both passes share one layout.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn pos(&self) -> usize;
    fn align(&mut self, to: usize) {
        let pad = (to - self.pos() % to) % to;
        self.put(&[0; 7][..pad]);
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn blob(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.put(b);
    }
}

struct Sizer(usize);

impl Sink for Sizer {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn pos(&self) -> usize {
        self.0
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Sink for Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
    fn pos(&self) -> usize {
        self.at
    }
}

fn write(p: &Packet, s: &mut impl Sink, input: Option<Region>) {
    let reused = input.is_some_and(|input| {
        payload_bytes(&p.data).is_some_and(|b| !b.is_empty() && Region::of(b) == input)
    });
    let mut flags = 0;
    if p.pts.is_some() {
        flags |= HAS_PTS;
    }
    if reused {
        flags |= PAYLOAD_IS_INPUT;
    }
    match &p.data {
        RuntimeData::Audio(a) if a.duration.is_some() => flags |= HAS_DURATION,
        RuntimeData::Video(v) if v.keyframe => flags |= KEYFRAME,
        _ => {}
    }
    s.put(MAGIC);
    s.u8(VERSION);
    s.u8(kind_of(&p.data) as u8);
    s.u8(flags);
    s.put(&[0; 3]);
    s.u64(p.pts.unwrap_or(0));
    match &p.data {
        RuntimeData::Audio(a) => {
            s.u32(a.sample_rate);
            s.u16(a.channels);
            s.u64(a.duration.unwrap_or(0));
            s.blob(a.stream_id.as_deref().unwrap_or("").as_bytes());
            s.blob(
                a.metadata
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            s.u32(a.samples.len() as u32);
            s.align(4);
            if !reused {
                s.put(bytemuck::cast_slice(&a.samples));
            }
        }
        RuntimeData::Video(v) => {
            s.u32(v.width);
            s.u32(v.height);
            s.u8(pixel_code(v.format));
            s.blob(v.stream_id.as_deref().unwrap_or("").as_bytes());
            s.u32(v.data.len() as u32);
            if !reused {
                s.put(&v.data);
            }
        }
        RuntimeData::Text(t) => s.blob(t.as_bytes()),
        RuntimeData::Json(j) => s.blob(j.to_string().as_bytes()),
        RuntimeData::Binary(b) => {
            s.u32(b.len() as u32);
            if !reused {
                s.put(b);
            }
        }
        RuntimeData::Tensor(t) => {
            s.u8(dtype_code(t.dtype));
            s.u32(t.shape.len() as u32);
            for d in &t.shape {
                s.u64(*d as u64);
            }
            // 8-byte aligned, so a receiver can view any dtype in place.
            s.u32(t.data.len() as u32);
            s.align(8);
            if !reused {
                s.put(&t.data);
            }
        }
        RuntimeData::Control(c) => match c {
            ControlMessage::EndOfStream => s.u8(0),
            ControlMessage::Flush => s.u8(1),
            ControlMessage::CancelSpeculation { from_ms, to_ms } => {
                s.u8(2);
                s.u64(from_ms.to_bits());
                s.u64(to_ms.to_bits());
            }
        },
    }
}

/// Bytes `encode_into` needs for this packet; `input` as for `encode_into`.
pub fn encoded_len(p: &Packet, input: Option<Region>) -> usize {
    let mut s = Sizer(0);
    write(p, &mut s, input);
    s.0
}

/// Writes the packet into `out` (at least `encoded_len` bytes, e.g. a loaned shared-memory
/// slice) and returns the bytes written. A payload lying exactly at `input` (the payload of
/// the input this packet answers) is referred to, not written.
pub fn encode_into(p: &Packet, out: &mut [u8], input: Option<Region>) -> usize {
    let mut w = Writer { out, at: 0 };
    write(p, &mut w, input);
    w.at
}

pub fn encode(p: &Packet) -> Vec<u8> {
    let mut out = vec![0; encoded_len(p, None)];
    encode_into(p, &mut out, None);
    out
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, WireError> {
        Err(WireError {
            offset: self.at,
            message: message.into(),
        })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        match self.at.checked_add(n).filter(|&e| e <= self.b.len()) {
            Some(end) => {
                let s = &self.b[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => self.err(format!(
                "needs {n} more bytes, has {}",
                self.b.len() - self.at
            )),
        }
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn blob(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// A payload of `n` bytes: in the packet, or (`reused`) left out as the input's.
    fn payload(&mut self, n: usize, reused: bool) -> Result<&'a [u8], WireError> {
        if reused { Ok(&[]) } else { self.take(n) }
    }
    fn string(&mut self) -> Result<String, WireError> {
        let at = self.at;
        String::from_utf8(self.blob()?.to_vec()).map_err(|e| WireError {
            offset: at,
            message: format!("text is not UTF-8: {e}"),
        })
    }
    fn json(&mut self) -> Result<Value, WireError> {
        let at = self.at;
        serde_json::from_slice(self.blob()?).map_err(|e| WireError {
            offset: at,
            message: format!("not JSON: {e}"),
        })
    }
    fn align(&mut self, to: usize) -> Result<(), WireError> {
        self.take((to - self.at % to) % to).map(|_| ())
    }
}

fn optional_id(s: String) -> Option<Arc<str>> {
    (!s.is_empty()).then(|| Arc::from(s))
}

/// A decoded packet whose payloads still point into the bytes it was decoded from (a
/// shared-memory message), so a receiver can view them in place.
#[derive(Debug)]
pub struct PacketView<'a> {
    pub data: DataView<'a>,
    pub pts: Option<u64>,
    /// Set (to the payload's length in bytes) when the payload was left out as the input's;
    /// the view's payload slice is then empty.
    pub input_payload_len: Option<usize>,
}

#[derive(Debug)]
pub enum DataView<'a> {
    Audio {
        /// Little-endian f32 samples, 4-byte aligned.
        samples: &'a [u8],
        sample_rate: u32,
        channels: u16,
        stream_id: Option<Arc<str>>,
        duration: Option<u64>,
        metadata: Option<Value>,
    },
    Video {
        data: &'a [u8],
        width: u32,
        height: u32,
        format: PixelFormat,
        stream_id: Option<Arc<str>>,
        keyframe: bool,
    },
    Text(String),
    Json(Value),
    Binary(&'a [u8]),
    Tensor {
        shape: Vec<usize>,
        dtype: DType,
        data: &'a [u8],
    },
    Control(ControlMessage),
}

/// The input payload a reply refers to, if `input` has one of `len` bytes in `kind`'s slot.
fn input_payload(
    input: Option<&RuntimeData>,
    kind: Kind,
    len: usize,
) -> Result<&RuntimeData, WireError> {
    match input {
        Some(data)
            if kind_of(data) as u8 == kind as u8
                && payload_bytes(data).map(<[u8]>::len) == Some(len) =>
        {
            Ok(data)
        }
        _ => Err(WireError {
            offset: 4,
            message: format!(
                "the packet refers to the input's payload ({len} bytes of the same kind), \
                 and the input has none such"
            ),
        }),
    }
}

impl PacketView<'_> {
    /// The packet with its payloads copied out. A payload left out as the input's is shared
    /// from `input` (no copy), which must be of the same kind and length.
    pub fn to_packet(&self, input: Option<&RuntimeData>) -> Result<Packet, WireError> {
        let pts = self.pts;
        let reused = |kind| {
            self.input_payload_len
                .map(|len| input_payload(input, kind, len))
                .transpose()
        };
        let data = match &self.data {
            DataView::Audio {
                samples,
                sample_rate,
                channels,
                stream_id,
                duration,
                metadata,
            } => {
                let samples = match reused(Kind::Audio)? {
                    Some(RuntimeData::Audio(a)) => a.samples.clone(),
                    _ => AudioSamples::from_vec(
                        samples
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                            .collect(),
                    ),
                };
                RuntimeData::Audio(AudioFrame {
                    samples,
                    sample_rate: *sample_rate,
                    channels: *channels,
                    stream_id: stream_id.clone(),
                    pts,
                    duration: *duration,
                    metadata: metadata.clone(),
                })
            }
            DataView::Video {
                data,
                width,
                height,
                format,
                stream_id,
                keyframe,
            } => RuntimeData::Video(VideoFrame {
                data: match reused(Kind::Video)? {
                    Some(RuntimeData::Video(v)) => v.data.clone(),
                    _ => Bytes::copy_from_slice(data),
                },
                width: *width,
                height: *height,
                format: *format,
                stream_id: stream_id.clone(),
                pts,
                keyframe: *keyframe,
            }),
            DataView::Text(t) => RuntimeData::Text(t.clone()),
            DataView::Json(j) => RuntimeData::Json(j.clone()),
            DataView::Binary(b) => RuntimeData::Binary(match reused(Kind::Binary)? {
                Some(RuntimeData::Binary(input)) => input.clone(),
                _ => Bytes::copy_from_slice(b),
            }),
            DataView::Tensor { shape, dtype, data } => RuntimeData::Tensor(TensorData {
                shape: shape.clone(),
                dtype: *dtype,
                data: match reused(Kind::Tensor)? {
                    Some(RuntimeData::Tensor(t)) => t.data.clone(),
                    _ => Bytes::copy_from_slice(data),
                },
            }),
            DataView::Control(c) => RuntimeData::Control(c.clone()),
        };
        Ok(Packet { data, pts })
    }
}

/// Decodes a packet; payloads are copied out of `bytes`. A packet that refers to an input's
/// payload is refused (see `decode_reply`).
pub fn decode(bytes: &[u8]) -> Result<Packet, WireError> {
    decode_reply(bytes, None)
}

/// Decodes a reply to `input`: a payload the reply left out as the input's is shared from it.
pub fn decode_reply(bytes: &[u8], input: Option<&RuntimeData>) -> Result<Packet, WireError> {
    decode_view(bytes)?.to_packet(input)
}

/// Decodes a packet, leaving its payloads in `bytes`.
pub fn decode_view(bytes: &[u8]) -> Result<PacketView<'_>, WireError> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.take(2)? != MAGIC {
        return Err(WireError {
            offset: 0,
            message: "not a RemoteMedia packet".into(),
        });
    }
    let version = r.u8()?;
    if version != VERSION {
        return r.err(format!("version {version}, this build reads {VERSION}"));
    }
    let kind = r.u8()?;
    let flags = r.u8()?;
    r.take(3)?;
    let pts = r.u64()?;
    let pts = (flags & HAS_PTS != 0).then_some(pts);
    let reused = flags & PAYLOAD_IS_INPUT != 0;
    // The payload's length in bytes; the view keeps it when the payload is left out.
    let mut payload_len = None;
    let data = match kind {
        1 => {
            let sample_rate = r.u32()?;
            let channels = r.u16()?;
            let duration = r.u64()?;
            let stream_id = optional_id(r.string()?);
            let meta = r.blob()?;
            let metadata = if meta.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(meta).map_err(|e| WireError {
                    offset: r.at,
                    message: format!("audio metadata is not JSON: {e}"),
                })?)
            };
            let n = r.u32()? as usize;
            r.align(4)?;
            let bytes = n.checked_mul(4).ok_or_else(|| WireError {
                offset: r.at,
                message: "sample count overflows".into(),
            })?;
            payload_len = Some(bytes);
            let samples = r.payload(bytes, reused)?;
            DataView::Audio {
                samples,
                sample_rate,
                channels,
                stream_id,
                duration: (flags & HAS_DURATION != 0).then_some(duration),
                metadata,
            }
        }
        2 => {
            let width = r.u32()?;
            let height = r.u32()?;
            let format = match r.u8()? {
                0 => PixelFormat::I420,
                1 => PixelFormat::Nv12,
                2 => PixelFormat::Rgb,
                3 => PixelFormat::Rgba,
                4 => PixelFormat::Encoded,
                other => return r.err(format!("unknown pixel format {other}")),
            };
            let stream_id = optional_id(r.string()?);
            let n = r.u32()? as usize;
            payload_len = Some(n);
            DataView::Video {
                data: r.payload(n, reused)?,
                width,
                height,
                format,
                stream_id,
                keyframe: flags & KEYFRAME != 0,
            }
        }
        3 => DataView::Text(r.string()?),
        4 => DataView::Json(r.json()?),
        5 => {
            let n = r.u32()? as usize;
            payload_len = Some(n);
            DataView::Binary(r.payload(n, reused)?)
        }
        6 => {
            let dtype = match r.u8()? {
                0 => DType::F32,
                1 => DType::F64,
                2 => DType::I32,
                3 => DType::I64,
                4 => DType::U8,
                other => return r.err(format!("unknown dtype {other}")),
            };
            let ndim = r.u32()? as usize;
            if ndim > 32 {
                return r.err(format!("{ndim} dimensions"));
            }
            let shape = (0..ndim)
                .map(|_| r.u64().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let n = r.u32()? as usize;
            r.align(8)?;
            payload_len = Some(n);
            DataView::Tensor {
                shape,
                dtype,
                data: r.payload(n, reused)?,
            }
        }
        7 => DataView::Control(match r.u8()? {
            0 => ControlMessage::EndOfStream,
            1 => ControlMessage::Flush,
            2 => ControlMessage::CancelSpeculation {
                from_ms: f64::from_bits(r.u64()?),
                to_ms: f64::from_bits(r.u64()?),
            },
            other => return r.err(format!("unknown control message {other}")),
        }),
        other => {
            return Err(WireError {
                offset: 3,
                message: format!("unknown kind {other}"),
            });
        }
    };
    if r.at != bytes.len() {
        return r.err(format!("{} bytes left over", bytes.len() - r.at));
    }
    if reused && payload_len.is_none() {
        return Err(WireError {
            offset: 4,
            message: format!("kind {kind} has no payload to take from the input"),
        });
    }
    Ok(PacketView {
        data,
        pts,
        input_payload_len: payload_len.filter(|_| reused),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_variants() -> Vec<Packet> {
        let mut audio = AudioFrame::new(
            AudioSamples::from_vec(vec![0.5, -1.0, f32::MIN_POSITIVE]),
            48000,
            1,
        );
        audio.pts = Some(7);
        audio.duration = Some(62_500);
        audio.stream_id = Some(Arc::from("audio:0"));
        audio.metadata = Some(json!({"lang": "en"}));
        vec![
            Packet::new(RuntimeData::Audio(audio)),
            Packet::new(RuntimeData::Video(VideoFrame {
                data: Bytes::from_static(&[1, 2, 3, 4, 5, 6]),
                width: 2,
                height: 2,
                format: PixelFormat::I420,
                stream_id: None,
                pts: Some(33_000_000),
                keyframe: true,
            })),
            Packet::at(RuntimeData::Text("héllo".into()), Some(1)),
            Packet::at(RuntimeData::Json(json!({"a": [1, 2.5, null, "x"]})), None),
            Packet::at(
                RuntimeData::Binary(Bytes::from_static(b"\x00\xff")),
                Some(u64::MAX - 1),
            ),
            Packet::at(
                RuntimeData::Tensor(TensorData {
                    shape: vec![2, 3],
                    dtype: DType::I64,
                    data: Bytes::from(vec![9u8; 48]),
                }),
                None,
            ),
            Packet::at(
                RuntimeData::Control(ControlMessage::CancelSpeculation {
                    from_ms: 1.5,
                    to_ms: 2.25,
                }),
                Some(0),
            ),
            Packet::at(RuntimeData::Control(ControlMessage::EndOfStream), None),
        ]
    }

    /// 100 000 mutations of every variant's encoding: the decoder never panics, and a refusal
    /// names its place.
    #[test]
    fn mutated_packets_never_panic_the_decoder() {
        let seeds: Vec<Vec<u8>> = all_variants().iter().map(encode).collect();
        let mut mutator = crate::mutate::Mutator::new(0x9e37_79b9);
        let mut refused = 0;
        for case in 0..100_000 {
            let bytes = mutator.mutate(&seeds[case % seeds.len()], &[0, 1, 0xff]);
            match decode(&bytes) {
                Ok(p) => {
                    // Whatever decodes encodes again.
                    let _ = encode(&p);
                }
                Err(e) => {
                    assert!(e.to_string().starts_with("malformed packet at byte"), "{e}");
                    refused += 1;
                }
            }
            let _ = decode_view(&bytes);
        }
        assert!(refused > 10_000, "{refused}");
    }

    #[test]
    fn every_variant_round_trips() {
        for p in all_variants() {
            let bytes = encode(&p);
            assert_eq!(bytes.len(), encoded_len(&p, None));
            let back = decode(&bytes).unwrap();
            assert_eq!(back.pts, p.pts);
            // Debug output covers every field of every variant.
            assert_eq!(format!("{:?}", back.data), format!("{:?}", p.data));
            if let (RuntimeData::Audio(a), RuntimeData::Audio(b)) = (&back.data, &p.data) {
                assert_eq!(&*a.samples, &*b.samples);
                assert_eq!(
                    (a.duration, &a.stream_id, &a.metadata),
                    (b.duration, &b.stream_id, &b.metadata)
                );
            }
        }
    }

    #[test]
    fn a_reply_may_refer_to_the_payload_of_its_input() {
        for p in all_variants() {
            let Some(payload) = payload_bytes(&p.data) else {
                // Nothing to refer to: the packet is written whole.
                let region = Some(Region::of(b"x"));
                assert_eq!(encoded_len(&p, region), encode(&p).len());
                continue;
            };
            let region = Some(Region::of(payload));
            let mut short = vec![0; encoded_len(&p, region)];
            assert_eq!(encode_into(&p, &mut short, region), short.len());
            assert_eq!(short.len(), encode(&p).len() - payload.len());
            let refused = decode(&short).unwrap_err();
            assert!(
                refused.message.contains("refers to the input's payload"),
                "{refused}"
            );
            let back = decode_reply(&short, Some(&p.data)).unwrap();
            assert_eq!(format!("{:?}", back.data), format!("{:?}", p.data));
            let shared = payload_bytes(&back.data).unwrap();
            assert_eq!(
                Region::of(shared),
                Region::of(payload),
                "shared, not copied"
            );
            // An input of another length (or none) cannot stand in for the payload.
            let text = RuntimeData::Text("other".into());
            assert!(decode_reply(&short, Some(&text)).is_err());
            assert!(decode_reply(&short, None).is_err());
        }
        // A copy of the same bytes elsewhere is not the input: the payload is written.
        let p = &all_variants()[1];
        let copy = payload_bytes(&p.data).unwrap().to_vec();
        assert_eq!(encoded_len(p, Some(Region::of(&copy))), encode(p).len());
    }

    #[test]
    fn audio_samples_are_aligned() {
        let p = &all_variants()[0];
        let bytes = encode(p);
        let start = bytes.len() - 12;
        assert_eq!(start % 4, 0);
    }

    #[test]
    fn malformed_bytes_are_refused_with_their_place() {
        assert_eq!(
            decode(b"XX").unwrap_err().message,
            "not a RemoteMedia packet"
        );
        let mut text = encode(&Packet::at(RuntimeData::Text("hi".into()), None));
        text.push(0);
        assert!(
            decode(&text)
                .unwrap_err()
                .message
                .contains("1 bytes left over")
        );
        let audio = encode(&all_variants()[0]);
        let err = decode(&audio[..audio.len() - 1]).unwrap_err();
        assert!(err.message.contains("more bytes"), "{err}");
        // Every truncation and every single-byte change decodes or fails; none panics.
        for p in all_variants() {
            let bytes = encode(&p);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err());
            }
            for i in 0..bytes.len() {
                for v in [0u8, 1, 0x7f, 0xff] {
                    let mut b = bytes.clone();
                    b[i] = v;
                    let _ = decode(&b);
                }
            }
        }
    }
}
