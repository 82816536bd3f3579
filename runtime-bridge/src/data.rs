//! `RuntimeData`: what flows between nodes. Audio samples live in shared, reference-counted
//! storage, so slicing, fanning out and wrapping a mapped GStreamer buffer never copies.

use std::any::Any;
use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

pub use bytes::Bytes;
use serde_json::Value;

/// Anything that owns f32 samples and can lend them out: a `Vec<f32>`, a mapped
/// `gst::Buffer`, a numpy array, a shared-memory sample.
pub trait SampleStorage: Send + Sync + 'static {
    fn samples(&self) -> &[f32];
    /// Lets the owner of a foreign storage type recognise it again (zero-copy round trips).
    fn as_any(&self) -> &dyn Any;
    /// The same, by value, to take the storage back.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl SampleStorage for Vec<f32> {
    fn samples(&self) -> &[f32] {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// A view into shared sample storage. Cloning and slicing are O(1).
#[derive(Clone)]
pub struct AudioSamples {
    storage: Arc<dyn SampleStorage>,
    range: Range<usize>,
}

impl AudioSamples {
    pub fn from_vec(samples: Vec<f32>) -> Self {
        Self::from_storage(Arc::new(samples))
    }

    pub fn from_storage(storage: Arc<dyn SampleStorage>) -> Self {
        let len = storage.samples().len();
        Self {
            storage,
            range: 0..len,
        }
    }

    /// A view of `range` of `storage`'s samples.
    pub fn from_storage_range(storage: Arc<dyn SampleStorage>, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= storage.samples().len());
        Self { storage, range }
    }

    /// A sub-view sharing the same storage; `range` is relative to this view.
    pub fn slice(&self, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.len());
        Self {
            storage: Arc::clone(&self.storage),
            range: self.range.start + range.start..self.range.start + range.end,
        }
    }

    pub fn storage(&self) -> &Arc<dyn SampleStorage> {
        &self.storage
    }

    /// The samples as a `Vec`: taken without a copy when this view is the only owner of a
    /// whole `Vec` storage, copied otherwise.
    pub fn into_vec(self) -> Vec<f32> {
        let sole_vec = self.is_whole()
            && Arc::strong_count(&self.storage) == 1
            && self.storage.as_any().is::<Vec<f32>>();
        if sole_vec && let Ok(v) = Arc::clone(&self.storage).into_any().downcast::<Vec<f32>>() {
            drop(self);
            return Arc::try_unwrap(v).unwrap_or_else(|shared| shared.to_vec());
        }
        self.to_vec()
    }

    /// True when this view covers its whole storage.
    pub fn is_whole(&self) -> bool {
        self.range.start == 0 && self.range.end == self.storage.samples().len()
    }
}

impl Deref for AudioSamples {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.storage.samples()[self.range.clone()]
    }
}

impl AsRef<[u8]> for AudioSamples {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }
}

impl fmt::Debug for AudioSamples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AudioSamples({} samples)", self.len())
    }
}

/// Interleaved f32 audio with its timing.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    pub samples: AudioSamples,
    pub sample_rate: u32,
    pub channels: u16,
    pub stream_id: Option<Arc<str>>,
    /// Nanoseconds on the GStreamer running-time axis.
    pub pts: Option<u64>,
    pub duration: Option<u64>,
    pub metadata: Option<Value>,
}

impl AudioFrame {
    pub fn new(samples: AudioSamples, sample_rate: u32, channels: u16) -> Self {
        Self {
            samples,
            sample_rate,
            channels,
            stream_id: None,
            pts: None,
            duration: None,
            metadata: None,
        }
    }

    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Duration of `frames` frames at this frame's rate, in nanoseconds.
    pub fn frames_to_ns(&self, frames: usize) -> u64 {
        frames_to_ns(frames as u64, self.sample_rate)
    }
}

