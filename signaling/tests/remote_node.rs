//! RemotePipelineNode against a real in-process remotemedia-server: unary and streaming
//! calls, the token, retries, and errors from the far side named in the local error.

use std::time::{Duration, Instant};

use remotemedia_runtime::{AudioFrame, AudioSamples, RuntimeData, execute_unary, load_graph};
use remotemedia_signaling::grpc::auth::CallRate;
use remotemedia_signaling::grpc::server::{self, Limits, RunningServer, ServerConfig};

fn config() -> ServerConfig {
    ServerConfig {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        ws_addr: None,
        metrics_addr: None,
        require_auth: true,
        auth_tokens: vec!["sesame".into()],
        ws_tokens: Vec::new(),
        limits: Limits {
            max_timeout: Duration::from_secs(10),
            max_memory_bytes: 64 << 20,
        },
        max_message_bytes: 16 << 20,
        call_rate: CallRate {
            per_sec: 1000.0,
            burst: 1000.0,
        },
        tls: None,
    }
}

fn start(rt: &tokio::runtime::Runtime) -> RunningServer {
    remotemedia_signaling::grpc::remote::install(remotemedia_signaling::grpc::remote::own_runtime);
    rt.block_on(server::start(config())).unwrap()
}

fn manifest(node_params: serde_json::Value) -> String {
    serde_json::json!({
        "version": "v1",
        "nodes": [{"id": "remote", "node_type": "RemotePipelineNode", "params": node_params}]
    })
    .to_string()
}

fn passthrough() -> serde_json::Value {
    serde_json::json!({"version": "v1", "nodes": [{"id": "far", "node_type": "PassThrough"}]})
}

#[test]
fn unary_calls_return_the_remote_outputs_under_the_local_node_id() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    let text = manifest(serde_json::json!({
        "endpoint": format!("grpc://{}", server.grpc_addr),
        "manifest": passthrough(),
        "auth_token": "sesame",
    }));
    let graph = load_graph(&text, "test").unwrap();
    let inputs = ["one", "two", "three"].map(|t| RuntimeData::Text(t.into()));
    let outputs = execute_unary(graph, inputs).unwrap();
    let texts: Vec<_> = outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Text(t) => (o.node_id.to_string(), t.clone()),
            other => panic!("not text: {}", other.kind()),
        })
        .collect();
    assert_eq!(
        texts,
        [("remote", "one"), ("remote", "two"), ("remote", "three")]
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
    );
    rt.block_on(server.shutdown());
}

#[test]
fn streaming_keeps_one_remote_session_and_drains_it_at_the_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    // A chunker holds samples back until it has a whole chunk: only one session sees them all.
    let far = serde_json::json!({"version": "v1", "nodes": [
        {"id": "chunk", "node_type": "AudioChunkerNode", "params": {"chunk_size": 1000}}]});
    let text = manifest(serde_json::json!({
        "endpoint": format!("grpc://{}", server.grpc_addr),
        "manifest": far,
        "mode": "streaming",
        "auth_token": "sesame",
    }));
    let graph = load_graph(&text, "test").unwrap();
    let inputs = (0..10).map(|i| {
        let samples = vec![i as f32; 300];
        RuntimeData::Audio(AudioFrame::new(AudioSamples::from_vec(samples), 16000, 1))
    });
    let outputs = execute_unary(graph, inputs).unwrap();
    let total: usize = outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Audio(a) => a.samples.len(),
            other => panic!("not audio: {}", other.kind()),
        })
        .sum();
    assert_eq!(total, 3000, "every sample came back through one stream");
    assert!(outputs.iter().all(|o| &*o.node_id == "remote"));
    rt.block_on(server.shutdown());
}

#[test]
fn a_wrong_token_fails_at_once_and_names_the_reason() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    let text = manifest(serde_json::json!({
        "endpoint": format!("grpc://{}", server.grpc_addr),
        "manifest": passthrough(),
        "auth_token": "wrong",
    }));
    let graph = load_graph(&text, "test").unwrap();
    let started = Instant::now();
    let err = execute_unary(graph, [RuntimeData::Text("x".into())]).unwrap_err();
    assert_eq!(err.node_id, "remote");
    assert!(err.message.contains("Unauthenticated"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    rt.block_on(server.shutdown());
}

#[test]
fn a_remote_node_error_is_reported_with_the_far_node() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = start(&rt);
    // The far VAD takes 16 kHz mono only; stereo makes it fail there.
    let far = serde_json::json!({"version": "v1", "nodes": [
        {"id": "far_vad", "node_type": "SileroVADNode"}]});
    let text = manifest(serde_json::json!({
        "endpoint": format!("grpc://{}", server.grpc_addr),
        "manifest": far,
        "auth_token": "sesame",
    }));
    let graph = load_graph(&text, "test").unwrap();
    let stereo = AudioFrame::new(AudioSamples::from_vec(vec![0.0; 1024]), 16000, 2);
    let err = execute_unary(graph, [RuntimeData::Audio(stereo)]).unwrap_err();
    assert_eq!(err.node_id, "remote");
    assert!(
        err.message.contains("far_vad") && err.message.contains("mono"),
        "{}",
        err.message
    );
    rt.block_on(server.shutdown());
}

#[test]
fn an_absent_server_is_retried_with_backoff_then_given_up() {
    remotemedia_signaling::grpc::remote::install(remotemedia_signaling::grpc::remote::own_runtime);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = manifest(serde_json::json!({
        "endpoint": format!("grpc://127.0.0.1:{port}"),
        "manifest": passthrough(),
        "retry": {"max_attempts": 2, "initial_backoff_ms": 200, "backoff_multiplier": 2},
    }));
    let graph = load_graph(&text, "test").unwrap();
    let started = Instant::now();
    let err = execute_unary(graph, [RuntimeData::Text("x".into())]).unwrap_err();
    assert!(
        err.message.contains("gave up after 3 attempts"),
        "{}",
        err.message
    );
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "waited 200 + 400 ms between attempts"
    );
}
