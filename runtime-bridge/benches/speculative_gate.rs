//! B14: SpeculativeVADGate against SileroVADNode-first gating, on the shipped speech in 20 ms
//! buffers, both run side by side in one process with the same segment rules.
//!
//! - Onset to first forwarded sample: stream time at which the first sample of each sentence
//!   leaves the gate, minus the moment the model first heard speech (the end of its first
//!   speech frame). A VAD-first gate lets audio through when SileroVADNode reports the start,
//!   which it does after `min_speech_duration_ms`.
//! - CPU per stream: CPU time over audio time, in % of one core, `--repeats` passes each.
//!
//!     cargo bench -p remotemedia-runtime --bench speculative_gate [-- --repeats 20]

use remotemedia_runtime::node::Emitter;
use remotemedia_runtime::nodes::{silero_vad, speculative_gate};
use remotemedia_runtime::params::validate;
use remotemedia_runtime::{AudioFrame, AudioSamples, Node, NodeSpec, Packet, RuntimeData};
use serde_json::{Value, json};

#[path = "support/args.rs"]
mod args;
#[path = "support/cpu.rs"]
mod cpu;
#[path = "../tests/support/sample.rs"]
mod sample;
use args::arg;
use cpu::cpu_seconds;

const PIECE_MS: u64 = 20;
const PIECE: usize = 320;

fn node(spec: &NodeSpec, params: Value) -> Box<dyn Node> {
    let params = validate(spec.params, params.as_object().expect("object")).expect("params");
    (spec.create)(&params).expect("node")
}

fn buffers(audio: &[f32]) -> Vec<AudioFrame> {
    audio
        .chunks(PIECE)
        .enumerate()
        .map(|(i, c)| {
            let mut f = AudioFrame::new(AudioSamples::from_vec(c.to_vec()), 16_000, 1);
            f.pts = Some(i as u64 * PIECE_MS * 1_000_000);
            f
        })
        .collect()
}

/// For each input buffer, what the node put out while it processed it.
fn run(node: &mut dyn Node, inputs: &[AudioFrame]) -> Vec<Vec<Packet>> {
    inputs
        .iter()
        .map(|f| {
            let mut out = Emitter::default();
            node.process(Packet::new(RuntimeData::Audio(f.clone())), &mut out)
                .expect("process");
            out.into_packets()
        })
        .collect()
}

fn ms_field(j: &Value, key: &str) -> f64 {
    j[key].as_f64().expect("a time")
}

/// The padded start of each sentence the gate confirmed.
fn confirmed_starts(steps: &[Vec<Packet>]) -> Vec<f64> {
    steps
        .iter()
        .flatten()
        .filter_map(|p| match &p.data {
            RuntimeData::Json(j) if j["type"] == "speech_confirmed" => {
                Some(ms_field(j, "timestamp_ms"))
            }
            _ => None,
        })
        .collect()
}

fn main() {
    let repeats = arg("--repeats", 20);
    let audio = sample::sample_at(16_000);
    let inputs = buffers(&audio);
    let seconds = audio.len() as f64 / 16_000.0;
    let rules = json!({"min_silence_ms": 300});
    let vad_rules = json!({"min_silence_duration_ms": 300});

    // Latency: when did each sentence's first sample go out, in stream time?
    let mut gate = node(&speculative_gate::SPEC, rules.clone());
    let gate_steps = run(gate.as_mut(), &inputs);
    let mut vad = node(&silero_vad::SPEC, vad_rules.clone());
    let vad_steps = run(vad.as_mut(), &inputs);

    let end_of = |i: usize| (i as u64 + 1) as f64 * PIECE_MS as f64;
    // The gate: the buffer in which the speculative start (the opening) came out.
    let opened: Vec<(f64, f64)> = gate_steps
        .iter()
        .enumerate()
        .flat_map(|(i, step)| {
            step.iter().filter_map(move |p| match &p.data {
                RuntimeData::Json(j) if j["type"] == "speech_start" => {
                    Some((ms_field(j, "timestamp_ms"), end_of(i)))
                }
                _ => None,
            })
        })
        .collect();
    let confirmed = confirmed_starts(&gate_steps);
    // VAD-first: the buffer in which SileroVADNode reported the start.
    let reported: Vec<(f64, f64)> = vad_steps
        .iter()
        .enumerate()
        .flat_map(|(i, step)| {
            step.iter().filter_map(move |p| match &p.data {
                RuntimeData::Json(j) if j["is_speech_start"] == true => {
                    Some((ms_field(j, "timestamp_ms"), end_of(i)))
                }
                _ => None,
            })
        })
        .collect();

    println!(
        "B14 speculative gate vs VAD-first gating, shipped speech ({seconds:.1} s, 20 ms buffers)"
    );
    println!("  onset to first forwarded sample (stream time), per sentence:");
    for start in &confirmed {
        // Both report the same padded start for the same sentence.
        let gate_at = opened
            .iter()
            .filter(|(s, _)| (s - start).abs() < 1.0)
            .map(|(_, at)| *at)
            .next_back();
        let vad_at = reported
            .iter()
            .find(|(s, _)| (s - start).abs() < 1.0)
            .map(|(_, at)| *at);
        // The model hears speech at the end of its first speech frame (start + pad 30 ms + one
        // 32 ms frame), which it can do once the buffer holding that frame's end is in.
        let frame_end = start + 30.0 + 32.0;
        let heard = (frame_end / PIECE_MS as f64).ceil() * PIECE_MS as f64;
        if let (Some(g), Some(v)) = (gate_at, vad_at) {
            println!(
                "    sentence at {start:7.0} ms: gate {:+5.0} ms, VAD-first {:+5.0} ms after the model heard it",
                g - heard,
                v - heard
            );
        }
    }

    // CPU: the same passes, timed.
    let cpu = |spec: &NodeSpec, params: &Value| {
        let mut n = node(spec, params.clone());
        let start = cpu_seconds();
        for _ in 0..repeats {
            std::hint::black_box(run(n.as_mut(), &inputs));
            n.reset();
        }
        (cpu_seconds() - start) / (seconds * repeats as f64) * 100.0
    };
    let gate_cpu = cpu(&speculative_gate::SPEC, &rules);
    let vad_cpu = cpu(&silero_vad::SPEC, &vad_rules);
    println!("  CPU per stream ({repeats} passes each):");
    println!("    SpeculativeVADGate  {gate_cpu:6.3} % of a core");
    println!("    SileroVADNode       {vad_cpu:6.3} % of a core");
    println!("    ratio gate/VAD      {:6.2}x", gate_cpu / vad_cpu);
}
