//! `AudioBufferAccumulatorNode`: gathers the audio of one utterance, from a VAD speech start
//! to its end, and emits it as one audio frame. It reads the JSON events of a SileroVADNode
//! (or any node that emits `is_speech_start`/`is_speech_end` with `timestamp_ms`) placed
//! before it, and keeps enough recent audio to reach back to a start that the VAD reports
//! late (after `min_speech_duration_ms`). After a SpeculativeVADGate, an utterance begins at
//! the gate's speculative start, and a `CancelSpeculation` control drops it and its audio.

use std::collections::VecDeque;

use crate::data::{AudioFrame, AudioSamples, ControlMessage, Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::audio_format::audio_input;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "min_utterance_duration_ms",
        ParamType::Int {
            min: 0,
            max: 600_000,
        },
        ParamDefault::Int(250),
        "utterances shorter than this are dropped",
    ),
    ParamSpec::new(
        "max_utterance_duration_ms",
        ParamType::Int {
            min: 100,
            max: 600_000,
        },
        ParamDefault::Int(30_000),
        "longer speech is cut into utterances of this length",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "AudioBufferAccumulatorNode",
    aliases: &["AudioAccumulator"],
    doc: "Gathers the audio between a VAD speech start and end (JSON events from the node before it) \
          into one utterance; emits only utterances.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Accumulator::new(p)?)),
    format,
    latency_ns: no_latency,
};

/// Audio kept while no speech is going on, so a late-reported start still finds its audio.
const LOOKBACK_NS: u64 = 2_000_000_000;

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    check(p)?;
    audio_input("AudioBufferAccumulatorNode", input)?;
    Ok(input.clone())
}

fn check(p: &Params) -> Result<(u64, u64), NodeError> {
    let min = p.i64("min_utterance_duration_ms").unwrap_or(250) as u64;
    let max = p.i64("max_utterance_duration_ms").unwrap_or(30_000) as u64;
    if min > max {
        return Err(NodeError::Config(format!(
            "param \"min_utterance_duration_ms\" ({min}) exceeds \"max_utterance_duration_ms\" ({max})"
        )));
    }
    Ok((min * 1_000_000, max * 1_000_000))
}

struct Accumulator {
    min_ns: u64,
    max_ns: u64,
    /// Recent frames, oldest first, each with its start time.
    frames: VecDeque<AudioFrame>,
    /// Where the current utterance starts, while speech goes on.
    speech_from: Option<u64>,
    /// Running time of the next sample when frames carry no timestamps.
    clock: u64,
}

impl Accumulator {
    fn new(p: &Params) -> Result<Self, NodeError> {
        let (min_ns, max_ns) = check(p)?;
        Ok(Self {
            min_ns,
            max_ns,
            frames: VecDeque::new(),
            speech_from: None,
            clock: 0,
        })
    }

    fn end_of(frame: &AudioFrame) -> u64 {
        frame.pts.unwrap_or(0) + frame.frames_to_ns(frame.frames())
    }

    /// Emits the audio in [from, to) as one frame, if it is long enough.
    fn emit(&self, from: u64, to: u64, out: &mut Emitter) {
        if to.saturating_sub(from) < self.min_ns.max(1) {
            return;
        }
        let Some(first) = self.frames.front() else {
            return;
        };
        let mut samples = Vec::new();
        for f in &self.frames {
            let start = f.pts.unwrap_or(0);
            let ch = usize::from(f.channels.max(1));
            let rate = u64::from(f.sample_rate);
            let frame_index = |t: u64| {
                ((t.saturating_sub(start)) as u128 * rate as u128 / 1_000_000_000) as usize
            };
            let lo = frame_index(from.max(start)).min(f.frames());
            let hi = frame_index(to.min(Self::end_of(f))).min(f.frames());
            if hi > lo {
                samples.extend_from_slice(&f.samples[lo * ch..hi * ch]);
            }
        }
        if samples.is_empty() {
            return;
        }
        let mut utterance = AudioFrame::new(
            AudioSamples::from_vec(samples),
            first.sample_rate,
            first.channels,
        );
        utterance.stream_id = first.stream_id.clone();
        utterance.pts = Some(from.max(first.pts.unwrap_or(0)));
        utterance.duration = Some(utterance.frames_to_ns(utterance.frames()));
        out.emit(RuntimeData::Audio(utterance));
    }

