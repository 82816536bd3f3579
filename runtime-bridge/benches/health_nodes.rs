//! B13: the four stream-health nodes together (AudioLevel, SilenceDetector, ClippingDetector,
//! ChannelBalance, chained in one manifest) on 48 kHz stereo in 20 ms buffers: CPU per stream
//! in % of one core (CPU time over audio time), one stream at a time as fast as it goes; then
//! `--streams N` sessions of the same manifest fed at once, each on a thread of its own, in
//! real time, for the whole process's CPU.
//!
//!     cargo bench -p remotemedia-runtime --bench health_nodes [-- --seconds 60 --streams 100]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use remotemedia_runtime::{
    AudioFrame, AudioSamples, Graph, RuntimeData, StreamSession, load_graph,
};
use serde_json::json;

#[path = "support/args.rs"]
mod args;
#[path = "support/cpu.rs"]
mod cpu;
use args::arg;
use cpu::cpu_seconds;

const RATE: u32 = 48000;
const PIECE: usize = 960; // frames per 20 ms buffer

/// Speech-like stereo: a tone whose loudness moves, the right channel a little quieter.
fn buffers(seconds: usize) -> Vec<AudioSamples> {
    (0..seconds * 50)
        .map(|b| {
            (0..PIECE)
                .flat_map(|i| {
                    let t = (b * PIECE + i) as f32 / RATE as f32;
                    let x = 0.3
                        * (1.0 + (t * 1.3).sin())
                        * (2.0 * std::f32::consts::PI * 220.0 * t).sin();
                    [x, 0.8 * x]
                })
                .collect::<Vec<f32>>()
        })
        .map(AudioSamples::from_vec)
        .collect()
}

fn feed(session: &StreamSession, i: usize, samples: &AudioSamples) -> usize {
    let mut frame = AudioFrame::new(samples.clone(), RATE, 2);
    frame.pts = Some(i as u64 * 20_000_000);
    session.send(RuntimeData::Audio(frame)).expect("send");
    let mut outputs = 0;
    while let Some(out) = session.try_recv() {
        out.expect("no node fails");
        outputs += 1;
    }
    outputs
}

fn main() {
    let seconds = arg("--seconds", 60);
    let streams = arg("--streams", 100);
    let manifest = json!({"version": "v1", "nodes": [
        {"id": "level", "node_type": "AudioLevelNode"},
        {"id": "silence", "node_type": "SilenceDetectorNode"},
        {"id": "clipping", "node_type": "ClippingDetectorNode"},
        {"id": "balance", "node_type": "ChannelBalanceNode"}],
        "connections": [{"from": "level", "to": "silence"}, {"from": "silence", "to": "clipping"},
                        {"from": "clipping", "to": "balance"}]});
    let graph: Arc<Graph> =
        load_graph(&manifest.to_string(), "bench").unwrap_or_else(|r| panic!("{r}"));
    let audio = buffers(seconds);

    let session = StreamSession::create(graph.clone()).unwrap_or_else(|e| panic!("{e}"));
    let cpu = cpu_seconds();
    let mut outputs = 0;
    for (i, b) in audio.iter().enumerate() {
        outputs += feed(&session, i, b);
    }
    let per_stream = (cpu_seconds() - cpu) / seconds as f64 * 100.0;
    drop(session);

    // Many live streams at once, each paced in real time on its own thread.
    let audio = Arc::new(audio);
    let live_seconds = seconds.min(20);
    let cpu = cpu_seconds();
    let start = Instant::now() + Duration::from_millis(200);
    let handles: Vec<_> = (0..streams)
        .map(|n| {
            let (graph, audio) = (graph.clone(), audio.clone());
            thread::spawn(move || {
                let session = StreamSession::create(graph).unwrap_or_else(|e| panic!("{e}"));
                let phase = Duration::from_millis(20) * n as u32 / streams as u32;
                for (i, b) in audio.iter().take(live_seconds * 50).enumerate() {
                    let due = start + phase + Duration::from_millis(20) * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    feed(&session, i, b);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a stream panicked");
    }
    let all = (cpu_seconds() - cpu) / live_seconds as f64 * 100.0;
    println!(
        "{}",
        json!({"per_stream_cpu_percent": per_stream, "results": outputs, "seconds": seconds,
               "streams": streams, "live_seconds": live_seconds,
               "all_streams_cpu_percent": all, "per_live_stream_cpu_percent": all / streams as f64})
    );
}