pub fn frames_to_ns(frames: u64, rate: u32) -> u64 {
    let rate = rate.max(1);
    // In u64 unless the product overflows it (over 213 days at 1 Hz): a u128 division is a
    // libcall several times dearer, and this runs for every buffer.
    match frames.checked_mul(1_000_000_000) {
        Some(ns) => ns / u64::from(rate),
        None => (u128::from(frames) * 1_000_000_000 / u128::from(rate)) as u64,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    I420,
    Nv12,
    Rgb,
    Rgba,
    Encoded,
}

#[derive(Clone, Debug)]
pub struct VideoFrame {
    pub data: Bytes,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub stream_id: Option<Arc<str>>,
    pub pts: Option<u64>,
    pub keyframe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
    U8,
}

#[derive(Clone, Debug)]
pub struct TensorData {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Bytes,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ControlMessage {
    EndOfStream,
    Flush,
    /// Audio between the two times (ms) was a false start and should be discarded.
    CancelSpeculation {
        from_ms: f64,
        to_ms: f64,
    },
}

#[derive(Clone, Debug)]
pub enum RuntimeData {
    Audio(AudioFrame),
    Video(VideoFrame),
    Text(String),
    Json(Value),
    Binary(Bytes),
    Tensor(TensorData),
    Control(ControlMessage),
}

impl RuntimeData {
    /// The variant's name as RemoteMedia spells it in errors and Python.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Audio(_) => "audio",
            Self::Video(_) => "video",
            Self::Text(_) => "text",
            Self::Json(_) => "json",
            Self::Binary(_) => "binary",
            Self::Tensor(_) => "tensor",
            Self::Control(_) => "control",
        }
    }

    /// The timestamp the data carries itself, if any.
    pub fn pts(&self) -> Option<u64> {
        match self {
            Self::Audio(a) => a.pts,
            Self::Video(v) => v.pts,
            _ => None,
        }
    }
}

/// What a node sees and emits: data plus the running time it belongs to. Text and JSON carry
/// no timestamp of their own, so the packet keeps it for them.
#[derive(Clone, Debug)]
pub struct Packet {
    pub data: RuntimeData,
    pub pts: Option<u64>,
}

impl Packet {
    pub fn new(data: RuntimeData) -> Self {
        let pts = data.pts();
        Self { data, pts }
    }

    pub fn at(data: RuntimeData, pts: Option<u64>) -> Self {
        Self { data, pts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_storage() {
        let a = AudioSamples::from_vec((0..10).map(|i| i as f32).collect());
        let b = a.slice(2..6);
        assert_eq!(&*b, &[2.0, 3.0, 4.0, 5.0]);
        let c = b.slice(1..3);
        assert_eq!(&*c, &[3.0, 4.0]);
        assert!(Arc::ptr_eq(a.storage(), c.storage()));
        assert!(a.is_whole() && !b.is_whole());
        assert_eq!(AsRef::<[u8]>::as_ref(&c).len(), 8);
    }

    #[test]
    fn into_vec_takes_a_sole_vec_and_copies_otherwise() {
        let a = AudioSamples::from_vec(vec![1.0, 2.0, 3.0]);
        let ptr = a.as_ptr();
        let v = a.into_vec();
        assert_eq!(v.as_ptr(), ptr, "no copy");
        let b = AudioSamples::from_vec(vec![1.0, 2.0, 3.0]);
        let keep = b.clone();
        assert_eq!(b.into_vec(), vec![1.0, 2.0, 3.0]);
        assert_eq!(keep.slice(1..3).into_vec(), vec![2.0, 3.0]);
    }

    #[test]
    fn frames_to_ns_is_exact_for_common_rates() {
        assert_eq!(frames_to_ns(16000, 16000), 1_000_000_000);
        assert_eq!(frames_to_ns(480, 48000), 10_000_000);
        assert_eq!(frames_to_ns(1, 0), 1_000_000_000);
        // Past u64 in the product: the wide path, same result.
        assert_eq!(frames_to_ns(20_000_000_000, 48000), 416_666_666_666_666);
    }
}
