//! RemoteMedia's own example manifests (examples/seeds/): `type` for `node_type`, no
//! `version`, the `Echo` node, and `"nodes": []` where a WebRTC server takes it. Everything
//! around them stays strict.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use remotemedia_runtime::data::{PixelFormat, VideoFrame};
use remotemedia_runtime::manifest::{Manifest, ManifestReport, Nodes, load_file, parse, parse_in};
use remotemedia_runtime::{
    AudioFrame, AudioSamples, Registry, RuntimeData, execute_unary, load_graph, load_graph_file,
};
use serde_json::json;

#[path = "support/report.rs"]
mod report;
use report::{errors, has};

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/seeds")
        .join(name)
}

fn load(text: &str) -> Result<Manifest, ManifestReport> {
    parse(text, "test.json", Registry::builtin())
}

/// As a WebRTC server loads it: no nodes is allowed.
fn load_for_peers(text: &str) -> Result<Manifest, ManifestReport> {
    parse_in(
        text,
        "test.json",
        None,
        Registry::builtin(),
        Nodes::MayBeEmpty,
    )
}

#[test]
fn the_echo_seed_loads_as_written() {
    let text = std::fs::read_to_string(seed("echo.json")).unwrap();
    assert_eq!(
        text.trim_end(),
        r#"{"nodes": [{"id": "echo", "type": "Echo"}], "connections": []}"#
    );
    let g = load_graph_file(&seed("echo.json")).unwrap_or_else(|e| panic!("{e}"));
    let m = g.manifest();
    assert_eq!(m.nodes.len(), 1);
    assert_eq!(
        (m.nodes[0].id.as_str(), m.nodes[0].spec.node_type),
        ("echo", "Echo")
    );
    assert!(m.connections.is_empty());
}

