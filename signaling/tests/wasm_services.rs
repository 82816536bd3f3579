//! WasmNode's host calls against a real in-process remotemedia-server on loopback: a service
//! that answers, one not in the whitelist, one whose server is down, a streaming session and
//! its id; and the intelligent-VAD example (examples/wasm) on the shipped speech, asking the
//! far SileroVADNode only when its energy VAD is unsure.

use std::sync::{Arc, Mutex};

use remotemedia_runtime::{
    AudioFrame, AudioSamples, Output, OutputSink, RuntimeData, RuntimeError, Session, load_graph,
};
use serde_json::{Value, json};

#[path = "support/server.rs"]
mod server;
use server::{install_transport, start};
#[path = "support/wat.rs"]
mod wat;
use wat::ASK;

/// What a session put out, warnings included.
#[derive(Default)]
struct Collected {
    outputs: Mutex<Vec<Output>>,
    warnings: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
}

impl OutputSink for Collected {
    fn output(&self, output: Output) {
        self.outputs.lock().unwrap().push(output);
    }
    fn error(&self, error: RuntimeError) {
        self.errors.lock().unwrap().push(error.message);
    }
    fn warning(&self, warning: RuntimeError) {
        self.warnings.lock().unwrap().push(warning.message);
    }
}

fn run(manifest: Value, inputs: Vec<RuntimeData>) -> Arc<Collected> {
    let graph = load_graph(&manifest.to_string(), "test").unwrap();
    let sink = Arc::new(Collected::default());
    let session = Session::new(graph, sink.clone()).unwrap();
    for input in inputs {
        session.send(input).unwrap();
    }
    session.drain().unwrap();
    drop(session);
    sink
}

fn wat_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("rm-wasm-svc-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Sends its text input to service `name` (call or stream, by `host`) and writes what came
/// back: the service's result, or the session id after streaming, or the return code.
fn asking(host: &str, name: &str) -> String {
    let call = match host {
        "call" => {
            "(call $ask (i32.const 16) (i32.const NAME_LEN) (local.get $in) (local.get $len) \
                   (local.get $out) (local.get $out_len))"
        }
        _ => {
            "(if (result i32) (i32.eqz (call $stream (i32.const 16) (i32.const NAME_LEN) \
                   (local.get $in) (local.get $len))) \
               (then (call $session (i32.const 16) (i32.const NAME_LEN) (local.get $out) \
                   (local.get $out_len))) \
               (else (i32.const -1)))"
        }
    }
    .replace("NAME_LEN", &name.len().to_string());
    let imports = format!(
        r#"{ASK}
  (import "env" "stream_to_remote" (func $stream (param i32 i32 i32 i32) (result i32)))
  (import "env" "get_remote_session" (func $session (param i32 i32 i32 i32) (result i32)))"#
    );
    let body = format!(
        r#"(data (i32.const 16) "{name}")
  (func (export "f") (param $in i32) (param $len i32) (param $out i32) (param $out_len i32) (result i32)
    (local $rc i32)
    (local.set $rc {call})
    ;; A failed host call: the output says "-1".
    (if (i32.eq (local.get $rc) (i32.const -1))
      (then (i32.store16 (local.get $out) (i32.const 0x312d))
            (i32.store (local.get $out_len) (i32.const 2))
            (local.set $rc (i32.const 0))))
    (local.get $rc))"#
    );
    let text = wat::module(&imports, &body);
    wat_file(&format!("{host}-{name}.wat"), &text)
}

fn wasm_node(path: &str, services: Value) -> Value {
    json!({"version": "v1", "nodes": [{"id": "wasm", "node_type": "WasmNode", "params": {
        "wasm_path": path, "function_name": "f", "input": "text", "output": "text",
        "output_capacity": 16, "services": services}}]})
}

fn texts(c: &Collected) -> Vec<String> {
    c.outputs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|o| match &o.data {
            RuntimeData::Text(t) if &*o.node_id == "wasm" => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_whitelisted_service_answers_and_the_others_return_minus_one() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    let endpoint = format!("grpc://{}", server.grpc_addr);
    let services = json!({"Echo": {"endpoint": endpoint, "node_type": "PassThrough"}});

    // The answer is larger than the 16 bytes the module first offers: -2, then the retry gets
    // the same result without a second call.
    let got = run(
        wasm_node(&asking("call", "Echo"), services.clone()),
        vec![
            RuntimeData::Text("hello".into()),
            RuntimeData::Text("again".into()),
        ],
    );
    let answers: Vec<Value> = texts(&got)
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0][0]["type"], "text");
    assert_eq!(answers[0][0]["data"], "hello");
    assert_eq!(answers[1][0]["data"], "again");
    assert!(got.errors.lock().unwrap().is_empty());

    let got = run(
        wasm_node(&asking("call", "Nope"), services),
        vec![RuntimeData::Text("hello".into())],
    );
    assert_eq!(texts(&got), ["-1"]);
    let warnings = got.warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"Nope\" is not in the node's services")),
        "{warnings:?}"
    );
    rt.block_on(server.shutdown());
}

