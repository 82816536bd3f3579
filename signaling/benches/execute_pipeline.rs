//! B7: `ExecutePipeline` over loopback against the same pipeline run in-process, side by
//! side in one run.
//!
//!     cargo bench -p remotemedia-signaling --bench execute_pipeline
//!
//! The pipeline is examples/launch/vad.json (FastResampleNode, then SileroVADNode) on 1 s of
//! 16 kHz mono f32: one second of speech from examples/launch/speech.wav (1.0 s to 2.0 s, in
//! its first speech segment), resampled to 16 kHz once at start. Per call, interleaved:
//!
//! - in-process: `execute_unary` on a graph loaded once with `load_graph`;
//! - in-process, loading too: `load_graph` + `execute_unary`, as the server does per call;
//! - gRPC: build the `ExecuteRequest` (manifest text and the audio as f32 bytes), call the
//!   release `remotemedia-server` binary on 127.0.0.1 over one HTTP/2 connection, decode the
//!   response; the server parses the manifest, runs the pipeline and returns every output.
//!
//! Wall time per call; the added time is gRPC minus in-process, medians.
//! `RM_BENCH_SERVER=/path/to/remotemedia-server` runs another build of the server instead.

use std::path::Path;
use std::time::{Duration, Instant};

use remotemedia_runtime::{
    AudioFrame, AudioSamples, Output, RuntimeData, execute_unary, load_graph,
};
use remotemedia_signaling::grpc::pb;
use remotemedia_signaling::grpc::pb::pipeline_execution_service_client::PipelineExecutionServiceClient;
use tonic::transport::Channel;

const CALLS: usize = 200;
const WARMUP: usize = 10;

#[path = "../tests/common/server_process.rs"]
mod server_process;
use server_process::ServerProcess;

/// Samples `from..to` seconds of a 16-bit PCM mono WAV file, as f32, and its rate.
fn wav_seconds(path: &Path, from: f64, to: f64) -> (Vec<f32>, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let (mut at, mut rate, mut data) = (12, 0, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + size).min(bytes.len())];
        if id == b"fmt " {
            let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
            assert_eq!(
                (u16_at(0), u16_at(2), u16_at(14)),
                (1, 1, 16),
                "PCM, mono, 16 bit"
            );
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            data = Some(body);
        }
        at += 8 + size + (size & 1);
    }
    let data = data.expect("a data chunk");
    let (a, b) = ((from * rate as f64) as usize, (to * rate as f64) as usize);
    let samples = data[a * 2..b * 2]
        .chunks_exact(2)
        .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
        .collect();
    (samples, rate)
}

/// One second of speech as 16 kHz mono f32.
fn one_second_16k(root: &Path) -> Vec<f32> {
    let (samples, rate) = wav_seconds(&root.join("examples/launch/speech.wav"), 1.0, 2.0);
    let graph = load_graph(
        r#"{"version":"v1","nodes":[{"id":"r","node_type":"FastResampleNode",
            "params":{"target_rate":16000,"channels":1}}]}"#,
        "resample",
    )
    .unwrap();
    let frame = AudioFrame::new(AudioSamples::from_vec(samples), rate, 1);
    execute_unary(graph, [RuntimeData::Audio(frame)])
        .unwrap()
        .into_iter()
        .flat_map(|o| match o.data {
            RuntimeData::Audio(a) => a.samples.to_vec(),
            other => panic!("resampler gave {other:?}"),
        })
        .collect()
}

fn audio(samples: &[f32]) -> RuntimeData {
    RuntimeData::Audio(AudioFrame::new(
        AudioSamples::from_vec(samples.to_vec()),
        16000,
        1,
    ))
}

/// What the VAD said, comparable across both paths: the JSON events, in order.
fn events_in_process(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match &o.data {
            RuntimeData::Json(j) => Some(j.to_string()),
            _ => None,
        })
        .collect()
}

fn events_grpc(result: &pb::ExecutionResult) -> Vec<String> {
    result
        .outputs
        .iter()
        .filter_map(|o| match o.data.as_ref()?.data.as_ref()? {
            // The server's text as it is: serde_json's default float parsing is not exact.
            pb::data_buffer::Data::Json(j) => Some(j.clone()),
            _ => None,
        })
        .collect()
}