#[test]
fn type_is_another_name_of_node_type() {
    let m = load(r#"{"nodes":[{"id":"r","type":"AudioResample","params":{"target_rate":16000}}]}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.nodes[0].spec.node_type, "FastResampleNode");
    // Both, saying the same: fine.
    load(r#"{"version":"v1","nodes":[{"id":"e","type":"Echo","node_type":"Echo"}]}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    // A Python node may be named either way too.
    let m = load(
        r#"{"nodes":[{"id":"p","type":"Shout","executor":"python","python_module":"shout"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let python = m.nodes[0].python.as_ref().expect("a Python node");
    assert_eq!(python.node_type, "Shout");
}

#[test]
fn type_and_node_type_that_differ_name_the_node() {
    let errs = errors(load(
        r#"{"nodes":[{"id":"echo","type":"Echo","node_type":"PassThrough"}]}"#,
    ));
    assert_eq!(
        errs,
        [r#"nodes[0] "echo": "node_type" "PassThrough" and "type" "Echo" differ; give one"#]
    );
}

#[test]
fn a_node_type_still_has_to_be_given_and_be_a_string() {
    let errs = errors(load(r#"{"nodes":[{"id":"a"}]}"#));
    has(&errs, r#"nodes[0] "a": missing "node_type" (or "type")"#);
    let errs = errors(load(r#"{"nodes":[{"id":"a","type":7}]}"#));
    has(&errs, r#"nodes[0] "a": type must be a string, got 7"#);
    let errs = errors(load(r#"{"nodes":[{"id":"a","type":"Ecko"}]}"#));
    has(&errs, r#"unknown node_type "Ecko" (did you mean "Echo""#);
}

#[test]
fn unknown_fields_are_still_refused() {
    let errs = errors(load(
        r#"{"nodez":[],"nodes":[{"id":"a","type":"Echo","typ":"Echo"}],"connections":[]}"#,
    ));
    has(&errs, r#""nodez": unknown field (did you mean "nodes""#);
    has(
        &errs,
        r#"nodes[0] "a": "typ": unknown field (did you mean "type""#,
    );
}

#[test]
fn a_missing_version_is_v1_and_any_other_is_refused() {
    load(r#"{"nodes":[{"id":"e","type":"Echo"}]}"#).unwrap_or_else(|e| panic!("{e}"));
    for (version, shown) in [
        (r#""v2""#, r#""v2""#),
        ("1", "1"),
        ("null", "null"),
        (r#""V1""#, r#""V1""#),
    ] {
        let text = format!(r#"{{"version":{version},"nodes":[{{"id":"e","type":"Echo"}}]}}"#);
        assert_eq!(
            errors(load(&text)),
            [format!(r#"version: must be "v1", got {shown}"#)]
        );
    }
}

#[test]
fn no_nodes_is_refused_where_something_would_run() {
    let errs = errors(load(r#"{"nodes": [], "connections": []}"#));
    assert_eq!(errs, ["the manifest has no nodes: there is nothing to run"]);
    let errs = errors(parse_in(
        r#"{"nodes":[]}"#,
        "t",
        None,
        Registry::builtin(),
        Nodes::Required("remotemediapipeline has nothing to run"),
    ));
    assert_eq!(
        errs,
        ["the manifest has no nodes: remotemediapipeline has nothing to run"]
    );
    assert!(load_graph_file(&seed("empty.json")).is_err());
    // Reported with the manifest's other problems, at once.
    let errs = errors(load(r#"{"version":"v2","nodes":[]}"#));
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn a_webrtc_server_takes_no_nodes_as_signaling_only() {
    for text in [
        r#"{"nodes": [], "connections": []}"#,
        r#"{"nodes": []}"#,
        r#"{"version": "v1", "nodes": []}"#,
    ] {
        let m = load_for_peers(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(m.nodes.is_empty() && m.connections.is_empty());
    }
    let m = load_file(&seed("empty.json"), Registry::builtin(), Nodes::MayBeEmpty)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(m.nodes.is_empty());
    // The rest stays strict: nodes must be there, connections must name nodes.
    has(
        &errors(load_for_peers(r#"{"connections": []}"#)),
        "nodes: missing",
    );
    has(
        &errors(load_for_peers(r#"{"nodes": {}}"#)),
        "nodes: must be an array",
    );
    has(
        &errors(load_for_peers(
            r#"{"nodes": [], "connections": [{"from": "a", "to": "b"}]}"#,
        )),
        r#"connections[0].from: unknown node "a""#,
    );
    has(
        &errors(load_for_peers(r#"{"version": "v2", "nodes": []}"#)),
        "version: must be",
    );
    // A server with nodes gets them checked as everywhere.
    has(
        &errors(load_for_peers(
            r#"{"nodes": [{"id": "x", "type": "Nope"}]}"#,
        )),
        "unknown node_type \"Nope\"",
    );
}

/// Echo hands every input on as it came: the same samples and pixels (no copy), and anything
/// else unchanged.
#[test]
fn echo_passes_everything_back_without_a_copy() {
    let g = load_graph(r#"{"nodes": [{"id": "echo", "type": "Echo"}]}"#, "inline").unwrap();
    let samples = AudioSamples::from_vec((0..960).map(|i| i as f32 / 960.0).collect());
    let audio = AudioFrame::new(samples.clone(), 48000, 2);
    let pixels = Bytes::from(vec![7u8; 4 * 4 * 4]);
    let video = VideoFrame {
        data: pixels.clone(),
        width: 4,
        height: 4,
        format: PixelFormat::Rgba,
        stream_id: None,
        pts: Some(40),
        keyframe: true,
    };
    let inputs = vec![
        RuntimeData::Audio(audio),
        RuntimeData::Video(video),
        RuntimeData::Text("hello".into()),
        RuntimeData::Json(json!({"a": 1})),
        RuntimeData::Binary(Bytes::from_static(b"\x00\x01")),
    ];
    let out = execute_unary(Arc::clone(&g), inputs).unwrap();
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|o| &*o.node_id == "echo"));
    match &out[0].data {
        RuntimeData::Audio(a) => {
            assert_eq!((a.sample_rate, a.channels), (48000, 2));
            assert!(Arc::ptr_eq(a.samples.storage(), samples.storage()));
        }
        other => panic!("audio expected, got {other:?}"),
    }
    match &out[1].data {
        RuntimeData::Video(v) => {
            assert_eq!(v.data.as_ptr(), pixels.as_ptr());
            assert_eq!((v.width, v.height, v.pts), (4, 4, Some(40)));
        }
        other => panic!("video expected, got {other:?}"),
    }
    assert!(matches!(&out[2].data, RuntimeData::Text(t) if t == "hello"));
    assert!(matches!(&out[3].data, RuntimeData::Json(j) if j == &json!({"a": 1})));
    assert!(matches!(&out[4].data, RuntimeData::Binary(b) if &b[..] == b"\x00\x01"));
}
