//! `AudioChunkerNode`: re-frames audio into chunks of exactly `chunk_size` interleaved samples.
//! Whole chunks inside an input are emitted as views of its samples, without a copy.

use crate::data::{AudioFrame, AudioSamples, Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::audio_format::audio_input;

static PARAMS: &[ParamSpec] = &[ParamSpec::new(
    "chunk_size",
    ParamType::Int {
        min: 1,
        max: 1 << 24,
    },
    ParamDefault::Int(512),
    "samples per chunk, counted over all channels (interleaved) as RemoteMedia counts them",
)];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "AudioChunkerNode",
    aliases: &["AudioChunker"],
    doc: "Re-frames audio into fixed chunks; the last, shorter chunk is emitted at end of stream.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Chunker::new(p))),
    format,
    latency_ns,
};

fn chunk_size(p: &Params) -> usize {
    p.i64("chunk_size").unwrap_or(512) as usize
}

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    if let Some((_, channels)) = audio_input("AudioChunkerNode", input)? {
        let chunk = chunk_size(p);
        if !chunk.is_multiple_of(usize::from(channels)) {
            return Err(NodeError::BadInput(format!(
                "chunk_size {chunk} is not a multiple of the {channels} channels"
            )));
        }
    }
    Ok(input.clone())
}

fn latency_ns(p: &Params, input: &StreamFormat) -> u64 {
    match input {
        StreamFormat::Audio { rate, channels } => frames_to_ns(
            (chunk_size(p) / usize::from((*channels).max(1))) as u64,
            *rate,
        ),
        _ => 0,
    }
}

struct Chunker {
    chunk: usize,
    pending: Vec<f32>,
    /// The frame `pending` came from: its format and the pts of its first sample.
    template: Option<AudioFrame>,
}

impl Chunker {
    fn new(p: &Params) -> Self {
        Self {
            chunk: chunk_size(p),
            pending: Vec::new(),
            template: None,
        }
    }

    fn emit_pending(&mut self, out: &mut Emitter) {
        if let Some(template) = self.template.take()
            && !self.pending.is_empty()
        {
            let samples = AudioSamples::from_vec(std::mem::take(&mut self.pending));
            out.emit(RuntimeData::Audio(with_samples(&template, samples, 0)));
        }
        self.pending.clear();
    }
}

/// A frame like `template` holding `samples`, starting `offset_frames` after it.
fn with_samples(template: &AudioFrame, samples: AudioSamples, offset_frames: usize) -> AudioFrame {
    let frames = samples.len() / usize::from(template.channels.max(1));
    AudioFrame {
        samples,
        sample_rate: template.sample_rate,
        channels: template.channels,
        stream_id: template.stream_id.clone(),
        pts: template
            .pts
            .map(|p| p + template.frames_to_ns(offset_frames)),
        duration: Some(template.frames_to_ns(frames)),
        metadata: template.metadata.clone(),
    }
}

impl Node for Chunker {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Audio(frame) = input.data else {
            out.emit_at(input.data, input.pts);
            return Ok(());
        };
        let channels = usize::from(frame.channels.max(1));
        if !self.chunk.is_multiple_of(channels) {
            return Err(NodeError::BadInput(format!(
                "chunk_size {} is not a multiple of the {channels} channels",
                self.chunk
            )));
        }
        if let Some(t) = &self.template
            && (t.sample_rate != frame.sample_rate || t.channels != frame.channels)
        {
            self.emit_pending(out);
        }
        let samples = &frame.samples;
        let mut offset = 0;
        if !self.pending.is_empty() {
            let take = (self.chunk - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            offset = take;
            if self.pending.len() == self.chunk {
                self.emit_pending(out);
            }
        }
        while samples.len() - offset >= self.chunk {
            let view = samples.slice(offset..offset + self.chunk);
            out.emit(RuntimeData::Audio(with_samples(
                &frame,
                view,
                offset / channels,
            )));
            offset += self.chunk;
        }
        if offset < samples.len() {
            if self.pending.is_empty() {
                let rest = samples.slice(offset..samples.len());
                self.template = Some(with_samples(&frame, rest, offset / channels));
            }
            self.pending.extend_from_slice(&samples[offset..]);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        self.emit_pending(out);
        Ok(())
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.template = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn chunker(size: usize) -> Chunker {
        let p = crate::params::validate(PARAMS, json!({"chunk_size": size}).as_object().unwrap())
            .unwrap();
        Chunker::new(&p)
    }

    fn audio(samples: Vec<f32>, channels: u16, pts: u64) -> Packet {
        let mut f = AudioFrame::new(AudioSamples::from_vec(samples), 1000, channels);
        f.pts = Some(pts);
        Packet::new(RuntimeData::Audio(f))
    }

    fn frames(e: &Emitter) -> Vec<(Vec<f32>, Option<u64>)> {
        e.packets
            .iter()
            .map(|p| match &p.data {
                RuntimeData::Audio(a) => (a.samples.to_vec(), a.pts),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn boundaries_and_timestamps() {
        let mut c = chunker(4);
        let mut e = Emitter::default();
        // 10 samples at 1000 Hz: two whole chunks, 2 samples held back.
        c.process(audio((0..10).map(|i| i as f32).collect(), 1, 0), &mut e)
            .unwrap();
        // 3 more: completes the held chunk (2 + 2), 1 held back.
        c.process(audio(vec![10.0, 11.0, 12.0], 1, 10_000_000), &mut e)
            .unwrap();
        c.finish(&mut e).unwrap();
        let got = frames(&e);
        assert_eq!(got[0], (vec![0.0, 1.0, 2.0, 3.0], Some(0)));
        assert_eq!(got[1], (vec![4.0, 5.0, 6.0, 7.0], Some(4_000_000)));
        assert_eq!(got[2], (vec![8.0, 9.0, 10.0, 11.0], Some(8_000_000)));
        assert_eq!(got[3], (vec![12.0], Some(12_000_000)));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn whole_chunks_share_input_memory() {
        let mut c = chunker(2);
        let mut e = Emitter::default();
        let input = audio(vec![1.0, 2.0, 3.0, 4.0], 1, 0);
        let RuntimeData::Audio(frame) = &input.data else {
            unreachable!()
        };
        let storage = Arc::clone(frame.samples.storage());
        c.process(input, &mut e).unwrap();
        for p in &e.packets {
            let RuntimeData::Audio(a) = &p.data else {
                unreachable!()
            };
            assert!(Arc::ptr_eq(a.samples.storage(), &storage));
        }
    }

    #[test]
    fn counts_interleaved_samples() {
        let mut c = chunker(4);
        let mut e = Emitter::default();
        // Stereo: 4 samples = 2 frames, so the second chunk starts 2 ms later.
        c.process(audio(vec![0.0; 8], 2, 0), &mut e).unwrap();
        let got = frames(&e);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, Some(2_000_000));
        let mut odd = chunker(3);
        let err = odd.process(audio(vec![0.0; 6], 2, 0), &mut e).unwrap_err();
        assert!(
            matches!(&err, NodeError::BadInput(m) if m.contains("multiple")),
            "{err:?}"
        );
    }

    #[test]
    fn reset_forgets_held_samples() {
        let mut c = chunker(4);
        let mut e = Emitter::default();
        c.process(audio(vec![1.0; 3], 1, 0), &mut e).unwrap();
        c.reset();
        c.finish(&mut e).unwrap();
        assert!(e.packets.is_empty());
    }
}
