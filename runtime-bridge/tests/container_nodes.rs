//! Container nodes (Python nodes with a `docker` block) on the real engine (podman, installed
//! by scripts/setup.sh) and the base image scripts/container-base.sh builds: the memory limit
//! and the restart after the kernel's kill, the CPU cap, and sessions sharing one container
//! that goes away with the last of them. `SKIP_CONTAINER_TESTS=1` skips them, and they say so.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use remotemedia_runtime::{RuntimeData, Session, StreamSession, load_graph};
use serde_json::{Value, json};

fn skipped() -> bool {
    let skip = std::env::var("SKIP_CONTAINER_TESTS").as_deref() == Ok("1");
    if skip {
        eprintln!("SKIP_CONTAINER_TESTS=1: this container test does not run");
    }
    skip
}

/// A one-node manifest: `node_type` from the fixture module, in a container.
fn manifest(node_type: &str, docker: Value, extra: Value) -> String {
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/container_nodes.py");
    let mut node = json!({"id": "py", "node_type": node_type,
                          "python_module": fixture.display().to_string(), "docker": docker});
    node.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    json!({"version": "v1", "nodes": [node]}).to_string()
}

fn engine() -> String {
    std::env::var("REMOTEMEDIA_CONTAINER_ENGINE").unwrap_or_else(|_| "podman".into())
}

