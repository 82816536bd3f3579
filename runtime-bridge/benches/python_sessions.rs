//! B3c: many sessions at once, each a Python echo node on 20 ms audio in real time. Every
//! session runs on a thread of its own that sends one 48 kHz mono frame every 20 ms (the
//! sessions' phases spread over the 20 ms, as independent streams are) and waits for the
//! echo; the round trip is the time from send to the echo's arrival. Prints one JSON line:
//! p50, p99 and max over all sessions, and frames lost (sent but never echoed, or echoed
//! with other samples).
//!
//!     cargo bench -p remotemedia-runtime --bench python_sessions [-- --sessions 32 --seconds 20]

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use remotemedia_runtime::{
    AudioFrame, AudioSamples, Graph, RuntimeData, StreamSession, load_graph,
};
use serde_json::json;

#[path = "support/args.rs"]
mod args;
use args::arg;

const FRAME: Duration = Duration::from_millis(20);
const WARMUP_FRAMES: usize = 25;

struct Outcome {
    round_trips_us: Vec<f64>,
    lost: usize,
}

/// One stream: paced sends, each waiting for its echo (a real-time stream never has more
/// than one frame in flight when the round trip is under 20 ms; a slower echo shows as a
/// long round trip, not as a queue).
fn stream(session: &StreamSession, phase: Duration, frames: usize, start: Instant) -> Outcome {
    let samples: Vec<f32> = (0..960).map(|i| (i as f32 * 0.013).cos()).collect();
    let mut round_trips_us = Vec::with_capacity(frames);
    let mut lost = 0;
    for i in 0..WARMUP_FRAMES + frames {
        let due = start + phase + FRAME * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let mut audio = AudioFrame::new(AudioSamples::from_vec(samples.clone()), 48000, 1);
        audio.pts = Some(i as u64);
        let sent = Instant::now();
        session.send(RuntimeData::Audio(audio)).expect("send");
        let echo = session.recv_timeout(Duration::from_secs(5));
        let took = sent.elapsed();
        let intact = matches!(&echo, Some(Ok(out)) if out.pts == Some(i as u64)
            && matches!(&out.data, RuntimeData::Audio(a) if a.samples[..] == samples[..]));
        if i < WARMUP_FRAMES {
            continue;
        }
        if intact {
            round_trips_us.push(took.as_secs_f64() * 1e6);
        } else {
            lost += 1;
        }
    }
    Outcome {
        round_trips_us,
        lost,
    }
}

fn main() {
    let sessions = arg("--sessions", 32);
    let seconds = arg("--seconds", 20);
    let frames = seconds * 50;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test_nodes.py");
    let manifest = json!({"version": "v1", "nodes": [{"id": "echo", "node_type": "Echo",
        "executor": "python", "python_module": fixture.display().to_string()}]});
    let graph: Arc<Graph> =
        load_graph(&manifest.to_string(), "bench").unwrap_or_else(|r| panic!("{r}"));

    // Every session starts (its worker spawned and ready) before any stream begins.
    let ready = Arc::new(Barrier::new(sessions + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let handles: Vec<_> = (0..sessions)
        .map(|n| {
            let (graph, ready, start_at) = (graph.clone(), ready.clone(), start_at.clone());
            thread::spawn(move || {
                let session = StreamSession::create(graph).unwrap_or_else(|e| panic!("{e}"));
                ready.wait();
                ready.wait(); // the start time is set between the two waits
                let start = *start_at.get().expect("set before the second wait");
                let phase = FRAME * n as u32 / sessions as u32;
                stream(&session, phase, frames, start)
            })
        })
        .collect();
    ready.wait();
    start_at
        .set(Instant::now() + Duration::from_millis(100))
        .expect("set once");
    ready.wait();
    let mut all = Vec::new();
    let mut lost = 0;
    for h in handles {
        let outcome = h.join().expect("a stream panicked");
        all.extend(outcome.round_trips_us);
        lost += outcome.lost;
    }
    all.sort_by(f64::total_cmp);
    let pick = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize];
    println!(
        "{}",
        json!({"sessions": sessions, "seconds": seconds, "frames": all.len() + lost,
               "lost": lost, "p50_us": pick(0.5), "p99_us": pick(0.99),
               "max_us": all[all.len() - 1]})
    );
}
