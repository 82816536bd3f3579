//! `FastResampleNode`: sample-rate conversion with rubato, plus channel mixing.
//!
//! The resampler's own delay is trimmed from the start and flushed out at the end, so output
//! timestamps line up with the input's and the output has exactly as many frames as the rate
//! ratio gives.

use rubato::{
    FastFixedIn, FftFixedIn, PolynomialDegree, ResamplerConstructionError, SincFixedIn,
    SincInterpolationParameters, SincInterpolationType, VecResampler, WindowFunction,
    calculate_cutoff,
};

use crate::data::{AudioFrame, AudioSamples, Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::audio_format::audio_input;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "target_rate",
        ParamType::Int {
            min: 1000,
            max: 768_000,
        },
        ParamDefault::Required,
        "output sample rate in Hz",
    ),
    ParamSpec::new(
        "source_rate",
        ParamType::Int {
            min: 1000,
            max: 768_000,
        },
        ParamDefault::Derived,
        "input sample rate in Hz; taken from the input when absent, input at another rate is refused when given",
    ),
    ParamSpec::new(
        "quality",
        ParamType::Enum(&["Low", "Medium", "High"]),
        ParamDefault::Str("Medium"),
        "Low: cubic polynomial, no anti-alias filter; Medium: 64-tap windowed sinc; High: FFT, steepest filter",
    ),
    ParamSpec::new(
        "channels",
        ParamType::Int { min: 1, max: 64 },
        ParamDefault::Derived,
        "output channels; the input is averaged down or copied up to this count (default: as the input)",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "FastResampleNode",
    aliases: &["AudioResample", "ResampleNode"],
    doc: "Resamples audio to target_rate and optionally mixes it to another channel count.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Resample::new(p))),
    format,
    latency_ns,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Quality {
    Low,
    Medium,
    High,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    target: u32,
    source: Option<u32>,
    quality: Quality,
    channels: Option<u16>,
}

impl Config {
    fn from(p: &Params) -> Self {
        Self {
            target: p.i64("target_rate").unwrap_or(16000) as u32,
            source: p.i64("source_rate").map(|r| r as u32),
            quality: match p.str("quality") {
                Some("Low") => Quality::Low,
                Some("High") => Quality::High,
                _ => Quality::Medium,
            },
            channels: p.i64("channels").map(|c| c as u16),
        }
    }

    fn check_rate(&self, rate: u32) -> Result<(), RateMismatch> {
        match self.source {
            Some(source_rate) if source_rate != rate => Err(RateMismatch {
                source_rate,
                input_rate: rate,
            }),
            _ => Ok(()),
        }
    }
}

/// Input at another rate than the `source_rate` param says.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("source_rate is {source_rate} Hz but the input is {input_rate} Hz")]
struct RateMismatch {
    source_rate: u32,
    input_rate: u32,
}

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    let cfg = Config::from(p);
    match audio_input("FastResampleNode", input)? {
        Some((rate, channels)) => {
            cfg.check_rate(rate)
                .map_err(|e| NodeError::BadInput(e.to_string()))?;
            Ok(StreamFormat::Audio {
                rate: cfg.target,
                channels: cfg.channels.unwrap_or(channels),
            })
        }
        // Unknown input (a Python node before it): known output once channels are given.
        None => Ok(cfg
            .channels
            .map_or(StreamFormat::Any, |channels| StreamFormat::Audio {
                rate: cfg.target,
                channels,
            })),
    }
}

fn latency_ns(p: &Params, input: &StreamFormat) -> u64 {
    let cfg = Config::from(p);
    let StreamFormat::Audio { rate, .. } = input else {
        return 0;
    };
    match build(cfg.quality, *rate, cfg.target, 1) {
        Ok(Some(r)) => {
            frames_to_ns(r.input_frames_next() as u64, *rate)
                + frames_to_ns(r.output_delay() as u64, cfg.target)
        }
        _ => 0,
    }
}

/// 10 ms of input per resampler call.
fn chunk_frames(rate: u32) -> usize {
    (rate as usize / 100).max(64)
}

