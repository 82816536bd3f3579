//! What the stream-health nodes share: levels in dBFS that stay finite, the stream's timeline
//! (so a result says where in the input it belongs), cutting interleaved audio into fixed
//! windows that straddle input buffers, and the node around a check (`Windowed`): it passes
//! the audio through untouched and emits the check's results after it.

use crate::data::{AudioFrame, Packet, RuntimeData, frames_to_ns};
use crate::node::{Emitter, Node, NodeError, StreamFormat};
use crate::params::{ParamDefault, ParamSpec, ParamType};

use super::audio_format::audio_input;

/// A health node's window or interval param, in ms of audio (1 ms to 1 min).
pub const fn ms_param(name: &'static str, default: f64, doc: &'static str) -> ParamSpec {
    ParamSpec::new(
        name,
        ParamType::Float {
            min: 1.0,
            max: 60_000.0,
        },
        ParamDefault::Float(default),
        doc,
    )
}

/// A health node's level threshold, in dBFS (-100 to 0).
pub const fn dbfs_param(name: &'static str, default: f64, doc: &'static str) -> ParamSpec {
    ParamSpec::new(
        name,
        ParamType::Float {
            min: -100.0,
            max: 0.0,
        },
        ParamDefault::Float(default),
        doc,
    )
}

/// `format` of a health node: any audio, passed through.
pub fn passes_audio(node: &str, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    audio_input(node, input)?;
    Ok(input.clone())
}

/// What one health node computes over its windows.
pub trait WindowCheck: Send {
    /// The window length, in ms of audio.
    fn window_ms(&self) -> f64;
    /// Refuses input the check cannot judge (it reaches the graph as a node error).
    fn check_input(&self, _frame: &AudioFrame) -> Result<(), NodeError> {
        Ok(())
    }
    /// Starts over for a stream of `channels` channels (the first input, or a new format).
    fn restart(&mut self, channels: usize);
    /// One piece of interleaved audio of the window being filled.
    fn add(&mut self, piece: &[f32], channels: usize);
    /// The window of `frames` frames that started at stream frame `start` is complete: its
    /// results, each with the stream frame it is about.
    fn complete(&mut self, start: u64, frames: u64, timeline: &Timeline)
    -> Vec<(RuntimeData, u64)>;
}

/// A health node: a check, the stream's timeline and its windows.
pub struct Windowed<C> {
    check: C,
    timeline: Timeline,
    windows: Windows,
}

impl<C: WindowCheck> Windowed<C> {
    pub fn new(check: C) -> Self {
        Self {
            check,
            timeline: Timeline::default(),
            windows: Windows::new(1),
        }
    }
}

impl<C: WindowCheck> Node for Windowed<C> {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Audio(frame) = &input.data else {
            out.emit_at(input.data, input.pts);
            return Ok(());
        };
        self.check.check_input(frame)?;
        if !self.timeline.input(frame) {
            self.windows = Windows::new(self.timeline.frames_in(self.check.window_ms()));
            self.check.restart(self.timeline.channels());
        }
        let channels = self.timeline.channels();
        let mut results = Vec::new();
        for (piece, completed) in self
            .windows
            .split(&frame.samples, channels, self.timeline.frames)
        {
            self.check.add(piece, channels);
            if let Some(start) = completed {
                results.extend(
                    self.check
                        .complete(start, self.windows.size, &self.timeline),
                );
            }
        }
        self.timeline.frames += (frame.samples.len() / channels) as u64;
        out.emit_at(input.data, input.pts);
        for (json, at) in results {
            out.emit_at(json, Some(self.timeline.ns(at)));
        }
        Ok(())
    }

    fn reset(&mut self) {
        // The next input starts the stream (and the check) anew.
        self.timeline = Timeline::default();
        self.windows = Windows::new(1);
    }
}

/// The level reported for digital silence: JSON has no -inf.
pub const FLOOR_DB: f64 = -100.0;

/// A linear amplitude (RMS or peak, 1.0 = full scale) in dBFS, never below `FLOOR_DB`.
pub fn dbfs(amplitude: f64) -> f64 {
    if amplitude <= 0.0 {
        return FLOOR_DB;
    }
    (20.0 * amplitude.log10()).max(FLOOR_DB)
}

/// Rounds to 0.01, so results read well and compare in tests.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Frame counts of a stream on its timeline: anchored on the first input's timestamp, and
/// again after a gap of more than 20 ms (a source that skipped), as the VAD does.
#[derive(Default)]
pub struct Timeline {
    origin_ns: Option<u64>,
    rate: u32,
    channels: u16,
    /// Frames counted so far.
    pub frames: u64,
}

impl Timeline {
    /// Notes the next input (count its frames afterwards); false when its rate or channel
    /// count differs from the stream's so far: the count starts anew, and so must a node's
    /// windows.
    pub fn input(&mut self, frame: &AudioFrame) -> bool {
        let same = frame.sample_rate == self.rate && frame.channels == self.channels;
        if !same {
            self.rate = frame.sample_rate;
            self.channels = frame.channels;
            self.frames = 0;
            self.origin_ns = None;
        }
        if let Some(pts) = frame.pts {
            let expected = self
                .origin_ns
                .map(|o| o + frames_to_ns(self.frames, self.rate));
            if expected.is_none_or(|e| e.abs_diff(pts) > 20_000_000) {
                self.origin_ns = Some(pts.saturating_sub(frames_to_ns(self.frames, self.rate)));
            }
        }
        same
    }

    pub fn channels(&self) -> usize {
        usize::from(self.channels.max(1))
    }