async fn call_grpc(
    client: &mut PipelineExecutionServiceClient<Channel>,
    manifest: &str,
    samples: &[f32],
) -> pb::ExecutionResult {
    let request = pb::ExecuteRequest {
        manifest_json: manifest.to_owned(),
        inputs: vec![pb::NamedInput {
            node_id: String::new(),
            data: Some(pb::DataBuffer {
                data: Some(pb::data_buffer::Data::Audio(pb::AudioBuffer {
                    samples: samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
                    sample_rate: 16000,
                    channels: 1,
                    ..Default::default()
                })),
            }),
        }],
        timeout_ms: 0,
        client_version: env!("CARGO_PKG_VERSION").into(),
    };
    let response = client
        .execute_pipeline(request)
        .await
        .expect("ExecutePipeline")
        .into_inner();
    match response.outcome {
        Some(pb::execute_response::Outcome::Result(r)) => r,
        other => panic!("ExecutePipeline failed: {other:?}"),
    }
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn mean(v: &[Duration]) -> f64 {
    v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64 * 1e3
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("examples/launch/vad.json")).unwrap();
    let samples = one_second_16k(&root);
    assert_eq!(samples.len(), 16000, "1 s at 16 kHz");
    let graph = load_graph(&manifest, "vad.json").expect("vad.json loads");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = ServerProcess::for_bench("off");
    let addr = server.grpc.clone();
    let mut client = runtime.block_on(async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        PipelineExecutionServiceClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    });

    // The same events both ways.
    let local = execute_unary(graph.clone(), [audio(&samples)]).unwrap();
    let remote = runtime.block_on(call_grpc(&mut client, &manifest, &samples));
    let events = events_in_process(&local);
    assert_eq!(events, events_grpc(&remote), "gRPC and in-process disagree");
    assert_eq!(local.len(), remote.outputs.len());

    let mut times: [Vec<Duration>; 3] = Default::default();
    for i in 0..WARMUP + CALLS {
        // Rotate the order, so neither path always runs right after the other.
        for k in 0..3 {
            let which = (i + k) % 3;
            let start = Instant::now();
            match which {
                0 => {
                    std::hint::black_box(execute_unary(graph.clone(), [audio(&samples)]).unwrap());
                }
                1 => {
                    let g = load_graph(&manifest, "vad.json").unwrap();
                    std::hint::black_box(execute_unary(g, [audio(&samples)]).unwrap());
                }
                _ => {
                    std::hint::black_box(runtime.block_on(call_grpc(
                        &mut client,
                        &manifest,
                        &samples,
                    )));
                }
            }
            if i >= WARMUP {
                times[which].push(start.elapsed());
            }
        }
    }
    let [mut unary, mut loading, mut grpc] = times;
    let (mu, mg) = (mean(&unary), mean(&grpc));
    let ml = mean(&loading);
    let (u, l, g) = (median(&mut unary), median(&mut loading), median(&mut grpc));
    println!(
        "B7 ExecutePipeline vs in-process, vad.json on 1 s of 16 kHz speech ({} outputs, {} VAD \
         events), {CALLS} calls each, interleaved",
        local.len(),
        events.len()
    );
    println!("  {:<44} {:>10} {:>10}", "", "median ms", "mean ms");
    println!(
        "  {:<44} {u:>10.3} {mu:>10.3}",
        "in-process execute_unary (graph loaded once)"
    );
    println!(
        "  {:<44} {l:>10.3} {ml:>10.3}",
        "in-process load_graph + execute_unary"
    );
    println!(
        "  {:<44} {g:>10.3} {mg:>10.3}",
        "gRPC ExecutePipeline, loopback"
    );
    println!(
        "  added by gRPC: {:.3} ms per call over execute_unary (ratio {:.3}), {:.3} ms over \
         load_graph + execute_unary (ratio {:.3})",
        g - u,
        g / u,
        g - l,
        g / l
    );
}
