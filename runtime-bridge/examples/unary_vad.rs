//! B16's Rust side (benches/node_unary_vad.py): `load_graph` + `execute_unary` of
//! examples/launch/vad.json on 60 s of the shipped speech (looped), in 20 ms inputs that are
//! views of one buffer, as the Node.js and Python sides send them. Each line on stdin asks for
//! one run; the answer is its wall time in ns and the number of outputs.
//!
//!     cargo build --release -p remotemedia-runtime --example unary_vad

use std::io::BufRead;
use std::time::Instant;

use remotemedia_runtime::{AudioFrame, AudioSamples, RuntimeData};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::fs::read_to_string("examples/launch/vad.json")?;
    let mut wav = hound::WavReader::open("examples/launch/speech.wav")?;
    let rate = wav.spec().sample_rate;
    let speech = wav
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0))
        .collect::<Result<Vec<_>, _>>()?;
    let looped: Vec<f32> = speech
        .iter()
        .copied()
        .cycle()
        .take(rate as usize * 60)
        .collect();
    let audio = AudioSamples::from_vec(looped);
    let step = rate as usize / 50;
    let inputs = || {
        (0..audio.len() / step).map(|i| {
            let mut frame = AudioFrame::new(audio.slice(i * step..(i + 1) * step), rate, 1);
            frame.pts = Some(i as u64 * 20_000_000);
            RuntimeData::Audio(frame)
        })
    };
    let run = || -> Result<(u128, usize), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let graph = remotemedia_runtime::load_graph(&manifest, "vad.json")?;
        let outputs = remotemedia_runtime::execute_unary(graph, inputs())?;
        Ok((start.elapsed().as_nanos(), outputs.len()))
    };
    run()?; // warm-up
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        line?;
        let (ns, outputs) = run()?;
        println!("{ns} {outputs}");
    }
    Ok(())
}
