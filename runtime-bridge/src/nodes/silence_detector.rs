//! `SilenceDetectorNode`: a feed that went silent (and came back), and feeds that keep
//! dropping out. The level is measured over 10 ms blocks; audio passes through unchanged.

use std::collections::VecDeque;

use serde_json::json;

use crate::data::RuntimeData;
use crate::node::{NodeSpec, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::health::{Timeline, WindowCheck, Windowed, dbfs, dbfs_param, passes_audio, round2};

const SILENCE_THRESHOLD_DB: f64 = -50.0;
const SUSTAINED_SILENCE_MS: f64 = 500.0;
const DROPOUT_COUNT: i64 = 3;
const DROPOUT_WINDOW_MS: f64 = 5000.0;
/// The level is judged per block of this length.
const BLOCK_MS: f64 = 10.0;

static PARAMS: &[ParamSpec] = &[
    dbfs_param(
        "silence_threshold_db",
        SILENCE_THRESHOLD_DB,
        "RMS below this (dBFS, per 10 ms block) is silence",
    ),
    ParamSpec::new(
        "sustained_silence_ms",
        ParamType::Float {
            min: 10.0,
            max: 3_600_000.0,
        },
        ParamDefault::Float(SUSTAINED_SILENCE_MS),
        "silence this long is reported as silence_start; shorter silences are dropouts",
    ),
    ParamSpec::new(
        "dropout_count",
        ParamType::Int { min: 1, max: 1000 },
        ParamDefault::Int(DROPOUT_COUNT),
        "this many dropouts within dropout_window_ms are reported",
    ),
    ParamSpec::new(
        "dropout_window_ms",
        ParamType::Float {
            min: 10.0,
            max: 3_600_000.0,
        },
        ParamDefault::Float(DROPOUT_WINDOW_MS),
        "the window dropouts are counted in",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "SilenceDetectorNode",
    aliases: &["SilenceDetector"],
    doc: "Reports {type: silence_start} once the level stayed below silence_threshold_db for \
          sustained_silence_ms (stamped where the silence began), {type: silence_end, \
          duration_ms} when sound returns, and {type: dropouts, count} when dropout_count \
          shorter silences fall within dropout_window_ms; audio passes through.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Windowed::new(SilenceDetector::new(p)))),
    format: |_, input| passes_audio("SilenceDetectorNode", input),
    latency_ns: no_latency,
};

struct SilenceDetector {
    threshold_db: f64,
    sustained_ms: f64,
    dropout_count: usize,
    dropout_window_ms: f64,
    /// Sum of squares over all channels of the block being filled.
    squares: f64,
    /// The stream frame where the current silence began.
    quiet_since: Option<u64>,
    /// Whether the current silence was reported (it lasted `sustained_ms`).
    reported: bool,
    /// The stream frames where recent dropouts began, oldest first.
    dropouts: VecDeque<u64>,
}

impl SilenceDetector {
    fn new(p: &Params) -> Self {
        Self {
            threshold_db: p
                .f64("silence_threshold_db")
                .unwrap_or(SILENCE_THRESHOLD_DB),
            sustained_ms: p
                .f64("sustained_silence_ms")
                .unwrap_or(SUSTAINED_SILENCE_MS),
            dropout_count: p.i64("dropout_count").unwrap_or(DROPOUT_COUNT) as usize,
            dropout_window_ms: p.f64("dropout_window_ms").unwrap_or(DROPOUT_WINDOW_MS),
            squares: 0.0,
            quiet_since: None,
            reported: false,
            dropouts: VecDeque::new(),
        }
    }
}

impl WindowCheck for SilenceDetector {
    fn window_ms(&self) -> f64 {
        BLOCK_MS
    }

    fn restart(&mut self, _channels: usize) {
        self.squares = 0.0;
        self.quiet_since = None;
        self.reported = false;
        self.dropouts.clear();
    }

    fn add(&mut self, piece: &[f32], _channels: usize) {
        self.squares += piece
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>();
    }

    /// Judges the 10 ms block that started at stream frame `start`.
    fn complete(
        &mut self,
        start: u64,
        frames: u64,
        timeline: &Timeline,
    ) -> Vec<(RuntimeData, u64)> {
        let mut results = Vec::new();
        let samples = frames as f64 * timeline.channels() as f64;
        let level = dbfs((std::mem::take(&mut self.squares) / samples).sqrt());
        let end = start + frames;
        if level < self.threshold_db {
            let since = *self.quiet_since.get_or_insert(start);
            let lasted = timeline.ms(end) - timeline.ms(since);
            if !self.reported && lasted >= self.sustained_ms {
                self.reported = true;
                let at = timeline.ms(since);
                results.push((
                    RuntimeData::Json(json!({"type": "silence_start", "timestamp_ms": at})),
                    since,
                ));
            }
            return results;
        }
        let Some(since) = self.quiet_since.take() else {
            return results;
        };
        let began = timeline.ms(since);
        if std::mem::take(&mut self.reported) {
            let duration = round2(timeline.ms(start) - began);
            results.push((
                RuntimeData::Json(json!({
                    "type": "silence_end", "duration_ms": duration, "timestamp_ms": began,
                })),
                since,
            ));
            return results;
        }
        // A silence shorter than sustained: a dropout.
        self.dropouts.push_back(since);
        while self
            .dropouts
            .front()
            .is_some_and(|&t| began - timeline.ms(t) > self.dropout_window_ms)
        {
            self.dropouts.pop_front();
        }
        if self.dropouts.len() >= self.dropout_count {
            let first = self.dropouts[0];
            results.push((
                RuntimeData::Json(json!({
                    "type": "dropouts", "count": self.dropouts.len(),
                    "timestamp_ms": timeline.ms(first),
                })),
                first,
            ));
            self.dropouts.clear();
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::health::testing::{of_type, results, sine};
    use super::*;
    use crate::data::Packet;
    use crate::node::Emitter;

    fn with_holes(holes_ms: &[(f64, f64)], seconds: f64) -> Vec<f32> {
        let mut audio = sine(440.0, 0.3, 16000, 1, seconds);
        for &(from, to) in holes_ms {
            let (a, b) = ((from * 16.0) as usize, (to * 16.0) as usize);
            audio[a..b].iter_mut().for_each(|x| *x = 0.0);
        }
        audio
    }

    #[test]
    fn a_two_second_hole_starts_and_ends_a_silence() {
        let found = results(
            &SPEC,
            json!({}),
            &with_holes(&[(1000.0, 3000.0)], 4.0),
            16000,
            1,
        );
        let starts = of_type(&found, "silence_start");
        let ends = of_type(&found, "silence_end");
        assert_eq!((starts.len(), ends.len()), (1, 1), "{found:?}");
        // Stamped where the silence began, within a 10 ms block of the hole.
        let began = starts[0]["timestamp_ms"].as_f64().unwrap();
        assert!((1000.0..=1010.0).contains(&began), "{began}");
        assert_eq!(ends[0]["timestamp_ms"], starts[0]["timestamp_ms"]);
        let lasted = ends[0]["duration_ms"].as_f64().unwrap();
        assert!((1990.0..=2010.0).contains(&lasted), "{lasted}");
        assert!(of_type(&found, "dropouts").is_empty());
    }

    #[test]
    fn silence_start_comes_once_the_silence_lasted_long_enough() {
        // Which buffer carries the result: the one in which the hole reached 500 ms.
        let params = crate::params::validate(PARAMS, json!({}).as_object().unwrap()).unwrap();
        let mut node = (SPEC.create)(&params).unwrap();
        let audio = with_holes(&[(1000.0, 3000.0)], 4.0);
        let mut reported_at = None;
        for (i, chunk) in audio.chunks(320).enumerate() {
            let mut frame = crate::data::AudioFrame::new(
                crate::data::AudioSamples::from_vec(chunk.to_vec()),
                16000,
                1,
            );
            frame.pts = Some(i as u64 * 20_000_000);
            let mut out = Emitter::default();
            node.process(Packet::new(RuntimeData::Audio(frame)), &mut out)
                .unwrap();
            if out.into_packets().len() > 1 && reported_at.is_none() {
                reported_at = Some((i + 1) as f64 * 20.0);
            }
        }
        let at = reported_at.expect("a silence_start");
        assert!(
            (1500.0..=1600.0).contains(&at),
            "reported at {at} ms of audio"
        );
    }

    #[test]
    fn short_silences_add_up_to_dropouts() {
        let holes = [
            (500.0, 600.0),
            (1500.0, 1580.0),
            (2500.0, 2700.0),
            (3500.0, 3550.0),
        ];
        let found = results(&SPEC, json!({}), &with_holes(&holes, 4.0), 16000, 1);
        let dropouts = of_type(&found, "dropouts");
        assert_eq!(dropouts.len(), 1, "{found:?}");
        assert_eq!(dropouts[0]["count"], json!(3));
        assert!(of_type(&found, "silence_start").is_empty());
    }

    #[test]
    fn a_clean_tone_raises_nothing() {
        assert!(results(&SPEC, json!({}), &with_holes(&[], 3.0), 16000, 1).is_empty());
    }
}
