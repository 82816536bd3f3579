//! `SileroVADNode`: voice activity detection with the Silero model. Audio passes through
//! untouched; JSON events report speech starts and ends on the input's timeline.

use serde_json::json;

use crate::data::{Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::audio_format::audio_input;
use super::silero_model::{SileroModel, model_file};

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
    threshold: f32,
    neg_threshold: f32,
    rate: u32,
    min_speech: u64,
    min_silence: u64,
    pad: u64,
}

impl Config {
    fn from(p: &Params) -> Result<Self, String> {
        let threshold = p.f64("threshold").unwrap_or(0.5);
        let neg_threshold = p
            .f64("neg_threshold")
            .unwrap_or((threshold - 0.15).max(0.0));
        if neg_threshold > threshold {
            return Err(format!(
                "param \"neg_threshold\" ({neg_threshold}) must not exceed \"threshold\" ({threshold})"
            ));
        }
        let rate = p.i64("sampling_rate").unwrap_or(16000) as u32;
        if rate != 8000 && rate != 16000 {
            return Err(format!(
                "param \"sampling_rate\" must be 8000 or 16000, got {rate}"
            ));
        }
        let samples = |name: &str| p.i64(name).unwrap_or(0) as u64 * u64::from(rate) / 1000;
        Ok(Self {
            threshold: threshold as f32,
            neg_threshold: neg_threshold as f32,
            rate,
            min_speech: samples("min_speech_duration_ms"),
            min_silence: samples("min_silence_duration_ms"),
            pad: samples("speech_pad_ms"),
        })
    }
}

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, String> {
    let cfg = Config::from(p)?;
    if let Some((rate, channels)) = audio_input("SileroVADNode", input)?
        && (rate != cfg.rate || channels != 1)
    {
        return Err(format!(
            "needs mono audio at {} Hz; put a FastResampleNode with \"target_rate\": {}, \
             \"channels\": 1 before it",
            cfg.rate, cfg.rate
        ));
    }
    Ok(input.clone())
}

/// The speech segmenter of Silero's VADIterator, with min_speech_duration_ms on top: a start
/// is reported once speech has lasted that long, with the time speech began. As in Silero's
/// get_speech_timestamps, a dip below neg_threshold shorter than min_silence_duration_ms
/// neither ends a segment nor restarts one that is not yet confirmed.
#[derive(Default)]
struct Segmenter {
    /// Samples seen (end of the last frame).
    position: u64,
    triggered: bool,
    /// Where a not yet confirmed speech run began (frame start).
    candidate: Option<u64>,
    /// Where the current dip inside that run began.
    candidate_dip: Option<u64>,
    temp_end: u64,
    start: u64,
}

enum Event {
    Start(u64),
    End { start: u64, end: u64 },
}

impl Segmenter {
    fn frame(&mut self, cfg: &Config, prob: f32, window: u64) -> Option<Event> {
        self.position += window;
        let frame_start = self.position - window;
        if prob >= cfg.threshold {
            self.temp_end = 0;
            self.candidate_dip = None;
            if !self.triggered {
                let first = *self.candidate.get_or_insert(frame_start);
                if self.position - first >= cfg.min_speech.max(1) || cfg.min_speech == 0 {
                    self.triggered = true;
                    self.candidate = None;
                    self.start = first.saturating_sub(cfg.pad);
                    return Some(Event::Start(self.start));
                }
            }
        } else if prob < cfg.neg_threshold {
            if self.candidate.is_some() {
                let dip = *self.candidate_dip.get_or_insert(frame_start);
                if self.position - dip >= cfg.min_silence {
                    // Silence long enough: the run was too short to be speech.
                    self.candidate = None;
                    self.candidate_dip = None;
                }
            }
            if self.triggered {
                if self.temp_end == 0 {
                    self.temp_end = frame_start;
                }
                if self.position - self.temp_end >= cfg.min_silence {
                    let end = self.temp_end + cfg.pad;
                    self.temp_end = 0;
                    self.triggered = false;
                    return Some(Event::End {
                        start: self.start,
                        end,
                    });
                }
            }
        }
        None
    }
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
        let cfg = Config::from(p).map_err(NodeError::Config)?;
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
            if let Some(ev) = self.segmenter.frame(&self.cfg, prob, window as u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min_speech_ms: u64) -> Config {
        Config {
            threshold: 0.5,
            neg_threshold: 0.35,
            rate: 16000,
            min_speech: min_speech_ms * 16,
            min_silence: 100 * 16,
            pad: 30 * 16,
        }
    }

    fn run(seg: &mut Segmenter, cfg: &Config, probs: &[f32]) -> Vec<String> {
        probs
            .iter()
            .filter_map(|p| seg.frame(cfg, *p, 512))
            .map(|e| match e {
                Event::Start(s) => format!("start {s}"),
                Event::End { start, end } => format!("end {start}..{end}"),
            })
            .collect()
    }

    #[test]
    fn start_and_end_with_padding() {
        let c = cfg(0);
        let mut s = Segmenter::default();
        // 2 silent frames, 10 speech, 4 silent (4*512 = 2048 >= 1600 silence samples).
        let mut probs = vec![0.1; 2];
        probs.extend([0.9; 10]);
        probs.extend([0.1; 5]);
        let ev = run(&mut s, &c, &probs);
        assert_eq!(
            ev,
            vec![
                format!("start {}", 1024 - 480),
                format!("end {}..{}", 1024 - 480, 12 * 512 + 480)
            ]
        );
    }

    #[test]
    fn short_bursts_are_not_speech() {
        let c = cfg(250); // 4000 samples = 8 frames
        let mut s = Segmenter::default();
        let mut probs = vec![0.9; 3];
        probs.extend([0.1; 5]);
        probs.extend([0.9; 9]);
        let ev = run(&mut s, &c, &probs);
        assert_eq!(ev, vec![format!("start {}", 8 * 512 - 480)]);
    }

    #[test]
    fn a_one_frame_dip_keeps_a_pending_start() {
        // Unseen espeak-ng speech: 0.52, 0.97, 1.0, 1.0, 1.0, one 32 ms frame at 0.001, then
        // speech again. The start stays at the first frame, as Silero's reference has it; it
        // was reported six frames (192 ms) late when the dip restarted the pending run.
        let c = cfg(250);
        let mut s = Segmenter::default();
        let mut probs = vec![0.52, 0.97, 1.0, 1.0, 1.0, 0.001];
        probs.extend([0.98; 10]);
        assert_eq!(run(&mut s, &c, &probs), vec!["start 0".to_string()]);
    }

    #[test]
    fn a_dip_as_long_as_min_silence_drops_a_pending_start() {
        let c = cfg(250); // min_silence 100 ms = 1600 samples: 4 frames
        let mut s = Segmenter::default();
        let mut probs = vec![0.9; 3];
        probs.extend([0.01; 4]);
        probs.extend([0.9; 9]);
        assert_eq!(
            run(&mut s, &c, &probs),
            vec![format!("start {}", 7 * 512 - 480)]
        );
    }

    #[test]
    fn hysteresis_between_thresholds() {
        let c = cfg(0);
        let mut s = Segmenter::default();
        let mut probs = vec![0.9; 2];
        probs.extend([0.4; 20]); // between neg_threshold and threshold: still speech
        assert_eq!(run(&mut s, &c, &probs).len(), 1);
        assert!(s.triggered);
    }
}
