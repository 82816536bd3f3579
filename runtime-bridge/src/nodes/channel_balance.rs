//! `ChannelBalanceNode`: a multichannel feed with one side much louder than another, or with
//! a dead channel (silent while another is not). Judged per window while the condition holds,
//! with `balance_ok` once it ends; audio passes through unchanged. Mono has no balance and is
//! refused when the pipeline is built.

use serde_json::json;

use crate::data::{AudioFrame, RuntimeData};
use crate::node::{NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use super::audio_format::audio_input;
use super::health::{Timeline, WindowCheck, Windowed, dbfs, dbfs_param, ms_param, round2};

const IMBALANCE_THRESHOLD_DB: f64 = 10.0;
const DEAD_CHANNEL_DB: f64 = -60.0;
const WINDOW_MS: f64 = 500.0;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "imbalance_threshold_db",
        ParamType::Float {
            min: 0.0,
            max: 100.0,
        },
        ParamDefault::Float(IMBALANCE_THRESHOLD_DB),
        "live channels further apart than this (RMS, dB) are imbalanced",
    ),
    dbfs_param(
        "dead_channel_db",
        DEAD_CHANNEL_DB,
        "a channel below this (RMS, dBFS) while another is above is dead",
    ),
    ms_param(
        "window_ms",
        WINDOW_MS,
        "the window judged at once, in ms of audio",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "ChannelBalanceNode",
    aliases: &["ChannelBalance"],
    doc: "For 2 or more channels, per window_ms window while it holds: {type: \
          channel_imbalance, imbalance_db, louder_channel} and {type: dead_channel, channel} \
          (channels count from 0), then {type: balance_ok} when it ends; audio passes through.",
    params: PARAMS,
    threading: Threading::Inline,
    create: |p| Ok(Box::new(Windowed::new(ChannelBalance::new(p)))),
    format,
    latency_ns: no_latency,
};

fn format(_: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    match audio_input("ChannelBalanceNode", input)? {
        Some((_, channels)) if channels < 2 => Err(NodeError::BadInput(format!(
            "ChannelBalanceNode needs 2 or more channels to compare, got {channels}"
        ))),
        _ => Ok(input.clone()),
    }
}

struct ChannelBalance {
    threshold_db: f64,
    dead_db: f64,
    window_ms: f64,
    squares: Vec<f64>,
    /// Whether the last window raised an alarm.
    alarmed: bool,
}

impl ChannelBalance {
    fn new(p: &Params) -> Self {
        Self {
            threshold_db: p
                .f64("imbalance_threshold_db")
                .unwrap_or(IMBALANCE_THRESHOLD_DB),
            dead_db: p.f64("dead_channel_db").unwrap_or(DEAD_CHANNEL_DB),
            window_ms: p.f64("window_ms").unwrap_or(WINDOW_MS),
            squares: Vec::new(),
            alarmed: false,
        }
    }
}

impl WindowCheck for ChannelBalance {
    fn window_ms(&self) -> f64 {
        self.window_ms
    }

    fn check_input(&self, frame: &AudioFrame) -> Result<(), NodeError> {
        if frame.channels < 2 {
            return Err(NodeError::BadInput(format!(
                "ChannelBalanceNode needs 2 or more channels to compare, got {}",
                frame.channels
            )));
        }
        Ok(())
    }

    fn restart(&mut self, channels: usize) {
        self.squares = vec![0.0; channels];
        self.alarmed = false;
    }

    fn add(&mut self, piece: &[f32], channels: usize) {
        for f in piece.chunks_exact(channels) {
            for (sum, &x) in self.squares.iter_mut().zip(f) {
                *sum += f64::from(x) * f64::from(x);
            }
        }
    }

