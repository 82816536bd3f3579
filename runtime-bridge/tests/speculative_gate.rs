//! SpeculativeVADGate on the shipped speech and on a cough-like burst: speech passes the
//! moment the model hears it, unchanged; a false start is taken back; an accumulator after
//! the gate drops what was taken back.

use remotemedia_runtime::data::ControlMessage;
use remotemedia_runtime::node::Emitter;
use remotemedia_runtime::nodes::speculative_gate::SPEC;
use remotemedia_runtime::params::validate;
use remotemedia_runtime::{
    AudioFrame, AudioSamples, Node, Packet, RuntimeData, execute_unary_with_metrics, load_graph,
};
use serde_json::Value;

#[path = "support/sample.rs"]
mod sample;

const RATE: u32 = 16_000;
/// 20 ms buffers, as a live source delivers them.
const PIECE: usize = 320;

fn gate(params: Value) -> Box<dyn Node> {
    let params = validate(SPEC.params, params.as_object().unwrap()).unwrap();
    (SPEC.create)(&params).unwrap()
}

fn buffers(audio: &[f32]) -> Vec<AudioFrame> {
    audio
        .chunks(PIECE)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = AudioFrame::new(AudioSamples::from_vec(chunk.to_vec()), RATE, 1);
            f.pts = Some(i as u64 * 20_000_000);
            f
        })
        .collect()
}

/// What came out while one input buffer went in.
struct Step {
    input_pts: u64,
    audio: Vec<AudioFrame>,
    json: Vec<Value>,
    cancels: Vec<(f64, f64)>,
}

fn run(node: &mut dyn Node, inputs: &[AudioFrame]) -> Vec<Step> {
    let mut steps: Vec<Step> = inputs
        .iter()
        .map(|f| {
            let mut out = Emitter::default();
            node.process(Packet::new(RuntimeData::Audio(f.clone())), &mut out)
                .unwrap();
            step(f.pts.unwrap(), out)
        })
        .collect();
    let mut out = Emitter::default();
    node.finish(&mut out).unwrap();
    steps.push(step(u64::MAX, out));
    steps
}

fn step(input_pts: u64, out: Emitter) -> Step {
    let mut s = Step {
        input_pts,
        audio: Vec::new(),
        json: Vec::new(),
        cancels: Vec::new(),
    };
    for p in out.into_packets() {
        match p.data {
            RuntimeData::Audio(a) => s.audio.push(a),
            RuntimeData::Json(j) => s.json.push(j),
            RuntimeData::Control(ControlMessage::CancelSpeculation { from_ms, to_ms }) => {
                s.cancels.push((from_ms, to_ms))
            }
            other => panic!("unexpected output {other:?}"),
        }
    }
    s
}

fn of_type<'a>(steps: &'a [Step], kind: &str) -> Vec<&'a Value> {
    steps
        .iter()
        .flat_map(|s| &s.json)
        .filter(|j| j["type"] == kind)
        .collect()
}