#[test]
fn a_service_whose_server_is_down_returns_minus_one_and_the_pipeline_goes_on() {
    install_transport();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let services = json!({"Echo": {"endpoint": format!("grpc://127.0.0.1:{port}"),
        "node_type": "PassThrough", "retry": 0, "timeout_ms": 2000}});
    let mut manifest = wasm_node(&asking("call", "Echo"), services);
    manifest["nodes"][0]["params"]["timeout_ms"] = json!(5000);
    let got = run(
        manifest,
        vec![
            RuntimeData::Text("one".into()),
            RuntimeData::Text("two".into()),
        ],
    );
    assert_eq!(texts(&got), ["-1", "-1"], "both inputs went through");
    let warnings = got.warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("service \"Echo\" failed")),
        "{warnings:?}"
    );
    assert!(got.errors.lock().unwrap().is_empty());
}

#[test]
fn a_streaming_session_has_an_id_and_its_outputs_join_the_nodes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    let services = json!({"Echo": {"endpoint": format!("grpc://{}", server.grpc_addr),
        "node_type": "PassThrough"}});
    let mut manifest = wasm_node(&asking("stream", "Echo"), services);
    manifest["nodes"][0]["params"]["output_capacity"] = json!(64);
    let got = run(
        manifest,
        ["a", "b", "c"]
            .map(|t| RuntimeData::Text(t.into()))
            .to_vec(),
    );
    let texts = texts(&got);
    let ids: Vec<&String> = texts.iter().filter(|t| t.contains("/Echo/")).collect();
    assert_eq!(ids.len(), 3, "{texts:?}");
    assert!(
        ids.iter().all(|t| t.ends_with("stream-Echo/Echo/1")),
        "one session: {ids:?}"
    );
    // The far PassThrough's outputs come back as the node's own, by the end of the stream.
    let echoed: Vec<&String> = texts.iter().filter(|t| t.len() == 1).collect();
    assert_eq!(echoed, ["a", "b", "c"], "{texts:?}");
    rt.block_on(server.shutdown());
}

#[test]
fn the_intelligent_vad_finds_the_sentences_asking_the_far_vad_when_unsure() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("target/wasm/intelligent_vad.wasm");
    assert!(
        wasm.exists(),
        "{} is built by scripts/setup.sh",
        wasm.display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    let manifest = json!({"version": "v1", "nodes": [
        {"id": "resample", "node_type": "FastResampleNode", "params": {"target_rate": 16000, "channels": 1}},
        {"id": "vad", "node_type": "WasmNode", "params": {
            "wasm_path": wasm.display().to_string(), "input": "audio", "output": "json",
            "services": {"VoiceActivityDetector": {"endpoint": format!("grpc://{}", server.grpc_addr),
                "node_type": "SileroVADNode"}}}}],
        "connections": [{"from": "resample", "to": "vad"}]});
    let mut reader = hound::WavReader::open(root.join("examples/launch/speech.wav")).unwrap();
    let rate = reader.spec().sample_rate;
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    let piece = rate as usize / 50;
    let inputs = samples
        .chunks(piece)
        .enumerate()
        .map(|(i, c)| {
            let mut f = AudioFrame::new(AudioSamples::from_vec(c.to_vec()), rate, 1);
            f.pts = Some(i as u64 * 20_000_000);
            RuntimeData::Audio(f)
        })
        .collect();
    let got = run(manifest, inputs);
    assert!(got.errors.lock().unwrap().is_empty(), "{:?}", got.errors);
    let results: Vec<Value> = got
        .outputs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|o| match &o.data {
            RuntimeData::Json(v) if &*o.node_id == "vad" => Some(v.clone()),
            _ => None,
        })
        .collect();
    let at = |flag: &str| -> Vec<f64> {
        results
            .iter()
            .filter(|r| r[flag] == true)
            .map(|r| r["timestamp_ms"].as_f64().unwrap())
            .collect()
    };
    let (starts, ends) = (at("is_speech_start"), at("is_speech_end"));
    let known: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/launch/speech.segments.json")).unwrap(),
    )
    .unwrap();
    let known = known["segments_ms"].as_array().unwrap();
    assert_eq!(starts.len(), known.len(), "starts {starts:?} ends {ends:?}");
    for (start, seg) in starts.iter().zip(known) {
        assert!(
            (start - seg[0].as_f64().unwrap()).abs() <= 200.0,
            "{start} vs {seg}"
        );
    }
    for (end, seg) in ends.iter().zip(known) {
        assert!(
            (end - seg[1].as_f64().unwrap()).abs() <= 400.0,
            "{end} vs {seg}"
        );
    }
    let remote = results.iter().filter(|r| r["source"] == "remote").count();
    let local = results.iter().filter(|r| r["source"] == "energy").count();
    assert!(
        remote > 0 && local > remote,
        "remote {remote}, local {local}"
    );
    rt.block_on(server.shutdown());
}