    /// Judges the window that started at stream frame `start`.
    fn complete(
        &mut self,
        start: u64,
        frames: u64,
        timeline: &Timeline,
    ) -> Vec<(RuntimeData, u64)> {
        let frames = frames as f64;
        let levels: Vec<f64> = self
            .squares
            .iter_mut()
            .map(|s| dbfs((std::mem::take(s) / frames).sqrt()))
            .collect();
        let at = timeline.ms(start);
        let live: Vec<(usize, f64)> = levels
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, db)| *db >= self.dead_db)
            .collect();
        let mut alarms = Vec::new();
        if !live.is_empty() {
            for (channel, _) in levels
                .iter()
                .enumerate()
                .filter(|(_, db)| **db < self.dead_db)
            {
                alarms
                    .push(json!({"type": "dead_channel", "channel": channel, "timestamp_ms": at}));
            }
            let (loud, loudest) = live
                .iter()
                .copied()
                .fold((0, f64::MIN), |m, c| if c.1 > m.1 { c } else { m });
            let quietest = live.iter().map(|c| c.1).fold(f64::MAX, f64::min);
            if loudest - quietest > self.threshold_db {
                alarms.push(json!({
                    "type": "channel_imbalance", "imbalance_db": round2(loudest - quietest),
                    "louder_channel": loud, "timestamp_ms": at,
                }));
            }
        }
        let was = std::mem::replace(&mut self.alarmed, !alarms.is_empty());
        if was && alarms.is_empty() {
            alarms.push(json!({"type": "balance_ok", "timestamp_ms": at}));
        }
        alarms
            .into_iter()
            .map(|alarm| (RuntimeData::Json(alarm), start))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::health::testing::{of_type, results, sine};
    use super::*;

    /// Stereo from a mono sine, the right channel scaled by `right`, for `seconds`.
    fn stereo(right: f32, seconds: f64) -> Vec<f32> {
        sine(440.0, 0.5, 48000, 1, seconds)
            .into_iter()
            .flat_map(|x| [x, x * right])
            .collect()
    }

    #[test]
    fn a_channel_20_db_down_is_imbalanced_until_it_recovers() {
        let mut audio = stereo(0.1, 2.0); // -20 dB
        audio.extend(stereo(1.0, 1.0));
        let found = results(&SPEC, json!({}), &audio, 48000, 2);
        let imbalance = of_type(&found, "channel_imbalance");
        assert_eq!(
            imbalance.len(),
            4,
            "one per 500 ms window of the 2 s: {found:?}"
        );
        assert!(imbalance.iter().all(|i| i["louder_channel"] == json!(0)));
        assert!((imbalance[0]["imbalance_db"].as_f64().unwrap() - 20.0).abs() < 0.05);
        let ok = of_type(&found, "balance_ok");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0]["timestamp_ms"], json!(2000.0));
        assert!(of_type(&found, "dead_channel").is_empty());
    }

    #[test]
    fn a_zero_channel_is_dead_not_imbalanced() {
        let found = results(&SPEC, json!({}), &stereo(0.0, 1.0), 48000, 2);
        let dead = of_type(&found, "dead_channel");
        assert_eq!(dead.len(), 2, "{found:?}");
        assert!(dead.iter().all(|d| d["channel"] == json!(1)));
        assert!(of_type(&found, "channel_imbalance").is_empty());
    }

    #[test]
    fn balanced_or_silent_stereo_raises_nothing() {
        assert!(results(&SPEC, json!({}), &stereo(0.8, 2.0), 48000, 2).is_empty());
        assert!(results(&SPEC, json!({}), &vec![0.0; 96000], 48000, 2).is_empty());
    }

    #[test]
    fn mono_is_refused_with_the_reason() {
        let p = crate::params::validate(PARAMS, json!({}).as_object().unwrap()).unwrap();
        let mono = StreamFormat::Audio {
            rate: 48000,
            channels: 1,
        };
        let err = format(&p, &mono).unwrap_err();
        assert!(
            matches!(&err, NodeError::BadInput(m) if m.contains("2 or more channels")),
            "{err}"
        );
    }
}