/// Whether the engine lists the container `name` (running or not).
fn exists(name: &str) -> bool {
    let filter = format!("name=^{name}$");
    let out = Command::new(engine())
        .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
        .output()
        .expect("the container engine runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == name)
}

#[path = "support/collect.rs"]
mod collect;
use collect::Collect;

fn text_of(data: &RuntimeData) -> String {
    match data {
        RuntimeData::Text(t) => t.clone(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// `ok:<input>:<pid>:<container>` from the Hog node, as (pid, container).
fn pid_and_container(answer: &str) -> (String, String) {
    let parts: Vec<&str> = answer.split(':').collect();
    assert_eq!(parts.len(), 4, "{answer}");
    (parts[2].to_string(), parts[3].to_string())
}

#[test]
fn past_its_memory_limit_a_worker_is_killed_reported_and_restarted() {
    if skipped() {
        return;
    }
    let m = manifest(
        "Hog",
        json!({"resource_limits": {"memory_mb": 128}}),
        json!({"restart": {"max_restarts": 2, "backoff_ms": 10}}),
    );
    let graph = load_graph(&m, "test").unwrap_or_else(|r| panic!("{r}"));
    let sink = Arc::new(Collect::default());
    let session = Session::new(graph, sink.clone()).unwrap_or_else(|e| panic!("{e}"));
    for input in ["a", "grow", "b"] {
        session.send(RuntimeData::Text(input.into())).unwrap();
    }
    session.drain().unwrap();
    let outputs: Vec<String> = sink
        .outputs
        .lock()
        .unwrap()
        .iter()
        .map(|o| text_of(&o.data))
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(
        outputs[0].starts_with("ok:a:") && outputs[1].starts_with("ok:b:"),
        "{outputs:?}"
    );
    let (pid_a, container_a) = pid_and_container(&outputs[0]);
    let (pid_b, container_b) = pid_and_container(&outputs[1]);
    assert_ne!(pid_a, pid_b, "the killed worker was replaced");
    assert_eq!(
        container_a, container_b,
        "only the worker died, not its container"
    );
    let warnings = sink.warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].node_id, "py");
    let message = &warnings[0].message;
    assert!(
        message.contains("out of memory (limit 128 MB)"),
        "{message}"
    );
    assert!(
        message.contains("restarted it (restart 1 of 2)"),
        "{message}"
    );
    assert!(sink.errors.lock().unwrap().is_empty());
}

#[test]
fn a_busy_node_gets_no_more_cpu_than_its_limit() {
    if skipped() {
        return;
    }
    let m = manifest(
        "Busy",
        json!({"resource_limits": {"cpu_cores": 0.5}}),
        json!({}),
    );
    let graph = load_graph(&m, "test").unwrap_or_else(|r| panic!("{r}"));
    let session = StreamSession::create(graph).unwrap_or_else(|e| panic!("{e}"));
    session.send(RuntimeData::Text("2".into())).unwrap();
    let out = session
        .recv_timeout(Duration::from_secs(60))
        .expect("an answer")
        .expect("no error");
    let share = serde_json::from_str::<Value>(&text_of(&out.data)).unwrap()["cpu_share"]
        .as_f64()
        .unwrap();
    // A quota of 50 ms per 100 ms period: at most half a core over 2 s, and a spinning node
    // does get CPU.
    assert!((0.1..=0.6).contains(&share), "cpu share {share}");
}

#[test]
fn sessions_with_the_same_spec_share_one_container_until_the_last_ends() {
    if skipped() {
        return;
    }
    // A limit no other test uses: this test's container is its own.
    let m = manifest(
        "Hog",
        json!({"resource_limits": {"memory_mb": 200}}),
        json!({}),
    );
    let open = || {
        let graph = load_graph(&m, "test").unwrap_or_else(|r| panic!("{r}"));
        StreamSession::create(graph).unwrap_or_else(|e| panic!("{e}"))
    };
    let ask = |s: &StreamSession| {
        s.send(RuntimeData::Text("x".into())).unwrap();
        let out = s
            .recv_timeout(Duration::from_secs(60))
            .expect("an answer")
            .expect("no error");
        pid_and_container(&text_of(&out.data))
    };
    let (first, second) = (open(), open());
    let (pid_1, container_1) = ask(&first);
    let (pid_2, container_2) = ask(&second);
    assert_ne!(pid_1, pid_2, "each session has its own worker");
    assert_eq!(container_1, container_2, "in one container");
    assert!(container_1.starts_with(&format!("remotemedia-{}-", std::process::id())));
    drop(first);
    assert!(exists(&container_1), "the second session still uses it");
    assert_eq!(ask(&second).1, container_1);
    drop(second);
    assert!(!exists(&container_1), "the last session out removed it");
}

#[test]
fn a_frozen_container_is_replaced_like_a_hung_worker() {
    if skipped() {
        return;
    }
    let m = manifest(
        "Hog",
        json!({"resource_limits": {"memory_mb": 300}}),
        json!({"timeout_ms": 1500, "restart": {"max_restarts": 1, "backoff_ms": 10}}),
    );
    let graph = load_graph(&m, "test").unwrap_or_else(|r| panic!("{r}"));
    let sink = Arc::new(Collect::default());
    let session = Session::new(graph, sink.clone()).unwrap_or_else(|e| panic!("{e}"));
    session.send(RuntimeData::Text("a".into())).unwrap();
    session.barrier();
    let first = text_of(&sink.outputs.lock().unwrap()[0].data);
    let (_, frozen) = pid_and_container(&first);
    let paused = Command::new(engine())
        .args(["pause", &frozen])
        .output()
        .unwrap();
    assert!(
        paused.status.success(),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    // "b" finds no answer within timeout_ms; the worker cannot be killed in the frozen
    // container, so the container is replaced and "c" is answered from a new one.
    for input in ["b", "c"] {
        session.send(RuntimeData::Text(input.into())).unwrap();
    }
    session.drain().unwrap();
    let outputs: Vec<String> = sink
        .outputs
        .lock()
        .unwrap()
        .iter()
        .map(|o| text_of(&o.data))
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs[1].starts_with("ok:c:"), "{outputs:?}");
    assert_ne!(pid_and_container(&outputs[1]).1, frozen, "a new container");
    assert!(!exists(&frozen), "the frozen container was removed");
    let warnings = sink.warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .message
            .contains("did not answer within 1500 ms"),
        "{warnings:?}"
    );
    assert!(sink.errors.lock().unwrap().is_empty());
}
