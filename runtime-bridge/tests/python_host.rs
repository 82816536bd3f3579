//! The Python-node host against real worker processes (`python -m remotemedia.worker` from
//! the project virtualenv): every data variant both ways, generators, end of stream and
//! flush, errors with tracebacks, crashes, hangs, restarts, and load-time errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use remotemedia_runtime::data::{
    Bytes, ControlMessage, DType, PixelFormat, TensorData, VideoFrame,
};
use remotemedia_runtime::{
    AudioFrame, AudioSamples, ErrorCode, Output, RuntimeData, RuntimeError, Session, StreamSession,
    execute_unary, load_graph,
};
use serde_json::{Value, json};

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/test_nodes.py")
        .display()
        .to_string()
}

/// A one-node manifest running `node_type` from the fixture module, with extra node fields.
fn manifest(node_type: &str, extra: Value) -> String {
    let mut node = json!({"id": "py", "node_type": node_type, "executor": "python",
                          "python_module": fixture()});
    node.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    json!({"version": "v1", "nodes": [node]}).to_string()
}

fn run(
    node_type: &str,
    extra: Value,
    inputs: Vec<RuntimeData>,
) -> Result<Vec<Output>, RuntimeError> {
    let graph = load_graph(&manifest(node_type, extra), "test").unwrap_or_else(|r| panic!("{r}"));
    execute_unary(graph, inputs)
}

fn text(s: &str) -> RuntimeData {
    RuntimeData::Text(s.into())
}

fn texts(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Text(t) => t.clone(),
            other => panic!("expected text, got {other:?}"),
        })
        .collect()
}

#[test]
fn every_variant_crosses_to_python_and_back_unchanged() {
    let mut audio = AudioFrame::new(
        AudioSamples::from_vec(vec![0.25, -1.0, 0.5, 1e-30]),
        48000,
        2,
    );
    audio.pts = Some(20_000_000);
    audio.duration = Some(41_666);
    audio.stream_id = Some(Arc::from("audio:0"));
    audio.metadata = Some(json!({"lang": "en"}));
    let inputs = vec![
        RuntimeData::Audio(audio),
        RuntimeData::Video(VideoFrame {
            data: Bytes::from_static(&[1, 2, 3, 4, 5, 6]),
            width: 2,
            height: 2,
            format: PixelFormat::I420,
            stream_id: Some(Arc::from("video:0")),
            pts: Some(33_000_000),
            keyframe: true,
        }),
        text("héllo"),
        RuntimeData::Json(json!({"a": [1, 2.5, null, "x"], "b": {"c": true}})),
        RuntimeData::Json(json!([1, 2, 3])),
        RuntimeData::Json(json!("just a string")),
        RuntimeData::Binary(Bytes::from_static(b"\x00\xff\x10")),
        RuntimeData::Tensor(TensorData {
            shape: vec![2, 3],
            dtype: DType::I64,
            data: Bytes::from((0..48u8).collect::<Vec<_>>()),
        }),
        RuntimeData::Control(ControlMessage::CancelSpeculation {
            from_ms: 120.5,
            to_ms: 380.25,
        }),
        RuntimeData::Control(ControlMessage::EndOfStream),
    ];
    let outputs = run("Echo", json!({}), inputs.clone()).unwrap();
    assert_eq!(outputs.len(), inputs.len());
    for (out, input) in outputs.iter().zip(&inputs) {
        // Debug output covers every field of every variant, samples and bytes included.
        let want = format!("{input:?}");
        let got = format!("{:?}", out.data);
        if let (RuntimeData::Audio(a), RuntimeData::Audio(b)) = (&out.data, input) {
            assert_eq!(&*a.samples, &*b.samples);
            assert_eq!(
                (
                    a.pts,
                    a.duration,
                    &a.stream_id,
                    &a.metadata,
                    a.sample_rate,
                    a.channels
                ),
                (
                    b.pts,
                    b.duration,
                    &b.stream_id,
                    &b.metadata,
                    b.sample_rate,
                    b.channels
                )
            );
        } else {
            assert_eq!(got, want);
        }
        assert_eq!(out.node_id.as_ref(), "py");
    }
}