    /// Nanoseconds on the timeline of frame `frame` (counted from the stream's start).
    pub fn ns(&self, frame: u64) -> u64 {
        self.origin_ns.unwrap_or(0) + frames_to_ns(frame, self.rate)
    }

    /// The same in milliseconds, to the microsecond.
    pub fn ms(&self, frame: u64) -> f64 {
        (self.ns(frame) as f64 / 1e3).round() / 1e3
    }

    /// Frames in `ms` milliseconds at the stream's rate (at least 1).
    pub fn frames_in(&self, ms: f64) -> u64 {
        ((ms * f64::from(self.rate) / 1000.0).round() as u64).max(1)
    }
}

/// Cuts interleaved audio into windows of a fixed number of frames, across buffers.
pub struct Windows {
    /// Frames per window.
    pub size: u64,
    /// Frames in the window being filled.
    pub filled: u64,
}

impl Windows {
    pub fn new(size: u64) -> Self {
        Self { size, filled: 0 }
    }

    /// Splits `samples` (interleaved, `channels` per frame; the stream's frame `first` is its
    /// first) at window ends, in order: each piece, and for a piece that completes a window
    /// the stream frame where that window started.
    pub fn split<'a>(
        &mut self,
        samples: &'a [f32],
        channels: usize,
        first: u64,
    ) -> Vec<(&'a [f32], Option<u64>)> {
        let frames = (samples.len() / channels) as u64;
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < frames {
            let take = (self.size - self.filled).min(frames - at);
            let (from, to) = (at as usize * channels, (at + take) as usize * channels);
            at += take;
            self.filled += take;
            let completed = (self.filled == self.size).then(|| first + at - self.size);
            if completed.is_some() {
                self.filled = 0;
            }
            pieces.push((&samples[from..to], completed));
        }
        pieces
    }
}

/// Signals with known faults, and a driver that checks the audio passes through unchanged.
#[cfg(test)]
pub mod testing {
    use serde_json::Value;

    use crate::data::{AudioFrame, AudioSamples, Packet, RuntimeData};
    use crate::node::{Emitter, Node, NodeSpec};

    /// `seconds` of a `freq` Hz sine of peak `amp`, the same on every channel, interleaved.
    pub fn sine(freq: f64, amp: f64, rate: u32, channels: usize, seconds: f64) -> Vec<f32> {
        let frames = (seconds * f64::from(rate)) as usize;
        (0..frames)
            .flat_map(|i| {
                let x =
                    amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin();
                std::iter::repeat_n(x as f32, channels)
            })
            .collect()
    }

    /// Runs `samples` through a node of `spec` in 20 ms buffers stamped from 0 ns; returns
    /// its JSON results. Every buffer must come out first and unchanged (the same samples,
    /// not a copy).
    pub fn results(
        spec: &NodeSpec,
        params: Value,
        samples: &[f32],
        rate: u32,
        channels: u16,
    ) -> Vec<Value> {
        let params = crate::params::validate(spec.params, params.as_object().expect("an object"))
            .expect("valid params");
        let mut node: Box<dyn Node> = (spec.create)(&params).expect("created");
        let piece = rate as usize / 50 * usize::from(channels);
        let mut found = Vec::new();
        for (i, chunk) in samples.chunks(piece).enumerate() {
            let mut frame = AudioFrame::new(AudioSamples::from_vec(chunk.to_vec()), rate, channels);
            frame.pts = Some(i as u64 * 20_000_000);
            let sent = frame.samples.clone();
            let mut out = Emitter::default();
            node.process(Packet::new(RuntimeData::Audio(frame)), &mut out)
                .expect("processed");
            let mut packets = out.into_packets().into_iter();
            match packets.next().map(|p| p.data) {
                Some(RuntimeData::Audio(back)) => {
                    assert!(
                        std::ptr::eq(back.samples.as_ptr(), sent.as_ptr()),
                        "audio was copied"
                    );
                }
                _ => panic!("buffer {i} did not come out first"),
            }
            for p in packets {
                let RuntimeData::Json(v) = p.data else {
                    panic!("a result that is not JSON")
                };
                let ns = p.pts.expect("results carry a timestamp");
                let ms = v["timestamp_ms"].as_f64().expect("timestamp_ms");
                assert!((ns as f64 / 1e6 - ms).abs() < 0.001, "{v}: pts {ns} ns");
                found.push(v);
            }
        }
        found
    }

    /// The results of one type.
    pub fn of_type<'a>(results: &'a [Value], kind: &str) -> Vec<&'a Value> {
        results.iter().filter(|v| v["type"] == kind).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_a_finite_level() {
        assert_eq!(dbfs(0.0), FLOOR_DB);
        assert_eq!(dbfs(1e-30), FLOOR_DB);
        assert!((dbfs(1.0)).abs() < 1e-12);
        assert!((dbfs(0.1) + 20.0).abs() < 1e-9);
    }

    #[test]
    fn windows_straddle_buffers_and_name_their_start() {
        let mut w = Windows::new(4);
        let lens = |pieces: Vec<(&[f32], Option<u64>)>| -> Vec<(usize, Option<u64>)> {
            pieces
                .into_iter()
                .map(|(p, done)| (p.len(), done))
                .collect()
        };
        // Stereo: 3 frames, then 6 frames.
        assert_eq!(lens(w.split(&[0.0; 6], 2, 0)), vec![(6, None)]);
        assert_eq!(
            lens(w.split(&[0.0; 12], 2, 3)),
            vec![(2, Some(0)), (8, Some(4)), (2, None)]
        );
        assert_eq!(w.filled, 1);
    }
}
