//! `SileroVADNode`: voice activity detection with the Silero model. Audio passes through
//! untouched; JSON events report speech starts and ends on the input's timeline.

use serde_json::json;

use crate::data::{Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::audio_format::audio_input;
use super::silero_model::{SileroModel, model_file};
use super::vad_segments::{Event, Rules, Segmenter};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "threshold",
        ParamType::Float { min: 0.0, max: 1.0 },
        ParamDefault::Float(0.5),
        "speech probability at or above which a frame is speech",
    ),
    ParamSpec::new(
        "neg_threshold",
        ParamType::Float { min: 0.0, max: 1.0 },
        ParamDefault::Derived,
        "probability below which speech ends (default: threshold - 0.15)",
    ),
    ParamSpec::new(
        "sampling_rate",
        ParamType::Int {
            min: 8000,
            max: 16000,
        },
        ParamDefault::Int(16000),
        "input sample rate: 16000 or 8000 Hz, mono",
    ),
    ParamSpec::new(
        "min_speech_duration_ms",
        ParamType::Int {
            min: 0,
            max: 60_000,
        },
        ParamDefault::Int(250),
        "speech shorter than this is a false start and is not reported",
    ),
    ParamSpec::new(
        "min_silence_duration_ms",
        ParamType::Int {
            min: 0,
            max: 60_000,
        },
        ParamDefault::Int(100),
        "silence needed before speech is reported as ended",
    ),
    ParamSpec::new(
        "speech_pad_ms",
        ParamType::Int {
            min: 0,
            max: 10_000,
        },
        ParamDefault::Int(30),
        "padding added before each start and after each end",
    ),
    ParamSpec::new(
        "model_path",
        ParamType::Str,
        ParamDefault::Derived,
        "Silero ONNX model (default: the one the silero-vad Python package ships)",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "SileroVADNode",
    aliases: &["SileroVAD", "VADNode"],
    doc: "Silero VAD v5/v6 on 512-sample 16 kHz frames; passes audio through and emits JSON \
          {has_speech, speech_probability, is_speech_start, is_speech_end, timestamp_ms}.",
    params: PARAMS,
    // Inference takes a fraction of a millisecond per frame: the sender runs it while its
    // queue is empty (no thread hand-over per buffer), its thread takes over when inputs
    // come faster than it keeps up with.
    threading: Threading::Adaptive,
    create: |p| Ok(Box::new(SileroVad::new(p)?)),
    format,
    latency_ns: no_latency,
};

#[derive(Clone, Copy, Debug)]
struct Config {
    rules: Rules,
    rate: u32,
}

impl Config {
    fn from(p: &Params) -> Result<Self, NodeError> {
        let threshold = p.f64("threshold").unwrap_or(0.5);
        let neg_threshold = p
            .f64("neg_threshold")
            .unwrap_or((threshold - 0.15).max(0.0));
        if neg_threshold > threshold {
            return Err(NodeError::Config(format!(
                "param \"neg_threshold\" ({neg_threshold}) must not exceed \"threshold\" ({threshold})"
            )));
        }
        let rate = p.i64("sampling_rate").unwrap_or(16000) as u32;
        if rate != 8000 && rate != 16000 {
            return Err(NodeError::Config(format!(
                "param \"sampling_rate\" must be 8000 or 16000, got {rate}"
            )));
        }
        let samples = |name: &str| p.i64(name).unwrap_or(0) as u64 * u64::from(rate) / 1000;
        Ok(Self {
            rules: Rules {
                threshold: threshold as f32,
                neg_threshold: neg_threshold as f32,
                min_speech: samples("min_speech_duration_ms"),
                min_silence: samples("min_silence_duration_ms"),
                pad: samples("speech_pad_ms"),
            },
            rate,
        })
    }
}

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    let cfg = Config::from(p)?;
    if let Some((rate, channels)) = audio_input("SileroVADNode", input)?
        && (rate != cfg.rate || channels != 1)
    {
        return Err(NodeError::BadInput(format!(
            "needs mono audio at {} Hz; put a FastResampleNode with \"target_rate\": {}, \
             \"channels\": 1 before it",
            cfg.rate, cfg.rate
        )));
    }
    Ok(input.clone())
}

struct SileroVad {
    cfg: Config,
    model: SileroModel,
    segmenter: Segmenter,
    pending: Vec<f32>,
    /// Running time (ns) of stream sample 0; set by the first timestamped input.
    origin: Option<u64>,
    /// Samples received.
    received: u64,
}

