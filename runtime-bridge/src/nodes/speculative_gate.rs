//! `SpeculativeVADGate`: lets speech through the moment the VAD hears it, before it is
//! confirmed, and takes back what turns out to be a false start.
//!
//! A VAD-first gate waits `min_speech_ms` (250 ms) of speech before it lets anything through.
//! This gate opens on the first frame whose speech probability reaches `vad_threshold` and
//! forwards, in order, the `lookback_ms` of audio before it and then every input buffer as it
//! arrives: unchanged and with no added delay. The decisions are SileroVADNode's (same model,
//! same segment rules): when the run is confirmed it says `speech_confirmed`; when it falls
//! silent before `min_speech_ms` it emits `CancelSpeculation { from_ms, to_ms }` covering all
//! the audio it let through for that run, and closes. Downstream, AudioBufferAccumulatorNode
//! drops the cancelled audio; Python nodes receive the `Control`; the GStreamer element turns
//! it into a `remotemedia-cancel-speculation` event.
//!
//! Audio after speech is let through for `pad_ms + lookahead_ms`; if the pause goes on the
//! gate holds the audio back until the VAD has decided (`min_silence_ms`): speech that resumes
//! gets the held pause forwarded first, so an utterance is never cut; speech that ended does
//! not leave the gate open on silence.

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use crate::data::{AudioFrame, ControlMessage, Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params, validate};

use super::audio_format::audio_input;
use super::resample;
use super::silero_model::{SileroModel, model_file};
use super::vad_segments::{Event, Rules, Segmenter};

/// Silero's rate; other input is resampled to it for the model only.
const VAD_RATE: u32 = 16_000;
const MS: u64 = 1_000_000;
/// A jump in input timestamps larger than this starts a new timeline.
const GAP_NS: u64 = 20 * MS;
/// The length of one model frame (512 samples at 16 kHz).
const FRAME_MS: usize = 32;

const fn ms_spec(name: &'static str, default: i64, max: i64, doc: &'static str) -> ParamSpec {
    ParamSpec::new(
        name,
        ParamType::Int { min: 0, max },
        ParamDefault::Int(default),
        doc,
    )
}