fn build(
    quality: Quality,
    from: u32,
    to: u32,
    channels: usize,
) -> Result<Option<Box<dyn VecResampler<f32>>>, ResamplerConstructionError> {
    if from == to {
        return Ok(None);
    }
    let ratio = f64::from(to) / f64::from(from);
    let chunk = chunk_frames(from);
    let r: Box<dyn VecResampler<f32>> = match quality {
        Quality::Low => Box::new(FastFixedIn::new(
            ratio,
            1.0,
            PolynomialDegree::Cubic,
            chunk,
            channels,
        )?),
        Quality::Medium => {
            let window = WindowFunction::BlackmanHarris2;
            let params = SincInterpolationParameters {
                sinc_len: 64,
                f_cutoff: calculate_cutoff(64, window),
                interpolation: SincInterpolationType::Linear,
                oversampling_factor: 128,
                window,
            };
            Box::new(SincFixedIn::new(ratio, 1.0, params, chunk, channels)?)
        }
        Quality::High => Box::new(FftFixedIn::new(
            from as usize,
            to as usize,
            chunk,
            1,
            channels,
        )?),
    };
    Ok(Some(r))
}

struct State {
    in_rate: u32,
    in_channels: u16,
    out_channels: u16,
    resampler: Option<Box<dyn VecResampler<f32>>>,
    /// Mixed, deinterleaved input waiting for a whole resampler chunk.
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
    /// Output frames still to drop: the resampler's delay.
    skip: usize,
    frames_in: u64,
    frames_out: u64,
    first_pts: Option<u64>,
    template: AudioFrame,
}

struct Resample {
    cfg: Config,
    state: Option<State>,
}

impl Resample {
    fn new(p: &Params) -> Self {
        Self {
            cfg: Config::from(p),
            state: None,
        }
    }

    fn start(&self, frame: &AudioFrame) -> Result<State, NodeError> {
        self.cfg
            .check_rate(frame.sample_rate)
            .map_err(|e| NodeError::BadInput(e.to_string()))?;
        let out_channels = self.cfg.channels.unwrap_or(frame.channels);
        let resampler = build(
            self.cfg.quality,
            frame.sample_rate,
            self.cfg.target,
            usize::from(out_channels),
        )
        .map_err(|e| NodeError::BadInput(e.to_string()))?;
        let (skip, out_max) = resampler
            .as_ref()
            .map_or((0, 0), |r| (r.output_delay(), r.output_frames_max()));
        // Output frames copy the input's stream id and metadata, at the output format.
        let mut template = frame.clone();
        template.samples = AudioSamples::from_vec(Vec::new());
        template.sample_rate = self.cfg.target;
        template.channels = out_channels;
        Ok(State {
            in_rate: frame.sample_rate,
            in_channels: frame.channels,
            out_channels,
            resampler,
            input: vec![Vec::new(); usize::from(out_channels)],
            output: vec![vec![0.0; out_max]; usize::from(out_channels)],
            skip,
            frames_in: 0,
            frames_out: 0,
            first_pts: frame.pts,
            template,
        })
    }
}

impl State {
    /// Appends `samples` (interleaved, `in_channels`) to the per-channel input, mixed.
    fn push_mixed(&mut self, samples: &[f32]) {
        let (cin, cout) = (
            usize::from(self.in_channels),
            usize::from(self.out_channels),
        );
        for frame in samples.chunks_exact(cin) {
            if cin == cout {
                for (c, s) in frame.iter().enumerate() {
                    self.input[c].push(*s);
                }
            } else {
                for c in 0..cout {
                    // Output channel c takes the average of inputs c, c+cout, c+2*cout...
                    // (so mono gets the mean of all, and 1 -> n copies).
                    let picks = (c % cin..cin).step_by(cout).map(|i| frame[i]);
                    let (sum, n) = picks.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
                    self.input[c].push(if n > 0 {
                        sum / n as f32
                    } else {
                        frame[c % cin]
                    });
                }
            }
        }
        self.frames_in += (samples.len() / cin) as u64;
    }

