//! `AudioLevelNode`: the level of the stream every `interval_ms`, in dBFS, overall and per
//! channel, with flags for a low and a silent feed. Audio passes through unchanged.

use serde_json::json;

use crate::data::RuntimeData;
use crate::node::{NodeSpec, Threading, no_latency};
use crate::params::{ParamSpec, Params};

use super::health::{
    Timeline, WindowCheck, Windowed, dbfs, dbfs_param, ms_param, passes_audio, round2,
};

const INTERVAL_MS: f64 = 100.0;
const LOW_LEVEL_DB: f64 = -20.0;
const SILENCE_DB: f64 = -60.0;

static PARAMS: &[ParamSpec] = &[
    ms_param(
        "interval_ms",
        INTERVAL_MS,
        "how often a level is reported, in ms of audio",
    ),
    dbfs_param(
        "low_level_db",
        LOW_LEVEL_DB,
        "RMS below this (dBFS) is reported as is_low",
    ),
    dbfs_param(
        "silence_db",
        SILENCE_DB,
        "RMS below this (dBFS) is reported as is_silent",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "AudioLevelNode",
    aliases: &["AudioLevel"],
    doc: "Reports the audio level every interval_ms: {type: audio_level, rms_db, peak_db, \
          is_low, is_silent, channel_rms_db, timestamp_ms} (dBFS, -100 for digital silence); \
          audio passes through.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Windowed::new(AudioLevel::new(p)))),
    format: |_, input| passes_audio("AudioLevelNode", input),
    latency_ns: no_latency,
};

struct AudioLevel {
    interval_ms: f64,
    low_db: f64,
    silence_db: f64,
    /// Sum of squares per channel, and the peak, of the window being filled.
    squares: Vec<f64>,
    peak: f32,
}

impl AudioLevel {
    fn new(p: &Params) -> Self {
        Self {
            interval_ms: p.f64("interval_ms").unwrap_or(INTERVAL_MS),
            low_db: p.f64("low_level_db").unwrap_or(LOW_LEVEL_DB),
            silence_db: p.f64("silence_db").unwrap_or(SILENCE_DB),
            squares: Vec::new(),
            peak: 0.0,
        }
    }
}

impl WindowCheck for AudioLevel {
    fn window_ms(&self) -> f64 {
        self.interval_ms
    }

    fn restart(&mut self, channels: usize) {
        self.squares = vec![0.0; channels];
        self.peak = 0.0;
    }

    fn add(&mut self, piece: &[f32], channels: usize) {
        for f in piece.chunks_exact(channels) {
            for (sum, &x) in self.squares.iter_mut().zip(f) {
                *sum += f64::from(x) * f64::from(x);
                self.peak = self.peak.max(x.abs());
            }
        }
    }

    fn complete(
        &mut self,
        start: u64,
        frames: u64,
        timeline: &Timeline,
    ) -> Vec<(RuntimeData, u64)> {
        let frames = frames as f64;
        let channel_rms: Vec<f64> = self
            .squares
            .iter()
            .map(|s| round2(dbfs((s / frames).sqrt())))
            .collect();
        let total = self.squares.iter().sum::<f64>() / (frames * self.squares.len() as f64);
        let rms_db = round2(dbfs(total.sqrt()));
        self.squares.iter_mut().for_each(|s| *s = 0.0);
        let peak_db = round2(dbfs(f64::from(std::mem::take(&mut self.peak))));
        let json = RuntimeData::Json(json!({
            "type": "audio_level",
            "rms_db": rms_db,
            "peak_db": peak_db,
            "is_low": rms_db < self.low_db,
            "is_silent": rms_db < self.silence_db,
            "channel_rms_db": channel_rms,
            "timestamp_ms": timeline.ms(start),
        }));
        vec![(json, start)]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::health::testing::{of_type, results, sine};
    use super::*;

    #[test]
    fn a_sine_and_silence_read_as_expected_every_interval() {
        // 1 s of a 1 kHz sine at half scale on two channels, then 0.5 s of digital silence.
        let mut audio = sine(1000.0, 0.5, 48000, 2, 1.0);
        audio.extend(vec![0.0; 48000]);
        let found = results(&SPEC, json!({}), &audio, 48000, 2);
        let levels = of_type(&found, "audio_level");
        assert_eq!(levels.len(), 15, "{found:?}");
        for (i, l) in levels.iter().enumerate() {
            assert_eq!(l["timestamp_ms"], json!(i as f64 * 100.0));
        }
        // RMS of a sine is peak / sqrt 2: -9.03 dBFS at half scale; peak -6.02.
        let loud = levels[3];
        assert!(
            (loud["rms_db"].as_f64().unwrap() + 9.03).abs() < 0.02,
            "{loud}"
        );
        assert!(
            (loud["peak_db"].as_f64().unwrap() + 6.02).abs() < 0.02,
            "{loud}"
        );
        assert_eq!(loud["channel_rms_db"].as_array().unwrap().len(), 2);
        assert_eq!(
            (loud["is_low"].clone(), loud["is_silent"].clone()),
            (json!(false), json!(false))
        );
        let quiet = levels[12];
        assert_eq!(quiet["rms_db"], json!(-100.0), "silence is a finite level");
        assert_eq!(quiet["peak_db"], json!(-100.0));
        assert_eq!(
            (quiet["is_low"].clone(), quiet["is_silent"].clone()),
            (json!(true), json!(true))
        );
    }

    #[test]
    fn a_quiet_feed_is_low_but_not_silent() {
        let audio = sine(440.0, 0.05, 16000, 1, 0.5); // -29 dBFS RMS
        let found = results(&SPEC, json!({"interval_ms": 250}), &audio, 16000, 1);
        assert_eq!(found.len(), 2);
        assert!(
            found
                .iter()
                .all(|l| l["is_low"] == json!(true) && l["is_silent"] == json!(false))
        );
    }
}