static PARAMS: &[ParamSpec] = &[
    ms_spec(
        "lookback_ms",
        150,
        5_000,
        "audio before the detected onset that is forwarded when the gate opens",
    ),
    ms_spec(
        "lookahead_ms",
        50,
        5_000,
        "audio after speech (beyond pad_ms) forwarded before the gate holds back a pause",
    ),
    ParamSpec::new(
        "vad_threshold",
        ParamType::Float { min: 0.0, max: 1.0 },
        ParamDefault::Float(0.5),
        "speech probability at or above which the gate opens",
    ),
    ms_spec(
        "min_speech_ms",
        250,
        60_000,
        "speech shorter than this is a false start and is cancelled",
    ),
    ms_spec(
        "min_silence_ms",
        100,
        60_000,
        "silence that ends speech (or cancels a run not yet confirmed)",
    ),
    ms_spec(
        "pad_ms",
        30,
        10_000,
        "padding added before each speech start and after each end",
    ),
    ParamSpec::new(
        "model_path",
        ParamType::Str,
        ParamDefault::Derived,
        "Silero ONNX model (default: the one the silero-vad Python package ships)",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "SpeculativeVADGate",
    aliases: &["SpeculativeVAD"],
    doc: "Forwards speech at once, before the VAD confirms it (Silero, as SileroVADNode); \
          a false start is taken back with a CancelSpeculation control and {type: \
          cancel_speculation, from_ms, to_ms}; confirmed speech emits {type: speech_confirmed}. \
          Counters speculations, confirmed, cancelled.",
    params: PARAMS,
    // One model frame per 32 ms of audio costs a fraction of a millisecond (see SileroVADNode).
    threading: Threading::Adaptive,
    create: |p| Ok(Box::new(Gate::new(p)?)),
    format,
    latency_ns: no_latency,
};

fn format(_: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    audio_input("SpeculativeVADGate", input)?;
    Ok(input.clone())
}

#[derive(Clone, Copy, Debug)]
struct Config {
    rules: Rules,
    lookback_ns: u64,
    /// How long the gate stays open after the last speech frame.
    hangover_ns: u64,
}

impl Config {
    fn from(p: &Params) -> Self {
        let ms = |name: &str| p.i64(name).unwrap_or(0) as u64;
        let samples = |name: &str| ms(name) * u64::from(VAD_RATE) / 1000;
        let threshold = p.f64("vad_threshold").unwrap_or(0.5) as f32;
        Self {
            rules: Rules {
                threshold,
                // SileroVADNode's default hysteresis.
                neg_threshold: (threshold - 0.15).max(0.0),
                min_speech: samples("min_speech_ms"),
                min_silence: samples("min_silence_ms"),
                pad: samples("pad_ms"),
            },
            lookback_ns: ms("lookback_ms") * MS,
            hangover_ns: (ms("pad_ms") + ms("lookahead_ms")) * MS,
        }
    }
}

/// A decision of the segmenter, with the time (ns) it was made and the end of the last
/// speech frame at that moment.
struct Heard {
    event: Event,
    at: u64,
    last_speech: u64,
}

/// An input buffer, with its place on the input timeline.
struct Held {
    packet: Packet,
    from: u64,
    to: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No speech: audio is kept for the lookback only.
    Closed,
    /// A run of speech not yet confirmed; audio from `from` (ns) has been let through.
    Speculating {
        from: u64,
    },
    Confirmed,
}

struct Gate {
    cfg: Config,
    model: SileroModel,
    /// Downmix and resample to the model's input, when the input is not 16 kHz mono.
    to_vad: Option<(u32, u16, Box<dyn Node>)>,
    segmenter: Segmenter,
    /// Model input not yet a whole frame.
    pending: Vec<f32>,
    /// Input time (ns) of model sample 0.
    origin: Option<u64>,
    /// Model samples received since `origin`.
    vad_received: u64,
    /// Where the next input buffer is expected to start (ns).
    next_pts: Option<u64>,
    phase: Phase,
    /// End of the last speech frame (ns), while speech goes on.
    last_speech: u64,
    /// Input not let through, oldest first: the lookback, or a pause being held back.
    held: VecDeque<Held>,
    /// End of the last buffer let through (ns).
    forwarded_to: u64,
}

impl Gate {
    fn new(p: &Params) -> Result<Self, NodeError> {
        let cfg = Config::from(p);
        let model = SileroModel::load(&model_file(p.str("model_path"))?, VAD_RATE)?;
        Ok(Self {
            cfg,
            model,
            to_vad: None,
            segmenter: Segmenter::default(),
            pending: Vec::new(),
            origin: None,
            vad_received: 0,
            next_pts: None,
            phase: Phase::Closed,
            last_speech: 0,
            held: VecDeque::new(),
            forwarded_to: 0,
        })
    }

    /// Input time (ns) of a model sample position.
    fn time_of(&self, sample: u64) -> u64 {
        self.origin.unwrap_or(0) + frames_to_ns(sample, VAD_RATE)
    }

    /// The model's input for one buffer: its samples as 16 kHz mono.
    fn vad_samples(&mut self, frame: &AudioFrame, pts: u64) -> Result<Vec<f32>, NodeError> {
        if frame.sample_rate == VAD_RATE && frame.channels == 1 {
            return Ok(frame.samples.to_vec());
        }
        let format = (frame.sample_rate, frame.channels);
        if self
            .to_vad
            .as_ref()
            .is_none_or(|(r, c, _)| (*r, *c) != format)
        {
            self.to_vad = Some((format.0, format.1, resampler_to_vad()?));
        }
        let (_, _, node) = self.to_vad.as_mut().expect("set above");
        let mut out = Emitter::default();
        let mut copy = frame.clone();
        copy.pts = Some(pts);
        node.process(Packet::new(RuntimeData::Audio(copy)), &mut out)?;
        Ok(out
            .into_packets()
            .into_iter()
            .flat_map(|p| match p.data {
                RuntimeData::Audio(a) => a.samples.to_vec(),
                _ => Vec::new(),
            })
            .collect())
    }

    /// Runs the model over the new samples; returns what it decided, in order.
    fn listen(&mut self, samples: Vec<f32>) -> Result<Vec<Heard>, NodeError> {
        self.vad_received += samples.len() as u64;
        self.pending.extend_from_slice(&samples);
        let window = self.model.window();
        let mut events = Vec::new();
        let mut offset = 0;
        while self.pending.len() - offset >= window {
            let prob = self.model.infer(&self.pending[offset..offset + window])?;
            offset += window;
            if prob >= self.cfg.rules.threshold {
                self.last_speech = self.time_of(self.segmenter.position + window as u64);
            }
            if let Some(ev) = self.segmenter.frame(&self.cfg.rules, prob, window as u64) {
                events.push(Heard {
                    event: ev,
                    at: self.time_of(self.segmenter.position),
                    last_speech: self.last_speech,
                });
            }
        }
        self.pending.drain(..offset);
        Ok(events)
    }

    fn ms(ns: u64) -> f64 {
        (ns as f64 / 1e3).round() / 1e3
    }

    fn act(&mut self, event: Event, at: u64, out: &mut Emitter) {
        match event {
            Event::Onset(sample) => self.open(self.time_of(sample), out),
            Event::Start(start) => {
                let from = match self.phase {
                    Phase::Speculating { from } => from,
                    // Confirmed in one frame (min_speech_ms 0): no speculation to speak of.
                    _ => {
                        self.open(self.time_of(start), out);
                        self.time_of(start)
                    }
                };
                self.phase = Phase::Confirmed;
                out.count("confirmed");
                let start_ms = Self::ms(self.time_of(start));
                out.emit_at(
                    RuntimeData::Json(json!({
                        "type": "speech_confirmed",
                        "timestamp_ms": start_ms,
                        "from_ms": Self::ms(from),
                        "confirmed_at_ms": Self::ms(at),
                    })),
                    Some(self.time_of(start)),
                );
            }
            Event::FalseStart => self.cancel(out),
            Event::End { start, end } => {
                self.phase = Phase::Closed;
                let end_ns = self.time_of(end);
                out.emit_at(
                    RuntimeData::Json(json!({
                        "type": "speech_end",
                        "is_speech_end": true,
                        "timestamp_ms": Self::ms(end_ns),
                        "speech_start_ms": Self::ms(self.time_of(start)),
                    })),
                    Some(end_ns),
                );
            }
        }
    }

    /// Opens the gate for a run of speech that began at `onset` (ns).
    fn open(&mut self, onset: u64, out: &mut Emitter) {
        let wanted = onset.saturating_sub(self.cfg.lookback_ns);
        // The first buffer let through: the oldest held one that reaches into the lookback.
        let from = self
            .held
            .iter()
            .find(|h| h.to > wanted)
            .map_or(onset, |h| h.from);
        self.phase = Phase::Speculating { from };
        out.count("speculations");
        let start = onset.saturating_sub(frames_to_ns(self.cfg.rules.pad, VAD_RATE));
        out.emit_at(
            RuntimeData::Json(json!({
                "type": "speech_start",
                "speculative": true,
                "is_speech_start": true,
                "timestamp_ms": Self::ms(start),
                "from_ms": Self::ms(from),
            })),
            Some(start),
        );
        self.held.retain(|h| h.to > wanted);
    }

    /// Takes back everything let through since the run began, and closes.
    fn cancel(&mut self, out: &mut Emitter) {
        let Phase::Speculating { from } = self.phase else {
            return;
        };
        self.phase = Phase::Closed;
        out.count("cancelled");
        let to = self.forwarded_to.max(from);
        let (from_ms, to_ms) = (Self::ms(from), Self::ms(to));
        out.emit_at(
            RuntimeData::Control(ControlMessage::CancelSpeculation { from_ms, to_ms }),
            Some(from),
        );
        out.emit_at(
            RuntimeData::Json(json!({
                "type": "cancel_speculation",
                "timestamp_ms": from_ms,
                "from_ms": from_ms,
                "to_ms": to_ms,
            })),
            Some(from),
        );
    }

    /// Lets through what the gate holds while it is open and speech is recent (as of `now`,
    /// on the model's timeline, so audio the model has not heard yet is not held); keeps only
    /// the lookback while it is closed. A pause held back is bounded by `min_silence_ms`: the
    /// model decides within it.
    fn flush(&mut self, now: u64, last_speech: u64, out: &mut Emitter) {
        match self.phase {
            Phase::Closed => {
                let keep_from = now.saturating_sub(self.cfg.lookback_ns);
                while self.held.front().is_some_and(|h| h.to <= keep_from) {
                    self.held.pop_front();
                }
            }
            _ if now.saturating_sub(last_speech) <= self.cfg.hangover_ns => {
                for h in self.held.drain(..) {
                    self.forwarded_to = h.to;
                    out.emit_at(h.packet.data, h.packet.pts);
                }
            }
            _ => {}
        }
    }

    /// One input buffer of at most one model frame.
    fn take(&mut self, frame: AudioFrame, out: &mut Emitter) -> Result<(), NodeError> {
        let from = frame.pts.or(self.next_pts).unwrap_or(0);
        let to = from + frame.frames_to_ns(frame.frames());
        if self.next_pts.is_none_or(|e| e.abs_diff(from) > GAP_NS) {
            // Anchor the model's timeline on the first input, and again after a gap.
            self.origin = Some(from.saturating_sub(frames_to_ns(self.vad_received, VAD_RATE)));
        }
        self.next_pts = Some(to);
        let samples = self.vad_samples(&frame, from)?;
        self.held.push_back(Held {
            packet: Packet::at(RuntimeData::Audio(frame), Some(from)),
            from,
            to,
        });
        for heard in self.listen(samples)? {
            // Audio up to a false start or an end belongs to the run it ends.
            if matches!(heard.event, Event::FalseStart | Event::End { .. }) {
                self.flush(heard.at, heard.last_speech, out);
            }
            self.act(heard.event, heard.at, out);
        }
        let now = self.time_of(self.segmenter.position);
        self.flush(now, self.last_speech, out);
        Ok(())
    }
}

/// FastResampleNode set up to make 16 kHz mono for the model.
fn resampler_to_vad() -> Result<Box<dyn Node>, NodeError> {
    let mut raw = Map::new();
    raw.insert("target_rate".into(), Value::from(VAD_RATE));
    raw.insert("channels".into(), Value::from(1));
    let params = validate(resample::SPEC.params, &raw).map_err(|problems| {
        NodeError::Config(format!(
            "cannot set up the resampler for the VAD: {problems:?}"
        ))
    })?;
    (resample::SPEC.create)(&params)
}

impl Node for Gate {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Audio(frame) = &input.data else {
            out.emit_at(input.data, input.pts);
            return Ok(());
        };
        if let Some(bad) = frame.samples.iter().position(|s| !s.is_finite()) {
            // One NaN would poison the model's recurrent state for the rest of the stream.
            return Err(NodeError::BadInput(format!(
                "input sample {bad} of this buffer is not a finite number"
            )));
        }
        let mut frame = frame.clone();
        frame.pts = frame.pts.or(input.pts);
        // The gate decides per model frame (32 ms): a longer buffer is cut into pieces that
        // share its samples.
        let piece = (frame.sample_rate as usize * FRAME_MS / 1000).max(1);
        if frame.frames() <= piece {
            return self.take(frame, out);
        }
        let channels = usize::from(frame.channels.max(1));
        let start = frame.pts.or(self.next_pts).unwrap_or(0);
        for first in (0..frame.frames()).step_by(piece) {
            let last = (first + piece).min(frame.frames());
            let mut part = frame.clone();
            part.samples = frame.samples.slice(first * channels..last * channels);
            part.pts = Some(start + frame.frames_to_ns(first));
            part.duration = Some(frame.frames_to_ns(last - first));
            self.take(part, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        // A stream that ends in a run not yet confirmed was not speech; one that ends in
        // speech ends that speech.
        let end = self.segmenter.position + self.pending.len() as u64;
        match self.phase {
            Phase::Speculating { .. } => self.cancel(out),
            Phase::Confirmed => {
                let start = self.segmenter.start;
                self.act(Event::End { start, end }, self.time_of(end), out);
            }
            Phase::Closed => {}
        }
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.model.reset();
        if let Some((_, _, node)) = self.to_vad.as_mut() {
            node.reset();
        }
        self.segmenter = Segmenter::default();
        self.pending.clear();
        self.origin = None;
        self.vad_received = 0;
        self.next_pts = None;
        self.phase = Phase::Closed;
        self.last_speech = 0;
        self.held.clear();
        self.forwarded_to = 0;
    }
}
