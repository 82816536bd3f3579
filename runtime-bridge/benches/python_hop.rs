//! B3, our side: round trip of one 20 ms 48 kHz mono f32 frame through a Python echo node
//! (host -> iceoryx2 -> worker -> numpy view -> Audio back -> iceoryx2 -> host), measured
//! two ways: the node called directly (the hop itself), and in a graph session (the executor's
//! path: the sender runs the cheap node itself, then the session's output channel). With
//! `--video`, B3b: the same with one 1920x1080 RGB frame. With `--container`, B20: the node in
//! a container (a `docker` block; the base image of scripts/container-base.sh). Prints one JSON
//! line each; `benches/python_hop.py` and `benches/container_node.py` run it beside their
//! baselines and write the tables.
//!
//!     cargo bench -p remotemedia-runtime --bench python_hop [-- --count N] [--video] [--container]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use remotemedia_runtime::data::{Bytes, PixelFormat, VideoFrame};
use remotemedia_runtime::node::{Emitter, Node};
use remotemedia_runtime::python::{PythonNode, PythonNodeConfig, WorkerOptions};
use remotemedia_runtime::{
    AudioFrame, AudioSamples, Packet, RuntimeData, StreamSession, load_graph,
};
use serde_json::json;

#[path = "support/args.rs"]
mod args;
use args::arg;

const WARMUP: usize = 200;
const VIDEO_WARMUP: usize = 20;
const VIDEO_SIZE: (u32, u32) = (1920, 1080);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let count = arg("--count", 5000);
    let video = std::env::args().any(|a| a == "--video");
    let container = std::env::args().any(|a| a == "--container");
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test_nodes.py");
    let mut manifest = json!({"version": "v1", "nodes": [{"id": "echo", "node_type": "Echo",
        "executor": "python", "python_module": fixture.display().to_string()}]});
    if container {
        manifest["nodes"][0]["docker"] = json!({});
    }
    let frame: Vec<f32> = (0..960).map(|i| (i as f32 * 0.01).sin()).collect();
    let (width, height) = VIDEO_SIZE;
    let pixels: Bytes = (0..width as usize * height as usize * 3)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    // The sender's frame is built once and shared (as a decoder's output would be); the
    // round trip is what the bench measures.
    let input = |i: usize| {
        let pts = Some(i as u64 * 20_000_000);
        if video {
            return RuntimeData::Video(VideoFrame {
                data: pixels.clone(),
                width,
                height,
                format: PixelFormat::Rgb,
                stream_id: None,
                pts,
                keyframe: true,
            });
        }
        let mut audio = AudioFrame::new(AudioSamples::from_vec(frame.clone()), 48000, 1);
        audio.pts = pts;
        RuntimeData::Audio(audio)
    };
    let check = |i: usize, data: &RuntimeData| {
        if !i.is_multiple_of(100) {
            return;
        }
        match data {
            RuntimeData::Audio(back) if !video => {
                assert_eq!(&*back.samples, &frame[..], "the echo changed the samples");
            }
            RuntimeData::Video(back) if video => {
                assert_eq!(back.data, pixels, "the echo changed the pixels");
            }
            _ => panic!("the echo sent back another kind of data"),
        }
    };
    let (warmup, name) = if video {
        (VIDEO_WARMUP, "remotemedia-python-node-video")
    } else {
        (WARMUP, "remotemedia-python-node")
    };
    let name = if container {
        format!("{name}-container")
    } else {
        name.to_string()
    };

    let graph = load_graph(&manifest.to_string(), "bench").unwrap_or_else(|r| panic!("{r}"));
    let cfg: PythonNodeConfig = graph.manifest().nodes[0]
        .python
        .clone()
        .expect("a Python node");
    let mut node = PythonNode::spawn("echo", &cfg, &WorkerOptions::default()).expect("spawn");
    node.wait_ready().expect("ready");
    let hop = measure(count, warmup, |i| {
        let mut out = Emitter::default();
        node.process(Packet::new(input(i)), &mut out).expect("echo");
        let packets = out.into_packets();
        check(i, &packets[0].data);
    });
    drop(node);
    report(&format!("{name}-hop"), &hop, count);

    let session = StreamSession::create(graph).unwrap_or_else(|e| panic!("{e}"));
    let in_graph = measure(count, warmup, |i| {
        session.send(input(i)).expect("send");
        let out = session
            .recv_timeout(Duration::from_secs(10))
            .expect("an output")
            .expect("no error");
        check(i, &out.data);
    });
    report(&format!("{name}-in-graph"), &in_graph, count);
}

/// Round-trip times in microseconds, after `warmup` untimed ones, sorted.
fn measure(count: usize, warmup: usize, mut round_trip: impl FnMut(usize)) -> Vec<f64> {
    let mut times = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let start = Instant::now();
        round_trip(i);
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

fn report(transport: &str, times: &[f64], count: usize) {
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{}",
        json!({"transport": transport, "p50_us": percentile(times, 0.5),
               "p99_us": percentile(times, 0.99), "mean_us": mean, "count": count})
    );
}
