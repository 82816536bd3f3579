//! B3, our side: round trip of one 20 ms 48 kHz mono f32 frame through a Python echo node
//! (host -> iceoryx2 -> worker -> numpy view -> Audio back -> iceoryx2 -> host), measured
//! two ways: the node called directly (the hop itself), and in a graph session (the executor's
//! path: the sender runs the cheap node itself, then the session's output channel). Prints one
//! JSON line each;
//! `benches/python_hop.py` runs it beside the baselines and writes the table.
//!
//!     cargo bench -p remotemedia-runtime --bench python_hop [-- --count N]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use remotemedia_runtime::node::{Emitter, Node};
use remotemedia_runtime::python::{PythonNode, PythonNodeConfig, WorkerOptions};
use remotemedia_runtime::{
    AudioFrame, AudioSamples, Packet, RuntimeData, StreamSession, load_graph,
};
use serde_json::json;

const WARMUP: usize = 200;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test_nodes.py");
    let manifest = json!({"version": "v1", "nodes": [{"id": "echo", "node_type": "Echo",
        "executor": "python", "python_module": fixture.display().to_string()}]});
    let frame: Vec<f32> = (0..960).map(|i| (i as f32 * 0.01).sin()).collect();
    let audio = |i: usize| {
        let mut audio = AudioFrame::new(AudioSamples::from_vec(frame.clone()), 48000, 1);
        audio.pts = Some(i as u64 * 20_000_000);
        RuntimeData::Audio(audio)
    };
    let check = |i: usize, data: &RuntimeData| {
        let RuntimeData::Audio(back) = data else {
            panic!("expected audio back")
        };
        if i.is_multiple_of(100) {
            assert_eq!(&*back.samples, &frame[..], "the echo changed the samples");
        }
    };

    let graph = load_graph(&manifest.to_string(), "bench").unwrap_or_else(|r| panic!("{r}"));
    let cfg: PythonNodeConfig = graph.manifest().nodes[0]
        .python
        .clone()
        .expect("a Python node");
    let mut node = PythonNode::spawn("echo", &cfg, &WorkerOptions::default()).expect("spawn");
    node.wait_ready().expect("ready");
    let hop = measure(count, |i| {
        let mut out = Emitter::default();
        node.process(Packet::new(audio(i)), &mut out).expect("echo");
        let packets = out.into_packets();
        check(i, &packets[0].data);
    });
    drop(node);
    report("remotemedia-python-node-hop", &hop, count);

    let session = StreamSession::create(graph).unwrap_or_else(|e| panic!("{e}"));
    let in_graph = measure(count, |i| {
        session.send(audio(i)).expect("send");
        let out = session
            .recv_timeout(Duration::from_secs(10))
            .expect("an output")
            .expect("no error");
        check(i, &out.data);
    });
    report("remotemedia-python-node-in-graph", &in_graph, count);
}

/// Round-trip times in microseconds, after a warm-up, sorted.
fn measure(count: usize, mut round_trip: impl FnMut(usize)) -> Vec<f64> {
    let mut times = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let start = Instant::now();
        round_trip(i);
        if i >= WARMUP {
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