fn ms(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Every buffer that comes out is an input buffer, samples and timestamp unchanged.
fn assert_unchanged(inputs: &[AudioFrame], steps: &[Step]) {
    for a in steps.iter().flat_map(|s| &s.audio) {
        let i = (a.pts.unwrap() / 20_000_000) as usize;
        assert_eq!(a.pts, inputs[i].pts);
        assert_eq!(&a.samples[..], &inputs[i].samples[..], "buffer {i} changed");
    }
}

#[test]
fn speech_passes_the_moment_it_is_heard_unchanged_and_is_confirmed() {
    let audio = sample::sample_at(RATE);
    let inputs = buffers(&audio);
    // The known segments count pauses under 300 ms as part of a sentence.
    let mut node = gate(serde_json::json!({"min_silence_ms": 300}));
    let steps = run(node.as_mut(), &inputs);
    assert_unchanged(&inputs, &steps);

    let known: Value = serde_json::from_str(
        &std::fs::read_to_string(sample::root().join("examples/launch/speech.segments.json"))
            .unwrap(),
    )
    .unwrap();
    let segments = known["segments_ms"].as_array().unwrap();
    let confirmed = of_type(&steps, "speech_confirmed");
    assert_eq!(confirmed.len(), segments.len(), "{confirmed:?}");
    for (c, seg) in confirmed.iter().zip(segments) {
        let start = seg[0].as_f64().unwrap();
        assert!(
            (ms(c, "timestamp_ms") - start).abs() <= 150.0,
            "{c} vs {seg}"
        );
        // Confirmation comes after min_speech_ms of speech; the audio went out before it.
        assert!(
            ms(c, "confirmed_at_ms") >= ms(c, "timestamp_ms") + 200.0,
            "{c}"
        );
        assert!(ms(c, "from_ms") <= ms(c, "timestamp_ms"), "{c}");
    }

    // No added delay: from the buffer where the gate opens to the end of the speech, every
    // buffer comes out in the same step it went in.
    for c in &confirmed {
        let opened = steps
            .iter()
            .position(|s| {
                s.json
                    .iter()
                    .any(|j| j["type"] == "speech_start" && j["from_ms"] == c["from_ms"])
            })
            .expect("a speculative start before each confirmation");
        let confirmed_at = ms(c, "confirmed_at_ms");
        for s in &steps[opened..] {
            if s.input_pts as f64 / 1e6 > confirmed_at {
                break;
            }
            assert!(
                s.audio.iter().any(|a| a.pts == Some(s.input_pts)),
                "buffer at {} ms was held back during speech",
                s.input_pts / 1_000_000
            );
        }
        // It opened on the model's first speech frame: at most one model frame (32 ms) and
        // one buffer after the speech began.
        let opened_at = steps[opened].input_pts as f64 / 1e6;
        let onset = ms(c, "timestamp_ms") + 30.0;
        assert!(
            opened_at <= onset + 52.0,
            "opened at {opened_at}, onset {onset}"
        );
        // The lookback went out with it.
        assert!(ms(c, "from_ms") <= onset - 100.0, "{c}");
    }

    // Silence between the sentences is not forwarded.
    let gap = segments[0][1].as_f64().unwrap() + 300.0..segments[1][0].as_f64().unwrap() - 300.0;
    for a in steps.iter().flat_map(|s| &s.audio) {
        let t = a.pts.unwrap() as f64 / 1e6;
        assert!(!gap.contains(&t), "silence at {t} ms went through");
    }
    assert_eq!(of_type(&steps, "speech_end").len(), segments.len());
}

/// 500 ms of silence, a 150 ms burst of voice cut from the sample, and 800 ms of silence.
fn cough(audio: &[f32]) -> Vec<f32> {
    let voiced = &audio[1_300 * 16..1_450 * 16];
    let mut out = vec![0.0; 500 * 16];
    out.extend_from_slice(voiced);
    out.extend(vec![0.0; 800 * 16]);
    out
}

#[test]
fn a_false_start_is_cancelled_covering_what_went_through() {
    let audio = sample::sample_at(RATE);
    let inputs = buffers(&cough(&audio));
    let mut node = gate(serde_json::json!({}));
    let steps = run(node.as_mut(), &inputs);
    assert_unchanged(&inputs, &steps);
    assert!(of_type(&steps, "speech_confirmed").is_empty());
    assert_eq!(of_type(&steps, "speech_start").len(), 1, "one speculation");
    let cancels: Vec<(f64, f64)> = steps.iter().flat_map(|s| s.cancels.clone()).collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    let (from, to) = cancels[0];
    let forwarded: Vec<&AudioFrame> = steps.iter().flat_map(|s| &s.audio).collect();
    assert!(!forwarded.is_empty(), "the burst went through at once");
    let first = forwarded[0].pts.unwrap() as f64 / 1e6;
    let last = forwarded.last().unwrap();
    let end = (last.pts.unwrap() + last.frames_to_ns(last.frames())) as f64 / 1e6;
    assert_eq!(
        (from, to),
        (first, end),
        "the cancel covers exactly what went through"
    );
    let json = &of_type(&steps, "cancel_speculation")[0];
    assert_eq!((ms(json, "from_ms"), ms(json, "to_ms")), (from, to));
    // The burst itself went through: it begins at 500 ms.
    assert!(first <= 500.0 && end >= 560.0, "{first}..{end}");
}

#[test]
fn a_click_opens_nothing_or_is_cancelled() {
    let mut audio = vec![0.0f32; RATE as usize];
    audio[8_000] = 1.0;
    audio[8_001] = -1.0;
    let inputs = buffers(&audio);
    let mut node = gate(serde_json::json!({}));
    let steps = run(node.as_mut(), &inputs);
    assert!(of_type(&steps, "speech_confirmed").is_empty());
    let starts = of_type(&steps, "speech_start").len();
    let cancels = steps.iter().map(|s| s.cancels.len()).sum::<usize>();
    assert_eq!(
        starts, cancels,
        "every speculation on a click is taken back"
    );
}

#[test]
fn an_accumulator_after_the_gate_keeps_the_speech_and_drops_the_false_start() {
    let audio = sample::sample_at(RATE);
    // The burst, then the first sentence.
    let mut input = cough(&audio);
    let offset_ms = input.len() as f64 / 16.0;
    input.extend_from_slice(&audio[..5_000 * 16]);
    let graph = load_graph(
        r#"{"version":"v1","nodes":[
            {"id":"gate","node_type":"SpeculativeVADGate","params":{"min_silence_ms":300}},
            {"id":"utterance","node_type":"AudioBufferAccumulatorNode",
             "params":{"min_utterance_duration_ms":0}}],
            "connections":[{"from":"gate","to":"utterance"}]}"#,
        "test",
    )
    .unwrap();
    let frames = buffers(&input).into_iter().map(RuntimeData::Audio);
    let (outputs, metrics) = execute_unary_with_metrics(graph, frames).unwrap();
    let utterances: Vec<(f64, f64)> = outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Audio(a) => {
                let start = a.pts.unwrap() as f64 / 1e6;
                (start, start + a.frames() as f64 / 16.0)
            }
            other => panic!("only utterances come out, got {other:?}"),
        })
        .collect();
    assert_eq!(utterances.len(), 1, "{utterances:?}");
    let (start, end) = utterances[0];
    assert!(
        (start - (offset_ms + 1000.0)).abs() <= 150.0,
        "the sentence starts at {start}"
    );
    assert!(end > offset_ms + 4_000.0, "{end}");
    let gate = metrics.iter().find(|m| m.node_id == "gate").unwrap();
    assert_eq!(gate.counters.get("speculations"), Some(&2), "{gate:?}");
    assert_eq!(gate.counters.get("cancelled"), Some(&1), "{gate:?}");
    assert_eq!(gate.counters.get("confirmed"), Some(&1), "{gate:?}");
}

#[test]
fn other_rates_and_channels_pass_unchanged_and_are_heard() {
    // The sample at 48 kHz, the same in both channels of interleaved stereo.
    let mono = sample::sample_at(48_000);
    let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, *s]).collect();
    let mut node = gate(serde_json::json!({"min_silence_ms": 300}));
    let mut confirmed = 0;
    let mut out_samples = 0;
    for (i, chunk) in stereo.chunks(960 * 2).enumerate() {
        let mut f = AudioFrame::new(AudioSamples::from_vec(chunk.to_vec()), 48_000, 2);
        f.pts = Some(i as u64 * 20_000_000);
        let mut out = Emitter::default();
        node.process(Packet::new(RuntimeData::Audio(f.clone())), &mut out)
            .unwrap();
        for p in out.into_packets() {
            match p.data {
                RuntimeData::Audio(a) => {
                    assert_eq!((a.sample_rate, a.channels), (48_000, 2));
                    out_samples += a.samples.len();
                }
                RuntimeData::Json(j) if j["type"] == "speech_confirmed" => confirmed += 1,
                _ => {}
            }
        }
    }
    assert_eq!(confirmed, 2);
    assert!(out_samples > 0 && out_samples < stereo.len());
}