    /// Drops frames that end before `t`.
    fn forget_before(&mut self, t: u64) {
        while self.frames.front().is_some_and(|f| Self::end_of(f) <= t) {
            self.frames.pop_front();
        }
    }

    /// Drops the frames that lie within [from, to).
    fn drop_between(&mut self, from: u64, to: u64) {
        self.frames
            .retain(|f| f.pts.unwrap_or(0) < from || Self::end_of(f) > to);
    }

    fn event_time(packet: &Packet, json: &serde_json::Value) -> Option<u64> {
        json.get("timestamp_ms")
            .and_then(serde_json::Value::as_f64)
            .map(|ms| (ms * 1e6).round() as u64)
            .or(packet.pts)
    }
}

impl Node for Accumulator {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        match &input.data {
            RuntimeData::Audio(frame) => {
                let mut frame = frame.clone();
                let pts = *frame.pts.get_or_insert(self.clock);
                self.clock = pts + frames_to_ns(frame.frames() as u64, frame.sample_rate);
                let end = Self::end_of(&frame);
                self.frames.push_back(frame);
                match self.speech_from {
                    Some(from) if end.saturating_sub(from) >= self.max_ns => {
                        let cut = from + self.max_ns;
                        self.emit(from, cut, out);
                        self.speech_from = Some(cut);
                        self.forget_before(cut);
                    }
                    Some(_) => {}
                    None => self.forget_before(end.saturating_sub(LOOKBACK_NS)),
                }
            }
            RuntimeData::Json(json) => {
                let flag =
                    |name: &str| json.get(name).and_then(serde_json::Value::as_bool) == Some(true);
                if flag("is_speech_start") && self.speech_from.is_none() {
                    let at = Self::event_time(&input, json).unwrap_or(self.clock);
                    self.speech_from = Some(at);
                    self.forget_before(at);
                } else if flag("is_speech_end")
                    && let Some(from) = self.speech_from.take()
                {
                    let to = Self::event_time(&input, json).unwrap_or(self.clock);
                    self.emit(from, to, out);
                    self.forget_before(to);
                }
            }
            RuntimeData::Control(ControlMessage::CancelSpeculation { from_ms, to_ms }) => {
                // A speculative gate before us let through a false start: what it covers is
                // not speech, and the utterance it began is no utterance.
                // The times are in ms with µs precision: widen by 1 µs so rounding keeps
                // no buffer at either edge.
                let from = ((from_ms * 1e6) as u64).saturating_sub(1_000);
                let to = (to_ms * 1e6) as u64 + 1_000;
                if self.speech_from.is_some_and(|s| s >= from && s < to) {
                    self.speech_from = None;
                }
                self.drop_between(from, to);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        if let Some(from) = self.speech_from.take() {
            let to = self.frames.back().map_or(from, Self::end_of);
            self.emit(from, to, out);
        }
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.frames.clear();
        self.speech_from = None;
        self.clock = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(params: serde_json::Value) -> Accumulator {
        Accumulator::new(&crate::params::validate(PARAMS, params.as_object().unwrap()).unwrap())
            .unwrap()
    }

    /// 100 ms of audio at 1 kHz whose samples count up from `first`.
    fn audio(ms: u64) -> Packet {
        let samples: Vec<f32> = (0..100).map(|i| (ms + i) as f32).collect();
        let mut f = AudioFrame::new(AudioSamples::from_vec(samples), 1000, 1);
        f.pts = Some(ms * 1_000_000);
        Packet::new(RuntimeData::Audio(f))
    }

    fn event(start: bool, ms: u64) -> Packet {
        let key = if start {
            "is_speech_start"
        } else {
            "is_speech_end"
        };
        Packet::at(
            RuntimeData::Json(json!({ key: true, "timestamp_ms": ms as f64 })),
            Some(ms * 1_000_000),
        )
    }

    fn utterances(e: &Emitter) -> Vec<(u64, Vec<f32>)> {
        e.packets
            .iter()
            .map(|p| match &p.data {
                RuntimeData::Audio(a) => (a.pts.unwrap() / 1_000_000, a.samples.to_vec()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn one_utterance_from_start_to_end_including_audio_before_the_late_start_event() {
        let mut n = node(json!({}));
        let mut e = Emitter::default();
        for ms in (0..1000).step_by(100) {
            n.process(audio(ms), &mut e).unwrap();
            if ms == 600 {
                // Reported late: speech began at 250 ms.
                n.process(event(true, 250), &mut e).unwrap();
            }
        }
        n.process(event(false, 850), &mut e).unwrap();
        let got = utterances(&e);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 250);
        let expected: Vec<f32> = (250..850).map(|v| v as f32).collect();
        assert_eq!(got[0].1, expected);
    }

    #[test]
    fn short_utterances_are_dropped_and_long_ones_cut() {
        let mut n =
            node(json!({"min_utterance_duration_ms": 300, "max_utterance_duration_ms": 400}));
        let mut e = Emitter::default();
        n.process(audio(0), &mut e).unwrap();
        n.process(event(true, 0), &mut e).unwrap();
        n.process(audio(100), &mut e).unwrap();
        n.process(event(false, 150), &mut e).unwrap();
        assert!(e.packets.is_empty(), "150 ms is too short");
        n.process(event(true, 200), &mut e).unwrap();
        for ms in (200..1000).step_by(100) {
            n.process(audio(ms), &mut e).unwrap();
        }
        n.finish(&mut e).unwrap();
        let got = utterances(&e);
        let starts: Vec<u64> = got.iter().map(|u| u.0).collect();
        assert_eq!(
            starts,
            vec![200, 600],
            "cut at 400 ms, the rest at end of stream"
        );
        assert_eq!(got[0].1.len(), 400);
        assert_eq!(got[1].1.len(), 400);
    }

    #[test]
    fn a_cancelled_speculation_drops_its_start_and_its_audio() {
        let mut n = node(json!({"min_utterance_duration_ms": 0}));
        let mut e = Emitter::default();
        // A gate's speculative start at 100 ms, taken back at 300 ms.
        n.process(event(true, 100), &mut e).unwrap();
        n.process(audio(100), &mut e).unwrap();
        n.process(audio(200), &mut e).unwrap();
        let cancel = ControlMessage::CancelSpeculation {
            from_ms: 100.0,
            to_ms: 300.0,
        };
        n.process(Packet::at(RuntimeData::Control(cancel), None), &mut e)
            .unwrap();
        assert!(n.frames.is_empty(), "cancelled audio is dropped");
        // The end of that run says nothing; real speech later is one utterance.
        n.process(event(false, 300), &mut e).unwrap();
        assert!(e.packets.is_empty(), "{:?}", e.packets);
        n.process(event(true, 500), &mut e).unwrap();
        n.process(audio(500), &mut e).unwrap();
        n.process(event(false, 600), &mut e).unwrap();
        let got = utterances(&e);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 500);
        assert_eq!(got[0].1, (500..600).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn min_above_max_is_refused() {
        let p = crate::params::validate(
            PARAMS,
            json!({"min_utterance_duration_ms": 5000, "max_utterance_duration_ms": 1000})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let err = Accumulator::new(&p).err().unwrap();
        assert!(
            matches!(&err, NodeError::Config(m) if m.contains("exceeds")),
            "{err:?}"
        );
    }
}