#[test]
fn params_reach_the_node_and_audio_keeps_its_timing() {
    let mut frame = AudioFrame::new(AudioSamples::from_vec(vec![0.1, -0.2, 0.3]), 16000, 1);
    frame.pts = Some(5_000_000);
    let out = run(
        "Gain",
        json!({"params": {"gain": 2.0}}),
        vec![RuntimeData::Audio(frame)],
    )
    .unwrap();
    let RuntimeData::Audio(a) = &out[0].data else {
        panic!("expected audio, got {:?}", out[0].data)
    };
    assert_eq!(&*a.samples, &[0.2, -0.4, 0.6]);
    assert_eq!(
        (a.pts, out[0].pts, a.sample_rate),
        (Some(5_000_000), Some(5_000_000), 16000)
    );
}

#[test]
fn generators_yield_one_output_each_in_order() {
    for node in ["Splitter", "AsyncSplitter"] {
        let out = run(node, json!({}), vec![text("one two"), text("three")]).unwrap();
        assert_eq!(texts(&out), ["one", "two", "three"], "{node}");
    }
}

#[test]
fn end_of_stream_and_flush_reach_the_node() {
    let graph =
        load_graph(&manifest("Counter", json!({})), "test").unwrap_or_else(|r| panic!("{r}"));
    let session = StreamSession::create(Arc::clone(&graph)).unwrap();
    for _ in 0..3 {
        session.send(text("x")).unwrap();
    }
    let out = session.close().unwrap();
    assert_eq!(out.len(), 1);
    assert!(
        matches!(&out[0].data, RuntimeData::Json(j) if j["count"] == 3),
        "{out:?}"
    );

    let sink = Arc::new(Collect::default());
    let session = Session::new(graph, sink.clone()).unwrap();
    session.send(text("x")).unwrap();
    session.reset();
    session.send(text("y")).unwrap();
    session.drain().unwrap();
    let outputs = std::mem::take(&mut *sink.outputs.lock().unwrap());
    assert!(
        matches!(&outputs[0].data, RuntimeData::Json(j) if j["count"] == 1),
        "{outputs:?}"
    );
}

#[test]
fn a_raise_names_the_node_and_carries_the_traceback() {
    let err = run("Faulty", json!({}), vec![text("fine"), text("raise")]).unwrap_err();
    assert_eq!(err.node_id, "py");
    assert_eq!(err.code, ErrorCode::Pipeline);
    assert!(
        err.message
            .contains("Faulty raised ValueError: bad input on purpose"),
        "{err}"
    );
    assert!(
        err.message.contains("Traceback (most recent call last)"),
        "{err}"
    );
    assert!(err.message.contains("test_nodes.py"), "{err}");
}

#[test]
fn a_wrong_return_type_names_the_node_and_the_type() {
    let err = run("Faulty", json!({}), vec![text("wrongtype")]).unwrap_err();
    assert!(err.message.contains("node 'py'"), "{err}");
    assert!(
        err.message.contains("returned set; a node may return str"),
        "{err}"
    );
}

#[test]
fn a_crash_is_reported_with_the_exit_status() {
    let err = run("Faulty", json!({}), vec![text("exit")]).unwrap_err();
    assert!(
        err.message
            .contains("the Python worker exited with status 7"),
        "{err}"
    );

    let err = run("Faulty", json!({}), vec![text("segv")]).unwrap_err();
    assert!(err.message.contains("signal 11 (SIGSEGV"), "{err}");
    // faulthandler's report of where Python was names the node's code.
    assert!(
        err.message
            .contains("Fatal Python error: Segmentation fault"),
        "{err}"
    );
    assert!(err.message.contains("test_nodes.py"), "{err}");
}

