//! What crosses into and out of a module: the bytes of one input of the node's `input` kind,
//! and the data the bytes the module wrote make, of its `output` kind.

use std::borrow::Cow;

use crate::data::{AudioFrame, AudioSamples, Bytes, RuntimeData};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// f32 little-endian samples, interleaved.
    Audio,
    /// UTF-8.
    Text,
    /// JSON text.
    Json,
    Binary,
}

impl Kind {
    pub const NAMES: &'static [&'static str] = &["audio", "text", "json", "binary"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "audio" => Some(Self::Audio),
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            "binary" => Some(Self::Binary),
            _ => None,
        }
    }
}

/// Output bytes that are not what the node's `output` kind says.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum OutputError {
    #[error("it wrote {len} bytes of audio, not a whole number of {channels}-channel f32 frames")]
    PartialFrame { len: usize, channels: u16 },
    #[error("audio output needs audio input to take its rate, channels and timestamps from")]
    AudioWithoutAudioInput,
    #[error("its text output is not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    #[error("its JSON output does not parse: {0}")]
    NotJson(String),
}

/// The bytes the module gets for `data`; `None` when `data` is not of `kind` (it passes by).
pub fn encode(kind: Kind, data: &RuntimeData) -> Option<Cow<'_, [u8]>> {
    match (kind, data) {
        (Kind::Audio, RuntimeData::Audio(a)) => Some(Cow::Borrowed(a.samples.as_ref())),
        (Kind::Text, RuntimeData::Text(t)) => Some(Cow::Borrowed(t.as_bytes())),
        (Kind::Json, RuntimeData::Json(v)) => Some(Cow::Owned(v.to_string().into_bytes())),
        (Kind::Binary, RuntimeData::Binary(b)) => Some(Cow::Borrowed(b.as_ref())),
        _ => None,
    }
}

/// The data of `bytes` as the module's output for `input`; nothing for no bytes.
pub fn decode(
    kind: Kind,
    bytes: &[u8],
    input: &RuntimeData,
) -> Result<Option<RuntimeData>, OutputError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let data = match kind {
        Kind::Audio => {
            let RuntimeData::Audio(like) = input else {
                return Err(OutputError::AudioWithoutAudioInput);
            };
            RuntimeData::Audio(audio_like(like, bytes)?)
        }
        Kind::Text => RuntimeData::Text(std::str::from_utf8(bytes)?.to_owned()),
        Kind::Json => RuntimeData::Json(
            serde_json::from_slice(bytes).map_err(|e| OutputError::NotJson(e.to_string()))?,
        ),
        Kind::Binary => RuntimeData::Binary(Bytes::copy_from_slice(bytes)),
    };
    Ok(Some(data))
}

/// Samples in module memory, copied out, with `like`'s rate, channels, stream and timestamp.
fn audio_like(like: &AudioFrame, bytes: &[u8]) -> Result<AudioFrame, OutputError> {
    whole_frames(like, bytes.len())?;
    // Module memory is reused by the next call (one memcpy; wasm32 and the hosts we build for
    // are little-endian).
    let mut samples = vec![0f32; bytes.len() / 4];
    bytemuck::cast_slice_mut::<f32, u8>(&mut samples).copy_from_slice(bytes);
    Ok(frame_like(like, AudioSamples::from_vec(samples)))
}

fn whole_frames(like: &AudioFrame, len: usize) -> Result<(), OutputError> {
    let channels = like.channels.max(1);
    if len.is_multiple_of(4 * usize::from(channels)) {
        Ok(())
    } else {
        Err(OutputError::PartialFrame { len, channels })
    }
}

/// The module's audio output for `input`, from samples it lent (see `Guest::lend`), handed to
/// `emit` (built where it goes, not moved through a result); nothing for no samples.
pub fn lent_audio(
    samples: AudioSamples,
    input: &RuntimeData,
    emit: impl FnOnce(RuntimeData),
) -> Result<(), OutputError> {
    if samples.is_empty() {
        return Ok(());
    }
    let RuntimeData::Audio(like) = input else {
        return Err(OutputError::AudioWithoutAudioInput);
    };
    whole_frames(like, samples.len() * 4)?;
    emit(RuntimeData::Audio(frame_like(like, samples)));
    Ok(())
}

fn frame_like(like: &AudioFrame, samples: AudioSamples) -> AudioFrame {
    let channels = like.channels.max(1);
    let mut frame = AudioFrame::new(samples, like.sample_rate, channels);
    frame.stream_id = like.stream_id.clone();
    frame.pts = like.pts;
    frame.duration = Some(frame.frames_to_ns(frame.frames()));
    frame
}

/// Data a module sends to a service: bytes of the node's `input` kind, audio in the format of
/// the input being processed.
pub fn service_input(
    kind: Kind,
    bytes: &[u8],
    input: &RuntimeData,
) -> Result<RuntimeData, OutputError> {
    match decode(kind, bytes, input)? {
        Some(data) => Ok(data),
        None => Ok(match kind {
            Kind::Json => RuntimeData::Json(serde_json::Value::Null),
            Kind::Text => RuntimeData::Text(String::new()),
            _ => RuntimeData::Binary(Bytes::new()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stereo() -> RuntimeData {
        let mut f = AudioFrame::new(AudioSamples::from_vec(vec![0.5, -0.5]), 48_000, 2);
        f.pts = Some(7);
        RuntimeData::Audio(f)
    }

    #[test]
    fn audio_goes_in_as_le_f32_and_comes_back_with_the_inputs_format() {
        let input = stereo();
        let bytes = encode(Kind::Audio, &input).unwrap().into_owned();
        assert_eq!(
            bytes,
            [0.5f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
        let Some(RuntimeData::Audio(out)) = decode(Kind::Audio, &bytes, &input).unwrap() else {
            panic!()
        };
        assert_eq!(
            (out.sample_rate, out.channels, out.pts),
            (48_000, 2, Some(7))
        );
        assert_eq!(&out.samples[..], &[0.5, -0.5]);
        assert!(matches!(
            decode(Kind::Audio, &bytes[..4], &input),
            Err(OutputError::PartialFrame {
                len: 4,
                channels: 2
            })
        ));
    }

    #[test]
    fn other_kinds_pass_by_and_bad_outputs_are_named() {
        assert!(encode(Kind::Audio, &RuntimeData::Text("x".into())).is_none());
        assert!(matches!(
            decode(Kind::Json, b"{", &stereo()),
            Err(OutputError::NotJson(_))
        ));
        assert!(matches!(
            decode(Kind::Text, &[0xff], &stereo()),
            Err(OutputError::NotUtf8(_))
        ));
        assert!(matches!(decode(Kind::Json, b"", &stereo()), Ok(None)));
    }
}
