//! Speech segments from per-frame speech probabilities: the decision rules shared by
//! `SileroVADNode` (which reports segments) and `SpeculativeVADGate` (which forwards audio
//! before a segment is confirmed and takes it back when it is not).

/// The segmenting rules, in samples of the VAD's rate.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub threshold: f32,
    pub neg_threshold: f32,
    pub min_speech: u64,
    pub min_silence: u64,
    pub pad: u64,
}

/// What one frame changed. Positions are sample indices on the VAD's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A run of speech began at this frame start; not yet long enough to be speech.
    Onset(u64),
    /// The run that began at the last `Onset` fell silent before it was long enough.
    FalseStart,
    /// Speech confirmed; it starts here (padding included).
    Start(u64),
    End {
        start: u64,
        end: u64,
    },
}

/// The speech segmenter of Silero's VADIterator, with min_speech_duration_ms on top: a start
/// is reported once speech has lasted that long, with the time speech began. As in Silero's
/// get_speech_timestamps, a dip below neg_threshold shorter than min_silence_duration_ms
/// neither ends a segment nor restarts one that is not yet confirmed.
#[derive(Default)]
pub struct Segmenter {
    /// Samples seen (end of the last frame).
    pub position: u64,
    pub triggered: bool,
    /// Where a not yet confirmed speech run began (frame start).
    candidate: Option<u64>,
    /// Where the current dip inside that run began.
    candidate_dip: Option<u64>,
    temp_end: u64,
    /// Start of the current segment (padding included).
    pub start: u64,
}

impl Segmenter {
    pub fn frame(&mut self, rules: &Rules, prob: f32, window: u64) -> Option<Event> {
        self.position += window;
        let frame_start = self.position - window;
        if prob >= rules.threshold {
            self.temp_end = 0;
            self.candidate_dip = None;
            if !self.triggered {
                let onset = self.candidate.is_none();
                let first = *self.candidate.get_or_insert(frame_start);
                if self.position - first >= rules.min_speech.max(1) || rules.min_speech == 0 {
                    self.triggered = true;
                    self.candidate = None;
                    self.start = first.saturating_sub(rules.pad);
                    return Some(Event::Start(self.start));
                }
                if onset {
                    return Some(Event::Onset(first));
                }
            }
        } else if prob < rules.neg_threshold {
            if self.candidate.is_some() {
                let dip = *self.candidate_dip.get_or_insert(frame_start);
                if self.position - dip >= rules.min_silence {
                    // Silence long enough: the run was too short to be speech.
                    self.candidate = None;
                    self.candidate_dip = None;
                    return Some(Event::FalseStart);
                }
            }
            if self.triggered {
                if self.temp_end == 0 {
                    self.temp_end = frame_start;
                }
                if self.position - self.temp_end >= rules.min_silence {
                    let end = self.temp_end + rules.pad;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(min_speech_ms: u64) -> Rules {
        Rules {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech: min_speech_ms * 16,
            min_silence: 100 * 16,
            pad: 30 * 16,
        }
    }

    fn run(seg: &mut Segmenter, rules: &Rules, probs: &[f32]) -> Vec<String> {
        probs
            .iter()
            .filter_map(|p| seg.frame(rules, *p, 512))
            .map(|e| match e {
                Event::Onset(s) => format!("onset {s}"),
                Event::FalseStart => "false start".to_string(),
                Event::Start(s) => format!("start {s}"),
                Event::End { start, end } => format!("end {start}..{end}"),
            })
            .collect()
    }

    #[test]
    fn start_and_end_with_padding() {
        let r = rules(0);
        let mut s = Segmenter::default();
        // 2 silent frames, 10 speech, 4 silent (4*512 = 2048 >= 1600 silence samples).
        let mut probs = vec![0.1; 2];
        probs.extend([0.9; 10]);
        probs.extend([0.1; 5]);
        let ev = run(&mut s, &r, &probs);
        assert_eq!(
            ev,
            vec![
                format!("start {}", 1024 - 480),
                format!("end {}..{}", 1024 - 480, 12 * 512 + 480)
            ]
        );
    }

    #[test]
    fn short_bursts_are_false_starts() {
        let r = rules(250); // 4000 samples = 8 frames
        let mut s = Segmenter::default();
        let mut probs = vec![0.9; 3];
        probs.extend([0.1; 5]);
        probs.extend([0.9; 9]);
        let ev = run(&mut s, &r, &probs);
        assert_eq!(
            ev,
            vec![
                "onset 0".to_string(),
                "false start".to_string(),
                format!("onset {}", 8 * 512),
                format!("start {}", 8 * 512 - 480)
            ]
        );
    }

    #[test]
    fn a_one_frame_dip_keeps_a_pending_start() {
        // Unseen espeak-ng speech: 0.52, 0.97, 1.0, 1.0, 1.0, one 32 ms frame at 0.001, then
        // speech again. The start stays at the first frame, as Silero's reference has it; it
        // was reported six frames (192 ms) late when the dip restarted the pending run.
        let r = rules(250);
        let mut s = Segmenter::default();
        let mut probs = vec![0.52, 0.97, 1.0, 1.0, 1.0, 0.001];
        probs.extend([0.98; 10]);
        assert_eq!(
            run(&mut s, &r, &probs),
            vec!["onset 0".to_string(), "start 0".to_string()]
        );
    }

    #[test]
    fn a_dip_as_long_as_min_silence_drops_a_pending_start() {
        let r = rules(250); // min_silence 100 ms = 1600 samples: 4 frames
        let mut s = Segmenter::default();
        let mut probs = vec![0.9; 3];
        probs.extend([0.01; 4]);
        probs.extend([0.9; 9]);
        let ev = run(&mut s, &r, &probs);
        assert_eq!(ev[1], "false start");
        assert_eq!(ev.last().unwrap(), &format!("start {}", 7 * 512 - 480));
    }

    #[test]
    fn hysteresis_between_thresholds() {
        let r = rules(0);
        let mut s = Segmenter::default();
        let mut probs = vec![0.9; 2];
        probs.extend([0.4; 20]); // between neg_threshold and threshold: still speech
        assert_eq!(run(&mut s, &r, &probs).len(), 1);
        assert!(s.triggered);
    }
}