    /// Interleaves `frames` output frames and emits them, after dropping the delay.
    fn emit(&mut self, source: &[Vec<f32>], mut start: usize, end: usize, out: &mut Emitter) {
        let dropped = self.skip.min(end - start);
        self.skip -= dropped;
        start += dropped;
        if start >= end {
            return;
        }
        let cout = usize::from(self.out_channels);
        let mut interleaved = Vec::with_capacity((end - start) * cout);
        for i in start..end {
            for ch in source.iter().take(cout) {
                interleaved.push(ch[i]);
            }
        }
        let frames = (end - start) as u64;
        let mut f = self.template.clone();
        f.samples = AudioSamples::from_vec(interleaved);
        f.pts = self
            .first_pts
            .map(|p| p + frames_to_ns(self.frames_out, f.sample_rate));
        f.duration = Some(frames_to_ns(frames, f.sample_rate));
        self.frames_out += frames;
        out.emit(RuntimeData::Audio(f));
    }

    fn run(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        let Some(mut r) = self.resampler.take() else {
            let input = std::mem::replace(
                &mut self.input,
                vec![Vec::new(); usize::from(self.out_channels)],
            );
            let n = input[0].len();
            self.emit(&input, 0, n, out);
            return Ok(());
        };
        let mut result = Ok(());
        while self.input[0].len() >= r.input_frames_next() {
            let mut output = std::mem::take(&mut self.output);
            match r.process_into_buffer(&self.input, &mut output, None) {
                Ok((used, made)) => {
                    for ch in &mut self.input {
                        ch.drain(..used);
                    }
                    self.emit(&output, 0, made, out);
                }
                Err(e) => result = Err(NodeError::Failed(e.to_string())),
            }
            self.output = output;
            if result.is_err() {
                break;
            }
        }
        self.resampler = Some(r);
        result
    }

    /// Pushes the held input and the resampler's delay out, ending on the exact frame count.
    fn flush(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        let Some(mut r) = self.resampler.take() else {
            return self.run(out);
        };
        let target = self.template.sample_rate;
        let expected = (u128::from(self.frames_in) * u128::from(target))
            .div_ceil(u128::from(self.in_rate)) as u64;
        let mut output = std::mem::take(&mut self.output);
        let mut rounds = 0;
        while self.frames_out < expected && rounds < 64 {
            rounds += 1;
            let input = if self.input[0].is_empty() {
                None
            } else {
                Some(&self.input[..])
            };
            let (used, made) = r
                .process_partial_into_buffer(input, &mut output, None)
                .map_err(|e| NodeError::Failed(e.to_string()))?;
            for ch in &mut self.input {
                ch.drain(..used.min(ch.len()));
            }
            let wanted = (expected - self.frames_out) as usize + self.skip;
            self.emit(&output, 0, made.min(wanted), out);
        }
        Ok(())
    }
}

