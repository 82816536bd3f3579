//! `ClippingDetectorNode`: windows in which the audio hits the ceiling (a share of samples at
//! or above the saturation threshold) or is squashed flat (a crest factor, peak over RMS,
//! below the limit). At most one result per window; audio passes through unchanged.

use serde_json::json;

use crate::data::RuntimeData;
use crate::node::{NodeSpec, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::health::{Timeline, WindowCheck, Windowed, dbfs, ms_param, passes_audio, round2};

const SATURATION_THRESHOLD: f64 = 0.99;
const CLIP_RATIO: f64 = 0.01;
const WINDOW_MS: f64 = 100.0;
const CREST_FACTOR_DB: f64 = 3.0;
/// Windows quieter than this (RMS, dBFS) have no meaningful crest factor.
const CREST_FLOOR_DB: f64 = -60.0;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "saturation_threshold",
        ParamType::Float { min: 0.0, max: 1.0 },
        ParamDefault::Float(SATURATION_THRESHOLD),
        "a sample at or above this magnitude (1.0 = full scale) counts as clipped",
    ),
    ParamSpec::new(
        "clip_ratio",
        ParamType::Float { min: 0.0, max: 1.0 },
        ParamDefault::Float(CLIP_RATIO),
        "the share of clipped samples in a window that makes it clipping",
    ),
    ms_param(
        "window_ms",
        WINDOW_MS,
        "the window judged at once, in ms of audio",
    ),
    ParamSpec::new(
        "crest_factor_db",
        ParamType::Float {
            min: 0.0,
            max: 40.0,
        },
        ParamDefault::Float(CREST_FACTOR_DB),
        "a window whose peak-to-RMS ratio is below this (dB) is squashed flat: clipping \
         (a clean sine has 3.01 dB; needs ~20 samples per cycle to read its peak)",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "ClippingDetectorNode",
    aliases: &["ClippingDetector"],
    doc: "Reports {type: clipping, clipped_ratio, peak, crest_factor_db, timestamp_ms} for each \
          window_ms window where at least clip_ratio of the samples reach saturation_threshold \
          or the crest factor is below crest_factor_db; audio passes through.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Windowed::new(ClippingDetector::new(p)))),
    format: |_, input| passes_audio("ClippingDetectorNode", input),
    latency_ns: no_latency,
};

struct ClippingDetector {
    threshold: f32,
    clip_ratio: f64,
    window_ms: f64,
    crest_limit_db: f64,
    clipped: u64,
    squares: f64,
    peak: f32,
}

impl ClippingDetector {
    fn new(p: &Params) -> Self {
        Self {
            threshold: p
                .f64("saturation_threshold")
                .unwrap_or(SATURATION_THRESHOLD) as f32,
            clip_ratio: p.f64("clip_ratio").unwrap_or(CLIP_RATIO),
            window_ms: p.f64("window_ms").unwrap_or(WINDOW_MS),
            crest_limit_db: p.f64("crest_factor_db").unwrap_or(CREST_FACTOR_DB),
            clipped: 0,
            squares: 0.0,
            peak: 0.0,
        }
    }
}

impl WindowCheck for ClippingDetector {
    fn window_ms(&self) -> f64 {
        self.window_ms
    }

    fn restart(&mut self, _channels: usize) {
        (self.clipped, self.squares, self.peak) = (0, 0.0, 0.0);
    }

    fn add(&mut self, piece: &[f32], _channels: usize) {
        for &x in piece {
            let a = x.abs();
            self.clipped += u64::from(a >= self.threshold);
            self.squares += f64::from(x) * f64::from(x);
            self.peak = self.peak.max(a);
        }
    }

    /// Judges the window that started at stream frame `start`: one result at most.
    fn complete(
        &mut self,
        start: u64,
        frames: u64,
        timeline: &Timeline,
    ) -> Vec<(RuntimeData, u64)> {
        let samples = (frames * timeline.channels() as u64) as f64;
        let ratio = std::mem::take(&mut self.clipped) as f64 / samples;
        let rms = (std::mem::take(&mut self.squares) / samples).sqrt();
        let peak = f64::from(std::mem::take(&mut self.peak));
        let crest_db = dbfs(peak) - dbfs(rms);
        let squashed = dbfs(rms) > CREST_FLOOR_DB && crest_db < self.crest_limit_db;
        let clipped = ratio > 0.0 && ratio >= self.clip_ratio;
        if !(clipped || squashed) {
            return Vec::new();
        }
        let json = RuntimeData::Json(json!({
            "type": "clipping",
            "clipped_ratio": (ratio * 1e4).round() / 1e4,
            "peak": (peak * 1e4).round() / 1e4,
            "crest_factor_db": round2(crest_db),
            "timestamp_ms": timeline.ms(start),
        }));
        vec![(json, start)]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::health::testing::{results, sine};
    use super::*;

    #[test]
    fn only_the_second_driven_into_clipping_is_reported() {
        // 3 s of a 440 Hz tone at -6 dBFS peak; the middle second amplified 4x and clipped.
        let mut audio = sine(440.0, 0.5, 48000, 1, 3.0);
        for x in &mut audio[48000..96000] {
            *x = (*x * 4.0).clamp(-1.0, 1.0);
        }
        let found = results(&SPEC, json!({}), &audio, 48000, 1);
        assert_eq!(
            found.len(),
            10,
            "one per 100 ms window of the clipped second: {found:?}"
        );
        for (i, c) in found.iter().enumerate() {
            assert_eq!(c["timestamp_ms"], json!(1000.0 + i as f64 * 100.0));
            assert!(c["clipped_ratio"].as_f64().unwrap() > 0.5, "{c}");
            assert_eq!(c["peak"], json!(1.0));
        }
    }

    #[test]
    fn a_clean_full_band_of_tones_is_not_clipping() {
        // A clean sine's crest factor is 3.01 dB, right at the default limit.
        for (freq, amp) in [(440.0, 0.9), (1000.0, 0.5), (100.0, 0.98)] {
            let found = results(&SPEC, json!({}), &sine(freq, amp, 48000, 2, 1.0), 48000, 2);
            assert!(found.is_empty(), "{freq} Hz at {amp}: {found:?}");
        }
        assert!(results(&SPEC, json!({}), &vec![0.0; 48000], 48000, 1).is_empty());
    }

    #[test]
    fn a_squashed_signal_below_the_ceiling_is_clipping_by_its_crest_factor() {
        // Clipped hard, then turned down: never near full scale, but flat-topped.
        let audio: Vec<f32> = sine(440.0, 0.5, 48000, 1, 0.5)
            .into_iter()
            .map(|x| (x * 10.0).clamp(-1.0, 1.0) * 0.5)
            .collect();
        let found = results(&SPEC, json!({}), &audio, 48000, 1);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found.iter().all(|c| c["clipped_ratio"] == json!(0.0)));
        assert!(
            found
                .iter()
                .all(|c| c["crest_factor_db"].as_f64().unwrap() < 1.0)
        );
    }
}
