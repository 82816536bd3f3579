//! The manifest loader: one test per class of error, and the report format users see.

use std::path::Path;

use remotemedia_runtime::manifest::parse;
use remotemedia_runtime::{Registry, load_graph, load_graph_file};

#[path = "support/report.rs"]
mod report;
use report::has;

fn errors(text: &str) -> Vec<String> {
    report::errors(parse(text, "test.json", Registry::builtin()))
}

#[test]
fn valid_manifest_loads_with_both_param_spellings() {
    let g = load_graph(
        r#"{"version":"v1","nodes":[
            {"id":"r","node_type":"AudioResample","params":{"targetRate":16000,"channels":1}},
            {"id":"c","node_type":"AudioChunkerNode","params":{"chunk_size":512}}],
            "connections":[{"from":"r","to":"c"}]}"#,
        "inline",
    )
    .unwrap();
    let m = g.manifest();
    assert_eq!(m.nodes[0].spec.node_type, "FastResampleNode");
    assert_eq!(m.nodes[0].params.i64("target_rate"), Some(16000));
    assert_eq!(m.topo_order, vec![0, 1]);
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let errs = errors("{\n  \"version\": \"v1\",\n  \"nodes\": [,]\n}");
    has(&errs, "line 3 column");
    has(&errs, "not valid JSON");
}

#[test]
fn version_and_empty_nodes() {
    let errs = errors(r#"{"version":"v2","nodes":[]}"#);
    has(&errs, r#"version: must be "v1", got "v2""#);
    has(&errs, "the manifest has no nodes: there is nothing to run");
}

#[test]
fn unknown_node_type_and_param_suggest_closest_names() {
    let errs = errors(
        r#"{"version":"v1","nodes":[
            {"id":"a","node_type":"SileroVadNode"},
            {"id":"b","node_type":"FastResampleNode","params":{"target_rate":16000,"qualty":"High"}}]}"#,
    );
    has(
        &errs,
        r#"nodes[0] "a": unknown node_type "SileroVadNode" (did you mean "SileroVADNode""#,
    );
    has(
        &errs,
        r#"nodes[1] "b" (FastResampleNode): param "qualty" unknown param (did you mean "quality""#,
    );
}

#[test]
fn out_of_range_and_wrong_type_params_are_placed() {
    let errs = errors(
        r#"{"version":"v1","nodes":[
            {"id":"r","node_type":"FastResampleNode","params":{"target_rate":"fast"}},
            {"id":"vad","node_type":"SileroVADNode","params":{"threshold":1.7}}]}"#,
    );
    has(
        &errs,
        r#"nodes[1] "vad" (SileroVADNode): param "threshold" must be within 0..1, got 1.7"#,
    );
    has(
        &errs,
        r#"nodes[0] "r" (FastResampleNode): param "target_rate" must be an integer, got "fast""#,
    );
}

#[test]
fn missing_required_param() {
    let errs = errors(r#"{"version":"v1","nodes":[{"id":"r","node_type":"FastResampleNode"}]}"#);
    has(&errs, r#"param "target_rate" is required"#);
}

#[test]
fn node_level_rules_are_checked_at_load() {
    let errs = errors(
        r#"{"version":"v1","nodes":[{"id":"vad","node_type":"SileroVADNode",
            "params":{"threshold":0.3,"neg_threshold":0.6}}]}"#,
    );
    has(
        &errs,
        r#"nodes[0] "vad" (SileroVADNode): param "neg_threshold" (0.6) must not exceed"#,
    );
    let errs = errors(
        r#"{"version":"v1","nodes":[{"id":"vad","node_type":"SileroVADNode",
            "params":{"model_path":"/nonexistent/model.onnx"}}]}"#,
    );
    has(
        &errs,
        r#"model_path "/nonexistent/model.onnx" is not a file"#,
    );
}

#[test]
fn duplicate_ids_unknown_connections_and_cycles() {
    let errs = errors(
        r#"{"version":"v1","nodes":[
            {"id":"a","node_type":"PassThrough"},
            {"id":"a","node_type":"PassThrough"},
            {"id":"b","node_type":"PassThrough"},
            {"id":"c","node_type":"PassThrough"}],
           "connections":[{"from":"a","to":"bb"},{"from":"b","to":"c"},{"from":"c","to":"b"}]}"#,
    );
    has(
        &errs,
        r#"nodes[1] "a": duplicate id, first used by nodes[0]"#,
    );
    has(
        &errs,
        r#"connections[0].to: unknown node "bb" (did you mean "b""#,
    );
    has(&errs, r#"connections: form a cycle through "b", "c""#);
}