impl Node for Resample {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Audio(frame) = input.data else {
            out.emit_at(input.data, input.pts);
            return Ok(());
        };
        if let Some(s) = &self.state
            && (s.in_rate != frame.sample_rate || s.in_channels != frame.channels)
        {
            // The format changed: finish the old stream, start anew.
            self.finish(out)?;
        }
        if self.state.is_none() {
            self.state = Some(self.start(&frame)?);
        }
        let st = self.state.as_mut().expect("state was just set");
        if st.first_pts.is_none() {
            st.first_pts = frame.pts;
        }
        st.push_mixed(&frame.samples);
        st.run(out)
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        match self.state.take() {
            Some(mut st) => st.flush(out),
            None => Ok(()),
        }
    }

    fn reset(&mut self) {
        self.state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(params: serde_json::Value) -> Resample {
        Resample::new(&crate::params::validate(PARAMS, params.as_object().unwrap()).unwrap())
    }

    fn sine(freq: f32, rate: u32, secs: f32, channels: u16) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let v = (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5;
                std::iter::repeat_n(v, usize::from(channels))
            })
            .collect()
    }

    /// Feeds `input` in 10 ms buffers and returns (all samples, pts of each output).
    fn run(n: &mut Resample, input: &[f32], rate: u32, channels: u16) -> (Vec<f32>, Vec<u64>) {
        let mut e = Emitter::default();
        let step = rate as usize / 100 * usize::from(channels);
        for (i, chunk) in input.chunks(step).enumerate() {
            let mut f = AudioFrame::new(AudioSamples::from_vec(chunk.to_vec()), rate, channels);
            f.pts = Some(i as u64 * 10_000_000);
            n.process(Packet::new(RuntimeData::Audio(f)), &mut e)
                .unwrap();
        }
        n.finish(&mut e).unwrap();
        let mut all = Vec::new();
        let mut pts = Vec::new();
        for p in e.packets {
            let RuntimeData::Audio(a) = p.data else {
                panic!()
            };
            assert_eq!(a.channels, n.cfg.channels.unwrap_or(channels));
            pts.push(a.pts.unwrap());
            all.extend_from_slice(&a.samples);
        }
        (all, pts)
    }

    /// Amplitude of `freq` in `x` (single-bin DFT), on the middle of the signal.
    fn tone_level(x: &[f32], freq: f32, rate: u32) -> f32 {
        let mid = &x[x.len() / 4..x.len() * 3 / 4];
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, v) in mid.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * f64::from(freq) * i as f64 / f64::from(rate);
            re += f64::from(*v) * ph.cos();
            im += f64::from(*v) * ph.sin();
        }
        (2.0 * (re * re + im * im).sqrt() / mid.len() as f64) as f32
    }

    #[test]
    fn sine_keeps_frequency_amplitude_and_length() {
        for quality in ["Low", "Medium", "High"] {
            let mut n = node(json!({"target_rate": 16000, "quality": quality}));
            let input = sine(1000.0, 48000, 1.0, 1);
            let (out, pts) = run(&mut n, &input, 48000, 1);
            assert_eq!(out.len(), 16000, "{quality}: exact length");
            let level = tone_level(&out, 1000.0, 16000);
            assert!((level - 0.5).abs() < 0.02, "{quality}: 1 kHz level {level}");
            assert!(
                tone_level(&out, 3000.0, 16000) < 0.01,
                "{quality}: no spurious tone"
            );
            assert_eq!(pts[0], 0, "{quality}: delay trimmed, timeline kept");
            assert!(pts.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn high_quality_filters_aliases() {
        // 7 kHz at 48 kHz would fold to 9 kHz-7 kHz... above the 8 kHz Nyquist of 16 kHz it
        // must vanish; 7.5 kHz stays below Nyquist, test 9 kHz instead.
        let mut n = node(json!({"target_rate": 16000, "quality": "High"}));
        let (out, _) = run(&mut n, &sine(9000.0, 48000, 1.0, 1), 48000, 1);
        assert!(tone_level(&out, 7000.0, 16000) < 0.01);
    }

    #[test]
    fn stereo_is_mixed_to_mono() {
        let mut n = node(json!({"target_rate": 16000, "channels": 1}));
        let input = sine(440.0, 44100, 0.5, 2);
        let (out, _) = run(&mut n, &input, 44100, 2);
        assert_eq!(out.len(), 8000);
        assert!((tone_level(&out, 440.0, 16000) - 0.5).abs() < 0.02);
    }

    #[test]
    fn same_rate_passes_samples_through() {
        let mut n = node(json!({"target_rate": 16000}));
        let input = sine(440.0, 16000, 0.1, 1);
        let (out, _) = run(&mut n, &input, 16000, 1);
        assert_eq!(out, input);
    }

    #[test]
    fn format_and_source_rate() {
        let p = crate::params::validate(
            PARAMS,
            json!({"target_rate": 16000, "source_rate": 48000, "channels": 1})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            format(
                &p,
                &StreamFormat::Audio {
                    rate: 48000,
                    channels: 2
                }
            ),
            Ok(StreamFormat::Audio {
                rate: 16000,
                channels: 1
            })
        );
        let e = format(
            &p,
            &StreamFormat::Audio {
                rate: 44100,
                channels: 2,
            },
        )
        .unwrap_err();
        assert!(
            matches!(&e, NodeError::BadInput(m)
                if m == "source_rate is 48000 Hz but the input is 44100 Hz"),
            "{e}"
        );
        assert!(
            latency_ns(
                &p,
                &StreamFormat::Audio {
                    rate: 48000,
                    channels: 1
                }
            ) >= 10_000_000
        );
    }
}