#[test]
fn a_hang_is_stopped_after_the_timeout() {
    let start = Instant::now();
    let err = run("Faulty", json!({"timeout_ms": 500}), vec![text("hang")]).unwrap_err();
    assert!(
        err.message.contains("did not answer within 500 ms"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[path = "support/collect.rs"]
mod collect;
use collect::Collect;

#[test]
fn the_restart_policy_brings_the_worker_back_until_it_is_spent() {
    let extra = json!({"timeout_ms": 1000, "restart": {"max_restarts": 3, "backoff_ms": 10}});
    let graph = load_graph(&manifest("Faulty", extra), "test").unwrap_or_else(|r| panic!("{r}"));
    let sink = Arc::new(Collect::default());
    let session = Session::new(graph, sink.clone()).unwrap();
    // Each failure is a warning and the graph goes on; a dead or hung worker is replaced.
    for cmd in ["a", "exit", "b", "raise", "c", "hang", "d"] {
        session.send(text(cmd)).unwrap();
    }
    session.drain().unwrap();
    let outputs = texts(&sink.outputs.lock().unwrap());
    assert_eq!(outputs.len(), 4, "{outputs:?}");
    let pid = |s: &str| s.rsplit(':').next().unwrap().to_string();
    assert!(outputs[0].starts_with("ok:a:") && outputs[3].starts_with("ok:d:"));
    assert_ne!(
        pid(&outputs[0]),
        pid(&outputs[1]),
        "the exit replaced the worker"
    );
    assert_eq!(
        pid(&outputs[1]),
        pid(&outputs[2]),
        "a raise keeps the worker"
    );
    assert_ne!(
        pid(&outputs[2]),
        pid(&outputs[3]),
        "the hang replaced the worker"
    );
    let warnings = std::mem::take(&mut *sink.warnings.lock().unwrap());
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0]
            .message
            .contains("exited with status 7; restarted it (restart 1 of 3)")
    );
    assert!(warnings[1].message.contains("ValueError"));
    assert!(
        warnings[2]
            .message
            .contains("did not answer within 1000 ms")
    );
    assert!(sink.errors.lock().unwrap().is_empty());
    // The policy is spent: the next failure is an error.
    session.send(text("exit")).unwrap();
    session.barrier();
    let errors = std::mem::take(&mut *sink.errors.lock().unwrap());
    assert!(
        errors[0].message.contains("after 3 restart(s)"),
        "{errors:?}"
    );
}

fn start_error(node_type: &str, extra: Value) -> String {
    let graph = load_graph(&manifest(node_type, extra), "test").unwrap_or_else(|r| panic!("{r}"));
    match StreamSession::create(graph) {
        Ok(_) => panic!("{node_type} started"),
        Err(e) => {
            assert_eq!(e.node_id, "py");
            assert_eq!(e.code, ErrorCode::Config, "{e}");
            e.message
        }
    }
}

#[test]
fn load_errors_say_what_was_searched_and_come_before_any_data() {
    let msg = start_error("Echo", json!({"python_module": "/nowhere/nodes.py"}));
    assert!(
        msg.contains("python_module '/nowhere/nodes.py' not found: looked for /nowhere/nodes.py"),
        "{msg}"
    );
    let msg = start_error("Echo", json!({"python_module": "no_such_module_here"}));
    assert!(
        msg.contains("'no_such_module_here' not found: searched"),
        "{msg}"
    );
    let msg = start_error("Missing", json!({}));
    assert!(
        msg.contains("node_type 'Missing' is not registered"),
        "{msg}"
    );
    assert!(
        msg.contains("Echo") && msg.contains("PocketSphinxASRNode"),
        "{msg}"
    );
    let msg = start_error("Gain", json!({"params": {"gian": 2}}));
    assert!(msg.contains("Gain rejected its params"), "{msg}");
    assert!(
        msg.contains("unknown param 'gian' (did you mean 'gain'?); it takes: gain"),
        "{msg}"
    );
    let msg = start_error("Gain", json!({"params": {"gain": 99}}));
    assert!(msg.contains("gain must be within 0..10, got 99"), "{msg}");
    let msg = start_error("FailingInit", json!({}));
    assert!(
        msg.contains("failed to start: RuntimeError: model file is missing"),
        "{msg}"
    );
    assert!(msg.contains("Traceback"), "{msg}");
}

#[test]
fn the_session_starts_once_initialize_finished() {
    let start = Instant::now();
    let out = run("SlowInit", json!({}), vec![text("early")]).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(500));
    let RuntimeData::Json(j) = &out[0].data else {
        panic!("{out:?}")
    };
    assert!(j["seen_at"].as_f64() >= j["ready_at"].as_f64(), "{j}");
}

#[test]
fn python_fields_are_checked_at_load() {
    let bad = json!({"version": "v1", "nodes": [
        {"id": "a", "node_type": "PassThrough", "timeout_ms": 10},
        {"id": "b", "node_type": "X", "executor": "python", "timeout_ms": 0,
         "restart": {"max_restarts": -1, "backof_ms": 1}},
    ]});
    let Err(report) = load_graph(&bad.to_string(), "bad") else {
        panic!("loaded")
    };
    let report = report.to_string();
    assert!(
        report.contains("nodes[0] \"a\": timeout_ms applies to Python nodes only"),
        "{report}"
    );
    assert!(
        report.contains(
            "nodes[1] \"b\" (X, python): timeout_ms must be an integer within 1..86400000, got 0"
        ),
        "{report}"
    );
    assert!(
        report.contains("restart: unknown field \"backof_ms\""),
        "{report}"
    );
}