#[test]
fn unknown_fields_and_bad_executor() {
    let errs = errors(
        r#"{"version":"v1","nodez":[],"nodes":[{"id":"a","node_type":"PassThrough","is_outputnode":true,"executor":42}]}"#,
    );
    has(&errs, r#""nodez": unknown field (did you mean "nodes""#);
    has(
        &errs,
        r#"nodes[0] "a": "is_outputnode": unknown field (did you mean "is_output_node""#,
    );
    has(&errs, "executor must be");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = r#"{"version":"v0","nodes":[
        {"id":"x","node_type":"Nope"},
        {"id":"y","node_type":"AudioChunkerNode","params":{"chunk_size":0}}]}"#;
    let report = parse(text, "m.json", Registry::builtin()).unwrap_err();
    assert_eq!(report.errors.len(), 3, "{report}");
    let shown = report.to_string();
    assert!(
        shown.starts_with("invalid manifest m.json: 3 errors"),
        "{shown}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let Err(report) = load_graph_file(std::path::Path::new("/nonexistent/vad.json")) else {
        panic!("a missing file was accepted");
    };
    assert!(
        report
            .to_string()
            .contains("cannot read manifest file \"/nonexistent/vad.json\""),
        "{report}"
    );
}

#[test]
fn shipped_manifests_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/launch");
    for name in ["vad.json", "passthrough.json"] {
        load_graph_file(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

const TABLE_BEGIN: &str = "<!-- node table: generated, do not edit -->\n";
const TABLE_END: &str = "<!-- end of node table -->\n";

/// README's node table is the specs' (between its markers). With UPDATE_README=1 the test
/// writes it there itself, so nobody pastes test output into the README again.
#[test]
fn readme_node_table_is_generated_from_the_specs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(begin), Some(end)) = (readme.find(TABLE_BEGIN), readme.find(TABLE_END)) else {
        panic!("README.md lacks the node table's markers {TABLE_BEGIN:?} and {TABLE_END:?}");
    };
    let begin = begin + TABLE_BEGIN.len();
    let table = Registry::builtin().markdown_reference();
    let table = format!("{}\n", table.trim_end());
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        readme[begin..end] == table,
        "README's node table is out of date: run UPDATE_README=1 cargo test -p remotemedia-runtime \
         --test manifest readme"
    );
    for stray in ["stack backtrace:", "panicked at", "rust_begin_unwind"] {
        assert!(
            !readme.contains(stray),
            "README.md holds test output ({stray:?})"
        );
    }
}

/// 100 000 mangled manifests (from the shipped ones and a Python node's) never panic or hang
/// the loader: each is accepted, or refused with a report whose every problem says something.
#[test]
fn mangled_manifests_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/launch");
    let mut seeds: Vec<Vec<u8>> = ["vad.json", "passthrough.json", "resample.json"]
        .iter()
        .map(|name| std::fs::read(dir.join(name)).unwrap())
        .collect();
    seeds.push(
        br#"{"version":"v1","nodes":[{"id":"p","node_type":"Echo","executor":"python","python_module":"echo","timeout_ms":500,"restart":{"max_restarts":2}}],"connections":[]}"#
            .to_vec(),
    );
    let mut mutator = remotemedia_runtime::mutate::Mutator::new(0x2545_f491);
    let mut reported = 0;
    for case in 0..100_000 {
        let seed = &seeds[case % seeds.len()];
        let bytes = mutator.mutate(seed, b"{}[]\",:0123456789.-etruafnl x_");
        let text = String::from_utf8_lossy(&bytes);
        if let Err(report) = parse(&text, "fuzz", Registry::builtin()) {
            assert!(!report.errors.is_empty(), "case {case}: an empty report");
            assert!(
                report.to_string().len() > "invalid manifest fuzz".len(),
                "case {case}: {report}"
            );
            reported += 1;
        }
    }
    assert!(
        reported > 30_000,
        "most mangled manifests are invalid ({reported})"
    );
}