impl SileroVad {
    fn new(p: &Params) -> Result<Self, NodeError> {
        let cfg = Config::from(p)?;
        let model = SileroModel::load(&model_file(p.str("model_path"))?, cfg.rate)?;
        Ok(Self {
            cfg,
            model,
            segmenter: Segmenter::default(),
            pending: Vec::new(),
            origin: None,
            received: 0,
        })
    }

    fn ms(&self, sample: u64) -> f64 {
        let ns = self.origin.unwrap_or(0) + frames_to_ns(sample, self.cfg.rate);
        (ns as f64 / 1e6 * 1000.0).round() / 1000.0
    }

    /// A speech end, also saying where that speech began.
    fn end_json(&self, prob: f32, start: u64, end: u64) -> RuntimeData {
        let mut j = self.event_json(prob, false, true, end);
        if let RuntimeData::Json(v) = &mut j {
            v["speech_start_ms"] = self.ms(start).into();
        }
        j
    }

    fn event_json(&self, prob: f32, start: bool, end: bool, at: u64) -> RuntimeData {
        RuntimeData::Json(json!({
            "has_speech": self.segmenter.triggered,
            "speech_probability": prob,
            "is_speech_start": start,
            "is_speech_end": end,
            "timestamp_ms": self.ms(at),
        }))
    }
}

impl Node for SileroVad {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Audio(frame) = &input.data else {
            out.emit_at(input.data, input.pts);
            return Ok(());
        };
        if frame.sample_rate != self.cfg.rate || frame.channels != 1 {
            return Err(NodeError::BadInput(format!(
                "needs mono audio at {} Hz, got {} Hz with {} channels",
                self.cfg.rate, frame.sample_rate, frame.channels
            )));
        }
        if let Some(bad) = frame.samples.iter().position(|s| !s.is_finite()) {
            // One NaN would poison the model's recurrent state for the rest of the stream.
            return Err(NodeError::BadInput(format!(
                "input sample {bad} of this buffer is not a finite number"
            )));
        }
        if let Some(pts) = frame.pts {
            // Anchor the timeline on the first input, and again after a gap of over 20 ms.
            let expected = self
                .origin
                .map(|o| o + frames_to_ns(self.received, self.cfg.rate));
            if expected.is_none_or(|e| e.abs_diff(pts) > 20_000_000) {
                self.origin = Some(pts.saturating_sub(frames_to_ns(self.received, self.cfg.rate)));
            }
        }
        self.received += frame.samples.len() as u64;
        self.pending.extend_from_slice(&frame.samples);
        let window = self.model.window();
        let mut last_prob = None;
        let mut events = Vec::new();
        let mut offset = 0;
        while self.pending.len() - offset >= window {
            let prob = self.model.infer(&self.pending[offset..offset + window])?;
            offset += window;
            last_prob = Some(prob);
            // This node reports segments only; a run not yet confirmed is the gate's concern.
            if let Some(ev @ (Event::Start(_) | Event::End { .. })) =
                self.segmenter.frame(&self.cfg.rules, prob, window as u64)
            {
                events.push((ev, prob));
            }
        }
        self.pending.drain(..offset);
        let pts = input.pts;
        out.emit_at(input.data, pts);
        for (ev, prob) in &events {
            let (json, at) = match ev {
                Event::Start(s) => (self.event_json(*prob, true, false, *s), *s),
                Event::End { start, end } => (self.end_json(*prob, *start, *end), *end),
                Event::Onset(_) | Event::FalseStart => continue,
            };
            let at_ns = self.origin.map(|o| o + frames_to_ns(at, self.cfg.rate));
            out.emit_at(json, at_ns);
        }
        if events.is_empty()
            && let Some(prob) = last_prob
        {
            let at = self.segmenter.position - window as u64;
            out.emit_at(self.event_json(prob, false, false, at), pts);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.model.reset();
        self.segmenter = Segmenter::default();
        self.pending.clear();
        self.origin = None;
        self.received = 0;
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        // A stream that ends in speech ends that speech.
        if self.segmenter.triggered {
            let end = self.segmenter.position + self.pending.len() as u64;
            let start = self.segmenter.start;
            self.segmenter.triggered = false;
            let j = self.end_json(0.0, start, end);
            let at_ns = self.origin.map(|o| o + frames_to_ns(end, self.cfg.rate));
            out.emit_at(j, at_ns);
        }
        self.reset();
        Ok(())
    }
}
